package llmproxy

import "time"

// ChangeKind names what a management change did.
type ChangeKind string

// The kinds of Change.
const (
	ChangeProjectUpdated ChangeKind = "project.updated" // a project was created or changed
	ChangeTokenCreated   ChangeKind = "token.created"
	ChangeTokenRevoked   ChangeKind = "token.revoked" // revoked or deactivated
)

// Change is a committed management change, as the management service
// announces it to other systems (the event emitter makes a CloudEvent of
// it). It never carries an upstream key, a token or a token hash.
type Change struct {
	Kind ChangeKind
	// ID is unique per fact and stable: the id of the audit record of the
	// action, "<record id>/<token id>" for each token of a bulk revocation.
	ID     string
	Action string // the audit action, e.g. project.update, token.revoke_batch

	ProjectID string
	TokenID   string // token changes

	// Project changes: the project's name and state after the change, and
	// the names of the fields that changed.
	Name     string
	IsActive bool
	Changed  []string

	// Token creation.
	ExpiresAt   *time.Time
	MaxRequests *int64

	Actor     string
	RequestID string
	At        time.Time
}
