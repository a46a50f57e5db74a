//! Gathering one patient's record from the EHR: one search per type of
//! [`crate::resource_types::READ_TYPES`] (the Patient, for the birth date the
//! age-based safety rules need; orders, dispenses, statements and inpatient
//! administrations with `_include` of the Medications they name; scores and labs by
//! code; questionnaire responses; diagnoses; procedures; encounters, where some EHRs
//! code psychotherapy), `_count` paging, read
//! into the same `PatientRecord` the batch reader builds; with them, when asked, the
//! service's own resources about the patient (what write-back compares against).
//!
//! Where the EHR lists `batch`, all of it is one batch Bundle of searches: one
//! request, plus one per further page where an answer is paged. Otherwise each
//! search is its own request.

use serde_json::Value;
use time::{Date, Duration};

use super::client::{FhirClient, FhirError, Search};
use super::read::{Relevance, ResourcePool};
use super::writeback::{existing_in, own_searches, Existing};
use crate::clinical::record::PatientRecord;
use crate::config::WritebackSettings;
use crate::resource_types::READ_TYPES;

#[derive(Debug)]
pub struct Gathered {
    pub record: PatientRecord,
    /// The service's own resources about the patient, when they were asked for.
    pub existing: Option<Vec<Existing>>,
    /// HTTP requests made (batches and pages fetched).
    pub requests: usize,
}

/// The searches for one patient: (resource type, parameters).
pub fn searches(
    patient: &str,
    relevance: &Relevance,
    look_back_months: u32,
    as_of: Date,
) -> Vec<Search> {
    let since = format!(
        "ge{}",
        as_of - Duration::days(i64::from(look_back_months) * 30)
    );
    let id = patient
        .strip_prefix("Patient/")
        .unwrap_or(patient)
        .to_string();
    READ_TYPES
        .iter()
        .map(|kind| {
            if kind.name == "Patient" {
                return (kind.name, vec![("_id", id.clone())]);
            }
            let mut params = vec![("patient", patient.to_string())];
            if kind.name == "Observation" {
                params.push(("code", relevance.observation_search().to_string()));
            }
            if let Some(date) = kind.date_param {
                params.push((date, since.clone()));
            }
            if kind.names_medication {
                params.push(("_include", format!("{}:medication", kind.name)));
            }
            (kind.name, params)
        })
        .collect()
}

/// Gathers the record, and the service's own resources when `own` says which.
pub async fn gather(
    client: &FhirClient,
    patient: &str,
    relevance: &Relevance,
    look_back_months: u32,
    as_of: Date,
    own: Option<&WritebackSettings>,
) -> Result<Gathered, FhirError> {
    // The relevance is built once by the caller and shared: its clone is a few
    // reference counts (its Aho-Corasick automaton is costly to build).
    let mut pool = ResourcePool::new(relevance.clone());
    let record_searches = searches(patient, relevance, look_back_months, as_of);
    let own_searches = own.map(|settings| own_searches(patient, settings));
    let mut existing = Vec::new();
    let mut add_own_page = |page: &Value| {
        if let Some(settings) = own {
            existing.extend(existing_in(page, settings));
        }
    };
    // A searchset Bundle reads like any other bundle (one bad entry is a note), and
    // only the pool keeps what the engine reads: pages are not held. A batch's pages
    // arrive as text and go to the reader as they are; later pages of a paged answer
    // arrive parsed.
    let mut add_record_text = |page: &str, resource_type: &str| {
        pool.add_json(page, resource_type)
            .map_err(|e| FhirError::Malformed {
                url: resource_type.into(),
                detail: e.to_string(),
            })
    };
    let mut requests = 0;
    if client.batches_searches() {
        let all: Vec<Search> = record_searches
            .iter()
            .chain(own_searches.iter().flatten())
            .cloned()
            .collect();
        let first_pages = client.search_batch(&all).await?;
        requests += 1;
        for (n, ((resource_type, _), first)) in all.iter().zip(first_pages).enumerate() {
            if n < record_searches.len() {
                add_record_text(&first, resource_type)?;
            } else {
                let page: Value =
                    serde_json::from_str(&first).map_err(|e| FhirError::Malformed {
                        url: resource_type.to_string(),
                        detail: e.to_string(),
                    })?;
                add_own_page(&page);
            }
            requests += client
                .follow_text_pages(&first, |page| {
                    if n < record_searches.len() {
                        add_record_text(&page.to_string(), resource_type)
                    } else {
                        add_own_page(&page);
                        Ok(())
                    }
                })
                .await?;
        }
    } else {
        for (resource_type, params) in &record_searches {
            requests += client
                .search_pages(resource_type, params, |page| {
                    add_record_text(&page.to_string(), resource_type)
                })
                .await?;
        }
        for (resource_type, params) in own_searches.iter().flatten() {
            requests += client
                .search_pages(resource_type, params, |page| {
                    add_own_page(&page);
                    Ok(())
                })
                .await?;
        }
    }
    let record = pool.record_for(patient);
    Ok(Gathered {
        record,
        existing: own.map(|_| existing),
        requests,
    })
}
