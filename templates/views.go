package templates

import (
	"net/url"
	"time"

	"github.com/a-h/templ"

	"github.com/llm-proxy/llm-proxy/shared/mgmtapi"
)

// Pager is the pagination of a list page: links keep the current filters.
type Pager struct {
	mgmtapi.Pagination
	// Query holds the list's filters (page is replaced per link).
	Query url.Values
	// Path is the list's path under the base path (e.g. "/projects").
	Path string
}

// pageURL returns the list URL for page n.
func (p Page) pageURL(pg Pager, n int) templ.SafeURL {
	q := url.Values{}
	for k, v := range pg.Query {
		if k != "page" {
			q[k] = v
		}
	}
	q.Set("page", itoa(n))
	return templ.SafeURL(p.Base + pg.Path + "?" + q.Encode())
}

// DashboardData is the dashboard.
type DashboardData struct {
	ActiveProjects, InactiveProjects int
	ActiveTokens, TotalTokens        int
	// ExpiringSoon are active tokens expiring within ExpiringWithin.
	ExpiringSoon   []TokenRow
	ExpiringWithin string
	// Requests sums request_count per project over the tokens looked at.
	Requests      []ProjectRequests
	TotalRequests int64
	// Partial is set when counters were summed over a capped sample.
	Partial bool
	Recent  []mgmtapi.AuditEvent
	Now     time.Time
	// LastDay is each project's usage over the last 24 hours (from the
	// hourly aggregates the proxies write), busiest first.
	LastDay []ProjectUsage
}

// ProjectUsage is a row of the dashboard's last-day usage table.
type ProjectUsage struct {
	ProjectID, Name                string
	Requests, CacheHits            int64
	PromptTokens, CompletionTokens int64
}

// ProjectRequests is a row of the dashboard's requests table.
type ProjectRequests struct {
	ProjectID, Name string
	Requests        int64
	CacheHits       int64
	Tokens          int
}

// ProjectsData is the projects list.
type ProjectsData struct {
	Projects []mgmtapi.Project
	Search   string
	Status   string // "", "active"
	Pager    Pager
}

// ProjectFormData is the new/edit project form.
type ProjectFormData struct {
	Project mgmtapi.Project // empty for a new project
	Name    string
	// Limits and TokenDefaults are the limit fields as shown (LimitValuesOf
	// the project's, or what was typed when the post was rejected).
	Limits        LimitValues
	TokenDefaults LimitValues
}

// ProjectShowData is a project's page.
type ProjectShowData struct {
	Project     mgmtapi.Project
	Tokens      []mgmtapi.Token
	TokensTotal int
	Now         time.Time
}

// TokenRow is a token with its project's name.
type TokenRow struct {
	Token       mgmtapi.Token
	ProjectName string
}

// TokensData is the tokens list.
type TokensData struct {
	Tokens    []TokenRow
	Projects  []mgmtapi.Project // for the filter
	ProjectID string
	Status    string // "", "active"
	Pager     Pager
	Now       time.Time
}

// TokenNewData is the generate-token form.
type TokenNewData struct {
	Projects    []mgmtapi.Project
	ProjectID   string
	Duration    string
	MaxRequests string
	// Limits are the typed limit fields (blank: the project's default).
	Limits LimitValues
}

// TokenCreatedData shows a new token, once.
type TokenCreatedData struct {
	Token       mgmtapi.CreatedToken
	ProjectName string
	// ProxyURL is the proxy's OpenAI base URL for the usage example.
	ProxyURL string
}

// TokenData is a token's page and edit form.
type TokenData struct {
	Token       mgmtapi.Token
	ProjectName string
	Now         time.Time
	// Limits are the edit form's limit fields as shown (LimitValuesOf the
	// token's, or what was typed when the post was rejected).
	Limits LimitValues
}

// AuditData is the audit list.
type AuditData struct {
	Events []mgmtapi.AuditEvent
	Query  url.Values
	Pager  Pager
}

// ConfirmData is the no-JavaScript confirmation page of a destructive action.
type ConfirmData struct {
	Heading string
	Message string
	// Action is the form's target (under the base path); Method the
	// _method override ("" for none).
	Action     string
	Method     string
	Button     string
	CancelPath string
}
