// Package mgmtapi holds the JSON wire types of the management API (/manage):
// the projects, tokens, audit records and pages it answers with. They are
// shared by the service that builds them (shared/management), the HTTP
// handlers that encode them and the admin UI that renders them (templates),
// and a client can decode them, without any of these linking the others.
// The package imports only shared/llmproxy and the standard library.
package mgmtapi

import (
	"time"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// Project is a project as clients see it (compatible with the original's
// ProjectResponse). APIKey is always masked.
type Project struct {
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

// Token is a token as clients see it: Token is the hint, never the plaintext
// or the hash. MaxRequests nil means unlimited.
type Token struct {
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

// AuditEvent is an audit record as clients see it, and also a line of the
// audit file (shared/audit writes this form): the original's field names,
// with details as an object (the original sent a JSON-encoded string as
// metadata).
type AuditEvent struct {
	ID            string         `json:"id"`
	Seq           int64          `json:"seq,omitempty"`
	Timestamp     time.Time      `json:"timestamp"`
	Action        string         `json:"action"`
	Actor         string         `json:"actor"`
	Outcome       string         `json:"outcome"`
	Result        string         `json:"result"`
	ProjectID     string         `json:"project_id,omitempty"`
	TokenID       string         `json:"token_id,omitempty"`
	RequestID     string         `json:"request_id,omitempty"`
	CorrelationID string         `json:"correlation_id,omitempty"`
	ClientIP      string         `json:"client_ip,omitempty"`
	Method        string         `json:"method,omitempty"`
	Path          string         `json:"path,omitempty"`
	UserAgent     string         `json:"user_agent,omitempty"`
	Reason        string         `json:"reason,omitempty"`
	Details       map[string]any `json:"details"`
	PrevHash      string         `json:"prev_hash,omitempty"`
	KeyID         string         `json:"key_id,omitempty"`
	Hash          string         `json:"hash,omitempty"`
}

// AuditList is the answer of GET /manage/audit.
type AuditList struct {
	Events     []AuditEvent `json:"events"`
	Pagination Pagination   `json:"pagination"`
}

// PurgeResult is the answer of POST /manage/cache/purge.
type PurgeResult struct {
	Deleted   int    `json:"deleted"`
	PurgeType string `json:"purge_type"`
}

// Pagination describes a page of a list.
type Pagination struct {
	Page       int  `json:"page"`
	PageSize   int  `json:"page_size"`
	TotalCount int  `json:"total_count"`
	TotalPages int  `json:"total_pages"`
	HasNext    bool `json:"has_next"`
	HasPrev    bool `json:"has_prev"`
}

// NewPagination describes page (from 1) of size items out of total.
func NewPagination(page, size, total int) Pagination {
	pages := 0
	if size > 0 {
		pages = (total + size - 1) / size
	}
	return Pagination{Page: page, PageSize: size, TotalCount: total, TotalPages: pages,
		HasNext: page < pages, HasPrev: page > 1}
}
