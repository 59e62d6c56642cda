package app

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/llm-proxy/llm-proxy/events"
	manageprojects "github.com/llm-proxy/llm-proxy/functions/manage-projects"
	managetokens "github.com/llm-proxy/llm-proxy/functions/manage-tokens"
	"github.com/llm-proxy/llm-proxy/shared/apiconfig"
	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/failbudget"
	"github.com/llm-proxy/llm-proxy/shared/httpcache"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/logging"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/management/mgmthttp"
	"github.com/llm-proxy/llm-proxy/shared/mgmtauth"
	"github.com/llm-proxy/llm-proxy/shared/process"
	"github.com/llm-proxy/llm-proxy/shared/redisconn"
	"github.com/llm-proxy/llm-proxy/shared/secrets"
	"github.com/llm-proxy/llm-proxy/shared/store"
	"github.com/llm-proxy/llm-proxy/shared/store/dbopen"
	"github.com/llm-proxy/llm-proxy/shared/store/migrate"
	"github.com/llm-proxy/llm-proxy/shared/tokens"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

// settingManagementTokenHash keeps the SHA-256 of a generated management
// token, so the next start accepts the same token without storing it.
const settingManagementTokenHash = "management_token_sha256"

const serveUsage = `usage: llm-proxy serve

Starts every function in one process: the proxy (/v1), the management API
(/manage), the admin UI (ADMIN_UI_PATH, default /admin), health (/health,
/ready, /live) and metrics (/metrics). It takes no arguments: it is configured
with environment variables (LISTEN_ADDR, DATA_DIR, DATABASE_PATH,
ENCRYPTION_KEY, MANAGEMENT_TOKEN, OPENAI_API_URL, …; see the README).
`

// runServe starts every function in one process on the embedded default.
func runServe(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	if len(args) > 0 {
		if isHelp(args[0]) {
			fmt.Fprint(stdout, serveUsage)
			return 0
		}
		fmt.Fprintf(stderr, "llm-proxy serve takes no arguments (configure it with environment variables), got %q (run `llm-proxy serve --help` for usage)\n", args)
		return 2
	}
	cfg, ok := loadConfig(ctx, lookupEnv, stderr)
	if !ok {
		return 1
	}
	log := logging.New(cfg.Log, stderr)
	defer logging.Flush(log)
	if err := serve(ctx, cfg, log, stdout); err != nil {
		log.Error("llm-proxy serve stopped", "error", err)
		fmt.Fprintln(stderr, "llm-proxy serve:", err)
		return 1
	}
	return 0
}

func serve(ctx context.Context, cfg config.Config, log *slog.Logger, stdout io.Writer) error {
	// ctx ends on SIGTERM or SIGINT (local/cmd/llm-proxy). Resources: the key, the migrated database, Redis when configured.
	key, err := serveEncryptionKey(cfg, log)
	if err != nil {
		return err
	}
	kr, err := secrets.KeyringFromConfig(cfg.Secrets, key)
	if err != nil {
		return err
	}
	if err := migrate.Up(ctx, cfg.Database.Driver, migrate.DSN(cfg.Database)); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	st, err := dbopen.Open(ctx, cfg.Database)
	if err != nil {
		return err
	}
	defer st.Close()
	if l, ok := st.(secrets.KeyIDLister); ok {
		if err := kr.CheckStore(ctx, l); err != nil {
			return err
		}
	}
	rdb := redisconn.New(cfg.Redis)
	if rdb != nil {
		defer rdb.Close()
	}
	verify, err := managementVerifier(ctx, cfg, st, stdout)
	if err != nil {
		return err
	}
	addr := cfg.Server.ServeAddr()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s (LISTEN_ADDR): %w", addr, err)
	}
	defer ln.Close()

	// Services shared by the functions this process hosts, each released
	// after the server drained, newest first.
	reg := prometheus.NewRegistry()
	emitter, stopEvents, err := startEvents(cfg, redisconn.Universal(rdb), reg, log)
	if err != nil {
		return err
	}
	defer stopEvents()
	api, err := apiconfig.Configured(cfg.Proxy, cfg.Upstream)
	if err != nil {
		return err
	}
	cache, err := httpcache.Open(cfg.Cache.WithPaths(api.CacheEndpoints...), redisconn.Universal(rdb), log)
	if err != nil {
		return fmt.Errorf("response cache: %w", err)
	}
	if cache != nil {
		reg.MustRegister(cache.Collectors()...)
		defer cache.Close()
	}
	inv := tokens.NewInvalidation(ctx, rdb, cfg.Redis.KeyPrefix+"tokens:invalidate", log)
	rec, err := audit.Open(cfg.Audit, st, kr, cfg.Server.TrustedProxyPrefixes(), log)
	if err != nil {
		return err
	}
	defer rec.Close()
	svc := management.New(management.Deps{
		Store: st, Keyring: kr, Invalidator: inv, Audit: rec, Log: log,
		Changes: events.Changes{Sink: emitter, Source: cfg.Events.SourceFor("serve")},
	})

	// The functions, on one mux.
	mux := http.NewServeMux()
	// One failure budget for every management route, shared with other
	// instances through Redis when it is configured.
	budget := mgmtauth.SharedBudget{Redis: redisconn.Universal(rdb), KeyPrefix: cfg.Redis.KeyPrefix, Metrics: failbudget.NewMetrics()}
	reg.MustRegister(budget.Metrics.Collectors()...)
	auth := mgmtauth.Shared(verify, cfg.Audit, rec, budget, log)
	var purger management.CachePurger
	if cache != nil {
		purger = cache
	}
	mgmthttp.Mount(mux, manageprojects.New(manageprojects.Deps{Service: svc, Auth: auth, Cache: purger, Log: log}), manageprojects.Paths())
	mgmthttp.Mount(mux, managetokens.New(managetokens.Deps{Service: svc, Auth: auth, Log: log}), managetokens.Paths())
	p, err := newProxy(ctx, cfg, proxyParts{store: st, keyring: kr, redis: rdb, api: api, inv: inv, cache: cache, events: emitter, reg: reg, log: log})
	if err != nil {
		return err
	}
	defer p.close()
	mux.Handle("/v1/", p.handler)
	if cfg.Proxy.EnableMetrics {
		p.handler.MetricsRoutes(mux, cfg.Proxy.MetricsPath, reg)
	}
	adminAtRoot, err := mountAdmin(mux, cfg, svc, st, kr, verify, budget, log)
	if err != nil {
		return err
	}
	if !adminAtRoot {
		mux.Handle("/", noRoute(log))
	}

	log.Info("llm-proxy serve listening", "addr", ln.Addr().String(), "db", cfg.Database.Driver)
	fmt.Fprintln(stdout, banner(ln.Addr(), cfg.Admin))
	checks := append(redisconn.Checks(rdb), web.Check{Name: "database", Check: st.Ping})
	return process.Serve(ctx, log, ln, web.Chain(log, mux), process.ServerOptions(cfg.Server, checks...))
}

// serveEncryptionKey is ENCRYPTION_KEY, else the key file in DATA_DIR
// (created, mode 0600, on the first start).
func serveEncryptionKey(cfg config.Config, log *slog.Logger) (string, error) {
	if cfg.Secrets.EncryptionKey != "" {
		path := filepath.Join(cfg.Server.DataDir, secrets.KeyFileName)
		if b, err := os.ReadFile(path); err == nil && strings.TrimSpace(string(b)) != strings.TrimSpace(cfg.Secrets.EncryptionKey) {
			log.Warn("ENCRYPTION_KEY is set and differs from the key file, which is ignored: if the database was written with the key file's key, "+
				"this start is refused; set ENCRYPTION_KEY to the file's key, or remove the file once nothing needs it", "path", path)
		}
		return cfg.Secrets.EncryptionKey, nil
	}
	key, created, err := secrets.LoadOrCreateKeyFile(cfg.Server.DataDir)
	if err != nil {
		return "", err
	}
	if created {
		log.Warn("ENCRYPTION_KEY is not set: created a random key file; back it up, upstream keys cannot be decrypted without it",
			"path", cfg.Server.DataDir+"/"+secrets.KeyFileName)
	}
	return key, nil
}

// restartTokenNote is what a start prints when it accepts the management
// token generated by an earlier start.
const restartTokenNote = "MANAGEMENT_TOKEN is not set: the token generated and printed on the first start is accepted " +
	"(only its hash is kept, in the database). Lost it? Set MANAGEMENT_TOKEN, or see the README's \"The management token\".\n"

// managementVerifier checks management tokens against MANAGEMENT_TOKEN, or,
// when it is unset, against a generated token whose hash is kept in the
// database. A generated token is printed once, on the start that creates it.
func managementVerifier(ctx context.Context, cfg config.Config, st store.Store, stdout io.Writer) (mgmtauth.Verifier, error) {
	if cfg.Server.ManagementToken != "" {
		return mgmtauth.StaticToken(cfg.Server.ManagementToken), nil
	}
	digest, err := st.GetSetting(ctx, settingManagementTokenHash)
	if err == nil {
		fmt.Fprint(stdout, restartTokenNote)
		return mgmtauth.SHA256Token(digest), nil
	}
	if !errors.Is(err, llmproxy.ErrNotFound) {
		return nil, fmt.Errorf("read management token: %w", err)
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return nil, err
	}
	token := "llmp_mgmt_" + base64.RawURLEncoding.EncodeToString(raw[:])
	sum := sha256.Sum256([]byte(token))
	digest = hex.EncodeToString(sum[:])
	if err := st.PutSetting(ctx, settingManagementTokenHash, digest); err != nil {
		return nil, fmt.Errorf("store management token hash: %w", err)
	}
	fmt.Fprintf(stdout, "\nMANAGEMENT_TOKEN was not set, so one was generated. It is shown only this once; only its hash is kept:\n\n    MANAGEMENT_TOKEN=%s\n\n", token)
	return mgmtauth.SHA256Token(digest), nil
}

// banner is what serve prints once it listens: the address actually bound
// and where the admin UI is, and a warning line when that address is every
// interface.
func banner(a net.Addr, admin config.Admin) string {
	line := "llm-proxy is listening on " + a.String()
	if admin.Enabled {
		line += " (admin UI: " + loopbackURL(a) + admin.ServePath() + "/)"
	}
	if tcp, ok := a.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		line += fmt.Sprintf("\n  on every interface, so reachable from the network; LISTEN_ADDR=127.0.0.1:%d keeps it to this machine", tcp.Port)
	}
	return line
}

// loopbackURL is the base URL at which this process reaches itself.
func loopbackURL(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return "http://" + a.String()
	}
	host := "127.0.0.1"
	if tcp.IP != nil && !tcp.IP.IsUnspecified() {
		host = tcp.IP.String()
	}
	return "http://" + net.JoinHostPort(host, fmt.Sprint(tcp.Port))
}

// noRoute answers unknown paths with the management API's JSON error.
func noRoute(log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		web.WriteError(w, r, log, llmproxy.E(llmproxy.ErrNotFound, llmproxy.CodeNotFound, "no route for "+r.URL.Path))
	})
}
