//! A remission or response label is only as fresh as the score behind it: when the
//! last depression score is older than the policy's window, or the drug that earned
//! the label has stopped, a finding asks for a new measurement (measurement-based
//! care) instead of letting a months-old "in remission" stand unqualified.

use time::Date;

use super::finding::{codes, Finding, Severity};
use super::knowledge::{InstrumentPurpose, Knowledge};
use super::numbers::fmt;
use super::policy::Policy;
use super::response::ResponseClass;
use super::score::ScoreSeries;
use super::status::{JudgedTrial, TrdStatus};

/// The most recent depression-scale score, with its instrument.
fn last_depression_score<'s, 'k>(
    scores: &'s ScoreSeries,
    knowledge: &'k Knowledge,
) -> Option<(
    &'k super::knowledge::Instrument,
    &'s super::score::ScorePoint,
)> {
    knowledge
        .instruments
        .iter()
        .zip(&scores.by_instrument)
        .filter(|(i, _)| i.measures == InstrumentPurpose::Depression)
        .filter_map(|(i, points)| Some((i, points.last()?)))
        .max_by_key(|(_, p)| p.date)
}

/// What a remission or response label is as old as: "; last depression score PHQ-9 3
/// on 2024-03-28, 206 days before the as-of date", for the status explanation.
pub fn label_age(
    status: TrdStatus,
    scores: &ScoreSeries,
    knowledge: &Knowledge,
    as_of: Date,
) -> Option<String> {
    if !matches!(status, TrdStatus::Remission | TrdStatus::Responding) {
        return None;
    }
    let (instrument, last) = last_depression_score(scores, knowledge)?;
    Some(format!(
        "; last depression score {} {} on {}, {} days before the as-of date",
        instrument.name,
        fmt(last.value),
        last.date,
        (as_of - last.date).whole_days()
    ))
}

pub fn stale_label(
    status: TrdStatus,
    judged: &[JudgedTrial<'_>],
    episode_trials: &[String],
    scores: &ScoreSeries,
    knowledge: &Knowledge,
    policy: &Policy,
    as_of: Date,
) -> Option<Finding> {
    let (label, class) = match status {
        TrdStatus::Remission => ("remission", ResponseClass::Remission),
        TrdStatus::Responding => ("response", ResponseClass::Response),
        _ => return None,
    };
    let trial = judged
        .iter()
        .filter(|j| episode_trials.contains(&j.trial.id) && j.response.class == class)
        .max_by_key(|j| j.trial.start)?;
    let (instrument, last) = last_depression_score(scores, knowledge)?;
    let age_days = (as_of - last.date).whole_days();
    let stale = age_days > i64::from(policy.remeasure_after_days);
    let stopped = (!trial.trial.ongoing).then_some(trial.trial.end);
    let score = format!("{} {} of {}", instrument.name, fmt(last.value), last.date);
    let text = match stopped {
        _ if stale => {
            let stopped = stopped
                .map(|end| format!("; no {} supplied after {end}", trial.ingredient))
                .unwrap_or_default();
            format!(
                "'{label}' rests on {score} (the last depression score, {age_days} days old, more than {}{stopped}): measure symptoms again before relying on it (measurement-based care)",
                policy.remeasure_after_days
            )
        }
        Some(end) => format!(
            "'{label}' was reached on {}, none supplied after {end}; the last depression score is {score}: review whether it holds without the drug, and keep measuring (measurement-based care)",
            trial.ingredient
        ),
        None => return None,
    };
    let mut evidence = vec![last.source.clone()];
    evidence.extend(trial.trial.evidence.iter().cloned());
    Some(Finding::new(
        codes::REMEASURE_SYMPTOMS,
        Severity::Warning,
        text,
        evidence,
    ))
}
