package deptest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadmeLayout: the README's layout table has a row for every
// top-level folder and every shared/ package, and no row for a path that
// is gone.
func TestReadmeLayout(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := layoutRows(string(readme))
	if len(rows) == 0 {
		t.Fatal("README.md has no layout table between <!-- layout:begin and <!-- layout:end -->")
	}
	var want []string
	top, _ := os.ReadDir(root)
	for _, e := range top {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && e.Name() != "bin" && e.Name() != "data" && e.Name() != "node_modules" {
			want = append(want, e.Name()+"/")
		}
	}
	shared, _ := os.ReadDir(filepath.Join(root, "shared"))
	for _, e := range shared {
		if e.IsDir() {
			want = append(want, "shared/"+e.Name())
		}
	}
	for _, p := range want {
		if !rows[p] {
			t.Errorf("README.md's layout table has no row for `%s`", p)
		}
	}
	for p := range rows {
		if _, err := os.Stat(filepath.Join(root, strings.TrimSuffix(p, "/"))); err != nil {
			t.Errorf("README.md's layout table lists `%s`, which does not exist", p)
		}
	}
}

// layoutRows returns the paths of the first column of the layout table.
func layoutRows(readme string) map[string]bool {
	_, rest, ok := strings.Cut(readme, "<!-- layout:begin")
	if !ok {
		return nil
	}
	table, _, _ := strings.Cut(rest, "<!-- layout:end -->")
	rows := map[string]bool{}
	for _, line := range strings.Split(table, "\n") {
		if cell, ok := strings.CutPrefix(line, "| `"); ok {
			if p, _, ok := strings.Cut(cell, "`"); ok {
				rows[p] = true
			}
		}
	}
	return rows
}
