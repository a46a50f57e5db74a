//! Trials: an exposure era of one antidepressant, with its dose steps, and how it
//! relates to the others (switch, combination) and to augmentation agents.

use serde::Serialize;
use time::Date;

use super::dose::DailyDose;
use super::era::ExposureEra;
use super::knowledge::{DrugKind, DrugRef, Knowledge};
use super::policy::Policy;
use super::record::SourceRef;
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
    pub augmented_by: Vec<Augmentation>,
    pub extended_release: bool,
    pub origin: SupplyOrigin,
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

pub fn build_trials(
    eras: Vec<ExposureEra>,
    supplies: &[Supply],
    knowledge: &Knowledge,
    policy: &Policy,
    as_of: Date,
) -> Vec<Trial> {
    let (antidepressant_eras, agent_eras): (Vec<_>, Vec<_>) = eras
        .into_iter()
        .partition(|era| era.drug.kind == DrugKind::Antidepressant);
    let mut ordered = antidepressant_eras;
    ordered.sort_by_key(|era| (era.start, era.drug));
    let gap = time::Duration::days(i64::from(policy.era_gap_days));
    let overlap_limit = i64::from(policy.combination_overlap_days);

    let mut trials: Vec<Trial> = Vec::with_capacity(ordered.len());
    for (n, era) in ordered.into_iter().enumerate() {
        let id = format!("T{}", n + 1);
        let relation = relate(&era, &trials, gap, overlap_limit);
        let augmented_by = agent_eras
            .iter()
            .filter(|agent| agent.start >= era.start && agent.start <= era.end)
            .map(|agent| Augmentation {
                agent: knowledge.drugs.name(agent.drug).to_string(),
                start: agent.start,
                end: agent.end,
                evidence: agent
                    .supplies
                    .iter()
                    .map(|&i| supplies[i].source.clone())
                    .collect(),
            })
            .collect();
        let era_supplies: Vec<&Supply> = era.supplies.iter().map(|&i| &supplies[i]).collect();
        let mut evidence: Vec<SourceRef> = era_supplies.iter().map(|s| s.source.clone()).collect();
        evidence.dedup();
        trials.push(Trial {
            id,
            drug: era.drug,
            start: era.start,
            end: era.end,
            ongoing: era.end + gap >= as_of,
            dose_steps: dose_steps(&era_supplies),
            relation,
            augmented_by,
            extended_release: era_supplies.iter().any(|s| s.extended_release),
            origin: era_supplies
                .iter()
                .map(|s| s.origin)
                .min()
                .unwrap_or(SupplyOrigin::Order),
            era,
            evidence,
        });
    }
    trials
}

fn relate(
    era: &ExposureEra,
    earlier: &[Trial],
    gap: time::Duration,
    overlap_limit: i64,
) -> TrialRelation {
    // The most recent earlier trial that was still running, or ended within the gap.
    let previous = earlier
        .iter()
        .filter(|t| t.drug != era.drug && t.start < era.start && t.end + gap >= era.start)
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
