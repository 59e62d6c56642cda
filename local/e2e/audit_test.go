package e2e

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// TestAuditVerifyAgainstFile: through the real binary, the audit trail that
// serve writes verifies, against its AUDIT_LOG_FILE too; a record deleted
// from the end of the database is found only against the file, and an edited
// record re-hashed without the key is found by the chain.
func TestAuditVerifyAgainstFile(t *testing.T) {
	dir := t.TempDir()
	const mgmt = "audit-e2e-management-token-0123456789"
	auditFile := filepath.Join(dir, "audit", "audit.jsonl")
	dbPath := filepath.Join(dir, "llm-proxy.db")
	s := startServe(t, dir, map[string]string{"MANAGEMENT_TOKEN": mgmt, "AUDIT_LOG_FILE": auditFile})
	for i := range 3 {
		body := map[string]any{"name": fmt.Sprintf("audit-%d", i), "api_key": "sk-audit-upstream-key-0123456789"}
		if code := api(t, "POST", s.URL+"/manage/projects", mgmt, body, nil); code != 201 {
			t.Fatalf("create project: %d", code)
		}
	}
	s.Signal(syscall.SIGTERM)
	if code := s.Wait(30 * time.Second); code != 0 {
		t.Fatalf("serve exit %d: %s", code, s.Stderr())
	}
	env := map[string]string{"DATA_DIR": dir, "DATABASE_PATH": dbPath, "AUDIT_LOG_FILE": auditFile}
	verify := func(args ...string) (string, int) {
		t.Helper()
		out, stderr, code := cli(t, env, append([]string{"audit", "verify"}, args...)...)
		return out + stderr, code
	}
	if out, code := verify(); code != 0 || !strings.Contains(out, "OK: 3 audit records") || !strings.Contains(out, "3 records matched") {
		t.Fatalf("intact: exit %d\n%s", code, out)
	}

	db, err := sql.Open("sqlite", dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`DELETE FROM audit_events WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	if out, code := verify("--file="); code != 0 {
		t.Fatalf("without the file a deleted newest record is invisible, yet: exit %d\n%s", code, out)
	}
	if out, code := verify(); code != 1 || !strings.Contains(out, "BROKEN: audit record seq 3") || !strings.Contains(out, "deleted from the end") {
		t.Fatalf("deleted newest: exit %d\n%s", code, out)
	}
	if _, err := db.Exec(`UPDATE audit_events SET reason = 'edited', key_id = '' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	if out, code := verify("--file="); code != 1 || !strings.Contains(out, "BROKEN: audit record seq 2") {
		t.Fatalf("edited record: exit %d\n%s", code, out)
	}
}
