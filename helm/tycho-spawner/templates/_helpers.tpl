{{/* Names and labels shared by every object of the release. */}}
{{- define "tycho.name" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
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
