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
// sees it. A goroutine reads upstream, splits the bytes into events, reads
// usage and completion text from them, drops the usage-only chunk the proxy
// asked for, and hands whole events to Read, which the reverse proxy copies
// and flushes at once. While upstream is idle, Read emits ": keep-alive"
// comments (always between events). An upstream failure mid-stream ends the
// stream cleanly with an OpenAI-shaped error event.
type relay struct {
	ctx       context.Context
	src       io.ReadCloser
	events    chan []byte
	stop      chan struct{}
	wg        sync.WaitGroup
	keepAlive time.Duration
	timer     *time.Timer
	pending   []byte

	// Written by the reader goroutine; read after Close.
	acc      *usage.Stream
	clean    bool // upstream ended with EOF
	kept     []byte
	keep     int64
	truncate bool

	closeOnce sync.Once
}

func newRelay(ctx context.Context, src io.ReadCloser, st *state, cfg config.Proxy) *relay {
	r := &relay{
		ctx: ctx, src: src, events: make(chan []byte, 16), stop: make(chan struct{}),
		keepAlive: cfg.StreamKeepAlive, acc: usage.NewStream(0),
	}
	if cfg.CaptureBodies {
		r.keep = cfg.MaxResponseBodyCapture
	}
	r.wg.Add(1)
	go r.pump(st.stripUsage)
	return r
}

// pump reads upstream until EOF, error, or Close. It keeps no buffer of
// its own: the parser reads straight into the buffer that holds the
// incomplete event, and each batch of complete events goes to Read in a new
// slice that Read drops once it is written.
func (r *relay) pump(strip bool) {
	defer r.wg.Done()
	defer close(r.events)
	parser := usage.NewParser(maxEvent)
	var passthrough []byte // read buffer once an event is too large to parse
	var out []byte
	emit := func(raw []byte, ev usage.Event) {
		if !ev.HasData {
			out = append(out, raw...)
			return
		}
		if r.acc.Observe(ev.Data) && strip {
			return // the usage chunk the client did not ask for
		}
		if strip && bytes.Contains(ev.Data, nullUsage) {
			if data, ok := withoutNullUsage(ev.Data); ok && bytes.HasPrefix(raw, dataPrefix) && bytes.Count(raw, []byte("data:")) == 1 {
				out = append(out, dataPrefix...)
				out = append(out, data...)
				out = append(out, '\n', '\n')
				return
			}
		}
		out = append(out, raw...)
	}
	for {
		var err error
		if passthrough != nil {
			var n int
			n, err = r.src.Read(passthrough)
			out = append(out, passthrough[:n]...)
		} else {
			var perr error
			_, err, perr = parser.FeedFrom(r.src, emit)
			if perr != nil {
				passthrough = make([]byte, passthroughRead)
				out = append(out, parser.Pending()...)
			}
		}
		if err != nil {
			if passthrough == nil {
				out = append(out, parser.Pending()...)
			}
			if err == io.EOF {
				r.clean = true
			} else if r.ctx.Err() == nil {
				out = append(out, interruptedEvent()...)
			}
		}
		if len(out) > 0 {
			r.capture(out)
			select {
			case r.events <- out:
				out = nil // Read owns it now
			case <-r.stop:
				return
			case <-r.ctx.Done():
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// passthroughRead is the read size once the relay passes bytes through.
const passthroughRead = 16 << 10

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
	for len(r.pending) == 0 {
		var tick <-chan time.Time
		if r.keepAlive > 0 {
			if r.timer == nil {
				r.timer = time.NewTimer(r.keepAlive)
			} else {
				r.timer.Reset(r.keepAlive)
			}
			tick = r.timer.C
		}
		select {
		case b, ok := <-r.events:
			if !ok {
				return 0, io.EOF
			}
			r.pending = b
		case <-tick:
			r.pending = keepAlive
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
	n := copy(p, r.pending)
	r.pending = r.pending[n:]
	for n < len(p) && len(r.pending) == 0 {
		select {
		case b, ok := <-r.events:
			if !ok {
				return n, nil // EOF on the next call
			}
			k := copy(p[n:], b)
			n, r.pending = n+k, b[k:]
		default:
			return n, nil
		}
	}
	return n, nil
}

// Close stops the reader goroutine and closes upstream; afterwards the
// accumulated usage may be read.
func (r *relay) Close() error {
	var err error
	r.closeOnce.Do(func() {
		close(r.stop)
		err = r.src.Close()
		r.wg.Wait()
		if r.timer != nil {
			r.timer.Stop()
		}
	})
	return err
}

// interrupted reports whether the stream ended before upstream finished.
func (r *relay) interrupted() bool {
	return !r.clean
}
