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

	// outcome and errorCode are the handler's own account of how the
	// request ended (SetOutcome), when the status sent does not say it.
	outcome   int
	errorCode string
}

// SetOutcome tells the access log how a request ended when the status on
// the wire cannot say it: a stream that upstream cut after its 200 was sent
// (logged 502) or that the client left (499). errorCode, when not empty, is
// logged as error_code. It finds the StatusRecorder of AccessLog through
// the Unwrap chain of w and reports false when there is none.
func SetOutcome(w http.ResponseWriter, status int, errorCode string) bool {
	for {
		if rec, ok := w.(*StatusRecorder); ok {
			rec.outcome, rec.errorCode = status, errorCode
			return true
		}
		u, ok := w.(interface{ Unwrap() http.ResponseWriter })
		if !ok {
			return false
		}
		w = u.Unwrap()
	}
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

// AccessLog logs exactly one line per request with slog, however it ends
// (a normal return, a panic, an aborted handler): our request id, the
// client's (client_request_id, when it sent a sane one), method, path,
// status, bytes, duration, and error_code when the handler gave one
// (SetOutcome). A request whose client went away before the response was
// whole is logged with status 499; the status the handler gave with
// SetOutcome wins over the one sent. A handler that aborted
// (http.ErrAbortHandler, as the reverse proxy does when a copy fails) is
// logged with aborted=true, and the panic then goes on to net/http (from
// here: use AccessLog outside Recover, as Chain does, so that other panics
// are logged with their stack first).
//
// The record is handed to the logger's handler directly: nothing is built
// when its level is off, and no caller frame is captured (the source would
// be this middleware, the same on every line).
func AccessLog(log *slog.Logger, next http.Handler) http.Handler {
	h := log.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &StatusRecorder{ResponseWriter: w}
		// The line is written here, not in a deferred function: an open
		// stream's goroutine then keeps a smaller stack (the proxy's
		// TestStreamMemory measures it).
		v := serveCatching(next, rec, r)
		aborted := v != nil
		ctx := r.Context()
		status := rec.Status
		switch {
		case rec.outcome != 0:
			status = rec.outcome
		case ctx.Err() != nil && (status == 0 || aborted):
			status = 499
		case status == 0 && aborted:
			status = http.StatusInternalServerError
		case status == 0:
			status = http.StatusOK // what net/http sends for a handler that wrote nothing
		}
		level := slog.LevelInfo
		if status >= 500 {
			level = slog.LevelWarn
		}
		if h.Enabled(ctx, level) {
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
			if rec.errorCode != "" {
				rd.AddAttrs(slog.String("error_code", rec.errorCode))
			}
			if aborted {
				rd.AddAttrs(slog.Bool("aborted", true))
			}
			_ = h.Handle(ctx, rd)
		}
		if aborted {
			panic(v) // on to net/http (Recover has dealt with every other panic)
		}
	})
}

// serveCatching serves r and returns the value of a panic of next, or nil.
func serveCatching(next http.Handler, w http.ResponseWriter, r *http.Request) (v any) {
	defer func() { v = recover() }()
	next.ServeHTTP(w, r)
	return nil
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
