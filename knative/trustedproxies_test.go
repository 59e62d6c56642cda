package knative

import (
	"bytes"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/openfaas/go-sdk/stack"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
	"sigs.k8s.io/yaml"
)

// clientFacing are the functions that see client addresses (failure
// budgets, rate limits, the audit trail).
var clientFacing = []string{"proxy", "manage-projects", "manage-tokens", "admin-ui"}

// TestKnativeManifestsTrustTheQueueProxy: behind Knative every request
// reaches the container from the queue-proxy on loopback, so without
// TRUSTED_PROXIES every client has one address and one client's failures
// spend everyone's budget.
func TestKnativeManifestsTrustTheQueueProxy(t *testing.T) {
	for _, fn := range clientFacing {
		raw, err := os.ReadFile(fn + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		var svc servingv1.Service
		if err := yaml.UnmarshalStrict(raw[bytes.Index(raw, []byte("apiVersion")):], &svc); err != nil {
			t.Fatalf("%s: %v", fn, err)
		}
		var value string
		for _, e := range svc.Spec.Template.Spec.Containers[0].Env {
			if e.Name == "TRUSTED_PROXIES" {
				value = e.Value
			}
		}
		prefixes := parsePrefixes(t, fn, value)
		for _, peer := range []string{"127.0.0.1", "::1"} {
			if !contains(prefixes, peer) {
				t.Errorf("%s: TRUSTED_PROXIES=%q does not trust the queue-proxy at %s", fn, value, peer)
			}
		}
	}
}

// TestOpenFaaSStackTrustsTheGateway: behind OpenFaaS requests come from the
// gateway in the pod network.
func TestOpenFaaSStackTrustsTheGateway(t *testing.T) {
	raw, err := os.ReadFile("../stack.yml")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := stack.ParseYAMLData(raw, "", "", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, fn := range clientFacing {
		f, ok := parsed.Functions["llm-proxy-"+fn]
		if !ok {
			t.Fatalf("no function llm-proxy-%s", fn)
		}
		value := f.Environment["TRUSTED_PROXIES"]
		if !contains(parsePrefixes(t, fn, value), "10.42.0.7") {
			t.Errorf("%s: TRUSTED_PROXIES=%q does not trust a gateway in the pod network (10.42.0.7)", fn, value)
		}
	}
}

func parsePrefixes(t *testing.T, fn, value string) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, f := range strings.Split(value, ",") {
		p, err := netip.ParsePrefix(strings.TrimSpace(f))
		if err != nil {
			t.Errorf("%s: TRUSTED_PROXIES=%q: %v", fn, value, err)
			continue
		}
		out = append(out, p)
	}
	return out
}

func contains(ps []netip.Prefix, addr string) bool {
	a := netip.MustParseAddr(addr)
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
