//! MedicationAdministration -> [`MedicationGiven`]: the doses a ward gave. Each is one
//! covered day at a known dose; the engine joins them with the outpatient fills of
//! the same drug into one trial.

use fhir_sdk::r4b::resources::{
    MedicationAdministration, MedicationAdministrationEffective, MedicationAdministrationMedication,
};

use super::{
    amount_of, date_of, period_bounds, product_of, reference_of, MedicationChoice, MedicationLookup,
};
use crate::clinical::record::{DosageInstruction, DoseQuantity, MedicationGiven, SourceRef};

pub fn administration_of(
    source: SourceRef,
    given: &MedicationAdministration,
    lookup: &dyn MedicationLookup,
) -> MedicationGiven {
    let choice = match &given.medication {
        MedicationAdministrationMedication::CodeableConcept(c) => MedicationChoice::Concept(c),
        MedicationAdministrationMedication::Reference(r) => MedicationChoice::Reference(r),
    };
    let (from, until) = match &given.effective {
        MedicationAdministrationEffective::DateTime(d) => (date_of(d), None),
        MedicationAdministrationEffective::Period(p) => period_bounds(p),
    };
    let dosage = given.dosage.as_ref();
    // One administration: its dose once (a rate alone gives no dose for the day; the
    // day still counts as covered).
    let instruction = DosageInstruction {
        text: dosage.and_then(|d| d.text.clone()),
        dose: dosage
            .and_then(|d| d.dose.as_ref())
            .and_then(amount_of)
            .map(DoseQuantity::Quantity),
        frequency: Some(1),
        period: Some(1.0),
        period_unit: Some("d".into()),
        route: dosage
            .and_then(|d| d.route.as_ref())
            .and_then(super::route_of),
        ..DosageInstruction::default()
    };
    MedicationGiven {
        source,
        status: given.status.clone(),
        given: from,
        given_until: until.filter(|u| from.is_some_and(|f| *u > f)),
        medication: product_of(choice, &given.contained, lookup),
        dosage: instruction,
        request: given.request.as_ref().and_then(reference_of),
    }
}
