package llmproxy

import (
	"errors"
	"fmt"
)

// Sentinel error kinds. Adapters wrap their failures with one of these so that
// callers can decide with errors.Is, whatever the engine underneath.
var (
	// ErrNotFound: the addressed entity does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a uniqueness rule was violated (e.g. duplicate project name).
	ErrConflict = errors.New("conflict")
	// ErrInvalid: the input is malformed or breaks a rule.
	ErrInvalid = errors.New("invalid input")
	// ErrUnauthorized: missing or wrong credentials.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrForbidden: credentials are fine but the action is not allowed
	// (e.g. an inactive project).
	ErrForbidden = errors.New("forbidden")
	// ErrRateLimited: a quota or rate limit is exhausted.
	ErrRateLimited = errors.New("rate limited")
	// ErrUnavailable: infrastructure (database, Redis, upstream) cannot be
	// reached. Always a 503 to clients, never a 401.
	ErrUnavailable = errors.New("unavailable")
	// ErrTooLarge: a body or value exceeds a configured size limit.
	ErrTooLarge = errors.New("too large")
	// ErrMethodNotAllowed: the method is not allowed on the resource.
	ErrMethodNotAllowed = errors.New("method not allowed")
)

// Error is an error with a client-safe message and a stable machine code.
// Kind is one of the sentinel errors above; Cause (optional) is the internal
// reason, which is logged but never shown to clients.
type Error struct {
	Kind    error
	Code    string
	Message string
	Cause   error
}

// E builds an *Error of the given kind with a stable code and a message that is
// safe to show to clients.
func E(kind error, code, message string) *Error {
	return &Error{Kind: kind, Code: code, Message: message}
}

// Wrap is like E but records an internal cause (logged, never shown).
func Wrap(kind error, code, message string, cause error) *Error {
	return &Error{Kind: kind, Code: code, Message: message, Cause: cause}
}

func (e *Error) Error() string {
	if e.Cause != nil {
		return fmt.Sprintf("%s: %v", e.Message, e.Cause)
	}
	return e.Message
}

// Unwrap lets errors.Is match both the kind and the cause.
func (e *Error) Unwrap() []error {
	if e.Cause != nil {
		return []error{e.Kind, e.Cause}
	}
	return []error{e.Kind}
}

// Stable error codes shared by the management API and the proxy.
const (
	CodeInvalidRequest    = "invalid_request"
	CodeNotFound          = "not_found"
	CodeConflict          = "conflict"
	CodeUnauthorized      = "unauthorized"
	CodeForbidden         = "forbidden"
	CodeMethodNotAllowed  = "method_not_allowed"
	CodeTooLarge          = "request_too_large"
	CodeUnavailable       = "service_unavailable"
	CodeInternal          = "internal_error"
	CodeInvalidToken      = "invalid_token"
	CodeTokenNotFound     = "token_not_found"
	CodeTokenExpired      = "token_expired"
	CodeTokenRevoked      = "token_revoked"
	CodeProjectInactive   = "project_inactive"
	CodeRateLimitExceeded = "rate_limit_exceeded"
	CodeQuotaExceeded     = "quota_exceeded"
)

// ErrorCode returns the stable code of err, or CodeInternal when err is not an
// *Error (or "" for nil).
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) && e.Code != "" {
		return e.Code
	}
	switch {
	case errors.Is(err, ErrNotFound):
		return CodeNotFound
	case errors.Is(err, ErrConflict):
		return CodeConflict
	case errors.Is(err, ErrInvalid):
		return CodeInvalidRequest
	case errors.Is(err, ErrUnauthorized):
		return CodeUnauthorized
	case errors.Is(err, ErrForbidden):
		return CodeForbidden
	case errors.Is(err, ErrRateLimited):
		return CodeRateLimitExceeded
	case errors.Is(err, ErrUnavailable):
		return CodeUnavailable
	case errors.Is(err, ErrTooLarge):
		return CodeTooLarge
	case errors.Is(err, ErrMethodNotAllowed):
		return CodeMethodNotAllowed
	}
	return CodeInternal
}

// ErrorMessage returns the client-safe message of err. Errors that are not
// *Error (internal failures) get a generic message so details never leak.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) && e.Message != "" {
		return e.Message
	}
	switch {
	case errors.Is(err, ErrNotFound):
		return "not found"
	case errors.Is(err, ErrUnavailable):
		return "service temporarily unavailable"
	}
	return "internal error"
}
