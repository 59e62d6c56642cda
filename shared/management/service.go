// Package management is the service layer of the management API and the admin
// UI: projects, tokens, audit queries and cache purges. It holds every
// validation rule in one place, turns store errors into client-safe
// *llmproxy.Error values with stable codes, encrypts upstream keys before they
// reach the store, returns only masked keys and token hints, and records every
// action — success, failure or denial — in the audit trail, in the same
// transaction as the change it records.
package management

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/secrets"
	"github.com/llm-proxy/llm-proxy/shared/store"
	"github.com/llm-proxy/llm-proxy/shared/tokens"
)

// Actor is who performs an action (see audit.Actor).
type Actor = audit.Actor

// Keyring encrypts upstream keys and hashes tokens (*secrets.Keyring).
type Keyring interface {
	Encrypt(plaintext string) (string, error)
	HashToken(token string) string
}

// Invalidator drops cached token validations on every proxy instance
// (tokens.Invalidator).
type Invalidator interface {
	InvalidateToken(ctx context.Context, id string) error
	InvalidateProject(ctx context.Context, id string) error
}

// CachePurger deletes cached responses (the proxy's response cache).
type CachePurger interface {
	Purge(ctx context.Context, req llmproxy.CachePurge) (int, error)
}

// Deps are the collaborators of a Service.
type Deps struct {
	Store   store.Store // required
	Keyring Keyring     // required
	// Invalidator is told about revocations and deactivations; nil when no
	// proxy caches validations (tests).
	Invalidator Invalidator
	// Audit records actions; nil records into Store with default options.
	Audit *audit.Recorder
	Clock func() time.Time
	Log   *slog.Logger

	// GenerateToken makes a new plaintext token (default tokens.Generate).
	GenerateToken func() (string, error)
	// TokenHint masks a plaintext token for display (default tokens.Hint).
	TokenHint func(token string) string
	// MaskAPIKey masks an upstream key for display (default
	// secrets.MaskAPIKey).
	MaskAPIKey func(key string) string

	// Changes receives every committed change (the event emitter makes
	// project.updated, token.created and token.revoked CloudEvents of them;
	// see events/README.md). nil announces nothing.
	Changes ChangeSink
}

// Service implements the management actions.
type Service struct {
	store   store.Store
	keyring Keyring
	inv     Invalidator
	rec     *audit.Recorder
	clock   func() time.Time
	log     *slog.Logger
	gen     func() (string, error)
	hint    func(string) string
	mask    func(string) string
	changes ChangeSink
	// eventErrors counts changes the sink did not take.
	eventErrors atomic.Uint64
}

// New returns a Service. It panics when a required dependency is missing,
// since that is a wiring error.
func New(d Deps) *Service {
	if d.Store == nil || d.Keyring == nil {
		panic("management.New: Store and Keyring are required")
	}
	if d.GenerateToken == nil {
		d.GenerateToken = tokens.Generate
	}
	if d.TokenHint == nil {
		d.TokenHint = tokens.Hint
	}
	if d.MaskAPIKey == nil {
		d.MaskAPIKey = secrets.MaskAPIKey
	}
	s := &Service{
		store: d.Store, keyring: d.Keyring, inv: d.Invalidator, rec: d.Audit,
		clock: d.Clock, log: d.Log, gen: d.GenerateToken, hint: d.TokenHint, mask: d.MaskAPIKey,
		changes: d.Changes,
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.rec == nil {
		rec, err := audit.NewRecorder(audit.Options{Store: d.Store, StoreInDB: true, Clock: s.clock, Log: s.log})
		if err != nil { // cannot happen without a file
			panic(err)
		}
		s.rec = rec
	}
	return s
}

// Recorder returns the audit recorder (for ActorFrom and stand-alone records).
func (s *Service) Recorder() *audit.Recorder { return s.rec }

// Store returns the underlying store (for readiness checks).
func (s *Service) Store() store.Store { return s.store }

// errInternal is the kind of unexpected failures (500).
var errInternal = errors.New("internal error")

func invalidf(msg string) error {
	return llmproxy.E(llmproxy.ErrInvalid, llmproxy.CodeInvalidRequest, msg)
}

func notFound(msg string) error {
	return llmproxy.E(llmproxy.ErrNotFound, llmproxy.CodeNotFound, msg)
}

// translate turns a store error into a client-safe error. notFoundMsg is the
// message for ErrNotFound.
func translate(err error, notFoundMsg string) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, llmproxy.ErrNotFound):
		return llmproxy.Wrap(llmproxy.ErrNotFound, llmproxy.CodeNotFound, notFoundMsg, err)
	case errors.Is(err, llmproxy.ErrForbidden) && llmproxy.ErrorCode(err) == llmproxy.CodeProjectInactive:
		return llmproxy.Wrap(llmproxy.ErrForbidden, llmproxy.CodeProjectInactive, "cannot create tokens for inactive projects", err)
	case errors.Is(err, llmproxy.ErrConflict):
		return llmproxy.Wrap(llmproxy.ErrConflict, llmproxy.CodeConflict, "a project with this name already exists", err)
	case errors.Is(err, llmproxy.ErrUnavailable):
		return llmproxy.Wrap(llmproxy.ErrUnavailable, llmproxy.CodeUnavailable, "service temporarily unavailable", err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return llmproxy.Wrap(llmproxy.ErrUnavailable, llmproxy.CodeUnavailable, "service temporarily unavailable", err)
	}
	var e *llmproxy.Error
	if errors.As(err, &e) {
		return err
	}
	return llmproxy.Wrap(errInternal, llmproxy.CodeInternal, "internal error", err)
}

// outcomeOf classifies an action's error for the audit record.
func outcomeOf(err error) string {
	switch {
	case err == nil:
		return llmproxy.OutcomeSuccess
	case errors.Is(err, llmproxy.ErrUnauthorized), errors.Is(err, llmproxy.ErrForbidden):
		return llmproxy.OutcomeDenied
	case errors.Is(err, llmproxy.ErrInvalid), errors.Is(err, llmproxy.ErrNotFound),
		errors.Is(err, llmproxy.ErrConflict), errors.Is(err, llmproxy.ErrMethodNotAllowed),
		errors.Is(err, llmproxy.ErrTooLarge):
		return llmproxy.OutcomeFailure
	}
	return llmproxy.OutcomeError
}

// event builds the audit record of action with its outcome from err.
func (s *Service) event(a Actor, action string, err error, details map[string]any) llmproxy.AuditEvent {
	e := s.rec.Event(a, action, outcomeOf(err), details)
	if err != nil {
		e.Reason = llmproxy.ErrorMessage(err)
		if _, ok := e.Details["error_type"]; !ok {
			e.Details["error_type"] = llmproxy.ErrorCode(err)
		}
	}
	return e
}

// record writes a stand-alone audit record and returns err unchanged, so
// callers can `return s.record(...)`.
func (s *Service) record(ctx context.Context, e llmproxy.AuditEvent, err error) error {
	_ = s.rec.Record(ctx, e)
	return err
}

// fail records a failed action that never reached the store and returns err.
func (s *Service) fail(ctx context.Context, a Actor, action string, err error, details map[string]any) error {
	if details == nil {
		details = map[string]any{}
	}
	if errors.Is(err, llmproxy.ErrInvalid) {
		details["validation_error"] = llmproxy.ErrorMessage(err)
	}
	return s.record(ctx, s.event(a, action, err, details), err)
}

// mutation runs a store mutation whose audit record is built by build. The
// record goes to the store in the mutation's transaction (when the database
// keeps audit records) and to the audit file afterwards.
type mutation struct {
	s  *Service
	ev llmproxy.AuditEvent
	ok bool
}

func (s *Service) newMutation() *mutation { return &mutation{s: s} }

// wrap stores the event built by the store callback.
func (m *mutation) keep(e llmproxy.AuditEvent) llmproxy.AuditEvent {
	m.ev, m.ok = e, true
	return e
}

// inDB reports whether callbacks should be passed to the store.
func (m *mutation) inDB() bool { return m.s.rec.StoresInDB() }

// done writes the file record; fallback builds the event when the store did
// not call back (database audit off). Afterwards m.ev is the action's
// record (built even when auditing is off: change events use its id).
func (m *mutation) done(fallback func() llmproxy.AuditEvent) {
	if !m.ok {
		m.ev, m.ok = fallback(), true
	}
	if !m.s.rec.Enabled() {
		return
	}
	m.s.rec.WriteFile(m.ev)
}

func (s *Service) invalidateToken(ctx context.Context, id string) {
	if s.inv == nil {
		return
	}
	if err := s.inv.InvalidateToken(context.WithoutCancel(ctx), id); err != nil {
		s.log.WarnContext(ctx, "invalidate token validation cache", "token_id", id, "error", err)
	}
}

func (s *Service) invalidateProject(ctx context.Context, id string) {
	if s.inv == nil {
		return
	}
	if err := s.inv.InvalidateProject(context.WithoutCancel(ctx), id); err != nil {
		s.log.WarnContext(ctx, "invalidate project validation cache", "project_id", id, "error", err)
	}
}

// Reject records a failed action whose request never reached the service's
// validation (e.g. an unreadable body) and returns err, so that every
// attempt leaves an audit record.
func (s *Service) Reject(ctx context.Context, a Actor, action string, err error) error {
	return s.fail(ctx, a, action, err, nil)
}
