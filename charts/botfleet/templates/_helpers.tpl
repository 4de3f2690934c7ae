{{/*
Chart name, truncated to the 63 characters a label value allows.
*/}}
{{- define "botfleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Fully qualified name of the operator's objects: "<release>-botfleet-operator", or the release
name alone when it already contains the chart name.
*/}}
{{- define "botfleet.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s-operator" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "botfleet.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels that select the operator's pods. Never change them in an upgrade: a Deployment's
selector is immutable.
*/}}
{{- define "botfleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "botfleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "botfleet.labels" -}}
helm.sh/chart: {{ include "botfleet.chart" . }}
{{ include "botfleet.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: botfleet
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "botfleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "botfleet.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
Name of the Lease the operator replicas elect their leader on.
*/}}
{{- define "botfleet.leaseName" -}}
{{- default (include "botfleet.fullname" .) .Values.operator.leaderElection.leaseName -}}
{{- end -}}

{{/*
"repository:tag" or "repository@digest" of an image value ({repository, tag, digest}); the
tag defaults to the chart's appVersion.
*/}}
{{- define "botfleet.image" -}}
{{- $image := index . 0 -}}
{{- $root := index . 1 -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $image.repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $image.repository (default $root.Chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
One of botfleet's two images: (list . "botfleet-bot" digest) is <image.registry>/botfleet-bot with
image.tag (default: the chart's appVersion, the version scripts/images.sh tags) or the digest.
For the default values the bot image is the operator's DEFAULT_BOT_IMAGE (a test checks it).
*/}}
{{- define "botfleet.ownImage" -}}
{{- $root := index . 0 -}}
{{- $repository := printf "%s/%s" $root.Values.image.registry (index . 1) -}}
{{- include "botfleet.image" (list (dict "repository" $repository "tag" $root.Values.image.tag "digest" (index . 2)) $root) -}}
{{- end -}}

{{/*
The runbook link of one of the chart's own alerts (anchors are the alert name, lowercased).
*/}}
{{- define "botfleet.runbookUrl" -}}
{{- $root := index . 0 -}}
{{- $alert := index . 1 -}}
{{- printf "%s#%s" (trimSuffix "/" $root.Values.prometheusRule.runbookBaseUrl) (lower $alert) -}}
{{- end -}}

{{/*
PromQL selector of the operator's own scrape target: the job label Prometheus sets from the
ServiceMonitor is the Service name.
*/}}
{{- define "botfleet.metricsSelector" -}}
{{- printf "job=%q, namespace=%q" (include "botfleet.fullname" .) .Release.Namespace -}}
{{- end -}}
