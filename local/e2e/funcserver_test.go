package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/llm-proxy/llm-proxy/events"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// TestFunctionServer: a deployable function is served with the configured
// header timeout (a client that sends its headers slowly is cut off), says
// nothing on stdout per request even on Knative (K_SERVICE set), receives
// CloudEvents up to DISPATCHER_MAX_EVENT_BYTES, and refuses to start as
// another function than its image's.
func TestFunctionServer(t *testing.T) {
	eventLog := filepath.Join(t.TempDir(), "events.jsonl")
	base, p := function(t, "dispatcher", map[string]string{
		"FILE_EVENT_LOG":             eventLog,
		"READ_HEADER_TIMEOUT":        "300ms",
		"DISPATCHER_MAX_EVENT_BYTES": "4096",
		"K_SERVICE":                  "dispatcher",
		"FUNCTION_TARGET":            "dispatcher",
	})

	t.Run("slow headers are cut off", func(t *testing.T) {
		conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET /_/health HTTP/1.1\r\nHost: x\r\n"); err != nil { // never ends its headers
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second)) // bounds the test, far above 300ms
		_, err = io.ReadAll(conn)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("the connection stayed open with its headers unfinished: READ_HEADER_TIMEOUT is not applied")
		}
	})

	t.Run("a CloudEvent is received, stdout stays empty", func(t *testing.T) {
		resp := postEvent(t, base, "funcserver-1", 0, false)
		if resp.status/100 != 2 {
			t.Fatalf("CloudEvent: status %d %s, want 2xx", resp.status, resp.body)
		}
		b, err := os.ReadFile(eventLog)
		if err != nil || !strings.Contains(string(b), "funcserver-1") {
			t.Fatalf("event log %q (%v), want the event", b, err)
		}
		if out := p.Stdout(); out != "" {
			t.Fatalf("stdout = %q, want nothing (functions-framework-go printed empty lines per request on Knative)", out)
		}
	})

	t.Run("an event over DISPATCHER_MAX_EVENT_BYTES is refused", func(t *testing.T) {
		for _, chunked := range []bool{false, true} {
			id := fmt.Sprintf("funcserver-big-%v", chunked)
			resp := postEvent(t, base, id, 8192, chunked)
			if !chunked && resp.status != http.StatusRequestEntityTooLarge {
				t.Fatalf("declared length: %d %s, want 413", resp.status, resp.body)
			}
			if chunked && resp.status/100 == 2 {
				t.Fatalf("chunked: %d %s, want a refusal", resp.status, resp.body)
			}
			if log, _ := os.ReadFile(eventLog); strings.Contains(string(log), id) {
				t.Fatalf("the oversize event %s was delivered", id)
			}
		}
	})

	t.Run("FUNCTION_TARGET names another function", func(t *testing.T) {
		q := start(t, binary(t, "./functions/dispatcher/cmd"), map[string]string{
			"PORT": freePort(t), "FUNCTION_TARGET": "proxy", "FILE_EVENT_LOG": filepath.Join(t.TempDir(), "never.jsonl"),
		})
		if code := q.Wait(30 * time.Second); code == 0 {
			t.Fatal("started as the proxy function, want a refusal")
		}
		sc := bufio.NewScanner(strings.NewReader(q.Stderr()))
		found := false
		for sc.Scan() {
			found = found || strings.Contains(sc.Text(), "FUNCTION_TARGET=proxy")
		}
		if !found {
			t.Fatalf("stderr %q does not name FUNCTION_TARGET", q.Stderr())
		}
	})
}

type answer struct {
	status int
	body   string
}

// postEvent sends a request.completed CloudEvent (binary mode) with id to
// base, its request body padded with pad bytes, chunked (no declared
// length) when asked.
func postEvent(t *testing.T, base, id string, pad int, chunked bool) answer {
	t.Helper()
	info := &llmproxy.RequestInfo{RequestID: id, Method: "POST", Path: "/v1/chat/completions",
		TokenID: "tok_1", ProjectID: "prj_1", Status: 200, Start: time.Now(),
		RequestBody: []byte(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + strings.Repeat("x", pad) + `"}]}`)}
	e, err := events.NewRequestCompletedEvent(events.DefaultSource, events.BuildRequestCompleted(info, true))
	if err != nil {
		t.Fatal(err)
	}
	req, err := cloudevents.NewHTTPRequestFromEvent(context.Background(), base+"/", e)
	if err != nil {
		t.Fatal(err)
	}
	if chunked { // unknown length: sent chunked, only the read can stop it
		req.Body, req.ContentLength = io.NopCloser(io.MultiReader(req.Body)), 0
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, body: string(b)}
}
