package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/store"
)

func testAdminSessions(t *testing.T, s store.Store) {
	c := ctx(t)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)
	mk := func(id, fp string, created time.Time) store.AdminSession {
		return store.AdminSession{IDHash: id, CSRF: "csrf-" + id, TokenFingerprint: fp, CreatedAt: created, LastSeenAt: created}
	}
	for _, a := range []store.AdminSession{mk("a", "fp1", t0), mk("b", "fp1", t0.Add(time.Hour)), mk("c", "fp2", t0.Add(2*time.Hour))} {
		if err := s.CreateAdminSession(c, a); err != nil {
			t.Fatalf("create %s: %v", a.IDHash, err)
		}
	}
	if err := s.CreateAdminSession(c, mk("a", "fp1", t0)); !errors.Is(err, llmproxy.ErrConflict) {
		t.Fatalf("duplicate: %v, want ErrConflict", err)
	}
	got, err := s.GetAdminSession(c, "a")
	if err != nil || got != mk("a", "fp1", t0) {
		t.Fatalf("get: %+v %v", got, err)
	}
	checkUTC(t, "admin session", &got.CreatedAt, &got.LastSeenAt)
	if _, err := s.GetAdminSession(c, "nope"); !errors.Is(err, llmproxy.ErrNotFound) {
		t.Fatalf("unknown: %v", err)
	}
	// Touch moves last_seen_at forward only.
	if err := s.TouchAdminSession(c, "a", t0.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.TouchAdminSession(c, "a", t0.Add(5*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetAdminSession(c, "a"); !got.LastSeenAt.Equal(t0.Add(10 * time.Minute)) {
		t.Fatalf("last seen %v", got.LastSeenAt)
	}
	if err := s.TouchAdminSession(c, "nope", t0); !errors.Is(err, llmproxy.ErrNotFound) {
		t.Fatalf("touch unknown: %v", err)
	}
	// Purges.
	if n, err := s.DeleteAdminSessions(c, store.AdminSessionPurge{}); err != nil || n != 0 {
		t.Fatalf("empty purge deleted %d (%v)", n, err)
	}
	if n, err := s.DeleteAdminSessions(c, store.AdminSessionPurge{KeepFingerprint: "fp1"}); err != nil || n != 1 {
		t.Fatalf("other token: %d %v", n, err)
	}
	if n, err := s.DeleteAdminSessions(c, store.AdminSessionPurge{SeenBefore: t0.Add(5 * time.Minute)}); err != nil || n != 0 {
		t.Fatalf("idle (none): %d %v", n, err)
	}
	if n, err := s.DeleteAdminSessions(c, store.AdminSessionPurge{CreatedBefore: t0.Add(30 * time.Minute)}); err != nil || n != 1 {
		t.Fatalf("absolute: %d %v", n, err)
	}
	if _, err := s.GetAdminSession(c, "a"); !errors.Is(err, llmproxy.ErrNotFound) {
		t.Fatalf("a after its purge: %v", err)
	}
	if err := s.DeleteAdminSession(c, "b"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAdminSession(c, "b"); err != nil {
		t.Fatalf("ending an ended session: %v", err)
	}
	if _, err := s.GetAdminSession(c, "b"); !errors.Is(err, llmproxy.ErrNotFound) {
		t.Fatalf("b after sign-out: %v", err)
	}
	for _, id := range []string{"x", "y"} {
		if err := s.CreateAdminSession(c, mk(id, "fp1", t0)); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.DeleteAdminSessions(c, store.AdminSessionPurge{All: true}); err != nil || n != 2 {
		t.Fatalf("everywhere: %d %v", n, err)
	}
}
