{{/* Names and labels shared by every object of the chart. */}}

{{- define "backend.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release name, with the chart's name appended unless it is in there already. */}}
{{- define "backend.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "backend.selectorLabels" -}}
app.kubernetes.io/name: {{ include "backend.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* What every object of the release carries, besides its selector labels. */}}
{{- define "backend.releaseLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "backend.labels" -}}
{{ include "backend.selectorLabels" . }}
{{ include "backend.releaseLabels" . }}
{{- end }}

{{/* The image, never `latest`: a tag is required. */}}
{{- define "backend.image" -}}
{{- $tag := required "image.tag is required" .Values.image.tag | toString }}
{{- if eq $tag "latest" }}
{{- fail "image.tag: name a version, never latest" }}
{{- end }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}

{{/* The backend's settings (docs/contract.md): plain values, then those read from Secrets. */}}
{{- define "backend.env" -}}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- range $source, $from := .Values.envFromSecrets }}
{{- $secret := required (printf "envFromSecrets.%s.secretName is required" $source) $from.secretName }}
{{- range $name, $key := $from.keys }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $key }}
{{- end }}
{{- end }}
{{- end }}

{{/* What the restricted Pod Security Standard asks of a pod and of each container. */}}
{{- define "backend.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.securityContext.runAsUser }}
runAsGroup: {{ .Values.securityContext.runAsGroup }}
fsGroup: {{ .Values.securityContext.runAsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "backend.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The pod spec every serving Deployment (the backend's, the worker's) shares: its account,
     pull secrets, security context, /tmp volume and spread over nodes. Takes `root` (the
     chart's context) and `selectorLabels` (the Deployment's own, whose replicas it spreads). */}}
{{- define "backend.servingPodSpec" -}}
serviceAccountName: {{ include "backend.fullname" .root }}
automountServiceAccountToken: false
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- include "backend.podSecurityContext" .root | nindent 2 }}
# Replicas on different nodes where the cluster has several.
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: kubernetes.io/hostname
    whenUnsatisfiable: ScheduleAnyway
    labelSelector:
      matchLabels:
        {{- .selectorLabels | nindent 8 }}
volumes:
  # The root filesystem is read-only; Python and its libraries may still need /tmp.
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
{{- end }}

{{/* The health contract (docs/contract.md) as probes of the container's `http` port: startup
     and live never check a dependency; ready does, so a pod whose dependencies fail leaves
     the Service without restarting. */}}
{{- define "backend.healthProbes" -}}
startupProbe:
  httpGet:
    path: /health/startup
    port: http
  {{- toYaml .Values.probes.startup | nindent 2 }}
livenessProbe:
  httpGet:
    path: /health/live
    port: http
  {{- toYaml .Values.probes.liveness | nindent 2 }}
readinessProbe:
  httpGet:
    path: /health/ready
    port: http
  {{- toYaml .Values.probes.readiness | nindent 2 }}
{{- end }}
