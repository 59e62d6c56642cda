package management

import (
	"time"

	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/store"
)

// ProjectResponse is a project as clients see it (compatible with the
// original's ProjectResponse). APIKey is always masked.
type ProjectResponse struct {
	ID            string          `json:"id"`
	Name          string          `json:"name"`
	APIKey        string          `json:"api_key"`
	IsActive      bool            `json:"is_active"`
	DeactivatedAt *time.Time      `json:"deactivated_at,omitempty"`
	CreatedAt     time.Time       `json:"created_at"`
	UpdatedAt     time.Time       `json:"updated_at"`
	Limits        llmproxy.Limits `json:"limits"`
	TokenDefaults llmproxy.Limits `json:"token_defaults"`
}

// TokenResponse is a token as clients see it: Token is the hint, never the
// plaintext or the hash. MaxRequests nil means unlimited.
type TokenResponse struct {
	ID            string          `json:"id"`
	Token         string          `json:"token"`
	ProjectID     string          `json:"project_id"`
	ExpiresAt     *time.Time      `json:"expires_at"`
	IsActive      bool            `json:"is_active"`
	DeactivatedAt *time.Time      `json:"deactivated_at"`
	RequestCount  int64           `json:"request_count"`
	MaxRequests   *int64          `json:"max_requests"`
	CreatedAt     time.Time       `json:"created_at"`
	LastUsedAt    *time.Time      `json:"last_used_at"`
	CacheHitCount int64           `json:"cache_hit_count"`
	Limits        llmproxy.Limits `json:"limits"`
}

// CreatedToken is the answer to a token creation: the only time the
// plaintext Token is shown.
type CreatedToken struct {
	ID          string          `json:"id"`
	Token       string          `json:"token"`
	Hint        string          `json:"token_hint"`
	ProjectID   string          `json:"project_id"`
	ExpiresAt   *time.Time      `json:"expires_at"`
	MaxRequests *int64          `json:"max_requests,omitempty"`
	IsActive    bool            `json:"is_active"`
	CreatedAt   time.Time       `json:"created_at"`
	Limits      llmproxy.Limits `json:"limits"`
}

// AuditEventResponse is an audit record as clients see it; details is an
// object (the original sent a JSON-encoded string as metadata).
type AuditEventResponse = audit.FileEvent

// RevokeResult reports a bulk revocation ({"revoked_count",
// "already_revoked_count", "total_tokens"}).
type RevokeResult = store.RevokeResult

// Pagination describes a page of a list.
type Pagination struct {
	Page       int  `json:"page"`
	PageSize   int  `json:"page_size"`
	TotalCount int  `json:"total_count"`
	TotalPages int  `json:"total_pages"`
	HasNext    bool `json:"has_next"`
	HasPrev    bool `json:"has_prev"`
}

func newPagination(page, size, total int) Pagination {
	pages := 0
	if size > 0 {
		pages = (total + size - 1) / size
	}
	return Pagination{Page: page, PageSize: size, TotalCount: total, TotalPages: pages,
		HasNext: page < pages, HasPrev: page > 1}
}

// ProjectList is a page of projects.
type ProjectList struct {
	Projects   []ProjectResponse
	Pagination Pagination
}

// TokenList is a page of tokens.
type TokenList struct {
	Tokens     []TokenResponse
	Pagination Pagination
}

// AuditList is the answer of GET /manage/audit.
type AuditList struct {
	Events     []AuditEventResponse `json:"events"`
	Pagination Pagination           `json:"pagination"`
}

// CreateProjectInput creates a project.
type CreateProjectInput struct {
	Name          string
	APIKey        string
	Limits        *llmproxy.Limits
	TokenDefaults *llmproxy.Limits
}

// UpdateProjectInput changes the non-nil fields of a project. An empty APIKey
// is ignored (the original's behaviour). RevokeTokens requires IsActive=false.
type UpdateProjectInput struct {
	Name          *string
	APIKey        *string
	IsActive      *bool
	RevokeTokens  *bool
	Limits        *llmproxy.Limits
	TokenDefaults *llmproxy.Limits
}

// CreateTokenInput creates a token. Exactly one lifetime applies:
// DurationMinutes, Duration ("90m", "24h", "30d", "2w") or ExpiresAt.
// MaxRequests 0 or nil means unlimited. Limits nil takes the project's
// token_defaults.
type CreateTokenInput struct {
	ProjectID       string
	DurationMinutes *int64
	Duration        string
	ExpiresAt       *time.Time
	MaxRequests     *int64
	Limits          *llmproxy.Limits
}

// UpdateTokenInput changes the non-nil fields of a token. MaxRequests 0 means
// unlimited; ExpiresAt pointing at the zero time means "never expires".
type UpdateTokenInput struct {
	IsActive    *bool
	MaxRequests *int64
	ExpiresAt   *time.Time
	Limits      *llmproxy.Limits
}

// ProjectQuery filters ListProjects. Page 0 means 1; PageSize 0 means the
// default (20); PageSize above store.MaxPageSize is capped.
type ProjectQuery struct {
	Search     string
	ActiveOnly bool
	Page       int
	PageSize   int
}

// TokenQuery filters ListTokens.
type TokenQuery struct {
	ProjectID  string
	ActiveOnly bool
	Page       int
	PageSize   int
}

// AuditQuery filters ListAudit (exact matches except Search).
type AuditQuery struct {
	Action, Outcome, Actor, ProjectID, TokenID, ClientIP, RequestID, Method, Path string
	Since, Until                                                                  *time.Time
	Search                                                                        string
	Page                                                                          int
	PageSize                                                                      int
}

// PurgeCacheInput selects what POST /manage/cache/purge deletes: All, or a
// project's entries (ProjectID), or one exact request (ProjectID, Method,
// Path, Body).
type PurgeCacheInput struct {
	All       bool
	ProjectID string
	Method    string
	Path      string
	Query     string
	Body      string
}

// PurgeCacheResult reports a purge.
type PurgeCacheResult struct {
	Deleted   int    `json:"deleted"`
	PurgeType string `json:"purge_type"`
}

func (s *Service) projectView(p llmproxy.Project) ProjectResponse {
	hint := p.APIKeyHint
	if hint == "" {
		hint = "****"
	}
	return ProjectResponse{
		ID: p.ID, Name: p.Name, APIKey: hint, IsActive: p.IsActive,
		DeactivatedAt: utcPtr(p.DeactivatedAt), CreatedAt: p.CreatedAt.UTC(), UpdatedAt: p.UpdatedAt.UTC(),
		Limits: p.Limits, TokenDefaults: p.TokenDefaults,
	}
}

func tokenView(t llmproxy.Token) TokenResponse {
	var mr *int64
	if t.MaxRequests != nil && *t.MaxRequests > 0 {
		v := *t.MaxRequests
		mr = &v
	}
	return TokenResponse{
		ID: t.ID, Token: t.Hint, ProjectID: t.ProjectID, ExpiresAt: utcPtr(t.ExpiresAt),
		IsActive: t.IsActive, DeactivatedAt: utcPtr(t.DeactivatedAt), RequestCount: t.RequestCount,
		MaxRequests: mr, CreatedAt: t.CreatedAt.UTC(), LastUsedAt: utcPtr(t.LastUsedAt),
		CacheHitCount: t.CacheHitCount, Limits: t.Limits,
	}
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil || t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
