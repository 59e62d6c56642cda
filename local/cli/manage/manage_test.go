package manage_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	manageprojects "github.com/llm-proxy/llm-proxy/functions/manage-projects"
	managetokens "github.com/llm-proxy/llm-proxy/functions/manage-tokens"
	"github.com/llm-proxy/llm-proxy/local/cli/manage"
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
