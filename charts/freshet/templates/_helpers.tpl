{{/* The release's full name, at most 63 characters. */}}
{{- define "freshet.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "freshet.labels" -}}
app.kubernetes.io/name: freshet-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "freshet.selectorLabels" -}}
app.kubernetes.io/name: freshet-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "freshet.serviceAccountName" -}}
{{- default (include "freshet.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* Leader election: as set, else on with more than one replica. */}}
{{- define "freshet.leaderElection" -}}
{{- if kindIs "bool" .Values.leaderElection.enabled -}}
{{- .Values.leaderElection.enabled -}}
{{- else -}}
{{- gt (int .Values.replicaCount) 1 -}}
{{- end -}}
{{- end -}}

{{/* What the operator may do with the StreamsApps of a namespace (or all of them). */}}
{{- define "freshet.rules" -}}
- apiGroups: ["freshet.dev"]
  resources: ["streamsapps"]
  verbs: ["get", "list", "watch", "patch", "update"]
- apiGroups: ["freshet.dev"]
  resources: ["streamsapps/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: ["freshet.dev"]
  resources: ["streamsapps/finalizers"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch", "update"]
- apiGroups: [""]
  resources: ["configmaps", "services"]
  verbs: ["get", "list", "watch", "create", "patch", "update"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "list", "watch", "create", "patch", "update"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# The Secrets an app's spec.kafka names (its admin client's credentials, and their
# resourceVersions, which roll the pods): get only, never list or watch.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end -}}
