//! FHIR R4 resources (fhir-sdk R4B types) -> the engine's normalised facts. Thin and
//! mechanical: no clinical judgement here, only "what does this resource say".

use fhir_sdk::r4b::resources::{
    Condition, ConditionAbatement, ConditionOnset, Encounter, Medication, MedicationDispense,
    MedicationDispenseMedication, MedicationIngredientItem, MedicationRequest,
    MedicationRequestMedication, MedicationStatement, MedicationStatementEffective,
    MedicationStatementMedication, Observation, ObservationComponentValue, ObservationEffective,
    ObservationValue, Procedure, ProcedurePerformed, Resource,
};
use fhir_sdk::r4b::types::{
    CodeableConcept, Dosage, Duration, Period, Quantity, Reference, TimingRepeatBounds,
};
use fhir_sdk::{Date as FhirDate, DateTime};
use time::{Date, Month};

mod administration;
mod questionnaire;

pub use administration::administration_of;
pub use questionnaire::{
    questionnaire_response_of, questionnaire_status, QUESTIONNAIRE_STATUSES_USED,
};

use crate::clinical::record::{
    Amount, Code, ConditionFact, DosageInstruction, DoseQuantity, EncounterFact,
    MedicationDispensed, MedicationOrder, MedicationProduct, MedicationUse, ObservationFact,
    ObservedComponent, ObservedValue, ProcedureFact, ProductIngredient, SourceRef,
    REASON_REFERENCE,
};

/// Resolves references to Medication resources outside the referring resource
/// (same bundle, another file, a Bulk Data Medication.ndjson).
pub trait MedicationLookup {
    fn medication(&self, reference: &str) -> Option<&Medication>;
}

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

fn fhir_date(date: &FhirDate) -> Option<Date> {
    match date {
        FhirDate::Date(d) => Some(*d),
        FhirDate::YearMonth(y, m) => Date::from_calendar_date(*y, *m, 1).ok(),
        FhirDate::Year(y) => Date::from_calendar_date(*y, Month::January, 1).ok(),
    }
}

fn period_bounds(period: &Period) -> (Option<Date>, Option<Date>) {
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

fn first_code(concept: Option<&CodeableConcept>) -> Option<String> {
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

fn duration_amount(duration: &Duration) -> Option<Amount> {
    Some(Amount {
        value: duration.value?,
        unit: duration
            .code
            .clone()
            .or_else(|| duration.unit.clone())
            .unwrap_or_default(),
    })
}

fn days_of(amount: Option<Amount>) -> Option<f64> {
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
fn route_of(route: &CodeableConcept) -> Option<String> {
    route
        .coding
        .iter()
        .flatten()
        .find_map(|c| c.display.clone().or(c.code.clone()))
        .or(route.text.clone())
}

/// reasonCode codes, plus a reasonReference's target kept as a code-less reference
/// (`system` "reference"), resolved against the record's Conditions by the engine.
fn reasons_of<'a>(
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

/// A Medication resource as a product (code, form, ingredient strengths).
pub fn product_of_medication(medication: &Medication) -> MedicationProduct {
    let ingredients = medication
        .ingredient
        .iter()
        .flatten()
        .map(|ingredient| {
            let (codes, text) = match &ingredient.item {
                MedicationIngredientItem::CodeableConcept(c) => (codes_of(c), c.text.clone()),
                MedicationIngredientItem::Reference(r) => (Vec::new(), r.display.clone()),
            };
            let strength = ingredient.strength.as_ref().and_then(|ratio| {
                let numerator = amount_of(ratio.numerator.as_ref()?)?;
                let denominator =
                    ratio
                        .denominator
                        .as_ref()
                        .and_then(amount_of)
                        .unwrap_or(Amount {
                            value: 1.0,
                            unit: "1".into(),
                        });
                Some((numerator, denominator))
            });
            ProductIngredient {
                codes,
                text,
                strength,
            }
        })
        .collect();
    MedicationProduct {
        codes: medication.code.as_ref().map(codes_of).unwrap_or_default(),
        text: medication.code.as_ref().and_then(|c| c.text.clone()),
        ingredients,
        form: medication.form.as_ref().and_then(|f| {
            f.text
                .clone()
                .or_else(|| f.coding.iter().flatten().find_map(|c| c.display.clone()))
        }),
        unresolved_reference: None,
    }
}

enum MedicationChoice<'a> {
    Concept(&'a CodeableConcept),
    Reference(&'a Reference),
}

fn product_of(
    choice: MedicationChoice<'_>,
    contained: &[Resource],
    lookup: &dyn MedicationLookup,
) -> MedicationProduct {
    match choice {
        MedicationChoice::Concept(concept) => MedicationProduct {
            codes: codes_of(concept),
            text: concept.text.clone(),
            ..MedicationProduct::default()
        },
        MedicationChoice::Reference(reference) => {
            let Some(target) = reference.reference.as_deref() else {
                return MedicationProduct {
                    text: reference.display.clone(),
                    unresolved_reference: reference
                        .display
                        .is_none()
                        .then(|| "(empty reference)".to_string()),
                    ..MedicationProduct::default()
                };
            };
            let found = match target.strip_prefix('#') {
                Some(id) => contained.iter().find_map(|r| match r {
                    Resource::Medication(m) if m.id.as_deref() == Some(id) => Some(m),
                    _ => None,
                }),
                None => lookup.medication(&normalise_reference(target)),
            };
            match found {
                Some(medication) => product_of_medication(medication),
                None => MedicationProduct {
                    text: reference.display.clone(),
                    unresolved_reference: Some(target.to_string()),
                    ..MedicationProduct::default()
                },
            }
        }
    }
}

pub fn order_of(
    source: SourceRef,
    request: &MedicationRequest,
    lookup: &dyn MedicationLookup,
) -> MedicationOrder {
    let choice = match &request.medication {
        MedicationRequestMedication::CodeableConcept(c) => MedicationChoice::Concept(c),
        MedicationRequestMedication::Reference(r) => MedicationChoice::Reference(r),
    };
    let dispense = request.dispense_request.as_ref();
    let (validity_start, validity_end) = dispense
        .and_then(|d| d.validity_period.as_ref())
        .map(period_bounds)
        .unwrap_or((None, None));
    MedicationOrder {
        source,
        status: request.status.clone(),
        intent: request.intent.clone(),
        authored_on: request.authored_on.as_ref().and_then(date_of),
        medication: product_of(choice, &request.contained, lookup),
        dosage: request
            .dosage_instruction
            .iter()
            .flatten()
            .map(dosage_of)
            .collect(),
        validity_start,
        validity_end,
        expected_supply_days: days_of(
            dispense
                .and_then(|d| d.expected_supply_duration.as_ref())
                .and_then(duration_amount),
        ),
        repeats_allowed: dispense.and_then(|d| d.number_of_repeats_allowed),
        quantity: dispense
            .and_then(|d| d.quantity.as_ref())
            .and_then(amount_of),
        reasons: reasons_of(
            request.reason_code.iter().flatten(),
            request.reason_reference.iter().flatten(),
        ),
    }
}

pub fn dispense_of(
    source: SourceRef,
    dispense: &MedicationDispense,
    lookup: &dyn MedicationLookup,
) -> MedicationDispensed {
    let choice = match &dispense.medication {
        MedicationDispenseMedication::CodeableConcept(c) => MedicationChoice::Concept(c),
        MedicationDispenseMedication::Reference(r) => MedicationChoice::Reference(r),
    };
    MedicationDispensed {
        source,
        status: dispense.status.clone(),
        handed_over: dispense
            .when_handed_over
            .as_ref()
            .or(dispense.when_prepared.as_ref())
            .and_then(date_of),
        days_supply: days_of(dispense.days_supply.as_ref().and_then(amount_of)),
        quantity: dispense.quantity.as_ref().and_then(amount_of),
        medication: product_of(choice, &dispense.contained, lookup),
        dosage: dispense
            .dosage_instruction
            .iter()
            .flatten()
            .map(dosage_of)
            .collect(),
        authorizing: dispense
            .authorizing_prescription
            .iter()
            .flatten()
            .filter_map(reference_of)
            .collect(),
    }
}

pub fn statement_of(
    source: SourceRef,
    statement: &MedicationStatement,
    lookup: &dyn MedicationLookup,
) -> MedicationUse {
    let choice = match &statement.medication {
        MedicationStatementMedication::CodeableConcept(c) => MedicationChoice::Concept(c),
        MedicationStatementMedication::Reference(r) => MedicationChoice::Reference(r),
    };
    let (start, end) = match &statement.effective {
        Some(MedicationStatementEffective::DateTime(d)) => (date_of(d), date_of(d)),
        Some(MedicationStatementEffective::Period(p)) => period_bounds(p),
        None => (None, None),
    };
    MedicationUse {
        source,
        status: statement.status.clone(),
        start,
        end,
        medication: product_of(choice, &statement.contained, lookup),
        dosage: statement.dosage.iter().flatten().map(dosage_of).collect(),
        reasons: reasons_of(
            statement.reason_code.iter().flatten(),
            statement.reason_reference.iter().flatten(),
        ),
    }
}

/// Observation statuses whose values are used (final, amended, corrected).
pub const OBSERVATION_STATUSES_USED: &[&str] = &["final", "amended", "corrected"];

pub fn observation_status(observation: &Observation) -> &str {
    observation.status.as_ref()
}

pub fn observation_of(source: SourceRef, observation: &Observation) -> ObservationFact {
    let effective = match &observation.effective {
        Some(ObservationEffective::DateTime(d)) => date_of(d),
        Some(ObservationEffective::Period(p)) => period_bounds(p).0,
        Some(ObservationEffective::Instant(i)) => Some(i.0.date()),
        _ => None,
    }
    .or_else(|| observation.issued.as_ref().map(|i| i.0.date()));
    let value = match &observation.value {
        Some(ObservationValue::Integer(i)) => Some(ObservedValue::Number {
            value: f64::from(*i),
            unit: None,
        }),
        Some(ObservationValue::Quantity(q)) => q.value.map(|value| ObservedValue::Number {
            value,
            unit: q.code.clone().or_else(|| q.unit.clone()),
        }),
        Some(ObservationValue::String(s)) => Some(ObservedValue::Text(s.clone())),
        Some(ObservationValue::CodeableConcept(c)) => Some(ObservedValue::Coded(codes_of(c))),
        Some(ObservationValue::Boolean(b)) => Some(ObservedValue::Boolean(*b)),
        _ => None,
    };
    let range = observation.reference_range.iter().flatten().next();
    let components = observation
        .component
        .iter()
        .flatten()
        .map(|c| ObservedComponent {
            codes: codes_of(&c.code),
            value: match &c.value {
                Some(ObservationComponentValue::Integer(i)) => Some(ObservedValue::Number {
                    value: f64::from(*i),
                    unit: None,
                }),
                Some(ObservationComponentValue::Quantity(q)) => {
                    q.value.map(|value| ObservedValue::Number {
                        value,
                        unit: q.code.clone().or_else(|| q.unit.clone()),
                    })
                }
                Some(ObservationComponentValue::String(s)) => Some(ObservedValue::Text(s.clone())),
                Some(ObservationComponentValue::CodeableConcept(c)) => {
                    Some(ObservedValue::Coded(codes_of(c)))
                }
                Some(ObservationComponentValue::Boolean(b)) => Some(ObservedValue::Boolean(*b)),
                _ => None,
            },
        })
        .collect();
    ObservationFact {
        source,
        codes: codes_of(&observation.code),
        effective,
        value,
        reference_high: range.and_then(|r| r.high.as_ref()).and_then(|q| q.value),
        reference_low: range.and_then(|r| r.low.as_ref()).and_then(|q| q.value),
        components,
        members: observation
            .has_member
            .iter()
            .flatten()
            .filter_map(reference_of)
            .collect(),
    }
}

/// Patient.birthDate as a calendar day (a partial date takes its first day).
pub fn birth_date_of(value: &str) -> Option<Date> {
    let date: FhirDate = value.parse().ok()?;
    fhir_date(&date)
}

pub fn condition_of(source: SourceRef, condition: &Condition) -> ConditionFact {
    let onset = match &condition.onset {
        Some(ConditionOnset::DateTime(d)) => date_of(d),
        Some(ConditionOnset::Period(p)) => period_bounds(p).0,
        _ => None,
    };
    let abatement = match &condition.abatement {
        Some(ConditionAbatement::DateTime(d)) => date_of(d),
        Some(ConditionAbatement::Period(p)) => period_bounds(p).1.or(period_bounds(p).0),
        _ => None,
    };
    ConditionFact {
        source,
        codes: condition.code.as_ref().map(codes_of).unwrap_or_default(),
        onset,
        abatement,
        recorded: condition.recorded_date.as_ref().and_then(date_of),
        clinical_status: first_code(condition.clinical_status.as_ref()),
        verification_status: first_code(condition.verification_status.as_ref()),
    }
}

pub fn procedure_of(source: SourceRef, procedure: &Procedure) -> ProcedureFact {
    let performed = match &procedure.performed {
        Some(ProcedurePerformed::DateTime(d)) => date_of(d),
        Some(ProcedurePerformed::Period(p)) => period_bounds(p).0.or(period_bounds(p).1),
        _ => None,
    };
    ProcedureFact {
        source,
        codes: procedure.code.as_ref().map(codes_of).unwrap_or_default(),
        status: procedure.status.as_ref().to_string(),
        performed,
    }
}

pub fn encounter_of(source: SourceRef, encounter: &Encounter) -> EncounterFact {
    EncounterFact {
        source,
        types: encounter
            .r#type
            .iter()
            .flatten()
            .flat_map(codes_of)
            .collect(),
        status: encounter.status.as_ref().to_string(),
        start: encounter
            .period
            .as_ref()
            .and_then(|p| period_bounds(p).0.or(period_bounds(p).1)),
    }
}
