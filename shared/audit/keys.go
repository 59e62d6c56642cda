package audit

import (
	"fmt"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/secrets"
)

// KeyPurpose is the keyring purpose the audit chain's key is derived for
// (secrets.Keyring.DeriveKey).
const KeyPurpose = "audit-chain"

// Keys are the audit chain's HMAC keys, derived from the keyring: the
// current one (from ENCRYPTION_KEY) seals new records, and every one (from
// ENCRYPTION_KEY and ENCRYPTION_KEY_PREVIOUS) verifies, by the key id each
// record carries. The database never holds them.
type Keys struct {
	current llmproxy.AuditKey
	byID    map[string][]byte
}

// KeysFrom derives the audit keys from kr.
func KeysFrom(kr *secrets.Keyring) (*Keys, error) {
	all, err := kr.DeriveKeys(KeyPurpose)
	if err != nil {
		return nil, fmt.Errorf("audit keys: %w", err)
	}
	id := kr.CurrentKeyID()
	return &Keys{current: llmproxy.AuditKey{ID: id, Secret: all[id]}, byID: all}, nil
}

// Current is the key that seals new records.
func (k *Keys) Current() llmproxy.AuditKey { return k.current }

// secret returns the key of id, for verification.
func (k *Keys) secret(id string) ([]byte, bool) {
	if k == nil {
		return nil, false
	}
	s, ok := k.byID[id]
	return s, ok
}
