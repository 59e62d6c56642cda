package llmproxy

import "time"

// Limits are windowed limits on a token or a project. Zero means unlimited.
// Project limits cap the sum over all tokens of the project.
type Limits struct {
	RequestsPerMinute int64 `json:"requests_per_minute,omitempty"`
	RequestsPerDay    int64 `json:"requests_per_day,omitempty"`
	TokensPerMinute   int64 `json:"tokens_per_minute,omitempty"`
	TokensPerDay      int64 `json:"tokens_per_day,omitempty"`
}

// IsZero reports whether no limit is set.
func (l Limits) IsZero() bool { return l == Limits{} }

// Project owns an upstream API key and the tokens issued for it. Projects are
// deactivated, never deleted.
type Project struct {
	ID   string
	Name string
	// APIKeyEncrypted is the upstream key as stored: ciphertext produced by
	// shared/secrets. The plaintext never reaches the store.
	APIKeyEncrypted string
	// APIKeyHint is a masked rendering of the key (e.g. "sk-proj-...abcd"),
	// computed once at write time so that listings need no decryption.
	APIKeyHint    string
	IsActive      bool
	DeactivatedAt *time.Time
	CreatedAt     time.Time
	UpdatedAt     time.Time
	// Limits cap the sum over all tokens of the project.
	Limits Limits
	// TokenDefaults are applied to tokens created without explicit limits.
	TokenDefaults Limits
}

// Token is a withering token: it expires, can be revoked, and carries quotas.
// Only its HMAC hash is stored; the plaintext is shown once at creation.
type Token struct {
	ID string
	// Hash is the hex HMAC-SHA-256 of the plaintext token (shared/secrets).
	Hash string
	// Hint is a masked rendering of the plaintext (prefix and last chars),
	// computed at creation so listings can show something recognisable.
	Hint          string
	ProjectID     string
	ExpiresAt     *time.Time
	IsActive      bool
	DeactivatedAt *time.Time
	RequestCount  int64
	// MaxRequests is the lifetime request quota; nil means unlimited.
	MaxRequests   *int64
	CreatedAt     time.Time
	LastUsedAt    *time.Time
	CacheHitCount int64
	Limits        Limits
}

// Status of a token at time now, in the order the proxy checks it.
func (t Token) Status(now time.Time) TokenStatus {
	switch {
	case !t.IsActive:
		return TokenRevoked
	case t.ExpiresAt != nil && !now.Before(*t.ExpiresAt):
		return TokenExpired
	case t.MaxRequests != nil && *t.MaxRequests > 0 && t.RequestCount >= *t.MaxRequests:
		return TokenExhausted
	}
	return TokenValid
}

// TokenStatus is the result of checking a token's own state.
type TokenStatus int

// Token states.
const (
	TokenValid TokenStatus = iota
	TokenRevoked
	TokenExpired
	TokenExhausted
)

// Audit outcomes (the original's values).
const (
	OutcomeSuccess = "success"
	OutcomeFailure = "failure"
	OutcomeDenied  = "denied"
	OutcomeError   = "error"
)

// AuditEvent records one management action. Records form a keyed hash
// chain: Hash is an HMAC under the audit key named by KeyID over the record's
// content and PrevHash, so a changed, removed or re-linked record breaks the
// chain (see Seal; records from before the chain was keyed have an empty
// KeyID and the unkeyed ComputeHash).
type AuditEvent struct {
	ID            string
	Seq           int64 // position in the chain, assigned by the store
	Timestamp     time.Time
	Action        string // e.g. "project.create", "token.revoke_batch"
	Actor         string // e.g. "management_api", "admin_ui"
	Outcome       string // OutcomeSuccess, OutcomeFailure, OutcomeDenied, OutcomeError
	ProjectID     string
	TokenID       string
	RequestID     string
	CorrelationID string
	ClientIP      string
	Method        string
	Path          string
	UserAgent     string
	Reason        string
	// Details holds action-specific facts. Never a secret.
	Details  map[string]any
	PrevHash string
	KeyID    string // id of the audit key that sealed the record; "" for legacy records
	Hash     string
}

// UsageSource says where token counts come from.
type UsageSource string

// Usage sources.
const (
	UsageReported  UsageSource = "reported"  // from the upstream's usage object
	UsageEstimated UsageSource = "estimated" // counted locally with tiktoken
	UsageNone      UsageSource = "none"      // no model tokens (e.g. cache hit, error)
)

// Usage is the model-token usage of one request.
type Usage struct {
	PromptTokens     int64       `json:"prompt_tokens"`
	CompletionTokens int64       `json:"completion_tokens"`
	TotalTokens      int64       `json:"total_tokens"`
	CachedTokens     int64       `json:"cached_tokens,omitempty"`
	ReasoningTokens  int64       `json:"reasoning_tokens,omitempty"`
	Source           UsageSource `json:"source"`
}
