{{/* The release's full name, used as the prefix of every object. */}}
{{- define "stolon-rs.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The stolon cluster name. */}}
{{- define "stolon-rs.clusterName" -}}
{{- default (include "stolon-rs.fullname" .) .Values.clusterName -}}
{{- end -}}

{{- define "stolon-rs.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component (the argument is a dict with root and component). */}}
{{- define "stolon-rs.selector" -}}
app.kubernetes.io/instance: {{ .root.Release.Name }}
component: stolon-{{ .component }}
stolon-cluster: {{ include "stolon-rs.clusterName" .root }}
{{- end -}}

{{- define "stolon-rs.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "stolon-rs.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "stolon-rs.superuserSecretName" -}}
{{- default (printf "%s-superuser" (include "stolon-rs.fullname" .)) .Values.superuserSecret.name -}}
{{- end -}}

{{- define "stolon-rs.replicationSecretName" -}}
{{- default (printf "%s-replication" (include "stolon-rs.fullname" .)) .Values.replicationSecret.name -}}
{{- end -}}

{{/* The store flags as environment variables with a component prefix (the argument: dict root, prefix). */}}
{{- define "stolon-rs.storeEnv" -}}
{{- $v := .root.Values -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: {{ .prefix }}_CLUSTER_NAME
  value: {{ include "stolon-rs.clusterName" .root | quote }}
- name: {{ .prefix }}_STORE_BACKEND
  value: {{ $v.store.backend | quote }}
{{- if eq $v.store.backend "kubernetes" }}
- name: {{ .prefix }}_KUBE_RESOURCE_KIND
  value: {{ $v.store.kubeResourceKind | quote }}
{{- else }}
- name: {{ .prefix }}_STORE_ENDPOINTS
  value: {{ required "store.endpoints is required with an etcd or consul backend" $v.store.endpoints | quote }}
{{- end }}
- name: {{ .prefix }}_METRICS_LISTEN_ADDRESS
  value: {{ printf "0.0.0.0:%v" $v.ports.metrics.containerPort | quote }}
{{- if $v.debug }}
- name: {{ .prefix }}_LOG_LEVEL
  value: debug
{{- end }}
{{- end -}}

{{/* A generated password, or the one already in the release's Secret (kept across upgrades). */}}
{{- define "stolon-rs.password" -}}
{{- $existing := lookup "v1" "Secret" .root.Release.Namespace .secret -}}
{{- if .value -}}
{{- .value | b64enc -}}
{{- else if and $existing (index $existing.data .key) -}}
{{- index $existing.data .key -}}
{{- else -}}
{{- randAlphaNum 32 | b64enc -}}
{{- end -}}
{{- end -}}
