{{/*
The customer portal (apps/portal): its own templates, since it needs no Kafka and serves HTTP
next to its gRPC PortalService. Rendered only when portal.enabled.
*/}}

{{- define "hookline.portal.image" -}}
{{- $p := .Values.portal }}
{{- $repository := $p.image.repository | default (printf "%s/portal" .Values.image.repository) }}
{{- $tag := $p.image.tag | default .Values.image.tag | default .Chart.AppVersion }}
{{- printf "%s:%s" $repository (toString $tag) }}
{{- end }}

{{/* The Secret and key holding PORTAL_SIGNING_KEYS. */}}
{{- define "hookline.portal.signingSecret" -}}
{{- $p := .Values.portal }}
{{- if $p.existingSecret -}}
name: {{ $p.existingSecret }}
key: {{ $p.existingSecretKey }}
{{- else -}}
name: {{ printf "%s-portal" (include "hookline.fullname" .) | trunc 63 | trimSuffix "-" }}
key: portal-signing-keys
{{- end }}
{{- end }}

{{/* Fails the install with a readable message on inconsistent portal values. */}}
{{- define "hookline.portal.validate" -}}
{{- $p := .Values.portal }}
{{- if $p.enabled }}
{{- if not (or $p.existingSecret $p.signingKeys) }}
{{- fail "portal.enabled: set portal.existingSecret (recommended) or portal.signingKeys: the portal signs its one-time links with them" }}
{{- end }}
{{- if not $p.publicUrl }}
{{- fail "portal.enabled: set portal.publicUrl, the https URL browsers reach the portal at (one-time links start with it)" }}
{{- end }}
{{- if and $p.ingress.enabled (not $p.ingress.hosts) }}
{{- fail "portal.ingress.enabled: list at least one host in portal.ingress.hosts" }}
{{- end }}
{{- end }}
{{- end }}
