// Package knative validates the deployment manifests offline, with Knative's
// and Kubernetes' own types: every document is strict-decoded (unknown fields
// are typos) and Knative objects go through SetDefaults and Validate exactly
// as the admission webhook would. It lives in a nested module so that the
// Kubernetes libraries never enter the function images.
package knative

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
	"knative.dev/pkg/apis"
	servingcfg "knative.dev/serving/pkg/apis/config"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
	"sigs.k8s.io/yaml"
)

type knObject interface {
	metav1.Object
	apis.Defaultable
	apis.Validatable
}

type document struct {
	file  string
	index int
	meta  metav1.TypeMeta
	raw   []byte
}

func documents(t *testing.T) []document {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests found: %v", err)
	}
	var out []document
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(raw, []byte("\n---")) {
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Errorf("%s[%d]: %v", f, i, err)
				continue
			}
			if tm.Kind == "" {
				continue
			}
			out = append(out, document{f, i, tm, doc})
		}
	}
	return out
}

func knativeObject(tm metav1.TypeMeta) knObject {
	switch tm.APIVersion + " " + tm.Kind {
	case "serving.knative.dev/v1 Service":
		return &servingv1.Service{}
	case "eventing.knative.dev/v1 Broker":
		return &eventingv1.Broker{}
	case "eventing.knative.dev/v1 Trigger":
		return &eventingv1.Trigger{}
	case "sources.knative.dev/v1 SinkBinding":
		return &sourcesv1.SinkBinding{}
	}
	return nil
}

// validateKnative strict-decodes and validates one Knative document and
// returns the error-level findings.
func validateKnative(doc []byte, obj knObject) error {
	if err := yaml.UnmarshalStrict(doc, obj); err != nil {
		return err
	}
	ctx := apis.WithinCreate(context.Background())
	defs, err := servingcfg.NewDefaultsConfigFromMap(map[string]string{"max-revision-timeout-seconds": "600"})
	if err != nil {
		return err
	}
	ctx = servingcfg.ToContext(ctx, &servingcfg.Config{Defaults: defs, Features: &servingcfg.Features{PodSpecVolumesEmptyDir: servingcfg.Enabled}})
	obj.SetDefaults(ctx)
	if e := obj.Validate(ctx).Filter(apis.ErrorLevel); e != nil {
		return e
	}
	return nil
}

func TestManifestsValidate(t *testing.T) {
	kinds := map[string]int{}
	for _, d := range documents(t) {
		kinds[d.meta.Kind]++
		var err error
		switch obj := knativeObject(d.meta); {
		case obj != nil:
			err = validateKnative(d.raw, obj)
		case d.meta.Kind == "Job":
			err = yaml.UnmarshalStrict(d.raw, &batchv1.Job{})
		case d.meta.Kind == "Secret":
			err = yaml.UnmarshalStrict(d.raw, &corev1.Secret{})
		case d.meta.Kind == "ConfigMap":
			err = yaml.UnmarshalStrict(d.raw, &corev1.ConfigMap{})
		case d.meta.Kind == "HTTPRoute":
			err = yaml.UnmarshalStrict(d.raw, &httpRoute{})
		default:
			t.Errorf("%s[%d]: %s %s has no validator", d.file, d.index, d.meta.APIVersion, d.meta.Kind)
			continue
		}
		if err != nil {
			t.Errorf("%s[%d] %s: %v", d.file, d.index, d.meta.Kind, err)
		}
	}
	for kind, min := range map[string]int{"Service": 7, "Broker": 1, "Trigger": 3, "SinkBinding": 4, "Job": 1, "HTTPRoute": 1} {
		if kinds[kind] < min {
			t.Errorf("want at least %d %s manifests, found %d", min, kind, kinds[kind])
		}
	}
}

// TestManifestsKeepPodSecurity holds the manifests' workloads to the chart's
// pod security rules (a numeric runAsUser included: the image's user is a
// name, which the kubelet cannot verify as non-root).
func TestManifestsKeepPodSecurity(t *testing.T) {
	var r rendering
	for _, d := range documents(t) {
		o, err := decode(d.raw, false)
		if err != nil {
			if d.meta.Kind != "Secret" && d.meta.Kind != "ConfigMap" {
				t.Errorf("%s[%d]: %v", d.file, d.index, err)
			}
			continue
		}
		o.source = d.file
		r.objects = append(r.objects, o)
	}
	if len(r.workloads()) < 8 {
		t.Fatalf("%d workloads in the manifests, want 8", len(r.workloads()))
	}
	checkPodSecurity(t, &r)
}

// TestProxyServiceIsStreamingSafe pins the settings a streaming proxy needs.
func TestProxyServiceIsStreamingSafe(t *testing.T) {
	raw, err := os.ReadFile("proxy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var svc servingv1.Service
	if err := yaml.UnmarshalStrict(raw[bytes.Index(raw, []byte("apiVersion")):], &svc); err != nil {
		t.Fatal(err)
	}
	checkStreamingSafe(t, &svc)
}

// checkStreamingSafe checks the proxy Service's timers, scale and port.
func checkStreamingSafe(t *testing.T, svc *servingv1.Service) {
	t.Helper()
	spec := svc.Spec.Template.Spec
	if spec.TimeoutSeconds == nil || *spec.TimeoutSeconds < 600 {
		t.Errorf("timeoutSeconds must allow long streams (600), got %s", fmtPtr(spec.TimeoutSeconds))
	}
	if spec.ResponseStartTimeoutSeconds == nil || spec.IdleTimeoutSeconds == nil {
		t.Error("responseStartTimeoutSeconds and idleTimeoutSeconds must be set")
	}
	if got, err := strconv.Atoi(svc.Spec.Template.Annotations["autoscaling.knative.dev/min-scale"]); err != nil || got < 1 {
		t.Errorf("proxy min-scale = %d (%v), want at least 1 (no cold start on the hot path)", got, err)
	}
	if p := spec.Containers[0].Ports; len(p) != 1 || p[0].Name != "http1" {
		t.Errorf("proxy must expose exactly one http1 port, got %+v", p)
	}
}

func fmtPtr[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

// TestValidatorCatchesMistakes proves the validation is not vacuous.
func TestValidatorCatchesMistakes(t *testing.T) {
	raw, err := os.ReadFile("proxy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	good := string(raw)
	bad := map[string]string{
		"typo":            strings.Replace(good, "containerConcurrency", "containerConcurency", 1),
		"timeout too big": strings.Replace(good, "timeoutSeconds: 600", "timeoutSeconds: 99999", 1),
		"reserved env":    strings.Replace(good, "name: FUNCTION_TARGET", "name: PORT", 1),
	}
	for name, doc := range bad {
		if doc == good {
			t.Fatalf("%s: mutation did not apply", name)
		}
		if err := validateKnative([]byte(doc), &servingv1.Service{}); err == nil {
			t.Errorf("%s: validation passed, want an error", name)
		}
	}
}

// httpRoute is the subset of Gateway API's HTTPRoute (v1) we use, decoded
// strictly so typos fail; the gateway-api module is not needed for that.
type httpRoute struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		ParentRefs []struct {
			Name        string `json:"name"`
			Namespace   string `json:"namespace,omitempty"`
			SectionName string `json:"sectionName,omitempty"`
			Port        int    `json:"port,omitempty"`
		} `json:"parentRefs"`
		Hostnames []string `json:"hostnames"`
		Rules     []struct {
			Matches []struct {
				Path struct {
					Type  string `json:"type"`
					Value string `json:"value"`
				} `json:"path"`
			} `json:"matches"`
			Filters []struct {
				Type       string `json:"type"`
				URLRewrite *struct {
					Path struct {
						Type               string `json:"type"`
						ReplacePrefixMatch string `json:"replacePrefixMatch"`
					} `json:"path"`
				} `json:"urlRewrite,omitempty"`
			} `json:"filters,omitempty"`
			BackendRefs []struct {
				Name string `json:"name"`
				Port int    `json:"port"`
			} `json:"backendRefs"`
		} `json:"rules"`
	} `json:"spec"`
}
