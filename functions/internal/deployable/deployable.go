// Package deployable opens what the deployable functions that hold data
// stand on (the proxy and the three management functions): the keyring of
// ENCRYPTION_KEY, the PostgreSQL store and, when REDIS_ADDR is set, the
// Redis client; and it serves a function's handler on :$PORT with the
// process runtime, ready when the database and Redis answer. Only the
// function mains import it.
package deployable

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"

	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/process"
	"github.com/llm-proxy/llm-proxy/shared/redisconn"
	"github.com/llm-proxy/llm-proxy/shared/secrets"
	"github.com/llm-proxy/llm-proxy/shared/store/postgres"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

// Resources are a function's keyring, store and Redis client.
type Resources struct {
	Keyring *secrets.Keyring
	Store   *postgres.Store
	Redis   *redis.Client // nil without REDIS_ADDR
}

// Open builds the resources; Close releases them after the server drained.
// Nothing here dials: the pool and the client connect on first use, so a
// function listens within milliseconds of exec.
func Open(ctx context.Context, cfg config.Config) (*Resources, error) {
	kr, err := secrets.KeyringFromConfig(cfg.Secrets, "")
	if err != nil {
		return nil, err
	}
	st, err := postgres.Open(ctx, cfg.Database)
	if err != nil {
		return nil, err
	}
	return &Resources{Keyring: kr, Store: st, Redis: redisconn.New(cfg.Redis)}, nil
}

// RedisClient is Redis as the interface other packages take: nil (not a
// typed nil) without REDIS_ADDR.
func (r *Resources) RedisClient() redis.UniversalClient { return redisconn.Universal(r.Redis) }

// Close closes the Redis client and the database pool.
func (r *Resources) Close() {
	if r.Redis != nil {
		_ = r.Redis.Close()
	}
	r.Store.Close()
}

// Serve serves h on :$PORT until ctx ends, then drains (process.Serve);
// readiness checks the database and Redis. Beside serving, one query checks
// that ENCRYPTION_KEY and ENCRYPTION_KEY_PREVIOUS can read the database's
// upstream keys: keys that cannot (every token would answer 401) stop the
// function with secrets.ErrWrongKey. It runs after the listener is up, so
// a cold start never waits on the database; a database that does not
// answer yet is readiness's business, not a reason to stop.
func (r *Resources) Serve(ctx context.Context, cfg config.Config, log *slog.Logger, h http.Handler) error {
	ln, err := net.Listen("tcp", process.FunctionAddr(cfg.Server))
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go func() {
		if err := r.Keyring.CheckStore(ctx, r.Store); errors.Is(err, secrets.ErrWrongKey) {
			stop(err)
		}
	}()
	checks := append([]web.Check{{Name: "database", Check: r.Store.Ping}}, redisconn.Checks(r.Redis)...)
	err = process.Serve(ctx, log, ln, web.Chain(log, h), process.ServerOptions(cfg.Server, checks...))
	if cause := context.Cause(ctx); errors.Is(cause, secrets.ErrWrongKey) {
		return cause
	}
	return err
}
