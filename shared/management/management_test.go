package management_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/management/managementtest"
	"github.com/llm-proxy/llm-proxy/shared/store"
)

func TestParseLifetime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"90m", 90 * time.Minute, true}, {"24h", 24 * time.Hour, true}, {"1h30m", 90 * time.Minute, true},
		{"30d", 30 * 24 * time.Hour, true}, {"2w", 14 * 24 * time.Hour, true},
		{"", 0, false}, {"d", 0, false}, {"-1d", 0, false}, {"1.5d", 0, false}, {"soon", 0, false}, {"99999d", 0, false},
	} {
		got, err := management.ParseLifetime(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseLifetime(%q) = %v, %v", tc.in, got, err)
		}
	}
}

func TestParsePage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		query      string
		page, size int
		ok         bool
	}{
		{"", 1, 20, true}, {"page=3&page_size=7", 3, 7, true}, {"page_size=500", 1, 100, true}, {"pageSize=5", 1, 5, true},
		{"page_size=0", 0, 0, false}, {"page_size=-1", 0, 0, false}, {"page_size=x", 0, 0, false},
		{"page=0", 0, 0, false}, {"page=-2", 0, 0, false}, {"page=1e3", 0, 0, false}, {"page=99999999999", 0, 0, false},
	} {
		q, _ := url.ParseQuery(tc.query)
		page, size, err := management.ParsePage(q)
		if (err == nil) != tc.ok || page != tc.page || size != tc.size {
			t.Errorf("ParsePage(%q) = %d, %d, %v", tc.query, page, size, err)
		}
		if err != nil && llmproxy.ErrorCode(err) != llmproxy.CodeInvalidRequest {
			t.Errorf("ParsePage(%q): code %s", tc.query, llmproxy.ErrorCode(err))
		}
	}
}

// With AUDIT_STORE_IN_DB=false, records go only to the file, and mutations
// still work.
func TestFileOnlyAudit(t *testing.T) {
	t.Parallel()
	env := managementtest.New(t, "sqlite", managementtest.Options{})
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	rec, err := audit.NewRecorder(audit.Options{Store: env.Store, StoreInDB: false, File: file})
	if err != nil {
		t.Fatal(err)
	}
	svc := management.New(management.Deps{Store: env.Store, Keyring: env.Keyring, Audit: rec, Invalidator: env.Invalidations})
	ctx := context.Background()
	a := managementtest.Actor()
	p, err := svc.CreateProject(ctx, a, management.CreateProjectInput{Name: "p", APIKey: "sk-test-0123456789abcdefghij"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := svc.CreateToken(ctx, a, management.CreateTokenInput{ProjectID: p.ID, Duration: "1h"})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.RevokeToken(ctx, a, tok.ID); err != nil {
		t.Fatal(err)
	}
	if !env.Invalidations.Has("token", tok.ID) {
		t.Fatal("revocation not sent to the invalidator")
	}
	if _, err := svc.GetProject(ctx, a, "00000000-0000-4000-8000-000000000000"); llmproxy.ErrorCode(err) != llmproxy.CodeNotFound {
		t.Fatalf("get unknown: %v", err)
	}
	_ = rec.Close()
	if _, n, err := env.Store.ListAudit(ctx, store.AuditFilter{}); err != nil || n != 0 {
		t.Fatalf("database records: %d %v", n, err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	want := []string{"project.create", "token.create", "token.revoke", "project.read"}
	if len(lines) != len(want) {
		t.Fatalf("file lines %d: %s", len(lines), b)
	}
	for i, action := range want {
		if !strings.Contains(lines[i], `"action":"`+action+`"`) {
			t.Errorf("line %d: %s, want %s", i, lines[i], action)
		}
	}
	if strings.Contains(string(b), tok.Token) {
		t.Fatal("plaintext token in audit file")
	}
}
