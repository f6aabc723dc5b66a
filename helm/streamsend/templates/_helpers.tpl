{{- define "streamsend.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "streamsend.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "streamsend.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "streamsend.image" -}}
{{- printf "%s-%s:%s" .root.Values.image.repository .component (.root.Values.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}

{{/* Kafka connection, logging and metrics settings, common to both daemons. */}}
{{- define "streamsend.commonEnv" -}}
- name: STREAMSEND_BOOTSTRAP_SERVERS
  value: {{ .Values.kafka.bootstrapServers | quote }}
- name: STREAMSEND_TOPIC
  value: {{ .Values.kafka.topic | quote }}
- name: STREAMSEND_TOPIC_PARTITIONS
  value: {{ .Values.kafka.topicPartitions | quote }}
- name: STREAMSEND_SECURITY_PROTOCOL
  value: {{ .Values.kafka.securityProtocol | quote }}
- name: STREAMSEND_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
- name: STREAMSEND_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: STREAMSEND_METRICS_PORT
  value: {{ .Values.metrics.port | quote }}
- name: STREAMSEND_SHUTDOWN_GRACE
  value: {{ .Values.shutdownGraceSeconds | quote }}
{{- if hasPrefix "SASL" .Values.kafka.securityProtocol }}
- name: STREAMSEND_SASL_MECHANISM
  value: {{ .Values.kafka.sasl.mechanism | quote }}
- name: STREAMSEND_SASL_USERNAME
  value: {{ required "kafka.sasl.username is required with SASL" .Values.kafka.sasl.username | quote }}
- name: STREAMSEND_SASL_PASSWORD_FILE
  value: /etc/streamsend/sasl/{{ .Values.kafka.sasl.passwordKey }}
{{- end }}
{{- if .Values.kafka.tls.existingSecret }}
- name: STREAMSEND_SSL_CAFILE
  value: /etc/streamsend/tls/{{ .Values.kafka.tls.caKey }}
- name: STREAMSEND_SSL_CHECK_HOSTNAME
  value: {{ .Values.kafka.tls.checkHostname | quote }}
{{- if .Values.kafka.tls.mutual }}
- name: STREAMSEND_SSL_CERTFILE
  value: /etc/streamsend/tls/{{ .Values.kafka.tls.certKey }}
- name: STREAMSEND_SSL_KEYFILE
  value: /etc/streamsend/tls/{{ .Values.kafka.tls.keyKey }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "streamsend.secretVolumes" -}}
{{- if hasPrefix "SASL" .Values.kafka.securityProtocol }}
- name: sasl
  secret:
    secretName: {{ required "kafka.sasl.existingSecret is required with SASL" .Values.kafka.sasl.existingSecret }}
{{- end }}
{{- if .Values.kafka.tls.existingSecret }}
- name: tls
  secret:
    secretName: {{ .Values.kafka.tls.existingSecret }}
{{- end }}
{{- end -}}

{{- define "streamsend.secretMounts" -}}
{{- if hasPrefix "SASL" .Values.kafka.securityProtocol }}
- name: sasl
  mountPath: /etc/streamsend/sasl
  readOnly: true
{{- end }}
{{- if .Values.kafka.tls.existingSecret }}
- name: tls
  mountPath: /etc/streamsend/tls
  readOnly: true
{{- end }}
{{- end -}}

{{/* The container's security, probes and port; .component is uploader or downloader. */}}
{{- define "streamsend.container" -}}
image: {{ include "streamsend.image" . }}
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
securityContext:
  {{- toYaml .root.Values.securityContext | nindent 2 }}
ports:
  - name: metrics
    containerPort: {{ .root.Values.metrics.port }}
    protocol: TCP
livenessProbe:
  httpGet:
    path: /healthz
    port: metrics
  periodSeconds: 20
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: metrics
  periodSeconds: 10
  timeoutSeconds: 5
startupProbe:
  httpGet:
    path: /healthz
    port: metrics
  periodSeconds: 2
  failureThreshold: 30
{{- end -}}

{{/* Sealed files: the settings and the Secret of keys, for .sealing of the uploader or the downloader. */}}
{{- define "streamsend.sealFiles" -}}
{{- $files := list -}}
{{- range . -}}{{- $files = append $files (printf "/etc/streamsend/seal/%s" .) -}}{{- end -}}
{{- join "," $files -}}
{{- end -}}

{{- define "streamsend.sealVolume" -}}
{{- if .existingSecret }}
- name: seal
  secret:
    secretName: {{ .existingSecret }}
    defaultMode: 0400
{{- end }}
{{- end -}}

{{- define "streamsend.sealMount" -}}
{{- if .existingSecret }}
- name: seal
  mountPath: /etc/streamsend/seal
  readOnly: true
{{- end }}
{{- end -}}
