// Package store persists projects, tokens, audit events and settings.
//
// Store is the contract; the adapters live in sub-packages named after their
// engine: store/postgres (pgx/v5, pgxpool) and store/sqlite (modernc.org/sqlite,
// no cgo). Both pass the same contract suite (store/storetest). Adapters
// translate engine errors into llmproxy.ErrNotFound, ErrConflict and
// ErrUnavailable at their boundary; nothing above them sees pgx or sqlite
// errors.
//
// Every mutation takes the audit event that records it and appends that event
// in the same transaction, so a management action and its audit record are
// written together or not at all, in one round trip of the caller.
package store

import (
	"context"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// MaxPageSize caps every list call, whatever the caller asks for.
const MaxPageSize = 100

// Page selects a page of a list. Number starts at 1. Size is clamped to
// [1, MaxPageSize] by the adapters; callers validate user input before.
type Page struct {
	Number int
	Size   int
}

// Offset returns the row offset of the page.
func (p Page) Offset() int {
	if p.Number < 1 {
		return 0
	}
	return (p.Number - 1) * p.Limit()
}

// Limit returns the clamped page size (default 20).
func (p Page) Limit() int {
	switch {
	case p.Size <= 0:
		return 20
	case p.Size > MaxPageSize:
		return MaxPageSize
	}
	return p.Size
}

// ProjectFilter narrows ListProjects. Results are ordered by name.
type ProjectFilter struct {
	Search     string // case-insensitive substring of the name
	ActiveOnly bool
	Page       Page
}

// TokenFilter narrows ListTokens. Results are ordered by created_at DESC, id.
type TokenFilter struct {
	ProjectID  string
	ActiveOnly bool // is_active and not expired at the time of the call
	Page       Page
}

// AuditFilter narrows ListAudit. Exact match on every field but Search, which
// is a case-insensitive substring match over action, actor, ids, client ip,
// method, path, reason and details. Results are ordered newest first.
type AuditFilter struct {
	Action, Outcome, Actor, ProjectID, TokenID, ClientIP, RequestID, Method, Path string
	Since, Until                                                                  *time.Time
	Search                                                                        string
	Page                                                                          Page
}

// ProjectUpdate changes the non-nil fields of a project. Setting IsActive to
// false persists DeactivatedAt = now; true clears it. UpdatedAt is always set.
type ProjectUpdate struct {
	Name            *string
	APIKeyEncrypted *string
	APIKeyHint      *string
	IsActive        *bool
	Limits          *llmproxy.Limits
	TokenDefaults   *llmproxy.Limits
	// RevokeTokens, with IsActive=false, also revokes every active token of the
	// project in the same transaction.
	RevokeTokens bool
}

// TokenUpdate changes the non-nil fields of a token. Setting IsActive to false
// persists DeactivatedAt = now; true clears it.
type TokenUpdate struct {
	IsActive *bool
	// MaxRequests: a pointer to 0 means unlimited (stored as NULL).
	MaxRequests *int64
	// ExpiresAt: a pointer to the zero time means "never expires" (NULL).
	ExpiresAt *time.Time
	Limits    *llmproxy.Limits
}

// RevokeResult reports a bulk revocation.
type RevokeResult struct {
	Total          int `json:"total_tokens"`
	Revoked        int `json:"revoked_count"`
	AlreadyRevoked int `json:"already_revoked_count"`
	// TokenIDs are the ids of the tokens this call revoked (Revoked of
	// them, in no particular order), so that callers can announce each
	// revocation. Not part of the API's JSON.
	TokenIDs []string `json:"-"`
}

// Counts returns r without TokenIDs (comparable).
func (r RevokeResult) Counts() [3]int { return [3]int{r.Total, r.Revoked, r.AlreadyRevoked} }

// UsageDelta is a batch of counter increments for one token, applied
// atomically (request_count += Requests, cache_hit_count += CacheHits,
// last_used_at = max(last_used_at, LastUsedAt)).
//
// With ProjectID set, the same transaction also adds Requests, CacheHits,
// PromptTokens and CompletionTokens to the project's hourly usage for the
// UTC hour of LastUsedAt (the time of the call when LastUsedAt is zero), so
// a delta must not span an hour. Without ProjectID only the token changes.
type UsageDelta struct {
	TokenID    string
	ProjectID  string
	Requests   int64
	CacheHits  int64
	LastUsedAt time.Time
	// PromptTokens and CompletionTokens are model tokens billed upstream
	// (cache hits bill none).
	PromptTokens, CompletionTokens int64
}

// ProjectUsage is a project's usage summed over a time range (ProjectUsage
// method).
type ProjectUsage struct {
	ProjectID                      string
	Requests, CacheHits            int64
	PromptTokens, CompletionTokens int64
}

// Hour returns the UTC start of the hour of t: the bucket of hourly usage.
func Hour(t time.Time) time.Time { return t.UTC().Truncate(time.Hour) }

// AuditFunc builds the audit record of a mutation once its result is known;
// err is the mutation's error (nil on success). The store appends the record in
// the same transaction on success, and on its own after a failed mutation.
// A nil AuditFunc writes no record.
type AuditFunc func(err error) llmproxy.AuditEvent

// Store is the persistence contract. All times are UTC. Methods return errors
// wrapping llmproxy.ErrNotFound, ErrConflict or ErrUnavailable as documented.
type Store interface {
	// CreateProject inserts p (ID, CreatedAt and UpdatedAt are set when
	// empty). A duplicate name is ErrConflict.
	CreateProject(ctx context.Context, p llmproxy.Project, audit AuditFunc) (llmproxy.Project, error)
	// GetProject returns ErrNotFound for an unknown id.
	GetProject(ctx context.Context, id string) (llmproxy.Project, error)
	// ListProjects returns one page and the total count matching the filter.
	ListProjects(ctx context.Context, f ProjectFilter) ([]llmproxy.Project, int, error)
	// UpdateProject applies u; ErrNotFound for an unknown id, ErrConflict for a
	// duplicate name. The RevokeResult is zero unless u.RevokeTokens.
	UpdateProject(ctx context.Context, id string, u ProjectUpdate, audit func(p llmproxy.Project, r RevokeResult, err error) llmproxy.AuditEvent) (llmproxy.Project, RevokeResult, error)
	// RevokeProjectTokens deactivates every active token of the project.
	RevokeProjectTokens(ctx context.Context, projectID string, audit func(r RevokeResult, err error) llmproxy.AuditEvent) (RevokeResult, error)

	// CreateToken inserts t. The project must exist (ErrNotFound) and be
	// active (llmproxy.ErrForbidden with code project_inactive), checked in
	// the same transaction.
	CreateToken(ctx context.Context, t llmproxy.Token, audit AuditFunc) (llmproxy.Token, error)
	// GetToken returns ErrNotFound for an unknown id.
	GetToken(ctx context.Context, id string) (llmproxy.Token, error)
	// GetTokenByHash looks a token up by its HMAC hash (the proxy's path).
	GetTokenByHash(ctx context.Context, hash string) (llmproxy.Token, error)
	ListTokens(ctx context.Context, f TokenFilter) ([]llmproxy.Token, int, error)
	// UpdateToken applies u; ErrNotFound for an unknown id.
	UpdateToken(ctx context.Context, id string, u TokenUpdate, audit func(t llmproxy.Token, err error) llmproxy.AuditEvent) (llmproxy.Token, error)
	// RevokeToken soft-revokes; revoking a revoked token is not an error and
	// reports alreadyRevoked.
	RevokeToken(ctx context.Context, id string, audit func(t llmproxy.Token, alreadyRevoked bool, err error) llmproxy.AuditEvent) (t llmproxy.Token, alreadyRevoked bool, err error)
	// AddUsage applies counter increments in one transaction; unknown token
	// ids are ignored (their deltas count nowhere, hourly usage included).
	// Concurrent calls never lose increments.
	AddUsage(ctx context.Context, deltas []UsageDelta) error
	// ProjectUsage sums the hourly usage of every project over the hours
	// starting at or after Hour(since): one row per project with usage,
	// ordered by project id (empty, not nil, when there is none).
	ProjectUsage(ctx context.Context, since time.Time) ([]ProjectUsage, error)

	// AppendAudit appends one record to the chain (for actions that change
	// nothing, e.g. a denied login or a validation error).
	AppendAudit(ctx context.Context, e llmproxy.AuditEvent) (llmproxy.AuditEvent, error)
	GetAudit(ctx context.Context, id string) (llmproxy.AuditEvent, error)
	ListAudit(ctx context.Context, f AuditFilter) ([]llmproxy.AuditEvent, int, error)
	// SetAuditKey sets the key that seals every record appended from now on
	// (llmproxy.AuditEvent.Seal). The audit recorder sets it from the
	// keyring; a store without a key writes unkeyed (legacy) records, which
	// audit verification rejects after the first keyed one.
	SetAuditKey(k llmproxy.AuditKey)
	// AuditChain calls fn for every record in chain order (Seq ascending), for
	// verification; it stops at the first error fn returns.
	AuditChain(ctx context.Context, fn func(llmproxy.AuditEvent) error) error

	// ReencryptProjectKeys rewrites every project's APIKeyEncrypted with
	// reencrypt(old) in one transaction and returns how many changed.
	ReencryptProjectKeys(ctx context.Context, reencrypt func(ciphertext string) (string, bool, error)) (int, error)

	// GetSetting returns ErrNotFound when the key is unset.
	GetSetting(ctx context.Context, key string) (string, error)
	PutSetting(ctx context.Context, key, value string) error

	// AdminSessions keeps the admin UI's sessions.
	AdminSessions

	// Ping checks connectivity (for /ready).
	Ping(ctx context.Context) error
	Close() error
}
