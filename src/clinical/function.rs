//! Function beside symptoms (docs/clinical-rules.md section 9): each trial's functional change
//! (baseline, outcome, change, band) on the first functional instrument with both,
//! using the symptom windows (baseline: last in [start - 30 d, start + 7 d]; outcome:
//! the last in [start + 4 weeks, end + 14 d]). Two findings: symptoms improved while
//! function is still impaired, and no functional measure at all in the episode of a
//! patient with TRD or at risk.

use serde::Serialize;
use time::Date;

use super::adequacy::round2;
use super::dates::plus_days;
use super::episode::Episode;
use super::finding::{codes, Finding, Severity};
use super::knowledge::{InstrumentPurpose, Knowledge};
use super::numbers::fmt;
use super::policy::Policy;
use super::response::ResponseClass;
use super::score::{ScorePoint, ScoreSeries};
use super::status::{JudgedTrial, TrdStatus};
use super::trial::Trial;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionalChange {
    pub instrument: String,
    pub baseline: ScorePoint,
    pub outcome: ScorePoint,
    /// Outcome minus baseline, in the instrument's units.
    pub change: f64,
    /// Whether the change is an improvement (lower is better, except Q-LES-Q-SF).
    pub improved: bool,
    /// The band of the outcome score, when the instrument has bands.
    pub band: Option<String>,
    /// Function still impaired at the outcome (None: the instrument has no threshold).
    pub impaired: Option<bool>,
}

impl FunctionalChange {
    /// "WSAS 24 -> 22 on 2024-03-28 (severe impairment)".
    pub fn describe(&self) -> String {
        let band = self
            .band
            .as_deref()
            .map(|b| format!(" ({b})"))
            .unwrap_or_default();
        format!(
            "{} {} -> {} on {}{band}",
            self.instrument,
            fmt(self.baseline.value),
            fmt(self.outcome.value),
            self.outcome.date,
            band = band
        )
    }
}

pub fn per_trial(
    trial: &Trial,
    scores: &ScoreSeries,
    knowledge: &Knowledge,
    policy: &Policy,
    as_of: Date,
) -> Option<FunctionalChange> {
    let [before, after] = policy.baseline_window_days;
    let baseline_from = plus_days(trial.start, i64::from(before));
    let baseline_to = plus_days(trial.start, i64::from(after));
    let outcome_from = plus_days(trial.start, 7 * i64::from(policy.outcome_from_weeks));
    let outcome_to = plus_days(trial.end, i64::from(policy.outcome_after_end_days)).min(as_of);
    knowledge
        .instruments
        .iter()
        .enumerate()
        .filter(|(_, i)| i.measures == InstrumentPurpose::Function)
        .find_map(|(index, instrument)| {
            let baseline = scores.last_between(index, baseline_from, baseline_to)?;
            let outcome = scores.last_between(index, outcome_from, outcome_to)?;
            let change = round2(outcome.value - baseline.value);
            Some(FunctionalChange {
                instrument: instrument.name.clone(),
                baseline: baseline.clone(),
                outcome: outcome.clone(),
                change,
                improved: if instrument.higher_is_better {
                    change > 0.0
                } else {
                    change < 0.0
                },
                band: instrument.severity(outcome.value).map(str::to_string),
                impaired: instrument.impaired(outcome.value),
            })
        })
}

pub fn findings(
    judged: &[JudgedTrial<'_>],
    changes: &[Option<FunctionalChange>],
    episode: &Episode,
    status: TrdStatus,
    scores: &ScoreSeries,
    knowledge: &Knowledge,
    as_of: Date,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (j, change) in judged.iter().zip(changes) {
        let Some(change) = change else { continue };
        let improved = matches!(
            j.response.class,
            ResponseClass::Response | ResponseClass::Remission
        );
        if !improved || change.impaired != Some(true) || !episode.trials.contains(&j.trial.id) {
            continue;
        }
        let class = match j.response.class {
            ResponseClass::Remission => "remission",
            _ => "response",
        };
        let symptoms = match (
            &j.response.instrument,
            &j.response.baseline,
            &j.response.outcome,
        ) {
            (Some(name), Some(b), Some(o)) => {
                format!("{name} {} -> {} ({class})", fmt(b.value), fmt(o.value))
            }
            _ => class.to_string(),
        };
        let text = format!(
            "{} {}: {symptoms}, but {}: symptoms improved, function still impaired",
            j.trial.id,
            j.ingredient,
            change.describe()
        );
        let mut evidence = vec![change.outcome.source.clone()];
        evidence.extend(j.response.outcome.iter().map(|o| o.source.clone()));
        out.push(Finding::new(
            codes::FUNCTION_STILL_IMPAIRED,
            Severity::Warning,
            text,
            evidence,
        ));
    }
    if status.at_risk_or_trd() {
        let from = episode.start.unwrap_or(Date::MIN);
        let measured = knowledge
            .instruments
            .iter()
            .zip(&scores.by_instrument)
            .filter(|(i, _)| i.measures == InstrumentPurpose::Function)
            .flat_map(|(_, points)| points)
            .any(|p| p.date >= from && p.date <= as_of);
        if !measured {
            let names: Vec<&str> = knowledge
                .instruments
                .iter()
                .filter(|i| i.measures == InstrumentPurpose::Function)
                .map(|i| i.name.as_str())
                .take(3)
                .collect();
            out.push(Finding::new(
                codes::NO_FUNCTIONAL_MEASURE,
                Severity::Info,
                format!(
                    "no functional measure ({}, ...) recorded in the current episode",
                    names.join(", ")
                ),
                vec![],
            ));
        }
    }
    out
}
