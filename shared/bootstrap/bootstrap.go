// Package bootstrap builds the dependencies that the function mains and
// `llm-proxy serve` share from the configuration: the store, the keyring, the
// Redis client, token validation with its invalidation bus, the management
// service and its authentication, the limiter, the response cache and the
// event emitter. It only wires; every part lives in its own package.
//
// Nothing here performs network I/O: the PostgreSQL pool and the Redis client
// dial on first use, so a function is listening within milliseconds of exec.
package bootstrap

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/events"
	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/httpcache"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/mgmtauth"
	"github.com/llm-proxy/llm-proxy/shared/ratelimit"
	"github.com/llm-proxy/llm-proxy/shared/redisconn"
	"github.com/llm-proxy/llm-proxy/shared/secrets"
	"github.com/llm-proxy/llm-proxy/shared/store"
	"github.com/llm-proxy/llm-proxy/shared/store/dbopen"
	"github.com/llm-proxy/llm-proxy/shared/tokens"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

// Deps are the shared dependencies of one process. Close releases them in
// reverse order of creation.
type Deps struct {
	Config   config.Config
	Log      *slog.Logger
	Store    store.Store
	Keyring  *secrets.Keyring
	Redis    *redis.Client // nil without REDIS_ADDR
	Registry *prometheus.Registry

	closers []func(ctx context.Context)
}

// Options adjust Open.
type Options struct {
	// EncryptionKey overrides ENCRYPTION_KEY (llm-proxy serve passes its key
	// file's key). Empty: ENCRYPTION_KEY is required.
	EncryptionKey string
}

// Open builds the store, keyring and Redis client. It fails with a clear
// message when ENCRYPTION_KEY is missing or invalid.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger, o Options) (*Deps, error) {
	key := o.EncryptionKey
	if key == "" {
		key = cfg.Secrets.EncryptionKey
	}
	if key == "" {
		return nil, secrets.ErrNoEncryptionKey
	}
	kr, err := secrets.NewKeyring(key, secrets.SplitKeys(cfg.Secrets.EncryptionKeyPrevious))
	if err != nil {
		return nil, err
	}
	st, err := dbopen.Open(ctx, cfg.Database)
	if err != nil {
		return nil, err
	}
	d := &Deps{Config: cfg, Log: log, Store: st, Keyring: kr, Registry: prometheus.NewRegistry()}
	d.onClose(func(context.Context) { _ = st.Close() })
	if d.Redis = redisconn.New(cfg.Redis); d.Redis != nil {
		d.onClose(func(context.Context) { _ = d.Redis.Close() })
	}
	return d, nil
}

func (d *Deps) onClose(f func(ctx context.Context)) { d.closers = append(d.closers, f) }

// OnClose registers f to run on Close; hooks run newest first, so a part
// registered before another is closed after it.
func (d *Deps) OnClose(f func(ctx context.Context)) { d.onClose(f) }

// Close releases everything Open and the builders created, newest first.
func (d *Deps) Close(ctx context.Context) {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i](ctx)
	}
	d.closers = nil
}

// RedisClient is Redis as the interface other packages take: nil (not a
// typed nil) without REDIS_ADDR.
func (d *Deps) RedisClient() redis.UniversalClient {
	if d.Redis == nil {
		return nil
	}
	return d.Redis
}

// Checks are the readiness checks: the database, and Redis when configured.
func (d *Deps) Checks() []web.Check {
	checks := []web.Check{{Name: "database", Check: d.Store.Ping}}
	if d.Redis != nil {
		checks = append(checks, web.Check{Name: "redis", Check: func(ctx context.Context) error { return d.Redis.Ping(ctx).Err() }})
	}
	return checks
}

// Invalidation is the token-invalidation bus and the subscription hook of
// local validators.
type Invalidation struct {
	tokens.Invalidator
	Subscribe func(v *tokens.Validator)
}

// Invalidation returns the Redis pub/sub bus when Redis is configured (every
// instance drops revoked tokens within a second), else an in-process bus.
// The Redis subscriber runs until ctx ends.
func (d *Deps) Invalidation(ctx context.Context) Invalidation {
	if d.Redis == nil {
		bus := tokens.NewLocalBus()
		return Invalidation{Invalidator: bus, Subscribe: bus.Subscribe}
	}
	bus := tokens.NewRedisBus(d.Redis, d.Config.Redis.KeyPrefix+"tokens:invalidate", d.Log)
	go func() {
		if err := bus.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			d.Log.Error("token invalidation subscriber stopped", "error", err)
		}
	}()
	return Invalidation{Invalidator: bus, Subscribe: bus.Subscribe}
}

// Validator returns a token validator subscribed to inv.
func (d *Deps) Validator(inv Invalidation) *tokens.Validator {
	t := d.Config.Tokens
	v := tokens.NewValidator(d.Store, d.Keyring, tokens.ValidatorOptions{
		PositiveTTL: t.CacheTTL, NegativeTTL: t.NegativeCacheTTL, MaxEntries: t.CacheMaxEntries,
	})
	inv.Subscribe(v)
	return v
}

// UsageBatcher returns the background writer of request counters; it runs
// until ctx ends and is flushed by Close.
func (d *Deps) UsageBatcher(ctx context.Context) *tokens.UsageBatcher {
	t := d.Config.Tokens
	b := tokens.NewUsageBatcher(d.Store.AddUsage, tokens.UsageOptions{
		FlushInterval: t.UsageFlushInterval, MaxPending: t.UsageMaxPending, Logger: d.Log,
	})
	go b.Run(ctx)
	d.onClose(func(ctx context.Context) {
		if err := b.Close(ctx); err != nil {
			d.Log.Error("flush usage counters", "error", err)
		}
	})
	return b
}

// Audit returns the audit recorder configured by AUDIT_*.
func (d *Deps) Audit() (*audit.Recorder, error) {
	a := d.Config.Audit
	rec, err := audit.NewRecorder(audit.Options{
		Store: d.Store, Disabled: !a.Enabled, StoreInDB: a.StoreInDB, File: a.LogFile, CreateDir: a.CreateDir,
		TrustedProxies: d.Config.Server.TrustedProxyPrefixes(), Log: d.Log,
	})
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	d.onClose(func(context.Context) { _ = rec.Close() })
	return rec, nil
}

// Management returns the management service of function fn. Its change
// events (project updated, token created/revoked) go to em; nil emits none.
func (d *Deps) Management(fn string, rec *audit.Recorder, inv tokens.Invalidator, em *events.Emitter) *management.Service {
	deps := management.Deps{Store: d.Store, Keyring: d.Keyring, Invalidator: inv, Audit: rec, Log: d.Log,
		EventSource: d.Config.Events.SourceFor(fn)}
	if em != nil {
		deps.Events = em
	}
	return management.New(deps)
}

// ManagementAuth authenticates management requests with verify.
func (d *Deps) ManagementAuth(verify mgmtauth.Verifier, rec *audit.Recorder, actor string) *mgmtauth.Auth {
	return mgmtauth.New(verify, mgmtauth.Options{
		Recorder: rec, ActorName: actor, FailureLimit: d.Config.Audit.AuthFailureLimit,
		FailureWindow: d.Config.Audit.AuthFailureWindow, Log: d.Log,
	})
}

// Limiter returns the limiter RATE_LIMIT_BACKEND selects: Redis (wrapped
// with the failure policy and an in-memory fallback) or in-memory.
func (d *Deps) Limiter() (ratelimit.Limiter, error) {
	metrics := ratelimit.NewMetrics()
	d.Registry.MustRegister(metrics.Collectors()...)
	mem := ratelimit.NewMemory(ratelimit.MemoryOptions{})
	if !d.Config.Limits.UseRedis(d.Config.Redis.Addr) {
		return ratelimit.Instrumented(mem, metrics), nil
	}
	if d.Redis == nil {
		return nil, errors.New("RATE_LIMIT_BACKEND=redis needs REDIS_ADDR")
	}
	policy, err := ratelimit.ParsePolicy(d.Config.Limits.FailurePolicy)
	if err != nil {
		return nil, err
	}
	primary := ratelimit.NewRedis(d.Redis, d.Config.Redis.KeyPrefix+"rl:", ratelimit.RedisOptions{Lease: d.Config.Limits.Lease, Log: d.Log, Metrics: metrics})
	// Unused leases go back to Redis before its client closes.
	d.onClose(func(ctx context.Context) {
		if err := primary.Close(ctx); err != nil {
			d.Log.Warn("rate limit leases not given back", "error", err.Error())
		}
	})
	f := ratelimit.WithFallback(primary, mem, policy, d.Log, metrics)
	f.Cooldown = d.Config.Limits.FailureCooldown
	return f, nil
}

// Cache returns the response cache, or nil when HTTP_CACHE_ENABLED=false.
// extraPaths are POST endpoints the operator enabled for caching in the
// provider file (cache_endpoints), added to HTTP_CACHE_PATHS.
func (d *Deps) Cache(extraPaths ...string) (*httpcache.Cache, error) {
	cfg := d.Config.Cache
	if len(extraPaths) > 0 {
		cfg.Paths = strings.Join(append(cfg.PathList(), extraPaths...), ",")
	}
	c, err := httpcache.Open(cfg, d.RedisClient(), d.Log)
	if err != nil || c == nil {
		return nil, err
	}
	d.Registry.MustRegister(c.Collectors()...)
	d.onClose(func(context.Context) { _ = c.Close() })
	return c, nil
}

// Emitter returns the event emitter of function fn publishing to pub; Close
// drains it. pub nil selects the publisher LLM_PROXY_EVENT_BUS names (a
// standalone function treats the default in-process bus as http when K_SINK
// is set, and as none otherwise).
func (d *Deps) Emitter(fn string, pub events.Publisher) (*events.Emitter, error) {
	if pub == nil {
		cfg := d.Config.Events
		if cfg.Bus == "in-process" {
			cfg.Bus = "none"
			if cfg.Sink != "" {
				cfg.Bus = "http"
			}
		}
		var err error
		pub, err = events.NewPublisher(cfg, events.PublisherDeps{Redis: d.RedisClient()})
		if err != nil {
			return nil, err
		}
	}
	e := events.NewEmitter(pub, events.EmitterOptionsFrom(d.Config, fn, d.Registry), d.Log)
	d.onClose(func(ctx context.Context) {
		if err := e.Close(ctx); err != nil {
			d.Log.Error("drain event queue", "error", err)
		}
	})
	return e, nil
}

// AdminConfig is ADMIN_UI_* with the session key derived from the keyring
// when ADMIN_UI_SESSION_KEY is unset (stable across restarts and replicas).
func (d *Deps) AdminConfig() (config.Admin, error) {
	c := d.Config.Admin
	if c.SessionKey != "" {
		return c, nil
	}
	k, err := d.Keyring.DeriveKey("admin-ui-session")
	if err != nil {
		return c, err
	}
	c.SessionKey = hex.EncodeToString(k)
	return c, nil
}

// Shutdown runs Close with a bounded context.
func (d *Deps) Shutdown(timeout time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	d.Close(ctx)
}
