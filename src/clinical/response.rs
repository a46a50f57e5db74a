//! Response per trial: baseline = last score in [start - 30 d, start + 7 d]; every
//! score in [start + 4 weeks, end + 14 d] (policy windows) is an outcome. The best
//! outcome decides the class: remission or response reached at any point makes a
//! responding trial, and a later rise while still on the drug is a relapse (Frank 1991;
//! docs/clinical-rules.md section 8), not a non-response. Non-response needs follow-up without
//! any response.

use serde::Serialize;
use time::Date;

use super::dates::plus_days;

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
    /// Reduction from baseline to `outcome`, in percent (positive = better).
    pub percent_change: Option<f64>,
    /// Symptoms returned after response or remission, while still on the drug.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relapse: Option<Relapse>,
    /// Why the class is what it is, in one line.
    pub explanation: String,
}

/// The first score after the response that is no longer a response (nor remission).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Relapse {
    pub point: ScorePoint,
    /// Reduction from baseline at the relapse, in percent.
    pub percent_change: f64,
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
        plus_days(trial.start, i64::from(before)),
        plus_days(trial.start, i64::from(after)),
    );
    let outcome_from = plus_days(trial.start, 7 * i64::from(policy.outcome_from_weeks));
    let outcome_to = plus_days(trial.end, i64::from(policy.outcome_after_end_days)).min(as_of);
    let drug = knowledge.drugs.name(trial.drug);

    let depression_instruments = knowledge
        .instruments
        .iter()
        .enumerate()
        .filter(|(_, i)| i.measures == InstrumentPurpose::Depression);
    let mut first_missing: Option<String> = None;
    for (index, instrument) in depression_instruments {
        let baseline = scores.last_between(index, baseline_window.0, baseline_window.1);
        let outcomes: Vec<&ScorePoint> = scores
            .by_instrument
            .get(index)
            .map(|points| {
                points
                    .iter()
                    .filter(|p| p.date >= outcome_from && p.date <= outcome_to)
                    .collect()
            })
            .unwrap_or_default();
        let baseline = match (baseline, outcomes.is_empty()) {
            (Some(b), false) => b.clone(),
            (b, _) => {
                if scores.by_instrument.get(index).is_none_or(|p| p.is_empty()) {
                    continue;
                }
                first_missing.get_or_insert_with(|| match b {
                    None => format!(
                        "no {} baseline between {} and {}",
                        instrument.name, baseline_window.0, baseline_window.1
                    ),
                    // A trial that ended (or an as-of date that falls) before its
                    // outcome window opens has no outcome to miss.
                    Some(_) if outcome_from > outcome_to && trial.end < outcome_from => format!(
                        "{drug} ended on {} before week {}: too early to judge a response",
                        trial.end, policy.outcome_from_weeks
                    ),
                    Some(_) if outcome_from > outcome_to => format!(
                        "week {} of {drug} ({outcome_from}) not reached yet",
                        policy.outcome_from_weeks
                    ),
                    Some(_) => format!(
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
        let classify = |point: &ScorePoint| {
            let reduction = (baseline.value - point.value) / baseline.value;
            let class = if instrument
                .remission_at_or_below
                .is_some_and(|r| point.value <= r)
            {
                ResponseClass::Remission
            } else if reduction + 1e-9 >= policy.response_from {
                ResponseClass::Response
            } else if reduction + 1e-9 >= policy.partial_response_from {
                ResponseClass::Partial
            } else {
                ResponseClass::NonResponse
            };
            (class, reduction)
        };
        // The best class reached: its first point for a response or remission (when
        // it was reached), its last point otherwise (the latest evidence of it).
        let rank = |class: ResponseClass| match class {
            ResponseClass::Remission => 4,
            ResponseClass::Response => 3,
            ResponseClass::Partial => 2,
            _ => 1,
        };
        let classified: Vec<(&ScorePoint, ResponseClass, f64)> = outcomes
            .iter()
            .map(|p| {
                let (class, reduction) = classify(p);
                (*p, class, reduction)
            })
            .collect();
        let Some(best_rank) = classified.iter().map(|(_, c, _)| rank(*c)).max() else {
            continue;
        };
        let responded = best_rank >= 3;
        let chosen = if responded {
            classified.iter().find(|(_, c, _)| rank(*c) == best_rank)
        } else {
            classified
                .iter()
                .rev()
                .find(|(_, c, _)| rank(*c) == best_rank)
        };
        let Some(&(outcome, class, reduction)) = chosen else {
            continue;
        };
        let relapse = if responded {
            classified
                .iter()
                .filter(|(p, _, _)| p.date > outcome.date && p.date <= trial.observed_end(as_of))
                .find(|(_, c, _)| rank(*c) < 3)
                .map(|(p, _, r)| Relapse {
                    point: (*p).clone(),
                    percent_change: round2(r * 100.0),
                })
        } else {
            None
        };
        let mut explanation = format!(
            "{} {} on {} -> {} on {} ({} reduction)",
            instrument.name,
            super::numbers::fmt(baseline.value),
            baseline.date,
            super::numbers::fmt(outcome.value),
            outcome.date,
            super::numbers::percent(reduction)
        );
        if let Some(relapse) = &relapse {
            explanation.push_str(&format!(
                "; relapse on {drug}: {} {} on {}",
                instrument.name,
                super::numbers::fmt(relapse.point.value),
                relapse.point.date
            ));
        }
        return TrialResponse {
            class,
            instrument: Some(instrument.name.clone()),
            baseline: Some(baseline),
            outcome: Some(outcome.clone()),
            percent_change: Some(round2(reduction * 100.0)),
            relapse,
            explanation,
        };
    }
    TrialResponse {
        class: ResponseClass::Unknown,
        instrument: None,
        baseline: None,
        outcome: None,
        percent_change: None,
        relapse: None,
        explanation: first_missing.unwrap_or_else(|| {
            format!("no depression score (PHQ-9 or other) recorded around {drug}")
        }),
    }
}
