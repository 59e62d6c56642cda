package e2e

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/mockopenai"
)

// TestRequestIDsThroughServe: on /manage and /v1 alike a client's
// X-Request-ID comes back as X-Client-Request-Id and our own id is in
// X-Request-ID; the access log line carries both, and so does the request
// event, whose id is ours.
func TestRequestIDsThroughServe(t *testing.T) {
	up := mockopenai.Start(mockopenai.Options{APIKey: upstreamKey})
	t.Cleanup(up.Close)
	dir := t.TempDir()
	eventLog := filepath.Join(dir, "events.jsonl")
	const mgmt = "e2e-management-token"
	s := startServe(t, dir, map[string]string{
		"MANAGEMENT_TOKEN":   mgmt,
		"OPENAI_API_URL":     up.URL,
		"FILE_EVENT_LOG":     eventLog,
		"LOG_FORMAT":         "json",
		"LOG_FLUSH_INTERVAL": "0s",
		"LOG_LEVEL":          "info", // the access log
	})
	var project struct {
		ID string `json:"id"`
	}
	if code := api(t, "POST", s.URL+"/manage/projects", mgmt, map[string]any{"name": "ids", "api_key": upstreamKey}, &project); code != http.StatusCreated {
		t.Fatalf("create project: %d", code)
	}
	var tok struct {
		Token string `json:"token"`
	}
	if code := api(t, "POST", s.URL+"/manage/tokens", mgmt, map[string]any{"project_id": project.ID, "duration": "1h"}, &tok); code != http.StatusCreated {
		t.Fatalf("create token: %d", code)
	}

	ours := map[string]string{} // client id -> our id
	for _, c := range []struct {
		client, method, path, bearer, body string
	}{
		{"client-manage-1", "GET", "/manage/projects", mgmt, ""},
		{"client-v1-1", "POST", "/v1/chat/completions", tok.Token, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`},
	} {
		req, err := http.NewRequest(c.method, s.URL+c.path, strings.NewReader(c.body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+c.bearer)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Request-ID", c.client)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %d", c.method, c.path, resp.StatusCode)
		}
		id := resp.Header.Get("X-Request-ID")
		if len(id) != 32 || id == c.client {
			t.Fatalf("%s: X-Request-ID = %q, want an id of ours", c.path, id)
		}
		if got := resp.Header.Get("X-Client-Request-Id"); got != c.client {
			t.Fatalf("%s: X-Client-Request-Id = %q, want %q", c.path, got, c.client)
		}
		ours[c.client] = id
	}

	// The access log: one line per request, with both ids.
	for client, id := range ours {
		deadline := time.Now().Add(10 * time.Second)
		for !accessLogged(s.Stdout()+s.Stderr(), id, client) {
			if time.Now().After(deadline) {
				t.Fatalf("no access log line with request_id %q and client_request_id %q:\n%s%s", id, client, s.Stdout(), s.Stderr())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	// The request event: its id is ours, its data has both.
	deadline := time.Now().Add(15 * time.Second)
	for {
		if ev, ok := requestEvent(t, eventLog); ok {
			if ev.ID != ours["client-v1-1"] || ev.Data.RequestID != ev.ID || ev.Data.ClientRequestID != "client-v1-1" {
				t.Fatalf("event id %q, request_id %q, client_request_id %q; want %q and client-v1-1",
					ev.ID, ev.Data.RequestID, ev.Data.ClientRequestID, ours["client-v1-1"])
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no request event")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// accessLogged reports whether out has an access log line with both ids.
func accessLogged(out, id, client string) bool {
	for line := range strings.Lines(out) {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "http request" &&
			m["request_id"] == id && m["client_request_id"] == client {
			return true
		}
	}
	return false
}

// idEvent is the part of a request event this test reads.
type idEvent struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data struct {
		RequestID       string `json:"request_id"`
		ClientRequestID string `json:"client_request_id"`
	} `json:"data"`
}

// requestEvent returns the first request event in the file event log.
func requestEvent(t *testing.T, path string) (idEvent, bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		return idEvent{}, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e idEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("event line is not JSON: %v: %s", err, sc.Text())
		}
		if e.Type == "io.llmproxy.request.completed.v1" {
			return e, true
		}
	}
	return idEvent{}, false
}
