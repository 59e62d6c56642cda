package web

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
)

type ctxKey int

const requestIDKey ctxKey = iota

// Request id headers. Every response carries our own id in X-Request-ID; a
// client that sent a sane X-Request-ID of its own gets it back as
// X-Client-Request-Id.
const (
	RequestIDHeader       = "X-Request-ID"
	ClientRequestIDHeader = "X-Client-Request-Id"
)

// requestIDs are a request's ids, stored in its context as one value.
type requestIDs struct {
	id     string // ours: unique (events are deduplicated by it)
	client string // the client's X-Request-ID when it was sane, or ""
}

// RequestID returns our request id stored by WithRequestID, or "".
func RequestID(ctx context.Context) string {
	ids, _ := ctx.Value(requestIDKey).(requestIDs)
	return ids.id
}

// ClientRequestID returns the client's own X-Request-ID kept by
// WithRequestID, or "" when it sent none or one that was not sane.
func ClientRequestID(ctx context.Context) string {
	ids, _ := ctx.Value(requestIDKey).(requestIDs)
	return ids.client
}

// ContextWithRequestID stores id as our request id in ctx, with no client
// request id (for code that runs outside WithRequestID, such as tests).
func ContextWithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, requestIDs{id: id})
}

// NewRequestID returns 16 random bytes in hex.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// SaneRequestID reports whether a client-supplied id may be kept: 1–128
// characters of letters, digits and -_.:
func SaneRequestID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

// WithRequestID decides the request's ids, the one place that does: ours is
// always generated (a client's id need not be unique, ours must be), and a
// sane client X-Request-ID is kept as the client request id. Both are stored
// in the context (RequestID, ClientRequestID) and echoed on the response
// (X-Request-ID, X-Client-Request-Id) before the handler runs, so errors
// carry them too.
func WithRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ids := requestIDs{id: NewRequestID()}
		h := w.Header()
		if client := r.Header.Get(RequestIDHeader); SaneRequestID(client) {
			ids.client = client
			h.Set(ClientRequestIDHeader, client)
		}
		h.Set(RequestIDHeader, ids.id)
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), requestIDKey, ids)))
	})
}
