package management

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/mgmtapi"
	"github.com/llm-proxy/llm-proxy/shared/store"
)

// MaxTokenLifetime is the longest lifetime a token may be given (the
// original's 525600 minutes).
const MaxTokenLifetime = 365 * 24 * time.Hour

// ParseLifetime parses a token lifetime: a Go duration ("90m", "24h",
// "1h30m") or a whole number of days ("30d") or weeks ("2w").
func ParseLifetime(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	bad := invalidf(`duration must look like "90m", "24h", "30d" or "2w"`)
	if s == "" {
		return 0, bad
	}
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			if err != nil || v < 1 || v > 1000 {
				return 0, bad
			}
			return time.Duration(v) * unit, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, bad
	}
	return d, nil
}

// expiry resolves the lifetime of a new token.
func (s *Service) expiry(in CreateTokenInput, details map[string]any) (time.Time, error) {
	n := 0
	for _, set := range []bool{in.DurationMinutes != nil, in.Duration != "", in.ExpiresAt != nil} {
		if set {
			n++
		}
	}
	switch {
	case n == 0:
		return time.Time{}, invalidf("project_id and duration_minutes are required (or duration, or expires_at)")
	case n > 1:
		return time.Time{}, invalidf("give only one of duration_minutes, duration and expires_at")
	}
	now := s.clock().UTC()
	var d time.Duration
	switch {
	case in.DurationMinutes != nil:
		details["requested_duration_minutes"] = *in.DurationMinutes
		if *in.DurationMinutes <= 0 {
			return time.Time{}, invalidf("project_id and duration_minutes are required")
		}
		if *in.DurationMinutes > int64(MaxTokenLifetime/time.Minute) {
			details["max_duration_minutes"] = int64(MaxTokenLifetime / time.Minute)
			return time.Time{}, invalidf("duration_minutes exceeds maximum allowed")
		}
		d = time.Duration(*in.DurationMinutes) * time.Minute
	case in.Duration != "":
		details["requested_duration"] = truncate(in.Duration, 32)
		var err error
		if d, err = ParseLifetime(in.Duration); err != nil {
			return time.Time{}, err
		}
	default:
		d = in.ExpiresAt.Sub(now)
		if d <= 0 {
			return time.Time{}, invalidf("expires_at must be in the future")
		}
	}
	if d < time.Minute {
		return time.Time{}, invalidf("token lifetime must be at least one minute")
	}
	if d > MaxTokenLifetime {
		details["max_duration_minutes"] = int64(MaxTokenLifetime / time.Minute)
		return time.Time{}, invalidf("token lifetime exceeds maximum allowed (365 days)")
	}
	if in.ExpiresAt != nil {
		return in.ExpiresAt.UTC().Truncate(time.Microsecond), nil
	}
	return now.Add(d).Truncate(time.Microsecond), nil
}

// CreateToken issues a token for an active project and returns its plaintext,
// which is never available again. Limits default to the project's
// token_defaults.
func (s *Service) CreateToken(ctx context.Context, a Actor, in CreateTokenInput) (mgmtapi.CreatedToken, error) {
	details := map[string]any{}
	failT := func(err error) (mgmtapi.CreatedToken, error) {
		e := s.event(a, ActionTokenCreate, err, details)
		if errors.Is(err, llmproxy.ErrInvalid) {
			e.Details["validation_error"] = llmproxy.ErrorMessage(err)
		}
		if validID(in.ProjectID) && !errors.Is(err, llmproxy.ErrNotFound) {
			e.ProjectID = in.ProjectID
		}
		return mgmtapi.CreatedToken{}, s.record(ctx, e, err)
	}
	if in.ProjectID == "" {
		return failT(invalidf("project_id is required"))
	}
	exp, err := s.expiry(in, details)
	if err != nil {
		return failT(err)
	}
	if in.MaxRequests != nil && *in.MaxRequests < 0 {
		details["requested_max_requests"] = *in.MaxRequests
		return failT(invalidf("max_requests must be >= 0"))
	}
	if err := validateLimits("limits", in.Limits); err != nil {
		return failT(err)
	}
	p, err := s.getProject(ctx, in.ProjectID)
	if err != nil {
		details["provided_id"] = truncate(in.ProjectID, 64)
		return failT(err)
	}
	if !p.IsActive {
		details["reason"] = "project is inactive"
		return failT(llmproxy.E(llmproxy.ErrForbidden, llmproxy.CodeProjectInactive, "cannot create tokens for inactive projects"))
	}
	plain, err := s.gen()
	if err != nil {
		return failT(llmproxy.Wrap(errInternal, llmproxy.CodeInternal, "failed to generate token", err))
	}
	t := llmproxy.Token{
		ID: uuid.NewString(), Hash: s.keyring.HashToken(plain), Hint: s.hint(plain),
		ProjectID: p.ID, ExpiresAt: &exp, IsActive: true, Limits: p.TokenDefaults,
	}
	if in.MaxRequests != nil && *in.MaxRequests > 0 {
		v := *in.MaxRequests
		t.MaxRequests = &v
	}
	if in.Limits != nil {
		t.Limits = *in.Limits
	}
	details["expires_at"] = exp.Format(time.RFC3339)
	details["duration_minutes"] = int64(exp.Sub(s.clock().UTC()).Round(time.Minute) / time.Minute)
	if t.MaxRequests != nil {
		details["max_requests"] = *t.MaxRequests
	} else {
		details["max_requests"] = "unlimited"
	}
	m := s.newMutation()
	build := func(err error) llmproxy.AuditEvent {
		e := s.event(a, ActionTokenCreate, translate(err, msgProjectNotFound), details)
		e.ProjectID = p.ID
		if err == nil {
			e.TokenID = t.ID
		}
		return e
	}
	var cb store.AuditFunc
	if m.inDB() {
		cb = func(err error) llmproxy.AuditEvent { return m.keep(build(err)) }
	}
	created, err := s.store.CreateToken(ctx, t, cb)
	m.done(func() llmproxy.AuditEvent { return build(err) })
	if err != nil {
		return mgmtapi.CreatedToken{}, translate(err, msgProjectNotFound)
	}
	s.announceTokenCreated(ctx, m.ev, created)
	v := tokenView(created)
	return mgmtapi.CreatedToken{
		ID: created.ID, Token: plain, Hint: created.Hint, ProjectID: created.ProjectID, ExpiresAt: v.ExpiresAt,
		MaxRequests: v.MaxRequests, IsActive: created.IsActive, CreatedAt: v.CreatedAt, Limits: created.Limits,
	}, nil
}

// GetToken returns one token (audited as token.read).
func (s *Service) GetToken(ctx context.Context, a Actor, id string) (mgmtapi.Token, error) {
	t, err := s.getToken(ctx, id)
	e := s.event(a, ActionTokenRead, err, nil)
	if err != nil {
		e.Details["provided_id"] = truncate(id, 64)
		return mgmtapi.Token{}, s.record(ctx, e, err)
	}
	e.TokenID, e.ProjectID = t.ID, t.ProjectID
	return tokenView(t), s.record(ctx, e, nil)
}

func (s *Service) getToken(ctx context.Context, id string) (llmproxy.Token, error) {
	if !validID(id) {
		return llmproxy.Token{}, notFound(msgTokenNotFound)
	}
	t, err := s.store.GetToken(ctx, id)
	return t, translate(err, msgTokenNotFound)
}

// ListTokens returns one page of tokens, newest first.
func (s *Service) ListTokens(ctx context.Context, a Actor, q TokenQuery) (TokenList, error) {
	details := map[string]any{}
	if q.ProjectID != "" {
		details["filtered_by_project"] = truncate(q.ProjectID, 64)
	}
	page, err := pageOf(q.Page, q.PageSize)
	if err != nil {
		return TokenList{}, s.fail(ctx, a, ActionTokenList, err, details)
	}
	details["page"], details["page_size"] = page.Number, page.Limit()
	if q.ActiveOnly {
		details["active_only"] = true
	}
	if q.ProjectID != "" && !validID(q.ProjectID) {
		// An id that cannot exist matches nothing.
		out := TokenList{Tokens: []mgmtapi.Token{}, Pagination: mgmtapi.NewPagination(page.Number, page.Limit(), 0)}
		details["token_count"] = 0
		return out, s.record(ctx, s.event(a, ActionTokenList, nil, details), nil)
	}
	ts, total, err := s.store.ListTokens(ctx, store.TokenFilter{ProjectID: q.ProjectID, ActiveOnly: q.ActiveOnly, Page: page})
	if err != nil {
		err = translate(err, msgTokenNotFound)
		return TokenList{}, s.record(ctx, s.event(a, ActionTokenList, err, details), err)
	}
	out := TokenList{Tokens: make([]mgmtapi.Token, 0, len(ts)), Pagination: mgmtapi.NewPagination(page.Number, page.Limit(), total)}
	for _, t := range ts {
		out.Tokens = append(out.Tokens, tokenView(t))
	}
	details["token_count"] = len(out.Tokens)
	details["total_count"] = total
	e := s.event(a, ActionTokenList, nil, details)
	if validID(q.ProjectID) {
		e.ProjectID = q.ProjectID
	}
	return out, s.record(ctx, e, nil)
}

// UpdateToken changes is_active, max_requests, expires_at or limits.
func (s *Service) UpdateToken(ctx context.Context, a Actor, id string, in UpdateTokenInput) (mgmtapi.Token, error) {
	details := map[string]any{}
	failT := func(err error) (mgmtapi.Token, error) {
		if !errors.Is(err, llmproxy.ErrNotFound) && validID(id) {
			e := s.event(a, ActionTokenUpdate, err, details)
			e.TokenID = id
			if errors.Is(err, llmproxy.ErrInvalid) {
				e.Details["validation_error"] = llmproxy.ErrorMessage(err)
			}
			return mgmtapi.Token{}, s.record(ctx, e, err)
		}
		details["provided_id"] = truncate(id, 64)
		return mgmtapi.Token{}, s.fail(ctx, a, ActionTokenUpdate, err, details)
	}
	if !validID(id) {
		return failT(notFound(msgTokenNotFound))
	}
	var u store.TokenUpdate
	if in.IsActive != nil {
		u.IsActive = in.IsActive
		details["updated_is_active"] = *in.IsActive
	}
	if in.MaxRequests != nil {
		if *in.MaxRequests < 0 {
			details["requested_max_requests"] = *in.MaxRequests
			return failT(invalidf("max_requests must be >= 0"))
		}
		u.MaxRequests = in.MaxRequests
		if *in.MaxRequests == 0 {
			details["updated_max_requests"] = "unlimited"
		} else {
			details["updated_max_requests"] = *in.MaxRequests
		}
	}
	if in.ExpiresAt != nil {
		if in.ExpiresAt.IsZero() {
			details["updated_expires_at"] = "never"
		} else {
			exp := in.ExpiresAt.UTC().Truncate(time.Microsecond)
			if exp.Sub(s.clock()) > MaxTokenLifetime {
				return failT(invalidf("token lifetime exceeds maximum allowed (365 days)"))
			}
			in.ExpiresAt = &exp
			details["updated_expires_at"] = exp.Format(time.RFC3339)
		}
		u.ExpiresAt = in.ExpiresAt
	}
	if in.Limits != nil {
		if err := validateLimits("limits", in.Limits); err != nil {
			return failT(err)
		}
		u.Limits = in.Limits
		details["updated_limits"] = true
	}
	if len(details) == 0 {
		return failT(invalidf(msgNoFieldsToUpdate))
	}
	m := s.newMutation()
	build := func(t llmproxy.Token, err error) llmproxy.AuditEvent {
		e := s.event(a, ActionTokenUpdate, translate(err, msgTokenNotFound), details)
		if err == nil {
			e.TokenID, e.ProjectID = t.ID, t.ProjectID
		} else {
			e.Details["provided_id"] = id
		}
		return e
	}
	var cb func(llmproxy.Token, error) llmproxy.AuditEvent
	if m.inDB() {
		cb = func(t llmproxy.Token, err error) llmproxy.AuditEvent { return m.keep(build(t, err)) }
	}
	t, err := s.store.UpdateToken(ctx, id, u, cb)
	m.done(func() llmproxy.AuditEvent { return build(t, err) })
	if err != nil {
		return mgmtapi.Token{}, translate(err, msgTokenNotFound)
	}
	s.invalidateToken(ctx, id)
	if in.IsActive != nil && !*in.IsActive {
		// The store does not say whether the token was active before, so an
		// already inactive token is announced again (consumers are
		// idempotent; the event id is new because the action is).
		s.announceTokensRevoked(ctx, m.ev, t.ProjectID, []string{t.ID}, false)
	}
	return tokenView(t), nil
}

// RevokeToken soft-revokes a token; revoking twice is not an error.
func (s *Service) RevokeToken(ctx context.Context, a Actor, id string) error {
	if !validID(id) {
		return s.fail(ctx, a, ActionTokenRevoke, notFound(msgTokenNotFound), map[string]any{"provided_id": truncate(id, 64)})
	}
	m := s.newMutation()
	build := func(t llmproxy.Token, already bool, err error) llmproxy.AuditEvent {
		e := s.event(a, ActionTokenRevoke, translate(err, msgTokenNotFound), nil)
		if err == nil {
			e.TokenID, e.ProjectID = t.ID, t.ProjectID
			if already {
				e.Details["already_revoked"] = true
			}
		} else {
			e.Details["provided_id"] = id
		}
		return e
	}
	var cb func(llmproxy.Token, bool, error) llmproxy.AuditEvent
	if m.inDB() {
		cb = func(t llmproxy.Token, already bool, err error) llmproxy.AuditEvent {
			return m.keep(build(t, already, err))
		}
	}
	t, already, err := s.store.RevokeToken(ctx, id, cb)
	m.done(func() llmproxy.AuditEvent { return build(t, already, err) })
	if err != nil {
		return translate(err, msgTokenNotFound)
	}
	s.invalidateToken(ctx, id)
	if !already {
		s.announceTokensRevoked(ctx, m.ev, t.ProjectID, []string{t.ID}, false)
	}
	return nil
}
