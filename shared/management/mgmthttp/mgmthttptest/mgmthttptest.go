// Package mgmthttptest checks, in tests, that the deployment manifests route
// to a management function exactly the path prefixes it owns (its Paths()).
package mgmthttptest

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"gopkg.in/yaml.v3"
)

// HTTPRoute is the Gateway API route of the Knative deployment, relative to
// the module root.
const HTTPRoute = "knative/httproute.yaml"

// CheckRouted fails t unless HTTPRoute sends exactly paths (as PathPrefix
// matches) to the Service named backend.
func CheckRouted(t testing.TB, backend string, paths []string) {
	t.Helper()
	routed, err := routedPrefixes(filepath.Join(moduleRoot(t), HTTPRoute))
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(slices.Values(routed[backend]))
	if want := slices.Sorted(slices.Values(paths)); !slices.Equal(got, want) {
		t.Errorf("%s routes %q to %s; the function owns %q", HTTPRoute, got, backend, want)
	}
}

// routedPrefixes reads an HTTPRoute file: backend name -> path prefixes.
// A match that is not a PathPrefix is reported under its type.
func routedPrefixes(file string) (map[string][]string, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	var route struct {
		Spec struct {
			Rules []struct {
				Matches []struct {
					Path struct{ Type, Value string }
				}
				BackendRefs []struct{ Name string } `yaml:"backendRefs"`
			}
		}
	}
	if err := yaml.Unmarshal(raw, &route); err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for _, rule := range route.Spec.Rules {
		for _, b := range rule.BackendRefs {
			for _, m := range rule.Matches {
				v := m.Path.Value
				if m.Path.Type != "PathPrefix" {
					v = m.Path.Type + " " + v
				}
				out[b.Name] = append(out[b.Name], v)
			}
		}
	}
	return out, nil
}

// moduleRoot is the nearest directory above the working directory (a test's
// package directory) that holds go.mod.
func moduleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory")
		}
		dir = parent
	}
}
