//! TRD status: how many adequate trials failed in the current episode, whether that
//! meets the policy's definition, and which trials counted and why.

use serde::Serialize;

use super::adequacy::{Adequacy, TrialVerdict};
use super::episode::Episode;
use super::numbers::{fmt, weeks};
use super::policy::Policy;
use super::response::{ResponseClass, TrialResponse};
use super::trial::Trial;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TrdStatus {
    /// No antidepressant trial in the current episode.
    NotTreated,
    /// Trials, but none adequate (dose, duration, adherence): pseudo-resistance.
    InadequatelyTreated,
    /// Adequacy or response cannot be decided from the data; `missing` says what.
    InsufficientData,
    Responding,
    Remission,
    /// Failed adequate trials, fewer than the definition needs (at risk).
    OneFailedTrial,
    /// The failures so far were partial responses (25-50% reduction).
    PartialResponseDepression,
    Trd,
    /// Bipolar spectrum disorder recorded in a patient on antidepressants: never
    /// labelled TRD.
    ExcludedBipolarSpectrum,
    /// Antidepressants, but no depression diagnosis and no depression-scale score:
    /// they may be for another indication, so no TRD pathway applies.
    NoDepressionEvidence,
}

impl TrdStatus {
    pub fn code(self) -> &'static str {
        match self {
            Self::NotTreated => "not-treated",
            Self::InadequatelyTreated => "inadequately-treated",
            Self::InsufficientData => "insufficient-data",
            Self::Responding => "responding",
            Self::Remission => "remission",
            Self::OneFailedTrial => "one-failed-trial",
            Self::PartialResponseDepression => "partial-response-depression",
            Self::Trd => "trd",
            Self::ExcludedBipolarSpectrum => "excluded-bipolar-spectrum",
            Self::NoDepressionEvidence => "no-depression-evidence",
        }
    }

    /// At risk of TRD: the work-up and referral suggestions apply.
    pub fn at_risk_or_trd(self) -> bool {
        matches!(
            self,
            Self::Trd | Self::OneFailedTrial | Self::PartialResponseDepression
        )
    }

    pub const ALL: [TrdStatus; 10] = [
        Self::NotTreated,
        Self::InadequatelyTreated,
        Self::InsufficientData,
        Self::Responding,
        Self::Remission,
        Self::OneFailedTrial,
        Self::PartialResponseDepression,
        Self::Trd,
        Self::ExcludedBipolarSpectrum,
        Self::NoDepressionEvidence,
    ];
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrialCount {
    pub trial: String,
    pub ingredient: String,
    pub counted: bool,
    pub why: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatusVerdict {
    pub status: TrdStatus,
    pub failed_adequate_trials: u32,
    /// Classes of the failed trials (EMA-style policies need two).
    pub failed_classes: Vec<String>,
    /// The rule applied, in words.
    pub rule: String,
    pub explanation: String,
    pub trials: Vec<TrialCount>,
    /// What the data lacks to decide more.
    pub missing: Vec<String>,
}

/// One trial's part in the decision.
pub struct JudgedTrial<'a> {
    pub trial: &'a Trial,
    pub ingredient: &'a str,
    pub class: &'a str,
    pub verdict: &'a TrialVerdict,
    pub response: &'a TrialResponse,
}

/// What the record says about depression itself, apart from the drugs.
#[derive(Debug, Clone, Default)]
pub struct DepressionEvidence {
    pub diagnoses: usize,
    pub scores: usize,
}

impl DepressionEvidence {
    pub fn any(&self) -> bool {
        self.diagnoses > 0 || self.scores > 0
    }
}

pub fn decide(
    judged: &[JudgedTrial<'_>],
    episode: &Episode,
    bipolar: bool,
    evidence: &DepressionEvidence,
    policy: &Policy,
) -> StatusVerdict {
    let mut counts = Vec::new();
    let mut failures: Vec<&JudgedTrial<'_>> = Vec::new();
    let mut missing = Vec::new();
    for j in judged {
        let in_episode = episode.trials.contains(&j.trial.id);
        let (counted, why) = if !in_episode {
            let start = episode.start.map(|d| d.to_string()).unwrap_or_default();
            (
                false,
                format!("before the current episode (which starts {start})"),
            )
        } else if j.verdict.adequacy != Adequacy::Adequate {
            let reasons: Vec<&str> = j.verdict.reasons.iter().map(|r| r.text.as_str()).collect();
            if j.verdict.adequacy == Adequacy::Indeterminate {
                missing.push(format!(
                    "{} {}: {}",
                    j.trial.id,
                    j.ingredient,
                    reasons.join("; ")
                ));
            }
            (
                false,
                format!("not an adequate trial: {}", reasons.join("; ")),
            )
        } else {
            let adequate = format!(
                "adequate ({} mg/day, {} weeks at adequate dose)",
                j.verdict
                    .daily_dose_mg
                    .map(fmt)
                    .unwrap_or_else(|| "?".into()),
                weeks(j.verdict.weeks_at_adequate_dose)
            );
            match j.response.class {
                ResponseClass::NonResponse | ResponseClass::Partial => {
                    failures.push(j);
                    let class = if j.response.class == ResponseClass::Partial {
                        "partial response"
                    } else {
                        "non-response"
                    };
                    (
                        true,
                        format!("{adequate}, {class}: {}", j.response.explanation),
                    )
                }
                ResponseClass::Unknown => {
                    missing.push(format!(
                        "{} {}: {}",
                        j.trial.id, j.ingredient, j.response.explanation
                    ));
                    (
                        false,
                        format!(
                            "{adequate}, but response unknown: {}",
                            j.response.explanation
                        ),
                    )
                }
                ResponseClass::Response | ResponseClass::Remission => (
                    false,
                    format!("{adequate}, responded: {}", j.response.explanation),
                ),
            }
        };
        counts.push(TrialCount {
            trial: j.trial.id.clone(),
            ingredient: j.ingredient.to_string(),
            counted,
            why,
        });
    }

    // Agents, not eras: a re-trial of an agent that failed counts that agent once
    // (its latest failed trial), docs/clinical-rules.md section 7.
    let mut agents: Vec<&JudgedTrial<'_>> = Vec::new();
    for j in &failures {
        match agents.iter_mut().find(|a| a.trial.drug == j.trial.drug) {
            Some(kept) if kept.trial.start < j.trial.start => *kept = j,
            Some(_) => {}
            None => agents.push(j),
        }
    }
    for j in &failures {
        let Some(kept) = agents.iter().find(|a| a.trial.drug == j.trial.drug) else {
            continue;
        };
        if kept.trial.id != j.trial.id {
            if let Some(count) = counts.iter_mut().find(|c| c.trial == j.trial.id) {
                count.counted = false;
                count.why = format!(
                    "{}; {} failed again in {} (re-trial): one agent counts once",
                    count.why, j.ingredient, kept.trial.id
                );
            }
        }
    }
    let failures = agents;
    let mut classes: Vec<String> = failures.iter().map(|j| j.class.to_string()).collect();
    classes.sort();
    classes.dedup();
    let needed = policy.trd_min_failed_trials;
    let failed = u32::try_from(failures.len()).unwrap_or(u32::MAX);
    let classes_needed = if policy.trd_require_different_classes {
        needed.min(2) as usize
    } else {
        1
    };
    let meets = failed >= needed && classes.len() >= classes_needed;
    let rule = if policy.trd_require_different_classes {
        format!(">= {needed} failed adequate trials of different classes in the current episode (policy {})", policy.name)
    } else {
        format!(
            ">= {needed} failed adequate trials in the current episode (policy {})",
            policy.name
        )
    };

    let latest_known = judged
        .iter()
        .filter(|j| {
            episode.trials.contains(&j.trial.id) && j.response.class != ResponseClass::Unknown
        })
        .max_by_key(|j| j.trial.start);
    let any_in_episode = !episode.trials.is_empty();
    let (status, explanation) = if bipolar && any_in_episode {
        (
            TrdStatus::ExcludedBipolarSpectrum,
            "antidepressant in a patient with bipolar disorder: TRD criteria do not apply; review the diagnosis and the treatment"
                .to_string(),
        )
    } else if !evidence.any() && !bipolar {
        missing.insert(
            0,
            "no depression diagnosis (major depression or dysthymia) recorded".to_string(),
        );
        missing.insert(
            1,
            "no depression-scale score (PHQ-9, MADRS, HAM-D, QIDS, ...) recorded".to_string(),
        );
        (
            TrdStatus::NoDepressionEvidence,
            "no depression diagnosis and no depression-scale score: the antidepressants may be for another indication, so no TRD pathway applies".to_string(),
        )
    } else if !any_in_episode {
        (
            TrdStatus::NotTreated,
            "no antidepressant trial in the current episode".to_string(),
        )
    } else if let Some(j) = latest_known.filter(|j| {
        matches!(
            j.response.class,
            ResponseClass::Remission | ResponseClass::Response
        )
    }) {
        let status = if j.response.class == ResponseClass::Remission {
            TrdStatus::Remission
        } else {
            TrdStatus::Responding
        };
        (
            status,
            format!(
                "latest trial with a measured response ({} {}): {}",
                j.trial.id, j.ingredient, j.response.explanation
            ),
        )
    } else if meets {
        (
            TrdStatus::Trd,
            format!(
                "{failed} failed adequate trials ({}) in the current episode",
                classes.join(", ")
            ),
        )
    } else if failed > 0 {
        let latest_failure = failures
            .iter()
            .max_by_key(|j| j.trial.start)
            .map(|j| j.response.class);
        let short = if failed >= needed {
            format!("{failed} failed adequate trials, but of one class ({}); the policy needs different classes", classes.join(", "))
        } else {
            format!("{failed} failed adequate trial(s); {needed} needed")
        };
        if latest_failure == Some(ResponseClass::Partial) {
            (
                TrdStatus::PartialResponseDepression,
                format!("{short}; the latest was a partial response"),
            )
        } else {
            (TrdStatus::OneFailedTrial, format!("{short}: at risk"))
        }
    } else if !missing.is_empty() {
        (
            TrdStatus::InsufficientData,
            format!("cannot decide: {}", missing.join("; ")),
        )
    } else {
        (
            TrdStatus::InadequatelyTreated,
            "no adequate antidepressant trial in the current episode".to_string(),
        )
    };
    StatusVerdict {
        status,
        failed_adequate_trials: failed,
        failed_classes: classes,
        rule,
        explanation,
        trials: counts,
        missing,
    }
}
