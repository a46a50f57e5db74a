//! Typed settings from a TOML file plus `TRD_*` environment variables (the
//! environment wins), validated at start with every problem listed at once.
//!
//! `TRD_FHIR_BASE_URL` sets `fhir.base_url`: after the prefix, the first word names the
//! section and the rest the key. Secrets (tokens, private keys) come only from the
//! environment or from files; a secret written in the config file is refused.
//!
//! The settings of each section are in [`sections`]; [`Secret`] is a string that never
//! prints. This module depends on no adapter: the adapters depend on it.

use std::path::Path;

use serde::{Deserialize, Deserializer, Serialize};

mod cds;
mod secret;
mod sections;

pub use cds::{CdsClient, CdsSettings, PageSettings};
pub use secret::Secret;
pub use sections::*;

use crate::resource_types::WRITTEN_TYPES;

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
    pub cds: CdsSettings,
    pub page: PageSettings,
    pub export: ExportSettings,
}

/// A list given as a TOML array or as one comma-separated string (as environment
/// variables give it).
pub(crate) fn string_or_list<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
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

/// The keys of a configuration that does not deserialise, each tried alone: the table
/// of those that are fine, and a problem for each one that is not.
fn keys_one_by_one(table: toml::Table) -> (toml::Table, Vec<String>) {
    let mut good = toml::Table::new();
    let mut problems = Vec::new();
    for (section, value) in table {
        if !SECTIONS.contains(&section.as_str()) {
            problems.push(format!(
                "unknown section `[{section}]` (known: {})",
                SECTIONS.join(", ")
            ));
            continue;
        }
        let toml::Value::Table(keys) = value else {
            problems.push(format!("`{section}` must be a table (`[{section}]`)"));
            continue;
        };
        let mut kept = toml::Table::new();
        for (key, value) in keys {
            let alone = toml::Table::from_iter([(
                section.clone(),
                toml::Value::Table(toml::Table::from_iter([(key.clone(), value.clone())])),
            )]);
            match toml::Value::Table(alone).try_into::<Config>() {
                Ok(_) => {
                    kept.insert(key, value);
                }
                Err(e) => problems.push(format!("{section}.{key}: {}", e.message().trim())),
            }
        }
        good.insert(section, toml::Value::Table(kept));
    }
    (good, problems)
}

/// Why the configuration was refused: every problem, one per line.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration:\n- {}", problems.join("\n- "))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

/// `ensure` waits at most this long for the EHR to activate its Subscriptions.
const MAX_ACTIVATION_WAIT_SECS: u64 = 3600;

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
    "cds",
    "page",
    "export",
];
const SECRETS_IN_FILE: &[(&str, &str)] = &[
    ("fhir", "token"),
    ("amqp", "url"),
    ("notify", "token"),
    ("notify", "hmac_secret"),
    ("page", "signing_key"),
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

    /// Loads from a configuration file's text (`origin` names it in problems) and the
    /// given environment, as `serve` would (its own problems included). The same path
    /// as a file read; the fuzz target `config` drives it.
    pub fn from_text(
        text: &str,
        origin: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        Self::from_parts(
            Some((origin, Ok(text.to_owned()))),
            env,
            Config::serve_problems,
        )
    }

    fn load_checked(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
        more_problems: fn(&Config) -> Vec<String>,
    ) -> Result<Self, ConfigError> {
        let origin = file.map(|path| path.display().to_string());
        let text = file.map(|path| std::fs::read_to_string(path).map_err(|e| e.to_string()));
        let file = origin.as_deref().zip(text);
        Self::from_parts(file, env, more_problems)
    }

    /// `file`: the file's name and its text (or why it could not be read).
    fn from_parts(
        file: Option<(&str, Result<String, String>)>,
        env: impl IntoIterator<Item = (String, String)>,
        more_problems: fn(&Config) -> Vec<String>,
    ) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let mut table = toml::Table::new();
        if let Some((origin, text)) = file {
            match text.and_then(|t| toml::from_str::<toml::Table>(&t).map_err(|e| e.to_string())) {
                Ok(parsed) => table = parsed,
                Err(e) => problems.push(format!("{origin}: {e}")),
            }
            for (section, key) in SECRETS_IN_FILE {
                if table.get(*section).and_then(|s| s.get(*key)).is_some() {
                    problems.push(format!(
                        "{origin}: `{section}.{key}` is a secret: set TRD_{}_{} or `{section}.{key}_file` instead",
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
        let config: Config = match toml::Value::Table(table.clone()).try_into() {
            Ok(c) => c,
            Err(_) => {
                // Serde stops at the first problem: each key is tried on its own, so one
                // run names every unknown section and key and every bad value, and the
                // rules below still run over what was fine.
                let (good, found) = keys_one_by_one(table);
                problems.extend(found);
                toml::Value::Table(good).try_into().unwrap_or_default()
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
            ("page.signing_key", &self.page.signing_key),
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
        if self.reconcile.enabled && self.reconcile.interval_secs == 0 {
            out.push("reconcile.interval_secs must be > 0 when reconcile.enabled".into());
        }
        out.extend(self.cds.problems());
        out.extend(self.export.problems());
        if self.subscriptions.activation_timeout_secs > MAX_ACTIVATION_WAIT_SECS {
            out.push(format!(
                "subscriptions.activation_timeout_secs must be at most {MAX_ACTIVATION_WAIT_SECS} (one hour)"
            ));
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
        out.extend(self.page.problems(self.http.public_base_url.as_deref()));
        if self.amqp.shards == 0 || self.pipeline.concurrency == 0 {
            out.push("amqp.shards and pipeline.concurrency must be > 0".into());
        }
        out
    }

    /// The notification token, from the environment or its file.
    pub fn notify_token(&self) -> Option<Secret> {
        self.notify.token.clone().or_else(|| {
            let path = self.notify.token_file.as_ref()?;
            Secret::from_file(path).ok()
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

    /// What is allowed but probably not meant: printed by `check-config` and at start.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let local = self.fhir.base_url.as_deref().is_some_and(|url| {
            reqwest::Url::parse(url)
                .ok()
                .and_then(|u| u.host_str().map(str::to_string))
                .is_some_and(|h| h == "localhost" || h == "127.0.0.1" || h == "[::1]")
        });
        if self.fhir.base_url.is_some() && !local && self.auth_mode() == AuthMode::None {
            out.push(
                "fhir.auth is none: the EHR is called without credentials (set fhir.auth = smart-backend with fhir.smart_client_id and fhir.smart_private_key_file, or TRD_FHIR_TOKEN)"
                    .into(),
            );
        }
        out
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
mod tests;
