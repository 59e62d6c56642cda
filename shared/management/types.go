package management

import (
	"time"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/mgmtapi"
	"github.com/llm-proxy/llm-proxy/shared/store"
)

// RevokeResult reports a bulk revocation ({"revoked_count",
// "already_revoked_count", "total_tokens"}).
type RevokeResult = store.RevokeResult

// ProjectList is a page of projects (the API answers with the projects and
// puts the page in headers).
type ProjectList struct {
	Projects   []mgmtapi.Project
	Pagination mgmtapi.Pagination
}

// TokenList is a page of tokens.
type TokenList struct {
	Tokens     []mgmtapi.Token
	Pagination mgmtapi.Pagination
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

func (s *Service) projectView(p llmproxy.Project) mgmtapi.Project {
	hint := p.APIKeyHint
	if hint == "" {
		hint = "****"
	}
	return mgmtapi.Project{
		ID: p.ID, Name: p.Name, APIKey: hint, IsActive: p.IsActive,
		DeactivatedAt: utcPtr(p.DeactivatedAt), CreatedAt: p.CreatedAt.UTC(), UpdatedAt: p.UpdatedAt.UTC(),
		Limits: p.Limits, TokenDefaults: p.TokenDefaults,
	}
}

func tokenView(t llmproxy.Token) mgmtapi.Token {
	var mr *int64
	if t.MaxRequests != nil && *t.MaxRequests > 0 {
		v := *t.MaxRequests
		mr = &v
	}
	return mgmtapi.Token{
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
