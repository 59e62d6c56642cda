package events

import (
	"encoding/json"
	"fmt"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
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

func setIDs(e *event.Event, projectID, tokenID, model string) {
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
	// Already-encoded JSON: keep it as "data" (not "data_base64") in
	// structured mode.
	e.SetDataContentType(cloudevents.ApplicationJSON)
	e.DataEncoded = b
	e.DataBase64 = false
	return nil
}

// NewRequestCompletedEvent wraps d in a request.completed event from source.
func NewRequestCompletedEvent(source string, d *RequestCompleted) (event.Event, error) {
	e := newEvent(TypeRequestCompleted, source, d.RequestID, d.ProjectID, d.StartedAt.Add(time.Duration(d.LatencyMS*float64(time.Millisecond))))
	setIDs(&e, d.ProjectID, d.TokenID, d.Model)
	if err := setJSON(&e, d); err != nil {
		return e, err
	}
	return e, nil
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
