-- SQLite: times are TEXT in UTC with fixed microsecond precision
-- (2006-01-02T15:04:05.000000Z), so they sort and compare as strings;
-- booleans are 0/1.
-- Projects own an upstream API key (encrypted) and the tokens issued for it.
CREATE TABLE projects (
    id                          TEXT        PRIMARY KEY,
    name                        TEXT        NOT NULL,
    api_key_encrypted           TEXT        NOT NULL,
    api_key_hint                TEXT        NOT NULL DEFAULT '',
    is_active                   INTEGER     NOT NULL DEFAULT 1,
    deactivated_at              TEXT,
    created_at                  TEXT        NOT NULL,
    updated_at                  TEXT        NOT NULL,
    requests_per_minute         INTEGER     NOT NULL DEFAULT 0,
    requests_per_day            INTEGER     NOT NULL DEFAULT 0,
    tokens_per_minute           INTEGER     NOT NULL DEFAULT 0,
    tokens_per_day              INTEGER     NOT NULL DEFAULT 0,
    default_requests_per_minute INTEGER     NOT NULL DEFAULT 0,
    default_requests_per_day    INTEGER     NOT NULL DEFAULT 0,
    default_tokens_per_minute   INTEGER     NOT NULL DEFAULT 0,
    default_tokens_per_day      INTEGER     NOT NULL DEFAULT 0,
    CONSTRAINT projects_name_key UNIQUE (name)
);
CREATE INDEX projects_active_name_idx ON projects (is_active, name);

-- Tokens are stored only as HMAC hashes.
CREATE TABLE tokens (
    id                  TEXT        PRIMARY KEY,
    token_hash          TEXT        NOT NULL,
    hint                TEXT        NOT NULL DEFAULT '',
    project_id          TEXT        NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    expires_at          TEXT,
    is_active           INTEGER     NOT NULL DEFAULT 1,
    deactivated_at      TEXT,
    request_count       INTEGER     NOT NULL DEFAULT 0,
    max_requests        INTEGER,
    created_at          TEXT        NOT NULL,
    last_used_at        TEXT,
    cache_hit_count     INTEGER     NOT NULL DEFAULT 0,
    requests_per_minute INTEGER     NOT NULL DEFAULT 0,
    requests_per_day    INTEGER     NOT NULL DEFAULT 0,
    tokens_per_minute   INTEGER     NOT NULL DEFAULT 0,
    tokens_per_day      INTEGER     NOT NULL DEFAULT 0,
    CONSTRAINT tokens_token_hash_key UNIQUE (token_hash)
);
CREATE INDEX tokens_created_idx ON tokens (created_at DESC, id);
CREATE INDEX tokens_project_created_idx ON tokens (project_id, created_at DESC, id);
CREATE INDEX tokens_active_expires_idx ON tokens (is_active, expires_at);

-- Audit events form a hash chain ordered by seq. details is the exact JSON
-- text that was hashed (TEXT on both engines, so reads and searches behave
-- identically).
CREATE TABLE audit_events (
    id             TEXT        PRIMARY KEY,
    seq            INTEGER     NOT NULL,
    timestamp      TEXT        NOT NULL,
    action         TEXT        NOT NULL,
    actor          TEXT        NOT NULL DEFAULT '',
    outcome        TEXT        NOT NULL,
    project_id     TEXT        NOT NULL DEFAULT '',
    token_id       TEXT        NOT NULL DEFAULT '',
    request_id     TEXT        NOT NULL DEFAULT '',
    correlation_id TEXT        NOT NULL DEFAULT '',
    client_ip      TEXT        NOT NULL DEFAULT '',
    method         TEXT        NOT NULL DEFAULT '',
    path           TEXT        NOT NULL DEFAULT '',
    user_agent     TEXT        NOT NULL DEFAULT '',
    reason         TEXT        NOT NULL DEFAULT '',
    details        TEXT,
    prev_hash      TEXT        NOT NULL DEFAULT '',
    hash           TEXT        NOT NULL,
    CONSTRAINT audit_events_seq_key UNIQUE (seq),
    CONSTRAINT audit_events_outcome_check CHECK (outcome IN ('success', 'failure', 'denied', 'error'))
);
CREATE INDEX audit_events_timestamp_idx ON audit_events (timestamp DESC, seq DESC);
CREATE INDEX audit_events_action_idx ON audit_events (action, timestamp DESC);
CREATE INDEX audit_events_outcome_idx ON audit_events (outcome, timestamp DESC);
CREATE INDEX audit_events_actor_idx ON audit_events (actor, timestamp DESC);
CREATE INDEX audit_events_project_idx ON audit_events (project_id, timestamp DESC);
CREATE INDEX audit_events_token_idx ON audit_events (token_id, timestamp DESC);
CREATE INDEX audit_events_client_ip_idx ON audit_events (client_ip, timestamp DESC);
CREATE INDEX audit_events_request_idx ON audit_events (request_id);
CREATE INDEX audit_events_path_idx ON audit_events (path, method);

-- Settings: small key/value facts of the installation (e.g. the hashed
-- generated management token).
CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
