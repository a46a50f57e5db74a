//! FHIR R4 resources (fhir-sdk R4B types) -> the engine's normalised facts. Thin and
//! mechanical: no clinical judgement here, only "what does this resource say".

use fhir_sdk::r4b::resources::{
    Condition, ConditionAbatement, ConditionOnset, Encounter, Medication, MedicationDispense,
    MedicationDispenseMedication, MedicationIngredientItem, MedicationRequest,
    MedicationRequestMedication, MedicationStatement, MedicationStatementEffective,
    MedicationStatementMedication, Observation, ObservationComponentValue, ObservationEffective,
    ObservationValue, Procedure, ProcedurePerformed, Resource, ServiceRequest,
};
use fhir_sdk::r4b::types::{CodeableConcept, Reference};
use fhir_sdk::Date as FhirDate;
use time::Date;

mod administration;
mod elements;
mod questionnaire;

pub use administration::administration_of;
pub use elements::{
    amount_of, codes_of, date_of, dosage_of, normalise_reference, patient_of, reference_of,
};
use elements::{
    days_of, duration_amount, fhir_date, first_code, period_bounds, reasons_of, route_of,
};
pub use questionnaire::{
    questionnaire_response_of, questionnaire_status, QUESTIONNAIRE_STATUSES_USED,
};

use crate::clinical::record::{
    Amount, ConditionFact, EncounterFact, MedicationDispensed, MedicationOrder, MedicationProduct,
    MedicationUse, ObservationFact, ObservedComponent, ObservedValue, ProcedureFact,
    ProductIngredient, ServiceRequestFact, SourceRef,
};

/// Resolves references to Medication resources outside the referring resource
/// (same bundle, another file, a Bulk Data Medication.ndjson).
pub trait MedicationLookup {
    fn medication(&self, reference: &str) -> Option<&Medication>;
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

/// A dateTime's calendar day as written (Patient.deceasedDateTime).
pub fn instant_date_of(value: &str) -> Option<Date> {
    let date_time: fhir_sdk::DateTime = value.parse().ok()?;
    date_of(&date_time)
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
    let (performed, performed_end) = match &procedure.performed {
        Some(ProcedurePerformed::DateTime(d)) => (date_of(d), None),
        Some(ProcedurePerformed::Period(p)) => {
            let (start, end) = period_bounds(p);
            (start.or(end), end)
        }
        _ => (None, None),
    };
    ProcedureFact {
        source,
        codes: procedure.code.as_ref().map(codes_of).unwrap_or_default(),
        status: procedure.status.as_ref().to_string(),
        performed,
        performed_end,
    }
}

pub fn service_request_of(source: SourceRef, request: &ServiceRequest) -> ServiceRequestFact {
    ServiceRequestFact {
        source,
        codes: request.code.as_ref().map(codes_of).unwrap_or_default(),
        status: request.status.as_ref().to_string(),
        intent: request.intent.as_ref().to_string(),
        authored_on: request.authored_on.as_ref().and_then(date_of),
        do_not_perform: request.do_not_perform == Some(true),
    }
}

pub fn encounter_of(source: SourceRef, encounter: &Encounter) -> EncounterFact {
    let (start, end) = encounter
        .period
        .as_ref()
        .map_or((None, None), period_bounds);
    EncounterFact {
        source,
        types: encounter
            .r#type
            .iter()
            .flatten()
            .flat_map(codes_of)
            .collect(),
        status: encounter.status.as_ref().to_string(),
        start: start.or(end),
        end,
        discharge_disposition: encounter
            .hospitalization
            .as_ref()
            .and_then(|h| h.discharge_disposition.as_ref())
            .map(codes_of)
            .unwrap_or_default(),
    }
}
