package httpcache

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

const streamBody = `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`

// chunks returns an OpenAI-like chat stream of n content chunks plus [DONE].
func chunks(n int, tag string) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("data: {\"id\":\"c-%s\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tok%d \"}}]}\n\n", tag, i))
	}
	return append(out, "data: [DONE]\n\n")
}

// sseUpstream streams events, flushing each. Before event `pause` (if >= 0)
// it calls wait, which may block or break the connection.
func sseUpstream(events []string, pause int, wait func(w http.ResponseWriter, r *http.Request) bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.Header().Set("X-Request-ID", "upstream-stream")
		w.WriteHeader(http.StatusOK)
		for i, ev := range events {
			if i == pause && !wait(w, r) {
				return
			}
			_, _ = io.WriteString(w, ev)
			http.NewResponseController(w).Flush()
		}
	}
}

// flushRecorder records each write and counts flushes.
type flushRecorder struct {
	*httptest.ResponseRecorder
	mu      sync.Mutex
	writes  []string
	flushes int
}

func (f *flushRecorder) Write(p []byte) (int, error) {
	f.mu.Lock()
	f.writes = append(f.writes, string(p))
	f.mu.Unlock()
	return f.ResponseRecorder.Write(p)
}

func (f *flushRecorder) Flush() {
	f.mu.Lock()
	f.flushes++
	f.mu.Unlock()
	f.ResponseRecorder.Flush()
}

func TestStreamReplay(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backendKind) {
		h := newHarness(t, bk, Options{})
		events := chunks(20, "a")
		h.up.set(sseUpstream(events, -1, nil))
		w1, i1 := h.do(req{body: streamBody, stream: true, header: optIn})
		expectStatus(t, w1, i1, llmproxy.CacheStored)
		if w1.Body.String() != strings.Join(events, "") {
			t.Fatalf("live stream altered:\n%s", w1.Body)
		}

		r := h.request(req{body: streamBody, stream: true, header: optIn})
		w := &flushRecorder{ResponseRecorder: httptest.NewRecorder()}
		expectStatus(t, w.ResponseRecorder, h.serve(w, r), llmproxy.CacheHit)
		if !slices.Equal(w.writes, events) {
			t.Fatalf("replayed events differ:\n got %q\nwant %q", w.writes, events)
		}
		if w.flushes < len(events) {
			t.Fatalf("%d flushes for %d events", w.flushes, len(events))
		}
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
			t.Fatalf("Content-Type %q", ct)
		}
		if w.Header().Get("Content-Length") != "" {
			t.Fatal("stream replay with Content-Length")
		}
		h.expectCalls(1)

		// a non-streamed request with the same path never gets the stream
		w2, i2 := h.do(req{body: streamBody, stream: false, header: optIn})
		if i2 == llmproxy.CacheHit {
			t.Fatalf("non-stream request served a stream: %s", w2.Body)
		}
	})
}

func TestStreamNotStored(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backendKind) {
		cases := []struct {
			name   string
			events []string
			pause  int
			wait   func(w http.ResponseWriter, r *http.Request) bool
			opts   Options
		}{
			{name: "over-size", events: chunks(40, "big"), pause: -1, opts: Options{MaxObjectBytes: 500}},
			{name: "truncated without [DONE]", events: chunks(5, "t")[:5], pause: -1},
			{name: "upstream breaks mid-stream", events: chunks(5, "x"), pause: 3, wait: func(w http.ResponseWriter, r *http.Request) bool {
				conn, _, err := http.NewResponseController(w).Hijack()
				if err == nil {
					conn.Close()
				}
				return false
			}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				h := newHarness(t, bk, tc.opts)
				h.up.set(sseUpstream(tc.events, tc.pause, tc.wait))
				srv, done := h.server()
				resp := h.post(t, srv.URL, context.Background())
				got, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				<-done
				if tc.pause < 0 && string(got) != strings.Join(tc.events, "") {
					t.Fatalf("client did not get the whole stream: %d bytes", len(got))
				}
				assertNotStored(t, h)
			})
		}
	})
}

func TestAbortedStreamNotStored(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backendKind) {
		h := newHarness(t, bk, Options{})
		events := chunks(10, "abort")
		h.up.set(sseUpstream(events, 3, func(w http.ResponseWriter, r *http.Request) bool {
			<-r.Context().Done() // until the proxy cancels the upstream request
			return false
		}))
		srv, done := h.server()
		ctx, cancel := context.WithCancel(context.Background())
		resp := h.post(t, srv.URL, ctx)
		br := bufio.NewReader(resp.Body)
		if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "data: ") {
			t.Fatalf("first line %q, %v", line, err)
		}
		cancel() // client goes away mid-stream
		resp.Body.Close()
		<-done
		assertNotStored(t, h)
	})
}

// sameVariant are the headers of the real-HTTP requests (h.post).
var sameVariant = withHeaders(optIn, "Accept-Encoding", "identity")

// TestStreamStoredOverHTTP is the control for the tests above: a complete
// stream over real HTTP is stored and hit by the same request.
func TestStreamStoredOverHTTP(t *testing.T) {
	forEachBackend(t, func(t *testing.T, bk backendKind) {
		h := newHarness(t, bk, Options{})
		events := chunks(5, "ok")
		h.up.set(sseUpstream(events, -1, nil))
		srv, done := h.server()
		resp := h.post(t, srv.URL, context.Background())
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		<-done
		if resp.Header.Get(HeaderProxyCache) != llmproxy.CacheStored || string(got) != strings.Join(events, "") {
			t.Fatalf("first response: %q %q", resp.Header.Get(HeaderProxyCache), got)
		}
		w, status := h.do(req{body: streamBody, stream: true, header: sameVariant})
		if status != llmproxy.CacheHit || w.Body.String() != strings.Join(events, "") {
			t.Fatalf("complete stream not replayed: %q %q", status, w.Body)
		}
		resp = h.post(t, srv.URL, context.Background())
		got, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		<-done
		if resp.Header.Get(HeaderProxyCache) != llmproxy.CacheHit || string(got) != strings.Join(events, "") {
			t.Fatalf("hit over HTTP: %q %q", resp.Header.Get(HeaderProxyCache), got)
		}
		h.expectCalls(1)
	})
}

// assertNotStored checks that the stream request of h is not in the cache:
// the next (complete) request goes upstream and is stored.
func assertNotStored(t *testing.T, h *harness) {
	t.Helper()
	before := h.up.calls.Load()
	h.up.set(sseUpstream(chunks(2, "fresh"), -1, nil))
	w, status := h.do(req{body: streamBody, stream: true, header: sameVariant})
	if status == llmproxy.CacheHit {
		t.Fatalf("partial stream was stored and replayed: %q", w.Body)
	}
	if h.up.calls.Load() != before+1 {
		t.Fatalf("upstream calls %d, want %d", h.up.calls.Load(), before+1)
	}
}

// server serves the harness over real HTTP (the requests of post). done
// receives once per finished request.
func (h *harness) server() (*httptest.Server, chan struct{}) {
	done := make(chan struct{}, 16)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() { done <- struct{}{} }()
		h.h.ServeHTTP(w, r)
	}))
	srv.Config.ErrorLog = nil
	h.t.Cleanup(srv.Close)
	return srv, done
}

func (h *harness) post(t *testing.T, base string, ctx context.Context) *http.Response {
	t.Helper()
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", strings.NewReader(streamBody))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Cache-Control", "public, max-age=60")
	r.Header.Set("X-Project", "proj-a")
	r.Header.Set("X-Stream", "1")
	r.Header.Set("Accept-Encoding", "identity") // same variant as sameVariant
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}
