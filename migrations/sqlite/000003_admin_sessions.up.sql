-- SQLite: times are TEXT in UTC with fixed microsecond precision
-- (2006-01-02T15:04:05.000000Z), so they sort and compare as strings.
-- Admin UI sessions. The cookie carries a random id; only its SHA-256 is
-- stored (id_hash), so a copy of the table opens no session. A session ends
-- when its row is deleted (sign-out, sign out everywhere, expiry), on every
-- instance at once. token_fingerprint is an HMAC of the management token
-- the session was opened with: a session of another token is refused.
CREATE TABLE admin_sessions (
    id_hash           TEXT NOT NULL,
    csrf_token        TEXT NOT NULL,
    token_fingerprint TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    last_seen_at      TEXT NOT NULL,
    CONSTRAINT admin_sessions_pkey PRIMARY KEY (id_hash)
);
-- Expiry sweeps.
CREATE INDEX admin_sessions_created_at_idx ON admin_sessions (created_at);
CREATE INDEX admin_sessions_last_seen_at_idx ON admin_sessions (last_seen_at);
