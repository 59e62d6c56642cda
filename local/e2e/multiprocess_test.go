package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/llm-proxy/llm-proxy/internal/mockopenai"
	"github.com/llm-proxy/llm-proxy/internal/testenv"
)

// freePort returns a loopback port that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}

// function starts one function binary on its own port and waits until it is
// ready; it returns its base URL and the process.
func function(t *testing.T, name string, env map[string]string) (string, *Process) {
	t.Helper()
	port := freePort(t)
	full := map[string]string{"PORT": port}
	for k, v := range env {
		full[k] = v
	}
	bin := binary(t, "./functions/"+name+"/cmd")
	started := time.Now()
	p := start(t, bin, full)
	base := "http://127.0.0.1:" + port
	waitReady(t, base+"/_/ready")
	t.Logf("%s ready %v after exec (readiness polled every 5ms)", name, time.Since(started).Round(time.Millisecond))
	return base, p
}

// TestFunctionsAsSeparateProcesses wires the five functions exactly as
// Knative would — each its own process on its own port, on PostgreSQL and
// Redis, events sent to the dispatcher as CloudEvents over HTTP (K_SINK) —
// and walks through the lifecycle, ending with a SIGTERM during a stream.
func TestFunctionsAsSeparateProcesses(t *testing.T) {
	up := mockopenai.Start(mockopenai.Options{APIKey: upstreamKey, Chunks: 10})
	t.Cleanup(up.Close)
	dir := t.TempDir()
	eventLog := filepath.Join(dir, "events.jsonl")
	_, prefix := testenv.Redis(t)
	common := map[string]string{
		"DB_DRIVER":              "postgres",
		"DATABASE_URL":           testenv.PostgresURL(t),
		"REDIS_ADDR":             testenv.RedisAddr(),
		"REDIS_KEY_PREFIX":       prefix,
		"REDIS_CACHE_KEY_PREFIX": prefix + "cache:",
		"HTTP_CACHE_BACKEND":     "redis",
		"ENCRYPTION_KEY":         "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"MANAGEMENT_TOKEN":       "multi-process-management-token-0123456789",
		"LOG_LEVEL":              "warn",
	}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range common {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	// Migrations run once, as the Knative Job does; functions never migrate.
	if out, stderr, code := cli(t, common, "migrate", "up"); code != 0 {
		t.Fatalf("migrate up: %s %s", out, stderr)
	}

	dispatcherURL, _ := function(t, "dispatcher", with(map[string]string{"FILE_EVENT_LOG": eventLog}))
	projectsURL, _ := function(t, "manage-projects", common)
	tokensURL, _ := function(t, "manage-tokens", common)
	// Under /admin, as the Knative manifests route it (unset, it serves at
	// the root: TestFunctionListenAddrAndRootUI).
	// PUBLIC_BASE_URL: the proxy's host, which the admin UI's new-token
	// example must show (this process does not answer /v1).
	adminURL, _ := function(t, "admin-ui", with(map[string]string{"ADMIN_UI_PATH": "/admin", "PUBLIC_BASE_URL": "https://llm.example.com"}))
	proxyURL, proxyProc := function(t, "proxy", with(map[string]string{
		"OPENAI_API_URL":        up.URL,
		"LLM_PROXY_EVENT_BUS":   "http",
		"K_SINK":                dispatcherURL,
		"SHUTDOWN_GRACE_PERIOD": "30s",
	}))
	mgmt := common["MANAGEMENT_TOKEN"]

	var project struct {
		ID string `json:"id"`
	}
	if code := api(t, "POST", projectsURL+"/manage/projects", mgmt, map[string]any{"name": "multi", "api_key": upstreamKey}, &project); code != http.StatusCreated {
		t.Fatalf("create project via manage-projects: %d", code)
	}
	var tok struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	if code := api(t, "POST", tokensURL+"/manage/tokens", mgmt, map[string]any{"project_id": project.ID, "duration": "1h"}, &tok); code != http.StatusCreated {
		t.Fatalf("create token via manage-tokens: %d", code)
	}

	client := openai.NewClient(option.WithBaseURL(proxyURL+"/v1/"), option.WithAPIKey(tok.Token), option.WithMaxRetries(0))
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")}}
	if _, err := client.Chat.Completions.New(ctx, params); err != nil {
		t.Fatalf("plain chat through the proxy process: %v", err)
	}
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	chunks := 0
	for stream.Next() {
		chunks++
	}
	if err := stream.Err(); err != nil || chunks == 0 {
		t.Fatalf("stream through the proxy process: %d chunks, %v", chunks, err)
	}
	evs := readEvents(t, eventLog, 2)
	for _, e := range evs[:2] {
		if e.ProjectID != project.ID || e.TokenID != tok.ID || e.Data.Usage.Source != "reported" {
			t.Fatalf("dispatcher wrote %+v", e)
		}
	}

	// Revocation through manage-tokens reaches the proxy process within 1 s.
	if code := api(t, "DELETE", tokensURL+"/manage/tokens/"+tok.ID, mgmt, nil, nil); code != http.StatusNoContent {
		t.Fatalf("revoke: %d", code)
	}
	revokedAt := time.Now()
	for {
		_, err := client.Chat.Completions.New(ctx, params)
		var apiErr *openai.Error
		if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusUnauthorized {
			t.Logf("revocation took effect in the proxy process after %v", time.Since(revokedAt).Round(time.Millisecond))
			break
		}
		if time.Since(revokedAt) > time.Second {
			t.Fatalf("revoked token still accepted after 1s (last error %v)", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// Sign in to the admin-ui process.
	browser := adminSignIn(t, adminURL+"/admin", mgmt)
	resp, err := browser.Get(adminURL + "/admin/dashboard")
	if err != nil {
		t.Fatal(err)
	}
	page := readAll(t, resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "Dashboard") || !strings.Contains(page, "multi") {
		t.Fatalf("admin-ui dashboard after sign-in: %d", resp.StatusCode)
	}
	if page := adminNewToken(t, adminURL+"/admin", mgmt, project.ID); !strings.Contains(page, "curl https://llm.example.com/v1/chat/completions") {
		t.Errorf("admin-ui new-token page does not show PUBLIC_BASE_URL + /v1:\n%s", page)
	}

	// SIGTERM during a stream: the stream completes, its event is delivered,
	// the process exits cleanly.
	var tok2 struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	api(t, "POST", tokensURL+"/manage/tokens", mgmt, map[string]any{"project_id": project.ID, "duration": "1h"}, &tok2)
	up.SetChunkDelay(150 * time.Millisecond)
	client2 := openai.NewClient(option.WithBaseURL(proxyURL+"/v1/"), option.WithAPIKey(tok2.Token), option.WithMaxRetries(0))
	slow := client2.Chat.Completions.NewStreaming(ctx, params)
	if !slow.Next() {
		t.Fatalf("slow stream did not start: %v", slow.Err())
	}
	proxyProc.Signal(syscall.SIGTERM)
	got := 1
	for slow.Next() {
		got++
	}
	if err := slow.Err(); err != nil {
		t.Fatalf("stream cut by SIGTERM after %d chunks: %v", got, err)
	}
	if got < 10 {
		t.Fatalf("stream ended early: %d chunks, want 10", got)
	}
	if code := proxyProc.Wait(30 * time.Second); code != 0 {
		t.Fatalf("proxy exited %d after SIGTERM", code)
	}
	found := false
	for _, e := range readEvents(t, eventLog, len(evs)+2) {
		if e.TokenID == tok2.ID && e.Data.Stream && e.Data.Status == http.StatusOK {
			found = true
		}
	}
	if !found {
		t.Fatal("the event of the stream that outlived SIGTERM was not delivered")
	}
}

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return b.String()
}
