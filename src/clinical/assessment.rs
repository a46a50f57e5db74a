//! The Assessment: everything the engine concluded about one patient, with the
//! evidence for each conclusion. Serialises to the `evaluate --format jsonl` line.

use serde::Serialize;
use time::Date;

use super::adequacy::TrialVerdict;
use super::amm::AmmResult;
use super::episode::Episode;
use super::finding::Finding;
use super::record::SourceRef;
use super::response::TrialResponse;
use super::staging::{MghS, Msm, ThaseRush};
use super::status::{StatusVerdict, TrdStatus};
use super::suggestion::Suggestion;
use super::supply::IgnoredMedication;
use super::trial::{Augmentation, DoseStep, NonTrial, TrialRelation};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrialAssessment {
    pub id: String,
    pub ingredient: String,
    /// RxNorm ingredient code.
    pub rxnorm: String,
    pub class: String,
    pub start: Date,
    pub end: Date,
    pub ongoing: bool,
    /// Highest known daily dose (mg/day; mg/24 h for transdermal systems).
    pub daily_dose_mg: Option<f64>,
    pub dose_steps: Vec<DoseStep>,
    pub relation: TrialRelation,
    /// The earlier trial of the same agent this one re-tries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retrial_of: Option<String>,
    /// Only orders, no dispense or statement: use estimated, adherence unknown.
    pub orders_only: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub augmented_by: Vec<Augmentation>,
    pub adequacy: super::adequacy::Adequacy,
    /// Codes of the reasons, for quick filtering; details in `verdict.reasons`.
    pub reasons: Vec<super::adequacy::ReasonCode>,
    pub verdict: TrialVerdict,
    pub response: TrialResponse,
    /// Each supply behind the trial (a fill, an order's estimate, a statement), with
    /// its dose: the timeline's bars.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub supplies: Vec<SupplyPeriod>,
    /// Functional change over the trial, beside the symptom response.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub function: Option<super::function::FunctionalChange>,
    pub evidence: Vec<SourceRef>,
}

/// One supply of a trial's drug: the days it covers and the daily dose it gives.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SupplyPeriod {
    pub start: Date,
    /// Last day covered (inclusive).
    pub end: Date,
    pub daily_dose_mg: Option<f64>,
    pub origin: super::supply::SupplyOrigin,
    pub source: SourceRef,
}

pub use super::conditions::TreatmentEvent;

#[derive(Debug, Clone, PartialEq, Serialize)]
/// The clinician-facing summary, rendered by [`super::narrative::render`] once the
/// rest of the assessment is known.
pub struct Narrative {
    pub text: String,
    /// A FHIR Narrative div (xmlns XHTML).
    pub xhtml: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    pub patient: String,
    pub as_of: Date,
    pub policy: String,
    pub trd_status: TrdStatus,
    pub failed_adequate_trials: u32,
    /// The status decision in full: rule, counted and uncounted trials, what is missing.
    pub status: StatusVerdict,
    pub episode: Episode,
    pub thase_rush_stage: ThaseRush,
    pub msm: Option<Msm>,
    pub mgh_s: MghS,
    pub suggestions: Vec<Suggestion>,
    pub narrative: Narrative,
    pub trials: Vec<TrialAssessment>,
    /// Antidepressant or augmentation eras that are not trials, with why (a hypnotic
    /// dose, another indication, below the augmenting dose).
    pub non_trials: Vec<NonTrial>,
    pub amm: Option<AmmResult>,
    /// The quality measures asked for (`evaluate --measure`), one result each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub quality_measures: Vec<crate::clinical::measures::MeasureResult>,
    /// Psychotherapy courses (modality, sessions, period, adequacy, trials overlapped,
    /// scores during them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub psychotherapy: Vec<super::psychotherapy::Course>,
    pub findings: Vec<Finding>,
    /// Every score recorded up to the as-of date, by instrument (the summary's
    /// measurement series, the timeline's score line).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub measures: Vec<super::score::MeasureSeries>,
    /// ECT, TMS and esketamine sessions recorded up to the as-of date.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub treatments: Vec<TreatmentEvent>,
    /// The recorded diagnoses the knowledge's value sets name (the summary's problems).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<super::conditions::Problem>,
    /// Medications read but not tracked (not antidepressants or augmentation agents).
    pub ignored_medications: Vec<IgnoredMedication>,
}

impl Assessment {
    /// No antidepressant or augmentation exposure at all, no depression evidence and
    /// no safety finding: nothing the service has to say about this patient (most of
    /// a hospital's patients), so nothing is written back for them.
    pub fn has_nothing_to_report(&self) -> bool {
        self.trd_status == TrdStatus::NoDepressionEvidence
            && self.trials.is_empty()
            && self.non_trials.is_empty()
            && !self
                .findings
                .iter()
                .any(|f| f.severity == super::finding::Severity::Safety)
    }

    /// A referral to specialist care is among the suggestions (psychiatry, or an
    /// evaluation for ECT, TMS or esketamine): the treatment summary goes with it.
    pub fn suggests_referral(&self) -> bool {
        use super::suggestion::kinds;
        self.suggestions.iter().any(|s| {
            s.code == kinds::PSYCHIATRY_REFERRAL || s.code == kinds::NEUROMODULATION_EVALUATION
        })
    }
}
