package llmproxy

import (
	"strings"
	"testing"
	"time"
)

func TestBoundText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in string
		max      int
		want     string
	}{
		{"short", "abc", 10, "abc"},
		{"exact", "abcde", 5, "abcde"},
		{"cut", "abcdefgh", 3, "abc…[truncated, 8 bytes]"},
		{"rune boundary", "aé", 2, "a…[truncated, 3 bytes]"},
		{"invalid utf-8", "a\xffb", 10, "a\uFFFDb"},
		{"nul", "a\x00b", 10, "a\uFFFDb"},
	} {
		if got := BoundText(tc.in, tc.max); got != tc.want {
			t.Errorf("%s: BoundText(%q, %d) = %q, want %q", tc.name, tc.in, tc.max, got, tc.want)
		}
	}
}

func TestEscapeControl(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"plain text, ünïcode 日本", "plain text, ünïcode 日本"},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"bell\x07 tab\t nl\n cr\r del\x7f", `bell\x07 tab\x09 nl\x0a cr\x0d del\x7f`},
		{"c1 \u0085 \u009b", `c1 \u0085 \u009b`},
		{"bidi \u202eevil\u202c \u2066x\u2069 \u200f", `bidi \u202eevil\u202c \u2066x\u2069 \u200f`},
		{"invalid \xff", `invalid \xff`},
		{`a forged \x1b`, `a forged \\x1b`},
	} {
		if got := EscapeControl(tc.in); got != tc.want {
			t.Errorf("EscapeControl(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestBoundedEvent(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("x", 900<<10)
	e := AuditEvent{ID: "id", Path: huge, UserAgent: huge, Reason: huge, TokenID: huge,
		Details: map[string]any{"name": huge, "nested": map[string]any{huge: []any{huge}}}}.Bounded()
	if len(e.Path) > MaxAuditPathBytes+64 || len(e.UserAgent) > MaxAuditUABytes+64 || len(e.Reason) > MaxAuditReasonBytes+64 || len(e.TokenID) > MaxAuditIDBytes+64 {
		t.Fatalf("fields not bounded: %d %d %d %d", len(e.Path), len(e.UserAgent), len(e.Reason), len(e.TokenID))
	}
	if s, _ := e.Details["name"].(string); !strings.HasSuffix(s, "…[truncated, 921600 bytes]") {
		t.Fatalf("details string not bounded: ...%q", s[max(0, len(s)-40):])
	}
	many := map[string]any{}
	for i := range 100 {
		many[strings.Repeat("k", i+1)] = strings.Repeat("v", 1000)
	}
	if d := (AuditEvent{Details: many}).Bounded().Details; len(d) != 1 || !strings.Contains(d["note"].(string), "details omitted") {
		t.Fatalf("oversized details kept: %d keys", len(d))
	}
}

// The keyed hash needs the key: another key, another key id, or the unkeyed
// hash never match it; Seal with a zero key gives the legacy hash.
func TestSeal(t *testing.T) {
	t.Parallel()
	e := AuditEvent{ID: "a", Seq: 2, Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC), Action: "x", Outcome: OutcomeSuccess}
	k := AuditKey{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")}
	sealed := e.Seal("prev", k)
	if sealed.KeyID != "k1" || sealed.PrevHash != "prev" || sealed.Hash != sealed.ComputeMAC("prev", k.Secret) {
		t.Fatalf("sealed %+v", sealed)
	}
	other := sealed
	other.KeyID = "k2"
	for name, h := range map[string]string{
		"other secret": sealed.ComputeMAC("prev", []byte("another secret of thirty-two b!!")),
		"other key id": other.ComputeMAC("prev", k.Secret),
		"other prev":   sealed.ComputeMAC("prev2", k.Secret),
		"unkeyed hash": sealed.ComputeHash("prev"),
	} {
		if h == sealed.Hash {
			t.Errorf("%s gives the same hash", name)
		}
	}
	if legacy := e.Seal("prev", AuditKey{}); legacy.KeyID != "" || legacy.Hash != e.ComputeHash("prev") {
		t.Fatalf("legacy seal %+v", legacy)
	}
}
