// Package logging builds the process's log/slog logger from configuration.
//
// Log lines are written in batches (LOG_FLUSH_INTERVAL, 100 ms by default):
// an access-log line per request would otherwise cost a write(2) per
// request, a measurable share of a proxied request's CPU. Warnings and
// errors are written at once, with everything buffered before them, and
// Flush writes the rest before the process exits.
package logging

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/config"
)

// New returns a logger writing to w in the configured format and level;
// call Flush on it (or on a logger derived from it) before the process
// exits. The configuration has been validated, so unknown values cannot
// occur.
func New(cfg config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	flush := func() {}
	if cfg.FlushInterval > 0 {
		bw := NewBufferedWriter(w, cfg.FlushInterval, 0)
		w, flush = bw, bw.Flush
	}
	var h slog.Handler
	if cfg.Format == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	if cfg.FlushInterval > 0 {
		h = &flushOnWarn{Handler: h, flush: flush}
	}
	return slog.New(h)
}

// Flush writes out the lines log's handler holds back, if it is one of
// New's (others write at once: nothing to do).
func Flush(log *slog.Logger) {
	if h, ok := log.Handler().(*flushOnWarn); ok {
		h.flush()
	}
}

// flushOnWarn writes out the buffer after every record at warning level or
// above, so that problems are never held back.
type flushOnWarn struct {
	slog.Handler
	flush func()
}

func (h *flushOnWarn) Handle(ctx context.Context, r slog.Record) error {
	err := h.Handler.Handle(ctx, r)
	if r.Level >= slog.LevelWarn {
		h.flush()
	}
	return err
}

func (h *flushOnWarn) WithAttrs(as []slog.Attr) slog.Handler {
	return &flushOnWarn{Handler: h.Handler.WithAttrs(as), flush: h.flush}
}

func (h *flushOnWarn) WithGroup(name string) slog.Handler {
	return &flushOnWarn{Handler: h.Handler.WithGroup(name), flush: h.flush}
}

// defaultBufferSize is the buffer a BufferedWriter writes out when full.
const defaultBufferSize = 64 << 10

// BufferedWriter collects writes in memory and passes them on in one write
// when the buffer fills, when interval has passed since the first byte
// waiting, or on Flush. Each Write is kept whole (a log line is never
// split between two writes). It is safe for concurrent use. Errors of the
// underlying writer are dropped: a log sink has nobody to report to.
type BufferedWriter struct {
	mu       sync.Mutex
	w        io.Writer
	buf      []byte
	size     int
	interval time.Duration
	timer    *time.Timer
	armed    bool
}

// NewBufferedWriter returns a BufferedWriter over w. size 0 takes 64 KiB.
func NewBufferedWriter(w io.Writer, interval time.Duration, size int) *BufferedWriter {
	if size <= 0 {
		size = defaultBufferSize
	}
	b := &BufferedWriter{w: w, size: size, interval: interval, buf: make([]byte, 0, size)}
	b.timer = time.AfterFunc(time.Hour, b.Flush)
	b.timer.Stop()
	return b
}

// Write buffers p (a copy) and always succeeds.
func (b *BufferedWriter) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.buf)+len(p) > b.size {
		b.flushLocked()
		if len(p) > b.size {
			_, _ = b.w.Write(p)
			return len(p), nil
		}
	}
	b.buf = append(b.buf, p...)
	if !b.armed {
		b.armed = true
		b.timer.Reset(b.interval)
	}
	return len(p), nil
}

// Flush writes out what is buffered.
func (b *BufferedWriter) Flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
}

func (b *BufferedWriter) flushLocked() {
	if b.armed {
		b.armed = false
		b.timer.Stop()
	}
	if len(b.buf) == 0 {
		return
	}
	_, _ = b.w.Write(b.buf)
	b.buf = b.buf[:0]
}
