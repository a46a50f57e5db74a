//! The pure engine: from a patient's record to an assessment. No I/O, no clock, no
//! async: the as-of date, the policy and the knowledge are arguments, so the same
//! inputs always give the same assessment.
//!
//! Data flow inside: record -> sanity screen -> supplies -> exposure eras -> trials
//! (and non-trials) -> verdicts (adequacy, response) -> episode -> TRD status ->
//! staging -> pseudo-resistance checklist -> function beside symptoms -> psychotherapy
//! courses and fit -> safety ->
//! suggestions -> narrative.

pub mod adequacy;
pub mod amm;
pub mod assessment;
pub mod cmd;
pub mod conditions;
pub mod dates;
pub mod dose;
pub mod dose_review;
pub mod draft;
pub mod episode;
pub mod era;
pub mod finding;
pub mod function;
pub mod indication;
pub mod knowledge;
pub mod measures;
pub mod medicine_use;
pub mod narrative;
pub mod numbers;
pub mod policy;
pub mod product;
pub mod pseudo_resistance;
pub mod psychotherapy;
pub mod record;
pub mod remeasure;
pub mod response;
pub mod safety;
pub mod sanity;
pub mod schedule;
pub mod score;
pub mod staging;
pub mod status;
pub mod suggestion;
pub mod summary;
pub mod supply;
pub mod trial;
pub mod units;
pub mod wpai;

use time::Date;

pub use assessment::{Assessment, TrialAssessment};
pub use knowledge::Knowledge;
pub use policy::Policy;
pub use record::PatientRecord;

use finding::Finding;

/// Options that are not clinical policy.
#[derive(Debug, Clone, Copy, Default)]
pub struct AssessOptions {
    /// HEDIS AMM measurement year; default: the year of the as-of date.
    pub measurement_year: Option<i32>,
    /// The quality measures to compute with the assessment (none by default), over
    /// the measurement year.
    pub quality_measures: QualityMeasures,
}

/// Which quality measures an assessment carries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QualityMeasures {
    pub cms159: bool,
    pub cms128: bool,
}

impl QualityMeasures {
    pub fn of(ids: &[measures::MeasureId]) -> Self {
        Self {
            cms159: ids.contains(&measures::MeasureId::Cms159),
            cms128: ids.contains(&measures::MeasureId::Cms128),
        }
    }

    pub fn ids(self) -> Vec<measures::MeasureId> {
        measures::MeasureId::ALL
            .into_iter()
            .filter(|id| match id {
                measures::MeasureId::Cms159 => self.cms159,
                measures::MeasureId::Cms128 => self.cms128,
            })
            .collect()
    }
}

/// Assesses one patient as of a date. Facts dated after `as_of` are not used.
pub fn assess(
    record: &PatientRecord,
    policy: &Policy,
    knowledge: &Knowledge,
    as_of: Date,
) -> Assessment {
    assess_with(record, policy, knowledge, as_of, AssessOptions::default())
}

pub fn assess_with(
    record: &PatientRecord,
    policy: &Policy,
    knowledge: &Knowledge,
    as_of: Date,
    options: AssessOptions,
) -> Assessment {
    let mut findings: Vec<Finding> = record.notes.iter().map(Finding::from_note).collect();
    let (screened, mut implausible) = sanity::screen(record, policy);
    findings.append(&mut implausible);
    let record: &PatientRecord = &screened;

    let mut ledger = supply::collect_supplies(record, knowledge, policy, as_of);
    ledger.supplies.retain(|s| s.start <= as_of);
    findings.append(&mut ledger.findings);
    findings.extend(dose_review::display_strengths(record, knowledge));
    findings.extend(dose_review::implausible_doses(
        &mut ledger.supplies,
        knowledge,
    ));

    let eras = era::build_eras(
        &ledger.supplies,
        policy.era_gap_days,
        policy.stockpile_cap_days,
    );
    let trial::Trials { trials, non_trials } =
        trial::build_trials(eras, &ledger.supplies, record, knowledge, policy, as_of);
    let mut scores = score::ScoreSeries::collect(record, knowledge, as_of, &mut findings);
    // WPAI percentages from the items, where only the items were recorded.
    wpai::derive(&mut scores, knowledge);

    let verdicts: Vec<_> = trials
        .iter()
        .map(|trial| {
            // A not-taken statement speaks for its own effective period only.
            let end = trial.observed_end(as_of);
            let not_taken: Vec<_> = ledger
                .not_taken
                .iter()
                .filter(|n| n.drug == trial.drug && n.from <= end && trial.start <= n.to)
                .map(|n| n.source.clone())
                .collect();
            adequacy::judge(trial, &not_taken, knowledge, policy, as_of)
        })
        .collect();
    let responses: Vec<_> = trials
        .iter()
        .map(|trial| response::judge(trial, &scores, knowledge, policy, as_of))
        .collect();
    let functional: Vec<_> = trials
        .iter()
        .map(|trial| function::per_trial(trial, &scores, knowledge, policy, as_of))
        .collect();
    let judged: Vec<status::JudgedTrial<'_>> = trials
        .iter()
        .zip(verdicts.iter().zip(&responses))
        .map(|(trial, (verdict, response))| status::JudgedTrial {
            trial,
            ingredient: knowledge.drugs.name(trial.drug),
            class: knowledge
                .drugs
                .antidepressant(trial.drug)
                .map(|d| d.class.as_str())
                .unwrap_or(""),
            verdict,
            response,
        })
        .collect();

    let episode = episode::find(
        &trials, &responses, record, &scores, knowledge, policy, as_of,
    );
    let bipolar = conditions::matching(record, knowledge, conditions::VS_BIPOLAR, true, as_of);
    let evidence = status::DepressionEvidence {
        diagnoses: conditions::matching(
            record,
            knowledge,
            conditions::VS_MAJOR_DEPRESSION,
            true,
            as_of,
        )
        .len(),
        scores: scores.depression_points(knowledge),
    };
    let mut status = status::decide(&judged, &episode, !bipolar.is_empty(), &evidence, policy);
    if let Some(age) = remeasure::label_age(status.status, &scores, knowledge, as_of) {
        status.explanation.push_str(&age);
    }
    let ect_procedures = conditions::procedures_in(record, knowledge, conditions::VS_ECT, as_of);
    let ect = staging::ect_history(&ect_procedures, &episode, status.status);
    let stages = staging::stage(&judged, &status, &episode, &ect, &knowledge.staging);

    // The pathway is for patients on antidepressants with depression: without an
    // antidepressant trial in the episode, or without any depression evidence, the
    // service proposes nothing (and says why in the status).
    let pathway = !matches!(
        status.status,
        status::TrdStatus::NotTreated | status::TrdStatus::NoDepressionEvidence
    );
    let checklist_input = pseudo_resistance::ChecklistInput {
        record,
        judged: &judged,
        scores: &scores,
        ignored: &ledger.ignored,
        status: status.status,
        as_of,
    };
    let mut clinical_findings = if status.status == status::TrdStatus::NoDepressionEvidence {
        Vec::new()
    } else {
        pseudo_resistance::check(&checklist_input, knowledge)
    };
    clinical_findings.extend(relapse_findings(&judged));
    clinical_findings.extend(remeasure::stale_label(
        status.status,
        &judged,
        &episode.trials,
        &scores,
        knowledge,
        policy,
        as_of,
    ));
    let courses = psychotherapy::courses(record, &trials, &scores, knowledge, policy, as_of);
    if status.status != status::TrdStatus::NoDepressionEvidence {
        clinical_findings.extend(function::findings(
            &judged,
            &functional,
            &episode,
            status.status,
            &scores,
            knowledge,
            as_of,
        ));
        let fit = psychotherapy::fit_findings(
            &psychotherapy::FitInput {
                record,
                courses: &courses,
                episode: &episode,
                status: status.status,
                findings: &clinical_findings,
                as_of,
            },
            knowledge,
        );
        clinical_findings.extend(fit);
    }
    // Safety signals whatever the status, and first.
    let safety_findings = safety::check(
        &safety::SafetyInput {
            record,
            scores: &scores,
            trials: &trials,
            non_trials: &non_trials,
            supplies: &ledger.supplies,
            as_of,
        },
        knowledge,
    );
    // Safety findings are raised for everyone; proposals only in the pathway (no
    // proposal for not-treated or no-depression-evidence, as for every suggestion).
    let treatments = conditions::treatments(record, knowledge, as_of);
    let mut suggestions = Vec::new();
    if pathway {
        suggestions.extend(suggestion::safety_suggestions(
            &safety_findings,
            &knowledge.safety.finding_codes(),
        ));
        suggestions.extend(suggestion::suggest_all(
            &status,
            &judged,
            &episode,
            &clinical_findings,
            &treatments,
        ));
    }
    let mut clinical_findings: Vec<Finding> = safety_findings
        .into_iter()
        .chain(clinical_findings)
        .collect();
    clinical_findings.append(&mut findings);
    let findings = clinical_findings;

    let trial_assessments = judged
        .iter()
        .zip(functional)
        .map(|(j, function)| TrialAssessment {
            id: j.trial.id.clone(),
            ingredient: j.ingredient.to_string(),
            rxnorm: knowledge.drugs.rxnorm(j.trial.drug).to_string(),
            class: j.class.to_string(),
            start: j.trial.start,
            end: j.trial.end,
            ongoing: j.trial.ongoing,
            daily_dose_mg: j.verdict.daily_dose_mg,
            dose_steps: j.trial.dose_steps.clone(),
            relation: j.trial.relation.clone(),
            retrial_of: j.trial.retrial_of.clone(),
            orders_only: j.trial.orders_only,
            augmented_by: j.trial.augmented_by.clone(),
            adequacy: j.verdict.adequacy,
            reasons: j.verdict.reasons.iter().map(|r| r.code).collect(),
            verdict: j.verdict.clone(),
            response: j.response.clone(),
            supplies: j
                .trial
                .era
                .supplies
                .iter()
                .filter_map(|i| ledger.supplies.get(*i))
                .map(|s| assessment::SupplyPeriod {
                    start: s.start,
                    end: s.last_day(),
                    daily_dose_mg: s.daily_dose.mg,
                    origin: s.origin,
                    source: s.source.clone(),
                })
                .collect(),
            function,
            evidence: j.trial.evidence.clone(),
        })
        .collect();

    let year = options.measurement_year.unwrap_or(as_of.year());
    let amm = amm::evaluate(record, knowledge, year, as_of);
    let measure_results = match measures::MeasurementPeriod::year(year) {
        Some(period) => options
            .quality_measures
            .ids()
            .into_iter()
            .map(|id| measures::evaluate(id, record, knowledge, period, as_of))
            .collect(),
        None => Vec::new(),
    };

    let mut assessment = Assessment {
        patient: record.patient.clone(),
        as_of,
        policy: policy.name.clone(),
        trd_status: status.status,
        failed_adequate_trials: status.failed_adequate_trials,
        status,
        episode,
        thase_rush_stage: stages.thase_rush,
        msm: stages.msm,
        mgh_s: stages.mgh_s,
        suggestions,
        narrative: assessment::Narrative {
            text: String::new(),
            xhtml: String::new(),
        },
        trials: trial_assessments,
        non_trials,
        amm,
        quality_measures: measure_results,
        psychotherapy: courses,
        findings,
        measures: scores.measures(knowledge),
        treatments,
        problems: conditions::problems(record, knowledge, as_of),
        ignored_medications: ledger.ignored,
    };
    assessment.narrative = narrative::render(&assessment);
    assessment
}

/// A relapse on treatment is worth a clinician's attention: the drug worked, and the
/// symptoms came back while the patient was still taking it.
fn relapse_findings(judged: &[status::JudgedTrial<'_>]) -> Vec<Finding> {
    judged
        .iter()
        .filter_map(|j| {
            let relapse = j.response.relapse.as_ref()?;
            let instrument = j.response.instrument.as_deref().unwrap_or("score");
            let reached = j.response.outcome.as_ref()?;
            let text = format!(
                "{} {}: {instrument} {} on {} after {} on {}, while still on {}: relapse on treatment, not a non-response",
                j.trial.id,
                j.ingredient,
                numbers::fmt(relapse.point.value),
                relapse.point.date,
                numbers::fmt(reached.value),
                reached.date,
                j.ingredient
            );
            let mut evidence = vec![reached.source.clone(), relapse.point.source.clone()];
            evidence.extend(j.trial.evidence.iter().cloned());
            Some(Finding::new(
                finding::codes::RELAPSE_ON_TREATMENT,
                finding::Severity::Warning,
                text,
                evidence,
            ))
        })
        .collect()
}
