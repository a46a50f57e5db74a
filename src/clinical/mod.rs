//! The pure engine: from a patient's record to an assessment. No I/O, no clock, no
//! async: the as-of date, the policy and the knowledge are arguments, so the same
//! inputs always give the same assessment.
//!
//! Data flow inside: record -> supplies -> exposure eras -> trials -> verdicts
//! (adequacy, response) -> assessment.

pub mod adequacy;
pub mod amm;
pub mod assessment;
pub mod dose;
pub mod era;
pub mod finding;
pub mod knowledge;
pub mod policy;
pub mod product;
pub mod record;
pub mod response;
pub mod score;
pub mod supply;
pub mod trial;
pub mod units;

use time::Date;

pub use assessment::{Assessment, TrialAssessment};
pub use knowledge::Knowledge;
pub use policy::Policy;
pub use record::PatientRecord;

use finding::Finding;

/// Options that are not clinical policy.
#[derive(Debug, Clone, Copy, Default)]
pub struct AssessOptions {
    /// HEDIS AMM measurement year; default: the year of the as-of date.
    pub measurement_year: Option<i32>,
}

/// Assesses one patient as of a date. Facts dated after `as_of` are not used.
pub fn assess(
    record: &PatientRecord,
    policy: &Policy,
    knowledge: &Knowledge,
    as_of: Date,
) -> Assessment {
    assess_with(record, policy, knowledge, as_of, AssessOptions::default())
}

pub fn assess_with(
    record: &PatientRecord,
    policy: &Policy,
    knowledge: &Knowledge,
    as_of: Date,
    options: AssessOptions,
) -> Assessment {
    let mut findings: Vec<Finding> = record.notes.iter().map(Finding::from_note).collect();

    let mut ledger = supply::collect_supplies(record, knowledge, as_of);
    ledger.supplies.retain(|s| s.start <= as_of);
    findings.append(&mut ledger.findings);

    let eras = era::build_eras(&ledger.supplies, policy.era_gap_days);
    let trials = trial::build_trials(eras, &ledger.supplies, knowledge, policy, as_of);
    let scores = score::ScoreSeries::collect(record, knowledge, as_of, &mut findings);

    let trials = trials
        .iter()
        .map(|trial| {
            let not_taken: Vec<_> = ledger
                .not_taken
                .iter()
                .filter(|(drug, _)| *drug == trial.drug)
                .map(|(_, source)| source.clone())
                .collect();
            let verdict = adequacy::judge(trial, &not_taken, knowledge, policy, as_of);
            let response = response::judge(trial, &scores, knowledge, policy, as_of);
            let drug = knowledge.drugs.antidepressant(trial.drug);
            TrialAssessment {
                id: trial.id.clone(),
                ingredient: knowledge.drugs.name(trial.drug).to_string(),
                rxnorm: knowledge.drugs.rxnorm(trial.drug).to_string(),
                class: drug.map(|d| d.class.clone()).unwrap_or_default(),
                start: trial.start,
                end: trial.end,
                ongoing: trial.ongoing,
                daily_dose_mg: verdict.daily_dose_mg,
                dose_steps: trial.dose_steps.clone(),
                relation: trial.relation.clone(),
                augmented_by: trial.augmented_by.clone(),
                adequacy: verdict.adequacy,
                reasons: verdict.reasons.iter().map(|r| r.code).collect(),
                verdict,
                response,
                evidence: trial.evidence.clone(),
            }
        })
        .collect();

    let year = options.measurement_year.unwrap_or(as_of.year());
    let amm = amm::evaluate(record, &ledger.supplies, knowledge, year);

    Assessment {
        patient: record.patient.clone(),
        as_of,
        policy: policy.name.clone(),
        trials,
        amm,
        findings,
        ignored_medications: ledger.ignored,
    }
}
