package proxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/apiconfig"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

// What an open, idle stream may cost the proxy, in bytes per stream. The
// heap bound is absolute: the live heap of the server and upstream side of
// a stream (33 KiB when it was set; 100 KiB with the two 32 KiB buffers a
// stream used to hold). A bare httputil.ReverseProxy, measured beside it,
// holds 62 KiB, 32 of them its copy buffer. The stack bound is relative to
// the bare proxy, whose stacks the race detector changes as much as ours:
// the request's goroutine runs the handler chain, 16 KiB of stack where the
// bare proxy's needs 8. A stream runs no goroutine of its own.
const (
	maxStreamHeap       = 36 << 10
	maxStreamExtraStack = 10 << 10
)

// streamCost is what a batch of open streams costs a process, per stream.
type streamCost struct {
	Heap       float64 `json:"heap"`       // live heap after a full GC, bytes
	Stack      float64 `json:"stack"`      // StackInuse, bytes
	Goroutines float64 `json:"goroutines"` // goroutines
}

func (c streamCost) minus(o streamCost) streamCost {
	return streamCost{Heap: c.Heap - o.Heap, Stack: c.Stack - o.Stack, Goroutines: c.Goroutines - o.Goroutines}
}

func (c streamCost) String() string {
	return fmt.Sprintf("heap %.1f KiB, stacks %.1f KiB, %.2f goroutines", c.Heap/1024, c.Stack/1024, c.Goroutines)
}

// streamMemoryTarget selects, in a child process, what the streams go
// through.
const streamMemoryTarget = "LLMPROXY_STREAM_MEMORY_TARGET"

// TestStreamMemory measures what an open, idle stream costs the proxy:
// streams are opened through it to an upstream that sends the first events
// and then waits, and the process's live heap, goroutine stacks and
// goroutines are compared with the same streams opened to the upstream
// directly and through a bare httputil.ReverseProxy. Each target runs in a
// fresh process (the runtime keeps stacks and heap of earlier goroutines);
// the three run at once, each measuring only itself.
func TestStreamMemory(t *testing.T) {
	if target := os.Getenv(streamMemoryTarget); target != "" {
		reportStreamCost(t, target)
		return
	}
	targets := []string{"direct", "bare", "proxy"}
	costs := make([]streamCost, len(targets))
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, target := range targets {
		wg.Go(func() { costs[i], errs[i] = measureInChild(target) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		return
	}
	bare := costs[1].minus(costs[0])
	proxy := costs[2].minus(costs[0])
	t.Logf("per stream, beyond the upstream and the client: bare reverse proxy %v; proxy %v", bare, proxy)
	if proxy.Heap > maxStreamHeap {
		t.Errorf("an open stream holds %.1f KiB of heap in the proxy, want at most %d KiB", proxy.Heap/1024, maxStreamHeap>>10)
	}
	if extra := proxy.Stack - bare.Stack; extra > maxStreamExtraStack {
		t.Errorf("an open stream holds %.1f KiB more goroutine stacks in the proxy than in a bare reverse proxy, want at most %d KiB", extra/1024, maxStreamExtraStack>>10)
	}
	if extra := proxy.Goroutines - bare.Goroutines; extra > 0.05 {
		t.Errorf("an open stream runs %.2f goroutines more than through a bare reverse proxy, want none", extra)
	}
}

// measureInChild runs this test binary again to measure target. A child
// that hangs is killed and reported with what it printed, not left to the
// suite's timeout.
func measureInChild(target string) (streamCost, error) {
	ctx, cancel := context.WithTimeout(context.Background(), childTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestStreamMemory$", "-test.v")
	// A race-built child would otherwise sleep a second before it exits.
	cmd.Env = append(os.Environ(), streamMemoryTarget+"="+target, "GORACE=atexit_sleep_ms=0 "+os.Getenv("GORACE"))
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return streamCost{}, fmt.Errorf("%s: the child did not finish within %v\n%s", target, childTimeout, out)
	}
	if err != nil {
		return streamCost{}, fmt.Errorf("%s: %w\n%s", target, err, out)
	}
	_, line, ok := bytes.Cut(out, []byte("STREAMCOST "))
	if !ok {
		return streamCost{}, fmt.Errorf("%s: no result in the output:\n%s", target, out)
	}
	line, _, _ = bytes.Cut(line, []byte("\n"))
	var c streamCost
	if err := json.Unmarshal(line, &c); err != nil {
		return streamCost{}, fmt.Errorf("%s: %w: %s", target, err, line)
	}
	return c, nil
}

// memoryStreams is how many streams a child opens at once.
const memoryStreams = 300

// childTimeout bounds a child's run; streamTimeout bounds one of its
// streams (gated ones wait for all the others to open).
const (
	childTimeout  = 4 * time.Minute
	streamTimeout = 2 * time.Minute
)

// reportStreamCost runs in the child: it opens the streams through target
// and prints their cost per stream.
func reportStreamCost(t *testing.T, target string) {
	up := newGatedUpstream()
	upSrv := httptest.NewServer(up)
	var srv *httptest.Server
	// The gate opens before the servers close: Close waits for the
	// requests in flight, which wait for the gate.
	defer func() {
		up.release()
		if srv != nil {
			srv.Close()
		}
		upSrv.Close()
	}()

	var h http.Handler
	token := upstreamKey
	switch target {
	case "direct":
		h = nil
	case "bare":
		u, _ := url.Parse(upSrv.URL)
		h = &httputil.ReverseProxy{
			Rewrite:       func(pr *httputil.ProxyRequest) { pr.SetURL(u) },
			Transport:     &http.Transport{MaxIdleConnsPerHost: memoryStreams},
			FlushInterval: -1,
		}
	case "proxy":
		api, err := apiconfig.Default().WithBaseURL(upSrv.URL)
		if err != nil {
			t.Fatal(err)
		}
		cfg := testConfig()
		cfg.CaptureBodies = false // the production default
		cfg.UpstreamResponseHeaderTimeout = time.Minute
		log := slog.New(slog.DiscardHandler)
		p, err := New(Deps{Config: cfg, API: api, Auth: goodAuth(), Usage: newUsageRecorder(), Counter: sharedCounter(), Events: discardSink{}, Log: log})
		if err != nil {
			t.Fatal(err)
		}
		mux := http.NewServeMux()
		mux.Handle("/v1/", p)
		h, token = web.Chain(log, mux), goodToken
	default:
		t.Fatalf("unknown target %q", target)
	}
	base := upSrv.URL
	if h != nil {
		srv = httptest.NewServer(h)
		base = srv.URL
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: memoryStreams}}
	for range 3 { // warm-up: pools, token encodings, the first connections
		if err := readStream(client, base, token, nil); err != nil {
			t.Fatal(err)
		}
	}
	up.gate()
	before := memNow()

	first := make(chan struct{}, memoryStreams)
	errs := make(chan error, memoryStreams)
	var wg sync.WaitGroup
	for range memoryStreams {
		wg.Go(func() {
			if err := readStream(client, base, token, first); err != nil {
				errs <- err
			}
		})
	}
	for range memoryStreams {
		select {
		case <-first:
		case err := <-errs:
			t.Fatal(err)
		case <-time.After(time.Minute):
			t.Fatal("streams did not open within a minute")
		}
	}
	open := memNow()
	up.release()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	n := float64(memoryStreams)
	c := streamCost{
		Heap:       float64(open.heap-before.heap) / n,
		Stack:      float64(open.stack-before.stack) / n,
		Goroutines: float64(open.goroutines-before.goroutines) / n,
	}
	b, _ := json.Marshal(c)
	fmt.Printf("STREAMCOST %s\n", b)
}

type memSnap struct {
	heap, stack int64
	goroutines  int
}

func memNow() memSnap {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSnap{heap: int64(ms.HeapAlloc), stack: int64(ms.StackInuse), goroutines: runtime.NumGoroutine()}
}

const memoryStreamBody = `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Count to fifty."}]}`

// readStream reads one stream to its end; first (if any) hears when the
// first content event arrived.
func readStream(client *http.Client, base, token string, first chan<- struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), streamTimeout)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/chat/completions", strings.NewReader(memoryStreamBody))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	sc := bufio.NewScanner(resp.Body)
	events, done := 0, false
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "data: ") {
			continue
		}
		events++
		if events == 2 && first != nil {
			first <- struct{}{}
		}
		done = line == "data: [DONE]"
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if !done || events != gatedChunks+3 {
		return fmt.Errorf("stream ended after %d events (done %v)", events, done)
	}
	return nil
}

// gatedChunks is how many content chunks a gated stream has.
const gatedChunks = 10

// gatedUpstream answers chat completions with OpenAI-shaped streams; once
// gated, it sends the role chunk and the first content chunk and then waits
// until released, so that every stream is open and idle when measured.
type gatedUpstream struct {
	gateCh atomic.Pointer[chan struct{}]
	once   sync.Once
}

func newGatedUpstream() *gatedUpstream { return &gatedUpstream{} }

func (u *gatedUpstream) gate() {
	ch := make(chan struct{})
	u.gateCh.Store(&ch)
}

func (u *gatedUpstream) release() {
	if ch := u.gateCh.Load(); ch != nil {
		u.once.Do(func() { close(*ch) })
	}
}

func (u *gatedUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	includeUsage := bytes.Contains(body, []byte(`"include_usage":true`))
	w.Header().Set("Content-Type", "text/event-stream; charset=utf-8")
	rc := http.NewResponseController(w)
	chunk := func(delta string, finish string) {
		fin := "null"
		if finish != "" {
			fin = `"` + finish + `"`
		}
		usage := ""
		if includeUsage {
			usage = `,"usage":null`
		}
		fmt.Fprintf(w, `data: {"id":"chatcmpl-gated","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","system_fingerprint":"fp_gated","choices":[{"index":0,"delta":%s,"logprobs":null,"finish_reason":%s}]%s}`+"\n\n", delta, fin, usage)
		_ = rc.Flush()
	}
	chunk(`{"role":"assistant","content":""}`, "")
	for i := range gatedChunks {
		chunk(fmt.Sprintf(`{"content":"tok%d "}`, i), "")
		if i == 0 {
			if ch := u.gateCh.Load(); ch != nil {
				select {
				case <-*ch:
				case <-r.Context().Done():
					return
				}
			}
		}
	}
	chunk(`{}`, "stop")
	if includeUsage {
		fmt.Fprint(w, `data: {"id":"chatcmpl-gated","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":4,"completion_tokens":10,"total_tokens":14}}`+"\n\n")
	}
	fmt.Fprint(w, "data: [DONE]\n\n")
}
