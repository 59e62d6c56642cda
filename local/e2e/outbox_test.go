package e2e

import (
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// `llm-proxy serve` publishing to K_SINK while the sink refuses
// connections keeps its events in DATA_DIR/outbox (0600 in 0700) across a
// SIGTERM, and the next start delivers them, each once and in order.
func TestServeKeepsEventsWhileTheSinkIsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // the sink is down: nothing listens at addr

	dir := t.TempDir()
	const mgmt = "e2e-management-token-0123456789abcdef"
	env := map[string]string{
		"MANAGEMENT_TOKEN":    mgmt,
		"LLM_PROXY_EVENT_BUS": "http",
		"K_SINK":              "http://" + addr + "/",
		"EVENT_RETRY_BACKOFF": "10ms",
	}
	s := startServe(t, dir, env)
	var project struct {
		ID string `json:"id"`
	}
	if code := api(t, "POST", s.URL+"/manage/projects", mgmt, map[string]any{"name": "outbox", "api_key": upstreamKey}, &project); code != http.StatusCreated {
		t.Fatalf("create project: %d", code)
	}
	for range 3 {
		if code := api(t, "POST", s.URL+"/manage/tokens", mgmt, map[string]any{"project_id": project.ID, "duration": "1h"}, nil); code != http.StatusCreated {
			t.Fatalf("create token: %d", code)
		}
	}
	s.Signal(syscall.SIGTERM)
	if code := s.Wait(20 * time.Second); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	box := filepath.Join(dir, "outbox", "events-0.outbox")
	for path, want := range map[string]os.FileMode{filepath.Dir(box): 0o700 | os.ModeDir, box: 0o600} {
		if st, err := os.Stat(path); err != nil || st.Mode() != want {
			t.Fatalf("%s: %v, want mode %v", path, err, want)
		}
	}

	// The sink is back; serve starts again over the same DATA_DIR.
	var mu sync.Mutex
	var types []string
	seen := map[string]int{}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	sink := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		key := r.Header.Get("Ce-Source") + " " + r.Header.Get("Ce-Id")
		if seen[key]++; seen[key] == 1 {
			types = append(types, r.Header.Get("Ce-Type"))
		}
		w.WriteHeader(http.StatusAccepted)
	})}
	go func() { _ = sink.Serve(ln) }()
	defer sink.Close()
	s = startServe(t, dir, env)
	deadline := time.Now().Add(15 * time.Second)
	for {
		mu.Lock()
		n := len(types)
		mu.Unlock()
		if n >= 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sink got %d of the 4 kept events", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.Signal(syscall.SIGTERM)
	if code := s.Wait(20 * time.Second); code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"io.llmproxy.project.updated.v1", "io.llmproxy.token.created.v1", "io.llmproxy.token.created.v1", "io.llmproxy.token.created.v1"}
	if len(types) != len(want) {
		t.Fatalf("sink got %v, want %v", types, want)
	}
	for i := range want {
		if types[i] != want[i] {
			t.Fatalf("sink got %v, want %v", types, want)
		}
	}
	for key, n := range seen {
		if n != 1 {
			t.Errorf("%s delivered %d times", key, n)
		}
	}
	if st, err := os.Stat(box); err != nil || st.Size() != 16 {
		t.Fatalf("outbox after delivery: %v %v bytes, want the 16-byte header", err, st.Size())
	}
}
