//! The settings of each configuration section, with their defaults and why.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{string_or_list, Secret};
use crate::resource_types::{default_smart_scope, WRITTEN_TYPES};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    None,
    Bearer,
    SmartBackend,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum JwtAlgorithm {
    RS384,
    ES384,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct FhirSettings {
    /// The EHR's FHIR base URL (no trailing slash needed).
    pub base_url: Option<String>,
    /// Accept and Content-Type; some R4 servers refuse `fhirVersion` parameters.
    pub media_type: String,
    pub connect_timeout_secs: u64,
    pub request_timeout_secs: u64,
    /// Requests in flight at once against this EHR.
    pub max_concurrency: usize,
    /// Write transactions in flight at once (0 = only `max_concurrency` applies). Set 1
    /// for servers that serialise writes (SQLite-backed test servers answer lock
    /// conflicts with errors).
    pub max_concurrent_transactions: usize,
    /// Retries of idempotent requests after 5xx, 429, timeouts and connection errors.
    pub max_retries: u32,
    pub retry_base_ms: u64,
    pub page_size: u32,
    /// At most this many pages per search (a guard against runaway paging).
    pub max_pages: u32,
    /// A larger answer from the EHR is an error (memory stays bounded).
    pub max_response_bytes: usize,
    /// How far back medication and score searches reach.
    pub look_back_months: u32,
    /// Gather a patient's record and the service's own resources in one batch Bundle
    /// of searches when the EHR's CapabilityStatement lists `batch` (one request
    /// instead of twelve); off, or where the EHR does not list it: separate searches.
    pub batch_searches: bool,
    /// none | bearer | smart-backend; default: bearer when a token is given, else none.
    pub auth: Option<AuthMode>,
    /// Bearer token: from TRD_FHIR_TOKEN only (refused in the file).
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
    pub smart_client_id: Option<String>,
    pub smart_private_key_file: Option<PathBuf>,
    pub smart_algorithm: JwtAlgorithm,
    pub smart_key_id: Option<String>,
    pub smart_scope: String,
    /// Token endpoint; default: discovered from `.well-known/smart-configuration`.
    pub smart_token_url: Option<String>,
}

impl Default for FhirSettings {
    fn default() -> Self {
        Self {
            base_url: None,
            media_type: "application/fhir+json".into(),
            connect_timeout_secs: 5,
            request_timeout_secs: 30,
            max_concurrency: 4,
            max_concurrent_transactions: 0,
            max_retries: 3,
            retry_base_ms: 200,
            page_size: 100,
            batch_searches: true,
            max_pages: 200,
            max_response_bytes: 32 * 1024 * 1024,
            look_back_months: 60,
            auth: None,
            token: None,
            token_file: None,
            smart_client_id: None,
            smart_private_key_file: None,
            smart_algorithm: JwtAlgorithm::RS384,
            smart_key_id: None,
            smart_scope: default_smart_scope(),
            smart_token_url: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct WritebackSettings {
    /// Print the transaction instead of sending it.
    pub dry_run: bool,
    /// Which resource types to write (many EHRs accept only some).
    #[serde(deserialize_with = "string_or_list")]
    pub resources: Vec<String>,
    /// Identifier system of the resources the service writes.
    pub identifier_system: String,
    /// The treatment summary written when a referral is suggested.
    pub document: DocumentMode,
}

impl Default for WritebackSettings {
    fn default() -> Self {
        Self {
            dry_run: false,
            resources: WRITTEN_TYPES.iter().map(|s| s.to_string()).collect(),
            identifier_system: "https://fhir.trd-sentinel.org/id".into(),
            document: DocumentMode::Off,
        }
    }
}

impl WritebackSettings {
    /// Every type this configuration writes: `resources`, then the document's.
    pub fn written_types(&self) -> impl Iterator<Item = &str> {
        self.resources
            .iter()
            .map(String::as_str)
            .chain(self.document.types().iter().copied())
    }

    pub fn writes(&self, resource_type: &str) -> bool {
        self.written_types().any(|t| t == resource_type)
    }
}

/// How the treatment summary reaches the EHR when a referral is suggested. Off by
/// default: a note in the chart is a clinical-governance decision for each hospital.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DocumentMode {
    #[default]
    Off,
    /// One DocumentReference with one `text/plain` attachment: what most EHRs'
    /// clinical-notes APIs accept (Epic saves only the first attachment).
    Text,
    /// The DocumentReference with the text and the XHTML rendering, and the
    /// Composition (LOINC-coded sections) it relates to.
    Composition,
}

impl DocumentMode {
    /// The resource types this mode writes.
    pub fn types(self) -> &'static [&'static str] {
        match self {
            Self::Off => &[],
            Self::Text => &["DocumentReference"],
            Self::Composition => &["Composition", "DocumentReference"],
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct EngineSettings {
    pub policy: String,
    pub knowledge_dir: Option<PathBuf>,
    pub measurement_year: Option<i32>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            policy: "default".into(),
            knowledge_dir: None,
            measurement_year: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmqpSettings {
    /// amqp://user:password@host:5672/vhost: a secret, from TRD_AMQP_URL or `url_file`.
    /// Without it `serve` runs an in-process queue (not durable).
    pub url: Option<Secret>,
    pub url_file: Option<PathBuf>,
    pub intake_queue: String,
    /// Work queues are `{work_queue}.0` .. `{work_queue}.{shards-1}`.
    pub work_queue: String,
    pub dead_letter: String,
    pub events_exchange: String,
    /// Every replica must use the same number.
    pub shards: u16,
    pub prefetch: u16,
    pub max_attempts: u32,
    pub retry_delay_ms: u64,
    /// The broker's own backstop on the work shards: a message delivered this many
    /// times (its holder died each time) is dead-lettered by RabbitMQ.
    pub delivery_limit: u32,
}

impl Default for AmqpSettings {
    fn default() -> Self {
        Self {
            url: None,
            url_file: None,
            intake_queue: "trd.intake".into(),
            work_queue: "trd.work".into(),
            dead_letter: "trd.dead".into(),
            events_exchange: "trd.events".into(),
            shards: 16,
            prefetch: 32,
            max_attempts: 5,
            retry_delay_ms: 5_000,
            delivery_limit: 20,
        }
    }
}

impl AmqpSettings {
    /// The broker URL, from the environment or its file.
    pub fn resolved_url(&self) -> Result<Option<Secret>, String> {
        match (&self.url, &self.url_file) {
            (Some(url), _) => Ok(Some(url.clone())),
            (None, Some(path)) => Secret::from_file(path)
                .map(Some)
                .map_err(|e| format!("amqp.url_file {}: {e}", path.display())),
            (None, None) => Ok(None),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpSettings {
    /// Listen address for notifications, health and metrics.
    pub addr: String,
    /// The URL at which the EHR reaches this service (for Subscription endpoints).
    pub public_base_url: Option<String>,
    /// Larger notification bodies get 413.
    pub body_limit_bytes: usize,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            addr: "0.0.0.0:8080".into(),
            public_base_url: None,
            body_limit_bytes: 16 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct NotifySettings {
    /// Shared token the EHR sends (header or `?token=`): from TRD_NOTIFY_TOKEN or `token_file`.
    pub token: Option<Secret>,
    pub token_file: Option<PathBuf>,
    /// Header carrying the token (a `Bearer ` prefix is accepted).
    pub header: String,
    /// HMAC-SHA256 secret for signed notifications (TRD_NOTIFY_HMAC_SECRET).
    pub hmac_secret: Option<Secret>,
    pub hmac_header: String,
    /// Only for development: accept unauthenticated notifications.
    pub allow_unauthenticated: bool,
}

impl Default for NotifySettings {
    fn default() -> Self {
        Self {
            token: None,
            token_file: None,
            header: "authorization".into(),
            hmac_secret: None,
            hmac_header: "x-signature".into(),
            allow_unauthenticated: false,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    pub concurrency: usize,
    pub coalesce_ms: u64,
    /// Shutdown: how long in-flight work may take; keep the pod's grace period longer.
    pub drain_secs: u64,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            coalesce_ms: 300,
            drain_secs: 20,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReconcileSettings {
    pub enabled: bool,
    pub interval_secs: u64,
    /// The watermark's file, used only without a broker (with one it lives in the
    /// broker, where every replica sees it).
    pub state_file: PathBuf,
    pub initial_look_back_days: i64,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            interval_secs: 300,
            state_file: PathBuf::from("state/reconcile-watermark"),
            initial_look_back_days: 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubscriptionMode {
    /// Backport topic subscriptions where the server advertises them or activates
    /// one when tried, else classic criteria subscriptions.
    Auto,
    Classic,
    Backport,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubscriptionSettings {
    pub ensure_on_start: bool,
    pub mode: SubscriptionMode,
    /// Also put the notification token in the endpoint URL (`?token=`), for EHRs that
    /// do not send channel headers. Off by default: URLs end up in access logs.
    pub token_in_url: bool,
    /// How long `ensure` waits for the EHR to activate its Subscriptions (handshake)
    /// before it reports them not working (in `auto` mode, per kind tried).
    pub activation_timeout_secs: u64,
    /// `/readyz` lists the service's Subscriptions that are not active (checked at
    /// most once a minute); readiness itself does not depend on them, since the EHR's
    /// handshake must reach a ready pod.
    pub report_in_readyz: bool,
}

impl Default for SubscriptionSettings {
    fn default() -> Self {
        Self {
            ensure_on_start: false,
            mode: SubscriptionMode::Auto,
            token_in_url: false,
            activation_timeout_secs: 60,
            report_in_readyz: true,
        }
    }
}

/// `_typeFilter` on a Bulk Data kick-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TypeFilterMode {
    /// Ask with `_typeFilter`; when the EHR refuses that kick-off (400/422: the IG lets
    /// a server reject filters it cannot apply) or fails that job (Helios's filtered
    /// searches time out on PostgreSQL), ask again without it.
    Auto,
    /// Always ask with it; a refusal is an error.
    Always,
    /// Export the types whole (the reader skips what the engine never reads).
    Never,
}

/// `trd-sentinel export`: the Bulk Data $export client.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportSettings {
    /// The longest wait between two status polls, whatever `Retry-After` asks: Helios
    /// answers 120 s for a job that takes one, and an EHR may ask for an hour.
    pub max_poll_interval_secs: u64,
    /// The first wait when the EHR sends no `Retry-After`; it doubles up to the maximum.
    pub poll_interval_secs: u64,
    /// An export not complete after this long is cancelled (DELETE) and fails.
    pub timeout_secs: u64,
    /// A file larger than this is refused (disk is bounded too).
    pub max_file_bytes: u64,
    /// One file's download may take this long.
    pub download_timeout_secs: u64,
    /// Origins (`https://host[:port]`) besides the EHR's that hold its export files
    /// and may receive its token when the manifest says `requiresAccessToken`.
    #[serde(deserialize_with = "string_or_list")]
    pub storage_origins: Vec<String>,
    /// auto | always | never: narrow Observations, Conditions, Procedures and
    /// Encounters to the codes the engine reads.
    pub type_filter: TypeFilterMode,
    /// Where an export without `--out` downloads (a directory per run, removed when
    /// the run completes).
    pub work_dir: PathBuf,
    /// The previous run's `transactionTime` for `--since last`, used only without a
    /// broker (with one, it lives in the broker, where any pod reads it).
    pub state_file: PathBuf,
}

impl Default for ExportSettings {
    fn default() -> Self {
        Self {
            max_poll_interval_secs: 120,
            poll_interval_secs: 2,
            timeout_secs: 24 * 3600,
            max_file_bytes: 20_000_000_000,
            download_timeout_secs: 3600,
            storage_origins: Vec::new(),
            type_filter: TypeFilterMode::Auto,
            work_dir: std::env::temp_dir().join("trd-sentinel-export"),
            state_file: PathBuf::from("state/export-since"),
        }
    }
}

impl ExportSettings {
    pub(super) fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.max_poll_interval_secs == 0 || self.poll_interval_secs == 0 {
            out.push(
                "export.poll_interval_secs and export.max_poll_interval_secs must be > 0".into(),
            );
        }
        for origin in &self.storage_origins {
            let parsed = reqwest::Url::parse(origin).ok();
            let canonical = parsed.as_ref().map(|u| u.origin().ascii_serialization());
            if canonical.as_deref() != Some(origin.trim_end_matches('/')) {
                out.push(format!(
                    "export.storage_origins: `{origin}` is not an origin (scheme://host[:port], no path)"
                ));
            }
        }
        out
    }
}
