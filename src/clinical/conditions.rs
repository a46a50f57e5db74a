//! Which recorded diagnoses count: in a value set, not refuted or entered in error,
//! dated on or before the as-of date, and (unless any status will do) still active.

use time::Date;

use super::knowledge::Knowledge;
use super::record::{ConditionFact, PatientRecord};

const NOT_VERIFIED: &[&str] = &["refuted", "entered-in-error"];
pub const ACTIVE: &[&str] = &["active", "recurrence", "relapse"];

pub const VS_MAJOR_DEPRESSION: &str = "https://fhir.trd-sentinel.org/ValueSet/dx-major-depression";
pub const VS_PSYCHOTIC_DEPRESSION: &str =
    "https://fhir.trd-sentinel.org/ValueSet/dx-psychotic-depression";
pub const VS_BIPOLAR: &str = "https://fhir.trd-sentinel.org/ValueSet/dx-bipolar";
pub const VS_RECURRENT_DEPRESSION: &str =
    "https://fhir.trd-sentinel.org/ValueSet/dx-recurrent-depression";
pub const VS_NON_DEPRESSION_INDICATION: &str =
    "https://fhir.trd-sentinel.org/ValueSet/dx-non-depression-indication";
pub const VS_PAIN_MIGRAINE_SLEEP: &str =
    "https://fhir.trd-sentinel.org/ValueSet/dx-pain-migraine-sleep";
pub const VS_ECT: &str = "https://fhir.trd-sentinel.org/ValueSet/proc-ect";

pub fn matching<'r>(
    record: &'r PatientRecord,
    knowledge: &Knowledge,
    value_set: &str,
    any_status: bool,
    as_of: Date,
) -> Vec<&'r ConditionFact> {
    record
        .conditions
        .iter()
        .filter(|c| {
            let verified = !c
                .verification_status
                .as_deref()
                .is_some_and(|v| NOT_VERIFIED.contains(&v));
            let active = any_status
                || c.clinical_status
                    .as_deref()
                    .is_none_or(|s| ACTIVE.contains(&s));
            let dated = c.onset.or(c.recorded).is_none_or(|d| d <= as_of);
            verified && active && dated
        })
        .filter(|c| {
            c.codes.iter().any(|code| {
                knowledge
                    .value_sets
                    .contains(value_set, &code.system, &code.code)
            })
        })
        .collect()
}

/// Completed procedures in a value set, on or before the as-of date.
pub fn procedures_in<'r>(
    record: &'r PatientRecord,
    knowledge: &Knowledge,
    value_set: &str,
    as_of: Date,
) -> Vec<&'r super::record::ProcedureFact> {
    record
        .procedures
        .iter()
        .filter(|p| p.status == "completed" && p.performed.is_some_and(|d| d <= as_of))
        .filter(|p| {
            p.codes
                .iter()
                .any(|c| knowledge.value_sets.contains(value_set, &c.system, &c.code))
        })
        .collect()
}
