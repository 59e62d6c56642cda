package e2e

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
)

// operatorToken is a management token that passes the strength check.
const operatorToken = "e2e-operator-management-token-0123456789abcdef"

// noRedirect is a client that reports redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// get answers status and Location of a GET without following redirects.
func getNoFollow(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := noRedirect.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// TestServeAdminUIAtRoot: ADMIN_UI_PATH=/ puts the admin UI at the root
// beside the proxy, the management API, health and metrics; the banner
// names the bound address and the UI's URL.
func TestServeAdminUIAtRoot(t *testing.T) {
	s := startServe(t, t.TempDir(), map[string]string{"MANAGEMENT_TOKEN": operatorToken, "ADMIN_UI_PATH": "/"})
	if want := "(admin UI: " + s.URL + "/)"; !strings.Contains(s.Stdout(), "listening on "+strings.TrimPrefix(s.URL, "http://")+" "+want) {
		t.Errorf("banner: %q, want the bound address and %s", s.Stdout(), want)
	}
	if code, loc := getNoFollow(t, s.URL+"/"); code != http.StatusSeeOther || loc != "/dashboard" {
		t.Errorf("GET / = %d → %q, want 303 → /dashboard", code, loc)
	}
	if code, loc := getNoFollow(t, s.URL+"/dashboard"); code != http.StatusSeeOther || loc != "/auth/login" {
		t.Errorf("GET /dashboard signed out = %d → %q, want 303 → /auth/login", code, loc)
	}
	if code, _ := getNoFollow(t, s.URL+"/auth/login"); code != http.StatusOK {
		t.Errorf("GET /auth/login = %d", code)
	}
	for path, want := range map[string]int{"/v1/models": http.StatusUnauthorized, "/health": http.StatusOK, "/ready": http.StatusOK, "/live": http.StatusOK} {
		if code := api(t, "GET", s.URL+path, "", nil, nil); code != want {
			t.Errorf("GET %s = %d, want %d (not the admin UI)", path, code, want)
		}
	}
	if code := api(t, "GET", s.URL+"/manage/projects", operatorToken, nil, nil); code != http.StatusOK {
		t.Errorf("GET /manage/projects = %d", code)
	}
}

// TestAdminUIPathValues: an empty ADMIN_UI_PATH is the default /admin (it
// used to panic); a path serve answers itself, or a malformed one, stops the
// start with one line naming ADMIN_UI_PATH.
func TestAdminUIPathValues(t *testing.T) {
	s := startServe(t, t.TempDir(), map[string]string{"MANAGEMENT_TOKEN": operatorToken, "ADMIN_UI_PATH": ""})
	if code, loc := getNoFollow(t, s.URL+"/"); code != http.StatusFound || loc != "/admin/" {
		t.Errorf("ADMIN_UI_PATH empty: GET / = %d → %q, want 302 → /admin/", code, loc)
	}
	for _, bad := range []string{"/v1", "/manage/ui", "admin", "/admin/", "/a b"} {
		dir := t.TempDir()
		_, stderr, code := cli(t, map[string]string{"DATA_DIR": dir, "DATABASE_PATH": filepath.Join(dir, "db"), "ADMIN_UI_PATH": bad, "LISTEN_ADDR": "127.0.0.1:0"}, "serve")
		if code == 0 || !strings.Contains(stderr, "ADMIN_UI_PATH") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("ADMIN_UI_PATH=%q: exit %d, stderr %q; want a non-zero exit and one line naming ADMIN_UI_PATH", bad, code, stderr)
		}
	}
}

// TestFunctionListenAddrAndRootUI: a stand-alone function listens on
// LISTEN_ADDR when it is set (PORT is then ignored), and the admin-ui
// function serves at the root unless ADMIN_UI_PATH says otherwise.
func TestFunctionListenAddrAndRootUI(t *testing.T) {
	testenv.NeedsService(t, "PostgreSQL")
	env := map[string]string{
		"DB_DRIVER": "postgres", "DATABASE_URL": testenv.PostgresURL(t),
		"ENCRYPTION_KEY":   "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"MANAGEMENT_TOKEN": operatorToken,
		"LISTEN_ADDR":      "127.0.0.1:" + freePort(t),
		"PORT":             freePort(t),
	}
	if out, stderr, code := cli(t, env, "migrate", "up"); code != 0 {
		t.Fatalf("migrate up: %s %s", out, stderr)
	}
	start(t, binary(t, "./functions/admin-ui/cmd"), env)
	base := "http://" + env["LISTEN_ADDR"]
	waitReady(t, base+"/_/ready")
	if code, loc := getNoFollow(t, base+"/"); code != http.StatusSeeOther || loc != "/dashboard" {
		t.Errorf("admin-ui GET / = %d → %q, want 303 → /dashboard (the root)", code, loc)
	}
}

// TestMakeRunBindsLoopback: `make run` keeps serve to this machine.
func TestMakeRunBindsLoopback(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(moduleDir, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^run:.*\n((?:\t.*\n)+)`).FindSubmatch(b)
	if m == nil || !regexp.MustCompile(`LISTEN_ADDR=\S*127\.0\.0\.1:8080`).Match(m[1]) {
		t.Fatalf("the Makefile's run target does not pass LISTEN_ADDR=127.0.0.1:8080:\n%s", m)
	}
}

// TestReadmeOfflineQuickStart follows the README's "Try it without an OpenAI
// key": the mock upstream started with the documented command, serve pointed
// at it with OPENAI_API_URL, a chat completion through a token; a second
// start prints the reminder the README describes and no token, and the
// documented recovery (setting MANAGEMENT_TOKEN) replaces a lost token.
func TestReadmeOfflineQuickStart(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(moduleDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	i := strings.Index(section, "### Try it without an OpenAI key")
	if i < 0 {
		t.Fatal(`README has no "Try it without an OpenAI key" section`)
	}
	section = section[i:]
	cmdRE := regexp.MustCompile("(?m)^go run (\\./internal/\\S+) (.*)$")
	m := cmdRE.FindStringSubmatch(section)
	if m == nil || !strings.Contains(section, "OPENAI_API_URL=http://127.0.0.1:9999") {
		t.Fatalf("the section does not show how to start the mock upstream and point the proxy at it:\n%s", section)
	}
	args := strings.Fields(strings.Replace(m[2], "127.0.0.1:9999", "127.0.0.1:0", 1))
	mock := start(t, binary(t, m[1]), nil, args...)
	up := mock.waitLine(regexp.MustCompile(`^listening (http://\S+)$`), 30*time.Second)[1]
	for _, want := range []string{"settings", "in the database", "MANAGEMENT_TOKEN=$(openssl rand -base64 32)"} {
		if !strings.Contains(section, want) {
			t.Errorf("the section does not say %q", want)
		}
	}

	dir := t.TempDir()
	s := startServe(t, dir, map[string]string{"OPENAI_API_URL": up})
	tm := mgmtTokenRE.FindStringSubmatch(s.Stdout())
	if tm == nil {
		t.Fatalf("no generated management token:\n%s", s.Stdout())
	}
	mgmt := tm[1]
	var project struct {
		ID string `json:"id"`
	}
	if code := api(t, "POST", s.URL+"/manage/projects", mgmt, map[string]any{"name": "offline", "api_key": "sk-mock-0123456789abcdef"}, &project); code != http.StatusCreated {
		t.Fatalf("create project: %d", code)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if code := api(t, "POST", s.URL+"/manage/tokens", mgmt, map[string]any{"project_id": project.ID, "duration": "24h", "max_requests": 1000}, &tok); code != http.StatusCreated {
		t.Fatalf("create token: %d", code)
	}
	body := map[string]any{"model": "gpt-4o-mini", "messages": []map[string]string{{"role": "user", "content": "hi"}}}
	var answer struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	if code := api(t, "POST", s.URL+"/v1/chat/completions", tok.Token, body, &answer); code != http.StatusOK || len(answer.Choices) == 0 {
		t.Fatalf("chat completion through the mock upstream: %d %+v", code, answer)
	}
	s.Signal(syscall.SIGTERM)
	s.Wait(30 * time.Second)

	again := startServe(t, dir, map[string]string{"OPENAI_API_URL": up})
	if out := again.Stdout(); strings.Contains(out, "MANAGEMENT_TOKEN=") || !strings.Contains(out, "the token generated and printed on the first start is accepted") {
		t.Errorf("second start printed:\n%s\nwant the reminder and no token", out)
	}
	again.Signal(syscall.SIGTERM)
	again.Wait(30 * time.Second)

	const recovered = "recovered-management-token-0123456789abcdef"
	r := startServe(t, dir, map[string]string{"OPENAI_API_URL": up, "MANAGEMENT_TOKEN": recovered})
	if code := api(t, "GET", r.URL+"/manage/projects", recovered, nil, nil); code != http.StatusOK {
		t.Errorf("the recovery token: %d", code)
	}
	if code := api(t, "GET", r.URL+"/manage/projects", mgmt, nil, nil); code != http.StatusUnauthorized {
		t.Errorf("the lost token after recovery: %d, want 401", code)
	}
}

// TestReadOnlyCommandsNeverCreateADatabase: in a folder without a database,
// migrate status, migrate version, migrate rotate-keys and audit verify say
// there is none and exit non-zero, and create nothing; on an empty SQLite
// file (no schema) audit verify says so instead of "no such table".
func TestReadOnlyCommandsNeverCreateADatabase(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	env := map[string]string{"DATA_DIR": data, "DATABASE_PATH": filepath.Join(data, "llm-proxy.db"),
		"ENCRYPTION_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}
	for _, args := range [][]string{{"migrate", "status"}, {"migrate", "version"}, {"migrate", "rotate-keys"}, {"audit", "verify"}} {
		out, stderr, code := cli(t, env, args...)
		if code == 0 || !strings.Contains(stderr, "no database at "+env["DATABASE_PATH"]) || !strings.Contains(stderr, "migrate up") {
			t.Errorf("llm-proxy %v without a database: exit %d\nstdout %q\nstderr %q\nwant a non-zero exit saying there is no database and how to create one", args, code, out, stderr)
		}
		if _, err := os.Stat(data); !os.IsNotExist(err) {
			t.Fatalf("llm-proxy %v created %s", args, data)
		}
	}
	if err := os.MkdirAll(data, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(env["DATABASE_PATH"], nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := cli(t, env, "audit", "verify")
	if code == 0 || strings.Contains(stderr, "no such table") || !strings.Contains(stderr, "no llm-proxy schema") {
		t.Errorf("audit verify on an empty database: exit %d, stderr %q", code, stderr)
	}
}

// TestWrongEncryptionKeyRefusesToStart: serve started with an ENCRYPTION_KEY
// other than the one the database was written with (here the key file's)
// refuses to start with a message naming ENCRYPTION_KEY and
// ENCRYPTION_KEY_PREVIOUS, and warns that the key file differs; with the old
// key listed as previous it starts. A function (through
// functions/internal/deployable) refuses the same way.
func TestWrongEncryptionKeyRefusesToStart(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"DATA_DIR": dir, "DATABASE_PATH": filepath.Join(dir, "llm-proxy.db"), "MANAGEMENT_TOKEN": operatorToken}
	s := startServeEnv(t, env)
	if code := api(t, "POST", s.URL+"/manage/projects", operatorToken, map[string]any{"name": "keyed", "api_key": "sk-keyed-0123456789abcdef"}, nil); code != http.StatusCreated {
		t.Fatalf("create project: %d", code)
	}
	s.Signal(syscall.SIGTERM)
	s.Wait(30 * time.Second)
	fileKey, err := os.ReadFile(filepath.Join(dir, "encryption.key"))
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := cli(t, nil, "keygen")
	other = strings.TrimSpace(other)

	wrong := map[string]string{"ENCRYPTION_KEY": other, "LISTEN_ADDR": "127.0.0.1:0"}
	for k, v := range env {
		wrong[k] = v
	}
	_, stderr, code := cli(t, wrong, "serve")
	if code == 0 || !strings.Contains(stderr, "ENCRYPTION_KEY_PREVIOUS") || !strings.Contains(stderr, "Set ENCRYPTION_KEY to the key the database was written with") {
		t.Errorf("serve with another ENCRYPTION_KEY: exit %d, stderr:\n%s\nwant a refusal naming ENCRYPTION_KEY and ENCRYPTION_KEY_PREVIOUS", code, stderr)
	}
	if !strings.Contains(stderr, "differs from the key file") {
		t.Errorf("no warning that ENCRYPTION_KEY and the key file differ:\n%s", stderr)
	}

	wrong["ENCRYPTION_KEY_PREVIOUS"] = strings.TrimSpace(string(fileKey))
	delete(wrong, "LISTEN_ADDR")
	again := startServeEnv(t, wrong)
	if code := api(t, "GET", again.URL+"/manage/projects", operatorToken, nil, nil); code != http.StatusOK {
		t.Errorf("with the old key as previous: %d", code)
	}
	again.Signal(syscall.SIGTERM)
	again.Wait(30 * time.Second)

	// A function on PostgreSQL: the database written under one key, the
	// function started with another.
	testenv.NeedsService(t, "PostgreSQL")
	fenv := map[string]string{"DB_DRIVER": "postgres", "DATABASE_URL": testenv.PostgresURL(t), "MANAGEMENT_TOKEN": operatorToken,
		"ENCRYPTION_KEY": strings.TrimSpace(string(fileKey))}
	if out, stderr, code := cli(t, fenv, "migrate", "up"); code != 0 {
		t.Fatalf("migrate up: %s %s", out, stderr)
	}
	projects, _ := function(t, "manage-projects", fenv)
	if code := api(t, "POST", projects+"/manage/projects", operatorToken, map[string]any{"name": "keyed", "api_key": "sk-keyed-0123456789abcdef"}, nil); code != http.StatusCreated {
		t.Fatalf("create project via the function: %d", code)
	}
	fenv["ENCRYPTION_KEY"], fenv["PORT"] = other, freePort(t)
	p := start(t, binary(t, "./functions/proxy/cmd"), fenv)
	if code := p.Wait(30 * time.Second); code == 0 || !strings.Contains(p.Stderr(), "ENCRYPTION_KEY_PREVIOUS") {
		t.Errorf("proxy function with another ENCRYPTION_KEY: exit %d, stderr:\n%s", code, p.Stderr())
	}
}

// TestCLIUsageAndWording drives the binary: usage errors are one line with
// a hint to --help, --help exits 0 everywhere, a page size above the maximum
// is refused like one that is not a number, counts read right, and --json
// shows <, > and & as themselves.
func TestCLIUsageAndWording(t *testing.T) {
	oneLine := func(args ...string) {
		t.Helper()
		out, stderr, code := cli(t, nil, args...)
		if code != 2 || out != "" || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "--help") {
			t.Errorf("llm-proxy %v: exit %d, stdout %q, stderr %q; want exit 2 and one line with a hint to --help", args, code, out, stderr)
		}
	}
	oneLine()
	oneLine("bogus")
	oneLine("migrate")
	oneLine("migrate", "bogus")
	oneLine("serve", "now")
	oneLine("keygen", "extra")
	oneLine("audit", "bogus")
	oneLine("audit", "verify", "--bogus")
	oneLine("manage", "project", "lst")
	oneLine("manage", "projects")
	for args, want := range map[string]string{
		"--help": "dispatch", "migrate --help": "rotate-keys", "serve --help": "LISTEN_ADDR", "keygen --help": "ENCRYPTION_KEY",
		"audit --help": "--file", "audit verify --help": "--json", "manage --help": "usage show", "manage token list --help": "--page-size",
	} {
		out, stderr, code := cli(t, nil, strings.Fields(args)...)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("llm-proxy %s: exit %d, stdout %q, stderr %q; want exit 0 and a help that mentions %s", args, code, out, stderr, want)
		}
	}

	s := startServe(t, t.TempDir(), map[string]string{"MANAGEMENT_TOKEN": operatorToken})
	env := map[string]string{"MANAGEMENT_TOKEN": operatorToken, "MANAGEMENT_API_BASE_URL": s.URL}
	manage := func(wantCode int, args ...string) string {
		t.Helper()
		out, stderr, code := cli(t, env, append([]string{"manage"}, args...)...)
		if code != wantCode {
			t.Fatalf("manage %v: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, wantCode, out, stderr)
		}
		return out + stderr
	}
	for _, size := range []string{"abc", "500", "0"} {
		if out := manage(2, "project", "list", "--page-size", size); !strings.Contains(out, "page-size") || strings.Count(strings.TrimSpace(out), "\n") != 0 {
			t.Errorf("--page-size %s: %q, want one line naming the flag", size, out)
		}
	}
	var project struct {
		ID string `json:"id"`
	}
	out := manage(0, "--json", "project", "create", "--name", "a<b>&c", "--api-key", "sk-cli-upstream-key-0123456789")
	if strings.Contains(out, `\u003c`) || strings.Contains(out, `\u0026`) || !strings.Contains(out, `"a<b>&c"`) {
		t.Errorf("--json shows escapes: %s", out)
	}
	if err := json.Unmarshal([]byte(out), &project); err != nil {
		t.Fatal(err)
	}
	manage(0, "token", "generate", "--project-id", project.ID, "--duration", "1h")
	if out := manage(0, "project", "revoke-tokens", project.ID); !strings.Contains(out, "Revoked 1 token (") {
		t.Errorf("revoke-tokens: %q, want \"Revoked 1 token (\"", out)
	}
	if out := manage(0, "cache", "purge", "--all"); !strings.Contains(out, "cached responses") && !strings.Contains(out, "1 cached response.") {
		t.Errorf("cache purge: %q", out)
	}
}
