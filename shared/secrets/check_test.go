package secrets

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckStoredKeyIDs(t *testing.T) {
	a, b := newTestKey(t), newTestKey(t)
	idA, idB := mustKeyring(t, a).CurrentKeyID(), mustKeyring(t, b).CurrentKeyID()
	tests := []struct {
		name   string
		kr     *Keyring
		stored []string
		ok     bool
	}{
		{"empty database", mustKeyring(t, a), nil, true},
		{"written with the current key", mustKeyring(t, a), []string{idA}, true},
		{"mid-rotation, old key listed as previous", mustKeyring(t, b, a), []string{idA, idB}, true},
		{"another key", mustKeyring(t, b), []string{idA}, false},
		{"old key no longer listed", mustKeyring(t, b), []string{idA, idB}, false},
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
