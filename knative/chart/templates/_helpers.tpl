{{/* Names. */}}
{{- define "llm-proxy.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llm-proxy.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "llm-proxy.brokerName" -}}
{{- default (include "llm-proxy.fullname" .) .Values.eventing.broker.name -}}
{{- end -}}

{{/* Labels: call with (dict "root" $ "component" "proxy"). */}}
{{- define "llm-proxy.labels" -}}
{{ include "llm-proxy.selectorLabels" . }}
app.kubernetes.io/part-of: llm-proxy
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "llm-proxy.selectorLabels" -}}
app.kubernetes.io/name: {{ include "llm-proxy.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* An image reference: call with (list $ .image) or (list $ .image $fallback). */}}
{{- define "llm-proxy.image" -}}
{{- $root := index . 0 -}}
{{- $img := index . 1 -}}
{{- $fallback := dict -}}
{{- if gt (len .) 2 }}{{ $fallback = index . 2 }}{{ end -}}
{{- $repo := $img.repository | default $fallback.repository -}}
{{- $digest := $img.digest | default "" -}}
{{- if and (not $img.repository) (not $digest) }}{{ $digest = $fallback.digest | default "" }}{{ end -}}
{{- if $digest -}}
{{- printf "%s@%s" $repo $digest -}}
{{- else -}}
{{- printf "%s:%s" $repo ($img.tag | default $fallback.tag | default $root.Values.image.tag | default $root.Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* One env entry from a Secret: call with (list $ "NAME" .Values.secrets.x optional). */}}
{{- define "llm-proxy.secretEnv" -}}
{{- $root := index . 0 -}}
{{- $ref := index . 2 -}}
- name: {{ index . 1 }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.existingSecret | default $root.Values.secrets.existingSecret }}
      key: {{ $ref.key }}
      {{- if index . 3 }}
      optional: true
      {{- end }}
{{- end -}}

{{/* Plain env entries from a map, sorted by name. */}}
{{- define "llm-proxy.mapEnv" -}}
{{- range $i, $k := keys . | sortAlpha }}
{{- if $i }}{{ "\n" }}{{ end -}}
- name: {{ $k }}
  value: {{ include "llm-proxy.envValue" (index $ $k) }}
{{- end }}
{{- end -}}

{{/* A value as an environment string: whole numbers without an exponent (YAML numbers arrive as floats). */}}
{{- define "llm-proxy.envValue" -}}
{{- if and (kindIs "float64" .) (eq (floor .) .) -}}
{{- int64 . | toString | quote -}}
{{- else -}}
{{- toString . | quote -}}
{{- end -}}
{{- end -}}

{{/* TRUSTED_PROXIES for the mode. */}}
{{- define "llm-proxy.trustedProxies" -}}
{{- $cidrs := list -}}
{{- if and .Values.trustedProxies.platform (eq .Values.mode "knative") -}}
{{- $cidrs = list "127.0.0.1/32" "::1/128" -}}
{{- end -}}
{{- join "," (concat $cidrs .Values.trustedProxies.cidrs | uniq) -}}
{{- end -}}

{{/*
The environment every workload shares: the database, Redis, the encryption keys, the
trusted proxies and the operator's config. Call with (dict "root" $ "management" bool).
*/}}
{{- define "llm-proxy.commonEnv" -}}
{{- $root := .root -}}
{{- $s := $root.Values.secrets -}}
- name: DB_DRIVER
  value: postgres
{{ include "llm-proxy.secretEnv" (list $root "DATABASE_URL" $s.databaseURL false) }}
{{ include "llm-proxy.secretEnv" (list $root "ENCRYPTION_KEY" $s.encryptionKey false) }}
{{ include "llm-proxy.secretEnv" (list $root "ENCRYPTION_KEY_PREVIOUS" $s.encryptionKeyPrevious true) }}
{{- if .management }}
{{ include "llm-proxy.secretEnv" (list $root "MANAGEMENT_TOKEN" $s.managementToken false) }}
{{- end }}
{{ include "llm-proxy.redisEnv" $root }}
{{ include "llm-proxy.baseEnv" $root }}
{{- end -}}

{{/* Redis: address (plain or from a Secret), database, password. */}}
{{- define "llm-proxy.redisEnv" -}}
{{- if .Values.redis.addr -}}
- name: REDIS_ADDR
  value: {{ .Values.redis.addr | quote }}
{{- else -}}
{{ include "llm-proxy.secretEnv" (list . "REDIS_ADDR" .Values.secrets.redisAddr false) }}
{{- end }}
- name: REDIS_DB
  value: {{ include "llm-proxy.envValue" .Values.redis.db }}
{{ include "llm-proxy.secretEnv" (list . "REDIS_PASSWORD" .Values.secrets.redisPassword true) }}
{{- end -}}

{{/* TRUSTED_PROXIES, the operator's config and extraEnv. */}}
{{- define "llm-proxy.baseEnv" -}}
- name: TRUSTED_PROXIES
  value: {{ include "llm-proxy.trustedProxies" . | quote }}
{{- with .Values.config }}
{{ include "llm-proxy.mapEnv" . }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
A dispatcher backend's selection, endpoint and key (not its config map): call with
(list $ "lunary" .Values.dispatchers.lunary).
*/}}
{{- define "llm-proxy.dispatcherEnv" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $b := index . 2 -}}
- name: DISPATCHER_SERVICE
  value: {{ $name }}
{{- if eq $name "file" }}
- name: DISPATCHER_ENDPOINT
  value: {{ $b.path | quote }}
{{- else if $b.endpoint }}
- name: DISPATCHER_ENDPOINT
  value: {{ $b.endpoint | quote }}
{{- end }}
{{- if $b.apiKey }}
{{ include "llm-proxy.secretEnv" (list $root "DISPATCHER_API_KEY" $b.apiKey false) }}
{{- end }}
{{- if $b.signingSecret }}
{{ include "llm-proxy.secretEnv" (list $root "DISPATCHER_WEBHOOK_SECRET" $b.signingSecret false) }}
{{- end }}
{{- end -}}

{{/* The directory of the file dispatcher's JSONL file. */}}
{{- define "llm-proxy.fileDir" -}}
{{- dir .Values.dispatchers.file.path -}}
{{- end -}}

{{/* Pod-level settings every workload shares. */}}
{{- define "llm-proxy.podCommon" -}}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .Values.serviceAccountName }}
serviceAccountName: {{ . }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The Secret the management token is read from. */}}
{{- define "llm-proxy.managementSecret" -}}
{{- .Values.secrets.managementToken.existingSecret | default .Values.secrets.existingSecret -}}
{{- end -}}

{{/* The public base URL. */}}
{{- define "llm-proxy.url" -}}
{{- printf "%s://%s" (ternary "https" "http" .Values.https) .Values.host -}}
{{- end -}}
