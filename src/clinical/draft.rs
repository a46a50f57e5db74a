//! Draft orders (the CDS Hooks order-select and order-sign moment): each
//! antidepressant or augmentation agent in a draft MedicationRequest, reviewed as a
//! hypothetical trial starting today against the patient's assessment, before the
//! prescriber signs.
//!
//! A draft becomes a fill handed over today: that is how the engine reads "taken
//! from today", with the draft's own dosage (an order inside a dispensed span would
//! yield to the dispenses). What it concludes:
//! - the agent already failed an adequate trial in this episode;
//! - a further antidepressant after the TRD definition is met;
//! - a dose below the minimum adequate dose that is not a titration start (the first
//!   weeks of an agent in the episode), with the earlier time at such doses;
//! - earlier trials of other agents were not adequate: optimise before switching;
//! - bipolar disorder, and no mood stabiliser or antipsychotic taken now;
//! - safety findings the draft brings (serotonin syndrome, dose limits, the boxed
//!   warning under 25).
//!
//! Pure, as the rest of the engine: the record, the drafts, the policy, the knowledge
//! and the date in; the review out.

use serde::Serialize;
use time::Date;

use super::adequacy::Adequacy;
use super::assessment::{Assessment, TrialAssessment};
use super::conditions;
use super::dates::plus_days;
use super::finding::{Finding, Severity};
use super::knowledge::{DrugKind, Knowledge};
use super::medicine_use::{names, uses_of};
use super::policy::Policy;
use super::record::{MedicationDispensed, MedicationOrder, PatientRecord, SourceRef};
use super::response::ResponseClass;
use super::status::TrdStatus;
use super::{assess_with, supply, AssessOptions};

/// Days a draft is taken to cover when it says nothing of its supply.
const DEFAULT_DRAFT_DAYS: f64 = 30.0;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DraftReview {
    /// The patient's assessment as the record stands (without the drafts).
    pub assessment: Assessment,
    /// One per antidepressant or augmentation agent in the drafts.
    pub agents: Vec<DraftAgent>,
    /// Safety findings that the drafts bring (each cites a draft, or is new with
    /// them).
    pub safety: Vec<Finding>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DraftAgent {
    /// The draft MedicationRequest.
    pub source: SourceRef,
    pub ingredient: String,
    pub rxnorm: String,
    pub augmentation: bool,
    /// The antidepressant's class, or the augmentation agent's kind.
    pub class: String,
    pub daily_dose_mg: Option<f64>,
    /// How the daily dose was read, or why it is unknown.
    pub dose_basis: String,
    /// The minimum adequate daily dose (antidepressants).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_daily_mg: Option<f64>,
    pub concerns: Vec<DraftConcern>,
}

/// A time spent at a dose below the minimum, in an earlier or the current trial.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DoseSpell {
    pub trial: String,
    pub from: Date,
    pub to: Date,
    pub daily_dose_mg: f64,
    pub weeks: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "concern", rename_all = "kebab-case")]
pub enum DraftConcern {
    /// The agent failed an adequate trial in the current episode (trial ids).
    AlreadyFailed { trials: Vec<String> },
    /// A further antidepressant although the TRD definition is met.
    FurtherAgentAfterTrd { failed_adequate_trials: u32 },
    /// Below the minimum adequate dose, and not a titration start: the agent was
    /// first taken in this episode on `first_started`.
    DoseBelowMinimum {
        first_started: Date,
        earlier: Vec<DoseSpell>,
    },
    /// Trials of other agents in the episode were not adequate (dose, duration,
    /// adherence): optimise before switching.
    EarlierTrialsNotAdequate { trials: Vec<String> },
    /// Bipolar disorder recorded, and no mood stabiliser or antipsychotic taken now.
    BipolarWithoutCover { diagnoses: Vec<SourceRef> },
}

impl DraftConcern {
    pub fn code(&self) -> &'static str {
        match self {
            Self::AlreadyFailed { .. } => "already-failed",
            Self::FurtherAgentAfterTrd { .. } => "further-agent-after-trd",
            Self::DoseBelowMinimum { .. } => "dose-below-minimum",
            Self::EarlierTrialsNotAdequate { .. } => "earlier-trials-not-adequate",
            Self::BipolarWithoutCover { .. } => "bipolar-without-cover",
        }
    }
}

/// Reviews draft orders (MedicationRequests read like any order) against the record.
pub fn review(
    record: &PatientRecord,
    drafts: &[MedicationOrder],
    policy: &Policy,
    knowledge: &Knowledge,
    as_of: Date,
    options: AssessOptions,
) -> DraftReview {
    let assessment = assess_with(record, policy, knowledge, as_of, options);
    let fills: Vec<MedicationDispensed> = drafts.iter().map(|d| as_fill(d, as_of)).collect();

    // The drafts' agents and doses, read as any fill is.
    let alone = PatientRecord {
        patient: record.patient.clone(),
        birth_date: record.birth_date,
        dispenses: fills.clone(),
        ..PatientRecord::default()
    };
    let ledger = supply::collect_supplies(&alone, knowledge, policy, as_of);
    let mut agents: Vec<DraftAgent> = Vec::new();
    for s in &ledger.supplies {
        if agents
            .iter()
            .any(|a| a.source == s.source && a.ingredient == knowledge.drugs.name(s.drug))
        {
            continue;
        }
        let antidepressant = knowledge.drugs.antidepressant(s.drug);
        let class = antidepressant
            .map(|d| d.class.clone())
            .or_else(|| {
                knowledge
                    .drugs
                    .augmentation_agent(s.drug)
                    .map(|a| a.kind.clone())
            })
            .unwrap_or_default();
        agents.push(DraftAgent {
            source: s.source.clone(),
            ingredient: knowledge.drugs.name(s.drug).to_string(),
            rxnorm: knowledge.drugs.rxnorm(s.drug).to_string(),
            augmentation: s.drug.kind == DrugKind::Augmentation,
            class,
            daily_dose_mg: s.daily_dose.mg,
            dose_basis: s.daily_dose.basis.clone(),
            min_daily_mg: antidepressant.map(|d| d.min_adequate_mg(s.extended_release)),
            concerns: Vec::new(),
        });
    }

    let covered = bipolar_cover(record, drafts, knowledge, as_of);
    let bipolar: Vec<SourceRef> =
        conditions::matching(record, knowledge, conditions::VS_BIPOLAR, true, as_of)
            .iter()
            .map(|c| c.source.clone())
            .collect();
    for agent in &mut agents {
        agent.concerns = concerns(agent, &assessment, policy, as_of, &bipolar, covered);
    }

    // The drafts taken from today: which safety findings they bring.
    let mut with = record.clone();
    with.dispenses.extend(fills);
    let hypothetical = assess_with(&with, policy, knowledge, as_of, options);
    let draft_sources: Vec<&SourceRef> = drafts.iter().map(|d| &d.source).collect();
    let safety = hypothetical
        .findings
        .into_iter()
        .filter(|f| f.severity == Severity::Safety)
        .filter(|f| {
            f.evidence.iter().any(|e| draft_sources.contains(&e))
                || !assessment
                    .findings
                    .iter()
                    .any(|b| b.code == f.code && b.text == f.text)
        })
        .collect();

    DraftReview {
        assessment,
        agents,
        safety,
    }
}

/// The draft as a fill handed over today, with its dosage and expected supply.
fn as_fill(draft: &MedicationOrder, as_of: Date) -> MedicationDispensed {
    MedicationDispensed {
        source: draft.source.clone(),
        status: "completed".into(),
        handed_over: Some(as_of),
        days_supply: Some(
            draft
                .expected_supply_days
                .filter(|d| d.is_finite() && *d >= 1.0)
                .unwrap_or(DEFAULT_DRAFT_DAYS),
        ),
        quantity: None,
        medication: draft.medication.clone(),
        dosage: draft.dosage.clone(),
        authorizing: vec![],
    }
}

/// A mood stabiliser or antipsychotic taken now, or among the drafts.
fn bipolar_cover(
    record: &PatientRecord,
    drafts: &[MedicationOrder],
    knowledge: &Knowledge,
    as_of: Date,
) -> bool {
    let cover = &knowledge.safety.bipolar_cover;
    let agents: Vec<_> = cover.agents().cloned().collect();
    let since = plus_days(as_of, -i64::from(cover.current_within_days));
    let taken = uses_of(record, &agents, as_of)
        .iter()
        .any(|u| u.end >= since);
    let drafted = drafts
        .iter()
        .any(|d| agents.iter().any(|a| names(&d.medication, a)));
    taken || drafted
}

fn in_episode<'a>(assessment: &'a Assessment) -> impl Iterator<Item = &'a TrialAssessment> + 'a {
    assessment
        .trials
        .iter()
        .filter(|t| assessment.episode.trials.contains(&t.id))
}

fn failed(t: &TrialAssessment) -> bool {
    t.adequacy == Adequacy::Adequate
        && matches!(
            t.response.class,
            ResponseClass::NonResponse | ResponseClass::Partial
        )
}

fn concerns(
    agent: &DraftAgent,
    assessment: &Assessment,
    policy: &Policy,
    as_of: Date,
    bipolar: &[SourceRef],
    covered: bool,
) -> Vec<DraftConcern> {
    let mut out = Vec::new();
    let same: Vec<&TrialAssessment> = in_episode(assessment)
        .filter(|t| t.ingredient == agent.ingredient)
        .collect();
    let continuing = same.iter().any(|t| t.ongoing);

    let failures: Vec<String> = same
        .iter()
        .filter(|t| failed(t))
        .map(|t| t.id.clone())
        .collect();
    if !failures.is_empty() {
        out.push(DraftConcern::AlreadyFailed { trials: failures });
    }

    if !agent.augmentation {
        if assessment.trd_status == TrdStatus::Trd && !continuing {
            out.push(DraftConcern::FurtherAgentAfterTrd {
                failed_adequate_trials: assessment.failed_adequate_trials,
            });
        }
        if let Some(concern) = dose_below_minimum(agent, &same, policy, as_of) {
            out.push(concern);
        }
        if !continuing {
            let inadequate: Vec<String> = in_episode(assessment)
                .filter(|t| t.ingredient != agent.ingredient)
                .filter(|t| t.adequacy == Adequacy::Inadequate)
                .filter(|t| {
                    !matches!(
                        t.response.class,
                        ResponseClass::Response | ResponseClass::Remission
                    )
                })
                .map(|t| t.id.clone())
                .collect();
            if !inadequate.is_empty() {
                out.push(DraftConcern::EarlierTrialsNotAdequate { trials: inadequate });
            }
        }
        if !bipolar.is_empty() && !covered {
            out.push(DraftConcern::BipolarWithoutCover {
                diagnoses: bipolar.to_vec(),
            });
        }
    }
    out
}

/// Below the minimum, after the agent's first weeks in this episode: the earlier
/// time at doses below the minimum, from the trials' dose steps.
fn dose_below_minimum(
    agent: &DraftAgent,
    same: &[&TrialAssessment],
    policy: &Policy,
    as_of: Date,
) -> Option<DraftConcern> {
    let (mg, min) = (agent.daily_dose_mg?, agent.min_daily_mg?);
    if mg + 1e-9 >= min {
        return None;
    }
    let first_started = same.iter().map(|t| t.start).min()?;
    let titration_ends = plus_days(first_started, 7 * i64::from(policy.titration_window_weeks));
    if as_of < titration_ends {
        return None; // a titration start: the first weeks of the agent
    }
    let mut earlier = Vec::new();
    for t in same {
        for (i, step) in t.dose_steps.iter().enumerate() {
            let Some(step_mg) = step.daily_dose.mg.filter(|d| *d + 1e-9 < min) else {
                continue;
            };
            let to = t
                .dose_steps
                .get(i + 1)
                .map(|next| plus_days(next.from, -1))
                .unwrap_or(t.end)
                .min(as_of);
            let days = (to - step.from).whole_days() + 1;
            earlier.push(DoseSpell {
                trial: t.id.clone(),
                from: step.from,
                to,
                daily_dose_mg: step_mg,
                weeks: (days.max(0) as f64 / 7.0 * 10.0).round() / 10.0,
            });
        }
    }
    Some(DraftConcern::DoseBelowMinimum {
        first_started,
        earlier,
    })
}
