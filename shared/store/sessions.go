package store

import (
	"context"
	"time"
)

// AdminSession is one signed-in admin UI session. The cookie carries a
// random id; the store keeps only IDHash (its hex SHA-256).
type AdminSession struct {
	IDHash string
	// CSRF is the session's form token.
	CSRF string
	// TokenFingerprint identifies the management token the session was
	// opened with (an HMAC of it, never the token).
	TokenFingerprint string
	CreatedAt        time.Time
	LastSeenAt       time.Time
}

// AdminSessionPurge selects sessions to delete: every one when All; else
// those opened under another token than KeepFingerprint (when set), created
// before CreatedBefore or last seen before SeenBefore (when non-zero).
type AdminSessionPurge struct {
	All             bool
	KeepFingerprint string
	CreatedBefore   time.Time
	SeenBefore      time.Time
}

// AdminSessions keeps admin UI sessions, shared by every instance on the
// database.
type AdminSessions interface {
	// CreateAdminSession inserts s; a duplicate IDHash is ErrConflict.
	CreateAdminSession(ctx context.Context, s AdminSession) error
	// GetAdminSession returns ErrNotFound for an unknown (or ended) session.
	GetAdminSession(ctx context.Context, idHash string) (AdminSession, error)
	// TouchAdminSession sets LastSeenAt (never backwards); ErrNotFound for
	// an unknown session.
	TouchAdminSession(ctx context.Context, idHash string, seen time.Time) error
	// DeleteAdminSession ends one session (no error when it is unknown).
	DeleteAdminSession(ctx context.Context, idHash string) error
	// DeleteAdminSessions ends the sessions p selects and returns how many.
	DeleteAdminSessions(ctx context.Context, p AdminSessionPurge) (int, error)
}
