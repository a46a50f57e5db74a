//! HEDIS Antidepressant Medication Management as the CQL of CMS128FHIR computes it:
//! library `CMS128FHIRAntidepressantMedManagement` version '0.3.000'
//! (cqframework/ecqm-content-qicore-2025; the same logic as
//! `AntidepressantMedicationManagementFHIR` '0.1.001'), with `Status` '2.0.000',
//! `CQMCommon` and `CumulativeMedicationDuration` (see [`super::cmd`]).
//!
//! - "Intake Period": `Interval["May 1 of the Year Prior to the Measurement Period",
//!   "April 30 of the Measurement Period"]`, compared `in day of`.
//! - "IPSD": the earliest `date from start of medicationDispensePeriod()` in the intake
//!   period, over `[MedicationDispense: "Antidepressant Medication"]` that are
//!   `isMedicationDispensed()` (status completed, in-progress, on-hold).
//! - "Denominator Exclusions" (negative medication history): a `[MedicationRequest:
//!   "Antidepressant Medication"]` that `isMedicationActive()` (status active and
//!   intent order) whose `ToDateInterval(medicationRequestPeriod())` `overlaps
//!   Interval["IPSD" - 105 days, "IPSD")`: half-open, so [IPSD - 105, IPSD - 1].
//! - "Cumulative Medication Duration Greater Than or Equal to 84 Days": the
//!   `cumulativeDuration()` of every dispensed period `intersect Interval["IPSD",
//!   "IPSD" + 114 days]` (closed: 115 days) is >= 84; the 180-day numerator likewise
//!   over `Interval["IPSD", "IPSD" + 231 days]`. Overlapping dispenses are collapsed
//!   (each day once), not rolled forward.
//!
//! "Antidepressant Medication" is the VSAC value set
//! 2.16.840.1.113883.3.464.1003.196.12.1213 (`vsac/ValueSet-AntidepressantMedication.json`):
//! a medication counts when one of its codes is in it, as the CQL retrieve does.
//! Not evaluated here (the record has no birth date or encounters to test them):
//! the initial population's age >= 18 at the IPSD, its major-depression diagnosis and
//! visits, and the hospice exclusion. Facts dated after the as-of date are not used.

use serde::Serialize;
use time::{Date, Duration, Month};

use super::cmd::{
    cumulative_duration, medication_dispense_period, medication_request_period, DateInterval,
};
use super::knowledge::Knowledge;
use super::record::{MedicationProduct, PatientRecord, SourceRef};

/// VSAC "Antidepressant Medication", the value set CMS128FHIR retrieves with.
pub const ANTIDEPRESSANT_MEDICATION: &str =
    "http://cts.nlm.nih.gov/fhir/ValueSet/2.16.840.1.113883.3.464.1003.196.12.1213";

/// Status `isMedicationDispensed()`.
const DISPENSED: &[&str] = &["completed", "in-progress", "on-hold"];

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AmmResult {
    pub measurement_period: i32,
    pub ipsd: Date,
    /// The dispense that set the IPSD (the measure report cites it).
    #[serde(skip)]
    pub ipsd_source: SourceRef,
    /// The 105-day negative medication history rule excludes this patient.
    pub prior_use_excluded: bool,
    pub acute_phase_days: i64,
    pub acute_phase_met: bool,
    pub continuation_phase_days: i64,
    pub continuation_phase_met: bool,
}

pub const ACUTE_WINDOW_DAYS: i64 = 114;
pub const ACUTE_REQUIRED_DAYS: i64 = 84;
pub const CONTINUATION_WINDOW_DAYS: i64 = 231;
pub const CONTINUATION_REQUIRED_DAYS: i64 = 180;
pub const NEGATIVE_HISTORY_DAYS: i64 = 105;

fn in_value_set(product: &MedicationProduct, knowledge: &Knowledge) -> bool {
    product.codes.iter().any(|c| {
        knowledge
            .value_sets
            .contains(ANTIDEPRESSANT_MEDICATION, &c.system, &c.code)
    })
}

/// None when the patient has no antidepressant dispense in the intake period.
pub fn evaluate(
    record: &PatientRecord,
    knowledge: &Knowledge,
    year: i32,
    as_of: Date,
) -> Option<AmmResult> {
    let intake = DateInterval::closed(
        Date::from_calendar_date(year.checked_sub(1)?, Month::May, 1).ok()?,
        Date::from_calendar_date(year, Month::April, 30).ok()?,
    )?;
    // ([MedicationDispense: "Antidepressant Medication"]).isMedicationDispensed()
    // .medicationDispensePeriod(); a null period is dropped (collapse excludes nulls).
    let sourced: Vec<(&SourceRef, DateInterval)> = record
        .dispenses
        .iter()
        .filter(|d| DISPENSED.contains(&d.status.as_str()))
        .filter(|d| in_value_set(&d.medication, knowledge))
        .filter_map(|d| Some((&d.source, medication_dispense_period(d)?)))
        .filter(|(_, p)| p.start <= as_of)
        .collect();
    // "IPSD": First(... where start in day of "Intake Period" sort by date).
    let (ipsd_source, ipsd) = sourced
        .iter()
        .map(|(source, p)| (*source, p.start))
        .filter(|(_, start)| intake.contains(*start))
        .min_by_key(|(_, start)| *start)?;
    let dispensed: Vec<DateInterval> = sourced.iter().map(|(_, p)| *p).collect();

    // Interval["IPSD" - 105 days, "IPSD")
    let history = DateInterval::closed_open(
        ipsd.checked_sub(Duration::days(NEGATIVE_HISTORY_DAYS))?,
        ipsd,
    )?;
    let prior_use_excluded = record
        .orders
        .iter()
        .filter(|o| o.status == "active" && o.intent == "order")
        .filter(|o| in_value_set(&o.medication, knowledge))
        .filter_map(medication_request_period)
        .any(|period| period.start <= as_of && period.overlaps(&history));

    let covered = |window_days: i64| -> Option<i64> {
        let window = DateInterval::closed(ipsd, ipsd.checked_add(Duration::days(window_days))?)?;
        let clipped: Vec<DateInterval> = dispensed
            .iter()
            .filter_map(|p| p.intersect(&window))
            .collect();
        Some(cumulative_duration(&clipped))
    };
    let acute = covered(ACUTE_WINDOW_DAYS)?;
    let continuation = covered(CONTINUATION_WINDOW_DAYS)?;
    Some(AmmResult {
        measurement_period: year,
        ipsd,
        ipsd_source: ipsd_source.clone(),
        prior_use_excluded,
        acute_phase_days: acute,
        acute_phase_met: acute >= ACUTE_REQUIRED_DAYS,
        continuation_phase_days: continuation,
        continuation_phase_met: continuation >= CONTINUATION_REQUIRED_DAYS,
    })
}
