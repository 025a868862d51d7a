{{/*
Production access, in one place: gRPC TLS / mutual TLS from per-service Secrets, the caller
permissions policy (a ConfigMap), Kafka TLS and SASL, and MongoDB's CA. _component.tpl includes
these at fixed points; docs/deploy.md "Production access" explains the values.
*/}}

{{- define "hookline.grpcTlsSecretName" -}}
{{- $key := include "hookline.valuesKey" .service }}
{{- (index .root.Values.grpc.tls.secretNames $key) | default (printf "%s-grpc-tls" (include "hookline.componentName" .)) }}
{{- end }}

{{- define "hookline.permissionsName" -}}
{{- printf "%s-grpc-permissions" (include "hookline.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The port probes use: the plaintext health-only port while TLS is on (kubelet probes cannot do TLS). */}}
{{- define "hookline.probePort" -}}
{{- $svc := index .root.Values (include "hookline.valuesKey" .service) }}
{{- if .root.Values.grpc.tls.enabled }}{{ int .root.Values.grpc.tls.healthPort }}{{ else }}{{ int $svc.port }}{{ end }}
{{- end }}

{{/* ConfigMap entries (indented by the caller). */}}
{{- define "hookline.accessConfig" -}}
{{- $v := .root.Values }}
{{- if $v.grpc.tls.enabled }}
GRPC_TLS_CERT_FILE: /etc/hookline/grpc-tls/tls.crt
GRPC_TLS_KEY_FILE: /etc/hookline/grpc-tls/tls.key
{{- if $v.grpc.tls.mutual }}
GRPC_TLS_CLIENT_CA_FILE: /etc/hookline/grpc-tls/ca.crt
{{- end }}
GRPC_TLS_RELOAD_SECONDS: {{ include "hookline.envString" $v.grpc.tls.reloadSeconds | quote }}
GRPC_HEALTH_PORT: {{ include "hookline.envString" $v.grpc.tls.healthPort | quote }}
{{- if ne .service "endpoint-registry" }}
REGISTRY_TLS_CA_FILE: /etc/hookline/grpc-tls/ca.crt
{{- if $v.grpc.tls.mutual }}
# This service's own certificate is its identity towards endpoint-registry.
REGISTRY_TLS_CERT_FILE: /etc/hookline/grpc-tls/tls.crt
REGISTRY_TLS_KEY_FILE: /etc/hookline/grpc-tls/tls.key
{{- end }}
{{- end }}
{{- end }}
{{- if $v.grpc.permissions.enabled }}
GRPC_PERMISSIONS_FILE: /etc/hookline/grpc-permissions/permissions.json
{{- end }}
{{- with $v.kafka.tls }}
{{- if .enabled }}
KAFKA_TLS: "true"
{{- if .existingSecret }}
{{- if .caKey }}
KAFKA_TLS_CA_FILE: /etc/hookline/kafka-tls/ca.crt
{{- end }}
{{- if .certKey }}
KAFKA_TLS_CERT_FILE: /etc/hookline/kafka-tls/tls.crt
KAFKA_TLS_KEY_FILE: /etc/hookline/kafka-tls/tls.key
{{- end }}
{{- end }}
{{- with .serverName }}
KAFKA_TLS_SERVER_NAME: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- with $v.kafka.sasl }}
{{- if .mechanism }}
KAFKA_SASL_MECHANISM: {{ .mechanism | quote }}
KAFKA_SASL_USERNAME_FILE: /etc/hookline/kafka-sasl/username
KAFKA_SASL_PASSWORD_FILE: /etc/hookline/kafka-sasl/password
{{- end }}
{{- end }}
{{- end }}

{{/* Extra container ports. */}}
{{- define "hookline.accessPorts" -}}
{{- if .root.Values.grpc.tls.enabled }}
- name: health
  containerPort: {{ int .root.Values.grpc.tls.healthPort }}
  protocol: TCP
{{- end }}
{{- end }}

{{/* Extra volumeMounts. */}}
{{- define "hookline.accessVolumeMounts" -}}
{{- $v := .root.Values }}
{{- if $v.grpc.tls.enabled }}
- name: grpc-tls
  mountPath: /etc/hookline/grpc-tls
  readOnly: true
{{- end }}
{{- if $v.grpc.permissions.enabled }}
- name: grpc-permissions
  mountPath: /etc/hookline/grpc-permissions
  readOnly: true
{{- end }}
{{- if and $v.kafka.tls.enabled $v.kafka.tls.existingSecret }}
- name: kafka-tls
  mountPath: /etc/hookline/kafka-tls
  readOnly: true
{{- end }}
{{- if $v.kafka.sasl.mechanism }}
- name: kafka-sasl
  mountPath: /etc/hookline/kafka-sasl
  readOnly: true
{{- end }}
{{- if $v.mongodb.tls.caSecret }}
- name: mongodb-tls
  mountPath: /etc/hookline/mongodb-tls
  readOnly: true
{{- end }}
{{- end }}

{{/* Extra volumes. Secret volumes follow rotations (cert-manager) without a restart. */}}
{{- define "hookline.accessVolumes" -}}
{{- $v := .root.Values }}
{{- if $v.grpc.tls.enabled }}
- name: grpc-tls
  secret:
    secretName: {{ include "hookline.grpcTlsSecretName" . }}
    defaultMode: 0440
{{- end }}
{{- if $v.grpc.permissions.enabled }}
- name: grpc-permissions
  configMap:
    name: {{ include "hookline.permissionsName" .root }}
{{- end }}
{{- with $v.kafka.tls }}
{{- if and .enabled .existingSecret }}
- name: kafka-tls
  secret:
    secretName: {{ .existingSecret }}
    defaultMode: 0440
    items:
      {{- if .caKey }}
      - key: {{ .caKey }}
        path: ca.crt
      {{- end }}
      {{- if .certKey }}
      - key: {{ .certKey }}
        path: tls.crt
      - key: {{ .keyKey }}
        path: tls.key
      {{- end }}
{{- end }}
{{- end }}
{{- with $v.kafka.sasl }}
{{- if .mechanism }}
- name: kafka-sasl
  secret:
    secretName: {{ .existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .usernameKey }}
        path: username
      - key: {{ .passwordKey }}
        path: password
{{- end }}
{{- end }}
{{- with $v.mongodb.tls.caSecret }}
- name: mongodb-tls
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - key: {{ $v.mongodb.tls.caKey }}
        path: ca.crt
{{- end }}
{{- end }}

{{/* The policy document: the services' own callers (by certificate) plus `grpc.permissions.callers`. */}}
{{- define "hookline.permissionsPolicy" -}}
{{- $p := .Values.grpc.permissions }}
{{- $registry := "webhooks.endpoints.v1.EndpointRegistryService" }}
{{- $callers := list }}
{{- if $p.serviceCallers }}
{{- $callers = append $callers (dict "name" "event-ingest" "certificate" $p.serviceIdentities.eventIngest "methods" (list (printf "%s/GetEventType" $registry)) "workspaces" (list "*")) }}
{{- $callers = append $callers (dict "name" "dispatcher" "certificate" $p.serviceIdentities.dispatcher "methods" (list (printf "%s/ResolveSubscribers" $registry) (printf "%s/GetEventType" $registry) (printf "%s/DisableEndpoint" $registry)) "workspaces" (list "*")) }}
{{- end }}
{{- range $p.callers }}
{{- $callers = append $callers . }}
{{- end }}
{{- dict "callers" $callers | toPrettyJson }}
{{- end }}

{{/* Cross-field checks of the access values; each fails with the values path to fix. */}}
{{- define "hookline.validateAccess" -}}
{{- $v := .Values }}
{{- $p := $v.grpc.permissions }}
{{- if and (eq $v.profile "production") (not $p.enabled) (not $p.allowOpen) }}
{{- fail "profile is production but grpc.permissions.enabled is false: every caller that reaches a gRPC port could read and change every workspace's endpoints. Turn permissions on (docs/deploy.md \"Production access\"), or set grpc.permissions.allowOpen=true to install without them on purpose" }}
{{- end }}
{{- if and $p.enabled $p.serviceCallers (not (and $v.grpc.tls.enabled $v.grpc.tls.mutual)) }}
{{- fail "grpc.permissions.serviceCallers names event-ingest and the dispatcher by their client certificates, which needs grpc.tls.enabled and grpc.tls.mutual: turn both on, or set serviceCallers=false and list those services yourself in grpc.permissions.callers (e.g. by tokenSha256, with REGISTRY_TOKEN_FILE in their extraEnv)" }}
{{- end }}
{{- if and $p.enabled (not $p.serviceCallers) (eq (len $p.callers) 0) }}
{{- fail "grpc.permissions.enabled with serviceCallers=false and no grpc.permissions.callers would refuse every call" }}
{{- end }}
{{- if and $v.kafka.sasl.mechanism (not $v.kafka.sasl.existingSecret) }}
{{- fail "kafka.sasl.mechanism is set: kafka.sasl.existingSecret must name the Secret with the username and password" }}
{{- end }}
{{- if and $v.kafka.sasl.mechanism (not $v.kafka.tls.enabled) }}
{{- fail "kafka.sasl.mechanism without kafka.tls.enabled would send the credentials in the clear: enable kafka.tls (SASL_SSL)" }}
{{- end }}
{{- if and $v.kafka.tls.certKey (not $v.kafka.tls.keyKey) }}
{{- fail "kafka.tls.certKey is set: kafka.tls.keyKey must name the client key in the same Secret" }}
{{- end }}
{{- if and (or $v.kafka.tls.caKey $v.kafka.tls.certKey) $v.kafka.tls.enabled (not $v.kafka.tls.existingSecret) }}
{{- if $v.kafka.tls.certKey }}
{{- fail "kafka.tls.certKey is set: kafka.tls.existingSecret must name the Secret holding it" }}
{{- end }}
{{- end }}
{{- end }}
