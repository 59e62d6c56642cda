package manage_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	manageprojects "github.com/llm-proxy/llm-proxy/functions/manage-projects"
	managetokens "github.com/llm-proxy/llm-proxy/functions/manage-tokens"
	"github.com/llm-proxy/llm-proxy/local/cli/manage"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/management/managementtest"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

const upstreamKey = "sk-proj-CLIsecretUPSTREAMkey0123456789"

// server runs the real management handlers on a real SQLite store.
func server(t *testing.T) (*httptest.Server, *managementtest.Env) {
	t.Helper()
	env := managementtest.New(t, "sqlite", managementtest.Options{FailureLimit: 1000})
	projects := manageprojects.New(manageprojects.Deps{Service: env.Service, Auth: env.Auth, Log: env.Log})
	tokens := managetokens.New(managetokens.Deps{Service: env.Service, Auth: env.Auth, Log: env.Log})
	mux := http.NewServeMux()
	mux.Handle("/manage/tokens", tokens)
	mux.Handle("/manage/tokens/", tokens)
	mux.Handle("/manage/", projects)
	srv := httptest.NewServer(web.Chain(env.Log, mux))
	t.Cleanup(srv.Close)
	return srv, env
}

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, env map[string]string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := manage.Run(context.Background(), args, func(k string) string { return env[k] }, &out, &errb)
	return result{code, out.String(), errb.String()}
}

var uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

func TestCLI(t *testing.T) {
	t.Parallel()
	srv, _ := server(t)
	env := map[string]string{"MANAGEMENT_API_BASE_URL": srv.URL, "MANAGEMENT_TOKEN": managementtest.ManagementToken}
	ok := func(args ...string) result {
		t.Helper()
		r := run(t, env, args...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
		if strings.Contains(r.stdout, upstreamKey) || strings.Contains(r.stdout, "CLIsecret") {
			t.Fatalf("%v printed the upstream key: %s", args, r.stdout)
		}
		return r
	}
	decode := func(r result, v any) {
		t.Helper()
		if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
			t.Fatalf("--json output %q: %v", r.stdout, err)
		}
	}

	// project create (table and JSON), list, get, update.
	r := ok("project", "create", "--name", "alpha", "--api-key", upstreamKey)
	if !strings.Contains(r.stdout, "Name:") || !strings.Contains(r.stdout, "alpha") || !strings.Contains(r.stdout, "sk-pro...6789") {
		t.Fatalf("create output %q", r.stdout)
	}
	pid := uuidRE.FindString(r.stdout)
	var created map[string]any
	decode(ok("--json", "project", "create", "--name", "beta", "--openai-key", upstreamKey), &created)
	if created["name"] != "beta" || created["api_key"] != "sk-pro...6789" {
		t.Fatalf("json create %v", created)
	}
	r = ok("project", "list")
	if !regexp.MustCompile(`ID\s+NAME\s+ACTIVE\s+API KEY\s+CREATED`).MatchString(r.stdout) || !strings.Contains(r.stdout, "beta") || !strings.Contains(r.stdout, "2 total") {
		t.Fatalf("list output %q", r.stdout)
	}
	var projects []map[string]any
	decode(ok("project", "list", "--json", "--search", "alp"), &projects)
	if len(projects) != 1 || projects[0]["id"] != pid {
		t.Fatalf("json list %v", projects)
	}
	decode(ok("project", "list", "--active-only", "--page", "2", "--page-size", "1", "--json"), &projects)
	if len(projects) != 1 || projects[0]["name"] != "beta" {
		t.Fatalf("page 2 %v", projects)
	}
	if r = ok("project", "get", pid); !strings.Contains(r.stdout, "Active:") || !strings.Contains(r.stdout, "true") {
		t.Fatalf("get %q", r.stdout)
	}
	var got map[string]any
	decode(ok("project", "get", pid, "--json"), &got)
	if got["id"] != pid {
		t.Fatalf("get json %v", got)
	}
	decode(ok("project", "update", pid, "--name", "alpha2", "--api-key", "sk-proj-ANOTHERsecretKEY99999", "--json"), &got)
	if got["name"] != "alpha2" || got["api_key"] != "sk-pro...9999" {
		t.Fatalf("update %v", got)
	}

	// token generate (table and JSON), list, get, update, revoke.
	r = ok("token", "generate", "--project-id", pid, "--duration", "60", "--max-requests", "5")
	if !regexp.MustCompile(`Token:\s+llmp_`).MatchString(r.stdout) || !strings.Contains(r.stdout, "not shown again") || !strings.Contains(r.stdout, "Max requests:  5") {
		t.Fatalf("generate %q", r.stdout)
	}
	var tok map[string]any
	decode(ok("token", "generate", "--project-id", pid, "--duration", "30d", "--json"), &tok)
	tid, _ := tok["id"].(string)
	if !strings.HasPrefix(tok["token"].(string), "llmp_") || tid == "" {
		t.Fatalf("generate json %v", tok)
	}
	ok("token", "generate", "--project-id", pid, "--expires-at", time.Now().Add(100*time.Hour).UTC().Format(time.RFC3339))
	ok("token", "generate", "--project-id", pid) // default 1440 minutes
	r = ok("token", "list", "--project-id", pid)
	if !regexp.MustCompile(`ID\s+TOKEN\s+PROJECT\s+ACTIVE\s+EXPIRES\s+REQUESTS\s+MAX\s+LAST USED`).MatchString(r.stdout) || strings.Contains(r.stdout, tok["token"].(string)) || !strings.Contains(r.stdout, "4 total") {
		t.Fatalf("token list %q", r.stdout)
	}
	var toks []map[string]any
	decode(ok("token", "list", "--json", "--active-only", "--page-size", "2"), &toks)
	if len(toks) != 2 {
		t.Fatalf("token list json %v", toks)
	}
	if r = ok("token", "get", tid); !strings.Contains(r.stdout, "Max requests:  unlimited") {
		t.Fatalf("token get %q", r.stdout)
	}
	decode(ok("token", "update", tid, "--max-requests", "10", "--expires-at", "never", "--json"), &got)
	if got["max_requests"] != float64(10) || got["expires_at"] != nil {
		t.Fatalf("token update %v", got)
	}
	if r = ok("token", "update", tid, "--active", "false"); !strings.Contains(r.stdout, "Active:        false") {
		t.Fatalf("token deactivate %q", r.stdout)
	}
	if r = ok("token", "revoke", tid); !strings.Contains(r.stdout, "revoked") {
		t.Fatalf("revoke %q", r.stdout)
	}
	decode(ok("token", "revoke", tid, "--json"), &got)
	if got["revoked"] != true {
		t.Fatalf("revoke json %v", got)
	}
	decode(ok("token", "get", "--json", tid), &got)
	if got["is_active"] != false {
		t.Fatalf("after revoke %v", got)
	}

	// project revoke-tokens, deactivate, activate.
	if r = ok("project", "revoke-tokens", pid); !strings.Contains(r.stdout, "Revoked 3 tokens (1 already revoked, 4 in total)") {
		t.Fatalf("revoke-tokens %q", r.stdout)
	}
	decode(ok("project", "revoke-tokens", pid, "--json"), &got)
	if got["already_revoked_count"] != float64(4) {
		t.Fatalf("revoke-tokens json %v", got)
	}
	decode(ok("project", "deactivate", pid, "--revoke-tokens", "--json"), &got)
	if got["is_active"] != false || got["deactivated_at"] == nil {
		t.Fatalf("deactivate %v", got)
	}
	if r = ok("project", "activate", pid); !regexp.MustCompile(`Active:\s+true\nDeactivated:\s+-\n`).MatchString(r.stdout) {
		t.Fatalf("activate %q", r.stdout)
	}

	// audit list and get.
	r = ok("audit", "list", "--action", "token.create", "--page-size", "100")
	if !regexp.MustCompile(`ID\s+TIME\s+ACTION\s+OUTCOME`).MatchString(r.stdout) || strings.Count(r.stdout, "token.create") != 4 {
		t.Fatalf("audit list %q", r.stdout)
	}
	var al struct {
		Events []map[string]any `json:"events"`
	}
	decode(ok("audit", "list", "--json", "--action", "project.update", "--outcome", "success"), &al)
	if len(al.Events) != 3 {
		t.Fatalf("audit list json %d", len(al.Events))
	}
	aid := al.Events[0]["id"].(string)
	if r = ok("audit", "get", aid); !strings.Contains(r.stdout, "project.update") || !strings.Contains(r.stdout, "Details:") {
		t.Fatalf("audit get %q", r.stdout)
	}
	decode(ok("audit", "get", aid, "--json"), &got)
	if got["id"] != aid {
		t.Fatalf("audit get json %v", got)
	}

	// Errors: API errors exit 1 with the message, usage errors exit 2.
	for _, tc := range []struct {
		args []string
		env  map[string]string
		code int
		want string
	}{
		{[]string{"project", "get", "00000000-0000-4000-8000-000000000000"}, env, 1, "project not found (HTTP 404, code not_found)"},
		{[]string{"project", "delete", pid}, env, 1, "HTTP 405"},
		{[]string{"project", "create", "--name", "beta", "--api-key", upstreamKey}, env, 1, "HTTP 409"},
		{[]string{"token", "generate", "--project-id", pid, "--duration", "999999"}, env, 1, "duration_minutes exceeds maximum allowed"},
		{[]string{"cache", "purge", "--all"}, env, 1, "caching is disabled"},
		{[]string{"project", "list", "--management-token", "wrong"}, env, 1, "invalid management token (HTTP 401"},
		{[]string{"project", "list"}, map[string]string{"MANAGEMENT_API_BASE_URL": srv.URL}, 2, "management token is required"},
		{[]string{"project", "list", "--manage-api-base-url", "http://127.0.0.1:1", "--management-token", "x"}, nil, 1, "connect"},
		{[]string{"project", "list", "--manage-api-base-url", "ftp://x"}, env, 2, "must start with http"},
		{[]string{"project", "frobnicate"}, env, 2, "unknown command"},
		{[]string{"project"}, env, 2, "missing action"},
		{[]string{}, env, 2, "missing resource"},
		{[]string{"project", "get"}, env, 2, "needs <project-id>"},
		{[]string{"project", "create", "--name", "x"}, env, 2, "needs --name and --api-key"},
		{[]string{"project", "update", pid}, env, 2, "at least one of"},
		{[]string{"token", "generate"}, env, 2, "needs --project-id"},
		{[]string{"token", "update", tid, "--max-requests", "-1"}, env, 2, "--max-requests"},
		{[]string{"project", "list", "--bogus"}, env, 2, "flag provided but not defined"},
	} {
		r := run(t, tc.env, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d with %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
	if r := run(t, env, "help"); r.code != 0 || !strings.Contains(r.stdout, "token generate") {
		t.Errorf("help: %d %q", r.code, r.stdout)
	}
}

// sent records the JSON bodies the CLI sends, by "METHOD path".
type sent struct {
	mu     sync.Mutex
	bodies map[string][]map[string]any
}

func (s *sent) last(t *testing.T, key string) map[string]any {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.bodies[key]
	if len(b) == 0 {
		t.Fatalf("no %s sent", key)
	}
	return b[len(b)-1]
}

// recordingServer is server() with a middleware that records request bodies.
func recordingServer(t *testing.T) (*httptest.Server, *managementtest.Env, *sent) {
	t.Helper()
	env := managementtest.New(t, "sqlite", managementtest.Options{FailureLimit: 1000})
	projects := manageprojects.New(manageprojects.Deps{Service: env.Service, Auth: env.Auth, Log: env.Log})
	tokens := managetokens.New(managetokens.Deps{Service: env.Service, Auth: env.Auth, Log: env.Log})
	mux := http.NewServeMux()
	mux.Handle("/manage/tokens", tokens)
	mux.Handle("/manage/tokens/", tokens)
	mux.Handle("/manage/", projects)
	rec := &sent{bodies: map[string][]map[string]any{}}
	record := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Method != http.MethodGet {
			b, err := io.ReadAll(r.Body)
			if err != nil {
				t.Errorf("read body: %v", err)
			}
			var m map[string]any
			if len(b) > 0 && json.Unmarshal(b, &m) == nil {
				key := r.Method + " " + r.URL.Path
				rec.mu.Lock()
				rec.bodies[key] = append(rec.bodies[key], m)
				rec.mu.Unlock()
			}
			r.Body = io.NopCloser(bytes.NewReader(b))
		}
		mux.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(web.Chain(env.Log, record))
	t.Cleanup(srv.Close)
	return srv, env, rec
}

func TestCLILimits(t *testing.T) {
	t.Parallel()
	srv, env, rec := recordingServer(t)
	genv := map[string]string{"MANAGEMENT_API_BASE_URL": srv.URL, "MANAGEMENT_TOKEN": managementtest.ManagementToken}
	ctx := context.Background()
	ok := func(args ...string) result {
		t.Helper()
		r := run(t, genv, args...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
		return r
	}
	decode := func(r result) map[string]any {
		t.Helper()
		var v map[string]any
		if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
			t.Fatalf("--json output %q: %v", r.stdout, err)
		}
		return v
	}
	// limitsOf turns a JSON limits object into llmproxy.Limits.
	limitsOf := func(v any) llmproxy.Limits {
		t.Helper()
		b, _ := json.Marshal(v)
		var l llmproxy.Limits
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatalf("limits %s: %v", b, err)
		}
		return l
	}
	projectLimits := func(id string) (llmproxy.Limits, llmproxy.Limits) {
		t.Helper()
		p, err := env.Store.GetProject(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return p.Limits, p.TokenDefaults
	}
	tokenLimits := func(id string) llmproxy.Limits {
		t.Helper()
		tk, err := env.Store.GetToken(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return tk.Limits
	}
	keys := func(m any) []string {
		var ks []string
		for k := range m.(map[string]any) {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}

	// project create: only the given limits are sent; --json shows them.
	p := decode(ok("project", "create", "--json", "--name", "lim", "--api-key", upstreamKey,
		"--requests-per-minute", "60", "--tokens-per-day", "100000", "--token-default-requests-per-day", "500"))
	pid := p["id"].(string)
	wantL, wantD := llmproxy.Limits{RequestsPerMinute: 60, TokensPerDay: 100000}, llmproxy.Limits{RequestsPerDay: 500}
	if limitsOf(p["limits"]) != wantL || limitsOf(p["token_defaults"]) != wantD {
		t.Fatalf("create json limits %v defaults %v", p["limits"], p["token_defaults"])
	}
	if l, d := projectLimits(pid); l != wantL || d != wantD {
		t.Fatalf("stored limits %+v defaults %+v", l, d)
	}
	body := rec.last(t, "POST /manage/projects")
	if got := keys(body["limits"]); !slices.Equal(got, []string{"requests_per_minute", "tokens_per_day"}) {
		t.Errorf("create sent limits %v", body["limits"])
	}
	if got := keys(body["token_defaults"]); !slices.Equal(got, []string{"requests_per_day"}) {
		t.Errorf("create sent token_defaults %v", body["token_defaults"])
	}
	// Without limit flags, no limits are sent and the table says unlimited.
	r := ok("project", "create", "--name", "free", "--api-key", upstreamKey)
	if body := rec.last(t, "POST /manage/projects"); body["limits"] != nil || body["token_defaults"] != nil {
		t.Errorf("create without limit flags sent %v", body)
	}
	if !regexp.MustCompile(`Limits:\s+unlimited\nToken defaults:\s+unlimited\n`).MatchString(r.stdout) {
		t.Errorf("create table %q", r.stdout)
	}

	// project get shows the limits.
	r = ok("project", "get", pid)
	if !regexp.MustCompile(`Limits:\s+requests 60/min, unlimited/day; model tokens unlimited/min, 100000/day\n`).MatchString(r.stdout) ||
		!regexp.MustCompile(`Token defaults:\s+requests unlimited/min, 500/day; model tokens unlimited/min, unlimited/day\n`).MatchString(r.stdout) {
		t.Fatalf("project get %q", r.stdout)
	}

	// project update: a flag not given leaves its limit unchanged; 0 removes one.
	p = decode(ok("project", "update", pid, "--requests-per-day", "1000", "--json"))
	wantL = llmproxy.Limits{RequestsPerMinute: 60, RequestsPerDay: 1000, TokensPerDay: 100000}
	if limitsOf(p["limits"]) != wantL || limitsOf(p["token_defaults"]) != wantD {
		t.Fatalf("update json %v %v", p["limits"], p["token_defaults"])
	}
	if body := rec.last(t, "PATCH /manage/projects/"+pid); body["token_defaults"] != nil || body["name"] != nil {
		t.Errorf("update of limits sent %v", body)
	}
	r = ok("project", "update", pid, "--requests-per-minute", "0", "--token-default-tokens-per-minute", "2000")
	wantL.RequestsPerMinute = 0
	wantD.TokensPerMinute = 2000
	if l, d := projectLimits(pid); l != wantL || d != wantD {
		t.Fatalf("after update: limits %+v defaults %+v", l, d)
	}
	if !regexp.MustCompile(`Limits:\s+requests unlimited/min, 1000/day; model tokens unlimited/min, 100000/day\n`).MatchString(r.stdout) ||
		!regexp.MustCompile(`Token defaults:\s+requests unlimited/min, 500/day; model tokens 2000/min, unlimited/day\n`).MatchString(r.stdout) {
		t.Fatalf("update table %q", r.stdout)
	}
	// Only token defaults: the project's own limits are not sent.
	ok("project", "update", pid, "--token-default-tokens-per-day", "7")
	if body := rec.last(t, "PATCH /manage/projects/"+pid); body["limits"] != nil || body["token_defaults"] == nil {
		t.Errorf("defaults-only update sent %v", body)
	}
	wantD.TokensPerDay = 7
	if _, d := projectLimits(pid); d != wantD {
		t.Fatalf("defaults %+v, want %+v", d, wantD)
	}
	// Other updates do not touch limits.
	ok("project", "update", pid, "--name", "lim2")
	if body := rec.last(t, "PATCH /manage/projects/"+pid); body["limits"] != nil || body["token_defaults"] != nil {
		t.Errorf("rename sent %v", body)
	}
	if l, d := projectLimits(pid); l != wantL || d != wantD {
		t.Fatalf("rename changed limits %+v %+v", l, d)
	}

	// token generate: without limit flags the project's defaults apply and
	// nothing is sent; with flags they override the defaults one by one.
	tk := decode(ok("token", "generate", "--project-id", pid, "--json"))
	if body := rec.last(t, "POST /manage/tokens"); body["limits"] != nil {
		t.Errorf("generate without limit flags sent %v", body["limits"])
	}
	if got := tokenLimits(tk["id"].(string)); got != wantD {
		t.Fatalf("default token limits %+v, want %+v", got, wantD)
	}
	tk = decode(ok("token", "generate", "--project-id", pid, "--requests-per-minute", "10", "--tokens-per-day", "0", "--json"))
	tid := tk["id"].(string)
	wantT := llmproxy.Limits{RequestsPerMinute: 10, RequestsPerDay: 500, TokensPerMinute: 2000}
	if limitsOf(tk["limits"]) != wantT || tokenLimits(tid) != wantT {
		t.Fatalf("generate limits %v, stored %+v, want %+v", tk["limits"], tokenLimits(tid), wantT)
	}
	r = ok("token", "generate", "--project-id", pid, "--tokens-per-minute", "50")
	if !regexp.MustCompile(`Limits:\s+requests unlimited/min, 500/day; model tokens 50/min, 7/day\n`).MatchString(r.stdout) {
		t.Fatalf("generate table %q", r.stdout)
	}

	// token update keeps the limits not given.
	tk = decode(ok("token", "update", tid, "--requests-per-day", "99", "--json"))
	wantT.RequestsPerDay = 99
	if limitsOf(tk["limits"]) != wantT || tokenLimits(tid) != wantT {
		t.Fatalf("token update limits %v, want %+v", tk["limits"], wantT)
	}
	r = ok("token", "update", tid, "--requests-per-minute", "0", "--tokens-per-minute", "0", "--tokens-per-day", "1234")
	wantT = llmproxy.Limits{RequestsPerDay: 99, TokensPerDay: 1234}
	if tokenLimits(tid) != wantT {
		t.Fatalf("token limits %+v, want %+v", tokenLimits(tid), wantT)
	}
	if !regexp.MustCompile(`Limits:\s+requests unlimited/min, 99/day; model tokens unlimited/min, 1234/day\n`).MatchString(r.stdout) {
		t.Fatalf("token update table %q", r.stdout)
	}
	if r = ok("token", "get", tid); !strings.Contains(r.stdout, "99/day; model tokens unlimited/min, 1234/day") {
		t.Fatalf("token get %q", r.stdout)
	}
	ok("token", "update", tid, "--max-requests", "3")
	if body := rec.last(t, "PATCH /manage/tokens/"+tid); body["limits"] != nil {
		t.Errorf("max-requests update sent limits %v", body["limits"])
	}
	if tokenLimits(tid) != wantT {
		t.Fatalf("max-requests update changed limits: %+v", tokenLimits(tid))
	}

	// Errors.
	unknown := "00000000-0000-4000-8000-000000000000"
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"project", "create", "--name", "n", "--api-key", upstreamKey, "--requests-per-minute", "-1"}, 2, "want a whole number >= 0"},
		{[]string{"project", "update", pid, "--token-default-tokens-per-day", "lots"}, 2, "want a whole number >= 0"},
		{[]string{"token", "generate", "--project-id", pid, "--requests-per-day", "1.5"}, 2, "want a whole number >= 0"},
		{[]string{"token", "update", tid, "--tokens-per-minute", "-3"}, 2, "-tokens-per-minute"},
		{[]string{"project", "update", unknown, "--requests-per-minute", "5"}, 1, "project not found"},
		{[]string{"token", "update", unknown, "--requests-per-minute", "5"}, 1, "token not found"},
		{[]string{"token", "generate", "--project-id", unknown, "--requests-per-minute", "5"}, 1, "project not found"},
	} {
		r := run(t, genv, tc.args...)
		if r.code != tc.code || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit %d with %q", tc.args, r.code, r.stderr, tc.code, tc.want)
		}
	}
	if l, d := projectLimits(pid); l != wantL || d != wantD {
		t.Fatalf("failed commands changed the project: %+v %+v", l, d)
	}
	if r := run(t, genv, "help"); !strings.Contains(r.stdout, "--token-default-requests-per-minute") || !strings.Contains(r.stdout, "0 means unlimited") {
		t.Errorf("help does not document the limit flags: %q", r.stdout)
	}
}

// A record with terminal escapes (an attacker's user agent, path and
// submitted name) prints with them escaped in `audit get` and `audit list`.
func TestCLIAuditEscapesControlCharacters(t *testing.T) {
	t.Parallel()
	srv, env := server(t)
	cli := map[string]string{"MANAGEMENT_API_BASE_URL": srv.URL, "MANAGEMENT_TOKEN": managementtest.ManagementToken}
	const evil = "\x1b]0;pwned\x07\x1b[2J\u202eevil\r\n"
	e := env.Recorder.Event(managementtest.Actor(), "management.auth", llmproxy.OutcomeDenied, map[string]any{"name": evil})
	e.Path, e.UserAgent, e.Reason = "/manage/"+evil, evil, evil
	if err := env.Recorder.Record(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"audit", "get", e.ID}, {"audit", "list", "--action", "management.auth"}} {
		r := run(t, cli, args...)
		if r.code != 0 {
			t.Fatalf("%v: exit %d %s", args, r.code, r.stderr)
		}
		if strings.ContainsAny(r.stdout, "\x1b\x07\r\u202e") {
			t.Fatalf("%v printed raw control characters: %q", args, r.stdout)
		}
		if !strings.Contains(r.stdout, `\x1b]0;pwned\x07\x1b[2J\u202eevil\x0d\x0a`) {
			t.Fatalf("%v did not show the escapes: %q", args, r.stdout)
		}
	}
}
