//! The current depressive episode: when it started (by the policy's boundary rule),
//! how long it has lasted, how severe it was at baseline, and psychotic features.

use serde::Serialize;
use time::Date;

use super::conditions::{
    self, VS_MAJOR_DEPRESSION, VS_PSYCHOTIC_DEPRESSION, VS_RECURRENT_DEPRESSION,
};
use super::dates::{plus_days, plus_months, DAYS_PER_MONTH};
use super::knowledge::{InstrumentPurpose, Knowledge};
use super::policy::{EpisodeBoundary, Policy};
use super::record::{ConditionFact, PatientRecord, SourceRef};
use super::response::TrialResponse;
use super::score::ScoreSeries;
use super::trial::Trial;

pub fn months_between(from: Date, to: Date) -> u32 {
    (((to - from).whole_days().max(0)) as f64 / DAYS_PER_MONTH).floor() as u32
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BaselineSeverity {
    pub instrument: String,
    pub score: f64,
    /// The instrument's band (PHQ-9: none, mild, moderate, moderately-severe, severe).
    pub band: Option<String>,
    pub date: Date,
    pub source: SourceRef,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Episode {
    pub start: Option<Date>,
    /// Which rule fixed the start, in words.
    pub start_rule: String,
    pub months: Option<u32>,
    pub chronic: bool,
    pub severity: Option<BaselineSeverity>,
    pub psychotic_features: bool,
    /// Trial ids in this episode.
    pub trials: Vec<String>,
    pub evidence: Vec<SourceRef>,
}

pub fn find(
    trials: &[Trial],
    responses: &[TrialResponse],
    record: &PatientRecord,
    scores: &ScoreSeries,
    knowledge: &Knowledge,
    policy: &Policy,
    as_of: Date,
) -> Episode {
    let diagnoses = conditions::matching(record, knowledge, VS_MAJOR_DEPRESSION, true, as_of);
    // A recurrent disorder's onset is the disorder's, not this episode's (docs/clinical-rules.md
    // section 8): only single-episode diagnoses can date the episode.
    let onsets: Vec<(Date, &SourceRef)> = diagnoses
        .iter()
        .filter(|c| {
            !c.codes.iter().any(|code| {
                knowledge
                    .value_sets
                    .contains(VS_RECURRENT_DEPRESSION, &code.system, &code.code)
            })
        })
        .filter(|c| !ended_before(c, &diagnoses, trials, policy, as_of))
        .filter_map(|c| c.onset.or(c.recorded).map(|d| (d, &c.source)))
        .collect();

    let (boundary, boundary_rule) = match policy.episode_boundary {
        EpisodeBoundary::TreatmentFree => treatment_free_boundary(trials, policy),
        EpisodeBoundary::Remission => remission_boundary(scores, knowledge, policy),
    };
    // The episode starts at the first antidepressant after the boundary, or at a
    // depression diagnosis dated after the boundary, whichever is earlier.
    let first_trial = trials
        .iter()
        .filter(|t| boundary.is_none_or(|b| t.start >= b))
        .map(|t| t.start)
        .min();
    let onset = onsets
        .iter()
        .filter(|(d, _)| boundary.is_none_or(|b| *d >= b) && *d <= as_of)
        .min_by_key(|(d, _)| *d);
    // Under the remission rule the relapse itself opens the episode.
    let relapse = boundary.filter(|_| policy.episode_boundary == EpisodeBoundary::Remission);
    let first_trial = match (first_trial, relapse) {
        (Some(t), Some(r)) => Some(t.min(r)),
        (t, r) => t.or(r),
    };
    let (start, start_rule) = match (first_trial, onset) {
        (Some(t), Some((o, source))) if *o < t => (
            Some(*o),
            format!("depression diagnosis onset ({source}); {boundary_rule}"),
        ),
        (Some(t), _) if relapse == Some(t) => (Some(t), boundary_rule.clone()),
        (Some(t), _) => (Some(t), format!("first antidepressant; {boundary_rule}")),
        (None, Some((o, source))) => (
            Some(*o),
            format!("depression diagnosis onset ({source}); no antidepressant since"),
        ),
        (None, None) => (
            None,
            "no depression diagnosis or antidepressant trial".to_string(),
        ),
    };

    let in_episode: Vec<usize> = (0..trials.len())
        .filter(|&i| start.is_some_and(|s| trials[i].start >= s))
        .collect();
    let months = start.map(|s| months_between(s, as_of));
    // Psychotic features of this episode: a psychotic-depression diagnosis dated in
    // the episode, or still active and not abated before it (a psychotic episode
    // resolved years ago is history, not this episode's feature).
    let psychotic: Vec<_> =
        conditions::matching(record, knowledge, VS_PSYCHOTIC_DEPRESSION, true, as_of)
            .into_iter()
            .filter(|c| {
                let Some(start) = start else { return false };
                let dated_in = c.onset.or(c.recorded).is_some_and(|d| d >= start);
                let active = c
                    .clinical_status
                    .as_deref()
                    .is_none_or(|s| conditions::ACTIVE.contains(&s));
                dated_in || (active && c.abatement.is_none_or(|a| a >= start))
            })
            .collect();

    let severity = in_episode
        .iter()
        .find_map(|&i| {
            let response = &responses[i];
            let baseline = response.baseline.as_ref()?;
            let name = response.instrument.as_deref()?;
            let instrument = knowledge.instruments.iter().find(|x| x.name == name)?;
            Some(BaselineSeverity {
                instrument: instrument.name.clone(),
                score: baseline.value,
                band: instrument.severity(baseline.value).map(str::to_string),
                date: baseline.date,
                source: baseline.source.clone(),
            })
        })
        .or_else(|| first_score_in_episode(scores, knowledge, start?));

    let mut evidence: Vec<SourceRef> = diagnoses.iter().map(|c| c.source.clone()).collect();
    evidence.extend(psychotic.iter().map(|c| c.source.clone()));
    evidence.dedup();
    Episode {
        start,
        start_rule,
        months,
        chronic: months.is_some_and(|m| m > policy.chronic_months),
        severity,
        psychotic_features: !psychotic.is_empty(),
        trials: in_episode.iter().map(|&i| trials[i].id.clone()).collect(),
        evidence,
    }
}

/// A depression diagnosis recorded as ended (abated on or before the as-of date, or
/// resolved with no date: ended by its recorded date or onset) and
/// followed by the policy's treatment-free stretch (`treatment_free_months`) with no
/// antidepressant trial and no other depression diagnosis dated in it belongs to an
/// earlier episode: its onset does not date the current one. The same boundary the
/// engine draws between trials (docs/clinical-rules.md section 1, episode boundary: a new episode
/// after >= 6 months without antidepressant exposure, Li 2019), applied to a recorded
/// end; a resolved episode of 2012 does not make a 2024 episode chronic or psychotic.
fn ended_before(
    condition: &ConditionFact,
    diagnoses: &[&ConditionFact],
    trials: &[Trial],
    policy: &Policy,
    as_of: Date,
) -> bool {
    // Recorded as resolved without a date: it had ended by the latest date the
    // record gives it (its recorded date, else its onset).
    let resolved = matches!(
        condition.clinical_status.as_deref(),
        Some("resolved" | "remission" | "inactive")
    );
    let undated_end = resolved
        .then(|| condition.recorded.into_iter().chain(condition.onset).max())
        .flatten();
    let Some(abated) = condition.abatement.or(undated_end).filter(|a| *a <= as_of) else {
        return false;
    };
    let quiet_until = plus_months(abated, policy.treatment_free_months);
    if quiet_until > as_of {
        return false;
    }
    let treated = trials
        .iter()
        .any(|t| t.start <= quiet_until && t.end >= abated);
    let diagnosed_again = diagnoses.iter().any(|other| {
        !std::ptr::eq(*other, condition)
            && other
                .onset
                .or(other.recorded)
                .is_some_and(|d| d > abated && d <= quiet_until)
    });
    !treated && !diagnosed_again
}

/// Claims style: the last gap of >= N months with no antidepressant on hand.
fn treatment_free_boundary(trials: &[Trial], policy: &Policy) -> (Option<Date>, String) {
    let mut ordered: Vec<&Trial> = trials.iter().collect();
    ordered.sort_by_key(|t| t.start);
    let mut covered_until: Option<Date> = None;
    let mut boundary = None;
    for trial in ordered {
        if let Some(until) = covered_until {
            if trial.start >= plus_months(until, policy.treatment_free_months) {
                boundary = Some(trial.start);
            }
        }
        covered_until = Some(covered_until.map_or(trial.end, |u| u.max(trial.end)));
    }
    let rule = match boundary {
        Some(b) => format!(
            "new episode on {b} after >= {} months without antidepressant",
            policy.treatment_free_months
        ),
        None => format!(
            "no gap of >= {} months without antidepressant",
            policy.treatment_free_months
        ),
    };
    (boundary, rule)
}

/// ATHF: a relapse after >= N months in remission opens a new episode.
fn remission_boundary(
    scores: &ScoreSeries,
    knowledge: &Knowledge,
    policy: &Policy,
) -> (Option<Date>, String) {
    let mut boundary = None;
    for (index, instrument) in knowledge.instruments.iter().enumerate() {
        let (Some(cut), InstrumentPurpose::Depression) =
            (instrument.remission_at_or_below, instrument.measures)
        else {
            continue;
        };
        let mut remitted_since: Option<Date> = None;
        for point in &scores.by_instrument[index] {
            if point.value <= cut {
                remitted_since.get_or_insert(point.date);
            } else {
                if let Some(since) = remitted_since.take() {
                    if point.date >= plus_months(since, policy.remission_months) {
                        boundary = boundary.max(Some(point.date));
                    }
                }
            }
        }
    }
    let rule = match boundary {
        Some(b) => format!(
            "new episode on {b}: relapse after >= {} months in remission",
            policy.remission_months
        ),
        None => format!(
            "no remission of >= {} months before a relapse",
            policy.remission_months
        ),
    };
    (boundary, rule)
}

fn first_score_in_episode(
    scores: &ScoreSeries,
    knowledge: &Knowledge,
    start: Date,
) -> Option<BaselineSeverity> {
    let from = plus_days(start, -30);
    knowledge
        .instruments
        .iter()
        .enumerate()
        .filter(|(_, i)| i.measures == InstrumentPurpose::Depression)
        .find_map(|(index, instrument)| {
            let point = scores.by_instrument[index]
                .iter()
                .find(|p| p.date >= from)?;
            Some(BaselineSeverity {
                instrument: instrument.name.clone(),
                score: point.value,
                band: instrument.severity(point.value).map(str::to_string),
                date: point.date,
                source: point.source.clone(),
            })
        })
}
