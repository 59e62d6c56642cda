package proxy

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/config"
)

// scriptedBody is an upstream body that hands out the chunks sent to it,
// one per Read, and ends when the channel is closed.
type scriptedBody struct {
	chunks chan string
	closed chan struct{}
}

func newScriptedBody() *scriptedBody {
	return &scriptedBody{chunks: make(chan string, 64), closed: make(chan struct{})}
}

func (b *scriptedBody) Read(p []byte) (int, error) {
	select {
	case c, ok := <-b.chunks:
		if !ok {
			return 0, io.EOF
		}
		return copy(p, c), nil
	case <-b.closed:
		return 0, io.ErrClosedPipe
	}
}

func (b *scriptedBody) Close() error {
	select {
	case <-b.closed:
	default:
		close(b.closed)
	}
	return nil
}

func startRelay(t *testing.T, keepAlive time.Duration, strip bool) (*relay, *scriptedBody) {
	t.Helper()
	src := newScriptedBody()
	r := newRelay(context.Background(), src, &state{stripUsage: strip}, config.Proxy{StreamKeepAlive: keepAlive})
	t.Cleanup(func() { _ = r.Close() })
	return r, src
}

// waitQueued waits until the relay's reader has queued n chunks.
func waitQueued(t *testing.T, r *relay, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); len(r.chunks) < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d chunks queued, want %d", len(r.chunks), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRelayWritesABurstAtOnce: events that arrived while the client was
// busy reach it in one Read (one write and flush), whole.
func TestRelayWritesABurstAtOnce(t *testing.T) {
	r, src := startRelay(t, 0, false)
	events := []string{"data: 1\n\n", "data: 2\n\n", "data: 3\n\n", "data: 4\n\n"}
	for _, e := range events {
		src.chunks <- e
	}
	waitQueued(t, r, len(events))
	buf := make([]byte, streamCopySize)
	n, err := r.Read(buf)
	if err != nil || string(buf[:n]) != strings.Join(events, "") {
		t.Fatalf("Read = %q, %v; want the four events at once", buf[:n], err)
	}
	// A copy buffer smaller than the burst gets it in pieces, in order.
	for _, e := range events {
		src.chunks <- e
	}
	close(src.chunks)
	waitQueued(t, r, len(events))
	var got strings.Builder
	small := make([]byte, 7)
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
	if got.String() != strings.Join(events, "") {
		t.Fatalf("read %q", got.String())
	}
}

// TestRelayKeepAliveBetweenEvents: while upstream is in the middle of an
// event and then idle, the client gets keep-alive comments, never part of
// the event; the event follows whole once it is complete.
func TestRelayKeepAliveBetweenEvents(t *testing.T) {
	r, src := startRelay(t, 20*time.Millisecond, false)
	src.chunks <- "data: {\"a\":"
	buf := make([]byte, streamCopySize)
	n, err := r.Read(buf)
	if err != nil || string(buf[:n]) != ": keep-alive\n\n" {
		t.Fatalf("Read = %q, %v; want a keep-alive comment", buf[:n], err)
	}
	src.chunks <- "1}\n\n"
	n, err = r.Read(buf)
	if err != nil || string(buf[:n]) != "data: {\"a\":1}\n\n" {
		t.Fatalf("Read = %q, %v; want the whole event", buf[:n], err)
	}
}

// TestRelayCountsUsageTheClientDidNotRead: when the client goes away, the
// usage upstream already sent still counts.
func TestRelayCountsUsageTheClientDidNotRead(t *testing.T) {
	r, src := startRelay(t, 0, true)
	src.chunks <- `data: {"choices":[{"delta":{"content":"hi"}}],"usage":null}` + "\n\n"
	src.chunks <- `data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}` + "\n\n"
	waitQueued(t, r, 2)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	u, ok := r.acc.Reported()
	if !ok || u.TotalTokens != 4 {
		t.Fatalf("usage = %+v, %v; want the reported 4 tokens", u, ok)
	}
	if text, _ := r.acc.Text(); text != "hi" {
		t.Fatalf("completion text %q", text)
	}
}

// TestRelayEndsWithTheIncompleteEvent: upstream's last bytes pass through
// even when they do not end an event, and a failure adds the error event.
func TestRelayEndsWithTheIncompleteEvent(t *testing.T) {
	r, src := startRelay(t, 0, false)
	src.chunks <- "data: 1\n\ndata: trunc"
	close(src.chunks)
	out, err := io.ReadAll(r)
	if err != nil || string(out) != "data: 1\n\ndata: trunc" {
		t.Fatalf("ReadAll = %q, %v", out, err)
	}
	if r.interrupted() {
		t.Fatal("an upstream that ended with EOF is not interrupted")
	}

	r, src = startRelay(t, 0, false)
	src.chunks <- "data: 1\n\n"
	waitQueued(t, r, 1)
	_ = src.Close() // upstream fails: its reads return an error
	out, err = io.ReadAll(r)
	if err != nil || !strings.HasPrefix(string(out), "data: 1\n\ndata: {\"error\"") || !strings.Contains(string(out), codeStreamInterrupted) {
		t.Fatalf("ReadAll = %q, %v", out, err)
	}
	if !r.interrupted() {
		t.Fatal("a failed upstream is interrupted")
	}
}
