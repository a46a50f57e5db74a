//! CMS159FHIR "Depression Remission at Twelve Months", library
//! `CMS159FHIRDepressionRemissionatTwelveMonths` version '0.3.000' (QI-Core 6.0.0,
//! QICoreCommon 4.0.000), definition by definition:
//!
//! - "Denominator Identification Period": `Interval[start of "Measurement Period" -
//!   14 months, start of "Measurement Period" - 2 months)`: November 1 two years
//!   before to October 31 of the year before.
//! - "Depression Assessments Greater Than 9": `[ObservationScreeningAssessment: "PHQ
//!   9 and PHQ 9M Tools"]` with `value > 9` and status final, amended or corrected.
//! - "Depression Diagnoses": Conditions in "Major Depression Including Remission" or
//!   "Dysthymia" that are `isConfirmedActiveDiagnosis()` (clinicalStatus active,
//!   recurrence or relapse, and verificationStatus confirmed).
//! - "Depression Encounter": a finished Encounter in "Contact or Office Visit" whose
//!   period overlaps a depression diagnosis' `prevalenceInterval()` and ends during
//!   day of the identification period.
//! - "Index Depression Assessment": the first assessment above 9 dated during day of
//!   `Interval[ToDate(start of encounter - 7 days), end of encounter]`.
//! - "Initial Population": `AgeInYearsAt(start of index) >= 12`; "Denominator" the
//!   same.
//! - "Measure Assessment Period": index date + 12 months, +/- 60 days, closed.
//! - "Denominator Exclusions": hospice (see [`super::hospice`]) or palliative care
//!   (FACIT-Pal, diagnosis, finished encounter, intervention) overlapping day of
//!   `Interval[start of identification period, end of assessment period]`; "Patient
//!   Expired": `Patient.deceased occurs on or before day of end of` the assessment
//!   period (a deceasedDateTime; a bare deceasedBoolean is no date, and the CQL
//!   comparison is null); "Has Mental Health Disorder Diagnoses": a confirmed active
//!   bipolar, emotionally labile personality, schizophrenia or psychotic, or
//!   pervasive developmental disorder whose prevalence starts on or before the end
//!   of the assessment period.
//! - "Numerator": the last PHQ-9 / PHQ-9M dated during day of the assessment period
//!   has `value < 5`.
//! - Strata (edition 0.0.001's "Stratification 1" and "2"): age 12-17 and 18 and
//!   older at the index assessment.
//!
//! Retrieves by QI-Core profile (`ConditionProblemsHealthConcerns`,
//! `ConditionEncounterDiagnosis`, `ObservationScreeningAssessment`) are read as
//! retrieves by resource type and code, as CQL engines evaluate them unless told to
//! check profiles: a Condition without a category still counts.

use time::{Date, Duration, Month};

use super::hospice::{has_hospice, Wording};
use super::span::{encounter_period, is_confirmed_active, prevalence, procedure_period, Span};
use super::value_sets::{
    CONTACT_OR_OFFICE_VISIT, DYSTHYMIA, FACIT_PAL, LOINC, MAJOR_DEPRESSION_INCLUDING_REMISSION,
    MENTAL_HEALTH_DISORDERS, PALLIATIVE_CARE_DIAGNOSIS, PALLIATIVE_CARE_ENCOUNTER,
    PALLIATIVE_CARE_INTERVENTION, PHQ9_TOOLS,
};
use super::{coded_in, Evidence, MeasureId, MeasureResult, MeasurementPeriod, Membership};
use crate::clinical::knowledge::Knowledge;
use crate::clinical::record::{Deceased, ObservationFact, ObservedValue, PatientRecord};

/// An Observation resource of the PHQ-9 / PHQ-9M tools, dated no later than the
/// as-of date. (A score the reader took from a QuestionnaireResponse is not one:
/// the measure retrieves Observations.)
fn assessments<'r>(
    record: &'r PatientRecord,
    knowledge: &Knowledge,
    as_of: Date,
) -> Vec<(&'r ObservationFact, Date)> {
    let mut found: Vec<(&ObservationFact, Date)> = record
        .observations
        .iter()
        .filter(|o| !o.source.starts_with("QuestionnaireResponse/"))
        .filter(|o| coded_in(knowledge, PHQ9_TOOLS, &o.codes))
        .filter_map(|o| Some((o, o.effective.filter(|d| *d <= as_of)?)))
        .collect();
    // `sort by start of effective`: one day's assessments in source order.
    found.sort_by(|a, b| {
        a.1.cmp(&b.1)
            .then_with(|| crate::clinical::record::natural_cmp(&a.0.source, &b.0.source))
    });
    found
}

fn score(observation: &ObservationFact) -> Option<f64> {
    match observation.value {
        Some(ObservedValue::Number { value, .. }) => Some(value),
        _ => None,
    }
}

/// `date + N months` as CQL adds a calendar duration: the same day, or the month's
/// last day when it has no such day.
fn plus_months(date: Date, months: i32) -> Option<Date> {
    let index = date
        .year()
        .checked_mul(12)?
        .checked_add(i32::from(u8::from(date.month())) - 1)?;
    let target = index.checked_add(months)?;
    let year = target.div_euclid(12);
    let month = Month::try_from(u8::try_from(target.rem_euclid(12) + 1).ok()?).ok()?;
    let last = month.length(year);
    Date::from_calendar_date(year, month, date.day().min(last)).ok()
}

pub fn evaluate(
    record: &PatientRecord,
    knowledge: &Knowledge,
    period: MeasurementPeriod,
    as_of: Date,
) -> MeasureResult {
    let mut evidence = Evidence::default();
    let (membership, strata) = decide(record, knowledge, period, as_of, &mut evidence)
        .unwrap_or_else(|| (Membership::proportion(false, false, false), Vec::new()));
    evidence.into_result(MeasureId::Cms159, record, period, &[membership], strata)
}

/// None when the patient has no index assessment (not in the initial population).
fn decide(
    record: &PatientRecord,
    knowledge: &Knowledge,
    period: MeasurementPeriod,
    as_of: Date,
    evidence: &mut Evidence,
) -> Option<(Membership, Vec<&'static str>)> {
    let identification = Span {
        start: Some(plus_months(period.start, -14)?),
        end: Some(plus_months(period.start, -2)?.checked_sub(Duration::days(1))?),
    };
    let assessments = assessments(record, knowledge, as_of);

    // "Depression Diagnoses"
    let diagnoses: Vec<(&str, Span)> = record
        .conditions
        .iter()
        .filter(|c| {
            coded_in(knowledge, MAJOR_DEPRESSION_INCLUDING_REMISSION, &c.codes)
                || coded_in(knowledge, DYSTHYMIA, &c.codes)
        })
        .filter(|c| is_confirmed_active(c) && c.onset.is_none_or(|d| d <= as_of))
        .filter_map(|c| Some((c.source.as_str(), prevalence(c)?)))
        .collect();
    // "Depression Encounter"
    let encounters: Vec<(&str, &str, Span)> = record
        .encounters
        .iter()
        .filter(|e| e.status == "finished" && e.start.is_some_and(|d| d <= as_of))
        .filter(|e| coded_in(knowledge, CONTACT_OR_OFFICE_VISIT, &e.types))
        .filter_map(|e| {
            let period = encounter_period(e)?;
            if !period.ends_during(&identification) {
                return None;
            }
            let (diagnosis, _) = diagnoses.iter().find(|(_, p)| p.overlaps(&period))?;
            Some((e.source.as_str(), *diagnosis, period))
        })
        .collect();
    // "Index Depression Assessment"
    let (index, index_day, encounter, diagnosis) =
        assessments.iter().find_map(|(observation, day)| {
            if !score(observation).is_some_and(|s| s > 9.0) {
                return None;
            }
            let (encounter, diagnosis, _) = encounters.iter().find(|(_, _, p)| {
                let from = p.start.and_then(|s| s.checked_sub(Duration::days(7)));
                Span {
                    start: from,
                    end: p.end,
                }
                .contains(*day)
            })?;
            Some((*observation, *day, *encounter, *diagnosis))
        })?;
    evidence.cite(&index.source);
    evidence.cite(encounter);
    evidence.cite(diagnosis);
    evidence.say(format!(
        "Index assessment: PHQ-9 above 9 on {index_day} ({}), with the visit {encounter} for the depression diagnosis {diagnosis}",
        index.source
    ));

    // "Initial Population"
    let age = record.age_on(index_day);
    let initial = age.is_some_and(|a| a >= 12);
    if !initial {
        evidence.say(match age {
            Some(age) => format!("Not in the initial population: aged {age} at the index assessment (12 or older required)"),
            None => "Not in the initial population: no birth date to tell the age at the index assessment".to_string(),
        });
        return Some((Membership::proportion(false, false, false), Vec::new()));
    }
    let mut strata = Vec::new();
    match age {
        Some(12..=17) => strata.push("Stratification 1"),
        Some(18..) => strata.push("Stratification 2"),
        _ => {}
    }

    // "Measure Assessment Period"
    let year_after = plus_months(index_day, 12)?;
    let assessment_period = Span::around(year_after, 60, 60)?;
    let (Some(map_start), Some(map_end)) = (assessment_period.start, assessment_period.end) else {
        return None;
    };
    evidence.say(format!(
        "Measure assessment period: {map_start} to {map_end} (12 months after the index assessment, +/- 60 days)"
    ));
    let exclusion_window = Span {
        start: identification.start,
        end: Some(map_end),
    };

    // "Denominator Exclusions"
    let hospice = has_hospice(
        record,
        knowledge,
        &exclusion_window,
        Wording::Cms159,
        as_of,
        evidence,
    );
    let palliative = has_palliative_care(record, knowledge, &exclusion_window, as_of, evidence);
    let expired = match record.deceased {
        Some(Deceased::On(day)) if day <= map_end && day <= as_of => {
            evidence.say(format!(
                "Excluded: died on {day}, by the end of the assessment period"
            ));
            true
        }
        _ => false,
    };
    let disorder = record
        .conditions
        .iter()
        .filter(|c| {
            MENTAL_HEALTH_DISORDERS
                .iter()
                .any(|vs| coded_in(knowledge, vs, &c.codes))
        })
        .filter(|c| is_confirmed_active(c))
        .find(|c| c.onset.is_none_or(|d| d <= map_end && d <= as_of));
    if let Some(condition) = disorder {
        evidence.cite(&condition.source);
        evidence.say(format!(
            "Excluded: bipolar, personality, psychotic or pervasive developmental disorder ({})",
            condition.source
        ));
    }
    let excluded = hospice || palliative || expired || disorder.is_some();

    // "Numerator"
    let last = assessments
        .iter()
        .rfind(|(_, day)| assessment_period.contains(*day));
    let remission = match last {
        Some((observation, day)) => {
            evidence.cite(&observation.source);
            let value = score(observation);
            let remitted = value.is_some_and(|v| v < 5.0);
            evidence.say(match value {
                Some(v) if !(0.0..=27.0).contains(&v) => format!(
                    "Last PHQ-9 in the assessment period: {v} on {day} ({}), outside the PHQ-9 range 0-27: counted as not in remission; correct the record",
                    observation.source
                ),
                Some(v) => format!(
                    "Last PHQ-9 in the assessment period: {v} on {day} ({}): {}",
                    observation.source,
                    if remitted {
                        "remission (below 5)"
                    } else {
                        "not in remission (5 or more)"
                    }
                ),
                None => format!(
                    "Last PHQ-9 in the assessment period on {day} ({}) has no numeric score",
                    observation.source
                ),
            });
            remitted
        }
        None => {
            evidence.say(format!(
                "No follow-up PHQ-9 from {map_start} to {map_end}: re-screen"
            ));
            false
        }
    };
    Some((Membership::proportion(true, excluded, remission), strata))
}

/// "Has Palliative Care in the Measure Assessment Period".
fn has_palliative_care(
    record: &PatientRecord,
    knowledge: &Knowledge,
    window: &Span,
    as_of: Date,
    evidence: &mut Evidence,
) -> bool {
    let mut found: Vec<(&str, &str)> = Vec::new();
    for observation in &record.observations {
        let facit = observation
            .codes
            .iter()
            .any(|c| c.system == LOINC && c.code == FACIT_PAL);
        if facit
            && observation
                .effective
                .is_some_and(|d| d <= as_of && window.contains(d))
        {
            found.push((
                &observation.source,
                "palliative care assessment (FACIT-Pal)",
            ));
        }
    }
    for condition in &record.conditions {
        if coded_in(knowledge, PALLIATIVE_CARE_DIAGNOSIS, &condition.codes)
            && is_confirmed_active(condition)
            && condition.onset.is_none_or(|d| d <= as_of)
            && prevalence(condition).is_some_and(|p| p.overlaps(window))
        {
            found.push((&condition.source, "palliative care diagnosis"));
        }
    }
    for encounter in &record.encounters {
        if coded_in(knowledge, PALLIATIVE_CARE_ENCOUNTER, &encounter.types)
            && encounter.status == "finished"
            && encounter.start.is_some_and(|d| d <= as_of)
            && encounter_period(encounter).is_some_and(|p| p.overlaps(window))
        {
            found.push((&encounter.source, "palliative care encounter"));
        }
    }
    for procedure in &record.procedures {
        if coded_in(knowledge, PALLIATIVE_CARE_INTERVENTION, &procedure.codes)
            && !matches!(
                procedure.status.as_str(),
                "not-done" | "entered-in-error" | "unknown"
            )
            && procedure.performed.is_some_and(|d| d <= as_of)
            && procedure_period(procedure).is_some_and(|p| p.overlaps(window))
        {
            found.push((&procedure.source, "palliative care intervention"));
        }
    }
    for (source, what) in &found {
        evidence.cite(source);
        evidence.say(format!("Excluded: {what} ({source})"));
    }
    !found.is_empty()
}

#[cfg(test)]
mod tests {
    use super::plus_months;
    use time::macros::date;

    #[test]
    fn calendar_months_keep_the_day_or_take_the_months_last() {
        assert_eq!(
            plus_months(date!(2024 - 02 - 29), 12),
            Some(date!(2025 - 02 - 28))
        );
        assert_eq!(
            plus_months(date!(2024 - 01 - 01), -14),
            Some(date!(2022 - 11 - 01))
        );
        assert_eq!(
            plus_months(date!(2024 - 01 - 01), -2),
            Some(date!(2023 - 11 - 01))
        );
        assert_eq!(
            plus_months(date!(2023 - 01 - 31), 1),
            Some(date!(2023 - 02 - 28))
        );
    }
}
