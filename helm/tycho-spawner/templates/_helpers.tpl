{{/*
  Object names: computed here once, used by every template and handed to the hub's config
  (values.json "names"), which never builds a name itself.

  One base, the release name cut at 53 characters, and a fixed suffix per object. The longest
  name, "<base>-proxy-api", is then at most 63 characters, the limit of a Service name (a DNS
  label); every other name is shorter. Helm refuses release names over 53 characters, so the
  cut only guards against a chart rendered outside `helm install`.
*/}}
{{- define "tycho.fullname" -}}
{{- .Release.Name | trunc 53 | trimSuffix "-" -}}
{{- end -}}

{{/* Hub: Deployment, Service, ServiceAccount, Role, RoleBinding, NetworkPolicy. */}}
{{- define "tycho.hub.fullname" -}}
{{- include "tycho.fullname" . }}-hub
{{- end -}}

{{/* Proxy: Deployment, NetworkPolicy. */}}
{{- define "tycho.proxy.fullname" -}}
{{- include "tycho.fullname" . }}-proxy
{{- end -}}

{{/* The proxy's API Service (the hub adds and removes routes through it). */}}
{{- define "tycho.proxy-api.fullname" -}}
{{- include "tycho.fullname" . }}-proxy-api
{{- end -}}

{{/* The proxy's public Service (and the Ingress's backend). */}}
{{- define "tycho.public.fullname" -}}
{{- include "tycho.fullname" . }}-public
{{- end -}}

{{/* The claim of the hub's sqlite database (hub.db.type sqlite-pvc, unless hub.db.pvcName). */}}
{{- define "tycho.hub-db.fullname" -}}
{{- include "tycho.fullname" . }}-hub-db
{{- end -}}

{{/* The hub's ConfigMap (jupyterhub_config.py, values.json). */}}
{{- define "tycho.config.fullname" -}}
{{- include "tycho.fullname" . }}-config
{{- end -}}

{{/* The ConfigMap of the catalog (catalog.yaml, followed by the running hub). */}}
{{- define "tycho.catalog.fullname" -}}
{{- include "tycho.fullname" . }}-catalog
{{- end -}}

{{/* Where the hub pod mounts it (a directory: the kubelet updates its files in place). */}}
{{- define "tycho.catalog.mountPath" -}}
/etc/tycho-spawner/catalog
{{- end -}}

{{/* The Secret with the cookie secret and the proxy's token. */}}
{{- define "tycho.secret.fullname" -}}
{{- include "tycho.fullname" . }}-secret
{{- end -}}

{{/* Every name above, as JSON (values.json "names"; the hub's config reads hub and proxyApi). */}}
{{- define "tycho.names" -}}
{{- dict
    "hub" (include "tycho.hub.fullname" .)
    "proxy" (include "tycho.proxy.fullname" .)
    "proxyApi" (include "tycho.proxy-api.fullname" .)
    "public" (include "tycho.public.fullname" .)
    "config" (include "tycho.config.fullname" .)
    "catalog" (include "tycho.catalog.fullname" .)
    "secret" (include "tycho.secret.fullname" .)
    "hubDb" (include "tycho.hub-db.fullname" .)
    "ingress" (include "tycho.fullname" .)
  | toJson -}}
{{- end -}}

{{- define "tycho.labels" -}}
app.kubernetes.io/name: tycho-spawner
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
{{- end -}}

{{/* component: hub / proxy are what each user server's NetworkPolicy admits (z2jh's labels). */}}
{{- define "tycho.selector" -}}
app.kubernetes.io/name: tycho-spawner
app.kubernetes.io/instance: {{ .root.Release.Name | quote }}
component: {{ .component }}
{{- end -}}

{{- define "tycho.image" -}}
{{ printf "%s:%s" .name .tag | quote }}
{{- end -}}
