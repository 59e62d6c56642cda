package manage

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// limitKeys are the fields of the API's limits objects ("limits",
// "token_defaults"), in display order.
var limitKeys = []string{"requests_per_minute", "requests_per_day", "tokens_per_minute", "tokens_per_day"}

// optInt is a non-negative integer flag that records whether it was set.
type optInt struct {
	name string
	v    *int64
}

func (o *optInt) String() string {
	if o == nil || o.v == nil {
		return ""
	}
	return strconv.FormatInt(*o.v, 10)
}

func (o *optInt) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return fmt.Errorf("want a whole number >= 0 (0: unlimited)")
	}
	o.v = &n
	return nil
}

// limitFlags are the four limit flags of one limits object, e.g.
// --requests-per-minute or --token-default-requests-per-minute.
type limitFlags struct {
	vals map[string]*optInt // by API field
}

// registerLimits registers --<prefix>requests-per-minute … on fs; what says
// whose limits they are (for the flag help).
func registerLimits(fs *flag.FlagSet, prefix, what string) *limitFlags {
	l := &limitFlags{vals: map[string]*optInt{}}
	for _, k := range limitKeys {
		name := prefix + strings.ReplaceAll(k, "_", "-")
		o := &optInt{name: name}
		l.vals[k] = o
		fs.Var(o, name, what+": "+strings.ReplaceAll(k, "_", " ")+" (0: unlimited)")
	}
	return l
}

// given reports whether any of the flags was set.
func (l *limitFlags) given() bool {
	for _, o := range l.vals {
		if o.v != nil {
			return true
		}
	}
	return false
}

// set returns only the flags that were given (a new object: fields not
// given are unlimited, or the project's token defaults, server-side).
func (l *limitFlags) set() map[string]int64 {
	out := map[string]int64{}
	for _, k := range limitKeys {
		if o := l.vals[k]; o.v != nil {
			out[k] = *o.v
		}
	}
	return out
}

// over returns base with the given flags applied: the API replaces a limits
// object as a whole, so a flag not given keeps base's value.
func (l *limitFlags) over(base map[string]int64) map[string]int64 {
	out := make(map[string]int64, len(limitKeys))
	for _, k := range limitKeys {
		out[k] = base[k]
		if o := l.vals[k]; o.v != nil {
			out[k] = *o.v
		}
	}
	return out
}

// currentLimits is the part of a project or token answer that holds limits.
type currentLimits struct {
	Limits        map[string]int64 `json:"limits"`
	TokenDefaults map[string]int64 `json:"token_defaults"`
}

// fetchLimits reads the limits of the project or token at path (one GET,
// needed because PATCH replaces a limits object as a whole).
func fetchLimits(ctx context.Context, c *call, path string) (currentLimits, error) {
	var cur currentLimits
	r, err := c.do(ctx, "GET", path, nil, nil)
	if err != nil {
		return cur, err
	}
	if err := r.decode(&cur); err != nil {
		return cur, err
	}
	return cur, nil
}

func projectPath(id string) string { return "/manage/projects/" + url.PathEscape(id) }

func tokenPath(id string) string { return "/manage/tokens/" + url.PathEscape(id) }

// limitsStr renders a limits object for tables: "unlimited" or e.g.
// "requests 60/min, unlimited/day; model tokens unlimited/min, 100000/day".
func limitsStr(m map[string]any) string {
	val := func(k string) string {
		switch v := m[k].(type) {
		case float64:
			if v > 0 {
				return strconv.FormatInt(int64(v), 10)
			}
		case int64:
			if v > 0 {
				return strconv.FormatInt(v, 10)
			}
		}
		return "unlimited"
	}
	rpm, rpd, tpm, tpd := val("requests_per_minute"), val("requests_per_day"), val("tokens_per_minute"), val("tokens_per_day")
	if rpm == "unlimited" && rpd == "unlimited" && tpm == "unlimited" && tpd == "unlimited" {
		return "unlimited"
	}
	return fmt.Sprintf("requests %s/min, %s/day; model tokens %s/min, %s/day", rpm, rpd, tpm, tpd)
}
