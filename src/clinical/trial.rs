//! Trials: an exposure era of one antidepressant, with its dose steps, and how it
//! relates to the others (switch, combination, re-trial of the same agent) and to
//! augmentation agents. Eras that are not antidepressant treatment (a hypnotic dose
//! of trazodone, duloxetine for neuropathic pain, quetiapine below its augmenting
//! dose) are listed as `NonTrial`s with the reason, and judged no further.

use serde::Serialize;
use time::Date;

use super::conditions::{self, VS_PAIN_MIGRAINE_SLEEP};
use super::dates::plus_days;
use super::dose::DailyDose;
use super::era::ExposureEra;
use super::indication::Indication;
use super::knowledge::{DrugKind, DrugRef, Knowledge};
use super::numbers::fmt;
use super::policy::Policy;
use super::record::{PatientRecord, SourceRef};
use super::supply::{Supply, SupplyOrigin};

/// A dose level held from a date (the first supply at that level).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DoseStep {
    pub from: Date,
    pub daily_dose: DailyDose,
    pub source: SourceRef,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TrialRelation {
    /// Started with no antidepressant before it within the switch window.
    First,
    /// Started within the switch window after an earlier trial ended (or while it
    /// was tapering off, overlapping by no more than the combination threshold).
    SwitchFrom { trial: String },
    /// Started while another antidepressant continued (overlap beyond the threshold).
    CombinedWith { trial: String },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Augmentation {
    pub agent: String,
    pub start: Date,
    pub end: Date,
    pub evidence: Vec<SourceRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trial {
    /// "T1", "T2"... in start order.
    pub id: String,
    #[serde(skip)]
    pub drug: DrugRef,
    pub start: Date,
    /// Last covered day.
    pub end: Date,
    /// Supply reaches (within the gap) the as-of date.
    pub ongoing: bool,
    pub dose_steps: Vec<DoseStep>,
    pub relation: TrialRelation,
    /// An earlier trial of the same agent: this one is a re-trial of it.
    pub retrial_of: Option<String>,
    pub augmented_by: Vec<Augmentation>,
    pub extended_release: bool,
    pub origin: SupplyOrigin,
    /// Only orders (no dispense, no statement): use is estimated, adherence unknown.
    pub orders_only: bool,
    /// Eras from dispenses can measure adherence.
    #[serde(skip)]
    pub era: ExposureEra,
    pub evidence: Vec<SourceRef>,
}

impl Trial {
    /// The last day the trial can be judged on: its end, or the as-of date if earlier.
    pub fn observed_end(&self, as_of: Date) -> Date {
        self.end.min(as_of)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NonTrialReason {
    /// A dose used for something else (trazodone < 150 mg/day as a hypnotic).
    LowDoseUse,
    /// Ordered for a non-depression indication.
    OtherIndication,
    /// An augmentation agent below its augmenting dose (or with its dose unknown).
    BelowAugmentingDose,
}

/// An era that is not an antidepressant trial (or not augmentation), with why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NonTrial {
    pub ingredient: String,
    pub start: Date,
    pub end: Date,
    pub daily_dose_mg: Option<f64>,
    pub reason: NonTrialReason,
    pub text: String,
    pub evidence: Vec<SourceRef>,
}

/// Trials, and the eras that are not trials.
pub struct Trials {
    pub trials: Vec<Trial>,
    pub non_trials: Vec<NonTrial>,
}

pub fn build_trials(
    eras: Vec<ExposureEra>,
    supplies: &[Supply],
    record: &PatientRecord,
    knowledge: &Knowledge,
    policy: &Policy,
    as_of: Date,
) -> Trials {
    let mut non_trials = Vec::new();
    let mut antidepressant_eras = Vec::new();
    let mut agent_eras = Vec::new();
    for era in eras {
        let era_supplies: Vec<&Supply> = era
            .supplies
            .iter()
            .filter_map(|&i| supplies.get(i))
            .collect();
        match not_a_trial(&era, &era_supplies, record, knowledge, as_of) {
            Some((reason, text)) => non_trials.push(NonTrial {
                ingredient: knowledge.drugs.name(era.drug).to_string(),
                start: era.start,
                end: era.end,
                daily_dose_mg: max_dose(&era_supplies),
                reason,
                text,
                evidence: sources_of(&era_supplies),
            }),
            None if era.drug.kind == DrugKind::Antidepressant => antidepressant_eras.push(era),
            None => agent_eras.push(era),
        }
    }
    let mut ordered = antidepressant_eras;
    ordered.sort_by_key(|era| (era.start, era.drug));
    let gap_days = i64::from(policy.era_gap_days);
    let overlap_limit = i64::from(policy.combination_overlap_days);

    let mut trials: Vec<Trial> = Vec::with_capacity(ordered.len());
    for (n, era) in ordered.into_iter().enumerate() {
        let id = format!("T{}", n + 1);
        let relation = relate(&era, &trials, gap_days, overlap_limit);
        let retrial_of = trials
            .iter()
            .filter(|t| t.drug == era.drug)
            .max_by_key(|t| t.start)
            .map(|t| t.id.clone());
        let augmented_by = agent_eras
            .iter()
            .filter(|agent| agent.start >= era.start && agent.start <= era.end)
            .map(|agent| Augmentation {
                agent: knowledge.drugs.name(agent.drug).to_string(),
                start: agent.start,
                end: agent.end,
                evidence: sources_of(
                    &agent
                        .supplies
                        .iter()
                        .filter_map(|&i| supplies.get(i))
                        .collect::<Vec<_>>(),
                ),
            })
            .collect();
        let era_supplies: Vec<&Supply> = era
            .supplies
            .iter()
            .filter_map(|&i| supplies.get(i))
            .collect();
        let origin = era_supplies
            .iter()
            .map(|s| s.origin)
            .min()
            .unwrap_or(SupplyOrigin::Order);
        trials.push(Trial {
            id,
            drug: era.drug,
            start: era.start,
            end: era.end,
            ongoing: plus_days(era.end, gap_days) >= as_of,
            dose_steps: dose_steps(&era_supplies),
            relation,
            retrial_of,
            augmented_by,
            extended_release: era_supplies.iter().any(|s| s.extended_release),
            origin,
            orders_only: origin == SupplyOrigin::Order,
            era,
            evidence: sources_of(&era_supplies),
        });
    }
    Trials { trials, non_trials }
}

fn sources_of(supplies: &[&Supply]) -> Vec<SourceRef> {
    let mut evidence: Vec<SourceRef> = Vec::new();
    for source in supplies.iter().flat_map(|s| s.sources()) {
        if !evidence.contains(source) {
            evidence.push(source.clone());
        }
    }
    evidence
}

fn max_dose(supplies: &[&Supply]) -> Option<f64> {
    supplies
        .iter()
        .filter_map(|s| s.daily_dose.mg)
        .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))
}

/// Why an era is not a trial (or not augmentation), if it is not.
fn not_a_trial(
    era: &ExposureEra,
    supplies: &[&Supply],
    record: &PatientRecord,
    knowledge: &Knowledge,
    as_of: Date,
) -> Option<(NonTrialReason, String)> {
    let name = knowledge.drugs.name(era.drug);
    let max = max_dose(supplies);
    if let Some(agent) = knowledge.drugs.augmentation_agent(era.drug) {
        let from = agent.augmenting_from_mg;
        return match max {
            Some(mg) if mg + 1e-9 >= from => None,
            Some(mg) => Some((
                NonTrialReason::BelowAugmentingDose,
                format!("{name} {} mg/day is below its augmenting dose of {} mg/day: not counted as augmentation", fmt(mg), fmt(from)),
            )),
            None => Some((
                NonTrialReason::BelowAugmentingDose,
                format!("{name} dose unknown: not counted as augmentation (augmenting from {} mg/day)", fmt(from)),
            )),
        };
    }
    let drug = knowledge.drugs.antidepressant(era.drug)?;
    let other = supplies.iter().find_map(|s| match &s.indication {
        Indication::Other { reason } => Some(reason.clone()),
        _ => None,
    });
    let depression = supplies
        .iter()
        .any(|s| s.indication == Indication::Depression);
    if let (Some(reason), false) = (other, depression) {
        return Some((
            NonTrialReason::OtherIndication,
            format!("{name} ordered for {reason}: not a depression trial"),
        ));
    }
    let use_text = drug.low_dose_use.as_deref().unwrap_or("another use");
    let mg = max?;
    if let Some(below) = drug.not_antidepressant_below_mg.filter(|b| mg + 1e-9 < *b) {
        return Some((
            NonTrialReason::LowDoseUse,
            format!("{name} {} mg/day, below {} mg/day, is a {use_text} dose: not an antidepressant trial", fmt(mg), fmt(below)),
        ));
    }
    if let Some(limit) = drug
        .low_dose_with_indication_max_mg
        .filter(|l| mg <= *l + 1e-9)
    {
        let indications =
            conditions::matching(record, knowledge, VS_PAIN_MIGRAINE_SLEEP, false, as_of);
        if let Some(condition) = indications.first() {
            return Some((
                NonTrialReason::LowDoseUse,
                format!(
                    "{name} {} mg/day (<= {} mg/day) with a pain, migraine or sleep condition recorded ({}): {use_text} use, not an antidepressant trial",
                    fmt(mg), fmt(limit), condition.source
                ),
            ));
        }
    }
    None
}

fn relate(
    era: &ExposureEra,
    earlier: &[Trial],
    gap_days: i64,
    overlap_limit: i64,
) -> TrialRelation {
    // The most recent earlier trial that was still running, or ended within the gap.
    let previous = earlier
        .iter()
        .filter(|t| {
            t.drug != era.drug && t.start < era.start && plus_days(t.end, gap_days) >= era.start
        })
        .max_by_key(|t| t.end);
    match previous {
        None => TrialRelation::First,
        Some(prev) => {
            let overlap = (prev.end.min(era.end) - era.start).whole_days() + 1;
            if overlap > overlap_limit {
                TrialRelation::CombinedWith {
                    trial: prev.id.clone(),
                }
            } else {
                TrialRelation::SwitchFrom {
                    trial: prev.id.clone(),
                }
            }
        }
    }
}

/// A new step whenever the known dose changes; unknown doses only start a step when
/// nothing is known yet.
fn dose_steps(supplies: &[&Supply]) -> Vec<DoseStep> {
    let mut ordered: Vec<&&Supply> = supplies.iter().collect();
    ordered.sort_by_key(|s| s.start);
    let mut steps: Vec<DoseStep> = Vec::new();
    for supply in ordered {
        let changed = match steps.last() {
            None => true,
            Some(last) => match (last.daily_dose.mg, supply.daily_dose.mg) {
                (Some(a), Some(b)) => (a - b).abs() > 1e-6,
                (None, Some(_)) => true,
                _ => false,
            },
        };
        if changed {
            steps.push(DoseStep {
                from: supply.start,
                daily_dose: supply.daily_dose.clone(),
                source: supply.source.clone(),
            });
        }
    }
    steps
}
