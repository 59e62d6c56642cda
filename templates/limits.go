package templates

import (
	"strconv"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/mgmtapi"
)

// LimitField is one of the four windowed limits as a form field: Key is the
// field's suffix, the same as the management API's JSON name
// (limits.requests_per_minute → form field limits_requests_per_minute).
type LimitField struct {
	Key, Label string
}

// LimitFields are the limit fields in display order.
var LimitFields = []LimitField{
	{"requests_per_minute", "Requests per minute"},
	{"requests_per_day", "Requests per day"},
	{"tokens_per_minute", "Model tokens per minute"},
	{"tokens_per_day", "Model tokens per day"},
}

// Limit field groups: the prefix of their form fields and ids.
const (
	// LimitsPrefix names a project's or a token's own limits.
	LimitsPrefix = "limits_"
	// TokenDefaultsPrefix names a project's defaults for new tokens.
	TokenDefaultsPrefix = "token_defaults_"
)

// LimitValues are the four limit fields of a form as they are shown: the
// stored values ("" for unlimited) or, after a rejected post, what was typed.
type LimitValues struct {
	// Values by LimitField.Key.
	Values map[string]string
	// Invalid is the Key of the field a validation error is about.
	Invalid string
}

// LimitValuesOf shows stored limits (0, unlimited, as an empty field).
func LimitValuesOf(l llmproxy.Limits) LimitValues {
	v := LimitValues{Values: map[string]string{}}
	for _, f := range LimitFields {
		if n := LimitOf(l, f.Key); n > 0 {
			v.Values[f.Key] = strconv.FormatInt(n, 10)
		}
	}
	return v
}

// LimitOf returns the limit of l named by key (a LimitField.Key).
func LimitOf(l llmproxy.Limits, key string) int64 {
	switch key {
	case "requests_per_minute":
		return l.RequestsPerMinute
	case "requests_per_day":
		return l.RequestsPerDay
	case "tokens_per_minute":
		return l.TokensPerMinute
	case "tokens_per_day":
		return l.TokensPerDay
	}
	return 0
}

// SetLimit sets the limit of l named by key (a LimitField.Key).
func SetLimit(l *llmproxy.Limits, key string, n int64) {
	switch key {
	case "requests_per_minute":
		l.RequestsPerMinute = n
	case "requests_per_day":
		l.RequestsPerDay = n
	case "tokens_per_minute":
		l.TokensPerMinute = n
	case "tokens_per_day":
		l.TokensPerDay = n
	}
}

// limitGroup is one fieldset of limit inputs.
type limitGroup struct {
	// Prefix of the fields' names and ids (LimitsPrefix, TokenDefaultsPrefix).
	Prefix string
	Legend string
	// Help describes every field of the group (blank means…).
	Help   string
	Values LimitValues
	// Placeholders by key (e.g. the project's defaults on the generate
	// form); nil for none.
	Placeholders map[string]string
}

// defaultPlaceholders are the placeholders of the generate-token form: the
// preselected project's defaults for new tokens.
func defaultPlaceholders(projects []mgmtapi.Project, projectID string) map[string]string {
	out := map[string]string{}
	for _, f := range LimitFields {
		out[f.Key] = "project default"
	}
	for _, p := range projects {
		if p.ID == projectID && projectID != "" {
			for _, f := range LimitFields {
				out[f.Key] = "project default: " + limitText(LimitOf(p.TokenDefaults, f.Key))
			}
		}
	}
	return out
}
