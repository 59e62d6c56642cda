package sqlcore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/store"
)

// Core implements store.Store over a DB and a Dialect.
type Core struct {
	db  DB
	d   *Dialect
	now func() time.Time

	auditKey atomic.Pointer[llmproxy.AuditKey] // seals appended records; nil: legacy, unkeyed
}

// SetAuditKey implements store.Store.
func (c *Core) SetAuditKey(k llmproxy.AuditKey) {
	if !k.Keyed() {
		c.auditKey.Store(nil)
		return
	}
	c.auditKey.Store(&k)
}

// sealKey is the key that seals the next record (zero: unkeyed).
func (c *Core) sealKey() llmproxy.AuditKey {
	if k := c.auditKey.Load(); k != nil {
		return *k
	}
	return llmproxy.AuditKey{}
}

var _ store.Store = (*Core)(nil)

// New returns the store over db.
func New(db DB, d Dialect) *Core {
	return &Core{db: db, d: &d, now: func() time.Time { return Micro(time.Now()) }}
}

// auditFailureTimeout bounds the write of a failure record, which runs even
// when the caller's context is already done.
const auditFailureTimeout = 5 * time.Second

const (
	projectCols = `id, name, api_key_encrypted, api_key_hint, is_active, deactivated_at, created_at, updated_at,
	requests_per_minute, requests_per_day, tokens_per_minute, tokens_per_day,
	default_requests_per_minute, default_requests_per_day, default_tokens_per_minute, default_tokens_per_day`
	tokenCols = `id, token_hash, hint, project_id, expires_at, is_active, deactivated_at, request_count,
	max_requests, created_at, last_used_at, cache_hit_count,
	requests_per_minute, requests_per_day, tokens_per_minute, tokens_per_day`
	auditCols = `id, seq, timestamp, action, actor, outcome, project_id, token_id, request_id, correlation_id,
	client_ip, method, path, user_agent, reason, details, prev_hash, hash, key_id`
)

func scanProject(r Row) (llmproxy.Project, error) {
	var p llmproxy.Project
	err := r.Scan(&p.ID, &p.Name, &p.APIKeyEncrypted, &p.APIKeyHint, boolDst{&p.IsActive},
		nullTimeDst{&p.DeactivatedAt}, timeDst{&p.CreatedAt}, timeDst{&p.UpdatedAt},
		&p.Limits.RequestsPerMinute, &p.Limits.RequestsPerDay, &p.Limits.TokensPerMinute, &p.Limits.TokensPerDay,
		&p.TokenDefaults.RequestsPerMinute, &p.TokenDefaults.RequestsPerDay,
		&p.TokenDefaults.TokensPerMinute, &p.TokenDefaults.TokensPerDay)
	return p, err
}

func scanToken(r Row) (llmproxy.Token, error) {
	var t llmproxy.Token
	err := r.Scan(&t.ID, &t.Hash, &t.Hint, &t.ProjectID, nullTimeDst{&t.ExpiresAt}, boolDst{&t.IsActive},
		nullTimeDst{&t.DeactivatedAt}, &t.RequestCount, nullInt64Dst{&t.MaxRequests}, timeDst{&t.CreatedAt},
		nullTimeDst{&t.LastUsedAt}, &t.CacheHitCount,
		&t.Limits.RequestsPerMinute, &t.Limits.RequestsPerDay, &t.Limits.TokensPerMinute, &t.Limits.TokensPerDay)
	return t, err
}

func scanAudit(r Row) (llmproxy.AuditEvent, error) {
	var e llmproxy.AuditEvent
	var details string
	err := r.Scan(&e.ID, &e.Seq, timeDst{&e.Timestamp}, &e.Action, &e.Actor, &e.Outcome, &e.ProjectID,
		&e.TokenID, &e.RequestID, &e.CorrelationID, &e.ClientIP, &e.Method, &e.Path, &e.UserAgent, &e.Reason,
		nullStringDst{&details}, &e.PrevHash, &e.Hash, &e.KeyID)
	if err != nil {
		return e, err
	}
	e.Details, err = decodeDetails(details)
	return e, err
}

// q rebinds placeholders for the engine.
func (c *Core) q(query string) string { return c.d.rebind(query) }

func (c *Core) t(t time.Time) any { return c.d.Time(Micro(t)) }

func (c *Core) nt(t *time.Time) any {
	if t == nil || t.IsZero() {
		return nil
	}
	return c.d.Time(Micro(*t))
}

func nullInt(n *int64) any {
	if n == nil || *n == 0 {
		return nil
	}
	return *n
}

func limitArgs(l llmproxy.Limits) []any {
	return []any{l.RequestsPerMinute, l.RequestsPerDay, l.TokensPerMinute, l.TokensPerDay}
}

// write runs fn in a write transaction and, when audit is set, appends its
// record: in the same transaction on success, on its own after a failure.
func (c *Core) write(ctx context.Context, op, entity string, fn func(q Querier) error, audit func(error) llmproxy.AuditEvent) error {
	err := c.db.WriteTx(ctx, func(q Querier) error {
		if err := fn(q); err != nil {
			return c.translate(op, entity, err)
		}
		if audit != nil {
			if _, err := c.appendAudit(ctx, q, audit(nil)); err != nil {
				return c.translate(op+": append audit", "audit event", err)
			}
		}
		return nil
	})
	if err == nil {
		return nil
	}
	err = c.translate(op, entity, err)
	if audit != nil {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditFailureTimeout)
		defer cancel()
		if _, aerr := c.AppendAudit(actx, audit(err)); aerr != nil && !errors.Is(err, llmproxy.ErrUnavailable) {
			// The mutation's error is what the caller acts on; the lost
			// record is reported in its text (logged, never shown).
			err = fmt.Errorf("%w (audit record of the failure not written: %v)", err, aerr)
		}
	}
	return err
}

// ---- projects

// CreateProject implements store.Store.
func (c *Core) CreateProject(ctx context.Context, p llmproxy.Project, audit store.AuditFunc) (llmproxy.Project, error) {
	now := c.now()
	if p.ID == "" {
		p.ID = uuid.NewString()
	}
	if p.CreatedAt.IsZero() {
		p.CreatedAt = now
	}
	p.CreatedAt = Micro(p.CreatedAt)
	if p.UpdatedAt.IsZero() {
		p.UpdatedAt = p.CreatedAt
	}
	p.UpdatedAt = Micro(p.UpdatedAt)
	switch {
	case p.IsActive:
		p.DeactivatedAt = nil
	case p.DeactivatedAt == nil:
		p.DeactivatedAt = &now
	default:
		d := Micro(*p.DeactivatedAt)
		p.DeactivatedAt = &d
	}
	err := c.write(ctx, "create project", "project", func(q Querier) error {
		args := []any{p.ID, p.Name, p.APIKeyEncrypted, p.APIKeyHint, p.IsActive, c.nt(p.DeactivatedAt), c.t(p.CreatedAt), c.t(p.UpdatedAt)}
		args = append(args, limitArgs(p.Limits)...)
		args = append(args, limitArgs(p.TokenDefaults)...)
		_, err := q.Exec(ctx, c.q(`INSERT INTO projects (`+projectCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`), args...)
		return err
	}, auditFunc(audit))
	if err != nil {
		return llmproxy.Project{}, err
	}
	return p, nil
}

func auditFunc(a store.AuditFunc) func(error) llmproxy.AuditEvent {
	if a == nil {
		return nil
	}
	return a
}

// GetProject implements store.Store.
func (c *Core) GetProject(ctx context.Context, id string) (llmproxy.Project, error) {
	p, err := scanProject(c.db.Reader().QueryRow(ctx, c.q(`SELECT `+projectCols+` FROM projects WHERE id = ?`), id))
	if err != nil {
		return llmproxy.Project{}, c.translate("get project", "project", err)
	}
	return p, nil
}

// ListProjects implements store.Store.
func (c *Core) ListProjects(ctx context.Context, f store.ProjectFilter) ([]llmproxy.Project, int, error) {
	var w where
	if f.Search != "" {
		w.add(`lower(name) LIKE ? ESCAPE '\'`, likePattern(f.Search))
	}
	if f.ActiveOnly {
		w.add(`is_active = ?`, true)
	}
	out := []llmproxy.Project{}
	total, err := c.list(ctx, "projects", w, "name, id", f.Page, func(r Row) error {
		p, err := scanProject(r)
		out = append(out, p)
		return err
	}, projectCols)
	if err != nil {
		return nil, 0, c.translate("list projects", "project", err)
	}
	return out, total, nil
}

// list counts the rows of table matching w and scans one page of them.
func (c *Core) list(ctx context.Context, table string, w where, order string, page store.Page, scan func(Row) error, cols string) (int, error) {
	r := c.db.Reader()
	var total int64
	if err := r.QueryRow(ctx, c.q(`SELECT count(*) FROM `+table+w.sql()), w.args...).Scan(&total); err != nil {
		return 0, err
	}
	if total == 0 || page.Offset() >= int(total) {
		return int(total), nil
	}
	args := append(slices.Clip(w.args), page.Limit(), page.Offset())
	rows, err := r.Query(ctx, c.q(`SELECT `+cols+` FROM `+table+w.sql()+` ORDER BY `+order+` LIMIT ? OFFSET ?`), args...)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return 0, err
		}
	}
	return int(total), rows.Err()
}

// UpdateProject implements store.Store.
func (c *Core) UpdateProject(ctx context.Context, id string, u store.ProjectUpdate, audit func(p llmproxy.Project, r store.RevokeResult, err error) llmproxy.AuditEvent) (llmproxy.Project, store.RevokeResult, error) {
	var (
		p llmproxy.Project
		r store.RevokeResult
	)
	var af func(error) llmproxy.AuditEvent
	if audit != nil {
		af = func(err error) llmproxy.AuditEvent {
			if err != nil {
				return audit(llmproxy.Project{ID: id}, store.RevokeResult{}, err)
			}
			return audit(p, r, nil)
		}
	}
	if u.RevokeTokens && (u.IsActive == nil || *u.IsActive) {
		err := llmproxy.E(llmproxy.ErrInvalid, llmproxy.CodeInvalidRequest, "revoke_tokens requires is_active=false")
		if af != nil {
			_, _ = c.AppendAudit(ctx, af(err))
		}
		return llmproxy.Project{}, r, err
	}
	err := c.write(ctx, "update project", "project", func(q Querier) error {
		cur, err := scanProject(q.QueryRow(ctx, c.q(`SELECT `+projectCols+` FROM projects WHERE id = ?`+c.d.ForUpdate), id))
		if err != nil {
			return c.translate("update project", "project", err)
		}
		now := c.now()
		if u.Name != nil {
			cur.Name = *u.Name
		}
		if u.APIKeyEncrypted != nil {
			cur.APIKeyEncrypted = *u.APIKeyEncrypted
		}
		if u.APIKeyHint != nil {
			cur.APIKeyHint = *u.APIKeyHint
		}
		if u.Limits != nil {
			cur.Limits = *u.Limits
		}
		if u.TokenDefaults != nil {
			cur.TokenDefaults = *u.TokenDefaults
		}
		if u.IsActive != nil {
			switch {
			case *u.IsActive:
				cur.IsActive, cur.DeactivatedAt = true, nil
			case cur.IsActive || cur.DeactivatedAt == nil:
				cur.IsActive, cur.DeactivatedAt = false, &now
			}
		}
		cur.UpdatedAt = now
		args := []any{cur.Name, cur.APIKeyEncrypted, cur.APIKeyHint, cur.IsActive, c.nt(cur.DeactivatedAt), c.t(cur.UpdatedAt)}
		args = append(args, limitArgs(cur.Limits)...)
		args = append(args, limitArgs(cur.TokenDefaults)...)
		args = append(args, id)
		if _, err := q.Exec(ctx, c.q(`UPDATE projects SET name = ?, api_key_encrypted = ?, api_key_hint = ?, is_active = ?,
			deactivated_at = ?, updated_at = ?,
			requests_per_minute = ?, requests_per_day = ?, tokens_per_minute = ?, tokens_per_day = ?,
			default_requests_per_minute = ?, default_requests_per_day = ?, default_tokens_per_minute = ?, default_tokens_per_day = ?
			WHERE id = ?`), args...); err != nil {
			return err
		}
		if u.RevokeTokens {
			if r, err = c.revokeTokens(ctx, q, id, now); err != nil {
				return err
			}
		}
		p = cur
		return nil
	}, af)
	if err != nil {
		return llmproxy.Project{}, store.RevokeResult{}, err
	}
	return p, r, nil
}

func (c *Core) revokeTokens(ctx context.Context, q Querier, projectID string, now time.Time) (store.RevokeResult, error) {
	var r store.RevokeResult
	rows, err := q.Query(ctx, c.q(`UPDATE tokens SET is_active = ?, deactivated_at = ? WHERE project_id = ? AND is_active = ? RETURNING id`),
		false, c.t(now), projectID, true)
	if err != nil {
		return r, err
	}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return r, err
		}
		r.TokenIDs = append(r.TokenIDs, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return r, err
	}
	n := len(r.TokenIDs)
	var total int64
	if err := q.QueryRow(ctx, c.q(`SELECT count(*) FROM tokens WHERE project_id = ?`), projectID).Scan(&total); err != nil {
		return r, err
	}
	r.Total, r.Revoked = int(total), int(n)
	r.AlreadyRevoked = r.Total - r.Revoked
	return r, nil
}

// RevokeProjectTokens implements store.Store.
func (c *Core) RevokeProjectTokens(ctx context.Context, projectID string, audit func(r store.RevokeResult, err error) llmproxy.AuditEvent) (store.RevokeResult, error) {
	var r store.RevokeResult
	var af func(error) llmproxy.AuditEvent
	if audit != nil {
		af = func(err error) llmproxy.AuditEvent {
			if err != nil {
				return audit(store.RevokeResult{}, err)
			}
			return audit(r, nil)
		}
	}
	err := c.write(ctx, "revoke project tokens", "project", func(q Querier) error {
		var one int64
		if err := q.QueryRow(ctx, c.q(`SELECT 1 FROM projects WHERE id = ?`+c.d.ForShare), projectID).Scan(&one); err != nil {
			return c.translate("revoke project tokens", "project", err)
		}
		var err error
		r, err = c.revokeTokens(ctx, q, projectID, c.now())
		return err
	}, af)
	if err != nil {
		return store.RevokeResult{}, err
	}
	return r, nil
}

// ---- tokens

// CreateToken implements store.Store. The token's limits are stored as
// given (zero is unlimited); applying the project's token defaults is the
// management service's rule.
func (c *Core) CreateToken(ctx context.Context, t llmproxy.Token, audit store.AuditFunc) (llmproxy.Token, error) {
	now := c.now()
	if t.ID == "" {
		t.ID = uuid.NewString()
	}
	if t.CreatedAt.IsZero() {
		t.CreatedAt = now
	}
	t.CreatedAt = Micro(t.CreatedAt)
	if t.ExpiresAt != nil {
		if t.ExpiresAt.IsZero() {
			t.ExpiresAt = nil
		} else {
			e := Micro(*t.ExpiresAt)
			t.ExpiresAt = &e
		}
	}
	if t.LastUsedAt != nil {
		l := Micro(*t.LastUsedAt)
		t.LastUsedAt = &l
	}
	if t.MaxRequests != nil && *t.MaxRequests == 0 {
		t.MaxRequests = nil
	}
	switch {
	case t.IsActive:
		t.DeactivatedAt = nil
	case t.DeactivatedAt == nil:
		t.DeactivatedAt = &now
	default:
		d := Micro(*t.DeactivatedAt)
		t.DeactivatedAt = &d
	}
	err := c.write(ctx, "create token", "token", func(q Querier) error {
		var active bool
		err := q.QueryRow(ctx, c.q(`SELECT is_active FROM projects WHERE id = ?`+c.d.ForShare), t.ProjectID).
			Scan(boolDst{&active})
		if err != nil {
			return c.translate("create token", "project", err)
		}
		if !active {
			return llmproxy.E(llmproxy.ErrForbidden, llmproxy.CodeProjectInactive, "cannot create tokens for inactive projects")
		}
		args := []any{t.ID, t.Hash, t.Hint, t.ProjectID, c.nt(t.ExpiresAt), t.IsActive, c.nt(t.DeactivatedAt), t.RequestCount,
			nullInt(t.MaxRequests), c.t(t.CreatedAt), c.nt(t.LastUsedAt), t.CacheHitCount}
		args = append(args, limitArgs(t.Limits)...)
		_, err = q.Exec(ctx, c.q(`INSERT INTO tokens (`+tokenCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`), args...)
		return err
	}, auditFunc(audit))
	if err != nil {
		return llmproxy.Token{}, err
	}
	return t, nil
}

// GetToken implements store.Store.
func (c *Core) GetToken(ctx context.Context, id string) (llmproxy.Token, error) {
	t, err := scanToken(c.db.Reader().QueryRow(ctx, c.q(`SELECT `+tokenCols+` FROM tokens WHERE id = ?`), id))
	if err != nil {
		return llmproxy.Token{}, c.translate("get token", "token", err)
	}
	return t, nil
}

// GetTokenByHash implements store.Store.
func (c *Core) GetTokenByHash(ctx context.Context, hash string) (llmproxy.Token, error) {
	t, err := scanToken(c.db.Reader().QueryRow(ctx, c.q(`SELECT `+tokenCols+` FROM tokens WHERE token_hash = ?`), hash))
	if err != nil {
		return llmproxy.Token{}, c.translate("get token by hash", "token", err)
	}
	return t, nil
}

// ListTokens implements store.Store.
func (c *Core) ListTokens(ctx context.Context, f store.TokenFilter) ([]llmproxy.Token, int, error) {
	var w where
	if f.ProjectID != "" {
		w.add(`project_id = ?`, f.ProjectID)
	}
	if f.ActiveOnly {
		w.add(`is_active = ? AND (expires_at IS NULL OR expires_at > ?)`, true, c.t(c.now()))
	}
	out := []llmproxy.Token{}
	total, err := c.list(ctx, "tokens", w, "created_at DESC, id", f.Page, func(r Row) error {
		t, err := scanToken(r)
		out = append(out, t)
		return err
	}, tokenCols)
	if err != nil {
		return nil, 0, c.translate("list tokens", "token", err)
	}
	return out, total, nil
}

// UpdateToken implements store.Store.
func (c *Core) UpdateToken(ctx context.Context, id string, u store.TokenUpdate, audit func(t llmproxy.Token, err error) llmproxy.AuditEvent) (llmproxy.Token, error) {
	var t llmproxy.Token
	var af func(error) llmproxy.AuditEvent
	if audit != nil {
		af = func(err error) llmproxy.AuditEvent {
			if err != nil {
				return audit(llmproxy.Token{ID: id}, err)
			}
			return audit(t, nil)
		}
	}
	err := c.write(ctx, "update token", "token", func(q Querier) error {
		cur, err := scanToken(q.QueryRow(ctx, c.q(`SELECT `+tokenCols+` FROM tokens WHERE id = ?`+c.d.ForUpdate), id))
		if err != nil {
			return c.translate("update token", "token", err)
		}
		now := c.now()
		if u.IsActive != nil {
			switch {
			case *u.IsActive:
				cur.IsActive, cur.DeactivatedAt = true, nil
			case cur.IsActive || cur.DeactivatedAt == nil:
				cur.IsActive, cur.DeactivatedAt = false, &now
			}
		}
		if u.MaxRequests != nil {
			cur.MaxRequests = nil
			if *u.MaxRequests != 0 {
				n := *u.MaxRequests
				cur.MaxRequests = &n
			}
		}
		if u.ExpiresAt != nil {
			cur.ExpiresAt = nil
			if !u.ExpiresAt.IsZero() {
				e := Micro(*u.ExpiresAt)
				cur.ExpiresAt = &e
			}
		}
		if u.Limits != nil {
			cur.Limits = *u.Limits
		}
		args := []any{cur.IsActive, c.nt(cur.DeactivatedAt), nullInt(cur.MaxRequests), c.nt(cur.ExpiresAt)}
		args = append(args, limitArgs(cur.Limits)...)
		args = append(args, id)
		if _, err := q.Exec(ctx, c.q(`UPDATE tokens SET is_active = ?, deactivated_at = ?, max_requests = ?, expires_at = ?,
			requests_per_minute = ?, requests_per_day = ?, tokens_per_minute = ?, tokens_per_day = ?
			WHERE id = ?`), args...); err != nil {
			return err
		}
		t = cur
		return nil
	}, af)
	if err != nil {
		return llmproxy.Token{}, err
	}
	return t, nil
}

// RevokeToken implements store.Store.
func (c *Core) RevokeToken(ctx context.Context, id string, audit func(t llmproxy.Token, alreadyRevoked bool, err error) llmproxy.AuditEvent) (llmproxy.Token, bool, error) {
	var (
		t       llmproxy.Token
		already bool
	)
	var af func(error) llmproxy.AuditEvent
	if audit != nil {
		af = func(err error) llmproxy.AuditEvent {
			if err != nil {
				return audit(llmproxy.Token{ID: id}, false, err)
			}
			return audit(t, already, nil)
		}
	}
	err := c.write(ctx, "revoke token", "token", func(q Querier) error {
		cur, err := scanToken(q.QueryRow(ctx, c.q(`SELECT `+tokenCols+` FROM tokens WHERE id = ?`+c.d.ForUpdate), id))
		if err != nil {
			return c.translate("revoke token", "token", err)
		}
		if !cur.IsActive {
			t, already = cur, true
			return nil
		}
		now := c.now()
		cur.IsActive, cur.DeactivatedAt = false, &now
		if _, err := q.Exec(ctx, c.q(`UPDATE tokens SET is_active = ?, deactivated_at = ? WHERE id = ?`), false, c.t(now), id); err != nil {
			return err
		}
		t = cur
		return nil
	}, af)
	if err != nil {
		return llmproxy.Token{}, false, err
	}
	return t, already, nil
}

// AddUsage implements store.Store. Deltas are merged per token and per
// (project, hour), and applied in a fixed order (tokens by id, then hourly
// rows by project and hour), so concurrent batches cannot deadlock each
// other. Hourly usage counts only the deltas of tokens that exist.
func (c *Core) AddUsage(ctx context.Context, deltas []store.UsageDelta) error {
	merged := make(map[string]store.UsageDelta, len(deltas))
	for _, d := range deltas {
		if d.TokenID == "" {
			continue
		}
		m := merged[d.TokenID]
		m.TokenID = d.TokenID
		m.Requests += d.Requests
		m.CacheHits += d.CacheHits
		if d.LastUsedAt.After(m.LastUsedAt) {
			m.LastUsedAt = d.LastUsedAt
		}
		merged[d.TokenID] = m
	}
	if len(merged) == 0 {
		return nil
	}
	ordered := make([]store.UsageDelta, 0, len(merged))
	for _, d := range merged {
		ordered = append(ordered, d)
	}
	slices.SortFunc(ordered, func(a, b store.UsageDelta) int { return cmp.Compare(a.TokenID, b.TokenID) })
	now := c.now()
	err := c.db.WriteTx(ctx, func(q Querier) error {
		exists := make(map[string]bool, len(ordered))
		for _, d := range ordered {
			var n int64
			var err error
			if d.LastUsedAt.IsZero() {
				n, err = q.Exec(ctx, c.q(`UPDATE tokens SET request_count = request_count + ?, cache_hit_count = cache_hit_count + ? WHERE id = ?`),
					d.Requests, d.CacheHits, d.TokenID)
			} else {
				at := c.t(d.LastUsedAt)
				n, err = q.Exec(ctx, c.q(`UPDATE tokens SET request_count = request_count + ?, cache_hit_count = cache_hit_count + ?,
					last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < ? THEN ? ELSE last_used_at END WHERE id = ?`),
					d.Requests, d.CacheHits, at, at, d.TokenID)
			}
			if err != nil {
				return err
			}
			exists[d.TokenID] = n > 0
		}
		for _, h := range hourlyDeltas(deltas, exists, now) {
			_, err := q.Exec(ctx, c.q(`INSERT INTO usage_hourly (project_id, hour, requests, cache_hits, prompt_tokens, completion_tokens)
				VALUES (?, ?, ?, ?, ?, ?)
				ON CONFLICT (project_id, hour) DO UPDATE SET
					requests = usage_hourly.requests + excluded.requests,
					cache_hits = usage_hourly.cache_hits + excluded.cache_hits,
					prompt_tokens = usage_hourly.prompt_tokens + excluded.prompt_tokens,
					completion_tokens = usage_hourly.completion_tokens + excluded.completion_tokens`),
				h.ProjectID, c.t(h.hour), h.Requests, h.CacheHits, h.PromptTokens, h.CompletionTokens)
			if err != nil {
				return err
			}
		}
		return nil
	})
	return c.translate("add usage", "token", err)
}

// hourlyUsage is one usage_hourly increment.
type hourlyUsage struct {
	store.ProjectUsage
	hour time.Time
}

// hourlyDeltas merges the deltas with a project, of tokens that exist, per
// (project, hour of LastUsedAt or now), ordered by project and hour. Deltas
// that count nothing are left out.
func hourlyDeltas(deltas []store.UsageDelta, exists map[string]bool, now time.Time) []hourlyUsage {
	type key struct {
		project string
		hour    int64
	}
	merged := map[key]*hourlyUsage{}
	for _, d := range deltas {
		if d.ProjectID == "" || !exists[d.TokenID] ||
			d.Requests == 0 && d.CacheHits == 0 && d.PromptTokens == 0 && d.CompletionTokens == 0 {
			continue
		}
		at := d.LastUsedAt
		if at.IsZero() {
			at = now
		}
		hour := store.Hour(at)
		k := key{d.ProjectID, hour.Unix()}
		h, ok := merged[k]
		if !ok {
			h = &hourlyUsage{ProjectUsage: store.ProjectUsage{ProjectID: d.ProjectID}, hour: hour}
			merged[k] = h
		}
		h.Requests += d.Requests
		h.CacheHits += d.CacheHits
		h.PromptTokens += d.PromptTokens
		h.CompletionTokens += d.CompletionTokens
	}
	out := make([]hourlyUsage, 0, len(merged))
	for _, h := range merged {
		out = append(out, *h)
	}
	slices.SortFunc(out, func(a, b hourlyUsage) int {
		return cmp.Or(cmp.Compare(a.ProjectID, b.ProjectID), a.hour.Compare(b.hour))
	})
	return out
}

// ProjectUsage implements store.Store.
func (c *Core) ProjectUsage(ctx context.Context, since time.Time) ([]store.ProjectUsage, error) {
	rows, err := c.db.Reader().Query(ctx, c.q(`SELECT project_id, CAST(SUM(requests) AS BIGINT), CAST(SUM(cache_hits) AS BIGINT),
		CAST(SUM(prompt_tokens) AS BIGINT), CAST(SUM(completion_tokens) AS BIGINT)
		FROM usage_hourly WHERE hour >= ? GROUP BY project_id ORDER BY project_id`), c.t(store.Hour(since)))
	if err != nil {
		return nil, c.translate("project usage", "usage", err)
	}
	defer rows.Close()
	out := []store.ProjectUsage{}
	for rows.Next() {
		var u store.ProjectUsage
		if err := rows.Scan(&u.ProjectID, &u.Requests, &u.CacheHits, &u.PromptTokens, &u.CompletionTokens); err != nil {
			return nil, c.translate("project usage", "usage", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, c.translate("project usage", "usage", err)
	}
	return out, nil
}

// ---- audit

// AppendAudit implements store.Store.
func (c *Core) AppendAudit(ctx context.Context, e llmproxy.AuditEvent) (llmproxy.AuditEvent, error) {
	var out llmproxy.AuditEvent
	err := c.db.WriteTx(ctx, func(q Querier) error {
		var err error
		out, err = c.appendAudit(ctx, q, e)
		return err
	})
	if err != nil {
		return llmproxy.AuditEvent{}, c.translate("append audit", "audit event", err)
	}
	return out, nil
}

// appendAudit links e to the end of the chain inside the transaction q.
func (c *Core) appendAudit(ctx context.Context, q Querier, e llmproxy.AuditEvent) (llmproxy.AuditEvent, error) {
	switch e.Outcome {
	case llmproxy.OutcomeSuccess, llmproxy.OutcomeFailure, llmproxy.OutcomeDenied, llmproxy.OutcomeError:
	default:
		return e, llmproxy.E(llmproxy.ErrInvalid, llmproxy.CodeInvalidRequest, fmt.Sprintf("invalid audit outcome %q", e.Outcome))
	}
	if e.ID == "" {
		e.ID = uuid.NewString()
	}
	e = e.Bounded()
	if e.Timestamp.IsZero() {
		e.Timestamp = c.now()
	}
	e.Timestamp = Micro(e.Timestamp)
	details, text, err := normaliseDetails(e.Details)
	if err != nil {
		return e, err
	}
	e.Details = details
	if err := c.d.LockAudit(ctx, q); err != nil {
		return e, err
	}
	var prevSeq int64
	var prevHash string
	err = q.QueryRow(ctx, `SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1`).Scan(&prevSeq, &prevHash)
	if err != nil {
		if k, _ := c.d.Classify(err); k != KindNotFound {
			return e, err
		}
		prevSeq, prevHash = 0, ""
	}
	e.Seq = prevSeq + 1
	e = e.Seal(prevHash, c.sealKey())
	_, err = q.Exec(ctx, c.q(`INSERT INTO audit_events (`+auditCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
		e.ID, e.Seq, c.t(e.Timestamp), e.Action, e.Actor, e.Outcome, e.ProjectID, e.TokenID, e.RequestID, e.CorrelationID,
		e.ClientIP, e.Method, e.Path, e.UserAgent, e.Reason, text, e.PrevHash, e.Hash, e.KeyID)
	return e, err
}

// normaliseDetails returns details as they will read back (a JSON round
// trip with numbers kept exact) and their JSON text (nil for NULL), so the
// hash computed now matches the hash recomputed from the stored record.
func normaliseDetails(d map[string]any) (map[string]any, any, error) {
	if d == nil {
		return nil, nil, nil
	}
	b, err := json.Marshal(d)
	if err != nil {
		return nil, nil, llmproxy.Wrap(llmproxy.ErrInvalid, llmproxy.CodeInvalidRequest, "audit details are not JSON-encodable", err)
	}
	out, err := decodeDetails(string(b))
	if err != nil {
		return nil, nil, err
	}
	return out, string(b), nil
}

func decodeDetails(s string) (map[string]any, error) {
	if s == "" {
		return nil, nil
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("decode audit details: %w", err)
	}
	return m, nil
}

// GetAudit implements store.Store.
func (c *Core) GetAudit(ctx context.Context, id string) (llmproxy.AuditEvent, error) {
	e, err := scanAudit(c.db.Reader().QueryRow(ctx, c.q(`SELECT `+auditCols+` FROM audit_events WHERE id = ?`), id))
	if err != nil {
		return llmproxy.AuditEvent{}, c.translate("get audit event", "audit event", err)
	}
	return e, nil
}

// ListAudit implements store.Store.
func (c *Core) ListAudit(ctx context.Context, f store.AuditFilter) ([]llmproxy.AuditEvent, int, error) {
	var w where
	for _, ex := range []struct{ col, v string }{
		{"action", f.Action}, {"outcome", f.Outcome}, {"actor", f.Actor}, {"project_id", f.ProjectID},
		{"token_id", f.TokenID}, {"client_ip", f.ClientIP}, {"request_id", f.RequestID},
		{"method", f.Method}, {"path", f.Path},
	} {
		if ex.v != "" {
			w.add(ex.col+` = ?`, ex.v)
		}
	}
	if f.Since != nil {
		w.add(`timestamp >= ?`, c.t(*f.Since))
	}
	if f.Until != nil {
		w.add(`timestamp <= ?`, c.t(*f.Until))
	}
	if f.Search != "" {
		p := likePattern(f.Search)
		cols := []string{"id", "action", "actor", "outcome", "project_id", "token_id", "request_id", "correlation_id",
			"client_ip", "method", "path", "user_agent", "reason", "COALESCE(details, '')"}
		conds := make([]string, len(cols))
		args := make([]any, len(cols))
		for i, col := range cols {
			conds[i] = `lower(` + col + `) LIKE ? ESCAPE '\'`
			args[i] = p
		}
		w.add(`(`+strings.Join(conds, " OR ")+`)`, args...)
	}
	out := []llmproxy.AuditEvent{}
	total, err := c.list(ctx, "audit_events", w, "timestamp DESC, seq DESC", f.Page, func(r Row) error {
		e, err := scanAudit(r)
		out = append(out, e)
		return err
	}, auditCols)
	if err != nil {
		return nil, 0, c.translate("list audit events", "audit event", err)
	}
	return out, total, nil
}

// auditChainPage is how many records AuditChain reads per query.
const auditChainPage = 500

// AuditChain implements store.Store. It reads in pages by seq and calls fn
// outside any open result set.
func (c *Core) AuditChain(ctx context.Context, fn func(llmproxy.AuditEvent) error) error {
	var after int64
	for {
		page := make([]llmproxy.AuditEvent, 0, auditChainPage)
		rows, err := c.db.Reader().Query(ctx, c.q(`SELECT `+auditCols+` FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?`), after, auditChainPage)
		if err != nil {
			return c.translate("read audit chain", "audit event", err)
		}
		for rows.Next() {
			e, err := scanAudit(rows)
			if err != nil {
				rows.Close()
				return c.translate("read audit chain", "audit event", err)
			}
			page = append(page, e)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return c.translate("read audit chain", "audit event", err)
		}
		for _, e := range page {
			if err := fn(e); err != nil {
				return err
			}
		}
		if len(page) < auditChainPage {
			return nil
		}
		after = page[len(page)-1].Seq
	}
}

// ---- keys and settings

// ReencryptProjectKeys implements store.Store.
func (c *Core) ReencryptProjectKeys(ctx context.Context, reencrypt func(ciphertext string) (string, bool, error)) (int, error) {
	changed := 0
	err := c.db.WriteTx(ctx, func(q Querier) error {
		changed = 0
		type key struct{ id, ct string }
		var keys []key
		rows, err := q.Query(ctx, `SELECT id, api_key_encrypted FROM projects ORDER BY id`+c.d.ForUpdate)
		if err != nil {
			return err
		}
		for rows.Next() {
			var k key
			if err := rows.Scan(&k.id, &k.ct); err != nil {
				rows.Close()
				return err
			}
			keys = append(keys, k)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return err
		}
		for _, k := range keys {
			ct, ok, err := reencrypt(k.ct)
			if err != nil {
				return fmt.Errorf("re-encrypt the key of project %s: %w", k.id, err)
			}
			if !ok || ct == k.ct {
				continue
			}
			if _, err := q.Exec(ctx, c.q(`UPDATE projects SET api_key_encrypted = ? WHERE id = ?`), ct, k.id); err != nil {
				return err
			}
			changed++
		}
		return nil
	})
	if err != nil {
		return 0, c.translate("re-encrypt project keys", "project", err)
	}
	return changed, nil
}

// GetSetting implements store.Store.
func (c *Core) GetSetting(ctx context.Context, key string) (string, error) {
	var v string
	if err := c.db.Reader().QueryRow(ctx, c.q(`SELECT value FROM settings WHERE key = ?`), key).Scan(&v); err != nil {
		return "", c.translate("get setting", "setting", err)
	}
	return v, nil
}

// PutSetting implements store.Store.
func (c *Core) PutSetting(ctx context.Context, key, value string) error {
	err := c.db.WriteTx(ctx, func(q Querier) error {
		_, err := q.Exec(ctx, c.q(`INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`), key, value)
		return err
	})
	return c.translate("put setting", "setting", err)
}

// Ping implements store.Store.
func (c *Core) Ping(ctx context.Context) error {
	return c.translate("ping", "database", c.db.Ping(ctx))
}

// Close implements store.Store.
func (c *Core) Close() error { return c.db.Close() }

// ---- query building

type where struct {
	conds []string
	args  []any
}

func (w *where) add(cond string, args ...any) {
	w.conds = append(w.conds, cond)
	w.args = append(w.args, args...)
}

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// likePattern is a case-insensitive substring pattern for LIKE … ESCAPE '\'
// against lower(column).
func likePattern(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return "%" + r.Replace(strings.ToLower(s)) + "%"
}
