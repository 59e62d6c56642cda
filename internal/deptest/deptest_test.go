// Package deptest enforces the import rules of docs/architecture.md: local
// and the function mains wire; functions use shared and events; no function
// imports another, the process runtime or the global configuration; nothing
// under shared/ imports events or a function; events (the CloudEvents
// contract) imports no configuration; store adapters never import the
// migration runner; shared/llmproxy imports nothing of ours. A second test
// checks what each deployable image links (go list -deps).
package deptest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/llm-proxy/llm-proxy/"

// pkgImports maps a package dir to the module-relative paths it imports;
// the imports of its test files are under dir+testSuffix.
type pkgImports map[string]map[string]bool

const testSuffix = " (tests)"

func scan(t *testing.T, root string) pkgImports {
	t.Helper()
	out := pkgImports{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			name := d.Name()
			if path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules" || name == "knative") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		if strings.HasSuffix(path, "_test.go") {
			rel += testSuffix
		}
		if out[rel] == nil {
			out[rel] = map[string]bool{}
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.HasPrefix(p, module) {
				out[rel][strings.TrimPrefix(p, module)] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// function returns the function name of a package dir under functions/, and
// whether the dir is composition: a deployable main (functions/<fn>/cmd...)
// or what the mains share (functions/internal/...), which Go's internal
// rule keeps out of local/ and which no function package may import.
func function(dir string) (name string, isMain bool, ok bool) {
	rest, ok := strings.CutPrefix(dir, "functions/")
	if !ok {
		return "", false, false
	}
	name, sub, _ := strings.Cut(rest, "/")
	return name, name == "internal" || sub == "cmd" || strings.HasPrefix(sub, "cmd/"), true
}

// violation returns why pkg must not import imp, or "".
func violation(pkg, imp string) string {
	fn, isMain, isFunction := function(strings.TrimSuffix(pkg, testSuffix))
	switch {
	case pkg == "shared/llmproxy":
		return "shared/llmproxy imports only the standard library"
	case strings.HasPrefix(imp, "local/") && !strings.HasPrefix(pkg, "local/") && pkg != "local":
		return "only local/ may import local/"
	case strings.HasPrefix(pkg, "shared/") && (imp == "events" || strings.HasPrefix(imp, "events/")):
		return "shared/ must not import events (announce domain changes through an interface)"
	case (strings.HasPrefix(pkg, "shared/") || pkg == "events" || strings.HasPrefix(pkg, "events/")) && strings.HasPrefix(imp, "functions/"):
		return "shared/ and events/ must not import functions"
	case pkg == "events" && imp == "shared/config": // its tests may load a configuration
		return "events is the CloudEvents contract: it takes options, not the configuration (events/eventsconfig maps it)"
	case strings.HasPrefix(pkg, "shared/store/") && !strings.HasSuffix(pkg, testSuffix) && pkg != "shared/store/migrate" && imp == "shared/store/migrate":
		return "store adapters never import the migration runner"
	case pkg == "shared/management" && imp == "shared/httpcache":
		return "management purges through its CachePurger interface (llmproxy.CachePurge), not the cache package"
	case (pkg == "templates" || pkg == "templates"+testSuffix) && imp == "shared/management":
		return "templates render the API's wire types (shared/mgmtapi), not the management service"
	case pkg == "shared/mgmtapi" && imp != "shared/llmproxy":
		return "shared/mgmtapi (the management API's wire types) imports only shared/llmproxy"
	case isFunction && !isMain && imp == "shared/process":
		return "a function is a handler; only its main (and local/) may use the process runtime"
	}
	if isFunction {
		if impFn, _, impIsFn := function(imp); impIsFn && impFn != fn && !isMain {
			return "a function must not import another function"
		}
	}
	return ""
}

func TestImportDirections(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("module root not found at %s", root)
	}
	for pkg, imps := range scan(t, root) {
		for imp := range imps {
			if why := violation(pkg, imp); why != "" {
				t.Errorf("%s imports %s: %s", pkg, imp, why)
			}
		}
	}
}

// TestRulesCatchViolations proves the rules are not vacuous.
func TestRulesCatchViolations(t *testing.T) {
	tests := []struct {
		pkg, imp string
		bad      bool
	}{
		{"shared/llmproxy", "shared/store", true},
		{"functions/proxy", "functions/dispatcher", true},
		{"functions/proxy/internal/x", "functions/manage-tokens", true},
		{"functions/proxy", "shared/tokens", false},
		{"functions/proxy/cmd", "functions/proxy", false},
		{"shared/store", "functions/proxy", true},
		{"events", "functions/dispatcher", true},
		{"functions/proxy", "local/app", true},
		{"local/app", "functions/proxy", false},
		{"shared/management", "events", true},
		{"shared/bootstrap", "events/eventsconfig", true},
		{"events", "shared/config", true},
		{"events/eventsconfig", "shared/config", false},
		{"events", "shared/llmproxy", false},
		{"shared/store/postgres", "shared/store/migrate", true},
		{"shared/store/migrate", "shared/store/postgres", false},
		{"shared/store/postgres" + testSuffix, "shared/store/migrate", false}, // tests migrate their schema
		{"functions/proxy", "shared/process", true},
		{"shared/management", "shared/httpcache", true},
		{"templates", "shared/management", true},
		{"templates" + testSuffix, "shared/management", true},
		{"templates", "shared/mgmtapi", false},
		{"shared/mgmtapi", "shared/store", true},
		{"shared/mgmtapi", "shared/llmproxy", false},
		{"functions/proxy/cmd", "shared/process", false},
		{"functions/proxy/cmd", "functions/internal/deployable", false},
		{"functions/internal/mgmtplane", "shared/process", false},
		{"functions/proxy", "functions/internal/deployable", true},
		{"local/app", "shared/process", false},
	}
	for _, tt := range tests {
		if got := violation(tt.pkg, tt.imp) != ""; got != tt.bad {
			t.Errorf("violation(%s → %s) = %v, want %v", tt.pkg, tt.imp, got, tt.bad)
		}
	}
}
