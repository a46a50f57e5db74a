//! Subscription management: the service creates or updates the Subscriptions it
//! needs on the EHR, idempotently (found again by its tag and criteria). Classic R4
//! criteria subscriptions, or an R4 Backport topic (a `Basic` SubscriptionTopic) and
//! one Subscription on it with id-only payloads.
//!
//! A Subscription the EHR accepted is not yet one that works: it must pass the
//! handshake and turn `active`. [`ensure`] waits for that and otherwise fails with the
//! cause and the fix; in `auto` mode it tries Backport topics (advertised or not: many
//! servers, Helios among them, support them without saying so) and falls back to
//! classic criteria when the topic is refused or never activated.

use std::time::Duration;

use serde_json::{json, Value};

pub use super::topic::TOPIC_URL;
use super::topic::{classic_criteria, topic};
use crate::config::{Config, SubscriptionMode};
use crate::fhir::client::{FhirClient, FhirError, Idempotency};
use crate::fhir::read::Relevance;
use crate::fhir::writeback::{own_tag_search, OWN_TAG_CODE, OWN_TAG_SYSTEM};
use crate::resource_types;

#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error(transparent)]
    Fhir(#[from] FhirError),
    #[error("subscriptions need http.public_base_url (TRD_HTTP_PUBLIC_BASE_URL)")]
    NoPublicUrl,
    /// The EHR holds the Subscriptions but they do not work: the cause and the fix.
    #[error("{0}")]
    NotActive(String),
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct EnsureReport {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// `backport` or `classic`: the kind now active.
    pub mode: &'static str,
    /// The active Subscriptions (`Subscription/id`).
    pub active: Vec<String>,
    /// Subscriptions of the other kind, turned off (auto mode fell back, or the mode
    /// changed).
    pub retired: usize,
}

const PAYLOAD_CONTENT: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content";

fn tag() -> Value {
    json!({ "tag": [{ "system": OWN_TAG_SYSTEM, "code": OWN_TAG_CODE }] })
}

/// The Subscriptions this service wants: one per watched type (classic criteria), or
/// one on the Backport topic (id-only payloads: the service reads what changed).
/// `relevance`: the codes the engine reads (Observations, Conditions and Procedures
/// are narrowed to them where the criteria can say so).
pub fn desired(
    config: &Config,
    backport: bool,
    relevance: &Relevance,
) -> Result<Vec<Value>, SubscriptionError> {
    let base = config
        .http
        .public_base_url
        .as_deref()
        .ok_or(SubscriptionError::NoPublicUrl)?
        .trim_end_matches('/');
    let token = config.notify_token();
    // Some servers do not send channel headers: for them the token rides in the URL.
    let endpoint = match &token {
        Some(t) if config.subscriptions.token_in_url => {
            format!("{base}/notify?token={}", t.expose())
        }
        _ => format!("{base}/notify"),
    };
    let header: Vec<String> = token
        .iter()
        .map(|t| format!("Authorization: Bearer {}", t.expose()))
        .collect();
    let subscription = |criteria: String, reason: String| {
        let mut s = json!({ "resourceType": "Subscription", "meta": tag(), "status": "requested", "reason": reason, "criteria": criteria,
            "channel": { "type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json", "header": header } });
        if backport {
            s["channel"]["_payload"] =
                json!({ "extension": [{ "url": PAYLOAD_CONTENT, "valueCode": "id-only" }] });
        }
        s
    };
    if backport {
        return Ok(vec![subscription(
            TOPIC_URL.to_string(),
            "trd-sentinel: antidepressant data changes trigger a TRD assessment".into(),
        )]);
    }
    Ok(resource_types::watched()
        .map(|kind| {
            subscription(
                classic_criteria(kind, relevance),
                format!("trd-sentinel: {kind} changes trigger a TRD assessment"),
            )
        })
        .collect())
}

/// Whether the CapabilityStatement advertises Backport topic subscriptions.
async fn advertises_backport(client: &FhirClient) -> Result<bool, FhirError> {
    let statement = client
        .send(
            reqwest::Method::GET,
            "metadata",
            None,
            Idempotency::Idempotent,
        )
        .await?;
    let text = statement.to_string();
    Ok(text.contains("subscriptions-backport") || text.contains("\"SubscriptionTopic\""))
}

/// The kinds to try, in order: `true` for Backport topics, `false` for classic.
async fn kinds_to_try(client: &FhirClient, config: &Config) -> Result<Vec<bool>, FhirError> {
    Ok(match config.subscriptions.mode {
        SubscriptionMode::Backport => vec![true],
        SubscriptionMode::Classic => vec![false],
        SubscriptionMode::Auto if advertises_backport(client).await? => vec![true],
        SubscriptionMode::Auto => vec![true, false],
    })
}

fn kind_name(backport: bool) -> &'static str {
    if backport {
        "backport"
    } else {
        "classic"
    }
}

fn same_channel(existing: &Value, wanted: &Value) -> bool {
    existing.get("criteria") == wanted.get("criteria")
        && existing.pointer("/channel/endpoint") == wanted.pointer("/channel/endpoint")
        && existing.pointer("/channel/payload") == wanted.pointer("/channel/payload")
        && !matches!(
            existing.get("status").and_then(Value::as_str),
            Some("off" | "error")
        )
}

/// Creates what is missing, updates what differs, leaves the rest; then waits until
/// the EHR has activated them (`subscriptions.activation_timeout_secs`).
/// `relevance`: the codes the engine reads: only those Observations, Conditions and
/// Procedures notify, where the EHR evaluates the criteria.
pub async fn ensure(
    client: &FhirClient,
    config: &Config,
    relevance: &Relevance,
) -> Result<EnsureReport, SubscriptionError> {
    let kinds = kinds_to_try(client, config).await?;
    let mut failures = Vec::new();
    for (n, backport) in kinds.iter().copied().enumerate() {
        let last = n + 1 == kinds.len();
        let mut report = match put_in_place(client, config, backport, relevance).await {
            Ok(report) => report,
            // A server without Backport support may refuse the topic itself.
            Err(SubscriptionError::Fhir(FhirError::Status { status, .. }))
                if !last && (400..500).contains(&status) =>
            {
                failures.push(format!(
                    "the EHR refused the Backport topic (HTTP {status})"
                ));
                continue;
            }
            Err(e) => return Err(e),
        };
        match await_active(client, config, backport).await? {
            Activation::Active(ids) => {
                report.active = ids;
                report.retired = turn_off_other_kind(client, backport).await?;
                return Ok(report);
            }
            Activation::NeverActivated(ids) if !last => {
                failures.push(format!(
                    "{} ({} subscription) stayed `requested`: not activated",
                    ids.join(", "),
                    kind_name(backport)
                ));
                turn_off(client, &ids).await?;
            }
            Activation::NeverActivated(ids) => {
                failures.push(format!(
                    "{} ({} subscription) is still `requested` after {} s: the EHR accepted it but never activated it",
                    ids.join(", "),
                    kind_name(backport),
                    config.subscriptions.activation_timeout_secs
                ));
                return Err(SubscriptionError::NotActive(not_active_message(
                    config, &failures,
                )));
            }
            Activation::Failed { ids, problems } => {
                failures.extend(problems);
                if last {
                    return Err(SubscriptionError::NotActive(not_active_message(
                        config, &failures,
                    )));
                }
                turn_off(client, &ids).await?;
            }
        }
    }
    Err(SubscriptionError::NotActive(not_active_message(
        config, &failures,
    )))
}

/// What the wait for activation found.
enum Activation {
    Active(Vec<String>),
    /// Still `requested` when the time was up: the EHR never tried the handshake,
    /// or does not process this kind.
    NeverActivated(Vec<String>),
    /// `error`: the handshake (or a notification) failed. Each problem names the
    /// Subscription and its status, never the EHR's error text (it can quote the
    /// endpoint with its token, or a response body): `subscriptions status` shows it.
    /// (`off` is not a failure: another replica's `ensure` may be switching kinds.)
    Failed {
        ids: Vec<String>,
        problems: Vec<String>,
    },
}

/// The service's Subscriptions of one kind (by criteria: the topic, or `Type?`).
fn of_kind(subscriptions: &[Value], backport: bool) -> Vec<&Value> {
    subscriptions
        .iter()
        .filter(|s| {
            let criteria = s.get("criteria").and_then(Value::as_str).unwrap_or("");
            (criteria == TOPIC_URL) == backport
        })
        .collect()
}

fn reference(subscription: &Value) -> String {
    format!(
        "Subscription/{}",
        subscription
            .get("id")
            .and_then(Value::as_str)
            .unwrap_or("?")
    )
}

async fn await_active(
    client: &FhirClient,
    config: &Config,
    backport: bool,
) -> Result<Activation, SubscriptionError> {
    let started = tokio::time::Instant::now();
    let timeout = Duration::from_secs(config.subscriptions.activation_timeout_secs);
    loop {
        let subscriptions = current(client).await?;
        let wanted = of_kind(&subscriptions, backport);
        let status = |s: &Value| {
            s.get("status")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let failed: Vec<&&Value> = wanted.iter().filter(|s| status(s) == "error").collect();
        let ids: Vec<String> = wanted.iter().map(|s| reference(s)).collect();
        if !failed.is_empty() {
            let problems = failed
                .iter()
                .map(|s| {
                    let recorded = if s.get("error").is_some() {
                        " (the EHR recorded why: `subscriptions status` shows it)"
                    } else {
                        ""
                    };
                    format!(
                        "{} ({} subscription) is `error`{recorded}",
                        reference(s),
                        kind_name(backport)
                    )
                })
                .collect();
            return Ok(Activation::Failed { ids, problems });
        }
        if !wanted.is_empty() && wanted.iter().all(|s| status(s) == "active") {
            return Ok(Activation::Active(ids));
        }
        if started.elapsed() >= timeout {
            return Ok(Activation::NeverActivated(ids));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Sets these Subscriptions `off` (never deleted: the EHR keeps the history).
async fn turn_off(client: &FhirClient, references: &[String]) -> Result<(), FhirError> {
    let subscriptions = current(client).await?;
    for subscription in subscriptions
        .iter()
        .filter(|s| references.contains(&reference(s)))
    {
        let mut body = subscription.clone();
        body["status"] = json!("off");
        client
            .send(
                reqwest::Method::PUT,
                &reference(subscription),
                Some(&body),
                Idempotency::Idempotent,
            )
            .await?;
    }
    Ok(())
}

/// Turns off the service's Subscriptions of the kind not in use, so the EHR does not
/// notify twice; returns how many.
async fn turn_off_other_kind(client: &FhirClient, backport: bool) -> Result<usize, FhirError> {
    let subscriptions = current(client).await?;
    let other: Vec<String> = of_kind(&subscriptions, !backport)
        .into_iter()
        .filter(|s| s.get("status").and_then(Value::as_str) != Some("off"))
        .map(reference)
        .collect();
    turn_off(client, &other).await?;
    Ok(other.len())
}

/// The failure, its likely causes and the settings that fix them. The endpoint is
/// named without its query (a token may ride there).
fn not_active_message(config: &Config, failures: &[String]) -> String {
    let endpoint = config
        .http
        .public_base_url
        .as_deref()
        .map(|b| format!("{}/notify", b.trim_end_matches('/')))
        .unwrap_or_else(|| "/notify".into());
    format!(
        "the EHR's Subscriptions are not active: {}. Check, in this order: (1) `serve` is running and {endpoint} is reachable from the EHR (http.public_base_url); (2) the EHR authenticates its notifications: if it does not send the channel headers, set subscriptions.token_in_url=true or use an HMAC secret (notify.hmac_secret); (3) the kind of subscription: subscriptions.mode=backport or classic (auto tried {}). `trd-sentinel subscriptions status` shows each Subscription's status and error.",
        failures.join("; "),
        match config.subscriptions.mode {
            SubscriptionMode::Auto => "Backport topics first, then classic criteria",
            SubscriptionMode::Backport => "nothing: the mode is backport",
            SubscriptionMode::Classic => "nothing: the mode is classic",
        }
    )
}

/// One of the service's resources into place: left when `unchanged`, updated by id
/// when `found`, else created.
async fn put_or_post(
    client: &FhirClient,
    kind: &str,
    found: Option<&Value>,
    unchanged: bool,
    wanted: &Value,
    report: &mut EnsureReport,
) -> Result<(), FhirError> {
    if unchanged {
        report.unchanged += 1;
        return Ok(());
    }
    match found.and_then(|f| f.get("id")).and_then(Value::as_str) {
        Some(id) => {
            let mut body = wanted.clone();
            body["id"] = json!(id);
            client
                .send(
                    reqwest::Method::PUT,
                    &format!("{kind}/{id}"),
                    Some(&body),
                    Idempotency::Idempotent,
                )
                .await?;
            report.updated += 1;
        }
        None => {
            client
                .send(reqwest::Method::POST, kind, Some(wanted), Idempotency::Once)
                .await?;
            report.created += 1;
        }
    }
    Ok(())
}

/// Creates what is missing, updates what differs, leaves the rest (one kind).
async fn put_in_place(
    client: &FhirClient,
    config: &Config,
    backport: bool,
    relevance: &Relevance,
) -> Result<EnsureReport, SubscriptionError> {
    let wanted = desired(config, backport, relevance)?;
    let mut report = EnsureReport {
        mode: kind_name(backport),
        ..Default::default()
    };

    if backport {
        let topics = client.search("Basic", &[own_tag_search()]).await?;
        let wanted_topic = topic(tag(), relevance);
        let found = topics
            .iter()
            .flat_map(|p| {
                p.get("entry")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|e| e.get("resource").cloned())
            .find(|r| {
                r.get("extension")
                    .and_then(Value::as_array)
                    .is_some_and(|x| {
                        x.iter()
                            .any(|x| x.get("valueUri").and_then(Value::as_str) == Some(TOPIC_URL))
                    })
            });
        let unchanged = found
            .as_ref()
            .is_some_and(|t| t.get("extension") == wanted_topic.get("extension"));
        // An earlier version's topic (other triggers) is brought up to date.
        put_or_post(
            client,
            "Basic",
            found.as_ref(),
            unchanged,
            &wanted_topic,
            &mut report,
        )
        .await?;
    }
    let existing = current(client).await?;
    for subscription in wanted {
        let criteria = subscription.get("criteria").cloned();
        let found = existing
            .iter()
            .find(|e| e.get("criteria") == criteria.as_ref());
        let unchanged = found.is_some_and(|e| same_channel(e, &subscription));
        put_or_post(
            client,
            "Subscription",
            found,
            unchanged,
            &subscription,
            &mut report,
        )
        .await?;
    }
    Ok(report)
}

/// The service's Subscriptions on the EHR.
pub async fn current(client: &FhirClient) -> Result<Vec<Value>, FhirError> {
    let pages = client.search("Subscription", &[own_tag_search()]).await?;
    Ok(pages
        .iter()
        .flat_map(|p| {
            p.get("entry")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|e| e.get("resource").cloned())
        .filter(crate::ehr::is_own_resource)
        .collect())
}
