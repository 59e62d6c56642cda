package adminui_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/functions/admin-ui/uitest"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/store"
)

// TestDashboardShowsLastDayUsage: the dashboard lists each project's
// requests, cache hits and model tokens of the last 24 hours, from the
// hourly usage the proxies write; older usage is left out.
func TestDashboardShowsLastDayUsage(t *testing.T) {
	t.Parallel()
	srv := uitest.StartServer(t, uitest.Options{Base: "/admin"})
	ctx := context.Background()
	a := management.Actor{Name: "test"}
	p, err := srv.Service.CreateProject(ctx, a, management.CreateProjectInput{Name: "busy-project", APIKey: "sk-dashboard-test-0123456789"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := srv.Service.CreateToken(ctx, a, management.CreateTokenInput{ProjectID: p.ID, Duration: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	if err := srv.Store.AddUsage(ctx, []store.UsageDelta{
		{TokenID: tok.ID, ProjectID: p.ID, Requests: 7, CacheHits: 2, PromptTokens: 1234, CompletionTokens: 567, LastUsedAt: now},
		{TokenID: tok.ID, ProjectID: p.ID, Requests: 1000, PromptTokens: 99999, LastUsedAt: now.Add(-48 * time.Hour)},
	}); err != nil {
		t.Fatal(err)
	}
	page := signIn(t, srv).get("/dashboard").body
	i := strings.Index(page, "Last 24 Hours per Project")
	if i < 0 {
		t.Fatal("dashboard has no last-day usage section")
	}
	section := page[i:]
	section = section[:strings.Index(section, "</table>")]
	for _, want := range []string{"busy-project", ">7<", ">2<", ">1234<", ">567<"} {
		if !strings.Contains(section, want) {
			t.Errorf("last-day usage lacks %q:\n%s", want, section)
		}
	}
	if strings.Contains(section, "99999") || strings.Contains(section, "1007") {
		t.Error("usage older than a day is counted")
	}
}
