package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/config"
)

// scriptedBody is an upstream body that hands out the chunks sent to it,
// at most one per Read, and ends when the channel is closed.
type scriptedBody struct {
	chunks chan string
	fail   chan struct{}
	rest   string
}

func newScriptedBody() *scriptedBody {
	return &scriptedBody{chunks: make(chan string, 64), fail: make(chan struct{})}
}

func (b *scriptedBody) Read(p []byte) (int, error) {
	if b.rest == "" {
		select {
		case c, ok := <-b.chunks:
			if !ok {
				return 0, io.EOF
			}
			b.rest = c
		case <-b.fail:
			return 0, io.ErrUnexpectedEOF
		}
	}
	n := copy(p, b.rest)
	b.rest = b.rest[n:]
	return n, nil
}

func (b *scriptedBody) Close() error { return nil }

// clientRecorder is the client side of a relay: what was written and
// flushed to it, safe to inspect while the relay runs.
type clientRecorder struct {
	mu      sync.Mutex
	header  http.Header
	body    strings.Builder
	flushes int
	failErr error
}

func (c *clientRecorder) Header() http.Header { return c.header }
func (c *clientRecorder) WriteHeader(int)     {}

func (c *clientRecorder) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.failErr != nil {
		return 0, c.failErr
	}
	return c.body.Write(b)
}

func (c *clientRecorder) Flush() {
	c.mu.Lock()
	c.flushes++
	c.mu.Unlock()
}

func (c *clientRecorder) written() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.body.String()
}

func startRelay(t *testing.T, keepAlive time.Duration, strip bool) (*relay, *scriptedBody, *clientRecorder) {
	t.Helper()
	src := newScriptedBody()
	client := &clientRecorder{header: http.Header{}}
	st := &state{stripUsage: strip, client: &streamWriter{ResponseWriter: client}}
	r := newRelay(context.Background(), src, st, config.Proxy{StreamKeepAlive: keepAlive})
	t.Cleanup(func() { _ = r.Close() })
	return r, src, client
}

// TestRelayHandsOutWholeEvents: events come out as upstream completes them,
// in order, also through a copy buffer smaller than what is pending.
func TestRelayHandsOutWholeEvents(t *testing.T) {
	r, src, _ := startRelay(t, 0, false)
	src.chunks <- "data: 1\n\ndata: 2\n\ndata: 3"
	buf := make([]byte, streamCopySize)
	n, err := r.Read(buf)
	if err != nil || string(buf[:n]) != "data: 1\n\ndata: 2\n\n" {
		t.Fatalf("Read = %q, %v; want the two complete events", buf[:n], err)
	}
	events := []string{"\n\n", "data: 4\n\n", "data: 5\n\n"}
	for _, e := range events {
		src.chunks <- e
	}
	close(src.chunks)
	var got strings.Builder
	small := make([]byte, 4)
	for {
		n, err := r.Read(small)
		got.Write(small[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if got.String() != "data: 3\n\ndata: 4\n\ndata: 5\n\n" {
		t.Fatalf("read %q", got.String())
	}
	if r.interrupted() {
		t.Fatal("an upstream that ended with EOF is not interrupted")
	}
}

// TestRelayKeepAliveWhileUpstreamIsIdle: while upstream is in the middle of
// an event and then idle, the client gets keep-alive comments, never part
// of the event; the event follows whole once it is complete. No keep-alive
// is written while the reverse proxy is not waiting in Read (it is writing).
func TestRelayKeepAliveWhileUpstreamIsIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const interval = 20 * time.Millisecond
		r, src, client := startRelay(t, interval, false)
		src.chunks <- "data: {\"a\":"
		done := make(chan string)
		go func() {
			buf := make([]byte, streamCopySize)
			n, _ := r.Read(buf)
			done <- string(buf[:n])
		}()
		time.Sleep(2*interval + interval/2)
		synctest.Wait()
		if w := client.written(); w != ": keep-alive\n\n: keep-alive\n\n" {
			t.Fatalf("after 2.5 keep-alive intervals of an idle upstream the client got %q, want two keep-alives", w)
		}
		src.chunks <- "1}\n\n"
		if got := <-done; got != "data: {\"a\":1}\n\n" {
			t.Fatalf("Read = %q, want the whole event", got)
		}
		if w := client.written(); strings.ReplaceAll(w, ": keep-alive\n\n", "") != "" {
			t.Fatalf("the client got more than keep-alives: %q", w)
		}
		before := client.written()
		time.Sleep(5 * interval) // no Read under way: nothing is written
		synctest.Wait()
		if after := client.written(); after != before {
			t.Fatalf("keep-alive written while no Read was under way: %q", after[len(before):])
		}
	})
}

// TestRelayKeepAliveWriteFailureEndsTheStream: a client that cannot take a
// keep-alive ends the stream at the next upstream read.
func TestRelayKeepAliveWriteFailureEndsTheStream(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, src, client := startRelay(t, 10*time.Millisecond, false)
		client.mu.Lock()
		client.failErr = errors.New("broken pipe")
		client.mu.Unlock()
		go func() {
			time.Sleep(100 * time.Millisecond)
			src.chunks <- "data: 1\n\n"
		}()
		buf := make([]byte, streamCopySize)
		if n, err := r.Read(buf); err == nil {
			t.Fatalf("Read = %q, nil; want the write error", buf[:n])
		}
	})
}

// TestRelayUsageAndStrip: the relay reads usage from the events and drops
// the usage chunk the client did not ask for.
func TestRelayUsageAndStrip(t *testing.T) {
	r, src, _ := startRelay(t, 0, true)
	src.chunks <- `data: {"choices":[{"delta":{"content":"hi"}}],"usage":null}` + "\n\n"
	src.chunks <- `data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}` + "\n\ndata: [DONE]\n\n"
	close(src.chunks)
	out, err := io.ReadAll(r)
	if err != nil || string(out) != "data: {\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}\n\ndata: [DONE]\n\n" {
		t.Fatalf("ReadAll = %q, %v", out, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if u, ok := r.acc.Reported(); !ok || u.TotalTokens != 4 {
		t.Fatalf("usage = %+v, %v; want the reported 4 tokens", u, ok)
	}
	if text, _ := r.acc.Text(); text != "hi" {
		t.Fatalf("completion text %q", text)
	}
}

// TestRelayEndsWithTheIncompleteEvent: upstream's last bytes pass through
// even when they do not end an event, and a failure adds the error event.
func TestRelayEndsWithTheIncompleteEvent(t *testing.T) {
	r, src, _ := startRelay(t, 0, false)
	src.chunks <- "data: 1\n\ndata: trunc"
	close(src.chunks)
	out, err := io.ReadAll(r)
	if err != nil || string(out) != "data: 1\n\ndata: trunc" {
		t.Fatalf("ReadAll = %q, %v", out, err)
	}

	r, src, _ = startRelay(t, 0, false)
	src.chunks <- "data: 1\n\ndata: tr"
	go func() {
		time.Sleep(10 * time.Millisecond)
		close(src.fail) // upstream fails: its reads return an error
	}()
	out, err = io.ReadAll(r)
	if err != nil || !strings.HasPrefix(string(out), "data: 1\n\ndata: trdata: {\"error\"") || !strings.Contains(string(out), codeStreamInterrupted) {
		t.Fatalf("ReadAll = %q, %v", out, err)
	}
	if !r.interrupted() {
		t.Fatal("a failed upstream is interrupted")
	}
}

// TestRelayClientGoneAfterDone: a client that hangs up once it has [DONE]
// (the SDKs do, often before upstream's own end arrives) got the whole
// stream: the relay ends cleanly, not as interrupted. A client that hangs up
// before [DONE] interrupted it.
func TestRelayClientGoneAfterDone(t *testing.T) {
	for _, tc := range []struct {
		name      string
		upstream  string
		wantClean bool
	}{
		{"after [DONE]", "data: 1\n\ndata: [DONE]\n\n", true},
		{"before [DONE]", "data: 1\n\ndata: 2\n\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			src := newScriptedBody()
			client := &clientRecorder{header: http.Header{}}
			r := newRelay(ctx, src, &state{client: &streamWriter{ResponseWriter: client}}, config.Proxy{})
			t.Cleanup(func() { _ = r.Close() })
			src.chunks <- tc.upstream
			buf := make([]byte, streamCopySize)
			n, err := r.Read(buf)
			if err != nil || string(buf[:n]) != tc.upstream {
				t.Fatalf("Read = %q, %v", buf[:n], err)
			}
			cancel()        // the client hangs up
			close(src.fail) // and the upstream request is cancelled with it
			n, err = r.Read(buf)
			switch {
			case tc.wantClean && (n != 0 || err != io.EOF || r.interrupted()):
				t.Fatalf("Read = %d, %v, interrupted %v; want a clean end", n, err, r.interrupted())
			case !tc.wantClean && (err == nil || err == io.EOF || !r.interrupted()):
				t.Fatalf("Read = %d, %v, interrupted %v; want the client's cancellation", n, err, r.interrupted())
			}
		})
	}
}
