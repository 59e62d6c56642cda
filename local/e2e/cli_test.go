package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestCLIAgainstServe runs every `llm-proxy manage` subcommand and `audit
// verify` as a user would: the real binary against a running serve, tables
// and --json.
func TestCLIAgainstServe(t *testing.T) {
	dir := t.TempDir()
	const mgmt = "cli-test-management-token-0123456789"
	s := startServe(t, dir, map[string]string{"MANAGEMENT_TOKEN": mgmt})
	env := map[string]string{"MANAGEMENT_TOKEN": mgmt, "MANAGEMENT_API_BASE_URL": s.URL}
	run := func(wantCode int, args ...string) string {
		t.Helper()
		out, stderr, code := cli(t, env, append([]string{"manage"}, args...)...)
		if code != wantCode {
			t.Fatalf("manage %v: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, wantCode, out, stderr)
		}
		return out + stderr
	}
	runJSON := func(v any, args ...string) {
		t.Helper()
		out := run(0, append(args, "--json")...)
		if err := json.Unmarshal([]byte(out), v); err != nil {
			t.Fatalf("manage %v --json: %v\n%s", args, err, out)
		}
	}

	var project struct {
		ID       string `json:"id"`
		Name     string `json:"name"`
		APIKey   string `json:"api_key"`
		IsActive bool   `json:"is_active"`
	}
	runJSON(&project, "project", "create", "--name", "cli-project", "--api-key", "sk-cli-upstream-key-0123456789")
	if project.ID == "" || strings.Contains(project.APIKey, "0123456789") {
		t.Fatalf("create: %+v (the key must come back masked)", project)
	}
	var projects []map[string]any
	runJSON(&projects, "project", "list")
	if len(projects) != 1 {
		t.Fatalf("list: %v", projects)
	}
	if out := run(0, "project", "list"); !strings.Contains(out, "cli-project") || !strings.Contains(out, "NAME") {
		t.Fatalf("table list: %s", out)
	}
	if out := run(0, "project", "get", project.ID); !strings.Contains(out, "cli-project") {
		t.Fatalf("get: %s", out)
	}
	runJSON(&project, "project", "update", project.ID, "--name", "cli-renamed")
	if project.Name != "cli-renamed" {
		t.Fatalf("update: %+v", project)
	}

	var created struct{ ID, Token string }
	runJSON(&created, "token", "generate", "--project-id", project.ID, "--duration", "24h", "--max-requests", "5")
	if !strings.HasPrefix(created.Token, "llmp_") {
		t.Fatalf("generate: %+v", created)
	}
	var tokens []struct {
		ID          string `json:"id"`
		Token       string `json:"token"`
		MaxRequests *int64 `json:"max_requests"`
	}
	runJSON(&tokens, "token", "list", "--project-id", project.ID)
	if len(tokens) != 1 || tokens[0].Token == created.Token || tokens[0].MaxRequests == nil || *tokens[0].MaxRequests != 5 {
		t.Fatalf("list: %+v (the plaintext must never be listed)", tokens)
	}
	if out := run(0, "token", "get", created.ID); strings.Contains(out, created.Token) {
		t.Fatalf("get shows the plaintext token: %s", out)
	}
	run(0, "token", "update", created.ID, "--max-requests", "10")
	run(0, "token", "revoke", created.ID)
	var tok struct {
		IsActive bool `json:"is_active"`
	}
	runJSON(&tok, "token", "get", created.ID)
	if tok.IsActive {
		t.Fatal("revoked token still active")
	}

	runJSON(&created, "token", "generate", "--project-id", project.ID, "--duration", "60")
	var revoked struct {
		Revoked int `json:"revoked_count"`
	}
	runJSON(&revoked, "project", "revoke-tokens", project.ID)
	if revoked.Revoked != 1 {
		t.Fatalf("revoke-tokens: %+v", revoked)
	}
	run(0, "project", "deactivate", project.ID)
	if out := run(1, "token", "generate", "--project-id", project.ID, "--duration", "60"); !strings.Contains(out, "inactive") {
		t.Fatalf("generate on an inactive project: %s", out)
	}
	run(0, "project", "activate", project.ID)
	run(1, "project", "delete", project.ID)
	run(0, "cache", "purge", "--all")

	var events struct {
		Events []struct{ ID, Action string } `json:"events"`
	}
	runJSON(&events, "audit", "list", "--action", "token.revoke")
	if len(events.Events) != 1 {
		t.Fatalf("audit list --action token.revoke: %+v", events)
	}
	if out := run(0, "audit", "get", events.Events[0].ID); !strings.Contains(out, "token.revoke") {
		t.Fatalf("audit get: %s", out)
	}
	if out := run(0, "audit", "list"); !strings.Contains(out, "project.create") {
		t.Fatalf("audit table: %s", out)
	}

	// Errors: wrong token and bad usage give non-zero exits with clear messages.
	if out, stderr, code := cli(t, map[string]string{"MANAGEMENT_TOKEN": "wrong", "MANAGEMENT_API_BASE_URL": s.URL}, "manage", "project", "list"); code != 1 || !strings.Contains(out+stderr, "invalid") {
		t.Fatalf("wrong token: exit %d %s %s", code, out, stderr)
	}
	run(2, "project", "frobnicate")

	// The audit chain the CLI produced verifies.
	out, stderr, code := cli(t, map[string]string{"DATA_DIR": dir, "DATABASE_PATH": dir + "/llm-proxy.db"}, "audit", "verify")
	if code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("audit verify: exit %d %s %s", code, out, stderr)
	}
}
