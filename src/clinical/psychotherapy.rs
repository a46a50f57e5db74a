//! Psychotherapy courses and fit (docs/clinical-rules.md section 9). Procedures (and Encounters
//! by their type) coded as psychotherapy (SNOMED CT modalities, or CPT time codes that
//! carry no modality) are sessions, one per modality and day (a visit coded both ways
//! counts once); sessions of one modality no further apart than the course gap make a
//! course, judged against the configurable adequacy threshold (no consensus exists)
//! and set beside the drug trials it overlaps and the depression scores during it.
//! The fit findings say what the plan lacks: any psychotherapy (TRD or at risk),
//! trauma-focused therapy for PTSD, DBT for borderline personality disorder, and a
//! change after an adequate CBT course without response.

use serde::Serialize;
use time::Date;

use super::adequacy::round2;
use super::conditions;
use super::dates::plus_days;
use super::episode::Episode;
use super::finding::{codes, Finding, Severity};
use super::knowledge::{InstrumentPurpose, Knowledge, Modality};
use super::numbers::{fmt, tenths, weeks};
use super::policy::Policy;
use super::record::{PatientRecord, SourceRef};
use super::score::{ScorePoint, ScoreSeries};
use super::status::TrdStatus;
use super::trial::Trial;

/// Depression scores around a course: baseline and the best score during it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CourseSymptoms {
    pub instrument: String,
    pub baseline: ScorePoint,
    pub best: ScorePoint,
    /// Reduction from baseline to `best`, in percent.
    pub percent_change: f64,
    /// Reached the policy's response threshold (or the instrument's remission).
    pub responded: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Course {
    pub modality: String,
    pub name: String,
    pub sessions: u32,
    pub start: Date,
    pub end: Date,
    /// Weeks from the first session to the end of the last session's week.
    pub weeks: f64,
    /// At least the configured sessions over at least the configured weeks.
    pub adequate: bool,
    /// Drug trials overlapping the course.
    pub during_trials: Vec<String>,
    pub symptoms: Option<CourseSymptoms>,
    pub evidence: Vec<SourceRef>,
}

/// The modality of a procedure: the first (in file order) whose ValueSet holds a code.
fn modality_of<'k>(
    codes: &[super::record::Code],
    knowledge: &'k Knowledge,
) -> Option<&'k Modality> {
    knowledge.psychotherapy.modality.iter().find(|m| {
        codes.iter().any(|c| {
            knowledge
                .value_sets
                .contains(&m.value_set, &c.system, &c.code)
        })
    })
}

pub fn courses(
    record: &PatientRecord,
    trials: &[Trial],
    scores: &ScoreSeries,
    knowledge: &Knowledge,
    policy: &Policy,
    as_of: Date,
) -> Vec<Course> {
    let rules = &knowledge.psychotherapy.course;
    // Procedures done, and Encounters finished whose type is a psychotherapy code.
    let procedures = record
        .procedures
        .iter()
        .filter(|p| p.status == "completed")
        .map(|p| (&p.codes, p.performed, &p.source));
    let encounters = record
        .encounters
        .iter()
        .filter(|e| e.status == "finished")
        .map(|e| (&e.types, e.start, &e.source));
    let mut sessions: Vec<(&Modality, Date, &SourceRef)> = procedures
        .chain(encounters)
        .filter_map(|(codes, date, source)| {
            let date = date.filter(|d| *d <= as_of)?;
            Some((modality_of(codes, knowledge)?, date, source))
        })
        .collect();
    sessions.sort_by(|a, b| (&a.0.id, a.1, a.2).cmp(&(&b.0.id, b.1, b.2)));
    // One session per modality and day: the Encounter and the Procedure of one visit.
    sessions.dedup_by(|b, a| a.0.id == b.0.id && a.1 == b.1);
    let mut out: Vec<Course> = Vec::new();
    let mut current: Vec<(&Modality, Date, &SourceRef)> = Vec::new();
    let close = |run: &[(&Modality, Date, &SourceRef)], out: &mut Vec<Course>| {
        let (Some(first), Some(last)) = (run.first(), run.last()) else {
            return;
        };
        let (start, end) = (first.1, last.1);
        let sessions = u32::try_from(run.len()).unwrap_or(u32::MAX);
        let weeks = round2(((end - start).whole_days() + 7) as f64 / 7.0);
        out.push(Course {
            modality: first.0.id.clone(),
            name: first.0.name.clone(),
            sessions,
            start,
            end,
            weeks,
            adequate: sessions >= rules.adequate_sessions
                && weeks >= f64::from(rules.adequate_weeks),
            during_trials: trials
                .iter()
                .filter(|t| t.start <= end && start <= t.end)
                .map(|t| t.id.clone())
                .collect(),
            symptoms: symptoms_during(start, end, scores, knowledge, policy, as_of),
            evidence: run.iter().map(|s| s.2.clone()).collect(),
        });
    };
    for session in sessions {
        let splits = current.last().is_some_and(|last| {
            last.0.id != session.0.id || session.1 > plus_days(last.1, i64::from(rules.gap_days))
        });
        if splits {
            close(&current, &mut out);
            current.clear();
        }
        current.push(session);
    }
    close(&current, &mut out);
    out.sort_by(|a, b| (a.start, &a.modality).cmp(&(b.start, &b.modality)));
    out
}

/// Baseline: the last depression score in [start - 30 d, start + 7 d] (policy window);
/// then the best score from week 4 of the course to 14 days after its last session.
fn symptoms_during(
    start: Date,
    end: Date,
    scores: &ScoreSeries,
    knowledge: &Knowledge,
    policy: &Policy,
    as_of: Date,
) -> Option<CourseSymptoms> {
    let [before, after] = policy.baseline_window_days;
    let outcome_from = plus_days(start, 7 * i64::from(policy.outcome_from_weeks));
    let outcome_to = plus_days(end, i64::from(policy.outcome_after_end_days)).min(as_of);
    knowledge
        .instruments
        .iter()
        .enumerate()
        .filter(|(_, i)| i.measures == InstrumentPurpose::Depression)
        .find_map(|(index, instrument)| {
            let baseline = scores.last_between(
                index,
                plus_days(start, i64::from(before)),
                plus_days(start, i64::from(after)),
            )?;
            if baseline.value <= 0.0 {
                return None;
            }
            let best = scores
                .by_instrument
                .get(index)?
                .iter()
                .filter(|p| p.date >= outcome_from && p.date <= outcome_to)
                .min_by(|a, b| a.value.total_cmp(&b.value))?;
            let reduction = (baseline.value - best.value) / baseline.value;
            let remission = instrument
                .remission_at_or_below
                .is_some_and(|r| best.value <= r);
            Some(CourseSymptoms {
                instrument: instrument.name.clone(),
                baseline: baseline.clone(),
                best: best.clone(),
                percent_change: round2(reduction * 100.0),
                responded: remission || reduction + 1e-9 >= policy.response_from,
            })
        })
}

/// What the findings need to know beyond the courses.
pub struct FitInput<'a> {
    pub record: &'a PatientRecord,
    pub courses: &'a [Course],
    pub episode: &'a Episode,
    pub status: TrdStatus,
    /// The findings so far (the checklist's PTSD finding).
    pub findings: &'a [Finding],
    pub as_of: Date,
}

pub fn fit_findings(input: &FitInput<'_>, knowledge: &Knowledge) -> Vec<Finding> {
    let fit = &knowledge.psychotherapy.fit;
    let from = input.episode.start.unwrap_or(Date::MIN);
    let in_episode: Vec<&Course> = input
        .courses
        .iter()
        .filter(|c| c.end >= from && c.start <= input.as_of)
        .collect();
    let trauma_focused = |c: &&Course| {
        knowledge
            .psychotherapy
            .modality(&c.modality)
            .is_some_and(|m| m.trauma_focused)
    };
    let mut out = Vec::new();
    if input.status.at_risk_or_trd() && in_episode.is_empty() {
        out.push(Finding::new(
            codes::NO_PSYCHOTHERAPY,
            Severity::Info,
            "no psychotherapy recorded in the current episode",
            vec![],
        ));
    }
    let trauma: Vec<&Finding> = input
        .findings
        .iter()
        .filter(|f| f.code == fit.trauma_finding)
        .collect();
    if !trauma.is_empty() && !in_episode.iter().any(trauma_focused) {
        out.push(Finding::new(
            codes::PTSD_WITHOUT_TRAUMA_FOCUSED,
            Severity::Warning,
            "PTSD or trauma recorded, no trauma-focused therapy (EMDR, trauma-focused CBT) in the current episode",
            trauma.iter().flat_map(|f| f.evidence.clone()).collect(),
        ));
    }
    let borderline = conditions::matching(
        input.record,
        knowledge,
        &fit.borderline_value_set,
        false,
        input.as_of,
    );
    if !borderline.is_empty() && !input.courses.iter().any(|c| c.modality == fit.dbt_modality) {
        out.push(Finding::new(
            codes::BORDERLINE_WITHOUT_DBT,
            Severity::Warning,
            "borderline personality disorder recorded, no DBT course on record",
            borderline.iter().map(|c| c.source.clone()).collect(),
        ));
    }
    for course in in_episode
        .iter()
        .filter(|c| c.modality == fit.cbt_modality && c.adequate)
    {
        let Some(symptoms) = course.symptoms.as_ref().filter(|s| !s.responded) else {
            continue;
        };
        let text = format!(
            "{} {} to {} ({} sessions, {} weeks, adequate): {} {} -> {} at best ({}% reduction), no response: consider ACT or DBT",
            course.name,
            course.start,
            course.end,
            course.sessions,
            weeks(course.weeks),
            symptoms.instrument,
            fmt(symptoms.baseline.value),
            fmt(symptoms.best.value),
            tenths(symptoms.percent_change)
        );
        let mut evidence = course.evidence.clone();
        evidence.push(symptoms.best.source.clone());
        out.push(Finding::new(
            codes::CBT_WITHOUT_RESPONSE,
            Severity::Warning,
            text,
            evidence,
        ));
    }
    out
}
