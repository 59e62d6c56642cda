package secrets

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeyFileName is the name of the key file llm-proxy serve keeps in its data
// directory when ENCRYPTION_KEY is unset.
const KeyFileName = "encryption.key"

// ErrNoEncryptionKey is returned when no master key is configured. Its message
// says how to make one.
var ErrNoEncryptionKey = errors.New("ENCRYPTION_KEY is not set: it must be the standard base64 of 32 random bytes; " +
	"make one with `openssl rand -base64 32` (or `llm-proxy keygen`) and set ENCRYPTION_KEY to it")

// GenerateKey returns a new random master key, standard base64 of 32 bytes.
func GenerateKey() (string, error) {
	raw := make([]byte, KeySize)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("generate key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(raw), nil
}

// LoadOrCreateKeyFile returns the master key kept in dir/encryption.key,
// creating dir (mode 0700) and the file (mode 0600) with a random key when it
// does not exist. created reports that a new key was written (the caller says
// so once in its log). A file whose contents are not a valid key, or whose mode
// lets others read it, is an error: it is never silently replaced, since that
// would make every stored secret unreadable.
func LoadOrCreateKeyFile(dir string) (key string, created bool, err error) {
	path := filepath.Join(dir, KeyFileName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("key file: create directory: %w", err)
	}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		return checkKeyFile(path, b)
	case !errors.Is(err, fs.ErrNotExist):
		return "", false, fmt.Errorf("key file: %w", err)
	}

	key, err = GenerateKey()
	if err != nil {
		return "", false, err
	}
	// O_EXCL: when two processes race, one creates and the other reads.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		b, err := os.ReadFile(path)
		if err != nil {
			return "", false, fmt.Errorf("key file: %w", err)
		}
		return checkKeyFile(path, b)
	}
	if err != nil {
		return "", false, fmt.Errorf("key file: create: %w", err)
	}
	if _, err := f.WriteString(key + "\n"); err != nil {
		f.Close()
		os.Remove(path)
		return "", false, fmt.Errorf("key file: write: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return "", false, fmt.Errorf("key file: sync: %w", err)
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return "", false, fmt.Errorf("key file: close: %w", err)
	}
	return key, true, nil
}

func checkKeyFile(path string, b []byte) (string, bool, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", false, fmt.Errorf("key file: %w", err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", false, fmt.Errorf("key file %s has mode %v: it must not be readable by group or others (chmod 600 %s)", path, st.Mode().Perm(), path)
	}
	key := strings.TrimSpace(string(b))
	if _, err := newKey("key file "+path, key); err != nil {
		return "", false, fmt.Errorf("%w; fix or remove the file (removing it makes stored upstream keys unreadable)", err)
	}
	return key, false, nil
}
