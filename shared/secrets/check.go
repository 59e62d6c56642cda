package secrets

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// ErrWrongKey: the database holds values encrypted under a key the keyring
// does not have.
var ErrWrongKey = errors.New("the configured encryption keys cannot read this database")

// CheckStoredKeyIDs returns nil when every key id in stored (the ids the
// database's ciphertexts name, store's EncryptionKeyIDs) is a key of kr,
// else an error wrapping ErrWrongKey that names ENCRYPTION_KEY and
// ENCRYPTION_KEY_PREVIOUS and what to do. Token hashes are keyed by the same
// master keys, so a key that cannot read the upstream keys would also leave
// every token unknown (401 token_not_found).
func (kr *Keyring) CheckStoredKeyIDs(stored []string) error {
	var missing []string
	for _, id := range stored {
		if _, ok := kr.byID[id]; !ok {
			missing = append(missing, id)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	prev := "none"
	if ids := kr.KeyIDs()[1:]; len(ids) > 0 {
		prev = strings.Join(ids, ", ")
	}
	return fmt.Errorf("%w: its upstream keys were encrypted under key id %s, but ENCRYPTION_KEY has id %s and ENCRYPTION_KEY_PREVIOUS %s; "+
		"with these keys every token would answer 401 and every upstream call 503. Set ENCRYPTION_KEY to the key the database was written with "+
		"(llm-proxy serve without ENCRYPTION_KEY uses DATA_DIR/encryption.key), or, when rotating, keep the old key in ENCRYPTION_KEY_PREVIOUS "+
		"and run `llm-proxy migrate rotate-keys`", ErrWrongKey, strings.Join(missing, ", "), kr.CurrentKeyID(), prev)
}

// KeyIDLister is a store that reports the key ids its ciphertexts name
// (the SQLite and PostgreSQL stores).
type KeyIDLister interface {
	EncryptionKeyIDs(ctx context.Context) ([]string, error)
}

// CheckStore reads the key ids st holds (one query) and checks them with
// CheckStoredKeyIDs. An empty database passes.
func (kr *Keyring) CheckStore(ctx context.Context, st KeyIDLister) error {
	ids, err := st.EncryptionKeyIDs(ctx)
	if err != nil {
		return fmt.Errorf("check ENCRYPTION_KEY against the database: %w", err)
	}
	return kr.CheckStoredKeyIDs(ids)
}
