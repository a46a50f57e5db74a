//! Gathering one patient's record from the EHR: eight searches (the Patient, for the
//! birth date the age-based safety rules need; orders, dispenses and statements with
//! `_include` of the Medications they name; scores and labs by code; diagnoses;
//! procedures; encounters, where some EHRs code psychotherapy), `_count` paging, read
//! into the same `PatientRecord` the batch reader builds.

use time::{Date, Duration};

use super::client::{FhirClient, FhirError};
use super::read::{ObservationCodes, ResourcePool};
use crate::clinical::knowledge::Knowledge;
use crate::clinical::record::PatientRecord;

#[derive(Debug)]
pub struct Gathered {
    pub record: PatientRecord,
    /// HTTP requests made (pages fetched).
    pub requests: usize,
}

/// The `system|code` list of every score and lab the engine reads.
pub fn observation_code_param(knowledge: &Knowledge) -> String {
    let codes: Vec<String> = knowledge
        .observation_codes()
        .into_iter()
        .map(|(system, code)| format!("{system}|{code}"))
        .collect();
    codes.join(",")
}

/// The searches for one patient: (resource type, parameters).
pub fn searches(
    patient: &str,
    knowledge: &Knowledge,
    look_back_months: u32,
    as_of: Date,
) -> Vec<(&'static str, Vec<(&'static str, String)>)> {
    let since = format!(
        "ge{}",
        as_of - Duration::days(i64::from(look_back_months) * 30)
    );
    let p = || ("patient", patient.to_string());
    let id = patient
        .strip_prefix("Patient/")
        .unwrap_or(patient)
        .to_string();
    vec![
        ("Patient", vec![("_id", id)]),
        (
            "MedicationRequest",
            vec![
                p(),
                ("authoredon", since.clone()),
                ("_include", "MedicationRequest:medication".into()),
            ],
        ),
        (
            "MedicationDispense",
            vec![
                p(),
                ("whenhandedover", since.clone()),
                ("_include", "MedicationDispense:medication".into()),
            ],
        ),
        (
            "MedicationStatement",
            vec![
                p(),
                ("effective", since.clone()),
                ("_include", "MedicationStatement:medication".into()),
            ],
        ),
        (
            "Observation",
            vec![
                p(),
                ("code", observation_code_param(knowledge)),
                ("date", since.clone()),
            ],
        ),
        // Diagnoses are not limited by date: a bipolar history is lifelong.
        ("Condition", vec![p()]),
        ("Procedure", vec![p(), ("date", since.clone())]),
        ("Encounter", vec![p(), ("date", since)]),
    ]
}

pub async fn gather(
    client: &FhirClient,
    patient: &str,
    knowledge: &Knowledge,
    look_back_months: u32,
    as_of: Date,
) -> Result<Gathered, FhirError> {
    let mut pool = ResourcePool::new(ObservationCodes::from_knowledge(knowledge));
    let mut requests = 0;
    for (resource_type, params) in searches(patient, knowledge, look_back_months, as_of) {
        // Page by page: a searchset Bundle reads like any other bundle (one bad
        // entry is a note), and only the pool keeps what the engine reads.
        requests += client
            .search_pages(resource_type, &params, |page| {
                pool.add_json(&page.to_string(), resource_type)
                    .map_err(|e| FhirError::Malformed {
                        url: resource_type.into(),
                        detail: e.to_string(),
                    })
            })
            .await?;
    }
    let record = pool.record_for(patient);
    Ok(Gathered { record, requests })
}
