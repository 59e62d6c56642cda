package templates

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/mgmtapi"
)

// Time formats understood by admin.js (data-format), the original's names.
const (
	FmtYMDHM    = "ymd_hm"
	FmtYMDHMS   = "ymd_hms"
	FmtYMDHMSTZ = "ymd_hms_tz"
	FmtLong     = "long"
	FmtDateOnly = "date_only"
)

func rfc(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// utcText is the server-side rendering of t (UTC), replaced by the viewer's
// local time when JavaScript runs.
func utcText(t time.Time, format string) string {
	t = t.UTC()
	switch format {
	case FmtYMDHM:
		return t.Format("2006-01-02 15:04") + " UTC"
	case FmtDateOnly:
		return t.Format("2006-01-02")
	case FmtLong:
		return t.Format("January 2, 2006 at 3:04 PM") + " UTC"
	}
	return t.Format("2006-01-02 15:04:05") + " UTC"
}

// UTCString is a time as the original's read-only #expires_at shows it.
func UTCString(t *time.Time) string {
	if t == nil {
		return "Never"
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}

// Badge is a status label with its colour class.
type Badge struct {
	Text, Class string
}

// ProjectBadge is Active or Inactive.
func ProjectBadge(active bool) Badge {
	if active {
		return Badge{"Active", "bg-success"}
	}
	return Badge{"Inactive", "bg-secondary"}
}

// TokenBadge is the token's state at now: Active, Expired, Exhausted or
// Revoked.
func TokenBadge(t mgmtapi.Token, now time.Time) Badge {
	switch {
	case !t.IsActive:
		return Badge{"Revoked", "bg-danger"}
	case t.ExpiresAt != nil && !now.Before(*t.ExpiresAt):
		return Badge{"Expired", "bg-warning"}
	case t.MaxRequests != nil && *t.MaxRequests > 0 && t.RequestCount >= *t.MaxRequests:
		return Badge{"Exhausted", "bg-warning"}
	}
	return Badge{"Active", "bg-success"}
}

// OutcomeBadge is the audit outcome.
func OutcomeBadge(outcome string) Badge {
	switch outcome {
	case "success":
		return Badge{"Success", "bg-success"}
	case "denied":
		return Badge{"Denied", "bg-warning"}
	case "failure":
		return Badge{"Failure", "bg-danger"}
	}
	return Badge{"Error", "bg-danger"}
}

// usage renders request_count / max_requests (∞ when unlimited).
func usage(t mgmtapi.Token) string {
	limit := "∞"
	if t.MaxRequests != nil && *t.MaxRequests > 0 {
		limit = strconv.FormatInt(*t.MaxRequests, 10)
	}
	return strconv.FormatInt(t.RequestCount, 10) + " / " + limit
}

func maxRequestsValue(t mgmtapi.Token) string {
	if t.MaxRequests == nil || *t.MaxRequests <= 0 {
		return ""
	}
	return strconv.FormatInt(*t.MaxRequests, 10)
}

func itoa[T int | int64](n T) string { return strconv.FormatInt(int64(n), 10) }

// limitText renders a limit (0 = unlimited).
func limitText(n int64) string {
	if n <= 0 {
		return "unlimited"
	}
	return strconv.FormatInt(n, 10)
}

// Detail is one audit detail, redacted.
type Detail struct {
	Key, Value string
}

// Details returns the audit details sorted by key, values rendered as JSON
// scalars and redacted under secret-looking keys.
func Details(d map[string]any) []Detail {
	out := make([]Detail, 0, len(d))
	for k, v := range d {
		var s string
		switch x := v.(type) {
		case string:
			s = x
		default:
			b, err := json.Marshal(x)
			if err != nil {
				s = fmt.Sprint(x)
			} else {
				s = string(b)
			}
		}
		if len(s) > 2000 {
			s = s[:2000] + "…"
		}
		out = append(out, Detail{k, Redact(k, s)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// orDash renders empty values as an em dash.
func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

func curlExample(proxyURL string) string {
	return "curl " + proxyURL + "/chat/completions \\\n" +
		"  -H \"Authorization: Bearer $LLM_PROXY_TOKEN\" \\\n" +
		"  -H \"Content-Type: application/json\" \\\n" +
		"  -d '{\"model\": \"gpt-4o-mini\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'"
}

// RevokeTokenMessage is the confirmation text of a token revocation.
func RevokeTokenMessage(hint string) string {
	return "Are you sure you want to revoke token " + hint + "? This action cannot be undone."
}

// RevokeAllMessage is the confirmation text of revoking every token of a project.
func RevokeAllMessage(name string) string {
	return `Are you sure you want to revoke ALL tokens for project "` + name + `"? This action cannot be undone.`
}
