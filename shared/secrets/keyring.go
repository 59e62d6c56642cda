// Package secrets encrypts upstream API keys at rest and hashes withering
// tokens, under the master key ENCRYPTION_KEY.
//
// A Keyring holds the current master key and any previous ones
// (ENCRYPTION_KEY_PREVIOUS). From each master key it derives, with HKDF-SHA-256
// and distinct labels, two independent subkeys: one for AES-256-GCM
// encryption and one for the HMAC-SHA-256 token hash. The master key itself is
// never used directly.
//
// Ciphertexts have the form "v1:<kid>:<base64url(nonce||ciphertext||tag)>",
// where kid is a short public id of the master key (the first 8 hex digits of
// a SHA-256 over a labelled copy of it). The "v1:<kid>" header is bound to the
// ciphertext as additional authenticated data, so it cannot be swapped.
//
// Rotation: set the new key as ENCRYPTION_KEY and the old one in
// ENCRYPTION_KEY_PREVIOUS. Old ciphertexts stay readable (Decrypt picks the key
// by kid); Reencrypt, called for every stored key by
// `llm-proxy migrate rotate-keys` through store.Store.ReencryptProjectKeys,
// moves them under the current key. Token hashes cannot be re-computed without
// the plaintext, so lookups try HashTokenAll: the hash under the current key,
// then under each previous key. A token created before the rotation therefore
// keeps validating while its old key is listed in ENCRYPTION_KEY_PREVIOUS; once
// the old key is removed, tokens created before the rotation stop validating
// and must be re-issued (they wither anyway).
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the size of a master key in bytes.
const KeySize = 32

// Labels that separate the uses of a master key.
const (
	labelEncrypt = "llm-proxy/v1/encrypt/aes-256-gcm"
	labelToken   = "llm-proxy/v1/token-hash/hmac-sha-256"
	labelKeyID   = "llm-proxy/v1/key-id"
)

const ciphertextVersion = "v1"

// Errors returned by Decrypt and Reencrypt.
var (
	// ErrMalformed: the value is not a ciphertext produced by Encrypt.
	ErrMalformed = errors.New("malformed ciphertext")
	// ErrUnknownKey: the ciphertext names a key id that is neither the current
	// key nor one of the previous keys.
	ErrUnknownKey = errors.New("unknown encryption key id")
	// ErrAuthentication: the ciphertext was altered or the key is wrong.
	ErrAuthentication = errors.New("ciphertext authentication failed")
)

type key struct {
	id      string
	raw     []byte
	aead    cipher.AEAD
	hmacKey []byte
}

// Keyring holds the current master key and the previous ones. It is safe for
// concurrent use.
type Keyring struct {
	current *key
	all     []*key // current first, then previous in the given order
	byID    map[string]*key
}

// NewKeyring decodes current (ENCRYPTION_KEY) and previous
// (ENCRYPTION_KEY_PREVIOUS) master keys: standard base64 of exactly 32 bytes.
// Empty entries in previous are ignored, as is a previous key equal to the
// current one.
func NewKeyring(current string, previous []string) (*Keyring, error) {
	if strings.TrimSpace(current) == "" {
		return nil, ErrNoEncryptionKey
	}
	cur, err := newKey("ENCRYPTION_KEY", current)
	if err != nil {
		return nil, err
	}
	kr := &Keyring{current: cur, all: []*key{cur}, byID: map[string]*key{cur.id: cur}}
	for i, p := range previous {
		if strings.TrimSpace(p) == "" {
			continue
		}
		k, err := newKey(fmt.Sprintf("ENCRYPTION_KEY_PREVIOUS (entry %d)", i+1), p)
		if err != nil {
			return nil, err
		}
		if _, dup := kr.byID[k.id]; dup {
			continue // the same key listed twice
		}
		kr.byID[k.id] = k
		kr.all = append(kr.all, k)
	}
	return kr, nil
}

// SplitKeys splits a comma-separated list of keys (ENCRYPTION_KEY_PREVIOUS),
// dropping blanks.
func SplitKeys(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func newKey(name, b64 string) (*key, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
	if err != nil {
		return nil, fmt.Errorf("%s is not valid standard base64 (make one with: openssl rand -base64 32)", name)
	}
	if len(raw) != KeySize {
		return nil, fmt.Errorf("%s must decode to exactly %d bytes, got %d (make one with: openssl rand -base64 32)", name, KeySize, len(raw))
	}
	encKey, err := hkdf.Key(sha256.New, raw, nil, labelEncrypt, 32)
	if err != nil {
		return nil, fmt.Errorf("derive encryption key: %w", err)
	}
	hmacKey, err := hkdf.Key(sha256.New, raw, nil, labelToken, 32)
	if err != nil {
		return nil, fmt.Errorf("derive token hash key: %w", err)
	}
	block, err := aes.NewCipher(encKey)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("gcm: %w", err)
	}
	return &key{id: keyID(raw), raw: raw, aead: aead, hmacKey: hmacKey}, nil
}

// DeriveKey returns a 32-byte key for purpose, derived from the current
// master key with HKDF-SHA-256 and a label distinct from the keyring's own
// (e.g. "admin-ui-session"). It lets other parts get a stable secret without
// a variable of their own; it changes when ENCRYPTION_KEY rotates.
func (k *Keyring) DeriveKey(purpose string) ([]byte, error) {
	out, err := derive(k.current.raw, purpose)
	if err != nil {
		return nil, fmt.Errorf("derive %s key: %w", purpose, err)
	}
	return out, nil
}

// derive is the HKDF-SHA-256 derivation of DeriveKey and DeriveKeys.
func derive(raw []byte, purpose string) ([]byte, error) {
	return hkdf.Key(sha256.New, raw, nil, "llm-proxy/v1/derived/"+purpose, 32)
}

// DeriveKeys returns the key DeriveKey(purpose) gives for every master key,
// current and previous, by key id: what verifies a value derived under a key
// that has since been rotated into ENCRYPTION_KEY_PREVIOUS.
func (kr *Keyring) DeriveKeys(purpose string) (map[string][]byte, error) {
	out := make(map[string][]byte, len(kr.all))
	for _, k := range kr.all {
		d, err := derive(k.raw, purpose)
		if err != nil {
			return nil, fmt.Errorf("derive %s key %s: %w", purpose, k.id, err)
		}
		out[k.id] = d
	}
	return out, nil
}

// keyID is the public id of a master key: 8 hex digits of a labelled SHA-256.
// It reveals nothing usable about the key.
func keyID(raw []byte) string {
	h := sha256.New()
	h.Write([]byte(labelKeyID))
	h.Write([]byte{0})
	h.Write(raw)
	return hex.EncodeToString(h.Sum(nil))[:8]
}

// CurrentKeyID returns the id of the current key.
func (kr *Keyring) CurrentKeyID() string { return kr.current.id }

// KeyIDs returns the ids of all keys, current first.
func (kr *Keyring) KeyIDs() []string {
	ids := make([]string, len(kr.all))
	for i, k := range kr.all {
		ids[i] = k.id
	}
	return ids
}

// Encrypt seals plaintext under the current key with a random nonce.
func (kr *Keyring) Encrypt(plaintext string) (string, error) {
	k := kr.current
	header := ciphertextVersion + ":" + k.id
	nonce := make([]byte, k.aead.NonceSize(), k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("encrypt: nonce: %w", err)
	}
	sealed := k.aead.Seal(nonce, nonce, []byte(plaintext), []byte(header))
	return header + ":" + base64.RawURLEncoding.EncodeToString(sealed), nil
}

// Decrypt opens a value produced by Encrypt under any known key.
func (kr *Keyring) Decrypt(ciphertext string) (string, error) {
	k, header, sealed, err := kr.parse(ciphertext)
	if err != nil {
		return "", err
	}
	ns := k.aead.NonceSize()
	if len(sealed) < ns+k.aead.Overhead() {
		return "", fmt.Errorf("decrypt: %w: too short", ErrMalformed)
	}
	pt, err := k.aead.Open(nil, sealed[:ns], sealed[ns:], []byte(header))
	if err != nil {
		return "", fmt.Errorf("decrypt with key %s: %w", k.id, ErrAuthentication)
	}
	return string(pt), nil
}

// Reencrypt returns ciphertext re-sealed under the current key. changed is
// false (and newCiphertext equals ciphertext) when it already is under the
// current key. It has the shape of store.Store.ReencryptProjectKeys' callback.
func (kr *Keyring) Reencrypt(ciphertext string) (newCiphertext string, changed bool, err error) {
	k, _, _, err := kr.parse(ciphertext)
	if err != nil {
		return "", false, err
	}
	pt, err := kr.Decrypt(ciphertext)
	if err != nil {
		return "", false, err
	}
	if k == kr.current {
		return ciphertext, false, nil
	}
	out, err := kr.Encrypt(pt)
	if err != nil {
		return "", false, err
	}
	return out, true, nil
}

// KeyIDOf returns the key id a ciphertext names, without decrypting it.
func KeyIDOf(ciphertext string) (string, error) {
	parts := strings.SplitN(ciphertext, ":", 3)
	if len(parts) != 3 || parts[0] != ciphertextVersion || len(parts[1]) != 8 {
		return "", ErrMalformed
	}
	return parts[1], nil
}

func (kr *Keyring) parse(ciphertext string) (k *key, header string, sealed []byte, err error) {
	id, err := KeyIDOf(ciphertext)
	if err != nil {
		return nil, "", nil, fmt.Errorf("decrypt: %w: expected v1:<key id>:<data>", ErrMalformed)
	}
	k, ok := kr.byID[id]
	if !ok {
		return nil, "", nil, fmt.Errorf("decrypt: %w %q: add the key that encrypted it to ENCRYPTION_KEY_PREVIOUS", ErrUnknownKey, id)
	}
	header = ciphertext[:len(ciphertextVersion)+1+len(id)]
	sealed, err = base64.RawURLEncoding.DecodeString(ciphertext[len(header)+1:])
	if err != nil {
		return nil, "", nil, fmt.Errorf("decrypt: %w: bad base64", ErrMalformed)
	}
	return k, header, sealed, nil
}

// HashToken returns the hex HMAC-SHA-256 of token under the token-hash key
// derived from the current master key. This is what the store keeps.
func (kr *Keyring) HashToken(token string) string {
	return hashWith(kr.current, token)
}

// HashTokenAll returns the token's hash under the current key, then under each
// previous key. Lookups try them in order, so tokens created before a key
// rotation keep validating while their key is in ENCRYPTION_KEY_PREVIOUS.
func (kr *Keyring) HashTokenAll(token string) []string {
	out := make([]string, len(kr.all))
	for i, k := range kr.all {
		out[i] = hashWith(k, token)
	}
	return out
}

func hashWith(k *key, token string) string {
	m := hmac.New(sha256.New, k.hmacKey)
	m.Write([]byte(token))
	return hex.EncodeToString(m.Sum(nil))
}

// Equal reports whether a and b are equal, in time independent of where they
// differ (for comparing secrets such as the management token).
func Equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// MaskAPIKey renders an upstream key for display: the first 6 and last 4
// characters around "..." for keys of more than 16 characters, else all "*".
func MaskAPIKey(k string) string {
	if len(k) <= 16 {
		return strings.Repeat("*", len(k))
	}
	return k[:6] + "..." + k[len(k)-4:]
}
