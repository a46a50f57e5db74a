//! The EHR side of write-back: read the service's resources about the patient,
//! plan against them, and send the plan as one idempotent transaction (unless
//! dry-run).

use serde_json::Value;

use super::{
    content_hash, desired_resources, existing_from, kept_in_step, own_tag_search, plan, Existing,
    Plan,
};
use crate::clinical::assessment::Assessment;
use crate::config::WritebackSettings;
use crate::fhir::client::{FhirClient, FhirError, Idempotency, Search};

/// The searches that find the service's resources about this patient (one per
/// written type kept in step), for [`fetch_existing`] or a gather's batch.
pub fn own_searches(patient: &str, settings: &WritebackSettings) -> Vec<Search> {
    kept_in_step()
        .filter(|k| settings.writes(k))
        .map(|kind| {
            (
                kind,
                vec![("patient", patient.to_string()), own_tag_search()],
            )
        })
        .collect()
}

/// The service's resources in one search page.
pub fn existing_in(page: &Value, settings: &WritebackSettings) -> Vec<Existing> {
    page.get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            entry
                .get("resource")
                .and_then(|r| existing_from(r, &settings.identifier_system))
        })
        .collect()
}

/// The service's resources about this patient now on the EHR.
pub async fn fetch_existing(
    client: &FhirClient,
    patient: &str,
    settings: &WritebackSettings,
) -> Result<(Vec<Existing>, usize), FhirError> {
    let mut out = Vec::new();
    let mut requests = 0;
    for (kind, params) in own_searches(patient, settings) {
        requests += client
            .search_pages(kind, &params, |page| {
                out.extend(existing_in(&page, settings));
                Ok(())
            })
            .await?;
    }
    Ok((out, requests))
}

#[derive(Debug, Clone, Default)]
pub struct WriteOutcome {
    pub plan: Plan,
    /// The TRD status of the assessment Observation found on the EHR before this write.
    pub previous_status: Option<String>,
    /// The transaction, when something was (or in dry-run would be) written.
    pub transaction: Option<Value>,
    pub requests: usize,
    pub dry_run: bool,
    /// What the EHR should hold for this patient, as one hash (of every desired
    /// resource's content hash): the same assessment gives the same hash, so events
    /// carry it as their message id and consumers de-duplicate re-sent events.
    pub content_hash: String,
}

/// Compares, plans and (unless dry-run) sends one transaction for this patient.
/// `existing`: the service's resources about the patient when already gathered (in
/// the gather's batch); `None` reads them first.
pub async fn write_back(
    client: &FhirClient,
    a: &Assessment,
    settings: &WritebackSettings,
    existing: Option<Vec<Existing>>,
) -> Result<WriteOutcome, FhirError> {
    let (existing, mut requests) = match existing {
        Some(existing) => (existing, 0),
        None => fetch_existing(client, &a.patient, settings).await?,
    };
    let previous_status = existing
        .iter()
        .find(|e| {
            e.resource_type == "Observation" && e.identifier == format!("{}/assessment", a.patient)
        })
        .and_then(|e| {
            e.body
                .pointer("/valueCodeableConcept/coding/0/code")
                .and_then(Value::as_str)
        })
        .map(str::to_string);
    let desired = desired_resources(a, settings);
    let content_hash = content_hash(&a.patient, &desired);
    let mut plan = plan(a, desired, &existing, settings);
    if plan.entries.is_empty() {
        return Ok(WriteOutcome {
            previous_status,
            plan,
            transaction: None,
            requests,
            dry_run: settings.dry_run,
            content_hash,
        });
    }
    let idempotency = if plan.is_idempotent() {
        Idempotency::Idempotent
    } else {
        Idempotency::Once
    };
    let transaction = plan.take_transaction();
    if !settings.dry_run {
        client.transaction(&transaction, idempotency).await?;
        requests += 1;
    }
    Ok(WriteOutcome {
        previous_status,
        plan,
        transaction: Some(transaction),
        requests,
        dry_run: settings.dry_run,
        content_hash,
    })
}
