package knative

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"helm.sh/helm/v4/pkg/action"
	"helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	releasev1 "helm.sh/helm/v4/pkg/release/v1"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"
	"sigs.k8s.io/yaml"
)

// The chart is rendered as `helm install --dry-run=client` would: Helm's
// own install action, with its schema validation, hooks and NOTES.
const (
	chartDir    = "chart"
	releaseName = "llm-proxy"
	releaseNS   = "llm-proxy"
	kubeVersion = "v1.31.0"
)

// object is one rendered Kubernetes object, strictly decoded into its type
// (and, for Knative objects, defaulted and validated as the webhook would).
type object struct {
	source string // the template it came from
	hook   bool   // a Helm hook rather than part of the release manifest
	meta   metav1.TypeMeta
	name   string
	raw    []byte
	typed  any
}

func (o object) kind() string { return o.meta.APIVersion + " " + o.meta.Kind }

func (o object) String() string { return fmt.Sprintf("%s %s (%s)", o.meta.Kind, o.name, o.source) }

type rendering struct {
	objects []object
	notes   string
}

// byKind returns the objects of one "apiVersion Kind".
func (r *rendering) byKind(kind string) []object {
	var out []object
	for _, o := range r.objects {
		if o.kind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// one returns the object of kind and name, failing the test without it.
func (r *rendering) one(t *testing.T, kind, name string) object {
	t.Helper()
	for _, o := range r.byKind(kind) {
		if o.name == name {
			return o
		}
	}
	t.Fatalf("no %s named %s", kind, name)
	return object{}
}

var (
	loadOnce   sync.Once
	loaded     *chart.Chart
	loadErr    error
	kubeVer, _ = common.ParseKubeVersion(kubeVersion)
)

// loadChart loads the chart directory once (Helm's loader, as `helm install ./chart`).
func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	loadOnce.Do(func() { loaded, loadErr = loader.Load(chartDir) })
	if loadErr != nil {
		t.Fatalf("load chart: %v", loadErr)
	}
	return loaded
}

// values parses a YAML document of chart values.
func values(t *testing.T, doc string) map[string]any {
	t.Helper()
	v := map[string]any{}
	if err := yaml.Unmarshal([]byte(doc), &v); err != nil {
		t.Fatalf("values: %v", err)
	}
	return v
}

// render installs the chart client-side with vals and decodes every object.
// Any error — schema, template, decoding or Knative validation — is returned.
func render(t *testing.T, vals map[string]any) (*rendering, error) {
	t.Helper()
	cfg := action.NewConfiguration()
	cfg.SetLogger(slog.DiscardHandler)
	install := action.NewInstall(cfg)
	install.DryRunStrategy = action.DryRunClient
	install.ReleaseName = releaseName
	install.Namespace = releaseNS
	install.Replace = true
	install.KubeVersion = kubeVer
	rel, err := install.Run(loadChart(t), vals)
	if err != nil {
		return nil, err
	}
	r, ok := rel.(*releasev1.Release)
	if !ok {
		return nil, fmt.Errorf("install returned a %T", rel)
	}
	out := &rendering{notes: r.Info.Notes}
	docs := releaseutil.SplitManifests(r.Manifest)
	keys := make([]string, 0, len(docs))
	for k := range docs {
		keys = append(keys, k)
	}
	sort.Sort(releaseutil.BySplitManifestsOrder(keys))
	var errs []error
	add := func(doc string, hook bool, path string) {
		o, err := decode([]byte(doc), hook)
		if o.source == "" {
			o.source = path
		}
		if err != nil {
			errs = append(errs, err)
		} else if o.typed != nil {
			out.objects = append(out.objects, o)
		}
	}
	for _, k := range keys {
		add(docs[k], false, "")
	}
	for _, h := range r.Hooks {
		add(h.Manifest, true, h.Path)
	}
	return out, errors.Join(errs...)
}

// mustRender renders vals and fails the test on any error.
func mustRender(t *testing.T, vals map[string]any) *rendering {
	t.Helper()
	r, err := render(t, vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return r
}

var sourceLine = regexp.MustCompile(`(?m)^# Source: (\S+)`)

// decode strict-decodes one document into its Kubernetes or Knative type.
func decode(doc []byte, hook bool) (object, error) {
	o := object{hook: hook, raw: doc}
	if m := sourceLine.FindSubmatch(doc); m != nil {
		o.source = string(m[1])
	}
	var head struct {
		metav1.TypeMeta `json:",inline"`
		Metadata        struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &head); err != nil {
		return o, fmt.Errorf("%s: %w", o.source, err)
	}
	if head.Kind == "" {
		if len(bytes.TrimSpace(sourceLine.ReplaceAll(doc, nil))) > 0 {
			return o, fmt.Errorf("%s: a document without kind", o.source)
		}
		return o, nil // a template that renders nothing
	}
	o.meta, o.name = head.TypeMeta, head.Metadata.Name
	if kn := knativeObject(o.meta); kn != nil {
		o.typed = kn
		if err := validateKnative(doc, kn); err != nil {
			return o, fmt.Errorf("%s: %w", o, err)
		}
		return o, nil
	}
	switch o.kind() {
	case "apps/v1 Deployment":
		o.typed = &appsv1.Deployment{}
	case "v1 Service":
		o.typed = &corev1.Service{}
	case "autoscaling/v2 HorizontalPodAutoscaler":
		o.typed = &autoscalingv2.HorizontalPodAutoscaler{}
	case "policy/v1 PodDisruptionBudget":
		o.typed = &policyv1.PodDisruptionBudget{}
	case "batch/v1 Job":
		o.typed = &batchv1.Job{}
	case "networking.k8s.io/v1 Ingress":
		o.typed = &networkingv1.Ingress{}
	case "gateway.networking.k8s.io/v1 HTTPRoute":
		o.typed = &httpRoute{}
	default:
		return o, fmt.Errorf("%s: %s has no validator", o, o.kind())
	}
	if err := yaml.UnmarshalStrict(doc, o.typed); err != nil {
		return o, fmt.Errorf("%s: %w", o, err)
	}
	return o, nil
}

// Kinds, as "apiVersion Kind".
const (
	kindKService    = "serving.knative.dev/v1 Service"
	kindBroker      = "eventing.knative.dev/v1 Broker"
	kindTrigger     = "eventing.knative.dev/v1 Trigger"
	kindSinkBinding = "sources.knative.dev/v1 SinkBinding"
	kindDeployment  = "apps/v1 Deployment"
	kindService     = "v1 Service"
	kindHPA         = "autoscaling/v2 HorizontalPodAutoscaler"
	kindPDB         = "policy/v1 PodDisruptionBudget"
	kindJob         = "batch/v1 Job"
	kindIngress     = "networking.k8s.io/v1 Ingress"
	kindHTTPRoute   = "gateway.networking.k8s.io/v1 HTTPRoute"
)

// workload is a pod template of a rendered object.
type workload struct {
	of      object
	pod     *corev1.PodSpec
	knative bool
}

// workloads returns the pod templates of every object that runs pods.
func (r *rendering) workloads() []workload {
	var out []workload
	for _, o := range r.objects {
		switch x := o.typed.(type) {
		case *servingv1.Service:
			out = append(out, workload{o, &x.Spec.Template.Spec.PodSpec, true})
		case *appsv1.Deployment:
			out = append(out, workload{o, &x.Spec.Template.Spec, false})
		case *batchv1.Job:
			out = append(out, workload{o, &x.Spec.Template.Spec, false})
		}
	}
	return out
}

// env returns a container's variables by name.
func env(c corev1.Container) map[string]corev1.EnvVar {
	m := make(map[string]corev1.EnvVar, len(c.Env))
	for _, e := range c.Env {
		m[e.Name] = e
	}
	return m
}

// documentedVariables reads the variable names of the README's
// configuration table (generated from shared/config).
func documentedVariables(t *testing.T) map[string]bool {
	t.Helper()
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(raw), "<!-- config:begin")
	table, _, ok2 := strings.Cut(table, "<!-- config:end")
	if !ok || !ok2 {
		t.Fatal("README.md: configuration table markers not found")
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z0-9_]+)` \\|").FindAllStringSubmatch(table, -1) {
		names[m[1]] = true
	}
	if len(names) < 50 {
		t.Fatalf("README.md: only %d variables found in the configuration table", len(names))
	}
	return names
}
