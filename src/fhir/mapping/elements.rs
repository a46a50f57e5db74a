//! FHIR datatypes -> the engine's values: references, dates, codes, quantities and
//! dosage instructions, shared by every resource's mapping.

use fhir_sdk::r4b::types::{
    CodeableConcept, Dosage, Duration, Period, Quantity, Reference, TimingRepeatBounds,
};
use fhir_sdk::{Date as FhirDate, DateTime};
use time::{Date, Month};

use crate::clinical::record::{Amount, Code, DosageInstruction, DoseQuantity, REASON_REFERENCE};

/// "Patient/1", "http://ehr/fhir/Patient/1/_history/2" -> "Patient/1"; fragments and
/// urn:uuid references are returned as they are.
pub fn normalise_reference(reference: &str) -> String {
    if reference.starts_with('#') || reference.starts_with("urn:") {
        return reference.to_string();
    }
    let trimmed = match reference.find("/_history/") {
        Some(i) => &reference[..i],
        None => reference,
    };
    let mut parts = trimmed.rsplit('/');
    match (parts.next(), parts.next()) {
        (Some(id), Some(kind))
            if !id.is_empty() && kind.chars().next().is_some_and(|c| c.is_ascii_uppercase()) =>
        {
            format!("{kind}/{id}")
        }
        _ => trimmed.to_string(),
    }
}

/// The patient a raw resource is about: itself if a Patient, else its subject or
/// patient reference (notifications, reconciliation and the pipeline all ask this).
pub fn patient_of(resource: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    if resource.get("resourceType").and_then(Value::as_str) == Some("Patient") {
        return resource
            .get("id")
            .and_then(Value::as_str)
            .map(|id| format!("Patient/{id}"));
    }
    ["subject", "patient"]
        .iter()
        .filter_map(|field| {
            resource
                .pointer(&format!("/{field}/reference"))
                .and_then(Value::as_str)
        })
        .map(normalise_reference)
        .find(|r| r.starts_with("Patient/"))
}

pub fn reference_of(reference: &Reference) -> Option<String> {
    reference.reference.as_deref().map(normalise_reference)
}

/// A FHIR date or dateTime as a calendar day (partial dates take their first day).
pub fn date_of(value: &DateTime) -> Option<Date> {
    match value {
        DateTime::Date(date) => fhir_date(date),
        DateTime::DateTime(instant) => Some(instant.0.date()),
    }
}

pub(super) fn fhir_date(date: &FhirDate) -> Option<Date> {
    match date {
        FhirDate::Date(d) => Some(*d),
        FhirDate::YearMonth(y, m) => Date::from_calendar_date(*y, *m, 1).ok(),
        FhirDate::Year(y) => Date::from_calendar_date(*y, Month::January, 1).ok(),
    }
}

pub(super) fn period_bounds(period: &Period) -> (Option<Date>, Option<Date>) {
    (
        period.start.as_ref().and_then(date_of),
        period.end.as_ref().and_then(date_of),
    )
}

pub fn codes_of(concept: &CodeableConcept) -> Vec<Code> {
    concept
        .coding
        .iter()
        .flatten()
        .filter_map(|coding| {
            Some(Code {
                system: coding.system.clone().unwrap_or_default(),
                code: coding.code.clone()?,
                display: coding.display.clone(),
            })
        })
        .collect()
}

pub(super) fn first_code(concept: Option<&CodeableConcept>) -> Option<String> {
    concept?
        .coding
        .iter()
        .flatten()
        .find_map(|c| c.code.clone())
}

pub fn amount_of(quantity: &Quantity) -> Option<Amount> {
    Some(Amount {
        value: quantity.value?,
        unit: quantity
            .code
            .clone()
            .or_else(|| quantity.unit.clone())
            .unwrap_or_default(),
    })
}

pub(super) fn duration_amount(duration: &Duration) -> Option<Amount> {
    Some(Amount {
        value: duration.value?,
        unit: duration
            .code
            .clone()
            .or_else(|| duration.unit.clone())
            .unwrap_or_default(),
    })
}

pub(super) fn days_of(amount: Option<Amount>) -> Option<f64> {
    crate::clinical::units::duration_in_days(&amount?)
}

pub fn dosage_of(dosage: &Dosage) -> DosageInstruction {
    let dose = dosage
        .dose_and_rate
        .iter()
        .flatten()
        .find_map(|dr| match dr.dose.as_ref()? {
            fhir_sdk::r4b::types::DosageDoseAndRateDose::Quantity(q) => {
                amount_of(q).map(DoseQuantity::Quantity)
            }
            fhir_sdk::r4b::types::DosageDoseAndRateDose::Range(r) => Some(DoseQuantity::Range {
                low: r.low.as_ref().and_then(amount_of)?,
                high: r.high.as_ref().and_then(amount_of),
            }),
        });
    let timing = dosage.timing.as_ref();
    let repeat = timing.and_then(|t| t.repeat.as_ref());
    let (bounds_days, (bounds_start, bounds_end)) = match repeat.and_then(|r| r.bounds.as_ref()) {
        Some(TimingRepeatBounds::Duration(d)) => (days_of(duration_amount(d)), (None, None)),
        Some(TimingRepeatBounds::Period(p)) => (None, period_bounds(p)),
        Some(TimingRepeatBounds::Range(_)) | None => (None, (None, None)),
    };
    DosageInstruction {
        sequence: dosage.sequence,
        text: dosage.text.clone(),
        dose,
        frequency: repeat.and_then(|r| r.frequency).map(|f| f.get()),
        frequency_max: repeat.and_then(|r| r.frequency_max).map(|f| f.get()),
        period: repeat.and_then(|r| r.period),
        period_unit: repeat
            .and_then(|r| r.period_unit.as_ref())
            .map(|u| AsRef::<str>::as_ref(u).to_string()),
        when_count: repeat.map(|r| r.when.iter().flatten().count()).unwrap_or(0),
        time_of_day_count: repeat
            .map(|r| r.time_of_day.iter().flatten().count())
            .unwrap_or(0),
        bounds_days,
        bounds_start,
        bounds_end,
        timing_code: timing.and_then(|t| first_code(t.code.as_ref())),
        as_needed: match &dosage.as_needed {
            Some(fhir_sdk::r4b::types::DosageAsNeeded::Boolean(b)) => *b,
            Some(fhir_sdk::r4b::types::DosageAsNeeded::CodeableConcept(_)) => true,
            None => false,
        },
        route: dosage.route.as_ref().and_then(route_of),
    }
}

/// A route as a person reads it: the first coding's display or code, else the text.
pub(super) fn route_of(route: &CodeableConcept) -> Option<String> {
    route
        .coding
        .iter()
        .flatten()
        .find_map(|c| c.display.clone().or(c.code.clone()))
        .or(route.text.clone())
}

/// reasonCode codes, plus a reasonReference's target kept as a code-less reference
/// (`system` "reference"), resolved against the record's Conditions by the engine.
pub(super) fn reasons_of<'a>(
    codes: impl Iterator<Item = &'a CodeableConcept>,
    references: impl Iterator<Item = &'a Reference>,
) -> Vec<Code> {
    let mut reasons: Vec<Code> = codes.flat_map(codes_of).collect();
    reasons.extend(references.filter_map(reference_of).map(|target| Code {
        system: REASON_REFERENCE.to_string(),
        code: target,
        display: None,
    }));
    reasons
}
