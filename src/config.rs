//! Typed settings from a TOML file plus `TRD_*` environment variables (the
//! environment wins), validated at start with every problem listed at once.
//!
//! `TRD_FHIR_BASE_URL` sets `fhir.base_url`: after the prefix, the first word names the
//! section and the rest the key. Secrets (tokens, private keys) come only from the
//! environment or from files; a secret written in the config file is refused.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Every resource type the service can write back (`writeback.resources` picks from
/// these). All but Provenance are kept in step with the latest assessment (updated,
/// retired); a Provenance is only ever added.
pub const WRITTEN_TYPES: &[&str] = &[
    "Flag",
    "Observation",
    "DetectedIssue",
    "ServiceRequest",
    "Provenance",
];

/// A secret that never prints.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Printed configurations show that a secret is set, never what it is.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    /// Environment values that look like numbers (a numeric token) are still secrets.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Scalar {
            Text(String),
            Integer(i64),
            Float(f64),
        }
        Ok(Secret(match Scalar::deserialize(d)? {
            Scalar::Text(s) => s,
            Scalar::Integer(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
        }))
    }
}

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
            smart_scope: "system/*.read system/*.write".into(),
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
}

impl Default for WritebackSettings {
    fn default() -> Self {
        Self {
            dry_run: false,
            resources: WRITTEN_TYPES.iter().map(|s| s.to_string()).collect(),
            identifier_system: "https://fhir.trd-sentinel.org/id".into(),
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
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(|t| Some(Secret::new(t.trim().to_string())))
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

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub fhir: FhirSettings,
    pub writeback: WritebackSettings,
    pub engine: EngineSettings,
    pub amqp: AmqpSettings,
    pub http: HttpSettings,
    pub notify: NotifySettings,
    pub pipeline: PipelineConfig,
    pub reconcile: ReconcileSettings,
    pub subscriptions: SubscriptionSettings,
}

fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => s
            .split(',')
            .map(|p| p.trim().to_string())
            .filter(|p| !p.is_empty())
            .collect(),
        OneOrMany::Many(v) => v,
    })
}

/// Why the configuration was refused: every problem, one per line.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n- {}", problems.join("\n- "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

const SECTIONS: &[&str] = &[
    "fhir",
    "writeback",
    "engine",
    "amqp",
    "http",
    "notify",
    "pipeline",
    "reconcile",
    "subscriptions",
];
const SECRETS_IN_FILE: &[(&str, &str)] = &[
    ("fhir", "token"),
    ("amqp", "url"),
    ("notify", "token"),
    ("notify", "hmac_secret"),
];

impl Config {
    /// Loads from an optional file and the process environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, std::env::vars())
    }

    /// Loads as `serve` needs it: also checks the settings only the service needs,
    /// still listing every problem at once.
    pub fn load_for_serve(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_checked(file, std::env::vars(), Config::serve_problems)
    }

    pub fn load_from(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        Self::load_checked(file, env, |_| Vec::new())
    }

    fn load_checked(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        more_problems: fn(&Config) -> Vec<String>,
    ) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let mut table = toml::Table::new();
        if let Some(path) = file {
            match std::fs::read_to_string(path)
                .map_err(|e| e.to_string())
                .and_then(|t| toml::from_str::<toml::Table>(&t).map_err(|e| e.to_string()))
            {
                Ok(parsed) => table = parsed,
                Err(e) => problems.push(format!("{}: {e}", path.display())),
            }
            for (section, key) in SECRETS_IN_FILE {
                if table.get(*section).and_then(|s| s.get(*key)).is_some() {
                    problems.push(format!(
                        "{}: `{section}.{key}` is a secret: set TRD_{}_{} or `{section}.{key}_file` instead",
                        path.display(),
                        section.to_uppercase(),
                        key.to_uppercase()
                    ));
                }
            }
        }
        for (name, value) in env {
            let Some(rest) = name.strip_prefix("TRD_") else {
                continue;
            };
            if rest == "CONFIG" {
                continue; // the config file's path, read by the command line
            }
            let lower = rest.to_lowercase();
            let Some((section, key)) = lower.split_once('_') else {
                problems.push(format!("environment {name}: expected TRD_<SECTION>_<KEY>"));
                continue;
            };
            if !SECTIONS.contains(&section) {
                problems.push(format!(
                    "environment {name}: unknown section `{section}` (known: {})",
                    SECTIONS.join(", ")
                ));
                continue;
            }
            let entry = table
                .entry(section.to_string())
                .or_insert_with(|| toml::Value::Table(Default::default()));
            if let toml::Value::Table(section_table) = entry {
                section_table.insert(key.to_string(), env_value(&value));
            }
        }
        let config: Config = match toml::Value::Table(table).try_into() {
            Ok(c) => c,
            Err(e) => {
                problems.push(e.to_string().trim().to_string());
                return Err(ConfigError { problems });
            }
        };
        problems.extend(config.problems());
        problems.extend(more_problems(&config));
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }

    /// What is wrong, beyond types: URLs, required companions, known names.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let f = &self.fhir;
        if let Some(url) = &f.base_url {
            match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                _ => out.push(format!("fhir.base_url `{url}` is not an http(s) URL")),
            }
        }
        if f.media_type.trim().is_empty() {
            out.push("fhir.media_type is empty".into());
        }
        if f.max_concurrency == 0 || f.page_size == 0 || f.max_pages == 0 {
            out.push("fhir.max_concurrency, fhir.page_size and fhir.max_pages must be > 0".into());
        }
        match self.auth_mode() {
            AuthMode::Bearer if f.token.is_none() && f.token_file.is_none() => {
                out.push("fhir.auth = bearer needs TRD_FHIR_TOKEN or fhir.token_file".into())
            }
            AuthMode::SmartBackend if f.smart_client_id.is_none() || f.smart_private_key_file.is_none() => {
                out.push("fhir.auth = smart-backend needs fhir.smart_client_id and fhir.smart_private_key_file".into())
            }
            _ => {}
        }
        for path in [&f.token_file, &f.smart_private_key_file]
            .into_iter()
            .flatten()
        {
            if !path.is_file() {
                out.push(format!("secret file {} does not exist", path.display()));
            }
        }
        for (name, secret) in [
            ("fhir.token", &f.token),
            ("amqp.url", &self.amqp.url),
            ("notify.token", &self.notify.token),
            ("notify.hmac_secret", &self.notify.hmac_secret),
        ] {
            if secret
                .as_ref()
                .is_some_and(|s| s.expose().trim().is_empty())
            {
                out.push(format!(
                    "{name} is set but empty: set a value or leave it unset"
                ));
            }
        }
        for kind in &self.writeback.resources {
            if !WRITTEN_TYPES.contains(&kind.as_str()) {
                out.push(format!(
                    "writeback.resources: `{kind}` is not one of {}",
                    WRITTEN_TYPES.join(", ")
                ));
            }
        }
        if reqwest::Url::parse(&self.writeback.identifier_system).is_err() {
            out.push("writeback.identifier_system must be a URI".into());
        }
        out
    }

    /// What `serve` needs beyond `problems()`.
    pub fn serve_problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.fhir.base_url.is_none() {
            out.push("fhir.base_url is required to serve (set TRD_FHIR_BASE_URL)".into());
        }
        if self.http.addr.parse::<std::net::SocketAddr>().is_err() {
            out.push(format!("http.addr `{}` is not host:port", self.http.addr));
        }
        let has_auth = self.notify.token.is_some()
            || self.notify.token_file.is_some()
            || self.notify.hmac_secret.is_some();
        if let Some(path) = &self.notify.token_file {
            if self
                .notify_token()
                .is_none_or(|t| t.expose().trim().is_empty())
            {
                out.push(format!(
                    "notify.token_file {} is empty or unreadable",
                    path.display()
                ));
            }
        }
        if !has_auth && !self.notify.allow_unauthenticated {
            out.push("notifications need authentication: set TRD_NOTIFY_TOKEN (or notify.token_file, TRD_NOTIFY_HMAC_SECRET)".into());
        }
        match &self.http.public_base_url {
            Some(url) if reqwest::Url::parse(url).map(|u| !matches!(u.scheme(), "http" | "https")).unwrap_or(true) => {
                out.push(format!("http.public_base_url `{url}` is not an http(s) URL"))
            }
            None if self.subscriptions.ensure_on_start => {
                out.push("subscriptions.ensure_on_start needs http.public_base_url (TRD_HTTP_PUBLIC_BASE_URL)".into())
            }
            _ => {}
        }
        if let Err(e) = self.amqp.resolved_url() {
            out.push(e);
        }
        if let Ok(Some(url)) = self.amqp.resolved_url() {
            if !url.expose().starts_with("amqp://") && !url.expose().starts_with("amqps://") {
                out.push("amqp.url must start with amqp:// or amqps://".into());
            }
        }
        if self.amqp.delivery_limit < self.amqp.max_attempts {
            out.push(format!(
                "amqp.delivery_limit ({}) must be at least amqp.max_attempts ({}): the broker's backstop must not cut retries short",
                self.amqp.delivery_limit, self.amqp.max_attempts
            ));
        }
        if self.fhir.max_response_bytes < 64 * 1024 {
            out.push("fhir.max_response_bytes must be at least 65536".into());
        }
        if self.amqp.shards == 0 || self.pipeline.concurrency == 0 {
            out.push("amqp.shards and pipeline.concurrency must be > 0".into());
        }
        out
    }

    /// The notification token, from the environment or its file.
    pub fn notify_token(&self) -> Option<Secret> {
        self.notify.token.clone().or_else(|| {
            let path = self.notify.token_file.as_ref()?;
            std::fs::read_to_string(path)
                .ok()
                .map(|t| Secret::new(t.trim().to_string()))
        })
    }

    pub fn auth_mode(&self) -> AuthMode {
        self.fhir.auth.unwrap_or(
            if self.fhir.token.is_some() || self.fhir.token_file.is_some() {
                AuthMode::Bearer
            } else {
                AuthMode::None
            },
        )
    }

    /// The EHR base URL, or a clear error when a command needs one.
    pub fn require_base_url(&self) -> Result<&str, ConfigError> {
        self.fhir.base_url.as_deref().ok_or_else(|| ConfigError {
            problems: vec!["fhir.base_url is required (set TRD_FHIR_BASE_URL)".into()],
        })
    }
}

/// Environment values: booleans and numbers as such, everything else a string.
fn env_value(raw: &str) -> toml::Value {
    match raw {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => raw
            .parse::<i64>()
            .map(toml::Value::Integer)
            .or_else(|_| raw.parse::<f64>().map(toml::Value::Float))
            .unwrap_or_else(|_| toml::Value::String(raw.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn environment_alone_is_enough() {
        let config = Config::load_from(
            None,
            env(&[
                ("TRD_FHIR_BASE_URL", "http://127.0.0.1:8080"),
                ("TRD_FHIR_TOKEN", "s3cret"),
                ("TRD_WRITEBACK_DRY_RUN", "true"),
                ("PATH", "/bin"),
            ]),
        )
        .expect("valid");
        assert_eq!(
            config.fhir.base_url.as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert!(config.writeback.dry_run);
        assert_eq!(config.auth_mode(), AuthMode::Bearer);
        assert_eq!(
            format!("{:?}", config.fhir.token),
            "Some(Secret(***))",
            "secrets never print"
        );
    }

    #[test]
    fn lists_come_comma_separated_from_the_environment() {
        let config = Config::load_from(
            None,
            env(&[("TRD_WRITEBACK_RESOURCES", "Flag, Observation")]),
        )
        .expect("valid");
        assert_eq!(config.writeback.resources, vec!["Flag", "Observation"]);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let error = Config::load_from(
            None,
            env(&[
                ("TRD_FHIR_BASE_URL", "ftp://x"),
                ("TRD_WRITEBACK_RESOURCES", "Flag,Patient"),
                ("TRD_FHIR_AUTH", "bearer"),
            ]),
        )
        .expect_err("invalid");
        let text = error.to_string();
        assert!(
            text.contains("fhir.base_url `ftp://x` is not an http(s) URL"),
            "{text}"
        );
        assert!(text.contains("`Patient` is not one of"), "{text}");
        assert!(text.contains("needs TRD_FHIR_TOKEN"), "{text}");
    }

    #[test]
    fn empty_secrets_are_refused() {
        let text = Config::load_from(
            None,
            env(&[("TRD_NOTIFY_TOKEN", " "), ("TRD_AMQP_URL", "")]),
        )
        .expect_err("empty secrets")
        .to_string();
        assert!(text.contains("notify.token is set but empty"), "{text}");
        assert!(text.contains("amqp.url is set but empty"), "{text}");
    }

    #[test]
    fn unknown_keys_and_secrets_in_the_file_are_refused() {
        let dir = std::env::temp_dir().join(format!("trd-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("config.toml");
        std::fs::write(
            &file,
            "[fhir]\nbase_url = \"http://ehr\"\ntoken = \"plain\"\n",
        )
        .expect("write");
        let text = Config::load_from(Some(&file), env(&[]))
            .expect_err("secret in file")
            .to_string();
        assert!(text.contains("`fhir.token` is a secret"), "{text}");
        std::fs::write(&file, "[fhir]\nbase_urll = \"http://ehr\"\n").expect("write");
        let text = Config::load_from(Some(&file), env(&[]))
            .expect_err("typo")
            .to_string();
        assert!(text.contains("base_urll"), "{text}");
        let text = Config::load_from(None, env(&[("TRD_ENGINE_POLICYY", "x")]))
            .expect_err("typo")
            .to_string();
        assert!(text.contains("policyy"), "{text}");
    }
}
