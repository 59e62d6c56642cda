package sqlite_test

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/store/migrate"
	"github.com/llm-proxy/llm-proxy/shared/store/sqlite"
)

// The database (upstream keys, token hashes, the audit trail) and its WAL
// files are readable by their owner only, in a directory only the owner can
// enter, whether the migration runner or the store creates them.
func TestFilesAreOwnerOnly(t *testing.T) {
	t.Parallel()
	for name, create := range map[string]func(path string) error{
		"migrate up": func(path string) error { return migrate.Up(context.Background(), "sqlite", path) },
		"open": func(path string) error {
			s, err := sqlite.Open(context.Background(), config.Database{Driver: "sqlite", Path: path, PoolSize: 2})
			if err != nil {
				return err
			}
			defer s.Close()
			_, err = s.AppendAudit(context.Background(), llmproxy.AuditEvent{Action: "test", Actor: "test", Outcome: "success"})
			_ = err // the schema may be missing: the files exist either way
			return nil
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			dir := filepath.Join(t.TempDir(), "data", "db")
			path := filepath.Join(dir, "llm-proxy.db")
			testenv.Must(t, create(path))
			for _, d := range []string{dir, filepath.Dir(dir)} {
				if m := mode(t, d); m != 0o700 {
					t.Errorf("%s: mode %o, want 700", d, m)
				}
			}
			entries, err := os.ReadDir(dir)
			testenv.Must(t, err)
			if len(entries) == 0 {
				t.Fatal("no database file")
			}
			for _, e := range entries {
				if m := mode(t, filepath.Join(dir, e.Name())); m != 0o600 {
					t.Errorf("%s: mode %o, want 600", e.Name(), m)
				}
			}
		})
	}
}

func mode(t *testing.T, path string) fs.FileMode {
	t.Helper()
	st, err := os.Stat(path)
	testenv.Must(t, err)
	return st.Mode().Perm()
}
