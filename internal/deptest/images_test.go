package deptest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Packages an image must not link, by what they are.
var (
	sqlite     = []string{"modernc.org/sqlite", module + "shared/store/sqlite", module + "shared/store/dbopen"}
	migrations = []string{"github.com/golang-migrate/migrate/v4", module + "shared/store/migrate", module + "migrations"}
	templ      = []string{"github.com/a-h/templ", module + "templates"}
	managing   = []string{module + "shared/management", module + "shared/mgmtauth", module + "shared/audit", module + "functions/admin-ui", module + "functions/manage-projects", module + "functions/manage-tokens"}
	tokenizer  = []string{module + "shared/tokenizer", "github.com/pkoukk/tiktoken-go-loader/assets"}
	postgres   = []string{"github.com/jackc/pgx/v5", module + "shared/store/postgres"}
	serveOnly  = []string{module + "local/app", module + "local/cli"}
)

// imageRules: what each deployable function's image links none of.
var imageRules = map[string][][]string{
	"proxy":           {sqlite, migrations, templ, managing, serveOnly},
	"manage-projects": {sqlite, migrations, templ, tokenizer, serveOnly},
	"manage-tokens":   {sqlite, migrations, templ, tokenizer, serveOnly},
	"admin-ui":        {sqlite, migrations, tokenizer, serveOnly},
	"dispatcher":      {sqlite, migrations, templ, managing, tokenizer, postgres, serveOnly},
}

// forbiddenIn returns the packages of deps that rules forbid.
func forbiddenIn(deps []string, rules [][]string) []string {
	var bad []string
	for _, d := range deps {
		for _, rule := range rules {
			for _, f := range rule {
				if d == f || strings.HasPrefix(d, f+"/") {
					bad = append(bad, d)
				}
			}
		}
	}
	return bad
}

// TestImages: each function's image (go list -deps of functions/<fn>/cmd)
// links only what it uses.
func TestImages(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	for fn, rules := range imageRules {
		t.Run(fn, func(t *testing.T) {
			t.Parallel()
			cmd := exec.Command("go", "list", "-deps", "./functions/"+fn+"/cmd")
			cmd.Dir = root
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("go list -deps ./functions/%s/cmd: %v", fn, err)
			}
			deps := strings.Fields(string(out))
			if len(deps) < 50 {
				t.Fatalf("go list gave %d packages: %q", len(deps), out)
			}
			for _, bad := range forbiddenIn(deps, rules) {
				t.Errorf("the %s image links %s", fn, bad)
			}
		})
	}
}

// TestImageRulesCatchViolations proves the image rules are not vacuous.
func TestImageRulesCatchViolations(t *testing.T) {
	deps := []string{"fmt", "modernc.org/sqlite/lib", module + "shared/management", module + "shared/managementx", "github.com/a-h/templ"}
	got := forbiddenIn(deps, imageRules["proxy"])
	want := []string{"modernc.org/sqlite/lib", module + "shared/management", "github.com/a-h/templ"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("forbiddenIn = %q, want %q", got, want)
	}
}

// TestFunctionsTakeTheirOwnConfig: a function package never reads the
// whole configuration (config.Config, config.Load): its main hands it its
// own section.
func TestFunctionsTakeTheirOwnConfig(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(root, "functions", "*", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		if uses := globalConfigUses(t, path); len(uses) > 0 {
			rel, _ := filepath.Rel(root, path)
			t.Errorf("%s uses %s: a function takes its own Config section, never the whole configuration", rel, strings.Join(uses, ", "))
		}
	}
	if uses := globalConfigUses(t, "testdata/globalconfig.go.txt"); len(uses) != 2 {
		t.Errorf("the check found %q in its own bad example, want config.Config and config.Load", uses)
	}
}

// globalConfigUses lists the references to config.Config and config.Load
// in the Go file at path.
func globalConfigUses(t *testing.T, path string) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var uses []string
	ast.Inspect(f, func(n ast.Node) bool {
		sel, ok := n.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if x, ok := sel.X.(*ast.Ident); ok && x.Name == "config" && (sel.Sel.Name == "Config" || sel.Sel.Name == "Load") {
			uses = append(uses, "config."+sel.Sel.Name)
		}
		return true
	})
	return uses
}
