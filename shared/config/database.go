package config

import "time"

// Database selects and tunes the store engine.
type Database struct {
	Driver          string        `env:"DB_DRIVER, default=sqlite" desc:"sqlite (embedded default) or postgres."`
	URL             string        `env:"DATABASE_URL" desc:"PostgreSQL connection string, required when DB_DRIVER=postgres."`
	Path            string        `env:"DATABASE_PATH, default=./data/llm-proxy.db" desc:"SQLite database file."`
	PoolSize        int32         `env:"DATABASE_POOL_SIZE, default=10" desc:"Maximum open connections (PostgreSQL pool size; SQLite read connections, beside one write connection)."`
	MaxIdleConns    int32         `env:"DATABASE_MAX_IDLE_CONNS, default=5" desc:"SQLite read connections kept open when idle. PostgreSQL opens connections on first use (no dial at start) and closes idle ones after 30 minutes, so it keeps no minimum."`
	ConnMaxLifetime time.Duration `env:"DATABASE_CONN_MAX_LIFETIME, default=1h" desc:"Maximum lifetime of a connection."`
	QueryTimeout    time.Duration `env:"DATABASE_QUERY_TIMEOUT, default=5s" desc:"Deadline of every database call (a read, or a whole write transaction), connecting included: a database that does not answer in time gives 503, never a hang (see docs/guarantees.md)."`
}

func (d Database) validate() error {
	if err := oneOf("DB_DRIVER", d.Driver, "sqlite", "postgres"); err != nil {
		return err
	}
	if d.Driver == "postgres" && d.URL == "" {
		return invalid("DATABASE_URL", "required when DB_DRIVER=postgres", `""`)
	}
	if d.Driver == "sqlite" && d.Path == "" {
		return invalid("DATABASE_PATH", "required when DB_DRIVER=sqlite", `""`)
	}
	if d.PoolSize < 1 {
		return invalid("DATABASE_POOL_SIZE", "must be at least 1", d.PoolSize)
	}
	if d.MaxIdleConns < 0 {
		return invalid("DATABASE_MAX_IDLE_CONNS", "must not be negative", d.MaxIdleConns)
	}
	if d.ConnMaxLifetime < 0 {
		return invalid("DATABASE_CONN_MAX_LIFETIME", "must not be negative", d.ConnMaxLifetime)
	}
	if d.QueryTimeout <= 0 {
		return invalid("DATABASE_QUERY_TIMEOUT", "must be positive", d.QueryTimeout)
	}
	return nil
}

// Redis is the shared Redis connection (token invalidation, limits, cache,
// events). Empty Addr means no Redis: in-process parts are used.
type Redis struct {
	Addr     string        `env:"REDIS_ADDR" desc:"Redis address host:port. Empty: no Redis (single-process parts). Required by the standalone proxy for cross-instance limits and revocation."`
	DB       int           `env:"REDIS_DB, default=0" desc:"Redis database number."`
	Password string        `env:"REDIS_PASSWORD" desc:"Redis password (never logged)."`
	Timeout  time.Duration `env:"REDIS_TIMEOUT, default=500ms" desc:"Dial, read and write timeout for Redis calls."`
	// KeyPrefix namespaces every key and channel llm-proxy uses, so several
	// deployments (or tests) can share one Redis.
	KeyPrefix string `env:"REDIS_KEY_PREFIX, default=llmproxy:" desc:"Prefix of every Redis key and channel llm-proxy uses (the cache has its own REDIS_CACHE_KEY_PREFIX)."`
}

func (r Redis) validate() error {
	if r.DB < 0 {
		return invalid("REDIS_DB", "must not be negative", r.DB)
	}
	return nil
}

// Secrets holds the encryption keys.
type Secrets struct {
	EncryptionKey         string `env:"ENCRYPTION_KEY" desc:"Base64 of 32 random bytes (openssl rand -base64 32): encrypts upstream keys (AES-256-GCM) and keys token hashes (HMAC). Required by the standalone functions; llm-proxy serve creates DATA_DIR/encryption.key when unset."`
	EncryptionKeyPrevious string `env:"ENCRYPTION_KEY_PREVIOUS" desc:"Comma-separated previous keys, still readable during rotation (see llm-proxy migrate rotate-keys)."`
}

func (s Secrets) validate() error { return nil } // decoded and checked by shared/secrets at start
