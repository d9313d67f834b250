{{/*
Chart name, overridable with nameOverride.
Truncated to 63 characters because Kubernetes names and label values are limited to 63
(DNS-1123 labels).
*/}}
{{- define "overnight.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name, the prefix of every object name.
Truncated to 63 characters because some Kubernetes name fields are limited to that length
(DNS-1123 labels), and the trailing "-" a cut can leave is removed. Components append
suffixes ("-dispatcher", "-redis"), so keep release names short (≤ 40 characters).
If the release name contains the chart name it is used as the full name.
*/}}
{{- define "overnight.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
"<fullname>-<component>", also cut to 63 characters.
Usage: include "overnight.componentName" (dict "root" $ "component" "redis")
*/}}
{{- define "overnight.componentName" -}}
{{- printf "%s-%s" (include "overnight.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Chart name and version, as used by the helm.sh/chart label.
*/}}
{{- define "overnight.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: stable for the life of a release (Deployment selectors are immutable).
Usage: include "overnight.selectorLabels" (dict "root" $ "component" "ingest")
*/}}
{{- define "overnight.selectorLabels" -}}
app.kubernetes.io/name: {{ include "overnight.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Common labels: selector labels plus chart, version and manager.
Usage: include "overnight.labels" (dict "root" $ "component" "ingest")
*/}}
{{- define "overnight.labels" -}}
helm.sh/chart: {{ include "overnight.chart" .root }}
{{ include "overnight.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: overnight
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Image reference of an overnight component: [registry/]repository:tag, tag defaulting to
the chart's appVersion.
Usage: include "overnight.image" (dict "root" $ "image" .Values.ingest.image)
*/}}
{{- define "overnight.image" -}}
{{- $tag := default .root.Chart.AppVersion .root.Values.image.tag }}
{{- if .root.Values.image.registry }}
{{- printf "%s/%s:%s" .root.Values.image.registry .image.repository $tag }}
{{- else }}
{{- printf "%s:%s" .image.repository $tag }}
{{- end }}
{{- end }}

{{/* Name of the dispatcher's ServiceAccount. */}}
{{- define "overnight.dispatcherServiceAccount" -}}
{{- if .Values.dispatcher.serviceAccount.create }}
{{- default (include "overnight.componentName" (dict "root" . "component" "dispatcher")) .Values.dispatcher.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.dispatcher.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the image Jobs' ServiceAccount (no API rights, token never mounted). */}}
{{- define "overnight.jobServiceAccount" -}}
{{- include "overnight.componentName" (dict "root" . "component" "job") }}
{{- end }}

{{/* Secret the chart creates for values given inline (api token, passwords, keys). */}}
{{- define "overnight.secretName" -}}
{{- include "overnight.fullname" . }}
{{- end }}

{{/* Host of the built-in Redis / MinIO Services. */}}
{{- define "overnight.redisHost" -}}
{{- include "overnight.componentName" (dict "root" . "component" "redis") }}
{{- end }}
{{- define "overnight.minioHost" -}}
{{- include "overnight.componentName" (dict "root" . "component" "minio") }}
{{- end }}

{{/*
Secret-backed settings as a YAML list of {name, secret, key}. Rendered as secretKeyRef env
in Deployments (overnight.env) and passed to the dispatcher as JSON (OVERNIGHT_JOB_SECRET_ENV)
so image Jobs get exactly the same variables. Fails with a clear message when a required
secret is neither given inline nor as an existing Secret.
*/}}
{{- define "overnight.secretRefs" -}}
{{- $own := include "overnight.secretName" . }}
{{- if not (or .Values.auth.apiToken .Values.auth.existingSecret) }}
{{- fail "auth.apiToken or auth.existingSecret is required (the bearer token of the ingest API)" }}
{{- end }}
- name: OVERNIGHT_API_TOKEN
  secret: {{ default $own .Values.auth.existingSecret }}
  key: {{ .Values.auth.apiTokenKey }}
{{- if .Values.redis.enabled }}
{{- if not (or .Values.redis.auth.password .Values.redis.auth.existingSecret) }}
{{- fail "redis.auth.password or redis.auth.existingSecret is required with redis.enabled" }}
{{- end }}
- name: OVERNIGHT_REDIS_PASSWORD
  secret: {{ default $own .Values.redis.auth.existingSecret }}
  key: {{ .Values.redis.auth.passwordKey }}
{{- else }}
{{- if not (or .Values.externalRedis.url .Values.externalRedis.existingSecret) }}
{{- fail "externalRedis.url or externalRedis.existingSecret is required with redis.enabled=false" }}
{{- end }}
- name: OVERNIGHT_REDIS_URL
  secret: {{ default $own .Values.externalRedis.existingSecret }}
  key: {{ .Values.externalRedis.urlKey }}
{{- end }}
{{- if .Values.minio.enabled }}
{{- if not (or .Values.minio.auth.rootPassword .Values.minio.auth.existingSecret) }}
{{- fail "minio.auth.rootPassword or minio.auth.existingSecret is required with minio.enabled" }}
{{- end }}
- name: OVERNIGHT_S3_ACCESS_KEY
  secret: {{ default $own .Values.minio.auth.existingSecret }}
  key: {{ .Values.minio.auth.rootUserKey }}
- name: OVERNIGHT_S3_SECRET_KEY
  secret: {{ default $own .Values.minio.auth.existingSecret }}
  key: {{ .Values.minio.auth.rootPasswordKey }}
{{- else if or .Values.externalS3.existingSecret .Values.externalS3.accessKey }}
- name: OVERNIGHT_S3_ACCESS_KEY
  secret: {{ default $own .Values.externalS3.existingSecret }}
  key: {{ .Values.externalS3.accessKeyKey }}
- name: OVERNIGHT_S3_SECRET_KEY
  secret: {{ default $own .Values.externalS3.existingSecret }}
  key: {{ .Values.externalS3.secretKeyKey }}
{{- end }}
{{- end }}

{{/*
Plain env that must come after the secret env because it refers to it with $(NAME):
the built-in Redis URL carries the password. HOME=/tmp because the root fs is read-only.
Rendered as a YAML map.
*/}}
{{- define "overnight.plainEnv" -}}
{{- if .Values.redis.enabled }}
OVERNIGHT_REDIS_URL: {{ printf "redis://:$(OVERNIGHT_REDIS_PASSWORD)@%s:6379/0" (include "overnight.redisHost" .) | quote }}
{{- end }}
{{- end }}

{{/*
The environment of every overnight container: the ConfigMap, the secret keys, then the
plain env (order matters for $(NAME) references).
*/}}
{{- define "overnight.env" -}}
envFrom:
  - configMapRef:
      name: {{ include "overnight.fullname" . }}
env:
{{- range (include "overnight.secretRefs" . | fromYamlArray) }}
  - name: {{ .name }}
    valueFrom:
      secretKeyRef:
        name: {{ .secret }}
        key: {{ .key }}
{{- end }}
{{- range $name, $value := (include "overnight.plainEnv" . | fromYaml) }}
  - name: {{ $name }}
    value: {{ $value | quote }}
{{- end }}
  - name: HOME
    value: /tmp
{{- range $name, $value := .Values.settings.extraEnv }}
  - name: {{ $name }}
    value: {{ $value | quote }}
{{- end }}
{{- end }}

{{/* The NAS volume (a YAML list with zero or one Volume). */}}
{{- define "overnight.nasVolumes" -}}
{{- if .Values.nas.enabled }}
{{- if eq .Values.nas.type "pvc" }}
- name: nas
  persistentVolumeClaim:
    claimName: {{ default (include "overnight.componentName" (dict "root" . "component" "nas")) .Values.nas.pvc.existingClaim }}
    readOnly: true
{{- else if eq .Values.nas.type "nfs" }}
{{- if not (and .Values.nas.nfs.server .Values.nas.nfs.path) }}
{{- fail "nas.nfs.server and nas.nfs.path are required with nas.type=nfs" }}
{{- end }}
- name: nas
  nfs:
    server: {{ .Values.nas.nfs.server }}
    path: {{ .Values.nas.nfs.path }}
    readOnly: true
{{- else if eq .Values.nas.type "hostPath" }}
{{- if not .Values.nas.hostPath.path }}
{{- fail "nas.hostPath.path is required with nas.type=hostPath" }}
{{- end }}
- name: nas
  hostPath:
    path: {{ .Values.nas.hostPath.path }}
    type: Directory
{{- end }}
{{- end }}
{{- end }}

{{/* The NAS mount, read-only (a YAML list with zero or one VolumeMount). */}}
{{- define "overnight.nasMounts" -}}
{{- if .Values.nas.enabled }}
- name: nas
  mountPath: {{ .Values.nas.mountPath }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
Volumes of an overnight pod: /tmp (the root fs is read-only) and, if asked, the NAS.
Usage: include "overnight.volumes" (dict "root" $ "nas" true)
*/}}
{{- define "overnight.volumes" -}}
volumes:
  - name: tmp
    emptyDir: {}
{{- if .nas }}
{{- with include "overnight.nasVolumes" .root }}
{{ . | trim | indent 2 }}
{{- end }}
{{- end }}
{{- end }}
{{- define "overnight.volumeMounts" -}}
volumeMounts:
  - name: tmp
    mountPath: /tmp
{{- if .nas }}
{{- with include "overnight.nasMounts" .root }}
{{ . | trim | indent 2 }}
{{- end }}
{{- end }}
{{- end }}

{{/* Pull secrets, pod security context (shared by every overnight pod spec). */}}
{{- define "overnight.podCommon" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Scheduling of a pod: node selector, tolerations, affinity; GPU pool settings merged in when
gpu is true and gpu.enabled.
Usage: include "overnight.scheduling" (dict "root" $ "values" .Values.ingest "gpu" false)
*/}}
{{- define "overnight.scheduling" -}}
{{- $gpu := and .gpu .root.Values.gpu.enabled }}
{{- $nodeSelector := .values.nodeSelector | default dict }}
{{- $tolerations := .values.tolerations | default list }}
{{- if $gpu }}
{{- $nodeSelector = merge (deepCopy $nodeSelector) (.root.Values.gpu.nodeSelector | default dict) }}
{{- $tolerations = concat $tolerations (.root.Values.gpu.tolerations | default list) }}
{{- end }}
{{- with $nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Resources of a container; adds the GPU limit when gpu is true and gpu.enabled.
Usage: include "overnight.resources" (dict "root" $ "resources" .Values.ingest.resources "gpu" false)
*/}}
{{- define "overnight.resources" -}}
{{- $resources := deepCopy (.resources | default dict) }}
{{- if and .gpu .root.Values.gpu.enabled }}
{{- $limits := $resources.limits | default dict }}
{{- $_ := set $limits .root.Values.gpu.resourceName (toString .root.Values.gpu.count) }}
{{- $_ := set $resources "limits" $limits }}
{{- end -}}
resources:
  {{- toYaml $resources | nindent 2 }}
{{- end }}

{{/*
Readiness/liveness of a worker-like process with no HTTP port: Redis must answer (the
process cannot do anything without its queue).
*/}}
{{- define "overnight.redisProbes" -}}
readinessProbe:
  exec:
    command:
      - python
      - -c
      - "import os, redis; redis.Redis.from_url(os.environ['OVERNIGHT_REDIS_URL'], socket_timeout=3).ping()"
  initialDelaySeconds: 5
  periodSeconds: 30
  timeoutSeconds: 10
  failureThreshold: 3
livenessProbe:
  exec:
    command:
      - python
      - -c
      - "import os, redis; redis.Redis.from_url(os.environ['OVERNIGHT_REDIS_URL'], socket_timeout=3).ping()"
  initialDelaySeconds: 30
  periodSeconds: 60
  timeoutSeconds: 10
  failureThreshold: 5
{{- end }}

{{/* Is the per-image Job backend (dispatcher) on? */}}
{{- define "overnight.kubernetesBackend" -}}
{{- if eq .Values.settings.backend "kubernetes" }}true{{ end }}
{{- end }}
