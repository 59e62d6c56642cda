package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"sync"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/config"
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
// sees it. A goroutine (pump) only reads upstream and queues the bytes;
// Read, on the goroutine that serves the request, splits them into events,
// reads usage and completion text from them, drops the usage-only chunk the
// proxy asked for, and hands whole events to the reverse proxy, which copies
// and flushes them at once. While upstream is idle, Read emits
// ": keep-alive" comments (always between events). An upstream failure
// mid-stream ends the stream cleanly with an OpenAI-shaped error event.
//
// The work is split this way for memory: an open stream costs one more
// goroutine than a bare reverse proxy, and that goroutine does nothing but
// wait in a read, so its stack stays at its smallest size; the parsing and
// JSON work runs on the request's goroutine, whose stack the handler chain
// has already grown.
type relay struct {
	ctx       context.Context
	src       io.ReadCloser
	chunks    chan []byte // upstream bytes, in order; closed when pump ends
	stop      chan struct{}
	wg        sync.WaitGroup
	keepAlive time.Duration
	timer     *time.Timer

	// Written by pump before it closes chunks (read after that).
	clean  bool   // upstream ended with EOF
	failed bool   // upstream failed while the client was still there
	unsent []byte // bytes read but not queued when the stream was stopped

	// Used by Read (and Close) only.
	parser      *usage.Parser
	emitFn      func(raw []byte, ev usage.Event)
	strip       bool
	passthrough bool   // an event was too large to parse: bytes pass as they are
	out         []byte // events of the last chunk, as the client gets them
	pending     []byte // what Read has still to hand out
	ended       bool
	discard     bool // Close accounts for bytes the client will not get

	// Read after Close.
	acc      *usage.Stream
	kept     []byte
	keep     int64
	truncate bool

	closeOnce sync.Once
}

func newRelay(ctx context.Context, src io.ReadCloser, st *state, cfg config.Proxy) *relay {
	r := &relay{
		ctx: ctx, src: src, chunks: make(chan []byte, 16), stop: make(chan struct{}),
		keepAlive: cfg.StreamKeepAlive, acc: usage.NewStream(0),
		parser: usage.NewParser(maxEvent), strip: st.stripUsage,
	}
	r.emitFn = r.emit
	if cfg.CaptureBodies {
		r.keep = cfg.MaxResponseBodyCapture
	}
	r.wg.Add(1)
	go r.pump()
	return r
}

// pumpReadSize is pump's read buffer: one read takes a typical event whole
// (larger events arrive in several reads and are joined by the parser).
const pumpReadSize = 2 << 10

// pump reads upstream until EOF, error, or Close, and queues what it read.
func (r *relay) pump() {
	defer r.wg.Done()
	defer close(r.chunks)
	buf := make([]byte, pumpReadSize)
	for {
		n, err := r.src.Read(buf)
		if n > 0 {
			b := bytes.Clone(buf[:n])
			select {
			case r.chunks <- b:
			case <-r.stop:
				r.unsent = b
				return
			case <-r.ctx.Done():
				r.unsent = b
				return
			}
		}
		if err != nil {
			r.clean = err == io.EOF
			r.failed = err != io.EOF && r.ctx.Err() == nil
			return
		}
	}
}

// process parses one chunk from upstream; the events it completes become
// pending.
func (r *relay) process(b []byte) {
	if r.passthrough {
		r.capture(b)
		r.pending = b
		return
	}
	if cap(r.out) > maxKeptOut {
		r.out = nil // an unusually large burst: do not keep its buffer
	}
	r.out = r.out[:0]
	if err := r.parser.Feed(b, r.emitFn); err != nil {
		r.passthrough = true
		r.out = append(r.out, r.parser.Pending()...)
	}
	r.capture(r.out)
	r.pending = r.out
}

// maxKeptOut bounds the output buffer a relay keeps between chunks.
const maxKeptOut = 64 << 10

// end makes the rest pending once upstream is done: an incomplete last
// event as it came, and the error event if upstream failed.
func (r *relay) end() {
	r.ended = true
	r.out = r.out[:0]
	if !r.passthrough {
		r.out = append(r.out, r.parser.Pending()...)
	}
	if r.failed {
		r.out = append(r.out, interruptedEvent()...)
	}
	r.capture(r.out)
	r.pending = r.out
}

// emit handles one complete event.
func (r *relay) emit(raw []byte, ev usage.Event) {
	if r.discard {
		if ev.HasData {
			r.acc.Observe(ev.Data)
		}
		return
	}
	if !ev.HasData {
		r.out = append(r.out, raw...)
		return
	}
	if r.acc.Observe(ev.Data) && r.strip {
		return // the usage chunk the client did not ask for
	}
	if r.strip && bytes.Contains(ev.Data, nullUsage) {
		if data, ok := withoutNullUsage(ev.Data); ok && bytes.HasPrefix(raw, dataPrefix) && bytes.Count(raw, []byte("data:")) == 1 {
			r.out = append(r.out, dataPrefix...)
			r.out = append(r.out, data...)
			r.out = append(r.out, '\n', '\n')
			return
		}
	}
	r.out = append(r.out, raw...)
}

var (
	nullUsage  = []byte(`"usage":null`)
	dataPrefix = []byte("data: ")
)

// withoutNullUsage removes the top-level "usage":null member that
// include_usage adds to every chunk, so the client sees the chunk OpenAI
// would have sent without it. Other members keep their bytes.
func withoutNullUsage(data []byte) ([]byte, bool) {
	ms, err := parseObject(data)
	if err != nil {
		return nil, false
	}
	var b bytes.Buffer
	b.Grow(len(data))
	b.WriteByte('{')
	first := true
	for _, m := range ms {
		if m.key == "usage" && string(m.raw) == "null" {
			continue
		}
		if !first {
			b.WriteByte(',')
		}
		first = false
		k, _ := json.Marshal(m.key)
		b.Write(k)
		b.WriteByte(':')
		b.Write(m.raw)
	}
	b.WriteByte('}')
	return b.Bytes(), true
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

// Read returns whole events as they arrive, or a keep-alive comment after
// an idle interval. Events already queued are copied in the same call, so a
// burst reaches the client in one write.
func (r *relay) Read(p []byte) (int, error) {
	if len(r.pending) == 0 {
		if err := r.wait(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	for n < len(p) && len(r.pending) == 0 {
		select {
		case b, ok := <-r.chunks:
			if !ok {
				return n, nil // the rest on the next call
			}
			r.process(b)
			k := copy(p[n:], r.pending)
			n, r.pending = n+k, r.pending[k:]
		default:
			return n, nil
		}
	}
	return n, nil
}

// wait blocks until something is pending: events, the end of the stream, or
// a keep-alive comment when upstream has sent no complete event for the
// keep-alive interval.
func (r *relay) wait() error {
	var tick <-chan time.Time
	if r.keepAlive > 0 {
		if r.timer == nil {
			r.timer = time.NewTimer(r.keepAlive)
		} else {
			r.timer.Reset(r.keepAlive)
		}
		tick = r.timer.C
	}
	for len(r.pending) == 0 {
		select {
		case b, ok := <-r.chunks:
			if !ok {
				if r.ended {
					return io.EOF
				}
				r.end()
				continue
			}
			r.process(b)
		case <-tick:
			r.pending = keepAlive
		case <-r.ctx.Done():
			return r.ctx.Err()
		}
	}
	return nil
}

// Close stops the reader goroutine and closes upstream; afterwards the
// accumulated usage may be read. Bytes upstream sent that the client did not
// get still count for usage.
func (r *relay) Close() error {
	var err error
	r.closeOnce.Do(func() {
		close(r.stop)
		err = r.src.Close()
		r.wg.Wait()
		if r.timer != nil {
			r.timer.Stop()
		}
		if r.passthrough || r.ended {
			return
		}
		r.discard = true
		for b := range r.chunks {
			if r.parser.Feed(b, r.emitFn) != nil {
				return
			}
		}
		if r.unsent != nil {
			_ = r.parser.Feed(r.unsent, r.emitFn)
		}
	})
	return err
}

// interrupted reports whether the stream ended before upstream finished.
func (r *relay) interrupted() bool {
	return !r.clean
}
