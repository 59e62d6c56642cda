package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/faultproxy"
	"github.com/llm-proxy/llm-proxy/internal/mockopenai"
	"github.com/llm-proxy/llm-proxy/internal/testenv"
)

// TestHungDatabase: `llm-proxy serve` on PostgreSQL reached through a
// fault proxy that accepts connections and never answers. A valid token
// the process has never seen gets an OpenAI-shaped 503 on /v1 within
// DATABASE_QUERY_TIMEOUT (never a 401, never a hang), a management call
// gets 503 within twice that (the call, then the audit record of its
// failure), and both work again once the database answers, without a
// restart.
func TestHungDatabase(t *testing.T) {
	t.Parallel()
	const queryTimeout = 500 * time.Millisecond
	up := mockopenai.Start(mockopenai.Options{APIKey: upstreamKey})
	t.Cleanup(up.Close)
	db, viaProxy := faultproxy.StartURL(t, testenv.PostgresURL(t))
	env := map[string]string{
		"DB_DRIVER":              "postgres",
		"DATABASE_URL":           viaProxy,
		"DATABASE_QUERY_TIMEOUT": queryTimeout.String(),
		"HTTP_CACHE_ENABLED":     "false",
		"ENCRYPTION_KEY":         "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
		"MANAGEMENT_TOKEN":       "hung-database-management-token-0123456789",
		"OPENAI_API_URL":         up.URL,
		"LLM_PROXY_EVENT_BUS":    "none",
	}
	s := startServe(t, t.TempDir(), env)
	mgmt := env["MANAGEMENT_TOKEN"]
	var p struct {
		ID string `json:"id"`
	}
	if code := api(t, "POST", s.URL+"/manage/projects", mgmt, map[string]any{"name": "hung-" + testenv.Suffix(), "api_key": upstreamKey}, &p); code != http.StatusCreated {
		t.Fatalf("create project: %d", code)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if code := api(t, "POST", s.URL+"/manage/tokens", mgmt, map[string]any{"project_id": p.ID, "duration": "1h"}, &tok); code != http.StatusCreated {
		t.Fatalf("create token: %d", code)
	}

	chat := func() (int, []byte, time.Duration) {
		t.Helper()
		req, _ := http.NewRequest("POST", s.URL+"/v1/chat/completions",
			strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		req.Header.Set("Content-Type", "application/json")
		return do(t, req)
	}
	listProjects := func() (int, []byte, time.Duration) {
		t.Helper()
		req, _ := http.NewRequest("GET", s.URL+"/manage/projects", nil)
		req.Header.Set("Authorization", "Bearer "+mgmt)
		return do(t, req)
	}

	db.Hang()
	bound := queryTimeout + time.Second // the deadline, and the process's own work
	code, body, took := chat()
	if code != http.StatusServiceUnavailable || took > bound {
		t.Fatalf("/v1 with a never-seen token on a hung database: %d after %v (%s), want 503 within %v", code, took, body, bound)
	}
	var openAI struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
			Code    string `json:"code"`
		} `json:"error"`
	}
	if err := json.Unmarshal(body, &openAI); err != nil || openAI.Error.Message == "" || openAI.Error.Type == "" {
		t.Fatalf("/v1 503 body is not an OpenAI error: %s", body)
	}
	t.Logf("/v1: 503 after %v", took)
	// A management call that fails writes the audit record of its failure:
	// a second deadline.
	code, body, took = listProjects()
	if code != http.StatusServiceUnavailable || took > 2*queryTimeout+time.Second {
		t.Fatalf("management call on a hung database: %d after %v (%s), want 503 within %v", code, took, body, 2*queryTimeout)
	}
	t.Logf("management: 503 after %v", took)

	db.Restore()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c1, _, _ := chat()
		c2, _, _ := listProjects()
		if c1 == http.StatusOK && c2 == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the database answers again: /v1 %d, management %d, want 200 without a restart", c1, c2)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// do sends req with a client-side bound far above the one under test and
// returns the status, the body and how long the answer took.
func do(t *testing.T, req *http.Request) (int, []byte, time.Duration) {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: no answer: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, time.Since(start)
}
