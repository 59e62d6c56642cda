package auditcmd_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/llm-proxy/llm-proxy/local/cli/auditcmd"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/management/managementtest"
	"github.com/llm-proxy/llm-proxy/shared/secrets"
)

func TestVerify(t *testing.T) {
	t.Parallel()
	env, ctx := threeProjects(t)
	cfg := config.Config{Database: env.DB, Secrets: config.Secrets{EncryptionKey: env.EncryptionKey}}
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := auditcmd.Run(ctx, args, cfg, &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, _ := run("verify"); code != 0 || !strings.Contains(out, "OK: 3 audit records") || !strings.Contains(out, "no audit file checked") {
		t.Fatalf("intact: %d %q", code, out)
	}
	code, out, _ := run("verify", "--json")
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || res["ok"] != true || res["count"] != float64(3) {
		t.Fatalf("json: %d %q", code, out)
	}

	db, err := sql.Open("sqlite", env.DB.Path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_events SET actor = 'someone_else' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	code, out, _ = run("verify")
	if code != 1 || !strings.Contains(out, "BROKEN: audit record seq 2") || !strings.Contains(out, "hash mismatch") {
		t.Fatalf("tampered: %d %q", code, out)
	}
	code, out, _ = run("verify", "--json")
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 1 || res["ok"] != false {
		t.Fatalf("tampered json: %d %q", code, out)
	}
	if code, _, errOut := run("frobnicate"); code != 2 || !strings.Contains(errOut, "--help") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("usage: %d %q", code, errOut)
	}
	if code, _, errOut := run("verify", "extra"); code != 2 || errOut == "" {
		t.Fatalf("extra arg: %d", code)
	}
}

// verify checks the database against the audit file (AUDIT_LOG_FILE by
// default, --file to name one): deleting the newest record is found; a wrong
// ENCRYPTION_KEY verifies nothing.
func TestVerifyAgainstFile(t *testing.T) {
	t.Parallel()
	env, ctx := threeProjects(t)
	cfg := config.Config{Database: env.DB, Secrets: config.Secrets{EncryptionKey: env.EncryptionKey},
		Audit: config.Audit{LogFile: env.AuditFile}}
	run := func(cfg config.Config, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := auditcmd.Run(ctx, args, cfg, &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, _ := run(cfg, "verify"); code != 0 || !strings.Contains(out, "3 records matched") {
		t.Fatalf("intact with the file: %d %q", code, out)
	}
	other, _ := secrets.GenerateKey()
	if code, out, _ := run(config.Config{Database: env.DB, Secrets: config.Secrets{EncryptionKey: other}}, "verify"); code != 1 || !strings.Contains(out, "unknown audit key id") {
		t.Fatalf("wrong key: %d %q", code, out)
	}
	db, err := sql.Open("sqlite", env.DB.Path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM audit_events WHERE seq = 3`); err != nil {
		t.Fatal(err)
	}
	_ = db.Close()
	if code, out, _ := run(cfg, "verify", "--file="); code != 0 {
		t.Fatalf("without the file the deletion of the newest cannot be seen: %d %q", code, out)
	}
	code, out, _ := run(config.Config{Database: env.DB, Secrets: cfg.Secrets}, "verify", "--json", "--file", env.AuditFile)
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 1 || res["ok"] != false {
		t.Fatalf("truncated: %d %q", code, out)
	}
	if b, _ := res["broken"].(map[string]any); b["seq"] != float64(3) || !strings.Contains(fmt.Sprint(b["reason"]), "deleted from the end") {
		t.Fatalf("truncated: %q", out)
	}
}

// threeProjects is a SQLite stack whose audit trail holds three project
// creations.
func threeProjects(t *testing.T) (*managementtest.Env, context.Context) {
	t.Helper()
	env := managementtest.New(t, "sqlite", managementtest.Options{})
	ctx := context.Background()
	for _, name := range []string{"a", "b", "c"} {
		if _, err := env.Service.CreateProject(ctx, managementtest.Actor(), management.CreateProjectInput{Name: name, APIKey: "sk-test-0123456789abcdefghij"}); err != nil {
			t.Fatal(err)
		}
	}
	return env, ctx
}
