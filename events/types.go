package events

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
)

// TypePrefix is the reverse-DNS prefix of every event type.
const TypePrefix = "io.llmproxy."

// Event types: one per fact, each with its data version.
const (
	TypeRequestCompleted = TypePrefix + "request.completed.v1"
	TypeProjectUpdated   = TypePrefix + "project.updated.v1"
	TypeTokenCreated     = TypePrefix + "token.created.v1"
	TypeTokenRevoked     = TypePrefix + "token.revoked.v1"
)

// Types lists every event type llm-proxy emits.
var Types = []string{TypeRequestCompleted, TypeProjectUpdated, TypeTokenCreated, TypeTokenRevoked}

// KnownType reports whether t is one of Types.
func KnownType(t string) bool {
	for _, k := range Types {
		if k == t {
			return true
		}
	}
	return false
}

// Extension attribute names (lower-case letters and digits, ≤ 20 chars).
const (
	ExtProjectID = "projectid"
	ExtTokenID   = "tokenid"
	ExtModel     = "model"
)

// Extensions lists every extension attribute name we set.
var Extensions = []string{ExtProjectID, ExtTokenID, ExtModel}

// DefaultSource is the source used when none is configured.
const DefaultSource = "/llmproxy/functions/proxy"

// SchemaBase prefixes the dataschema URI of each type (it need not resolve).
const SchemaBase = "https://llm-proxy.github.io/schemas/"

func newEvent(typ, source, id, subject string, at time.Time) event.Event {
	if e, ok := newEventDirect(typ, source, id, subject, at); ok {
		return e
	}
	e := cloudevents.NewEvent()
	e.SetType(typ)
	e.SetSource(source)
	e.SetID(id)
	if subject != "" {
		e.SetSubject(subject)
	}
	e.SetTime(at.UTC())
	e.SetDataSchema(SchemaBase + typ[len(TypePrefix):] + ".json")
	return e
}

// newEventDirect builds the event newEvent's setters build, for the usual
// case (a known type, a valid source, an id and subject without
// surrounding spaces, a time), without parsing the source and the schema
// URI again for every event. TestNewEventDirect checks it is the same.
// What it builds is valid (event.Validate), also with the extensions of
// setIDs and the JSON data of setEncoded: the source and schema were
// checked once, the rest here.
func newEventDirect(typ, source, id, subject string, at time.Time) (event.Event, bool) {
	schema, ok := schemaURIs[typ]
	if !ok || id == "" || strings.TrimSpace(id) != id || strings.TrimSpace(subject) != subject || at.IsZero() {
		return event.Event{}, false
	}
	src, ok := parsedSource(source)
	if !ok {
		return event.Event{}, false
	}
	ec := &event.EventContextV1{ID: id, Source: src, Type: typ, Time: &types.Timestamp{Time: at.UTC()}}
	ds := schema // a copy per event
	ec.DataSchema = &ds
	if subject != "" {
		ec.Subject = &subject
	}
	return event.Event{Context: ec}, true
}

// schemaURIs holds the parsed dataschema of each type.
var schemaURIs = func() map[string]types.URI {
	m := make(map[string]types.URI, len(Types))
	for _, t := range Types {
		u, err := url.Parse(SchemaBase + t[len(TypePrefix):] + ".json")
		if err != nil {
			panic(err)
		}
		m[t] = types.URI{URL: *u}
	}
	return m
}()

// sources caches parsed event sources (string → types.URIRef): a process
// uses one or two.
var (
	sources     sync.Map
	sourceCount atomic.Int32
)

// parsedSource parses source; false when it does not parse or would not
// pass event.Validate.
func parsedSource(source string) (types.URIRef, bool) {
	if v, ok := sources.Load(source); ok {
		return v.(types.URIRef), true
	}
	u, err := url.Parse(source)
	if err != nil {
		return types.URIRef{}, false
	}
	ref := types.URIRef{URL: *u}
	if strings.TrimSpace(ref.String()) == "" {
		return types.URIRef{}, false
	}
	if sourceCount.Load() < 64 { // bounded, whatever callers pass
		if _, loaded := sources.LoadOrStore(source, ref); !loaded {
			sourceCount.Add(1)
		}
	}
	return ref, true
}

func setIDs(e *event.Event, projectID, tokenID, model string) {
	if ec, ok := e.Context.(*event.EventContextV1); ok && ec.Extensions == nil {
		// What SetExtension stores for these lower-case names and string
		// values, without its checks.
		n := 0
		for _, v := range [...]string{projectID, tokenID, model} {
			if v != "" {
				n++
			}
		}
		if n == 0 {
			return
		}
		ec.Extensions = make(map[string]any, n)
		if projectID != "" {
			ec.Extensions[ExtProjectID] = projectID
		}
		if tokenID != "" {
			ec.Extensions[ExtTokenID] = tokenID
		}
		if model != "" {
			ec.Extensions[ExtModel] = model
		}
		return
	}
	if projectID != "" {
		e.SetExtension(ExtProjectID, projectID)
	}
	if tokenID != "" {
		e.SetExtension(ExtTokenID, tokenID)
	}
	if model != "" {
		e.SetExtension(ExtModel, model)
	}
}

func setJSON(e *event.Event, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return fmt.Errorf("encode %s data: %w", e.Type(), err)
	}
	setEncoded(e, b)
	return nil
}

// setEncoded sets already-encoded JSON data: kept as "data" (not
// "data_base64") in structured mode.
func setEncoded(e *event.Event, b []byte) {
	if ec, ok := e.Context.(*event.EventContextV1); ok {
		ct := cloudevents.ApplicationJSON // what SetDataContentType stores
		ec.DataContentType = &ct
	} else {
		e.SetDataContentType(cloudevents.ApplicationJSON)
	}
	e.DataEncoded = b
	e.DataBase64 = false
}

// NewRequestCompletedEvent wraps d in a request.completed event from source.
func NewRequestCompletedEvent(source string, d *RequestCompleted) (event.Event, error) {
	e, _, err := newRequestCompletedEvent(source, d)
	return e, err
}

// newRequestCompletedEvent is NewRequestCompletedEvent; valid reports that
// the event is valid by construction (built by newEventDirect from a
// source it validated), so the caller need not Validate it. d does not
// escape.
func newRequestCompletedEvent(source string, d *RequestCompleted) (e event.Event, valid bool, err error) {
	at := d.StartedAt.Add(time.Duration(d.LatencyMS * float64(time.Millisecond)))
	e, valid = newEventDirect(TypeRequestCompleted, source, d.RequestID, d.ProjectID, at)
	if !valid {
		e = newEvent(TypeRequestCompleted, source, d.RequestID, d.ProjectID, at)
	}
	setIDs(&e, d.ProjectID, d.TokenID, d.Model)
	b, ok := d.appendJSON(make([]byte, 0, d.jsonSizeHint()))
	if !ok {
		if b, err = json.Marshal(*d); err != nil { // a copy: d stays on the caller's stack
			return e, false, fmt.Errorf("encode %s data: %w", e.Type(), err)
		}
	}
	setEncoded(&e, b)
	return e, valid, nil
}

// ProjectUpdated is the data of TypeProjectUpdated: a project was created,
// changed, deactivated or reactivated.
type ProjectUpdated struct {
	ProjectID string    `json:"project_id"`
	Action    string    `json:"action"`            // the audit action, e.g. project.create, project.update
	Name      string    `json:"name,omitempty"`    // the project's name after the change
	IsActive  bool      `json:"is_active"`         // after the change
	Changed   []string  `json:"changed,omitempty"` // names of the fields that changed
	Actor     string    `json:"actor,omitempty"`
	RequestID string    `json:"request_id"`
	At        time.Time `json:"at"`
}

// TokenChanged is the data of TypeTokenCreated and TypeTokenRevoked. It
// never carries the token itself.
type TokenChanged struct {
	TokenID     string     `json:"token_id"`
	ProjectID   string     `json:"project_id"`
	Action      string     `json:"action"` // the audit action, e.g. token.create, token.revoke, token.revoke_batch
	ExpiresAt   *time.Time `json:"expires_at,omitempty"`
	MaxRequests *int64     `json:"max_requests,omitempty"`
	Actor       string     `json:"actor,omitempty"`
	RequestID   string     `json:"request_id"`
	At          time.Time  `json:"at"`
}

// NewProjectUpdatedEvent builds a project.updated event. id must be unique
// per fact (e.g. the management request id, or request id + project id for
// a bulk change).
func NewProjectUpdatedEvent(source, id string, d ProjectUpdated) (event.Event, error) {
	e := newEvent(TypeProjectUpdated, source, id, d.ProjectID, d.At)
	setIDs(&e, d.ProjectID, "", "")
	return e, setJSON(&e, d)
}

// NewTokenCreatedEvent builds a token.created event.
func NewTokenCreatedEvent(source, id string, d TokenChanged) (event.Event, error) {
	return newTokenEvent(TypeTokenCreated, source, id, d)
}

// NewTokenRevokedEvent builds a token.revoked event. A bulk revocation emits
// one event per token, with id = request id + "/" + token id.
func NewTokenRevokedEvent(source, id string, d TokenChanged) (event.Event, error) {
	return newTokenEvent(TypeTokenRevoked, source, id, d)
}

func newTokenEvent(typ, source, id string, d TokenChanged) (event.Event, error) {
	e := newEvent(typ, source, id, d.ProjectID, d.At)
	setIDs(&e, d.ProjectID, d.TokenID, "")
	return e, setJSON(&e, d)
}
