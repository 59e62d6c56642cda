package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/llm-proxy/llm-proxy/internal/mockopenai"
)

const upstreamKey = "sk-e2e-upstream-key-0123456789abcdef"

// fileEvent is one line of the file dispatcher: a structured CloudEvent.
type fileEvent struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Subject   string `json:"subject"`
	ProjectID string `json:"projectid"`
	TokenID   string `json:"tokenid"`
	Data      struct {
		RequestID       string `json:"request_id"`
		ClientRequestID string `json:"client_request_id"`
		Path            string `json:"path"`
		Status          int    `json:"status"`
		Stream          bool   `json:"stream"`
		CacheStatus     string `json:"cache_status"`
		ErrorCode       string `json:"error_code"`
		Usage           struct {
			Prompt     int64  `json:"prompt_tokens"`
			Completion int64  `json:"completion_tokens"`
			Total      int64  `json:"total_tokens"`
			Source     string `json:"source"`
		} `json:"usage"`
	} `json:"data"`
}

// readEvents polls the JSONL file until want events are there.
func readEvents(t *testing.T, path string, want int) []fileEvent {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var evs []fileEvent
		if f, err := os.Open(path); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var e fileEvent
				if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
					t.Fatalf("event line is not JSON: %v: %s", err, sc.Text())
				}
				evs = append(evs, e)
			}
			f.Close()
		}
		if len(evs) >= want || time.Now().After(deadline) {
			if len(evs) < want {
				t.Fatalf("want %d events in %s, got %d: %+v", want, path, len(evs), evs)
			}
			return evs
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestProxyThroughServe is the whole system in one process, driven with the
// official SDK: plain, streamed, cached and rejected requests reach (or do
// not reach) the mock upstream with the project's key, and each produces a
// request event with correct usage in the file dispatcher.
func TestProxyThroughServe(t *testing.T) {
	up := mockopenai.Start(mockopenai.Options{APIKey: upstreamKey, Chunks: 4})
	t.Cleanup(up.Close)
	dir := t.TempDir()
	eventLog := filepath.Join(dir, "events.jsonl")
	const mgmt = "e2e-management-token-0123456789abcdef"
	s := startServe(t, dir, map[string]string{
		"MANAGEMENT_TOKEN": mgmt,
		"OPENAI_API_URL":   up.URL,
		"FILE_EVENT_LOG":   eventLog,
		// The access log, each line written at once.
		"LOG_LEVEL": "info", "LOG_FORMAT": "json", "LOG_FLUSH_INTERVAL": "0s",
	})

	// 0. request ids on /manage: ours in X-Request-ID, the client's echoed
	manageID := checkRequestIDs(t, s, mgmt, "client-manage-1")

	var project struct {
		ID string `json:"id"`
	}
	if code := api(t, "POST", s.URL+"/manage/projects", mgmt, map[string]any{"name": "e2e", "api_key": upstreamKey}, &project); code != http.StatusCreated {
		t.Fatalf("create project: %d", code)
	}
	var tok struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	if code := api(t, "POST", s.URL+"/manage/tokens", mgmt, map[string]any{"project_id": project.ID, "duration": "1h"}, &tok); code != http.StatusCreated {
		t.Fatalf("create token: %d", code)
	}

	client := openai.NewClient(option.WithBaseURL(s.URL+"/v1/"), option.WithAPIKey(tok.Token), option.WithMaxRetries(0))
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{
		Model:    "gpt-4o-mini",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say hello")},
	}

	// 1. plain, with a client request id
	var plainHTTP *http.Response
	resp, err := client.Chat.Completions.New(ctx, params,
		option.WithHeader("X-Request-ID", "client-v1-1"), option.WithResponseInto(&plainHTTP))
	if err != nil {
		t.Fatalf("plain chat: %v", err)
	}
	plainID := plainHTTP.Header.Get("X-Request-ID")
	if len(plainID) != 32 || plainHTTP.Header.Get("X-Client-Request-Id") != "client-v1-1" {
		t.Fatalf("/v1: X-Request-ID %q, X-Client-Request-Id %q; want an id of ours and client-v1-1",
			plainID, plainHTTP.Header.Get("X-Client-Request-Id"))
	}
	if resp.Usage.TotalTokens == 0 || resp.Choices[0].Message.Content == "" {
		t.Fatalf("plain chat answer: %+v", resp)
	}
	if h, _, _ := up.LastRequest(); h.Get("Authorization") != "Bearer "+upstreamKey {
		t.Fatalf("upstream got Authorization %q, want the project's key", h.Get("Authorization"))
	}

	// 2. streamed: the SDK sees content chunks and no usage chunk it did not ask for
	stream := client.Chat.Completions.NewStreaming(ctx, params)
	var content strings.Builder
	for stream.Next() {
		c := stream.Current()
		if len(c.Choices) == 0 {
			t.Fatalf("a usage-only chunk reached a client that did not ask for it: %+v", c)
		}
		content.WriteString(c.Choices[0].Delta.Content)
	}
	if err := stream.Err(); err != nil || content.Len() == 0 {
		t.Fatalf("stream: %v %q", err, content.String())
	}

	// 3. cached: the client opts in; the second call never reaches upstream
	before := up.Requests()
	for i := 0; i < 2; i++ {
		if _, err := client.Models.List(ctx, option.WithHeader("Cache-Control", "public, max-age=60")); err != nil {
			t.Fatalf("models list %d: %v", i, err)
		}
	}
	if got := up.Requests() - before; got != 1 {
		t.Fatalf("upstream saw %d models requests, want 1 (second served from cache)", got)
	}

	// 4. rejected: revoke the token; the proxy refuses it at once
	if code := api(t, "DELETE", s.URL+"/manage/tokens/"+tok.ID, mgmt, nil, nil); code != http.StatusNoContent {
		t.Fatalf("revoke: %d", code)
	}
	before = up.Requests()
	_, err = client.Chat.Completions.New(ctx, params)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized || apiErr.Code != "token_revoked" {
		t.Fatalf("revoked token: %v", err)
	}
	if up.Requests() != before {
		t.Fatal("a revoked token's request reached upstream")
	}

	// 5 request events, and the management changes: project created, token
	// created, token revoked.
	all := readEvents(t, eventLog, 8)
	var evs []fileEvent
	changes := map[string]int{}
	for _, e := range all {
		if e.Type != "io.llmproxy.request.completed.v1" {
			changes[e.Type]++
			continue
		}
		evs = append(evs, e)
	}
	for _, typ := range []string{"io.llmproxy.project.updated.v1", "io.llmproxy.token.created.v1", "io.llmproxy.token.revoked.v1"} {
		if changes[typ] != 1 {
			t.Errorf("want one %s event, got %d (%v)", typ, changes[typ], changes)
		}
	}
	byKind := map[string]fileEvent{}
	for _, e := range evs {
		if e.ProjectID != project.ID || e.Subject != project.ID {
			t.Fatalf("event attributes: %+v", e)
		}
		switch {
		case e.Data.Status == http.StatusUnauthorized:
			byKind["rejected"] = e
		case e.Data.CacheStatus == "hit":
			byKind["hit"] = e
		case e.Data.Stream:
			byKind["stream"] = e
		case e.Data.Path == "/v1/chat/completions":
			byKind["plain"] = e
		}
	}
	for _, k := range []string{"plain", "stream", "hit", "rejected"} {
		if _, ok := byKind[k]; !ok {
			t.Fatalf("no %s event among %+v", k, evs)
		}
	}
	if u := byKind["plain"].Data.Usage; u.Source != "reported" || u.Total != resp.Usage.TotalTokens {
		t.Fatalf("plain usage %+v, want reported total %d", u, resp.Usage.TotalTokens)
	}
	if e := byKind["plain"]; e.ID != plainID || e.Data.RequestID != plainID || e.Data.ClientRequestID != "client-v1-1" {
		t.Fatalf("plain event id %q, request_id %q, client_request_id %q; want %q and client-v1-1", e.ID, e.Data.RequestID, e.Data.ClientRequestID, plainID)
	}
	// The access log carries both ids, on /manage and /v1.
	for client, id := range map[string]string{"client-manage-1": manageID, "client-v1-1": plainID} {
		if !accessLogged(s.Stdout()+s.Stderr(), id, client) {
			t.Fatalf("no access log line with request_id %q and client_request_id %q", id, client)
		}
	}
	if u := byKind["stream"].Data.Usage; u.Source != "reported" || u.Completion == 0 {
		t.Fatalf("stream usage %+v, want reported from the include_usage chunk", u)
	}
	if u := byKind["hit"].Data.Usage; u.Total != 0 {
		t.Fatalf("cache hit billed %+v, want 0", u)
	}
	if e := byKind["rejected"]; e.Data.ErrorCode != "token_revoked" || e.TokenID != tok.ID {
		t.Fatalf("rejected event %+v", e)
	}
	// Usage reaches the hourly aggregates in the background (batched every
	// second): 3 proxied requests (plain, stream, models miss) + 1 cache hit;
	// the rejected one is not admitted and not counted.
	var usage struct {
		Projects []struct {
			ProjectID        string `json:"project_id"`
			Requests         int64  `json:"requests"`
			CacheHits        int64  `json:"cache_hits"`
			PromptTokens     int64  `json:"prompt_tokens"`
			CompletionTokens int64  `json:"completion_tokens"`
		} `json:"projects"`
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code := api(t, "GET", s.URL+"/manage/usage?window=24h", mgmt, nil, &usage); code != http.StatusOK {
			t.Fatalf("usage: %d", code)
		}
		if len(usage.Projects) == 1 && usage.Projects[0].Requests == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("usage after the requests: %+v", usage)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if u := usage.Projects[0]; u.ProjectID != project.ID || u.CacheHits != 1 || u.PromptTokens == 0 || u.CompletionTokens == 0 {
		t.Fatalf("usage %+v", u)
	}
	cliEnv := map[string]string{"MANAGEMENT_TOKEN": mgmt, "MANAGEMENT_API_BASE_URL": s.URL}
	if out, stderr, code := cli(t, cliEnv, "manage", "usage", "show", "--window", "24h"); code != 0 || !strings.Contains(out, project.ID) || !strings.Contains(out, "REQUESTS") {
		t.Fatalf("manage usage show: exit %d\n%s%s", code, out, stderr)
	}
	if out, _, code := cli(t, cliEnv, "manage", "usage", "show", "--window", "1y"); code == 0 {
		t.Fatalf("manage usage show --window 1y accepted:\n%s", out)
	}
	if code := api(t, "GET", s.URL+"/manage/usage?window=1y", mgmt, nil, nil); code != http.StatusBadRequest {
		t.Fatalf("usage with a window over 90 days: %d, want 400", code)
	}

	ids := map[string]bool{}
	for _, e := range evs {
		if ids[e.ID] {
			t.Fatalf("event id %s delivered twice", e.ID)
		}
		ids[e.ID] = true
	}
}

// checkRequestIDs sends GET /manage/projects with the client's X-Request-ID
// and checks that the answer has our own id in X-Request-ID and the client's
// in X-Client-Request-Id; it returns ours.
func checkRequestIDs(t *testing.T, s *Serve, mgmt, client string) string {
	t.Helper()
	req, err := http.NewRequest("GET", s.URL+"/manage/projects", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+mgmt)
	req.Header.Set("X-Request-ID", client)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id := resp.Header.Get("X-Request-ID")
	if resp.StatusCode != http.StatusOK || len(id) != 32 || resp.Header.Get("X-Client-Request-Id") != client {
		t.Fatalf("/manage: %d, X-Request-ID %q, X-Client-Request-Id %q; want an id of ours and %q",
			resp.StatusCode, id, resp.Header.Get("X-Client-Request-Id"), client)
	}
	return id
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
