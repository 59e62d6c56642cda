// Package audit records management actions: it builds audit events with the
// common facts of a request (actor, request id, client ip, method, path, user
// agent, time), appends them to the database through the store (in the same
// transaction as the change they record, via the store's audit callbacks) and,
// when configured, to a JSON-lines file whose lines carry each record's
// sequence number and chain hash. The chain is keyed: the store seals every
// record with an HMAC under a key derived from the keyring (Keys), which the
// database does not hold. Verify walks the chain, checks every MAC and, given
// the file, checks the database against it (the file is the anchor that
// reveals records deleted from the end). Every field is bounded
// (llmproxy.AuditEvent.Bounded) and repeated denials from one client are
// aggregated (RecordDenial).
package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/mgmtapi"
	"github.com/llm-proxy/llm-proxy/shared/store"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

// Actor names.
const (
	ActorManagementAPI = "management_api"
	ActorAdminUI       = "admin_ui"
	ActorSystem        = "system"
	ActorAnonymous     = "anonymous"
)

// maxLineBytes bounds one JSONL record; larger details are replaced by a note.
const maxLineBytes = 64 << 10

// fileLookupTimeout bounds the read of a stored record's seal for its file
// line.
const fileLookupTimeout = 5 * time.Second

// Actor is who performed an action and the request facts recorded with it.
type Actor struct {
	Name      string // ActorManagementAPI, ActorAdminUI, …
	RequestID string
	ClientIP  string
	Method    string
	Path      string
	UserAgent string
}

// Options configure a Recorder.
type Options struct {
	// Store receives records (AppendAudit for stand-alone records). Nil, or
	// StoreInDB false, keeps records out of the database.
	Store store.Store
	// Disabled turns auditing off entirely (AUDIT_ENABLED=false).
	Disabled bool
	// StoreInDB writes records to the database (AUDIT_STORE_IN_DB).
	StoreInDB bool
	// File, when set, receives every record as one JSON line (AUDIT_LOG_FILE).
	File string
	// CreateDir creates File's directory when missing (AUDIT_CREATE_DIR).
	CreateDir bool
	// Keys seal the database chain (set on Store when records go there). Nil
	// leaves the store unkeyed: it then writes legacy records, which Verify
	// rejects after the first keyed one; serve and the functions always pass
	// keys (Open).
	Keys *Keys
	// TrustedProxies decide whether X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// DenialWindow is the window over which RecordDenial aggregates repeated
	// denials of one client (default 1 minute); DenialSources bounds how many
	// clients have a window of their own at once (default 1000): the rest
	// share one.
	DenialWindow  time.Duration
	DenialSources int
	Clock         func() time.Time
	Log           *slog.Logger
}

// Recorder builds and writes audit records. It is safe for concurrent use.
type Recorder struct {
	store     store.Store
	enabled   bool
	storeInDB bool
	trusted   []netip.Prefix
	clock     func() time.Time
	log       *slog.Logger

	mu   sync.Mutex
	file *os.File

	denials *denials
}

// NewRecorder opens the audit file (when configured) and returns a Recorder.
func NewRecorder(o Options) (*Recorder, error) {
	r := &Recorder{
		store:     o.Store,
		enabled:   !o.Disabled,
		storeInDB: !o.Disabled && o.StoreInDB && o.Store != nil,
		trusted:   o.TrustedProxies,
		clock:     o.Clock,
		log:       o.Log,
	}
	if r.clock == nil {
		r.clock = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.storeInDB && o.Keys != nil {
		o.Store.SetAuditKey(o.Keys.Current())
	}
	r.denials = newDenials(r, o.DenialWindow, o.DenialSources)
	if r.enabled && o.File != "" {
		if o.CreateDir {
			if err := os.MkdirAll(filepath.Dir(o.File), 0o750); err != nil {
				return nil, fmt.Errorf("audit: create directory of AUDIT_LOG_FILE: %w", err)
			}
		}
		f, err := os.OpenFile(o.File, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
		if err != nil {
			return nil, fmt.Errorf("audit: open AUDIT_LOG_FILE: %w", err)
		}
		r.file = f
	}
	return r, nil
}

// Enabled reports whether records are written anywhere.
func (r *Recorder) Enabled() bool { return r != nil && r.enabled }

// StoresInDB reports whether records go to the database (and so whether store
// audit callbacks should be passed).
func (r *Recorder) StoresInDB() bool { return r != nil && r.storeInDB }

// ActorFrom returns the actor of an HTTP request: the client IP honours
// X-Forwarded-For only from trusted proxies.
func (r *Recorder) ActorFrom(req *http.Request, name string) Actor {
	var trusted []netip.Prefix
	if r != nil {
		trusted = r.trusted
	}
	// Bounded at the source (the store bounds again what it keeps): the
	// path and the user agent are the client's choice.
	return Actor{
		Name:      name,
		RequestID: llmproxy.BoundText(web.RequestID(req.Context()), llmproxy.MaxAuditIDBytes),
		ClientIP:  llmproxy.BoundText(web.ClientIP(req, trusted), llmproxy.MaxAuditIPBytes),
		Method:    llmproxy.BoundText(req.Method, llmproxy.MaxAuditMethodBytes),
		Path:      llmproxy.BoundText(req.URL.Path, llmproxy.MaxAuditPathBytes),
		UserAgent: llmproxy.BoundText(req.UserAgent(), llmproxy.MaxAuditUABytes),
	}
}

// Event returns a new record for action by a, with a fresh id and the current
// time (truncated to microseconds, as the stores keep it).
func (r *Recorder) Event(a Actor, action, outcome string, details map[string]any) llmproxy.AuditEvent {
	now := time.Now
	if r != nil {
		now = r.clock
	}
	if details == nil {
		details = map[string]any{}
	}
	actor := a.Name
	if actor == "" {
		actor = ActorAnonymous
	}
	return llmproxy.AuditEvent{
		ID:        uuid.NewString(),
		Timestamp: now().UTC().Truncate(time.Microsecond),
		Action:    action,
		Actor:     actor,
		Outcome:   outcome,
		RequestID: a.RequestID,
		ClientIP:  a.ClientIP,
		Method:    a.Method,
		Path:      a.Path,
		UserAgent: a.UserAgent,
		Details:   details,
	}
}

// Record writes a stand-alone record (an action that changed nothing: a read,
// a validation failure, a denied attempt) to the database and the file.
// Failures are logged and returned; callers usually carry on.
func (r *Recorder) Record(ctx context.Context, e llmproxy.AuditEvent) error {
	if !r.Enabled() {
		return nil
	}
	e = e.Bounded()
	var err error
	if r.storeInDB {
		sealed, aerr := r.store.AppendAudit(ctx, e)
		if aerr != nil {
			r.log.ErrorContext(ctx, "audit: store record", "action", e.Action, "audit_id", e.ID, "error", aerr)
			err = fmt.Errorf("audit: append %s: %w", e.Action, aerr)
		} else {
			e = sealed
		}
	}
	r.writeLine(e)
	return err
}

// WriteFile appends e to the JSON-lines file, when one is configured. Records
// written by the store in a transaction reach the file through this method
// after the store call returned; their line carries the sequence number and
// chain hash the store gave them, read back by id.
func (r *Recorder) WriteFile(e llmproxy.AuditEvent) {
	if !r.Enabled() || r.file == nil {
		return
	}
	if r.storeInDB && e.Seq == 0 && e.ID != "" {
		ctx, cancel := context.WithTimeout(context.Background(), fileLookupTimeout)
		sealed, err := r.store.GetAudit(ctx, e.ID)
		cancel()
		switch {
		case err == nil:
			e = sealed
		case !errors.Is(err, llmproxy.ErrNotFound):
			r.log.Warn("audit: read the stored record for its file line", "audit_id", e.ID, "error", err)
		}
	}
	r.writeLine(e.Bounded())
}

// writeLine appends e to the file as one JSON line.
func (r *Recorder) writeLine(e llmproxy.AuditEvent) {
	if r.file == nil {
		return
	}
	line, err := json.Marshal(FileRecord(e))
	if err != nil || len(line) > maxLineBytes {
		fr := FileRecord(e)
		fr.Details = map[string]any{"note": "details omitted: too large or not encodable"}
		line, _ = json.Marshal(fr)
	}
	line = append(line, '\n')
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.file == nil {
		return
	}
	if _, err := r.file.Write(line); err != nil {
		r.log.Error("audit: write AUDIT_LOG_FILE", "error", err)
	}
}

// Close writes the summaries of open denial windows, then syncs and closes
// the file.
func (r *Recorder) Close() error {
	if r == nil {
		return nil
	}
	r.denials.close()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.file == nil {
		return nil
	}
	err := errors.Join(r.file.Sync(), r.file.Close())
	r.file = nil
	return err
}

// FileRecord converts e to its JSON form, in the file and in API responses.
func FileRecord(e llmproxy.AuditEvent) mgmtapi.AuditEvent {
	d := e.Details
	if d == nil {
		d = map[string]any{}
	}
	return mgmtapi.AuditEvent{
		ID: e.ID, Seq: e.Seq, Timestamp: e.Timestamp.UTC(), Action: e.Action, Actor: e.Actor,
		Outcome: e.Outcome, Result: e.Outcome, ProjectID: e.ProjectID, TokenID: e.TokenID,
		RequestID: e.RequestID, CorrelationID: e.CorrelationID, ClientIP: e.ClientIP,
		Method: e.Method, Path: e.Path, UserAgent: e.UserAgent, Reason: e.Reason,
		Details: d, PrevHash: e.PrevHash, KeyID: e.KeyID, Hash: e.Hash,
	}
}
