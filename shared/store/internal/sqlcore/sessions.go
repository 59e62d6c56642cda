package sqlcore

import (
	"context"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/store"
)

var _ store.AdminSessions = (*Core)(nil)

// CreateAdminSession implements store.AdminSessions.
func (c *Core) CreateAdminSession(ctx context.Context, s store.AdminSession) error {
	err := c.db.WriteTx(ctx, func(q Querier) error {
		_, err := q.Exec(ctx, c.q(`INSERT INTO admin_sessions (id_hash, csrf_token, token_fingerprint, created_at, last_seen_at)
			VALUES (?, ?, ?, ?, ?)`), s.IDHash, s.CSRF, s.TokenFingerprint, c.t(s.CreatedAt), c.t(s.LastSeenAt))
		return err
	})
	return c.translate("create admin session", "admin session", err)
}

// GetAdminSession implements store.AdminSessions.
func (c *Core) GetAdminSession(ctx context.Context, idHash string) (store.AdminSession, error) {
	var s store.AdminSession
	err := c.db.Reader().QueryRow(ctx, c.q(`SELECT id_hash, csrf_token, token_fingerprint, created_at, last_seen_at
		FROM admin_sessions WHERE id_hash = ?`), idHash).
		Scan(&s.IDHash, &s.CSRF, &s.TokenFingerprint, timeDst{&s.CreatedAt}, timeDst{&s.LastSeenAt})
	if err != nil {
		return store.AdminSession{}, c.translate("get admin session", "admin session", err)
	}
	return s, nil
}

// TouchAdminSession implements store.AdminSessions.
func (c *Core) TouchAdminSession(ctx context.Context, idHash string, seen time.Time) error {
	var n int64
	err := c.db.WriteTx(ctx, func(q Querier) error {
		var err error
		n, err = q.Exec(ctx, c.q(`UPDATE admin_sessions SET last_seen_at = CASE WHEN last_seen_at < ? THEN ? ELSE last_seen_at END
			WHERE id_hash = ?`), c.t(seen), c.t(seen), idHash)
		return err
	})
	if err == nil && n == 0 {
		return notFound("admin session")
	}
	return c.translate("touch admin session", "admin session", err)
}

// DeleteAdminSession implements store.AdminSessions.
func (c *Core) DeleteAdminSession(ctx context.Context, idHash string) error {
	err := c.db.WriteTx(ctx, func(q Querier) error {
		_, err := q.Exec(ctx, c.q(`DELETE FROM admin_sessions WHERE id_hash = ?`), idHash)
		return err
	})
	return c.translate("delete admin session", "admin session", err)
}

// DeleteAdminSessions implements store.AdminSessions.
func (c *Core) DeleteAdminSessions(ctx context.Context, p store.AdminSessionPurge) (int, error) {
	var or where
	if !p.All {
		if p.KeepFingerprint != "" {
			or.add(`token_fingerprint <> ?`, p.KeepFingerprint)
		}
		if !p.CreatedBefore.IsZero() {
			or.add(`created_at < ?`, c.t(p.CreatedBefore))
		}
		if !p.SeenBefore.IsZero() {
			or.add(`last_seen_at < ?`, c.t(p.SeenBefore))
		}
		if len(or.conds) == 0 {
			return 0, nil
		}
	}
	query := `DELETE FROM admin_sessions`
	if len(or.conds) > 0 {
		query += ` WHERE ` + joinOr(or.conds)
	}
	var n int64
	err := c.db.WriteTx(ctx, func(q Querier) error {
		var err error
		n, err = q.Exec(ctx, c.q(query), or.args...)
		return err
	})
	return int(n), c.translate("delete admin sessions", "admin session", err)
}

func joinOr(conds []string) string {
	out := "(" + conds[0] + ")"
	for _, cond := range conds[1:] {
		out += " OR (" + cond + ")"
	}
	return out
}
