//! Response per trial: baseline = last score in [start - 30 d, start + 7 d], outcome =
//! last score in [start + 4 weeks, end + 14 d] (policy windows), percent change, class.

use serde::Serialize;
use time::{Date, Duration};

use super::adequacy::round2;
use super::knowledge::{InstrumentPurpose, Knowledge};
use super::policy::Policy;
use super::score::{ScorePoint, ScoreSeries};
use super::trial::Trial;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ResponseClass {
    NonResponse,
    Partial,
    Response,
    Remission,
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrialResponse {
    pub class: ResponseClass,
    pub instrument: Option<String>,
    pub baseline: Option<ScorePoint>,
    pub outcome: Option<ScorePoint>,
    /// Reduction from baseline, in percent (positive = better).
    pub percent_change: Option<f64>,
    /// Why the class is what it is, in one line.
    pub explanation: String,
}

pub fn judge(
    trial: &Trial,
    scores: &ScoreSeries,
    knowledge: &Knowledge,
    policy: &Policy,
    as_of: Date,
) -> TrialResponse {
    let [before, after] = policy.baseline_window_days;
    let baseline_window = (
        trial.start + Duration::days(i64::from(before)),
        trial.start + Duration::days(i64::from(after)),
    );
    let outcome_from = trial.start + Duration::weeks(i64::from(policy.outcome_from_weeks));
    let outcome_to =
        (trial.end + Duration::days(i64::from(policy.outcome_after_end_days))).min(as_of);
    let drug = knowledge.drugs.name(trial.drug);

    let depression_instruments = knowledge
        .instruments
        .iter()
        .enumerate()
        .filter(|(_, i)| i.measures == InstrumentPurpose::Depression);
    let mut first_missing: Option<String> = None;
    for (index, instrument) in depression_instruments {
        let baseline = scores.last_between(index, baseline_window.0, baseline_window.1);
        let outcome = scores.last_between(index, outcome_from, outcome_to);
        let (baseline, outcome) = match (baseline, outcome) {
            (Some(b), Some(o)) => (b.clone(), o.clone()),
            (b, o) => {
                if scores.by_instrument[index].is_empty() {
                    continue;
                }
                first_missing.get_or_insert_with(|| match (b, o) {
                    (None, _) => format!(
                        "no {} baseline between {} and {}",
                        instrument.name, baseline_window.0, baseline_window.1
                    ),
                    _ => format!(
                        "no {} since week {} of {drug} ({} to {})",
                        instrument.name, policy.outcome_from_weeks, outcome_from, outcome_to
                    ),
                });
                continue;
            }
        };
        if baseline.value <= 0.0 {
            first_missing.get_or_insert_with(|| {
                format!(
                    "{} baseline is 0: change cannot be measured",
                    instrument.name
                )
            });
            continue;
        }
        let reduction = (baseline.value - outcome.value) / baseline.value;
        let class = if instrument
            .remission_at_or_below
            .is_some_and(|r| outcome.value <= r)
        {
            ResponseClass::Remission
        } else if reduction + 1e-9 >= policy.response_from {
            ResponseClass::Response
        } else if reduction + 1e-9 >= policy.partial_response_from {
            ResponseClass::Partial
        } else {
            ResponseClass::NonResponse
        };
        let explanation = format!(
            "{} {} on {} -> {} on {} ({}% reduction)",
            instrument.name,
            super::dose::fmt(baseline.value),
            baseline.date,
            super::dose::fmt(outcome.value),
            outcome.date,
            super::dose::fmt(round2(reduction * 100.0))
        );
        return TrialResponse {
            class,
            instrument: Some(instrument.name.clone()),
            baseline: Some(baseline),
            outcome: Some(outcome),
            percent_change: Some(round2(reduction * 100.0)),
            explanation,
        };
    }
    TrialResponse {
        class: ResponseClass::Unknown,
        instrument: None,
        baseline: None,
        outcome: None,
        percent_change: None,
        explanation: first_missing.unwrap_or_else(|| {
            format!("no depression score (PHQ-9 or other) recorded around {drug}")
        }),
    }
}
