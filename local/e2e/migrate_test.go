package e2e

import (
	"context"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/llm-proxy/llm-proxy/internal/mockopenai"
)

// TestMigrateAndKeyRotation drives the operator's commands on a real
// database: migrate status/version/down/up, keygen, and an ENCRYPTION_KEY
// rotation — the upstream key stored under the old key still works after
// `migrate rotate-keys` with only the new key configured, and tokens issued
// before the rotation keep working while the old key is listed as previous.
func TestMigrateAndKeyRotation(t *testing.T) {
	dir := t.TempDir()
	dbEnv := map[string]string{"DATA_DIR": dir, "DATABASE_PATH": filepath.Join(dir, "llm-proxy.db")}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range dbEnv {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	run := func(env map[string]string, args ...string) string {
		t.Helper()
		out, stderr, code := cli(t, env, args...)
		if code != 0 {
			t.Fatalf("llm-proxy %v: exit %d\n%s%s", args, code, out, stderr)
		}
		return out
	}
	oldKey := strings.TrimSpace(run(nil, "keygen"))
	newKey := strings.TrimSpace(run(nil, "keygen"))
	if oldKey == newKey || len(oldKey) != 44 {
		t.Fatalf("keygen: %q %q", oldKey, newKey)
	}

	if out := run(dbEnv, "migrate", "up"); !strings.Contains(out, "up to date") {
		t.Fatalf("migrate up: %s", out)
	}
	latest := strings.TrimSpace(run(dbEnv, "migrate", "version"))
	if _, _, code := cli(t, dbEnv, "migrate", "down"); code != 2 {
		t.Fatalf("migrate down without --yes must refuse (exit 2), got %d", code)
	}
	run(dbEnv, "migrate", "down", "--yes")
	if v := strings.TrimSpace(run(dbEnv, "migrate", "version")); v != "0" {
		t.Fatalf("version after down = %s", v)
	}
	run(dbEnv, "migrate", "up")
	if v := strings.TrimSpace(run(dbEnv, "migrate", "version")); v != latest {
		t.Fatalf("version after up = %s, want %s", v, latest)
	}

	up := mockopenai.Start(mockopenai.Options{APIKey: upstreamKey})
	t.Cleanup(up.Close)
	const mgmt = "rotation-management-token-0123456789"
	serveEnv := func(keys map[string]string) map[string]string {
		m := with(keys)
		m["MANAGEMENT_TOKEN"], m["OPENAI_API_URL"] = mgmt, up.URL
		return m
	}
	chat := func(url, token string) error {
		c := openai.NewClient(option.WithBaseURL(url+"/v1/"), option.WithAPIKey(token), option.WithMaxRetries(0))
		_, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
		return err
	}

	s := startServeEnv(t, serveEnv(map[string]string{"ENCRYPTION_KEY": oldKey}))
	var project struct {
		ID string `json:"id"`
	}
	api(t, "POST", s.URL+"/manage/projects", mgmt, map[string]any{"name": "rotate", "api_key": upstreamKey}, &project)
	var tok struct {
		Token string `json:"token"`
	}
	api(t, "POST", s.URL+"/manage/tokens", mgmt, map[string]any{"project_id": project.ID, "duration": "1h"}, &tok)
	if err := chat(s.URL, tok.Token); err != nil {
		t.Fatalf("before rotation: %v", err)
	}
	s.Signal(syscall.SIGTERM)
	s.Wait(30 * time.Second)

	out := run(with(map[string]string{"ENCRYPTION_KEY": newKey, "ENCRYPTION_KEY_PREVIOUS": oldKey}), "migrate", "rotate-keys")
	if !strings.Contains(out, "re-encrypted 1 upstream key") {
		t.Fatalf("rotate-keys: %s", out)
	}

	// Only the new key: the re-encrypted upstream key decrypts; the old
	// token's hash was keyed by the old key, so it is unknown now.
	s = startServeEnv(t, serveEnv(map[string]string{"ENCRYPTION_KEY": newKey}))
	var fresh struct {
		Token string `json:"token"`
	}
	api(t, "POST", s.URL+"/manage/tokens", mgmt, map[string]any{"project_id": project.ID, "duration": "1h"}, &fresh)
	if err := chat(s.URL, fresh.Token); err != nil {
		t.Fatalf("after rotation, a new token with only the new key: %v", err)
	}
	var apiErr *openai.Error
	if err := chat(s.URL, tok.Token); !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("old token without the previous key: %v, want 401", err)
	}
	s.Signal(syscall.SIGTERM)
	s.Wait(30 * time.Second)

	// With the old key listed as previous, tokens issued before still work.
	s = startServeEnv(t, serveEnv(map[string]string{"ENCRYPTION_KEY": newKey, "ENCRYPTION_KEY_PREVIOUS": oldKey}))
	if err := chat(s.URL, tok.Token); err != nil {
		t.Fatalf("old token with the previous key listed: %v", err)
	}
}
