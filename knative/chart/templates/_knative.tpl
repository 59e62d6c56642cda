{{/*
A function as a Knative Service. Call with a dict:
  root       $
  name       the suffix of its name (proxy, dispatcher-file…)
  component  app.kubernetes.io/component
  target     FUNCTION_TARGET
  fn         its values (functions.<fn>)
  env        its own environment entries (YAML list), beside the shared ones
  shared     "all" (database, Redis, keys, management token), "data" (the same without the
             management token) or "redis" (Redis only: the dispatcher)
  publishes  whether it emits events (LLM_PROXY_EVENT_BUS=http; K_SINK from its SinkBinding)
  fileDir    a directory to mount an emptyDir at (the file dispatcher), or ""
*/}}
{{- define "llm-proxy.knativeService" -}}
{{- $root := .root -}}
{{- $fn := .fn -}}
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: {{ include "llm-proxy.fullname" $root }}-{{ .name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "llm-proxy.labels" (dict "root" $root "component" .component) | nindent 4 }}
spec:
  template:
    metadata:
      labels:
        {{- include "llm-proxy.selectorLabels" (dict "root" $root "component" .component) | nindent 8 }}
      annotations:
        autoscaling.knative.dev/min-scale: {{ $fn.minScale | toString | quote }}
        autoscaling.knative.dev/max-scale: {{ $fn.maxScale | toString | quote }}
        {{- if $fn.target }}
        autoscaling.knative.dev/metric: concurrency
        autoscaling.knative.dev/target: {{ $fn.target | toString | quote }}
        {{- end }}
        {{- with $fn.scaleDownDelay }}
        autoscaling.knative.dev/scale-down-delay: {{ . | quote }}
        {{- end }}
    spec:
      {{- include "llm-proxy.podCommon" $root | nindent 6 }}
      containerConcurrency: {{ $fn.containerConcurrency }}
      timeoutSeconds: {{ $fn.timeoutSeconds }}
      {{- with $fn.responseStartTimeoutSeconds }}
      responseStartTimeoutSeconds: {{ . }}
      {{- end }}
      {{- with $fn.idleTimeoutSeconds }}
      idleTimeoutSeconds: {{ . }}
      {{- end }}
      {{- if .fileDir }}
      volumes:
        - name: events
          emptyDir: {}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "llm-proxy.image" (list $root $fn.image) }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          ports:
            - name: http1
              containerPort: 8080
          env:
            - name: FUNCTION_TARGET
              value: {{ .target }}
            - name: SHUTDOWN_GRACE_PERIOD
              value: {{ printf "%ds" (int $fn.timeoutSeconds) }}
            {{- if .publishes }}
            - name: LLM_PROXY_EVENT_BUS
              value: http
            {{- end }}
            {{- with .env }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- if eq .shared "redis" }}
            {{- include "llm-proxy.redisEnv" $root | nindent 12 }}
            {{- include "llm-proxy.baseEnv" $root | nindent 12 }}
            {{- else }}
            {{- include "llm-proxy.commonEnv" (dict "root" $root "management" (eq .shared "all")) | nindent 12 }}
            {{- end }}
            {{- with $fn.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          readinessProbe:
            httpGet:
              path: /_/ready
          livenessProbe:
            httpGet:
              path: /_/health
            periodSeconds: 10
          {{- with $fn.resources }}
          resources:
            {{- toYaml . | nindent 12 }}
          {{- end }}
          {{- if .fileDir }}
          volumeMounts:
            - name: events
              mountPath: {{ .fileDir }}
          {{- end }}
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
{{- end -}}

{{/* A SinkBinding giving a function K_SINK, the Broker's URL: call with (list $ "proxy"). */}}
{{- define "llm-proxy.sinkBinding" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
apiVersion: sources.knative.dev/v1
kind: SinkBinding
metadata:
  name: {{ include "llm-proxy.fullname" $root }}-{{ $name }}-events
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "llm-proxy.labels" (dict "root" $root "component" $name) | nindent 4 }}
spec:
  subject:
    apiVersion: serving.knative.dev/v1
    kind: Service
    name: {{ include "llm-proxy.fullname" $root }}-{{ $name }}
  sink:
    ref:
      apiVersion: eventing.knative.dev/v1
      kind: Broker
      name: {{ include "llm-proxy.brokerName" $root }}
{{- end -}}
