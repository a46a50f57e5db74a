{{/*
Names and labels, as well-kept charts spell them (app.kubernetes.io/*).
*/}}

{{- define "trd-sentinel.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped name; the release name alone when it already contains the chart name. */}}
{{- define "trd-sentinel.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "trd-sentinel.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "trd-sentinel.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trd-sentinel.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "trd-sentinel.labels" -}}
helm.sh/chart: {{ include "trd-sentinel.chart" . }}
{{ include "trd-sentinel.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: trd-sentinel
{{- end }}

{{- define "trd-sentinel.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "trd-sentinel.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "trd-sentinel.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{- define "trd-sentinel.secretName" -}}
{{- default (include "trd-sentinel.fullname" .) .Values.secrets.existingSecret }}
{{- end }}

{{/* Where things live inside the container. */}}
{{- define "trd-sentinel.configDir" -}}/etc/trd-sentinel/config{{- end }}
{{- define "trd-sentinel.stateDir" -}}/var/lib/trd-sentinel{{- end }}
{{- define "trd-sentinel.exportWorkDir" -}}/var/cache/trd-sentinel/export{{- end }}
{{- define "trd-sentinel.smartKeyDir" -}}/etc/trd-sentinel/smart{{- end }}
{{- define "trd-sentinel.caDir" -}}/etc/trd-sentinel/ca{{- end }}

{{/*
The service's config.toml: `.Values.config` plus the settings the chart owns. `null`
values are left out (the service's default applies). toJson is used for each value
because JSON scalars and arrays are valid TOML, and it prints whole numbers without
the `.0` that Helm's float64 values would otherwise get.
*/}}
{{- define "trd-sentinel.configToml" -}}
{{- $config := deepCopy .Values.config }}
{{- $_ := set $config.http "addr" (printf "0.0.0.0:%d" (int .Values.containerPort)) }}
{{- $_ := set $config.reconcile "state_file" (printf "%s/reconcile-watermark" (include "trd-sentinel.stateDir" .)) }}
{{- $_ := set $config.export "state_file" (printf "%s/export-since" (include "trd-sentinel.stateDir" .)) }}
{{- $_ := set $config.export "work_dir" (include "trd-sentinel.exportWorkDir" .) }}
{{- if .Values.secrets.smartPrivateKey.existingSecret }}
{{- $_ := set $config.fhir "smart_private_key_file" (printf "%s/%s" (include "trd-sentinel.smartKeyDir" .) .Values.secrets.smartPrivateKey.key) }}
{{- end }}
# Rendered by the trd-sentinel chart from `.Values.config`; secrets come from the
# environment (TRD_FHIR_TOKEN, TRD_AMQP_URL, TRD_NOTIFY_TOKEN, TRD_NOTIFY_HMAC_SECRET).
{{- range $section := keys $config | sortAlpha }}
{{- $settings := get $config $section }}

[{{ $section }}]
{{- range $key := keys $settings | sortAlpha }}
{{- $value := get $settings $key }}
{{- if and (not (kindIs "invalid" $value)) (not (include "trd-sentinel.isTableList" $value)) }}
{{ $key }} = {{ toJson $value }}
{{- end }}
{{- end }}
{{- /* A list of maps (cds.clients) is a TOML array of tables. */}}
{{- range $key := keys $settings | sortAlpha }}
{{- $value := get $settings $key }}
{{- if include "trd-sentinel.isTableList" $value }}
{{- range $item := $value }}

[[{{ $section }}.{{ $key }}]]
{{- range $field := keys $item | sortAlpha }}
{{- $v := get $item $field }}
{{- if not (kindIs "invalid" $v) }}
{{ $field }} = {{ toJson $v }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Secret references as environment variables; an empty key name is not used. */}}
{{- define "trd-sentinel.secretEnv" -}}
{{- $secret := include "trd-sentinel.secretName" . }}
{{- range $env, $key := dict "TRD_FHIR_TOKEN" .Values.secrets.keys.fhirToken "TRD_AMQP_URL" .Values.secrets.keys.amqpUrl "TRD_NOTIFY_TOKEN" .Values.secrets.keys.notifyToken "TRD_NOTIFY_HMAC_SECRET" .Values.secrets.keys.notifyHmacSecret "TRD_PAGE_SIGNING_KEY" .Values.secrets.keys.pageSigningKey }}
{{- if $key }}
- name: {{ $env }}
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ $key }}
{{- end }}
{{- end }}
{{- end }}

{{/* What the service container and the subscriptions Job share: config, secrets, volumes. */}}
{{- define "trd-sentinel.env" -}}
- name: TRD_CONFIG
  value: {{ include "trd-sentinel.configDir" . }}/config.toml
- name: RUST_LOG
  value: {{ .Values.logLevel | quote }}
{{- if .Values.caBundle.configMap }}
- name: SSL_CERT_FILE
  value: {{ include "trd-sentinel.caDir" . }}/{{ .Values.caBundle.key }}
{{- end }}
{{- include "trd-sentinel.secretEnv" . }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "trd-sentinel.volumeMounts" -}}
- name: config
  mountPath: {{ include "trd-sentinel.configDir" . }}
  readOnly: true
- name: state
  mountPath: {{ include "trd-sentinel.stateDir" . }}
{{- if .Values.secrets.smartPrivateKey.existingSecret }}
- name: smart-key
  mountPath: {{ include "trd-sentinel.smartKeyDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.caBundle.configMap }}
- name: ca-bundle
  mountPath: {{ include "trd-sentinel.caDir" . }}
  readOnly: true
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* The pod's volumes; `.job` true for the subscriptions Job (no persistent state). */}}
{{- define "trd-sentinel.volumes" -}}
- name: config
  configMap:
    name: {{ include "trd-sentinel.fullname" .root }}
- name: state
{{- if and .root.Values.state.existingClaim (not .job) }}
  persistentVolumeClaim:
    claimName: {{ .root.Values.state.existingClaim }}
{{- else }}
  emptyDir:
    sizeLimit: {{ .root.Values.state.sizeLimit }}
{{- end }}
{{- if .root.Values.secrets.smartPrivateKey.existingSecret }}
- name: smart-key
  secret:
    secretName: {{ .root.Values.secrets.smartPrivateKey.existingSecret }}
    defaultMode: 0400
    items:
      - key: {{ .root.Values.secrets.smartPrivateKey.key }}
        path: {{ .root.Values.secrets.smartPrivateKey.key }}
{{- end }}
{{- if .root.Values.caBundle.configMap }}
- name: ca-bundle
  configMap:
    name: {{ .root.Values.caBundle.configMap }}
    items:
      - key: {{ .root.Values.caBundle.key }}
        path: {{ .root.Values.caBundle.key }}
{{- end }}
{{- with .root.Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Checks across values that a JSON schema cannot express; each failure says what to change.
*/}}
{{- define "trd-sentinel.validate" -}}
{{- $drain := int .Values.config.pipeline.drain_secs }}
{{- $needed := add $drain 10 (int .Values.preStopSleepSeconds) }}
{{- if le (int .Values.terminationGracePeriodSeconds) $needed }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed config.pipeline.drain_secs + 10 s HTTP shutdown + preStopSleepSeconds (= %d), or in-flight work is cut off" (int .Values.terminationGracePeriodSeconds) $needed) }}
{{- end }}
{{- if and .Values.autoscaling.enabled .Values.keda.enabled }}
{{- fail "autoscaling.enabled and keda.enabled are mutually exclusive: KEDA creates its own HorizontalPodAutoscaler" }}
{{- end }}
{{- $broker := .Values.secrets.keys.amqpUrl }}
{{- if and (not $broker) (or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled .Values.keda.enabled) }}
{{- fail "without a broker (secrets.keys.amqpUrl empty) each pod has its own in-process queue: use replicaCount 1 and no autoscaling" }}
{{- end }}
{{- if and .Values.keda.enabled (gt (int .Values.keda.maxReplicas) (int .Values.config.amqp.shards)) }}
{{- fail (printf "keda.maxReplicas (%d) is more than config.amqp.shards (%d): the extra pods would have no shard to consume" (int .Values.keda.maxReplicas) (int .Values.config.amqp.shards)) }}
{{- end }}
{{- if and (or .Values.subscriptionsJob.enabled .Values.config.subscriptions.ensure_on_start) (not .Values.config.http.public_base_url) }}
{{- fail "subscriptions need config.http.public_base_url: the URL at which the EHR reaches /notify" }}
{{- end }}
{{- if and .Values.config.page.enabled (or (not .Values.secrets.keys.pageSigningKey) (not .Values.config.http.public_base_url)) }}
{{- fail "config.page.enabled needs secrets.keys.pageSigningKey (the link signing key) and config.http.public_base_url (where the links point)" }}
{{- end }}
{{- if and (eq (toString .Values.config.fhir.auth) "smart-backend") (not .Values.secrets.smartPrivateKey.existingSecret) }}
{{- fail "config.fhir.auth = smart-backend needs secrets.smartPrivateKey.existingSecret" }}
{{- end }}
{{- if and .Values.state.existingClaim (or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled .Values.keda.enabled) }}
{{- fail "state.existingClaim is for one pod: with more replicas or autoscaling every pod would mount the same claim (use the emptyDir default)" }}
{{- end }}
{{- if .Values.secrets.create }}
{{- range $name, $key := .Values.secrets.keys }}
{{- if and $key (not (get $.Values.secrets.values $name)) }}
{{- fail (printf "secrets.create: secrets.values.%s is empty but secrets.keys.%s is used (an empty token would let anyone in)" $name $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- if and .Values.secrets.create .Values.secrets.existingSecret }}
{{- fail "secrets.create and secrets.existingSecret are mutually exclusive" }}
{{- end }}
{{- end }}

{{/*
Ports the pods reach the EHR on: those of config.fhir.base_url and smart_token_url
(explicit, or 443/80 by scheme), and with CDS Hooks on those of each client's JWKS,
jku and FHIR server URLs, plus networkPolicy.egress.ehrPorts; 443 when none is known.
*/}}
{{- define "trd-sentinel.ehrPorts" -}}
{{- $ports := list }}
{{- $urls := list .Values.config.fhir.base_url .Values.config.fhir.smart_token_url }}
{{- if .Values.config.cds.enabled }}
{{- range $client := .Values.config.cds.clients }}
{{- $urls = concat $urls (list $client.jwks_url) ($client.jku | default list) ($client.fhir_servers | default list) }}
{{- end }}
{{- end }}
{{- range $url := $urls }}
{{- if $url }}
{{- $parsed := urlParse $url }}
{{- $hostPort := splitList ":" $parsed.host }}
{{- if gt (len $hostPort) 1 }}
{{- $ports = append $ports (last $hostPort | int) }}
{{- else }}
{{- $ports = append $ports (ternary 443 80 (eq $parsed.scheme "https")) }}
{{- end }}
{{- end }}
{{- end }}
{{- range .Values.networkPolicy.egress.ehrPorts }}
{{- $ports = append $ports (int .) }}
{{- end }}
{{- if not $ports }}
{{- $ports = list 443 }}
{{- end }}
{{- toJson (uniq $ports) }}
{{- end }}

{{/* "true" when a value is a non-empty list of maps. */}}
{{- define "trd-sentinel.isTableList" -}}
{{- if and (kindIs "slice" .) (gt (len .) 0) -}}
{{- if kindIs "map" (index . 0) -}}true{{- end -}}
{{- end -}}
{{- end }}
