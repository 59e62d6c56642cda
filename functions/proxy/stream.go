package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/jsonscan"
	"github.com/llm-proxy/llm-proxy/shared/sse"
	"github.com/llm-proxy/llm-proxy/shared/usage"
)

// maxEvent bounds one SSE event the relay parses; a larger event switches
// the relay to plain pass-through for the rest of the stream.
const maxEvent = 4 << 20

var keepAlive = []byte(": keep-alive\n\n")

// streamCopySize is the size of the buffer the reverse proxy copies a
// stream to the client with. A stream holds it for its whole life (the copy
// loop waits in Read with it), so it is sized for a burst of events, not
// for bulk bodies: 1,000 open streams hold 4 MiB instead of 32 MiB. A larger
// event is written in several pieces.
const streamCopySize = 4 << 10

// streamCopyBuffers pools the copy buffers of streamed requests (see
// streamProxy).
type streamCopyBuffers struct{}

var streamCopyBufferPool = sync.Pool{New: func() any { b := make([]byte, streamCopySize); return &b }}

func (streamCopyBuffers) Get() []byte { return *streamCopyBufferPool.Get().(*[]byte) }
func (streamCopyBuffers) Put(b []byte) {
	if cap(b) == streamCopySize {
		streamCopyBufferPool.Put(&b)
	}
}

// relay is the body of a streamed (SSE) upstream response as the client
// sees it. Read reads upstream straight into the reverse proxy's copy
// buffer, splits the bytes into events, reads usage and completion text from
// them, drops the usage-only chunk the proxy asked for, and hands whole
// events back, which the reverse proxy writes and flushes at once. While
// upstream is idle, a timer writes ": keep-alive" comments (always between
// events) through the writer the reverse proxy writes to. An upstream
// failure mid-stream ends the stream cleanly with an OpenAI-shaped error
// event.
//
// An open stream thus costs no goroutine and no buffer beyond those of a
// bare reverse proxy: the one waiting for upstream is the request's own.
type relay struct {
	ctx  context.Context
	src  io.ReadCloser
	acc  *usage.Stream
	keep int64

	parser      *sse.Parser
	emitFn      func(raw []byte, ev sse.Event)
	strip       bool
	passthrough bool    // an event was too large to parse: bytes pass as they are
	out         *[]byte // pooled: the events of the last read, as the client gets them
	pending     []byte  // what Read has still to hand out
	ended       bool
	doneSent    bool // the [DONE] event was handed out

	// Keep-alives. mu orders the timer's writes with Read: the timer writes
	// only while Read waits for upstream, when the reverse proxy does not
	// write.
	client    *streamWriter // nil: no keep-alives
	keepAlive time.Duration
	timer     *time.Timer
	mu        sync.Mutex
	armed     bool      // a Read call is under way
	waiting   bool      // Read waits for upstream
	due       bool      // the interval passed while Read was not waiting
	deadline  time.Time // when the next keep-alive is due
	clientErr error     // a keep-alive write failed
	closed    bool

	// Read after Close.
	clean    bool // upstream ended with EOF
	kept     []byte
	truncate bool
}

func newRelay(ctx context.Context, src io.ReadCloser, st *state, cfg config.Proxy) *relay {
	r := &relay{
		ctx: ctx, src: src, acc: usage.NewStream(0),
		parser: sse.NewParser(maxEvent), strip: st.stripUsage,
		client: st.client, keepAlive: cfg.StreamKeepAlive,
	}
	r.emitFn = r.emit
	if cfg.CaptureBodies {
		r.keep = cfg.MaxResponseBodyCapture
	}
	return r
}

// Read returns whole events as upstream completes them, reading upstream
// into p.
func (r *relay) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if len(r.pending) == 0 {
		if err := r.fill(p); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	if len(r.pending) == 0 {
		r.releaseOut()
	}
	return n, nil
}

// fill reads upstream until something is pending: events, the end of the
// stream, or a keep-alive comment that fell due while Read was not waiting.
func (r *relay) fill(p []byte) error {
	r.arm()
	defer r.disarm()
	for len(r.pending) == 0 {
		if r.ended {
			return io.EOF
		}
		if r.takeDue() {
			r.pending = keepAlive
			return nil
		}
		r.setWaiting(true)
		n, err := r.src.Read(p)
		if kerr := r.setWaiting(false); kerr != nil {
			return kerr
		}
		if n > 0 {
			r.process(p[:n])
		}
		if err != nil {
			if r.ctx.Err() != nil {
				if r.doneSent && len(r.pending) == 0 {
					// The client hung up after [DONE], which it has: this
					// Read follows the write of it. (Clients close on
					// [DONE], often before upstream's own end arrives.)
					r.ended, r.clean = true, true
					return io.EOF
				}
				return r.ctx.Err() // the client went away
			}
			r.end(err)
		}
	}
	return nil
}

// process parses the bytes upstream sent; the events they complete become
// pending. b may be overwritten afterwards.
func (r *relay) process(b []byte) {
	if r.passthrough {
		r.emitOut(b)
		return
	}
	r.takeOut()
	if err := r.parser.Feed(b, r.emitFn); err != nil {
		r.passthrough = true
		*r.out = append(*r.out, r.parser.Pending()...)
	}
	r.capture(*r.out)
	r.pending = *r.out
}

// emitOut makes a copy of b pending.
func (r *relay) emitOut(b []byte) {
	r.takeOut()
	*r.out = append(*r.out, b...)
	r.capture(*r.out)
	r.pending = *r.out
}

// end makes the rest pending once upstream is done: an incomplete last
// event as it came, and the error event if upstream failed.
func (r *relay) end(err error) {
	r.ended = true
	r.clean = err == io.EOF
	var rest []byte
	if !r.passthrough {
		rest = r.parser.Pending()
	}
	if !r.clean {
		rest = append(rest, interruptedEvent()...)
	}
	if len(rest) == 0 {
		return
	}
	if len(r.pending) > 0 {
		*r.out = append(*r.out, rest...) // pending is *r.out
		r.capture(rest)
		r.pending = *r.out
		return
	}
	r.emitOut(rest)
}

// emit handles one complete event.
func (r *relay) emit(raw []byte, ev sse.Event) {
	out := r.out
	if !ev.HasData {
		*out = append(*out, raw...)
		return
	}
	if bytes.Equal(ev.Data, doneData) {
		r.doneSent = true
	}
	if r.acc.Observe(ev.Data) && r.strip {
		return // the usage chunk the client did not ask for
	}
	if r.strip && bytes.Contains(ev.Data, nullUsage) && bytes.HasPrefix(raw, dataPrefix) && bytes.Count(raw, []byte("data:")) == 1 {
		if o, ok := withoutNullUsage(append(*out, dataPrefix...), ev.Data); ok {
			*out = append(o, '\n', '\n')
			return
		}
	}
	*out = append(*out, raw...)
}

// outBuffers pools the buffers events are put together in between an
// upstream read and the copy into the reverse proxy's buffer.
var outBuffers = sync.Pool{New: func() any { b := make([]byte, 0, streamCopySize); return &b }}

func (r *relay) takeOut() {
	if r.out == nil {
		r.out = outBuffers.Get().(*[]byte)
	}
	*r.out = (*r.out)[:0]
}

func (r *relay) releaseOut() {
	if r.out != nil {
		if cap(*r.out) <= 64<<10 {
			outBuffers.Put(r.out)
		}
		r.out = nil
	}
	r.pending = nil
}

// arm starts the keep-alive interval of a Read call.
func (r *relay) arm() {
	if r.client == nil || r.keepAlive <= 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.armed, r.due = true, false
	r.deadline = time.Now().Add(r.keepAlive)
	if r.timer == nil {
		r.timer = time.AfterFunc(r.keepAlive, r.keepAliveDue)
	} else {
		r.timer.Reset(r.keepAlive)
	}
}

// disarm ends a Read call: an interval that passes until the next one
// brings no keep-alive.
func (r *relay) disarm() {
	if r.timer == nil {
		return
	}
	r.mu.Lock()
	r.armed = false
	r.mu.Unlock()
}

// setWaiting marks Read as waiting for upstream or not; when it stops
// waiting it reports a failed keep-alive write.
func (r *relay) setWaiting(w bool) error {
	if r.timer == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.waiting = w
	return r.clientErr
}

func (r *relay) takeDue() bool {
	if r.timer == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	due := r.due
	r.due = false
	return due
}

// keepAliveDue runs on the timer: it writes a keep-alive comment when the
// interval has passed while Read waits for upstream.
func (r *relay) keepAliveDue() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed || !r.armed || r.clientErr != nil {
		return
	}
	if d := time.Until(r.deadline); d > 0 {
		r.timer.Reset(d) // a run of the timer that an arm overtook
		return
	}
	if !r.waiting {
		r.due = true // Read hands it out before it waits again
		return
	}
	if _, err := r.client.Write(keepAlive); err != nil {
		r.clientErr = err
		return
	}
	if err := r.client.FlushError(); err != nil {
		r.clientErr = err
		return
	}
	r.deadline = time.Now().Add(r.keepAlive)
	r.timer.Reset(r.keepAlive)
}

// streamWriter is what the reverse proxy writes a response to; relay
// keep-alives are written through it too. Its lock keeps a write from
// meeting the reverse proxy's own delayed flush.
type streamWriter struct {
	http.ResponseWriter
	mu sync.Mutex
}

func (w *streamWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.ResponseWriter.Write(b)
}

// FlushError flushes the client connection (http.ResponseController).
func (w *streamWriter) FlushError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return http.NewResponseController(w.ResponseWriter).Flush()
}

// Flush implements http.Flusher.
func (w *streamWriter) Flush() { _ = w.FlushError() }

// Unwrap lets http.ResponseController reach the writers below.
func (w *streamWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

var (
	nullUsage  = []byte(`"usage":null`)
	dataPrefix = []byte("data: ")
	doneData   = []byte("[DONE]")
)

// withoutNullUsage appends to dst the chunk data without the top-level
// "usage":null member that include_usage adds to every chunk, so the client
// sees the chunk OpenAI would have sent without it. Every other byte is
// kept. ok is false, and dst unchanged, unless data is a valid JSON object
// with exactly one such member.
func withoutNullUsage(dst, data []byte) (_ []byte, ok bool) {
	from, to, found := -1, -1, 0
	prevEnd := -1 // where the previous member's value ends
	err := jsonscan.Members(data, func(k, v []byte) error {
		// v is a slice of data (jsonscan's contract): its offset in data
		// is the difference of their capacities.
		end := cap(data) - cap(v) + len(v)
		if string(k) == "usage" {
			found++
			if string(v) == "null" {
				from, to = prevEnd, end
			}
		}
		prevEnd = end
		return nil
	})
	if err != nil || found != 1 || to < 0 {
		return dst, false
	}
	if from < 0 { // the first member: cut it and the comma after it
		from = bytes.IndexByte(data, '{') + 1
		rest := bytes.TrimLeft(data[to:], " \t\r\n")
		if len(rest) > 0 && rest[0] == ',' {
			to = len(data) - len(rest) + 1
		}
	}
	dst = append(dst, data[:from]...)
	return append(dst, data[to:]...), true
}

func interruptedEvent() []byte {
	b, _ := json.Marshal(map[string]any{"error": map[string]any{
		"message": "The upstream stream was interrupted.", "type": "server_error", "param": nil, "code": codeStreamInterrupted,
	}})
	return append(append([]byte("data: "), b...), '\n', '\n')
}

func (r *relay) capture(b []byte) {
	if r.keep <= 0 {
		return
	}
	room := r.keep - int64(len(r.kept))
	if room <= 0 {
		r.truncate = true
		return
	}
	if int64(len(b)) > room {
		b, r.truncate = b[:room], true
	}
	r.kept = append(r.kept, b...)
}

// Close closes upstream and stops the keep-alives; afterwards the
// accumulated usage may be read.
func (r *relay) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	if r.timer != nil {
		r.timer.Stop()
	}
	r.mu.Unlock()
	r.releaseOut()
	return r.src.Close()
}

// interrupted reports whether the stream ended before upstream finished.
func (r *relay) interrupted() bool {
	return !r.clean
}
