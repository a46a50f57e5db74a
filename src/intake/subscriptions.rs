//! Subscription management: the service creates or updates the Subscriptions it
//! needs on the EHR, idempotently (found again by its tag and criteria). Classic R4
//! criteria subscriptions, or an R4 Backport topic (a `Basic` SubscriptionTopic) and
//! one Subscription on it with id-only payloads.

use serde_json::{json, Value};

use super::reconcile::WATCHED_TYPES;
use crate::config::{Config, SubscriptionMode};
use crate::fhir::client::{FhirClient, FhirError, Idempotency};
use crate::fhir::writeback::{own_tag_search, OWN_TAG_CODE, OWN_TAG_SYSTEM};

#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    #[error(transparent)]
    Fhir(#[from] FhirError),
    #[error("subscriptions need http.public_base_url (TRD_HTTP_PUBLIC_BASE_URL)")]
    NoPublicUrl,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct EnsureReport {
    pub created: usize,
    pub updated: usize,
    pub unchanged: usize,
}

/// The R4 Backport topic the service subscribes to.
pub const TOPIC_URL: &str = "https://fhir.trd-sentinel.org/topic/antidepressant-data";
const PAYLOAD_CONTENT: &str =
    "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-payload-content";

fn tag() -> Value {
    json!({ "tag": [{ "system": OWN_TAG_SYSTEM, "code": OWN_TAG_CODE }] })
}

/// The topic as an R4 `Basic` with the 5.0/4.3 cross-version extensions.
pub fn topic() -> Value {
    let mut extension = vec![
        json!({ "url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic.url", "valueUri": TOPIC_URL }),
        json!({ "url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic.title", "valueString": "Antidepressant treatment and symptom-score data (trd-sentinel)" }),
    ];
    extension.extend(WATCHED_TYPES.iter().map(|kind| {
        json!({ "url": "http://hl7.org/fhir/4.3/StructureDefinition/extension-SubscriptionTopic.resourceTrigger", "extension": [
            { "url": "resource", "valueUri": format!("http://hl7.org/fhir/StructureDefinition/{kind}") },
            { "url": "supportedInteraction", "valueCode": "create" },
            { "url": "supportedInteraction", "valueCode": "update" } ] })
    }));
    json!({ "resourceType": "Basic", "meta": tag(),
        "code": { "coding": [{ "system": "http://hl7.org/fhir/fhir-types", "code": "SubscriptionTopic" }] },
        "extension": extension })
}

/// The Subscriptions this service wants: one per watched type (classic criteria), or
/// one on the Backport topic (id-only payloads: the service reads what changed).
pub fn desired(config: &Config, backport: bool) -> Result<Vec<Value>, SubscriptionError> {
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
    Ok(WATCHED_TYPES
        .iter()
        .map(|kind| {
            subscription(
                format!("{kind}?"),
                format!("trd-sentinel: {kind} changes trigger a TRD assessment"),
            )
        })
        .collect())
}

/// Whether to use Backport topics: asked for, or (auto) advertised by the server.
async fn use_backport(client: &FhirClient, config: &Config) -> Result<bool, FhirError> {
    Ok(match config.subscriptions.mode {
        SubscriptionMode::Backport => true,
        SubscriptionMode::Classic => false,
        SubscriptionMode::Auto => {
            let statement = client
                .send(
                    reqwest::Method::GET,
                    "metadata",
                    None,
                    Idempotency::Idempotent,
                )
                .await?;
            let text = statement.to_string();
            text.contains("subscriptions-backport") || text.contains("\"SubscriptionTopic\"")
        }
    })
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

/// Creates what is missing, updates what differs, leaves the rest.
pub async fn ensure(
    client: &FhirClient,
    config: &Config,
) -> Result<EnsureReport, SubscriptionError> {
    let backport = use_backport(client, config).await?;
    let wanted = desired(config, backport)?;
    let mut report = EnsureReport::default();
    if backport {
        let topics = client.search("Basic", &[own_tag_search()]).await?;
        let has_topic = topics
            .iter()
            .flat_map(|p| {
                p.get("entry")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .any(|e| {
                e.pointer("/resource/extension")
                    .and_then(Value::as_array)
                    .is_some_and(|x| {
                        x.iter()
                            .any(|x| x.get("valueUri").and_then(Value::as_str) == Some(TOPIC_URL))
                    })
            });
        if has_topic {
            report.unchanged += 1;
        } else {
            client
                .send(
                    reqwest::Method::POST,
                    "Basic",
                    Some(&topic()),
                    Idempotency::Once,
                )
                .await?;
            report.created += 1;
        }
    }
    let existing = current(client).await?;
    for subscription in wanted {
        let criteria = subscription.get("criteria").cloned();
        match existing
            .iter()
            .find(|e| e.get("criteria") == criteria.as_ref())
        {
            Some(e) if same_channel(e, &subscription) => report.unchanged += 1,
            Some(e) => {
                let id = e.get("id").and_then(Value::as_str).unwrap_or_default();
                let mut body = subscription.clone();
                body["id"] = json!(id);
                client
                    .send(
                        reqwest::Method::PUT,
                        &format!("Subscription/{id}"),
                        Some(&body),
                        Idempotency::Idempotent,
                    )
                    .await?;
                report.updated += 1;
            }
            None => {
                client
                    .send(
                        reqwest::Method::POST,
                        "Subscription",
                        Some(&subscription),
                        Idempotency::Once,
                    )
                    .await?;
                report.created += 1;
            }
        }
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
