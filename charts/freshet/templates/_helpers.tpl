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

{{/* What the operator may do with the StreamsApps of a namespace (or all of them), verb by verb
(docs/operator-guide.md#rbac has the same table). Objects are written by server-side apply, a
PATCH that creates the object when it is missing (so create as well); nothing is ever PUT
(update) but the finalizers subresource. */}}
{{- define "freshet.rules" -}}
# list, watch: the controller's cache of StreamsApps, and who owns an applicationId (a list
# from the apiserver for a new app); patch: the finalizer freshet.dev/cleanup added and removed.
- apiGroups: ["freshet.dev"]
  resources: ["streamsapps"]
  verbs: ["list", "watch", "patch"]
# patch: conditions and status, by server-side apply.
- apiGroups: ["freshet.dev"]
  resources: ["streamsapps/status"]
  verbs: ["patch"]
# update: owner references with blockOwnerDeletion on the objects it makes (the apiserver asks
# for it on the owner's finalizers).
- apiGroups: ["freshet.dev"]
  resources: ["streamsapps/finalizers"]
  verbs: ["update"]
# list, watch: the controller watches the StatefulSets it owns; get: the running one (replicas,
# held topology changes, who made it); create, patch: apply, and the scale to 0 before a reset.
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch"]
# get: whether one exists that it did not make; create, patch: apply app.yaml and the Service.
- apiGroups: [""]
  resources: ["configmaps", "services"]
  verbs: ["get", "create", "patch"]
# get, create, patch: as for the Service.
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "create", "patch"]
# list: termination messages (lastProcessingError), and whether the pods are gone before a reset.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list"]
# create, patch: Events (a repeated Event is patched with its count).
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
# The Secrets an app's spec.kafka names (its admin client's credentials, and their
# resourceVersions, which roll the pods): get only, never list or watch.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end -}}
