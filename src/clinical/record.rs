//! The patient record the engine reads: normalised facts taken from FHIR resources,
//! each keeping a reference to its source resource so every verdict can cite it.
//! Nothing here knows FHIR's JSON; `crate::fhir::mapping` fills it in.

use serde::Serialize;
use time::Date;

/// The `system` of a reason that is a reference to a resource (its `code` is the
/// normalised reference, "Condition/12"), resolved against the record's Conditions.
pub const REASON_REFERENCE: &str = "reference";

pub const LOINC: &str = "http://loinc.org";

/// The `system` of a form's questionnaire canonical among an observation's codes (a
/// QuestionnaireResponse read as a panel).
pub const QUESTIONNAIRE_CANONICAL: &str = "questionnaire";

/// "MedicationRequest/7": the resource a fact came from.
pub type SourceRef = String;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Code {
    pub system: String,
    pub code: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display: Option<String>,
}

/// An amount with its unit as written (UCUM code preferred, else the unit text).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Amount {
    pub value: f64,
    pub unit: String,
}

/// A medication as the order/dispense/statement named it, with a referenced
/// Medication resource already resolved.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MedicationProduct {
    pub codes: Vec<Code>,
    pub text: Option<String>,
    /// Ingredients with strengths from a Medication resource.
    pub ingredients: Vec<ProductIngredient>,
    pub form: Option<String>,
    /// Set when a medicationReference could not be resolved.
    pub unresolved_reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductIngredient {
    pub codes: Vec<Code>,
    pub text: Option<String>,
    /// Strength per unit of presentation: numerator / denominator.
    pub strength: Option<(Amount, Amount)>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum DoseQuantity {
    Quantity(Amount),
    /// doseRange: the engine uses the low end and says so.
    Range {
        low: Amount,
        high: Option<Amount>,
    },
}

/// One dosage instruction, structurally (FHIR Dosage, simplified to what dose needs).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DosageInstruction {
    pub sequence: Option<i32>,
    pub text: Option<String>,
    pub dose: Option<DoseQuantity>,
    pub frequency: Option<u32>,
    pub frequency_max: Option<u32>,
    pub period: Option<f64>,
    pub period_unit: Option<String>,
    /// timing.repeat.when entries (e.g. MORN, HS), counted as daily events.
    pub when_count: usize,
    /// timing.repeat.timeOfDay entries (CMD counts these when there is no frequency).
    pub time_of_day_count: usize,
    /// timing.repeat.boundsDuration in days (titration steps: "2 weeks at 50 mg").
    pub bounds_days: Option<f64>,
    /// timing.repeat.boundsPeriod start.
    pub bounds_start: Option<Date>,
    /// timing.repeat.boundsPeriod end.
    pub bounds_end: Option<Date>,
    pub timing_code: Option<String>,
    pub as_needed: bool,
    pub route: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MedicationOrder {
    pub source: SourceRef,
    pub status: String,
    pub intent: String,
    pub authored_on: Option<Date>,
    pub medication: MedicationProduct,
    pub dosage: Vec<DosageInstruction>,
    pub validity_start: Option<Date>,
    pub validity_end: Option<Date>,
    pub expected_supply_days: Option<f64>,
    pub repeats_allowed: Option<u32>,
    pub quantity: Option<Amount>,
    /// Why it was ordered: reasonCode codes, and reasonReference targets resolved to
    /// the referenced Condition's codes where the record has it.
    pub reasons: Vec<Code>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MedicationDispensed {
    pub source: SourceRef,
    pub status: String,
    pub handed_over: Option<Date>,
    pub days_supply: Option<f64>,
    pub quantity: Option<Amount>,
    pub medication: MedicationProduct,
    pub dosage: Vec<DosageInstruction>,
    /// References to the authorising MedicationRequests, normalised ("MedicationRequest/1").
    pub authorizing: Vec<SourceRef>,
}

/// A MedicationAdministration: doses given on the ward, each day one covered day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MedicationGiven {
    pub source: SourceRef,
    pub status: String,
    /// effectiveDateTime, or effectivePeriod's start.
    pub given: Option<Date>,
    /// effectivePeriod's end, when the administration spans days.
    pub given_until: Option<Date>,
    pub medication: MedicationProduct,
    /// dosage.dose (or dosage.rateQuantity, as `rate`), with dosage.text and route.
    pub dosage: DosageInstruction,
    /// MedicationAdministration.request, normalised ("MedicationRequest/1").
    pub request: Option<SourceRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MedicationUse {
    pub source: SourceRef,
    pub status: String,
    pub start: Option<Date>,
    pub end: Option<Date>,
    pub medication: MedicationProduct,
    pub dosage: Vec<DosageInstruction>,
    /// reasonCode codes (reasonReference resolved as for orders).
    pub reasons: Vec<Code>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum ObservedValue {
    Number {
        value: f64,
        unit: Option<String>,
    },
    Text(String),
    /// valueCodeableConcept: an answer code (LOINC LA codes for questionnaire items).
    Coded(Vec<Code>),
    /// valueBoolean (yes/no items).
    Boolean(bool),
}

/// A final/amended/corrected Observation (scores and labs).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObservationFact {
    pub source: SourceRef,
    pub codes: Vec<Code>,
    pub effective: Option<Date>,
    pub value: Option<ObservedValue>,
    /// Reference range high bound, when the lab gave one.
    pub reference_high: Option<f64>,
    pub reference_low: Option<f64>,
    /// Observation.component: a panel's items or total (a PHQ-9 panel carrying item 9);
    /// a QuestionnaireResponse's answered items.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub components: Vec<ObservedComponent>,
    /// Observation.hasMember: a panel whose items are Observations of their own
    /// (normalised references), read as its components.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<SourceRef>,
}

/// One Observation.component: its code and value, dated and sourced by its parent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObservedComponent {
    pub codes: Vec<Code>,
    pub value: Option<ObservedValue>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConditionFact {
    pub source: SourceRef,
    pub codes: Vec<Code>,
    pub onset: Option<Date>,
    pub abatement: Option<Date>,
    pub recorded: Option<Date>,
    pub clinical_status: Option<String>,
    pub verification_status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcedureFact {
    pub source: SourceRef,
    pub codes: Vec<Code>,
    pub status: String,
    /// performedDateTime, or the start of performedPeriod (its end when it has none).
    pub performed: Option<Date>,
    /// The end of performedPeriod: quality measures ask whether the procedure
    /// overlaps a period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub performed_end: Option<Date>,
}

/// A ServiceRequest of a kind a quality measure reads (a hospice referral).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceRequestFact {
    pub source: SourceRef,
    pub codes: Vec<Code>,
    pub status: String,
    pub intent: String,
    pub authored_on: Option<Date>,
    /// doNotPerform true: an order not to do it.
    pub do_not_perform: bool,
}

/// An Encounter of a type the engine reads: a psychotherapy session (some EHRs code
/// the session as the visit type rather than as a Procedure), or a visit a quality
/// measure counts (office visits, inpatient stays, hospice and palliative care).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EncounterFact {
    pub source: SourceRef,
    pub types: Vec<Code>,
    pub status: String,
    /// period.start (period.end when it has no start).
    pub start: Option<Date>,
    /// period.end; none while the encounter is still open.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<Date>,
    /// hospitalization.dischargeDisposition (discharged to hospice care).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub discharge_disposition: Vec<Code>,
}

/// Patient.deceased[x]: the measures' "Patient Expired" exclusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deceased {
    /// deceasedBoolean true: dead, date unknown.
    Yes,
    /// deceasedDateTime.
    On(Date),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoteKind {
    /// The resource could not be read at all.
    Unreadable,
    /// Read, but deliberately not used (entered-in-error, cancelled, preliminary...).
    NotUsed,
}

/// Something about a resource the reader had to say: never a silent drop.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecordNote {
    pub source: SourceRef,
    pub kind: NoteKind,
    pub message: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PatientRecord {
    /// "Patient/123"
    pub patient: String,
    /// Patient.birthDate: the age-dependent safety rules need it (antidepressants
    /// under 25, citalopram over 60). Never serialised, so it cannot reach a log or
    /// an output line.
    #[serde(skip_serializing)]
    pub birth_date: Option<Date>,
    /// Patient.deceased[x]; never serialised, like the birth date.
    #[serde(skip_serializing)]
    pub deceased: Option<Deceased>,
    pub orders: Vec<MedicationOrder>,
    pub dispenses: Vec<MedicationDispensed>,
    pub statements: Vec<MedicationUse>,
    /// Inpatient administrations.
    pub administrations: Vec<MedicationGiven>,
    pub observations: Vec<ObservationFact>,
    pub conditions: Vec<ConditionFact>,
    pub procedures: Vec<ProcedureFact>,
    /// Encounters of the types the engine reads (psychotherapy, measure visits).
    pub encounters: Vec<EncounterFact>,
    /// Hospice referrals (quality measures' exclusions).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub service_requests: Vec<ServiceRequestFact>,
    pub notes: Vec<RecordNote>,
}

impl PatientRecord {
    pub fn new(patient: impl Into<String>) -> Self {
        Self {
            patient: patient.into(),
            ..Self::default()
        }
    }

    /// Puts every list in one order, whatever order the resources came in (a Bundle
    /// as written, an export's files by type, an EHR's search pages): by source
    /// reference, numbers within it compared as numbers ("medi2" before "medi10").
    /// The same record in any shape then gives the same assessment, findings and
    /// evidence in the same order. Stable: facts of one resource keep their order.
    pub fn into_canonical_order(mut self) -> Self {
        fn by_source<T>(items: &mut [T], source: impl Fn(&T) -> &str) {
            items.sort_by(|a, b| natural_cmp(source(a), source(b)));
        }
        by_source(&mut self.orders, |f| &f.source);
        by_source(&mut self.dispenses, |f| &f.source);
        by_source(&mut self.statements, |f| &f.source);
        by_source(&mut self.administrations, |f| &f.source);
        by_source(&mut self.observations, |f| &f.source);
        by_source(&mut self.conditions, |f| &f.source);
        by_source(&mut self.procedures, |f| &f.source);
        by_source(&mut self.encounters, |f| &f.source);
        by_source(&mut self.service_requests, |f| &f.source);
        by_source(&mut self.notes, |f| &f.source);
        self
    }

    /// Age in completed years on `date`, when the birth date is known.
    pub fn age_on(&self, date: Date) -> Option<i32> {
        let birth = self.birth_date?;
        let before_birthday = (date.month() as u8, date.day()) < (birth.month() as u8, birth.day());
        Some(date.year() - birth.year() - i32::from(before_birthday))
    }
}

/// Compares text with runs of digits compared as numbers: "medi2" < "medi10".
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let digits = |s: &[u8]| s.iter().take_while(|c| c.is_ascii_digit()).count();
                let (n, m) = (digits(a), digits(b));
                let (x, y) = (a.split_at(n), b.split_at(m));
                let trim = |s: &[u8]| -> usize { s.iter().take_while(|c| **c == b'0').count() };
                let (xs, ys) = (&x.0[trim(x.0)..], &y.0[trim(y.0)..]);
                let order = xs
                    .len()
                    .cmp(&ys.len())
                    .then_with(|| xs.cmp(ys))
                    .then_with(|| n.cmp(&m));
                if order != Ordering::Equal {
                    return order;
                }
                (a, b) = (x.1, y.1);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                (a, b) = (&a[1..], &b[1..]);
            }
        }
    }
}

#[cfg(test)]
mod order_tests {
    use super::natural_cmp;
    use std::cmp::Ordering;

    #[test]
    fn numbers_in_references_compare_as_numbers() {
        let mut refs = vec![
            "MedicationDispense/x-medi10",
            "MedicationDispense/x-medi2",
            "MedicationDispense/x-medi02",
            "MedicationDispense/x",
            "MedicationDispense/w-medi9",
        ];
        refs.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            refs,
            [
                "MedicationDispense/w-medi9",
                "MedicationDispense/x",
                "MedicationDispense/x-medi2",
                "MedicationDispense/x-medi02",
                "MedicationDispense/x-medi10"
            ]
        );
        assert_eq!(natural_cmp("a", "a"), Ordering::Equal);
    }
}
