package knative

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/openfaas/go-sdk/stack"
	yamlv3 "gopkg.in/yaml.v3"
)

// TestOpenFaaSStack parses stack.yml with OpenFaaS's own schema (with
// environment substitution, as faas-cli does), decodes it strictly so typos
// fail, and checks the project's rules: our own images (no watchdog build),
// a FUNCTION_TARGET per function, and the proxy's K_SINK pointing at the
// dispatcher's async URL.
func TestOpenFaaSStack(t *testing.T) {
	raw, err := os.ReadFile("../stack.yml")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := stack.ParseYAMLData(raw, "", "", true)
	if err != nil {
		t.Fatalf("stack.ParseYAMLData: %v", err)
	}
	dec := yamlv3.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	var strict stack.Services
	if err := dec.Decode(&strict); err != nil {
		t.Fatalf("strict decode: %v", err)
	}
	targets := map[string]bool{}
	for name, fn := range parsed.Functions {
		if !fn.SkipBuild {
			t.Errorf("%s: skip_build must be true (images are built once, shared with Knative)", name)
		}
		target := fn.Environment["FUNCTION_TARGET"]
		if target == "" {
			t.Errorf("%s: FUNCTION_TARGET missing", name)
		}
		targets[target] = true
		if !strings.Contains(fn.Image, "llm-proxy-"+target) {
			t.Errorf("%s: image %q is not the %s image", name, fn.Image, target)
		}
	}
	for _, want := range []string{"proxy", "manage-projects", "manage-tokens", "admin-ui", "dispatcher"} {
		if !targets[want] {
			t.Errorf("no function runs %s", want)
		}
	}
	proxy := parsed.Functions["llm-proxy-proxy"]
	if sink := proxy.Environment["K_SINK"]; !strings.Contains(sink, "/async-function/llm-proxy-dispatcher") {
		t.Errorf("proxy K_SINK = %q, want the dispatcher's async URL", sink)
	}
}

// TestStackStrictDecodeCatchesTypos proves the strict decode is not vacuous.
func TestStackStrictDecodeCatchesTypos(t *testing.T) {
	raw, err := os.ReadFile("../stack.yml")
	if err != nil {
		t.Fatal(err)
	}
	bad := bytes.Replace(raw, []byte("    environment:"), []byte("    enviroment:"), 1)
	dec := yamlv3.NewDecoder(bytes.NewReader(bad))
	dec.KnownFields(true)
	var s stack.Services
	if err := dec.Decode(&s); err == nil {
		t.Fatal("strict decode accepted a misspelled field")
	}
}
