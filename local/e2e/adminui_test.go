package e2e

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/llm-proxy/llm-proxy/functions/admin-ui/uitest"
	"github.com/llm-proxy/llm-proxy/internal/mockopenai"
)

// TestAdminUIWithProxy drives the admin UI of a real `llm-proxy serve` in
// headless Chromium and uses what it creates through the proxy: a token
// generated in the UI works with the OpenAI SDK; revoked in the UI, the
// proxy refuses it; the project deactivated in the UI is refused too; every
// step is in the audit trail.
func TestAdminUIWithProxy(t *testing.T) {
	up := mockopenai.Start(mockopenai.Options{APIKey: upstreamKey})
	t.Cleanup(up.Close)
	const mgmt = "e2e-admin-management-token-0123456789"
	s := startServe(t, t.TempDir(), map[string]string{"MANAGEMENT_TOKEN": mgmt, "OPENAI_API_URL": up.URL})
	admin := s.URL + "/admin"
	b := uitest.NewBrowser(t)
	shots := uitest.ScreenshotDir(t.TempDir())

	b.SignIn(admin, mgmt)
	projectID := b.CreateProject(admin, "ui-e2e", upstreamKey)
	tokenID, token := b.GenerateToken(admin, projectID, "60")
	b.Screenshot(shots, "e2e-token-generated")

	client := openai.NewClient(option.WithBaseURL(s.URL+"/v1/"), option.WithAPIKey(token), option.WithMaxRetries(0))
	params := openai.ChatCompletionNewParams{Model: "gpt-4o-mini", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}
	if _, err := client.Chat.Completions.New(context.Background(), params); err != nil {
		t.Fatalf("the token generated in the UI does not work through the proxy: %v", err)
	}

	b.RevokeToken(admin, tokenID)
	_, err := client.Chat.Completions.New(context.Background(), params)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized {
		t.Fatalf("token revoked in the UI still accepted: %v", err)
	}

	// A second token, then the project deactivated in the UI: 403.
	_, second := b.GenerateToken(admin, projectID, "60")
	b.DeactivateProject(admin, projectID)
	client2 := openai.NewClient(option.WithBaseURL(s.URL+"/v1/"), option.WithAPIKey(second), option.WithMaxRetries(0))
	_, err = client2.Chat.Completions.New(context.Background(), params)
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusForbidden || apiErr.Code != "project_inactive" {
		t.Fatalf("token of a project deactivated in the UI: %v", err)
	}

	b.Open(admin + "/audit?search=" + projectID)
	b.WaitH1("Audit Events")
	text := b.Text()
	for _, action := range []string{"project.create", "token.create", "token.revoke", "project.update"} {
		if !strings.Contains(text, action) {
			t.Errorf("audit list lacks %s", action)
		}
	}
	b.Screenshot(shots, "e2e-audit")
	b.SignOut()
}
