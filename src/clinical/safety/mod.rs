//! Safety findings (docs/clinical-rules.md section 9): signals a clinician must not miss while a
//! patient is in the TRD pathway, whatever the TRD status. Each has severity
//! `safety`, comes with its evidence, and is ranked: the most urgent first.
//!
//! - suicide risk: PHQ-9 item 9 and the C-SSRS screener ([`suicide`]);
//! - medicines: the boxed warning under 25, MAOI washouts, linezolid / methylene
//!   blue, dose limits ([`medicines`]); lithium without a serum level ([`lithium`]).
//!
//! The rules and their thresholds live in `knowledge/safety.toml`.

mod lithium;
mod medicines;
mod suicide;

use time::Date;

use super::finding::Finding;
use super::knowledge::Knowledge;
use super::record::PatientRecord;
use super::score::ScoreSeries;
use super::supply::Supply;
use super::trial::{NonTrial, Trial};

/// What the safety rules read.
pub struct SafetyInput<'a> {
    pub record: &'a PatientRecord,
    pub scores: &'a ScoreSeries,
    pub trials: &'a [Trial],
    pub non_trials: &'a [NonTrial],
    pub supplies: &'a [Supply],
    pub as_of: Date,
}

/// How urgent a safety finding is, for ordering (lower first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    /// High suicide risk, the highest item-9 answer.
    Urgent,
    /// Another positive suicide-risk answer.
    SuicideRisk,
    /// A dangerous combination or dose.
    Medicine,
    /// Monitoring that is due.
    Monitoring,
}

/// Every safety finding, most urgent first.
pub fn check(input: &SafetyInput<'_>, knowledge: &Knowledge) -> Vec<Finding> {
    let mut ranked: Vec<(Rank, Finding)> = Vec::new();
    ranked.extend(suicide::check(input, knowledge));
    ranked.extend(medicines::serotonin(input, knowledge));
    ranked.extend(medicines::dose_limits(input, knowledge));
    ranked.extend(medicines::young_adult(input, knowledge));
    ranked.extend(lithium::check(input, knowledge));
    // Stable: within a rank, the order of the rules above.
    ranked.sort_by_key(|(rank, _)| *rank);
    ranked.into_iter().map(|(_, finding)| finding).collect()
}
