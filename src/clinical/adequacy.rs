//! Was a trial adequate? Dose at or above the drug's minimum, held for the policy's
//! weeks, taken (PDC) — with every reason that applies and the numbers behind them.

use serde::Serialize;
use time::Date;

use super::dates::{days_inclusive, plus_days};
use super::knowledge::Knowledge;
use super::numbers::{fmt, percent};
use super::policy::Policy;
use super::record::SourceRef;
use super::trial::{DoseStep, Trial};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Adequacy {
    Adequate,
    Inadequate,
    Indeterminate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReasonCode {
    DoseUnknown,
    DoseBelowMinimum,
    /// An ongoing trial on a starter dose, within the policy's titration window.
    Titrating,
    AsNeededDosing,
    #[serde(rename = "stopped-before-week-4")]
    StoppedBeforeWeek4,
    TooShort,
    OngoingTooEarly,
    LowAdherence,
    ReportedNotTaken,
}

impl ReasonCode {
    /// Inadequate reasons decide the verdict; indeterminate ones leave it open.
    fn makes(self) -> Adequacy {
        match self {
            Self::DoseUnknown | Self::AsNeededDosing | Self::OngoingTooEarly | Self::Titrating => {
                Adequacy::Indeterminate
            }
            _ => Adequacy::Inadequate,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdequacyReason {
    pub code: ReasonCode,
    pub text: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<SourceRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrialVerdict {
    pub adequacy: Adequacy,
    pub reasons: Vec<AdequacyReason>,
    /// Highest known daily dose in the trial.
    pub daily_dose_mg: Option<f64>,
    pub min_daily_mg: f64,
    /// Start of the longest run of days at or above the minimum dose.
    pub adequate_dose_from: Option<Date>,
    /// Last day of that run.
    pub adequate_dose_to: Option<Date>,
    pub weeks_total: f64,
    /// Weeks actually spent at or above the minimum: the longest run (a drop below
    /// the minimum ends a run).
    pub weeks_at_adequate_dose: f64,
    /// Proportion of days covered by dispenses; None when there are no dispenses.
    pub pdc: Option<f64>,
    /// Where adherence comes from: "dispenses", or why it is unknown.
    pub adherence_basis: String,
    pub required_weeks: u32,
    pub pdc_threshold: f64,
    pub policy: String,
}

pub fn judge(
    trial: &Trial,
    not_taken: &[SourceRef],
    knowledge: &Knowledge,
    policy: &Policy,
    as_of: Date,
) -> TrialVerdict {
    let drug = knowledge.drugs.antidepressant(trial.drug);
    let min = drug
        .map(|d| d.min_adequate_mg(trial.extended_release))
        .unwrap_or(f64::INFINITY);
    let name = knowledge.drugs.name(trial.drug);
    let observed_end = trial.observed_end(as_of);
    let weeks = |from: Date| ((observed_end - from).whole_days() + 1).max(0) as f64 / 7.0;
    let weeks_total = weeks(trial.start);
    let max_mg = trial
        .dose_steps
        .iter()
        .filter_map(|s| s.daily_dose.mg)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))));
    let run = longest_adequate_run(&trial.dose_steps, min, observed_end);
    let adequate_from = run.map(|(from, _)| from);
    let weeks_adequate = run
        .map(|(from, to)| days_inclusive(from, to) as f64 / 7.0)
        .unwrap_or(0.0);
    let titration_ends = plus_days(trial.start, 7 * i64::from(policy.titration_window_weeks));
    let mut reasons = Vec::new();
    let mut add = |code: ReasonCode, text: String, evidence: Vec<SourceRef>| {
        reasons.push(AdequacyReason {
            code,
            text,
            evidence,
        })
    };

    match max_mg {
        None => {
            let why = trial
                .dose_steps
                .first()
                .map(|s| s.daily_dose.basis.clone())
                .unwrap_or_default();
            add(
                ReasonCode::DoseUnknown,
                format!("{name} daily dose unknown: {why}"),
                trial.dose_steps.iter().map(|s| s.source.clone()).collect(),
            );
        }
        Some(mg) if mg + 1e-9 < min && trial.ongoing && as_of < titration_ends => {
            add(
                ReasonCode::Titrating,
                format!(
                    "{name} {} mg/day, below the minimum adequate {} mg/day, started {}: titrating (the {}-week titration window ends {titration_ends})",
                    fmt(mg),
                    fmt(min),
                    trial.start,
                    policy.titration_window_weeks
                ),
                vec![],
            );
        }
        Some(mg) if mg + 1e-9 < min => {
            add(
                ReasonCode::DoseBelowMinimum,
                format!(
                    "{name} {} mg/day is below the minimum adequate {} mg/day",
                    fmt(mg),
                    fmt(min)
                ),
                vec![],
            );
        }
        Some(_) => {
            // Reached the minimum, but fell back below it too soon: the dose the
            // trial ended on is what needs optimising.
            let last = last_known_dose(&trial.dose_steps);
            if let Some(last) = last.filter(|l| *l + 1e-9 < min) {
                if weeks_adequate < f64::from(policy.min_adequate_weeks) {
                    add(
                        ReasonCode::DoseBelowMinimum,
                        format!(
                            "{name} fell to {} mg/day, below the minimum adequate {} mg/day, after {} weeks at an adequate dose",
                            fmt(last),
                            fmt(min),
                            super::numbers::weeks(weeks_adequate)
                        ),
                        vec![],
                    );
                }
            }
        }
    }
    if trial.dose_steps.iter().any(|s| s.daily_dose.as_needed) {
        add(
            ReasonCode::AsNeededDosing,
            format!("{name} ordered as needed (PRN): intake unknown"),
            vec![],
        );
    }
    let required = policy.min_adequate_weeks;
    if !trial.ongoing && weeks_total < f64::from(policy.early_stop_weeks) {
        add(
            ReasonCode::StoppedBeforeWeek4,
            format!(
                "{name} stopped after {} weeks, before the end of week {}: not a failed trial",
                super::numbers::weeks(weeks_total),
                policy.early_stop_weeks
            ),
            vec![],
        );
    } else if adequate_from.is_some() && weeks_adequate < f64::from(required) {
        let text = format!(
            "{} weeks at adequate dose of the {required} required",
            super::numbers::weeks(weeks_adequate)
        );
        if trial.ongoing {
            add(
                ReasonCode::OngoingTooEarly,
                format!("{name} ongoing: {text}; too early to judge"),
                vec![],
            );
        } else {
            add(
                ReasonCode::TooShort,
                format!("{name} too short: {text}"),
                vec![],
            );
        }
    }
    let pdc = trial.era.dispensed.then(|| {
        let days = days_inclusive(trial.start, observed_end).max(1) as f64;
        trial.era.covered_days_between(trial.start, observed_end) as f64 / days
    });
    let given_on_ward = trial.origin == super::supply::SupplyOrigin::Administration;
    let dispensed = trial
        .evidence
        .iter()
        .any(|e| e.starts_with("MedicationDispense/"));
    let adherence_basis = if given_on_ward && dispensed {
        "ward administrations and dispenses".to_string()
    } else if given_on_ward {
        "ward administrations".to_string()
    } else if trial.era.dispensed {
        "dispenses".to_string()
    } else if trial.orders_only {
        "unknown: orders only (no dispense recorded), use estimated from the orders".to_string()
    } else {
        "unknown: patient-reported (medication statements)".to_string()
    };
    if let Some(pdc) = pdc.filter(|p| *p + 1e-9 < policy.pdc_threshold) {
        add(
            ReasonCode::LowAdherence,
            format!(
                "{name} adherence {} of days covered, below {}",
                percent(pdc),
                percent(policy.pdc_threshold)
            ),
            vec![],
        );
    }
    if !not_taken.is_empty() {
        add(
            ReasonCode::ReportedNotTaken,
            format!("patient statement: {name} not taken"),
            not_taken.to_vec(),
        );
    }

    let adequacy = if reasons
        .iter()
        .any(|r| r.code.makes() == Adequacy::Inadequate)
    {
        Adequacy::Inadequate
    } else if reasons.is_empty() {
        Adequacy::Adequate
    } else {
        Adequacy::Indeterminate
    };
    TrialVerdict {
        adequacy,
        reasons,
        daily_dose_mg: max_mg,
        min_daily_mg: min,
        adequate_dose_from: adequate_from,
        adequate_dose_to: run.map(|(_, to)| to),
        weeks_total: round2(weeks_total),
        weeks_at_adequate_dose: round2(weeks_adequate),
        pdc: pdc.map(round2),
        adherence_basis,
        required_weeks: required,
        pdc_threshold: policy.pdc_threshold,
        policy: policy.name.clone(),
    }
}

fn last_known_dose(steps: &[DoseStep]) -> Option<f64> {
    steps.iter().rev().find_map(|s| s.daily_dose.mg)
}

/// The longest run of days at or above `min`: each dose step holds until the next
/// step (an unknown dose keeps the level before it), and the trial's observed end
/// closes the last run.
fn longest_adequate_run(steps: &[DoseStep], min: f64, observed_end: Date) -> Option<(Date, Date)> {
    let mut best: Option<(Date, Date)> = None;
    let mut run_from: Option<Date> = None;
    let mut level: Option<f64> = None;
    let close = |from: Date, to: Date, best: &mut Option<(Date, Date)>| {
        if to >= from && best.is_none_or(|(f, t)| days_inclusive(from, to) > days_inclusive(f, t)) {
            *best = Some((from, to));
        }
    };
    for step in steps {
        if step.daily_dose.mg.is_some() {
            level = step.daily_dose.mg;
        }
        let adequate = level.is_some_and(|mg| mg + 1e-9 >= min);
        match (adequate, run_from) {
            (true, None) => run_from = Some(step.from),
            (false, Some(from)) => {
                close(from, plus_days(step.from, -1).min(observed_end), &mut best);
                run_from = None;
            }
            _ => {}
        }
    }
    if let Some(from) = run_from {
        close(from, observed_end, &mut best);
    }
    best
}

pub(crate) fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}
