package secrets

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func newTestKey(t *testing.T) string {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func mustKeyring(t *testing.T, current string, previous ...string) *Keyring {
	t.Helper()
	kr, err := NewKeyring(current, previous)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return kr
}

func TestNewKeyringRejectsBadKeys(t *testing.T) {
	t.Parallel()
	good := newTestKey(t)
	short := base64.StdEncoding.EncodeToString(make([]byte, 16))
	long := base64.StdEncoding.EncodeToString(make([]byte, 33))
	tests := []struct {
		name     string
		current  string
		previous []string
		want     string
	}{
		{"empty", "", nil, "openssl rand -base64 32"},
		{"not base64", "not*base64!", nil, "ENCRYPTION_KEY is not valid standard base64"},
		{"url base64", strings.NewReplacer("+", "-", "/", "_").Replace(base64.StdEncoding.EncodeToString([]byte(strings.Repeat("\xfb", 32)))), nil, "ENCRYPTION_KEY is not valid standard base64"},
		{"16 bytes", short, nil, "ENCRYPTION_KEY must decode to exactly 32 bytes, got 16"},
		{"33 bytes", long, nil, "got 33"},
		{"bad previous", good, []string{short}, "ENCRYPTION_KEY_PREVIOUS (entry 1) must decode to exactly 32 bytes"},
		{"bad previous base64", good, []string{"", "%%%"}, "ENCRYPTION_KEY_PREVIOUS (entry 2) is not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewKeyring(tt.current, tt.previous)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			for _, secret := range append([]string{tt.current}, tt.previous...) {
				if len(secret) > 8 && strings.Contains(err.Error(), secret) {
					t.Fatalf("error reveals the key: %v", err)
				}
			}
		})
	}
	if _, err := NewKeyring("", nil); !errors.Is(err, ErrNoEncryptionKey) {
		t.Fatalf("empty key: err = %v, want ErrNoEncryptionKey", err)
	}
}

func TestEncryptDecryptRoundTrip(t *testing.T) {
	t.Parallel()
	kr := mustKeyring(t, newTestKey(t))
	for _, pt := range []string{"", "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789", "ünïcødé ✓", strings.Repeat("x", 10000)} {
		ct, err := kr.Encrypt(pt)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(ct, "v1:"+kr.CurrentKeyID()+":") {
			t.Fatalf("ciphertext %q lacks v1:<kid>: header", ct)
		}
		got, err := kr.Decrypt(ct)
		if err != nil {
			t.Fatalf("Decrypt: %v", err)
		}
		if got != pt {
			t.Fatalf("round trip: got %q, want %q", got, pt)
		}
	}
}

func TestCiphertextDoesNotContainPlaintext(t *testing.T) {
	t.Parallel()
	kr := mustKeyring(t, newTestKey(t))
	pt := "sk-proj-SECRETSECRETSECRET-0123456789"
	ct1, _ := kr.Encrypt(pt)
	ct2, _ := kr.Encrypt(pt)
	if ct1 == ct2 {
		t.Fatal("two encryptions of the same plaintext are equal: nonce not random")
	}
	for _, ct := range []string{ct1, ct2} {
		for _, frag := range []string{pt, "SECRET", "0123456789", base64.StdEncoding.EncodeToString([]byte(pt)), base64.RawURLEncoding.EncodeToString([]byte(pt))} {
			if strings.Contains(ct, frag) {
				t.Fatalf("ciphertext %q contains %q", ct, frag)
			}
		}
	}
}

func TestDecryptDetectsTampering(t *testing.T) {
	t.Parallel()
	kr := mustKeyring(t, newTestKey(t))
	other := mustKeyring(t, newTestKey(t))
	ct, err := kr.Encrypt("sk-upstream-key-1234567890")
	if err != nil {
		t.Fatal(err)
	}
	data := ct[strings.LastIndex(ct, ":")+1:]
	raw, _ := base64.RawURLEncoding.DecodeString(data)
	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 1
		return ct[:len(ct)-len(data)] + base64.RawURLEncoding.EncodeToString(b)
	}
	otherCT, _ := other.Encrypt("x")
	tests := []struct {
		name string
		ct   string
		want error
	}{
		{"flipped nonce", flip(0), ErrAuthentication},
		{"flipped body", flip(len(raw) / 2), ErrAuthentication},
		{"flipped tag", flip(len(raw) - 1), ErrAuthentication},
		{"truncated", ct[:len(ct)-4], ErrAuthentication},
		{"too short", ct[:len(ct)-len(data)] + "AAAA", ErrMalformed},
		{"bad base64", ct[:len(ct)-len(data)] + "!!!!", ErrMalformed},
		{"no header", data, ErrMalformed},
		{"wrong version", "v2" + ct[2:], ErrMalformed},
		{"plaintext", "sk-upstream-key-1234567890", ErrMalformed},
		{"unknown key id", otherCT, ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := kr.Decrypt(tt.ct)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decrypt(%q) err = %v, want %v", tt.ct, err, tt.want)
			}
			if _, _, err := kr.Reencrypt(tt.ct); !errors.Is(err, tt.want) {
				t.Fatalf("Reencrypt err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestHeaderIsAuthenticated(t *testing.T) {
	t.Parallel()
	// Two keyrings sharing both keys; move a ciphertext's body under the other
	// key id: it must not decrypt.
	a, b := newTestKey(t), newTestKey(t)
	kr := mustKeyring(t, a, b)
	ct, _ := kr.Encrypt("secret")
	ids := kr.KeyIDs()
	relabelled := strings.Replace(ct, ids[0], ids[1], 1)
	if _, err := kr.Decrypt(relabelled); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("relabelled ciphertext: err = %v, want ErrAuthentication", err)
	}
}

func TestRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey := newTestKey(t), newTestKey(t)
	old := mustKeyring(t, oldKey)
	ctA, _ := old.Encrypt("key-A")
	ctB, _ := old.Encrypt("key-B")

	rotating := mustKeyring(t, newKey, oldKey)
	if rotating.CurrentKeyID() == old.CurrentKeyID() {
		t.Fatal("distinct keys have the same key id")
	}
	for ct, want := range map[string]string{ctA: "key-A", ctB: "key-B"} {
		got, err := rotating.Decrypt(ct)
		if err != nil || got != want {
			t.Fatalf("Decrypt old ciphertext under rotating keyring = %q, %v; want %q", got, err, want)
		}
	}

	rotatedA, changed, err := rotating.Reencrypt(ctA)
	if err != nil || !changed {
		t.Fatalf("Reencrypt = changed %v, err %v; want changed", changed, err)
	}
	if !strings.HasPrefix(rotatedA, "v1:"+rotating.CurrentKeyID()+":") {
		t.Fatalf("re-encrypted value %q is not under the current key", rotatedA)
	}
	again, changed, err := rotating.Reencrypt(rotatedA)
	if err != nil || changed || again != rotatedA {
		t.Fatalf("Reencrypt of current ciphertext = %q, %v, %v; want unchanged", again, changed, err)
	}

	onlyNew := mustKeyring(t, newKey)
	if got, err := onlyNew.Decrypt(rotatedA); err != nil || got != "key-A" {
		t.Fatalf("new-key-only Decrypt(rotated) = %q, %v", got, err)
	}
	if _, err := onlyNew.Decrypt(ctB); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("new-key-only Decrypt(un-rotated) err = %v, want ErrUnknownKey", err)
	} else if !strings.Contains(err.Error(), "ENCRYPTION_KEY_PREVIOUS") {
		t.Fatalf("unknown key error should say how to fix it: %v", err)
	}
}

func TestTokenHashRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey := newTestKey(t), newTestKey(t)
	old := mustKeyring(t, oldKey)
	rotating := mustKeyring(t, newKey, oldKey)
	onlyNew := mustKeyring(t, newKey)
	const tok = "llmp_exampletoken"

	h := old.HashToken(tok)
	if len(h) != 64 || strings.Trim(h, "0123456789abcdef") != "" {
		t.Fatalf("hash %q is not 64 lowercase hex", h)
	}
	if h != old.HashToken(tok) {
		t.Fatal("hash is not deterministic")
	}
	if h == old.HashToken(tok+"x") {
		t.Fatal("different tokens hash the same")
	}
	if onlyNew.HashToken(tok) == h {
		t.Fatal("hash does not depend on the key")
	}
	all := rotating.HashTokenAll(tok)
	if len(all) != 2 || all[0] != rotating.HashToken(tok) || all[1] != h {
		t.Fatalf("HashTokenAll = %v, want [current, old=%s]", all, h)
	}
	if got := onlyNew.HashTokenAll(tok); len(got) != 1 || got[0] == h {
		t.Fatalf("after dropping the old key the old hash must not be tried: %v", got)
	}

	// The token hash key differs from the encryption key and from a plain
	// SHA-256 or an HMAC under the raw master key.
	if strings.Contains(h, tok) {
		t.Fatal("hash contains the token")
	}
}

func TestDuplicatePreviousKeysIgnored(t *testing.T) {
	t.Parallel()
	k := newTestKey(t)
	kr := mustKeyring(t, k, k, "", k)
	if len(kr.KeyIDs()) != 1 || len(kr.HashTokenAll("t")) != 1 {
		t.Fatalf("KeyIDs = %v, want one", kr.KeyIDs())
	}
	if got := SplitKeys(" a, ,b,"); len(got) != 2 || got[0] != "a" || got[1] != "b" {
		t.Fatalf("SplitKeys = %q", got)
	}
}

func TestMaskAPIKey(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"", ""},
		{"abc", "***"},
		{"sk-1234567890abc", "****************"},
		{"sk-proj-abcdefghijklmnopqrstuvwxyz", "sk-pro...wxyz"},
	}
	for _, tt := range tests {
		if got := MaskAPIKey(tt.in); got != tt.want {
			t.Errorf("MaskAPIKey(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestEqual(t *testing.T) {
	t.Parallel()
	if !Equal("abc", "abc") || Equal("abc", "abd") || Equal("abc", "ab") || !Equal("", "") {
		t.Fatal("Equal is wrong")
	}
}

func TestLoadOrCreateKeyFile(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data", "nested")
	key, created, err := LoadOrCreateKeyFile(dir)
	if err != nil || !created {
		t.Fatalf("first call: created=%v err=%v", created, err)
	}
	if _, err := NewKeyring(key, nil); err != nil {
		t.Fatalf("created key is not valid: %v", err)
	}
	path := filepath.Join(dir, KeyFileName)
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode = %v, want 0600", st.Mode().Perm())
	}
	dst, _ := os.Stat(dir)
	if dst.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode = %v, want 0700", dst.Mode().Perm())
	}

	key2, created, err := LoadOrCreateKeyFile(dir)
	if err != nil || created || key2 != key {
		t.Fatalf("second call: key equal=%v created=%v err=%v; want the same key reused", key2 == key, created, err)
	}
}

func TestLoadOrCreateKeyFileRejectsBadFile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		want    string
	}{
		{"garbage", "not a key\n", 0o600, "not valid standard base64"},
		{"short", base64.StdEncoding.EncodeToString(make([]byte, 10)), 0o600, "exactly 32 bytes"},
		{"empty", "", 0o600, "exactly 32 bytes, got 0"},
		{"world readable", base64.StdEncoding.EncodeToString(make([]byte, 32)), 0o644, "chmod 600"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, KeyFileName)
			if err := os.WriteFile(path, []byte(tt.content), tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil { // umask-proof
				t.Fatal(err)
			}
			_, _, err := LoadOrCreateKeyFile(dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
			after, _ := os.ReadFile(path)
			if string(after) != tt.content {
				t.Fatal("a bad key file was overwritten")
			}
		})
	}
}

func TestErrNoEncryptionKeyMessage(t *testing.T) {
	t.Parallel()
	if !strings.Contains(ErrNoEncryptionKey.Error(), "openssl rand -base64 32") {
		t.Fatalf("message does not say how to make a key: %v", ErrNoEncryptionKey)
	}
}

func TestDeriveKey(t *testing.T) {
	k1, k2 := newTestKey(t), newTestKey(t)
	a, err := NewKeyring(k1, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewKeyring(k1, nil)
	c, _ := NewKeyring(k2, nil)
	x, _ := a.DeriveKey("admin-ui-session")
	y, _ := b.DeriveKey("admin-ui-session")
	z, _ := c.DeriveKey("admin-ui-session")
	w, _ := a.DeriveKey("other")
	if len(x) != 32 || !bytes.Equal(x, y) {
		t.Fatal("the same master key and purpose must derive the same 32-byte key")
	}
	if bytes.Equal(x, z) || bytes.Equal(x, w) {
		t.Fatal("another master key or purpose must derive another key")
	}
}

// After a rotation, DeriveKeys still yields the old key's derivation under
// the old key id, and the new key's under the current id.
func TestDeriveKeysAfterRotation(t *testing.T) {
	t.Parallel()
	oldKey, newKey := newTestKey(t), newTestKey(t)
	before, _ := NewKeyring(oldKey, nil)
	after, err := NewKeyring(newKey, []string{oldKey})
	if err != nil {
		t.Fatal(err)
	}
	oldDerived, _ := before.DeriveKey("audit-chain")
	newDerived, _ := after.DeriveKey("audit-chain")
	all, err := after.DeriveKeys("audit-chain")
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || !bytes.Equal(all[before.CurrentKeyID()], oldDerived) || !bytes.Equal(all[after.CurrentKeyID()], newDerived) {
		t.Fatalf("DeriveKeys = %d keys; old ok %v, new ok %v", len(all),
			bytes.Equal(all[before.CurrentKeyID()], oldDerived), bytes.Equal(all[after.CurrentKeyID()], newDerived))
	}
}
