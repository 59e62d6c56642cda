package web

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// StatusRecorder wraps a ResponseWriter and remembers the status and bytes
// written. It keeps Flush, Hijack and Unwrap working, so streaming and
// http.ResponseController still work through it.
type StatusRecorder struct {
	http.ResponseWriter
	Status int
	Bytes  int64
}

// WriteHeader records the status.
func (s *StatusRecorder) WriteHeader(code int) {
	if s.Status == 0 {
		s.Status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *StatusRecorder) Write(b []byte) (int, error) {
	if s.Status == 0 {
		s.Status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(b)
	s.Bytes += int64(n)
	return n, err
}

// Flush flushes the underlying writer when it can.
func (s *StatusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack supports protocol upgrades.
func (s *StatusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := s.ResponseWriter.(http.Hijacker); ok {
		return h.Hijack()
	}
	return nil, nil, errors.New("hijack not supported")
}

// Unwrap exposes the underlying writer to http.ResponseController.
func (s *StatusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// AccessLog logs one line per request with slog: our request id, the
// client's (client_request_id, when it sent a sane one), method, path,
// status, bytes and duration. A request whose client went away before a
// response is logged with status 499.
//
// The record is handed to the logger's handler directly: nothing is built
// when its level is off, and no caller frame is captured (the source would
// be this middleware, the same on every line).
func AccessLog(log *slog.Logger, next http.Handler) http.Handler {
	h := log.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &StatusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		ctx := r.Context()
		status := rec.Status
		if status == 0 && ctx.Err() != nil {
			status = 499
		}
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelWarn
		}
		if !h.Enabled(ctx, level) {
			return
		}
		end := time.Now()
		rd := slog.NewRecord(end, level, "http request", 0)
		rd.AddAttrs(
			slog.String("request_id", RequestID(ctx)),
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.Int("status", status),
			slog.Int64("bytes", rec.Bytes),
			slog.Duration("duration", end.Sub(start)))
		if id := ClientRequestID(ctx); id != "" {
			rd.AddAttrs(slog.String("client_request_id", id))
		}
		_ = h.Handle(ctx, rd)
	})
}

// Recover turns a panic into a 500 JSON error and logs the stack. The
// http.ErrAbortHandler sentinel is re-panicked, as net/http expects.
func Recover(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if v == http.ErrAbortHandler {
				panic(v)
			}
			log.Error("panic in handler", "request_id", RequestID(r.Context()), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			WriteError(w, r, nil, llmproxy.E(errors.New("panic"), llmproxy.CodeInternal, "internal error"))
		}()
		next.ServeHTTP(w, r)
	})
}

// Chain wraps h with the standard middleware: request id (outermost), access
// log, panic recovery.
func Chain(log *slog.Logger, h http.Handler) http.Handler {
	return WithRequestID(AccessLog(log, Recover(log, h)))
}
