package migrations_test

import (
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/llm-proxy/llm-proxy/migrations"
)

// Both engines must have the same migrations, each with an up and a down file.
func TestEnginesHaveTheSameMigrations(t *testing.T) {
	t.Parallel()
	names := func(dir string) []string {
		t.Helper()
		entries, err := fs.ReadDir(migrations.FS, dir)
		if err != nil {
			t.Fatalf("read %s: %v", dir, err)
		}
		var out []string
		for _, e := range entries {
			out = append(out, e.Name())
		}
		return out
	}
	pg, lite := names(migrations.Postgres), names(migrations.SQLite)
	if len(pg) == 0 {
		t.Fatal("no postgres migrations embedded")
	}
	if !slices.Equal(pg, lite) {
		t.Fatalf("postgres migrations %v differ from sqlite migrations %v", pg, lite)
	}
	for _, n := range pg {
		if strings.HasSuffix(n, ".up.sql") && !slices.Contains(pg, strings.TrimSuffix(n, ".up.sql")+".down.sql") {
			t.Errorf("%s has no down migration", n)
		}
	}
}
