package adminui_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/llm-proxy/llm-proxy/functions/admin-ui/uitest"
	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
)

// A record with terminal escapes and bidirectional overrides (an attacker's
// user agent, path and submitted name) shows them escaped on the audit list,
// the record's page and the dashboard, never as raw characters.
func TestAuditPagesEscapeControlCharacters(t *testing.T) {
	t.Parallel()
	srv := uitest.StartServer(t, uitest.Options{Base: "/admin"})
	c := signIn(t, srv)
	const evil = "\x1b]0;pwned\x07\x1b[2J\u202eevil"
	rec := srv.Service.Recorder()
	e := rec.Event(audit.Actor{Name: "x\x1b[31m", ClientIP: "192.0.2.1", Method: "GET", Path: "/manage/" + evil, UserAgent: evil},
		"management.auth", llmproxy.OutcomeDenied, map[string]any{"name": evil})
	e.Reason = evil
	if err := rec.Record(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/audit", "/audit/" + e.ID, "/dashboard"} {
		r := c.get(path)
		if r.status != http.StatusOK {
			t.Fatalf("GET %s: %d", path, r.status)
		}
		if strings.ContainsAny(r.body, "\x1b\x07\u202e") {
			t.Fatalf("GET %s: raw control characters in the HTML", path)
		}
		if !strings.Contains(r.body, `x\x1b[31m`) {
			t.Fatalf("GET %s: the actor's escape is not shown escaped", path)
		}
	}
	if r := c.get("/audit/" + e.ID); !strings.Contains(r.body, `\x1b]0;pwned\x07\x1b[2J\u202eevil`) {
		t.Fatalf("record page does not show the escaped user agent")
	}
}
