//! Which recorded diagnoses count: in a value set, not refuted or entered in error,
//! dated on or before the as-of date, and (unless any status will do) still active.

use serde::Serialize;
use time::Date;

use super::knowledge::Knowledge;
use super::record::{ConditionFact, PatientRecord, SourceRef};

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
/// The treatments beyond medication the engine recognises (the timeline marks them,
/// the suggestions name them once received), each by its ValueSet.
pub const TREATMENTS: &[(&str, &str)] = &[
    ("ECT", VS_ECT),
    ("TMS", "https://fhir.trd-sentinel.org/ValueSet/proc-tms"),
    (
        "esketamine",
        "https://fhir.trd-sentinel.org/ValueSet/proc-esketamine",
    ),
];

pub fn matching<'r>(
    record: &'r PatientRecord,
    knowledge: &Knowledge,
    value_set: &str,
    any_status: bool,
    as_of: Date,
) -> Vec<&'r ConditionFact> {
    matching_any(record, as_of)
        .filter(|c| {
            any_status
                || c.clinical_status
                    .as_deref()
                    .is_none_or(|s| ACTIVE.contains(&s))
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

/// A recorded diagnosis the knowledge names (a `dx-*` value set): the treatment
/// summary's problem list.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Problem {
    /// The value set's title ("PTSD", "Hypothyroidism").
    pub kind: String,
    /// The record's own words for it, when it has any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub onset: Option<Date>,
    /// When it ended: its abatement, else (resolved without a date) its recorded date
    /// when later than its onset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<Date>,
    pub active: bool,
    pub source: super::record::SourceRef,
}

impl Problem {
    /// Its dates as a reader needs them: "since 2019-05-01"; "2012-03-01 to
    /// 2013-06-01, resolved"; "from 2015-01-01, not active".
    pub fn when(&self) -> String {
        match (self.onset, self.ended, self.active) {
            (Some(onset), _, true) => format!("since {onset}"),
            (None, _, true) => String::new(),
            (Some(onset), Some(ended), false) => format!("{onset} to {ended}, resolved"),
            (None, Some(ended), false) => format!("resolved by {ended}"),
            (Some(onset), None, false) => format!("from {onset}, not active"),
            (None, None, false) => "not active".to_string(),
        }
    }
}

/// The record's diagnoses in the knowledge's diagnosis value sets, each once (under
/// the most specific set that holds it: the smallest, so PTSD is "PTSD" rather than
/// "non-depression indications"), oldest first.
pub fn problems(record: &PatientRecord, knowledge: &Knowledge, as_of: Date) -> Vec<Problem> {
    let mut sets: Vec<(&str, &str)> = knowledge.value_sets.diagnoses().collect();
    sets.sort_by_key(|(url, _)| (knowledge.value_sets.size(url), *url));
    let mut out: Vec<Problem> = matching_any(record, as_of)
        .filter_map(|c| {
            let (_, title) = sets.iter().find(|(url, _)| {
                c.codes
                    .iter()
                    .any(|code| knowledge.value_sets.contains(url, &code.system, &code.code))
            })?;
            Some(Problem {
                kind: (*title).to_string(),
                display: c.codes.iter().find_map(|code| code.display.clone()),
                onset: c.onset.or(c.recorded),
                ended: c
                    .abatement
                    .or(c.recorded.filter(|r| c.onset.is_some_and(|o| *r > o))),
                active: c
                    .clinical_status
                    .as_deref()
                    .is_none_or(|s| ACTIVE.contains(&s)),
                source: c.source.clone(),
            })
        })
        .collect();
    out.sort_by(|a, b| (a.onset, &a.source).cmp(&(b.onset, &b.source)));
    out
}

/// Verified conditions dated on or before the as-of date, whatever their status.
fn matching_any(record: &PatientRecord, as_of: Date) -> impl Iterator<Item = &ConditionFact> {
    record.conditions.iter().filter(move |c| {
        let verified = !c
            .verification_status
            .as_deref()
            .is_some_and(|v| NOT_VERIFIED.contains(&v));
        verified && c.onset.or(c.recorded).is_none_or(|d| d <= as_of)
    })
}

/// A treatment given on a day (ECT, TMS, esketamine): the timeline's markers and what
/// the suggestions know was received.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TreatmentEvent {
    pub kind: String,
    pub date: Date,
    pub source: SourceRef,
}

/// ECT, TMS and esketamine sessions done up to the as-of date, by date.
pub fn treatments(
    record: &PatientRecord,
    knowledge: &Knowledge,
    as_of: Date,
) -> Vec<TreatmentEvent> {
    let mut out: Vec<TreatmentEvent> = TREATMENTS
        .iter()
        .flat_map(|(kind, value_set)| {
            procedures_in(record, knowledge, value_set, as_of)
                .into_iter()
                .filter_map(move |p| {
                    Some(TreatmentEvent {
                        kind: kind.to_string(),
                        date: p.performed?,
                        source: p.source.clone(),
                    })
                })
        })
        .collect();
    out.sort_by(|a, b| (a.date, &a.source).cmp(&(b.date, &b.source)));
    out
}
