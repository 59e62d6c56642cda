package knative

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	eventingv1 "knative.dev/eventing/pkg/apis/eventing/v1"
	sourcesv1 "knative.dev/eventing/pkg/apis/sources/v1"
	servingv1 "knative.dev/serving/pkg/apis/serving/v1"

	"github.com/llm-proxy/llm-proxy/knative/internal/chartdoc"
)

// Representative values: every knob an operator is likely to turn.
const knativeValues = `
host: api.example.org
image: {tag: v0.2.0, pullPolicy: Always}
imagePullSecrets: [registry-creds]
serviceAccountName: llm-proxy
commonLabels: {team: platform}
secrets:
  existingSecret: llm-proxy-core
  managementToken: {existingSecret: llm-proxy-admin, key: token}
  databaseURL: {existingSecret: llm-proxy-db, key: url}
  redisPassword: {existingSecret: llm-proxy-redis, key: password}
redis: {addr: "redis-master.data.svc:6379", db: 2}
trustedProxies: {cidrs: [10.0.0.0/8, "fd00::/8"]}
config: {LOG_LEVEL: debug, HTTP_CACHE_PATHS: /v1/embeddings, RATE_LIMIT_LEASE: 16, AUDIT_ENABLED: true}
extraEnv:
  - name: ADMIN_UI_SESSION_KEY
    valueFrom: {secretKeyRef: {name: llm-proxy-admin, key: session}}
functions:
  proxy:
    image: {digest: "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
    minScale: 2
    maxScale: 40
    containerConcurrency: 300
    extraEnv: [{name: DEFAULT_RESERVE_TOKENS, value: "2048"}]
  adminUI: {minScale: 1}
eventing:
  broker:
    class: Kafka
    delivery: {retry: 3, deadLetterSink: {ref: {apiVersion: v1, kind: Service, name: dead-letters}}}
dispatchers:
  lunary: {enabled: true, apiKey: {existingSecret: observability, key: lunary}}
  helicone: {enabled: true, endpoint: "https://helicone.internal/custom/v1/log", config: {DISPATCHER_TIMEOUT: 10s}}
  webhook:
    enabled: true
    endpoint: https://hooks.example.org/llm
    eventTypes: [io.llmproxy.token.created.v1, io.llmproxy.token.revoked.v1]
    signingSecret: {existingSecret: observability, key: webhook}
migration: {image: {tag: v0.2.0-migrate}}
httpRoute:
  parentRefs: [{name: gw, namespace: infra, sectionName: https}]
  annotations: {example.org/owner: platform}
`

const deploymentValues = `
mode: deployment
host: llm.internal.example.org
https: false
secrets: {existingSecret: core}
trustedProxies: {cidrs: [10.42.0.0/16]}
server:
  image: {repository: registry.example.org/llm-proxy, tag: v0.2.0}
  autoscaling: {minReplicas: 3, maxReplicas: 30, targetCPUUtilizationPercentage: 60}
  podDisruptionBudget: {minAvailable: 50%}
  shutdownGracePeriodSeconds: 120
  service: {port: 8080}
  extraEnv: [{name: OBSERVABILITY_CAPTURE_BODIES, value: "true"}]
  nodeSelector: {kubernetes.io/os: linux}
  tolerations: [{key: dedicated, operator: Equal, value: llm, effect: NoSchedule}]
dispatchers:
  file: {path: /var/log/llm-proxy/events.jsonl, config: {DISPATCHER_FILE_MAX_BYTES: 1048576}}
  helicone: {enabled: true, config: {DISPATCHER_TIMEOUT: 5s}}
httpRoute: {enabled: false}
ingress:
  enabled: true
  className: nginx
  annotations: {nginx.ingress.kubernetes.io/proxy-read-timeout: "600"}
  tls: {enabled: true, secretName: llm-tls}
`

// chartCase is a set of values and what it must render (exact counts per kind).
type chartCase struct {
	name   string
	values string
	kinds  map[string]int
	check  func(t *testing.T, r *rendering)
}

var chartCases = []chartCase{
	{
		name:  "knative defaults",
		kinds: map[string]int{kindKService: 5, kindBroker: 1, kindTrigger: 1, kindSinkBinding: 4, kindJob: 1, kindHTTPRoute: 1},
		check: func(t *testing.T, r *rendering) {
			checkKnative(t, r, []string{"file"})
			checkSecretRefs(t, r, map[string]string{
				"MANAGEMENT_TOKEN": "llm-proxy-secrets/MANAGEMENT_TOKEN", "DATABASE_URL": "llm-proxy-secrets/DATABASE_URL",
				"REDIS_ADDR": "llm-proxy-secrets/REDIS_ADDR", "REDIS_PASSWORD": "llm-proxy-secrets/REDIS_PASSWORD",
			})
		},
	},
	{
		name:   "knative representative",
		values: knativeValues,
		kinds:  map[string]int{kindKService: 8, kindBroker: 1, kindTrigger: 4, kindSinkBinding: 4, kindJob: 1, kindHTTPRoute: 1},
		check: func(t *testing.T, r *rendering) {
			checkKnative(t, r, []string{"file", "lunary", "helicone", "webhook"})
			checkSecretRefs(t, r, map[string]string{
				"MANAGEMENT_TOKEN": "llm-proxy-admin/token", "ENCRYPTION_KEY": "llm-proxy-core/ENCRYPTION_KEY",
				"DATABASE_URL": "llm-proxy-db/url", "REDIS_PASSWORD": "llm-proxy-redis/password",
				"ADMIN_UI_SESSION_KEY": "llm-proxy-admin/session",
			})
			proxy := r.one(t, kindKService, "llm-proxy-proxy").typed.(*servingv1.Service)
			c := proxy.Spec.Template.Spec.Containers[0]
			if want := "ghcr.io/llm-proxy/llm-proxy-proxy@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"; c.Image != want {
				t.Errorf("proxy image = %q, want %q", c.Image, want)
			}
			e := env(c)
			if e["REDIS_ADDR"].Value != "redis-master.data.svc:6379" || e["REDIS_DB"].Value != "2" || e["DEFAULT_RESERVE_TOKENS"].Value != "2048" {
				t.Errorf("proxy env: REDIS_ADDR=%q REDIS_DB=%q DEFAULT_RESERVE_TOKENS=%q", e["REDIS_ADDR"].Value, e["REDIS_DB"].Value, e["DEFAULT_RESERVE_TOKENS"].Value)
			}
			if got := e["TRUSTED_PROXIES"].Value; got != "127.0.0.1/32,::1/128,10.0.0.0/8,fd00::/8" {
				t.Errorf("TRUSTED_PROXIES = %q", got)
			}
			job := r.one(t, kindJob, "llm-proxy-migrate").typed.(*batchv1.Job)
			if got := job.Spec.Template.Spec.Containers[0].Image; got != "ghcr.io/llm-proxy/llm-proxy:v0.2.0-migrate" {
				t.Errorf("migration image = %q", got)
			}
			web := r.one(t, kindTrigger, "llm-proxy-dispatcher-webhook").typed.(*eventingv1.Trigger)
			if f := web.Spec.Filters; len(f) != 1 || len(f[0].Any) != 2 {
				t.Errorf("webhook Trigger filters = %+v, want any of two types", f)
			}
		},
	},
	{
		name:   "deployment defaults",
		values: "mode: deployment",
		kinds:  map[string]int{kindDeployment: 1, kindService: 1, kindHPA: 1, kindPDB: 1, kindJob: 1, kindHTTPRoute: 1},
		check: func(t *testing.T, r *rendering) {
			checkDeployment(t, r, 80)
			e := env(deploymentOf(t, r).Spec.Template.Spec.Containers[0])
			if e["FILE_EVENT_LOG"].Value != "/var/lib/llm-proxy/events.jsonl" || e["DISPATCHER_SERVICE"].Name != "" {
				t.Errorf("default dispatchers: FILE_EVENT_LOG=%q DISPATCHER_SERVICE=%q", e["FILE_EVENT_LOG"].Value, e["DISPATCHER_SERVICE"].Value)
			}
			if e["TRUSTED_PROXIES"].Value != "" {
				t.Errorf("TRUSTED_PROXIES = %q, want none by default in deployment mode", e["TRUSTED_PROXIES"].Value)
			}
		},
	},
	{
		name:   "deployment representative",
		values: deploymentValues,
		kinds:  map[string]int{kindDeployment: 1, kindService: 1, kindHPA: 1, kindPDB: 1, kindJob: 1, kindIngress: 1},
		check: func(t *testing.T, r *rendering) {
			checkDeployment(t, r, 8080)
			checkSecretRefs(t, r, map[string]string{"MANAGEMENT_TOKEN": "core/MANAGEMENT_TOKEN", "DISPATCHER_API_KEY": "core/HELICONE_API_KEY"})
			d := deploymentOf(t, r)
			c := d.Spec.Template.Spec.Containers[0]
			e := env(c)
			for name, want := range map[string]string{
				"DISPATCHER_SERVICE": "helicone", "DISPATCHER_TIMEOUT": "5s", "FILE_EVENT_LOG": "/var/log/llm-proxy/events.jsonl",
				"DISPATCHER_FILE_MAX_BYTES": "1048576", "ADMIN_UI_SECURE_COOKIES": "auto", "OBSERVABILITY_CAPTURE_BODIES": "true",
				"TRUSTED_PROXIES": "10.42.0.0/16", "PUBLIC_BASE_URL": "http://llm.internal.example.org",
			} {
				if got := e[name].Value; got != want {
					t.Errorf("%s = %q, want %q", name, got, want)
				}
			}
			if c.Image != "registry.example.org/llm-proxy:v0.2.0" {
				t.Errorf("image = %q", c.Image)
			}
			if !slices.ContainsFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool { return m.MountPath == "/var/log/llm-proxy" }) {
				t.Errorf("no volume at the file dispatcher's directory: %+v", c.VolumeMounts)
			}
			hpa := r.one(t, kindHPA, "llm-proxy").typed.(*autoscalingv2.HorizontalPodAutoscaler)
			if *hpa.Spec.MinReplicas != 3 || hpa.Spec.MaxReplicas != 30 {
				t.Errorf("HPA %d..%d, want 3..30", *hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas)
			}
			pdb := r.one(t, kindPDB, "llm-proxy").typed.(*policyv1.PodDisruptionBudget)
			if pdb.Spec.MinAvailable.String() != "50%" {
				t.Errorf("PDB minAvailable = %s", pdb.Spec.MinAvailable.String())
			}
			ing := r.one(t, kindIngress, "llm-proxy").typed.(*networkingv1.Ingress)
			if ing.Spec.Rules[0].Host != "llm.internal.example.org" || len(ing.Spec.TLS) != 1 || ing.Spec.TLS[0].SecretName != "llm-tls" {
				t.Errorf("Ingress rules %+v tls %+v", ing.Spec.Rules, ing.Spec.TLS)
			}
			if b := ing.Spec.Rules[0].HTTP.Paths[0].Backend.Service; b.Name != "llm-proxy" || b.Port.Name != "http" {
				t.Errorf("Ingress backend %+v", b)
			}
		},
	},
	{
		name:   "deployment with fixed replicas",
		values: "{mode: deployment, server: {replicas: 1, autoscaling: {enabled: false}, podDisruptionBudget: {enabled: false}}, migration: {enabled: false}}",
		kinds:  map[string]int{kindDeployment: 1, kindService: 1, kindHTTPRoute: 1},
		check: func(t *testing.T, r *rendering) {
			if d := deploymentOf(t, r); d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
				t.Errorf("replicas = %v, want 1 without an autoscaler", d.Spec.Replicas)
			}
		},
	},
}

// TestChartLints runs Helm's linter (chart file, values against the schema,
// templates, YAML) for every case; warnings count as failures.
func TestChartLints(t *testing.T) {
	for _, c := range chartCases {
		t.Run(c.name, func(t *testing.T) {
			res := lint.RunAll(chartDir, values(t, c.values), releaseNS, lint.WithKubeVersion(kubeVer))
			for _, m := range res.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("lint: %s", m)
				}
			}
		})
	}
}

// TestChartRenders renders every case, strict-decodes and validates each
// object, and checks what each mode must render and the rules every object
// keeps: pod security, secrets only by reference, documented variables.
func TestChartRenders(t *testing.T) {
	documented := documentedVariables(t)
	for _, c := range chartCases {
		t.Run(c.name, func(t *testing.T) {
			r := mustRender(t, values(t, c.values))
			got := map[string]int{}
			for _, o := range r.objects {
				got[o.kind()]++
			}
			for kind := range got {
				if _, ok := c.kinds[kind]; !ok {
					t.Errorf("%d %s, want none", got[kind], kind)
				}
			}
			for kind, want := range c.kinds {
				if got[kind] != want {
					t.Errorf("%d %s, want %d", got[kind], kind, want)
				}
			}
			checkPodSecurity(t, r)
			checkNoSecretValues(t, r)
			checkVariablesDocumented(t, r, documented)
			checkMigrationHook(t, r)
			c.check(t, r)
		})
	}
}

// publicURLRE is the form of the chart's public URL (scheme and host).
var publicURLRE = regexp.MustCompile(`^https?://[a-z0-9.-]+$`)

// checkKnative checks the Knative shape: the five functions (one dispatcher
// per backend), the proxy's streaming-safe settings, a Trigger per backend
// on the Broker, a SinkBinding per publisher, and a route to each function.
func checkKnative(t *testing.T, r *rendering, backends []string) {
	t.Helper()
	services := map[string]*servingv1.Service{}
	for _, o := range r.byKind(kindKService) {
		services[o.name] = o.typed.(*servingv1.Service)
	}
	publishers := []string{"proxy", "manage-projects", "manage-tokens", "admin-ui"}
	for _, fn := range publishers {
		svc := services["llm-proxy-"+fn]
		if svc == nil {
			t.Errorf("no Knative Service for %s", fn)
			continue
		}
		c := svc.Spec.Template.Spec.Containers[0]
		e := env(c)
		if e["FUNCTION_TARGET"].Value != fn || e["LLM_PROXY_EVENT_BUS"].Value != "http" {
			t.Errorf("%s: FUNCTION_TARGET=%q LLM_PROXY_EVENT_BUS=%q", fn, e["FUNCTION_TARGET"].Value, e["LLM_PROXY_EVENT_BUS"].Value)
		}
		if want := (time.Duration(*svc.Spec.Template.Spec.TimeoutSeconds) * time.Second).String(); mustDuration(t, e["SHUTDOWN_GRACE_PERIOD"].Value).String() != want {
			t.Errorf("%s: SHUTDOWN_GRACE_PERIOD=%q, want the Service's timeout %s", fn, e["SHUTDOWN_GRACE_PERIOD"].Value, want)
		}
		_, hasToken := e["MANAGEMENT_TOKEN"]
		if hasToken != (fn != "proxy") {
			t.Errorf("%s: MANAGEMENT_TOKEN present = %v", fn, hasToken)
		}
		sb := r.one(t, kindSinkBinding, "llm-proxy-"+fn+"-events").typed.(*sourcesv1.SinkBinding)
		if sb.Spec.Subject.Name != svc.Name || sb.Spec.Sink.Ref == nil || sb.Spec.Sink.Ref.Kind != "Broker" {
			t.Errorf("SinkBinding of %s: subject %q, sink %+v", fn, sb.Spec.Subject.Name, sb.Spec.Sink.Ref)
		}
	}
	checkStreamingSafe(t, services["llm-proxy-proxy"])
	if e := env(services["llm-proxy-admin-ui"].Spec.Template.Spec.Containers[0]); e["ADMIN_UI_PATH"].Value != "/admin" {
		t.Errorf("admin-ui ADMIN_UI_PATH = %q", e["ADMIN_UI_PATH"].Value)
	}
	// The admin UI's new-token example must point at the proxy's public
	// URL: the admin-ui service does not answer /v1.
	if v := env(services["llm-proxy-admin-ui"].Spec.Template.Spec.Containers[0])["PUBLIC_BASE_URL"].Value; !publicURLRE.MatchString(v) {
		t.Errorf("admin-ui PUBLIC_BASE_URL = %q, want the chart's URL (http(s):// + host)", v)
	}

	broker := r.one(t, kindBroker, "llm-proxy").typed.(*eventingv1.Broker)
	for _, b := range backends {
		svc := services["llm-proxy-dispatcher-"+b]
		if svc == nil {
			t.Errorf("no dispatcher Service for %s", b)
			continue
		}
		e := env(svc.Spec.Template.Spec.Containers[0])
		if e["FUNCTION_TARGET"].Value != "dispatcher" || e["DISPATCHER_SERVICE"].Value != b {
			t.Errorf("dispatcher %s: FUNCTION_TARGET=%q DISPATCHER_SERVICE=%q", b, e["FUNCTION_TARGET"].Value, e["DISPATCHER_SERVICE"].Value)
		}
		for _, leak := range []string{"DATABASE_URL", "MANAGEMENT_TOKEN", "ENCRYPTION_KEY"} {
			if _, ok := e[leak]; ok {
				t.Errorf("dispatcher %s gets %s, which it does not need", b, leak)
			}
		}
		tr := r.one(t, kindTrigger, "llm-proxy-dispatcher-"+b).typed.(*eventingv1.Trigger)
		if tr.Spec.Broker != broker.Name || tr.Spec.Subscriber.Ref == nil || tr.Spec.Subscriber.Ref.Name != svc.Name {
			t.Errorf("Trigger of %s: broker %q, subscriber %+v", b, tr.Spec.Broker, tr.Spec.Subscriber.Ref)
		}
	}
	if file := services["llm-proxy-dispatcher-file"]; file != nil {
		if e := env(file.Spec.Template.Spec.Containers[0]); e["DISPATCHER_ENDPOINT"].Value != "/var/lib/llm-proxy/events.jsonl" {
			t.Errorf("file dispatcher DISPATCHER_ENDPOINT = %q", e["DISPATCHER_ENDPOINT"].Value)
		}
		if m := file.Spec.Template.Spec.Containers[0].VolumeMounts; len(m) != 1 || m[0].MountPath != "/var/lib/llm-proxy" {
			t.Errorf("file dispatcher mounts %+v", m)
		}
	}

	route := r.byKind(kindHTTPRoute)[0].typed.(*httpRoute)
	routed := map[string]bool{}
	for _, rule := range route.Spec.Rules {
		for _, b := range rule.BackendRefs {
			if services[b.Name] == nil {
				t.Errorf("HTTPRoute routes to %s, which is not rendered", b.Name)
			}
			routed[b.Name] = true
		}
	}
	for _, fn := range publishers {
		if !routed["llm-proxy-"+fn] {
			t.Errorf("HTTPRoute has no rule for %s", fn)
		}
	}
}

// checkDeployment checks the deployment shape: `llm-proxy serve` with its
// probes and a grace period covering SHUTDOWN_GRACE_PERIOD, and a Service,
// autoscaler and disruption budget that all point at its pods.
func checkDeployment(t *testing.T, r *rendering, port int32) {
	t.Helper()
	d := deploymentOf(t, r)
	pod := d.Spec.Template.Spec
	c := pod.Containers[0]
	if !slices.Equal(c.Args, []string{"serve"}) {
		t.Errorf("args = %v, want [serve]", c.Args)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/ready" {
		t.Errorf("readiness probe %+v, want GET /ready", c.ReadinessProbe)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/live" {
		t.Errorf("liveness probe %+v, want GET /live", c.LivenessProbe)
	}
	e := env(c)
	grace := mustDuration(t, e["SHUTDOWN_GRACE_PERIOD"].Value)
	if pod.TerminationGracePeriodSeconds == nil || time.Duration(*pod.TerminationGracePeriodSeconds)*time.Second <= grace {
		t.Errorf("terminationGracePeriodSeconds %v does not cover SHUTDOWN_GRACE_PERIOD %s", pod.TerminationGracePeriodSeconds, grace)
	}
	if e["DB_DRIVER"].Value != "postgres" || e["LISTEN_ADDR"].Value != ":8080" {
		t.Errorf("DB_DRIVER=%q LISTEN_ADDR=%q", e["DB_DRIVER"].Value, e["LISTEN_ADDR"].Value)
	}
	labels := d.Spec.Template.Labels
	matches := func(sel map[string]string) bool {
		for k, v := range sel {
			if labels[k] != v {
				return false
			}
		}
		return len(sel) > 0
	}
	if !matches(d.Spec.Selector.MatchLabels) {
		t.Errorf("Deployment selector %v does not match its pods %v", d.Spec.Selector.MatchLabels, labels)
	}
	svc := r.one(t, kindService, d.Name).typed.(*corev1.Service)
	if !matches(svc.Spec.Selector) || svc.Spec.Ports[0].Port != port || svc.Spec.Ports[0].TargetPort.String() != c.Ports[0].Name {
		t.Errorf("Service selector %v ports %+v do not reach the pods", svc.Spec.Selector, svc.Spec.Ports)
	}
	if hpas := r.byKind(kindHPA); len(hpas) > 0 {
		ref := hpas[0].typed.(*autoscalingv2.HorizontalPodAutoscaler).Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || ref.Name != d.Name {
			t.Errorf("HPA targets %+v", ref)
		}
		if d.Spec.Replicas != nil {
			t.Error("replicas is set beside an autoscaler (every upgrade would reset the scale)")
		}
	}
	if pdbs := r.byKind(kindPDB); len(pdbs) > 0 && !matches(pdbs[0].typed.(*policyv1.PodDisruptionBudget).Spec.Selector.MatchLabels) {
		t.Error("PodDisruptionBudget selector does not match the pods")
	}
	for _, kind := range []string{kindKService, kindBroker, kindTrigger, kindSinkBinding} {
		if n := len(r.byKind(kind)); n > 0 {
			t.Errorf("deployment mode renders %d %s", n, kind)
		}
	}
}

func deploymentOf(t *testing.T, r *rendering) *appsv1.Deployment {
	t.Helper()
	return r.one(t, kindDeployment, "llm-proxy").typed.(*appsv1.Deployment)
}

func mustDuration(t *testing.T, s string) time.Duration {
	t.Helper()
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Errorf("duration %q: %v", s, err)
	}
	return d
}

// checkPodSecurity checks every container of every workload: non-root, a
// read-only root filesystem, no privilege escalation, no capabilities, the
// RuntimeDefault seccomp profile, and no service account token.
func checkPodSecurity(t *testing.T, r *rendering) {
	t.Helper()
	ws := r.workloads()
	if len(ws) == 0 {
		t.Fatal("no workloads rendered")
	}
	for _, w := range ws {
		if w.pod.AutomountServiceAccountToken == nil || *w.pod.AutomountServiceAccountToken {
			t.Errorf("%s: automountServiceAccountToken must be false", w.of)
		}
		if !w.knative {
			if p := w.pod.SecurityContext; p == nil || p.RunAsNonRoot == nil || !*p.RunAsNonRoot || p.SeccompProfile == nil || p.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
				t.Errorf("%s: pod securityContext %+v, want runAsNonRoot and seccomp RuntimeDefault", w.of, p)
			}
		}
		for _, c := range append(slices.Clone(w.pod.InitContainers), w.pod.Containers...) {
			s := c.SecurityContext
			switch {
			case s == nil:
				t.Errorf("%s/%s: no securityContext", w.of, c.Name)
			case s.RunAsNonRoot == nil || !*s.RunAsNonRoot:
				t.Errorf("%s/%s: runAsNonRoot must be true", w.of, c.Name)
			case s.RunAsUser == nil || *s.RunAsUser == 0:
				t.Errorf("%s/%s: a numeric non-root runAsUser lets the kubelet verify runAsNonRoot", w.of, c.Name)
			case s.ReadOnlyRootFilesystem == nil || !*s.ReadOnlyRootFilesystem:
				t.Errorf("%s/%s: readOnlyRootFilesystem must be true", w.of, c.Name)
			case s.AllowPrivilegeEscalation == nil || *s.AllowPrivilegeEscalation:
				t.Errorf("%s/%s: allowPrivilegeEscalation must be false", w.of, c.Name)
			case s.Capabilities == nil || !slices.Contains(s.Capabilities.Drop, "ALL") || len(s.Capabilities.Add) > 0:
				t.Errorf("%s/%s: capabilities %+v, want drop ALL", w.of, c.Name, s.Capabilities)
			case s.SeccompProfile == nil || s.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
				t.Errorf("%s/%s: seccompProfile must be RuntimeDefault", w.of, c.Name)
			}
		}
	}
}

// secretVariables hold secrets (see the README's configuration table).
var secretVariables = []string{
	"MANAGEMENT_TOKEN", "ENCRYPTION_KEY", "ENCRYPTION_KEY_PREVIOUS", "DATABASE_URL", "REDIS_PASSWORD",
	"REDIS_CACHE_URL", "DISPATCHER_API_KEY", "LLM_PROXY_API_KEY", "DISPATCHER_WEBHOOK_SECRET", "ADMIN_UI_SESSION_KEY",
}

// checkNoSecretValues checks that no object is a Secret or ConfigMap and
// that every secret variable comes from a Secret, never a literal value.
func checkNoSecretValues(t *testing.T, r *rendering) {
	t.Helper()
	for _, o := range r.objects {
		if o.meta.Kind == "Secret" || o.meta.Kind == "ConfigMap" {
			t.Errorf("%s: the chart must not hold configuration or secrets in objects", o)
		}
	}
	for _, w := range r.workloads() {
		for _, c := range w.pod.Containers {
			if len(c.EnvFrom) > 0 {
				t.Errorf("%s/%s: envFrom hides which variables a container gets", w.of, c.Name)
			}
			for _, e := range c.Env {
				if slices.Contains(secretVariables, e.Name) && (e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
					t.Errorf("%s/%s: %s must come from a Secret (valueFrom.secretKeyRef)", w.of, c.Name, e.Name)
				}
			}
		}
	}
}

// checkSecretRefs checks that each variable is read from "secret/key".
func checkSecretRefs(t *testing.T, r *rendering, want map[string]string) {
	t.Helper()
	seen := map[string]bool{}
	for _, w := range r.workloads() {
		for _, c := range w.pod.Containers {
			for name, ref := range want {
				e, ok := env(c)[name]
				if !ok {
					continue
				}
				seen[name] = true
				if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
					t.Errorf("%s: %s is not from a Secret", w.of, name)
				} else if got := e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key; got != ref {
					t.Errorf("%s: %s from %s, want %s", w.of, name, got, ref)
				}
			}
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("no workload reads %s", name)
		}
	}
}

// checkVariablesDocumented checks that every variable the chart sets is one
// the functions read (the README's configuration table lists them).
func checkVariablesDocumented(t *testing.T, r *rendering, documented map[string]bool) {
	t.Helper()
	for _, w := range r.workloads() {
		for _, c := range w.pod.Containers {
			for _, e := range c.Env {
				if !documented[e.Name] && e.Name != "FUNCTION_TARGET" {
					t.Errorf("%s/%s: %s is not a documented variable", w.of, c.Name, e.Name)
				}
			}
		}
	}
}

// checkMigrationHook checks that migrations run as a pre-install and
// pre-upgrade hook (so before the workloads), with the single binary.
func checkMigrationHook(t *testing.T, r *rendering) {
	t.Helper()
	for _, o := range r.byKind(kindJob) {
		job := o.typed.(*batchv1.Job)
		hooks := strings.Split(job.Annotations["helm.sh/hook"], ",")
		if !o.hook || !slices.Contains(hooks, "pre-install") || !slices.Contains(hooks, "pre-upgrade") {
			t.Errorf("%s: must be a pre-install,pre-upgrade hook, got %q", o, job.Annotations["helm.sh/hook"])
		}
		c := job.Spec.Template.Spec.Containers[0]
		if !slices.Equal(c.Args, []string{"migrate", "up"}) || job.Spec.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
			t.Errorf("%s: args %v restartPolicy %s", o, c.Args, job.Spec.Template.Spec.RestartPolicy)
		}
		if e := env(c); e["DATABASE_URL"].ValueFrom == nil || e["DB_DRIVER"].Value != "postgres" {
			t.Errorf("%s: needs DB_DRIVER=postgres and DATABASE_URL from the Secret", o)
		}
	}
	for _, o := range r.objects {
		if o.hook && o.kind() != kindJob {
			t.Errorf("%s is a hook; only the migration Job should be", o)
		}
	}
}

// TestChartRefusesWrongValues proves that values.schema.json and the
// template checks stop an install with a message naming the value, and
// that the Knative validators run on the rendered objects.
func TestChartRefusesWrongValues(t *testing.T) {
	const canary = "canary-secret-value-7f3a"
	for _, c := range []struct{ name, values, want string }{
		{"unknown mode", "mode: serverless", "/mode"},
		{"misspelled key", "functions: {proxy: {minscale: 1}}", "minscale"},
		{"negative scale", "functions: {proxy: {minScale: -1}}", "/functions/proxy/minScale"},
		{"address not a prefix", "trustedProxies: {cidrs: [10.0.0.1]}", "/trustedProxies/cidrs/0"},
		{"host with a scheme", "host: https://llm.example.com", "/host"},
		{"root allowed", "securityContext: {runAsNonRoot: false}", "/securityContext/runAsNonRoot"},
		{"privilege escalation", "securityContext: {allowPrivilegeEscalation: true}", "/securityContext/allowPrivilegeEscalation"},
		{"unconfined seccomp", "securityContext: {seccompProfile: {type: Unconfined}}", "/securityContext/seccompProfile/type"},
		{"writable root", "securityContext: {readOnlyRootFilesystem: false}", "/securityContext/readOnlyRootFilesystem"},
		{"no secret name", "secrets: {existingSecret: ''}", "/secrets/existingSecret"},
		{"config not a string", "config: {LOG_LEVEL: [debug]}", "/config/LOG_LEVEL"},
		{"CPU target above 100", "server: {autoscaling: {targetCPUUtilizationPercentage: 150}}", "/server/autoscaling/targetCPUUtilizationPercentage"},
		{"image digest malformed", "functions: {proxy: {image: {digest: latest}}}", "/functions/proxy/image/digest"},
		{"event type unknown", "dispatchers: {file: {eventTypes: [request.completed]}}", "/dispatchers/file/eventTypes/0"},
		{"webhook without URL", "dispatchers: {webhook: {enabled: true}}", "dispatchers.webhook.endpoint"},
		{"Ingress in knative mode", "ingress: {enabled: true}", "ingress.enabled: an Ingress is for mode=deployment"},
		{"two in-process backends", "{mode: deployment, dispatchers: {lunary: {enabled: true}, helicone: {enabled: true}}}", "lunary and helicone are enabled"},
		{"autoscaler bounds", "{mode: deployment, server: {autoscaling: {minReplicas: 5, maxReplicas: 2}}}", "server.autoscaling.minReplicas (5) is above"},
		{"scale bounds", "functions: {proxy: {minScale: 5, maxScale: 2}}", "functions.proxy.minScale (5) is above"},
		{"variable the chart sets", "config: {DB_DRIVER: sqlite}", "config.DB_DRIVER: DB_DRIVER is set by the chart"},
		{"secret in config", "config: {MANAGEMENT_TOKEN: " + canary + "}", "config.MANAGEMENT_TOKEN: MANAGEMENT_TOKEN is a secret"},
		{"secret in extraEnv", "extraEnv: [{name: DATABASE_URL, value: " + canary + "}]", "extraEnv[DATABASE_URL].value: DATABASE_URL is a secret"},
		{"secret in a function's env", "functions: {proxy: {extraEnv: [{name: ENCRYPTION_KEY, value: " + canary + "}]}}", "functions.proxy.extraEnv[ENCRYPTION_KEY].value"},
		{"secret in the server's env", "{mode: deployment, server: {extraEnv: [{name: REDIS_PASSWORD, value: " + canary + "}]}}", "server.extraEnv[REDIS_PASSWORD].value"},
		{"secret in a backend's config", "dispatchers: {lunary: {config: {DISPATCHER_API_KEY: " + canary + "}}}", "dispatchers.lunary.config.DISPATCHER_API_KEY"},
		{"timeout above Knative's maximum", "functions: {proxy: {timeoutSeconds: 99999}}", "timeoutSeconds"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := render(t, values(t, c.values))
			if err == nil {
				t.Fatal("rendered; want an error")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not name %q", err, c.want)
			}
			if strings.Contains(err.Error(), canary) {
				t.Errorf("the error repeats the secret value: %v", err)
			}
		})
	}
}

// TestChartNotes checks what `helm install` prints: the URL, how to read the
// management token from its Secret, and a first request.
func TestChartNotes(t *testing.T) {
	for _, c := range []struct {
		name, values string
		want         []string
	}{
		{"knative", "", []string{
			"export LLMP=https://llm-proxy.example.com",
			"kubectl -n llm-proxy get secret llm-proxy-secrets -o jsonpath='{.data.MANAGEMENT_TOKEN}' | base64 -d",
			"curl -s -X POST $LLMP/manage/projects", "curl -s $LLMP/v1/chat/completions",
		}},
		{"knative without a route", "httpRoute: {enabled: false}", []string{"kubectl -n llm-proxy get ksvc"}},
		{"deployment with an Ingress", deploymentValues, []string{
			"export LLMP=http://llm.internal.example.org", "get secret core -o jsonpath='{.data.MANAGEMENT_TOKEN}'",
		}},
		{"deployment without a route", "{mode: deployment, httpRoute: {enabled: false}}", []string{
			"kubectl -n llm-proxy port-forward svc/llm-proxy 8080:80", "export LLMP=http://127.0.0.1:8080",
		}},
		{"own token secret", "secrets: {managementToken: {existingSecret: admin, key: token}}", []string{
			"get secret admin -o jsonpath='{.data.token}'",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			notes := mustRender(t, values(t, c.values)).notes
			for _, w := range c.want {
				if !strings.Contains(notes, w) {
					t.Errorf("NOTES lack %q:\n%s", w, notes)
				}
			}
		})
	}
}

// TestChartValuesTableIsCurrent keeps the chart README's values table in
// sync with values.yaml (and so every value documented).
func TestChartValuesTableIsCurrent(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(chartDir, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	vals, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := chartdoc.Replace(string(readme), vals)
	if err != nil {
		t.Fatal(err)
	}
	if want != string(readme) {
		t.Fatal("chart/README.md values table is out of date: run `cd knative && go run ./cmd/chartdoc`")
	}
}
