package secrets

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckStoredKeyIDs(t *testing.T) {
	a, b := mustKey(t), mustKey(t)
	only := func(cur string, prev ...string) *Keyring {
		kr, err := NewKeyring(cur, prev)
		if err != nil {
			t.Fatal(err)
		}
		return kr
	}
	idA, idB := only(a).CurrentKeyID(), only(b).CurrentKeyID()
	tests := []struct {
		name   string
		kr     *Keyring
		stored []string
		ok     bool
	}{
		{"empty database", only(a), nil, true},
		{"written with the current key", only(a), []string{idA}, true},
		{"mid-rotation, old key listed as previous", only(b, a), []string{idA, idB}, true},
		{"another key", only(b), []string{idA}, false},
		{"old key no longer listed", only(b), []string{idA, idB}, false},
	}
	for _, tt := range tests {
		err := tt.kr.CheckStoredKeyIDs(tt.stored)
		if tt.ok != (err == nil) {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if err != nil {
			msg := err.Error()
			if !errors.Is(err, ErrWrongKey) || !strings.Contains(msg, "ENCRYPTION_KEY ") || !strings.Contains(msg, "ENCRYPTION_KEY_PREVIOUS") || !strings.Contains(msg, idA) {
				t.Errorf("%s: %q must wrap ErrWrongKey, name ENCRYPTION_KEY, ENCRYPTION_KEY_PREVIOUS and the missing id %s", tt.name, msg, idA)
			}
		}
	}
}

func mustKey(t *testing.T) string {
	t.Helper()
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}
