//! CMS128FHIR "Antidepressant Medication Management", library
//! `CMS128FHIRAntidepressantMedManagement` version '0.3.000' (QI-Core 6.0.0), with
//! `Hospice` 6.15.000 and `Status` 1.13.000. The IPSD, the negative medication
//! history and both cumulative durations are [`crate::clinical::amm`]; here the rest:
//!
//! - "Initial Population": `AgeInYearsAt(date from "IPSD") >= 18`, and "Has IPSD and
//!   Major Depression Diagnosis" (a Condition in "Major Depression", any status,
//!   whose `prevalenceInterval()` starts `within 60 days of "IPSD"`), and `exists
//!   "Qualifying Encounters"` (an `isEncounterPerformed()` Encounter of ten visit
//!   value sets whose period starts within 60 days of the IPSD).
//! - "Denominator Exclusions": `Hospice."Has Hospice Services"` over the measurement
//!   period, or an active antidepressant order overlapping the 105 days before the
//!   IPSD.
//! - Group_1 "Numerator 1": >= 84 days covered from the IPSD through IPSD + 114 days;
//!   Group_2 "Numerator 2": >= 180 days from the IPSD through IPSD + 231 days.

use time::Date;

use super::hospice::{has_hospice, Wording};
use super::span::Span;
use super::value_sets::{CMS128_ENCOUNTERS, MAJOR_DEPRESSION};
use super::{coded_in, Evidence, MeasureId, MeasureResult, MeasurementPeriod, Membership};
use crate::clinical::amm;
use crate::clinical::knowledge::Knowledge;
use crate::clinical::record::PatientRecord;

const WITHIN_DAYS: i64 = 60;
const PERFORMED: &[&str] = &["finished", "arrived", "triaged", "in-progress", "onleave"];

pub fn evaluate(
    record: &PatientRecord,
    knowledge: &Knowledge,
    period: MeasurementPeriod,
    as_of: Date,
) -> MeasureResult {
    let mut evidence = Evidence::default();
    let none = Membership::proportion(false, false, false);
    let (acute, continuation) =
        decide(record, knowledge, period, as_of, &mut evidence).unwrap_or((none, none));
    evidence.into_result(
        MeasureId::Cms128,
        record,
        period,
        &[acute, continuation],
        Vec::new(),
    )
}

fn decide(
    record: &PatientRecord,
    knowledge: &Knowledge,
    period: MeasurementPeriod,
    as_of: Date,
    evidence: &mut Evidence,
) -> Option<(Membership, Membership)> {
    let Some(amm) = amm::evaluate(record, knowledge, period.year, as_of) else {
        evidence.say("No antidepressant dispensed in the intake period (May 1 of the year before to April 30)");
        return None;
    };
    let ipsd = amm.ipsd;
    evidence.cite(&amm.ipsd_source);
    evidence.say(format!(
        "Index prescription start date (IPSD): {ipsd} ({})",
        amm.ipsd_source
    ));
    let near_ipsd = Span::around(ipsd, WITHIN_DAYS, WITHIN_DAYS)?;

    let age = record.age_on(ipsd);
    let adult = age.is_some_and(|a| a >= 18);
    let diagnosis = record
        .conditions
        .iter()
        .filter(|c| coded_in(knowledge, MAJOR_DEPRESSION, &c.codes))
        .find(|c| c.onset.is_some_and(|d| d <= as_of && near_ipsd.contains(d)));
    let encounter = record
        .encounters
        .iter()
        .filter(|e| PERFORMED.contains(&e.status.as_str()))
        .filter(|e| {
            CMS128_ENCOUNTERS
                .iter()
                .any(|vs| coded_in(knowledge, vs, &e.types))
        })
        .find(|e| e.start.is_some_and(|d| d <= as_of && near_ipsd.contains(d)));
    if let Some(c) = diagnosis {
        evidence.cite(&c.source);
    }
    if let Some(e) = encounter {
        evidence.cite(&e.source);
    }
    let initial = adult && diagnosis.is_some() && encounter.is_some();
    if !initial {
        let mut missing = Vec::new();
        if !adult {
            missing.push(match age {
                Some(age) => format!("aged {age} at the IPSD (18 or older required)"),
                None => "no birth date".to_string(),
            });
        }
        if diagnosis.is_none() {
            missing.push(
                "no major depression diagnosis starting within 60 days of the IPSD".to_string(),
            );
        }
        if encounter.is_none() {
            missing.push("no qualifying visit within 60 days of the IPSD".to_string());
        }
        evidence.say(format!(
            "Not in the initial population: {}",
            missing.join("; ")
        ));
        let none = Membership::proportion(false, false, false);
        return Some((none, none));
    }

    let hospice = has_hospice(
        record,
        knowledge,
        &period.span(),
        Wording::Hospice615,
        as_of,
        evidence,
    );
    if amm.prior_use_excluded {
        evidence.say("Excluded: an antidepressant order active in the 105 days before the IPSD (not a new treatment episode)");
    }
    let excluded = hospice || amm.prior_use_excluded;
    evidence.say(format!(
        "Antidepressant days covered: {} of the 84 needed by IPSD + 114 days; {} of the 180 needed by IPSD + 231 days",
        amm.acute_phase_days, amm.continuation_phase_days
    ));
    Some((
        Membership::proportion(true, excluded, amm.acute_phase_met),
        Membership::proportion(true, excluded, amm.continuation_phase_met),
    ))
}
