package sqlite

import "testing"

func TestConstraintName(t *testing.T) {
	t.Parallel()
	for msg, want := range map[string]string{
		"constraint failed: UNIQUE constraint failed: projects.name (2067)":     "projects_name_key",
		"constraint failed: UNIQUE constraint failed: projects.id (1555)":       "projects_pkey",
		"constraint failed: UNIQUE constraint failed: tokens.token_hash (2067)": "tokens_token_hash_key",
		"constraint failed: UNIQUE constraint failed: audit_events.id (1555)":   "audit_events_pkey",
		"something else": "",
	} {
		if got := constraintName(msg); got != want {
			t.Errorf("constraintName(%q) = %q, want %q", msg, got, want)
		}
	}
}
