package auditcmd_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/llm-proxy/llm-proxy/local/cli/auditcmd"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/management/managementtest"
)

func TestVerify(t *testing.T) {
	t.Parallel()
	env := managementtest.New(t, "sqlite", managementtest.Options{})
	ctx := context.Background()
	a := managementtest.Actor()
	for _, name := range []string{"a", "b", "c"} {
		if _, err := env.Service.CreateProject(ctx, a, management.CreateProjectInput{Name: name, APIKey: "sk-test-0123456789abcdefghij"}); err != nil {
			t.Fatal(err)
		}
	}
	cfg := config.Config{Database: env.DB}
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := auditcmd.Run(ctx, args, cfg, &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, _ := run("verify"); code != 0 || !strings.Contains(out, "OK: 3 audit records") {
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
	if code, _, errOut := run("frobnicate"); code != 2 || !strings.Contains(errOut, "Usage") {
		t.Fatalf("usage: %d %q", code, errOut)
	}
	if code, _, errOut := run("verify", "extra"); code != 2 || errOut == "" {
		t.Fatalf("extra arg: %d", code)
	}
}
