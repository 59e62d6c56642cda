package adminui

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/templates"
)

// limitGroup names one group of limit fields on a form.
type limitGroup struct {
	// prefix of the fields (templates.LimitsPrefix, TokenDefaultsPrefix).
	prefix string
	// name starts the validation message ("Project limits").
	name string
	// blank says what an empty field means ("unlimited").
	blank string
}

var (
	projectLimits  = limitGroup{templates.LimitsPrefix, "Project limits", "unlimited"}
	tokenDefaults  = limitGroup{templates.TokenDefaultsPrefix, "Defaults for new tokens", "unlimited"}
	tokenLimits    = limitGroup{templates.LimitsPrefix, "Rate limits", "unlimited"}
	newTokenLimits = limitGroup{templates.LimitsPrefix, "Rate limits", "the project's default"}
)

// readLimits reads group g of form f. A blank field takes def's value (zero
// Limits: unlimited). vals is what was typed, for showing the form again
// (with the offending field marked); sent reports whether any field of the
// group was in the form, blank reports whether all were empty. A value that
// is not a whole number ≥ 0 is an ErrInvalid naming the field. The service
// validates the values again (and audits the change).
func readLimits(f url.Values, g limitGroup, def llmproxy.Limits) (l llmproxy.Limits, vals templates.LimitValues, sent, blank bool, err error) {
	vals.Values = map[string]string{}
	blank = true
	for _, fd := range templates.LimitFields {
		raw, ok := f[g.prefix+fd.Key]
		if !ok {
			templates.SetLimit(&l, fd.Key, templates.LimitOf(def, fd.Key))
			continue
		}
		sent = true
		v := ""
		if len(raw) > 0 {
			v = strings.TrimSpace(raw[len(raw)-1])
		}
		vals.Values[fd.Key] = v
		if v == "" {
			templates.SetLimit(&l, fd.Key, templates.LimitOf(def, fd.Key))
			continue
		}
		blank = false
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr != nil || n < 0 {
			if err == nil {
				vals.Invalid = fd.Key
				err = invalid(g.name + ": " + strings.ToLower(fd.Label[:1]) + fd.Label[1:] +
					" must be a whole number, 0 or more (blank for " + g.blank + ").")
			}
			continue
		}
		templates.SetLimit(&l, fd.Key, n)
	}
	return l, vals, sent, blank, err
}
