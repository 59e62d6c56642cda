package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

var mgmtTokenRE = regexp.MustCompile(`MANAGEMENT_TOKEN=(\S+)`)

// TestServeStartsWithNoConfiguration is the quick start: no variables at
// all; serve creates its key file and database, generates a management token
// and prints it once, and keeps accepting it (by hash) after a restart.
func TestServeStartsWithNoConfiguration(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, dir, nil)
	m := mgmtTokenRE.FindStringSubmatch(s.Stdout())
	if m == nil {
		t.Fatalf("serve did not print a generated management token:\n%s", s.Stdout())
	}
	token := m[1]
	if code := api(t, "GET", s.URL+"/health", "", nil, nil); code != http.StatusOK {
		t.Fatalf("/health = %d", code)
	}
	if code := api(t, "GET", s.URL+"/manage/projects", token, nil, nil); code != http.StatusOK {
		t.Fatalf("generated token refused: %d", code)
	}
	info, err := os.Stat(filepath.Join(dir, "encryption.key"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v", info, err)
	}
	s.Signal(syscall.SIGTERM)
	if code := s.Wait(30 * time.Second); code != 0 {
		t.Fatalf("serve exited %d after SIGTERM\n%s", code, s.Stderr())
	}

	again := startServe(t, dir, nil)
	if strings.Contains(again.Stdout(), "MANAGEMENT_TOKEN=") {
		t.Fatal("a restart must not generate or print a new management token")
	}
	if code := api(t, "GET", again.URL+"/manage/projects", token, nil, nil); code != http.StatusOK {
		t.Fatalf("token from the first start refused after restart: %d", code)
	}
	if code := api(t, "GET", again.URL+"/manage/projects", "wrong", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("wrong token = %d, want 401", code)
	}
	db, err := os.ReadFile(filepath.Join(dir, "llm-proxy.db"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(db), token) {
		t.Fatal("the management token is stored in plaintext")
	}
}

func TestInvalidConfigurationStopsWithOneLine(t *testing.T) {
	_, stderr, code := cli(t, map[string]string{"DB_DRIVER": "mysql"}, "serve")
	if code == 0 || !strings.Contains(stderr, "DB_DRIVER") || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
		t.Fatalf("exit %d, stderr %q: want a non-zero exit and one line naming DB_DRIVER", code, stderr)
	}
}

func TestVersion(t *testing.T) {
	out, _, code := cli(t, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "llm-proxy ") || !strings.Contains(out, "commit") {
		t.Fatalf("version: %d %q", code, out)
	}
}
