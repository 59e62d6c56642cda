package llmproxy

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// ComputeHash returns the chain hash of e given its predecessor's hash: the
// hex SHA-256 of prevHash and a canonical JSON encoding of every content field
// (ID, Seq, timestamp in UTC with microsecond precision, action, actor, outcome,
// ids, request facts, reason and details). e.Hash and e.PrevHash are not read.
//
// Both store engines persist timestamps with microsecond precision, so the
// timestamp is truncated to microseconds before hashing; callers should
// truncate e.Timestamp the same way before storing.
func (e AuditEvent) ComputeHash(prevHash string) string {
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
	h := sha256.New()
	h.Write([]byte(prevHash))
	h.Write([]byte{0})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}
