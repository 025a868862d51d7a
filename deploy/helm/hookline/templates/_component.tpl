{{/*
One definition per object kind, shared by the three services. Each templates/<service>/<kind>.yaml
is a one-line call: {{ include "hookline.<kind>" (dict "root" $ "service" "<service>") }}.
*/}}

{{/* Non-secret environment of one service. */}}
{{- define "hookline.configmap" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $svc := index $v (include "hookline.valuesKey" .service) }}
{{- $envNames := include "hookline.settingsEnvNames" . | fromYaml }}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "hookline.componentName" . }}
  labels:
    {{- include "hookline.labels" . | nindent 4 }}
data:
  GRPC_HOST: {{ $v.config.grpcHost | quote }}
  GRPC_PORT: {{ include "hookline.envString" $svc.port | quote }}
  LOG_LEVEL: {{ $v.config.logLevel | quote }}
  MONGODB_DATABASE: {{ $svc.database | quote }}
  KAFKA_BROKERS: {{ join "," $v.kafka.brokers | quote }}
  KAFKA_REPLICATION_FACTOR: {{ include "hookline.envString" $v.kafka.replicationFactor | quote }}
  KAFKA_TOPIC_EVENTS: {{ $v.kafka.topics.events.name | quote }}
  KAFKA_EVENTS_PARTITIONS: {{ include "hookline.envString" $v.kafka.topics.events.partitions | quote }}
  KAFKA_TOPIC_INGEST: {{ $v.kafka.topics.ingest.name | quote }}
  KAFKA_INGEST_PARTITIONS: {{ include "hookline.envString" $v.kafka.topics.ingest.partitions | quote }}
  KAFKA_TOPIC_INGEST_DLQ: {{ $v.kafka.topics.ingestDlq.name | quote }}
  KAFKA_INGEST_DLQ_PARTITIONS: {{ include "hookline.envString" $v.kafka.topics.ingestDlq.partitions | quote }}
  KAFKA_TOPIC_ENDPOINT_CHANGES: {{ $v.kafka.topics.endpointChanges.name | quote }}
  KAFKA_ENDPOINT_CHANGES_PARTITIONS: {{ include "hookline.envString" $v.kafka.topics.endpointChanges.partitions | quote }}
  {{- if ne .service "event-ingest" }}
  TARGET_ALLOWLIST: {{ join "," $v.config.targetAllowlist | quote }}
  {{- end }}
  {{- if ne .service "endpoint-registry" }}
  REGISTRY_ADDRESS: {{ include "hookline.registryAddress" $root | quote }}
  {{- end }}
  {{- if and (eq .service "endpoint-registry") $v.secretEncryption.activeKey }}
  SECRET_ENCRYPTION_ACTIVE_KEY: {{ $v.secretEncryption.activeKey | quote }}
  {{- end }}
  {{- if eq .service "dispatcher" }}
  KAFKA_CONSUMER_GROUP: {{ $svc.consumerGroup | quote }}
  {{- end }}
  {{- with include "hookline.accessConfig" . }}
  {{- . | nindent 2 }}
  {{- end }}
  {{- range $key, $value := $svc.settings }}
  {{ get $envNames $key }}: {{ include "hookline.envString" $value | quote }}
  {{- end }}
{{- end }}

{{- define "hookline.deployment" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $svc := index $v (include "hookline.valuesKey" .service) }}
{{- $port := int $svc.port }}
{{- $autoscaled := or $svc.autoscaling.enabled (and (hasKey $svc "keda") $svc.keda.enabled) }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "hookline.componentName" . }}
  labels:
    {{- include "hookline.labels" . | nindent 4 }}
spec:
  {{- if not $autoscaled }}
  replicas: {{ $svc.replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "hookline.selectorLabels" . | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  template:
    metadata:
      labels:
        {{- include "hookline.labels" . | nindent 8 }}
        {{- with $svc.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        # Roll the pods when their configuration changes.
        checksum/config: {{ include "hookline.configmap" . | sha256sum }}
        checksum/secret: {{ include "hookline.secret" $root | sha256sum }}
        checksum/permissions: {{ include "hookline.permissionsPolicy" $root | sha256sum }}
        {{- with $svc.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "hookline.serviceAccountName" $root }}
      automountServiceAccountToken: {{ $v.serviceAccount.automountToken }}
      # Service links would add *_PORT variables for every Service in the namespace.
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      {{- with $v.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $svc.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      securityContext:
        {{- toYaml $v.podSecurityContext | nindent 8 }}
      containers:
        - name: {{ .service }}
          image: {{ include "hookline.image" . | quote }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          ports:
            - name: grpc
              containerPort: {{ $port }}
              protocol: TCP
            {{- with include "hookline.accessPorts" . }}
            {{- . | nindent 12 }}
            {{- end }}
          envFrom:
            - configMapRef:
                name: {{ include "hookline.componentName" . }}
            {{- with $svc.extraEnvFrom }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          env:
            {{- include "hookline.mongodbUriEnv" . | nindent 12 }}
            {{- if eq .service "endpoint-registry" }}
            {{- with include "hookline.encryptionKeysEnv" $root }}
            {{- . | nindent 12 }}
            {{- end }}
            {{- end }}
            {{- range $name, $value := $svc.env }}
            - name: {{ $name }}
              value: {{ include "hookline.envString" $value | quote }}
            {{- end }}
            {{- with $svc.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          # grpc.health.v1, overall service "": SERVING once Kafka and MongoDB are reachable.
          # With gRPC TLS on, the plaintext health-only port (kubelet probes cannot do TLS).
          startupProbe:
            grpc:
              port: {{ include "hookline.probePort" . }}
            {{- toYaml $v.probes.startup | nindent 12 }}
          readinessProbe:
            grpc:
              port: {{ include "hookline.probePort" . }}
            {{- toYaml $v.probes.readiness | nindent 12 }}
          livenessProbe:
            grpc:
              port: {{ include "hookline.probePort" . }}
            {{- toYaml $v.probes.liveness | nindent 12 }}
          {{- if gt (int $v.preStopSleepSeconds) 0 }}
          lifecycle:
            preStop:
              sleep:
                seconds: {{ $v.preStopSleepSeconds }}
          {{- end }}
          resources:
            {{- toYaml $svc.resources | nindent 12 }}
          securityContext:
            {{- toYaml $v.securityContext | nindent 12 }}
          volumeMounts:
            # The root filesystem is read-only; Node and libraries may still want a scratch dir.
            - name: tmp
              mountPath: /tmp
            {{- with include "hookline.accessVolumeMounts" . }}
            {{- . | nindent 12 }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
        {{- with include "hookline.accessVolumes" . }}
        {{- . | nindent 8 }}
        {{- end }}
      {{- with $svc.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $svc.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $svc.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $svc.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{- define "hookline.service" -}}
{{- $svc := index .root.Values (include "hookline.valuesKey" .service) }}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "hookline.componentName" . }}
  labels:
    {{- include "hookline.labels" . | nindent 4 }}
  {{- with $svc.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ $svc.service.type }}
  selector:
    {{- include "hookline.selectorLabels" . | nindent 4 }}
  ports:
    - name: grpc
      port: {{ $svc.port }}
      targetPort: grpc
      protocol: TCP
      appProtocol: kubernetes.io/h2c
{{- end }}

{{- define "hookline.pdb" -}}
{{- $svc := index .root.Values (include "hookline.valuesKey" .service) }}
{{- if $svc.pdb.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "hookline.componentName" . }}
  labels:
    {{- include "hookline.labels" . | nindent 4 }}
spec:
  {{- if include "hookline.isSet" (list $svc.pdb "minAvailable") }}
  minAvailable: {{ $svc.pdb.minAvailable }}
  {{- else }}
  maxUnavailable: {{ $svc.pdb.maxUnavailable | default 1 }}
  {{- end }}
  # Evict pods that are not ready yet (e.g. waiting on Kafka) even when the budget is spent.
  unhealthyPodEvictionPolicy: AlwaysAllow
  selector:
    matchLabels:
      {{- include "hookline.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}

{{- define "hookline.hpa" -}}
{{- $svc := index .root.Values (include "hookline.valuesKey" .service) }}
{{- if $svc.autoscaling.enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "hookline.componentName" . }}
  labels:
    {{- include "hookline.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "hookline.componentName" . }}
  minReplicas: {{ $svc.autoscaling.minReplicas }}
  maxReplicas: {{ $svc.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $svc.autoscaling.targetCPUUtilizationPercentage }}
  {{- with $svc.autoscaling.behavior }}
  behavior:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}

{{/*
Ingress: the service's gRPC port, from this release's pods and the configured peers.
Egress (networkPolicy.egress.enabled): DNS, endpoint-registry, the operator's Kafka/MongoDB rules
and, for the dispatcher, any address outside the excepted private ranges (webhook targets).
*/}}
{{- define "hookline.networkpolicy" -}}
{{- $root := .root }}
{{- $v := $root.Values }}
{{- $np := $v.networkPolicy }}
{{- $svc := index $v (include "hookline.valuesKey" .service) }}
{{- if $np.enabled }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "hookline.componentName" . }}
  labels:
    {{- include "hookline.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "hookline.selectorLabels" . | nindent 6 }}
  policyTypes:
    - Ingress
    {{- if $np.egress.enabled }}
    - Egress
    {{- end }}
  ingress:
    - ports:
        - port: grpc
          protocol: TCP
      from:
        - podSelector:
            matchLabels:
              {{- include "hookline.selectorLabels" $root | nindent 14 }}
        {{- with concat $np.ingressFrom $svc.networkPolicy.ingressFrom }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  {{- if $np.egress.enabled }}
  egress:
    - ports:
        - port: 53
          protocol: UDP
        - port: 53
          protocol: TCP
    {{- if ne .service "endpoint-registry" }}
    - to:
        - podSelector:
            matchLabels:
              {{- include "hookline.selectorLabels" (dict "root" $root "service" "endpoint-registry") | nindent 14 }}
      ports:
        - port: {{ $v.endpointRegistry.port }}
          protocol: TCP
    {{- end }}
    {{- with $np.egress.rules }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
    {{- if eq .service "dispatcher" }}
    - to:
        - ipBlock:
            cidr: 0.0.0.0/0
            {{- with $np.egress.dispatcherExceptIPv4 }}
            except:
              {{- toYaml . | nindent 14 }}
            {{- end }}
        - ipBlock:
            cidr: "::/0"
            {{- with $np.egress.dispatcherExceptIPv6 }}
            except:
              {{- toYaml . | nindent 14 }}
            {{- end }}
    {{- end }}
  {{- end }}
{{- end }}
{{- end }}
