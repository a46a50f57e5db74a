//! Subscription management: the service creates or updates the Subscriptions it
//! needs on the EHR, idempotently (found again by its tag and criteria).

use serde_json::{json, Value};

use super::reconcile::WATCHED_TYPES;
use crate::config::Config;
use crate::fhir::client::{FhirClient, FhirError, Idempotency};
use crate::fhir::writeback::{OWN_TAG_CODE, OWN_TAG_SYSTEM};

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

/// The classic R4 rest-hook Subscriptions this service wants.
pub fn desired(config: &Config) -> Result<Vec<Value>, SubscriptionError> {
    let base = config
        .http
        .public_base_url
        .as_deref()
        .ok_or(SubscriptionError::NoPublicUrl)?
        .trim_end_matches('/');
    let token = config.notify_token();
    // The token rides in the endpoint too: some servers do not send channel headers.
    let endpoint = match &token {
        Some(t) => format!("{base}/notify?token={}", t.expose()),
        None => format!("{base}/notify"),
    };
    let header: Vec<String> = token
        .iter()
        .map(|t| format!("Authorization: Bearer {}", t.expose()))
        .collect();
    Ok(WATCHED_TYPES
        .iter()
        .map(|kind| {
            json!({
                "resourceType": "Subscription",
                "meta": { "tag": [{ "system": OWN_TAG_SYSTEM, "code": OWN_TAG_CODE }] },
                "status": "requested",
                "reason": format!("trd-sentinel: {kind} changes trigger a TRD assessment"),
                "criteria": format!("{kind}?"),
                "channel": { "type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json", "header": header }
            })
        })
        .collect())
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
    let wanted = desired(config)?;
    let existing = current(client).await?;
    let mut report = EnsureReport::default();
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
    let pages = client
        .search(
            "Subscription",
            &[("_tag", format!("{OWN_TAG_SYSTEM}|{OWN_TAG_CODE}"))],
        )
        .await?;
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
