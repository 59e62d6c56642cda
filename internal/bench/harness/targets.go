package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/llm-proxy/llm-proxy/internal/bench/upstream"
)

// Target names, in the order of the issue.
const (
	Direct   = "direct"   // (a) the mock upstream itself
	Bare     = "bare"     // (b) httputil.ReverseProxy, forward only
	Serve    = "serve"    // (c) llm-proxy serve: SQLite, in-memory parts
	Function = "function" // (d) the proxy function: PostgreSQL and Redis
)

// AllTargets lists every target.
var AllTargets = []string{Direct, Bare, Serve, Function}

var targetLabels = map[string]string{
	Direct:   "(a) upstream directly",
	Bare:     "(b) bare httputil.ReverseProxy",
	Serve:    "(c) llm-proxy serve (SQLite, in-memory)",
	Function: "(d) proxy function (PostgreSQL, Redis)",
}

// target is one system under test, restarted every round.
type target struct {
	name  string
	url   string // base URL, no trailing slash
	key   string // bearer the client sends
	proc  *proc  // nil for direct (its process is the shared upstream)
	start func(ctx context.Context) error
}

func (t *target) pid(e *env) int {
	if t.proc != nil {
		return t.proc.pid()
	}
	return e.upstream.pid()
}

func (t *target) stop() {
	if t.proc != nil {
		t.proc.stop(5 * time.Second)
		t.proc = nil
	}
}

// env is what every round shares: binaries, the upstream, secrets, paths.
type env struct {
	o           Options
	dir         string
	bins        map[string]string
	upstream    *proc
	upstreamURL string
	upstreamKey string
	apiConfig   string
	encKey      string
	mgmtToken   string
	runID       string

	serveDir   string
	serveToken string

	pgAdminURL string
	pgDB       string
	pgURL      string
	redisPfx   string
	fnToken    string

	unknownToken string
	roundNo      int
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func newEnv(o Options, dir string, bins map[string]string) *env {
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	id := randomHex(4)
	return &env{
		o: o, dir: dir, bins: bins, runID: id,
		upstreamKey: "sk-bench-" + randomHex(8),
		encKey:      base64.StdEncoding.EncodeToString(k),
		mgmtToken:   "bench-mgmt-" + randomHex(16),
		redisPfx:    "llmproxy-bench-" + id + ":",
	}
}

// startUpstream starts the mock upstream and writes the API file pointing
// the proxies at it.
func (e *env) startUpstream(ctx context.Context) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := startProc("mockupstream", e.bins["mockupstream"],
		[]string{"-addr", addr, "-key", e.upstreamKey, "-chunks", strconv.Itoa(e.o.StreamChunks)}, nil, e.dir)
	if err != nil {
		return err
	}
	e.upstream, e.upstreamURL = p, "http://"+addr
	if err := waitHTTP(ctx, p, e.upstreamURL+"/_bench/stats", 10*time.Second); err != nil {
		return err
	}
	e.apiConfig = filepath.Join(e.dir, "apis.yaml")
	yaml := fmt.Sprintf(`default_api: openai
apis:
  openai:
    base_url: %s
    allowed_endpoints: [/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/responses, /v1/models]
    allowed_methods: [GET, POST, OPTIONS]
`, e.upstreamURL)
	return os.WriteFile(e.apiConfig, []byte(yaml), 0o600)
}

func (e *env) upstreamStats(ctx context.Context) (upstream.Stats, error) {
	var st upstream.Stats
	err := getJSON(ctx, e.upstreamURL+"/_bench/stats", &st)
	return st, err
}

func (e *env) setStreamDelay(ctx context.Context, d time.Duration) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, e.upstreamURL+"/_bench/delay?d="+d.String(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("set stream delay: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("set stream delay: status %d", resp.StatusCode)
	}
	return nil
}

// proxyEnv is the configuration every llm-proxy process shares: features on.
func (e *env) proxyEnv() []string {
	return append(e.runtimeEnv(),
		"ENCRYPTION_KEY="+e.encKey,
		"MANAGEMENT_TOKEN="+e.mgmtToken,
		"API_CONFIG_PATH="+e.apiConfig,
		"HTTP_CACHE_ENABLED=true",
		"ENABLE_METRICS=true",
		"LOG_LEVEL="+e.o.TargetLogLevel,
		"LOG_FORMAT=json",
		"ADMIN_UI_ENABLED=false",
	)
}

// runtimeEnv is the Go runtime settings of every proxy process: none,
// unless the run asks for GC traces.
func (e *env) runtimeEnv() []string {
	if e.o.GCTrace {
		return []string{"GODEBUG=gctrace=1"}
	}
	return nil
}

func (e *env) newTarget(name string) *target {
	t := &target{name: name}
	switch name {
	case Direct:
		t.start = func(context.Context) error { t.url, t.key = e.upstreamURL, e.upstreamKey; return nil }
	case Bare:
		t.start = func(ctx context.Context) error {
			port, err := freePort()
			if err != nil {
				return err
			}
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			p, err := startProc("bareproxy", e.bins["bareproxy"], []string{"-addr", addr, "-upstream", e.upstreamURL}, e.runtimeEnv(), e.dir)
			if err != nil {
				return err
			}
			t.proc, t.url, t.key = p, "http://"+addr, e.upstreamKey
			return waitTCP(ctx, p, addr)
		}
	case Serve:
		t.start = func(ctx context.Context) error { return e.startServe(ctx, t) }
	case Function:
		t.start = func(ctx context.Context) error { return e.startFunction(ctx, t) }
	}
	return t
}

func waitTCP(ctx context.Context, p *proc, addr string) error {
	return waitHTTP(ctx, p, "http://"+addr+"/_bench/stats", 10*time.Second) // forwarded to the upstream
}

// serveEnv is llm-proxy serve on SQLite with in-memory limiter, cache and
// the in-process event broker delivering to a file dispatcher.
func (e *env) serveEnv(addr string) []string {
	return append(e.proxyEnv(),
		"LISTEN_ADDR="+addr,
		"DATA_DIR="+e.serveDir,
		"DATABASE_PATH="+filepath.Join(e.serveDir, "llm-proxy.db"),
		"LLM_PROXY_EVENT_BUS=in-process",
		"FILE_EVENT_LOG="+filepath.Join(e.serveDir, "events.jsonl"),
		"RATE_LIMIT_BACKEND=memory",
		"HTTP_CACHE_BACKEND=in-memory",
	)
}

// withTargetEnv appends the run's -env settings, which win over the
// defaults (the last setting of a variable is the one a process sees).
func (e *env) withTargetEnv(env []string) []string {
	return append(env, e.o.TargetEnv...)
}

func (e *env) startServe(ctx context.Context, t *target) error {
	if e.serveDir == "" {
		e.serveDir = filepath.Join(e.dir, "serve")
		if err := os.MkdirAll(e.serveDir, 0o700); err != nil {
			return err
		}
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p, err := startProc("serve", e.bins["llm-proxy"], []string{"serve"}, e.withTargetEnv(e.serveEnv(addr)), e.dir)
	if err != nil {
		return err
	}
	t.proc, t.url = p, "http://"+addr
	if err := waitHTTP(ctx, p, t.url+"/health", 30*time.Second); err != nil {
		return err
	}
	if e.serveToken == "" {
		tok, err := e.issueToken(ctx, t.url)
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		e.serveToken = tok
	}
	t.key = e.serveToken
	return nil
}

// functionEnv is the standalone proxy function on PostgreSQL and Redis:
// Redis limiter, Redis cache, Redis Streams events, Redis invalidation.
func (e *env) functionEnv() []string {
	return append(e.proxyEnv(),
		"DB_DRIVER=postgres",
		"DATABASE_URL="+e.pgURL,
		"REDIS_ADDR="+e.o.RedisAddr,
		"REDIS_KEY_PREFIX="+e.redisPfx,
		"RATE_LIMIT_BACKEND=redis",
		"HTTP_CACHE_BACKEND=redis",
		"REDIS_CACHE_KEY_PREFIX="+e.redisPfx+"cache:",
		"LLM_PROXY_EVENT_BUS=redis-streams",
		"REDIS_STREAM_KEY="+e.redisPfx+"events",
	)
}

// prepareFunction creates the database, migrates it and issues a token
// through a short-lived llm-proxy serve on the same database and Redis.
func (e *env) prepareFunction(ctx context.Context) error {
	e.pgDB = "llmproxy_bench_" + e.runID
	if err := pgExec(ctx, e.o.PostgresURL, "CREATE DATABASE "+e.pgDB); err != nil {
		e.pgDB = ""
		return fmt.Errorf("create database: %w", err)
	}
	u, err := url.Parse(e.o.PostgresURL)
	if err != nil {
		return err
	}
	u.Path = "/" + e.pgDB
	e.pgURL = u.String()
	mig := runCmd(ctx, e.bins["llm-proxy"], []string{"migrate", "up"}, append(e.functionEnv(), "DATA_DIR="+filepath.Join(e.dir, "fn-setup")))
	if mig != nil {
		return fmt.Errorf("migrate: %w", mig)
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	setupEnv := append(e.functionEnv(), "LISTEN_ADDR="+addr, "DATA_DIR="+filepath.Join(e.dir, "fn-setup"), "LLM_PROXY_EVENT_BUS=none")
	p, err := startProc("function-setup", e.bins["llm-proxy"], []string{"serve"}, setupEnv, e.dir)
	if err != nil {
		return err
	}
	defer p.stop(5 * time.Second)
	if err := waitHTTP(ctx, p, "http://"+addr+"/health", 30*time.Second); err != nil {
		return err
	}
	tok, err := e.issueToken(ctx, "http://"+addr)
	if err != nil {
		return fmt.Errorf("function setup: %w", err)
	}
	e.fnToken = tok
	return nil
}

func (e *env) startFunction(ctx context.Context, t *target) error {
	if e.fnToken == "" {
		if err := e.prepareFunction(ctx); err != nil {
			return err
		}
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	p, err := startProc("function", e.bins["proxy"], nil, e.withTargetEnv(append(e.functionEnv(), "PORT="+strconv.Itoa(port))), e.dir)
	if err != nil {
		return err
	}
	t.proc, t.url, t.key = p, fmt.Sprintf("http://127.0.0.1:%d", port), e.fnToken
	return waitHTTP(ctx, p, t.url+"/health", 30*time.Second)
}

// cleanup drops the database and the Redis keys of the run.
func (e *env) cleanup(ctx context.Context) error {
	var errs []error
	if e.pgDB != "" {
		if err := pgExec(ctx, e.o.PostgresURL, "DROP DATABASE IF EXISTS "+e.pgDB+" WITH (FORCE)"); err != nil {
			errs = append(errs, fmt.Errorf("drop database %s: %w", e.pgDB, err))
		}
	}
	if e.fnToken != "" || e.pgDB != "" {
		rdb := redis.NewClient(&redis.Options{Addr: e.o.RedisAddr})
		defer rdb.Close()
		iter := rdb.Scan(ctx, 0, e.redisPfx+"*", 1000).Iterator()
		var keys []string
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if err := iter.Err(); err != nil {
			errs = append(errs, fmt.Errorf("scan redis keys: %w", err))
		}
		for len(keys) > 0 {
			n := min(len(keys), 500)
			if err := rdb.Del(ctx, keys[:n]...).Err(); err != nil {
				errs = append(errs, fmt.Errorf("delete redis keys: %w", err))
				break
			}
			keys = keys[n:]
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("cleanup: %v", errs)
	}
	return nil
}

func pgExec(ctx context.Context, dsn, sql string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	_, err = conn.Exec(ctx, sql)
	return err
}

// issueToken creates a project holding the upstream key and a token with
// generous limits (so the limiter runs on every request but never denies).
func (e *env) issueToken(ctx context.Context, base string) (string, error) {
	var proj struct {
		ID string `json:"id"`
	}
	if err := e.manage(ctx, base+"/manage/projects", map[string]any{"name": "bench-" + e.runID, "api_key": e.upstreamKey}, &proj); err != nil {
		return "", fmt.Errorf("create project: %w", err)
	}
	var tok struct {
		Token string `json:"token"`
	}
	const big = 1_000_000_000_000
	body := map[string]any{
		"project_id": proj.ID, "duration": "24h", "max_requests": big,
		"limits": map[string]any{"requests_per_minute": big, "requests_per_day": big, "tokens_per_minute": big, "tokens_per_day": big},
	}
	if err := e.manage(ctx, base+"/manage/tokens", body, &tok); err != nil {
		return "", fmt.Errorf("create token: %w", err)
	}
	if tok.Token == "" {
		return "", fmt.Errorf("create token: empty token in the answer")
	}
	return tok.Token, nil
}

func (e *env) manage(ctx context.Context, u string, in, out any) error {
	b, _ := json.Marshal(in)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+e.mgmtToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: status %d: %s", u, resp.StatusCode, bytes.TrimSpace(data))
	}
	return json.Unmarshal(data, out)
}

func getJSON(ctx context.Context, u string, out any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
