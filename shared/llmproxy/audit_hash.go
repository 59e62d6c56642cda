package llmproxy

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// AuditKey is the key of the audit chain's HMAC. ID names the master key it
// is derived from (the keyring's key id) and is stored with every record, so
// that a record keeps verifying after ENCRYPTION_KEY rotates (its key is then
// derived from ENCRYPTION_KEY_PREVIOUS). The secret is never stored.
type AuditKey struct {
	ID     string
	Secret []byte
}

// Keyed reports whether k can seal records (a zero AuditKey seals legacy,
// unkeyed records).
func (k AuditKey) Keyed() bool { return k.ID != "" && len(k.Secret) > 0 }

// auditMACLabel separates the keyed chain (v2) from every other use of the
// key and from the unkeyed chain.
const auditMACLabel = "llm-proxy/audit-chain/v2"

// Seal links e to its predecessor's hash under k: it sets PrevHash, KeyID
// and Hash. With a keyed k, Hash is ComputeMAC; with a zero k it is the
// legacy ComputeHash and KeyID is empty.
func (e AuditEvent) Seal(prevHash string, k AuditKey) AuditEvent {
	e.PrevHash = prevHash
	if !k.Keyed() {
		e.KeyID = ""
		e.Hash = e.ComputeHash(prevHash)
		return e
	}
	e.KeyID = k.ID
	e.Hash = e.ComputeMAC(prevHash, k.Secret)
	return e
}

// ComputeMAC returns the keyed chain hash of e: the hex HMAC-SHA-256 under
// secret of a label, prevHash and the canonical content of e (every field
// ComputeHash covers, and KeyID). Without the secret nobody can compute it,
// so a record edited, inserted or re-linked by someone who can only write to
// the database does not verify.
func (e AuditEvent) ComputeMAC(prevHash string, secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(auditMACLabel))
	m.Write([]byte{0})
	m.Write([]byte(e.KeyID))
	m.Write([]byte{0})
	m.Write([]byte(prevHash))
	m.Write([]byte{0})
	m.Write(e.canonicalContent())
	return hex.EncodeToString(m.Sum(nil))
}

// ComputeHash returns the legacy (unkeyed) chain hash of e given its
// predecessor's hash: the hex SHA-256 of prevHash and a canonical JSON
// encoding of every content field (ID, Seq, timestamp in UTC with microsecond
// precision, action, actor, outcome, ids, request facts, reason and details).
// e.Hash, e.PrevHash and e.KeyID are not read. Records written before the
// chain was keyed carry this hash; anyone can recompute it, so it only
// detects accidental change (see shared/audit's Verify for how such records
// are treated).
//
// Both store engines persist timestamps with microsecond precision, so the
// timestamp is truncated to microseconds before hashing; callers should
// truncate e.Timestamp the same way before storing.
func (e AuditEvent) ComputeHash(prevHash string) string {
	h := sha256.New()
	h.Write([]byte(prevHash))
	h.Write([]byte{0})
	h.Write(e.canonicalContent())
	return hex.EncodeToString(h.Sum(nil))
}

// canonicalContent is the JSON encoding of e's content fields that both
// hashes cover.
func (e AuditEvent) canonicalContent() []byte {
	content := struct {
		ID, Action, Actor, Outcome, ProjectID, TokenID, RequestID, CorrelationID string
		ClientIP, Method, Path, UserAgent, Reason, Timestamp                     string
		Seq                                                                      int64
		Details                                                                  map[string]any
	}{
		e.ID, e.Action, e.Actor, e.Outcome, e.ProjectID, e.TokenID, e.RequestID, e.CorrelationID,
		e.ClientIP, e.Method, e.Path, e.UserAgent, e.Reason,
		e.Timestamp.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano),
		e.Seq, e.Details,
	}
	// encoding/json sorts map keys, so the encoding is canonical.
	b, err := json.Marshal(content)
	if err != nil {
		// Details come from our own code and are always JSON-encodable;
		// an unencodable value is a programming error.
		panic("llmproxy: audit details not JSON-encodable: " + err.Error())
	}
	return b
}
