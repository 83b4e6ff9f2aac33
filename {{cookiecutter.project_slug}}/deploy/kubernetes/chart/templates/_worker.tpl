{{/* The worker: the backend's image running the background jobs (app/worker.py). */}}

{{/* Named after the release, never after the backend's full name: the two Deployments
     can never share a name, and a release name (53 characters at most) leaves room. */}}
{{- define "worker.fullname" -}}
{{- printf "%s-worker" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* `worker`, as the compose service: the scrape job and Loki's `service` label. */}}
{{- define "worker.selectorLabels" -}}
app.kubernetes.io/name: worker
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "worker.labels" -}}
{{ include "worker.selectorLabels" . }}
{{ include "backend.releaseLabels" . }}
{{- end }}

{{/* The backend's settings with the worker's own on top (worker.env wins). */}}
{{- define "worker.env" -}}
{{- $env := mergeOverwrite (deepCopy .Values.env) .Values.worker.env }}
{{- include "backend.env" (dict "Values" (dict "env" $env "envFromSecrets" .Values.envFromSecrets)) }}
{{- end }}
