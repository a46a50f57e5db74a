//! Records that made the engine panic, found by tests/proptest_engine.rs and the fuzz
//! target (fuzz/, `scripts/fuzz`). Each test reads one minimal record (inline, or a
//! crashing input saved under tests/data/fuzz-crashes/), assesses it and asserts that
//! an assessment exists: one absurd value in a real export must cost at most that
//! value, never the patient's assessment or the batch.
//!
//! Five tests here did not panic when written (absurd doses, dates on the calendar's
//! first day, a trial with scores near its last, as-of at either end): they are next
//! to the crashing ones so the engine's rewrite keeps them passing.

use std::path::Path;

use serde_json::{json, Value};
use time::macros::date;
use time::Date;

use trd_sentinel::clinical::{self, policy::PolicyBook, Assessment, Knowledge};
use trd_sentinel::fhir::read::{Relevance, ResourcePool};
use trd_sentinel::report;

/// Reads a bundle (or single resource), assesses every patient in it as `evaluate`
/// does and renders each assessment; returns the assessments.
fn assess_text(text: &str, as_of: Date) -> Vec<Assessment> {
    let knowledge = Knowledge::embedded().expect("knowledge");
    let book = PolicyBook::embedded().expect("policies");
    let policy = book.get("default").expect("default policy");
    let mut pool = ResourcePool::new(Relevance::from_knowledge(&knowledge));
    pool.add_json(text, "bad-input").expect("readable FHIR");
    let records = pool.records();
    assert!(!records.is_empty(), "the input names a patient");
    records
        .iter()
        .map(|record| {
            let assessment = clinical::assess(record, policy, &knowledge, as_of);
            assert_eq!(assessment.patient, record.patient);
            let _ = report::Table::default().row(&assessment);
            report::jsonl_row(&assessment).expect("assessment serialises");
            assessment
        })
        .collect()
}

fn assess_value(bundle: Value, as_of: Date) -> Vec<Assessment> {
    assess_text(&bundle.to_string(), as_of)
}

/// A saved fuzzer input under tests/data/fuzz-crashes/.
fn assess_file(name: &str, as_of: Date) -> Vec<Assessment> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/fuzz-crashes")
        .join(name);
    let bytes = std::fs::read(&path).expect("saved crash input");
    let text = String::from_utf8(bytes).expect("utf8 input");
    assess_text(&text, as_of)
}

const AS_OF: Date = date!(2024 - 10 - 20);

fn sertraline() -> Value {
    json!({"coding": [{
        "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
        "code": "312938",
        "display": "sertraline 100 MG Oral Tablet"
    }]})
}

fn bundle(resources: Vec<Value>) -> Value {
    let mut entries = vec![json!({"resource": {"resourceType": "Patient", "id": "p"}})];
    entries.extend(resources.into_iter().map(|r| json!({ "resource": r })));
    json!({"resourceType": "Bundle", "type": "collection", "entry": entries})
}

fn dispense(id: &str, handed_over: &str, days_supply: Value) -> Value {
    json!({
        "resourceType": "MedicationDispense",
        "id": id,
        "status": "completed",
        "subject": {"reference": "Patient/p"},
        "medicationCodeableConcept": sertraline(),
        "whenHandedOver": handed_over,
        "quantity": {"value": 30, "unit": "tablet", "code": "{tbl}"},
        "daysSupply": {"value": days_supply, "unit": "day", "system": "http://unitsofmeasure.org", "code": "d"}
    })
}

/// daysSupply 10,000,000 days (27,000 years): the era's end passes 9999-12-31.
#[test]
fn dispense_with_ten_million_days_supply() {
    let assessed = assess_value(
        bundle(vec![dispense("d1", "2024-01-08", json!(10_000_000))]),
        AS_OF,
    );
    assert_eq!(assessed.len(), 1);
}

/// A second dispense, after a gap within the policy's, for 1,000,000,030 days: the
/// joined era's new span ends past 9999-12-31. Minimal form of the fuzzer's crash below.
#[test]
fn later_dispense_with_a_billion_days_supply() {
    let assessed = assess_value(
        bundle(vec![
            dispense("d1", "2024-01-08", json!(30)),
            dispense("d2", "2024-02-10", json!(1_000_000_030)),
        ]),
        AS_OF,
    );
    assert_eq!(assessed.len(), 1);
}

/// An early refill (dispensed before the supply ran out) for 1,000,000,030 days: shifted
/// forward, it ends past 9999-12-31.
#[test]
fn early_refill_with_a_billion_days_supply() {
    let assessed = assess_value(
        bundle(vec![
            dispense("d1", "2024-01-08", json!(30)),
            dispense("d2", "2024-02-01", json!(1_000_000_030)),
        ]),
        AS_OF,
    );
    assert_eq!(assessed.len(), 1);
}

/// Two overlapping orders (joined as a union), the second for 1,000,000,030 days.
#[test]
fn overlapping_order_with_a_billion_days_supply() {
    let assessed = assess_value(
        bundle(vec![
            order("o1", "2024-01-08", json!(30), json!(0)),
            order("o2", "2024-01-20", json!(1_000_000_030), json!(0)),
        ]),
        AS_OF,
    );
    assert_eq!(assessed.len(), 1);
}

/// The fuzzer's crash (fixture combination-antidepressants mutated: one dispense's
/// daysSupply 1000000030, another's resourceType and dosageInstruction garbled).
#[test]
fn fuzz_crash_later_dispense_billion_days() {
    let assessed = assess_file("crash-9a9662ce-later-dispense-billion-days.json", AS_OF);
    assert_eq!(assessed.len(), 1);
}

/// daysSupply 1e300: rounds to the largest u32, 11.7 million years.
#[test]
fn dispense_with_days_supply_1e300() {
    let assessed = assess_value(
        bundle(vec![dispense("d1", "2024-01-08", json!(1e300))]),
        AS_OF,
    );
    assert_eq!(assessed.len(), 1);
}

/// A dispense on 9999-12-20 for 30 days, assessed as of 9999-12-31: the supply's last
/// day is past the calendar's end.
#[test]
fn dispense_at_the_end_of_the_calendar() {
    let assessed = assess_value(
        bundle(vec![dispense("d1", "9999-12-20", json!(30))]),
        date!(9999 - 12 - 31),
    );
    assert_eq!(assessed.len(), 1);
}

/// Two dispenses that end exactly on 9999-12-31, the second an early refill: shifting
/// it forward starts it on a day after the calendar's last.
#[test]
fn early_refill_at_the_end_of_the_calendar() {
    let assessed = assess_value(
        bundle(vec![
            dispense("d1", "9999-12-01", json!(31)),
            dispense("d2", "9999-12-15", json!(17)),
        ]),
        date!(9999 - 12 - 31),
    );
    assert_eq!(assessed.len(), 1);
}

fn order(id: &str, authored: &str, supply_days: Value, repeats: Value) -> Value {
    json!({
        "resourceType": "MedicationRequest",
        "id": id,
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p"},
        "authoredOn": authored,
        "medicationCodeableConcept": sertraline(),
        "dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "{tbl}", "code": "{tbl}"}}]}],
        "dispenseRequest": {
            "numberOfRepeatsAllowed": repeats,
            "expectedSupplyDuration": {"value": supply_days, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d"}
        }
    })
}

/// An order (no dispenses) for 30 days with 4,294,967,295 repeats allowed.
#[test]
fn order_with_huge_repeats() {
    let assessed = assess_value(
        bundle(vec![order(
            "o1",
            "2024-01-08",
            json!(30),
            json!(4_294_967_295u64),
        )]),
        AS_OF,
    );
    assert_eq!(assessed.len(), 1);
}

/// An order whose expectedSupplyDuration is 10,000,000 days.
#[test]
fn order_with_ten_million_days_supply() {
    let assessed = assess_value(
        bundle(vec![order("o1", "2024-01-08", json!(10_000_000), json!(0))]),
        AS_OF,
    );
    assert_eq!(assessed.len(), 1);
}

fn statement(id: &str, start: &str, end: &str) -> Value {
    json!({
        "resourceType": "MedicationStatement",
        "id": id,
        "status": "completed",
        "subject": {"reference": "Patient/p"},
        "medicationCodeableConcept": sertraline(),
        "effectivePeriod": {"start": start, "end": end},
        "dosage": [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
            "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "{tbl}", "code": "{tbl}"}}]}]
    })
}

/// A statement taken from 0001-01-01 to 9999-12-31: the trial ends on the calendar's
/// last day.
#[test]
fn statement_spanning_the_whole_calendar() {
    let assessed = assess_value(
        bundle(vec![statement("s1", "0001-01-01", "9999-12-31")]),
        AS_OF,
    );
    assert_eq!(assessed.len(), 1);
}

/// A statement ending on 9999-12-31, the "no end" placeholder some EHRs export: the
/// ongoing check adds the era gap past the calendar's end. Found by the proptest census.
#[test]
fn statement_with_end_placeholder_9999_12_31() {
    let assessed = assess_value(
        bundle(vec![statement(
            "s1",
            "2016-04-23",
            "9999-12-31T23:59:59-14:00",
        )]),
        date!(2018 - 12 - 25),
    );
    assert_eq!(assessed.len(), 1);
}

/// A dispense on the calendar's first day (an export's placeholder date).
#[test]
fn dispense_on_the_first_day_of_the_calendar() {
    let assessed = assess_value(
        bundle(vec![
            dispense("d1", "0001-01-01", json!(30)),
            dispense("d2", "0001-01-31", json!(30)),
        ]),
        AS_OF,
    );
    assert_eq!(assessed.len(), 1);
}

fn phq9(id: &str, date: &str, value: Value) -> Value {
    json!({
        "resourceType": "Observation",
        "id": id,
        "status": "final",
        "subject": {"reference": "Patient/p"},
        "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
        "effectiveDateTime": date,
        "valueInteger": value
    })
}

fn depression(id: &str, onset: &str) -> Value {
    json!({
        "resourceType": "Condition",
        "id": id,
        "subject": {"reference": "Patient/p"},
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F32.1"}]},
        "onsetDateTime": onset,
        "clinicalStatus": {"coding": [{"code": "active"}]}
    })
}

/// A depression diagnosis and a PHQ-9 on the calendar's first day, a trial later.
#[test]
fn diagnosis_and_score_on_the_first_day_of_the_calendar() {
    let assessed = assess_value(
        bundle(vec![
            depression("c1", "0001-01-01"),
            phq9("q1", "0001-01-01", json!(20)),
            dispense("d1", "0001-01-02", json!(90)),
            phq9("q2", "0001-03-01", json!(19)),
        ]),
        AS_OF,
    );
    assert_eq!(assessed.len(), 1);
}

/// Assessed as of the calendar's first or last day.
#[test]
fn as_of_the_ends_of_the_calendar() {
    for as_of in [date!(0001 - 01 - 01), date!(9999 - 12 - 31)] {
        let assessed = assess_value(
            bundle(vec![
                depression("c1", "2024-01-01"),
                phq9("q1", "2024-01-05", json!(20)),
                dispense("d1", "2024-01-08", json!(90)),
                phq9("q2", "2024-03-20", json!(19)),
            ]),
            as_of,
        );
        assert_eq!(assessed.len(), 1);
    }
}

/// A trial at the end of the calendar with scores: the response windows reach past it.
#[test]
fn trial_with_scores_at_the_end_of_the_calendar() {
    let assessed = assess_value(
        bundle(vec![
            depression("c1", "9999-01-01"),
            phq9("q1", "9999-09-01", json!(20)),
            dispense("d1", "9999-09-02", json!(90)),
            phq9("q2", "9999-11-20", json!(19)),
        ]),
        date!(9999 - 12 - 31),
    );
    assert_eq!(assessed.len(), 1);
}

/// Doses of 1e300 tablets a day and 1e-300 mg strength.
#[test]
fn absurd_doses() {
    let mut d = dispense("d1", "2024-01-08", json!(30));
    d["dosageInstruction"] = json!([{"timing": {"repeat": {"frequency": 1e300, "period": 1e-300, "periodUnit": "d"}},
        "doseAndRate": [{"doseQuantity": {"value": 1e300, "unit": "mg", "code": "mg"}}]}]);
    d["quantity"] = json!({"value": 1e300, "unit": "tablet", "code": "{tbl}"});
    let assessed = assess_value(bundle(vec![d]), AS_OF);
    assert_eq!(assessed.len(), 1);
}

fn record_with_patient(patient: Value) -> trd_sentinel::clinical::PatientRecord {
    let mut pool = ResourcePool::default();
    let bundle =
        json!({"resourceType": "Bundle", "type": "collection", "entry": [{"resource": patient}]});
    pool.add_json(&bundle.to_string(), "test").expect("bundle");
    pool.record_for("Patient/p1")
}

#[test]
fn a_birth_date_is_read_and_never_serialised() {
    let record = record_with_patient(
        json!({"resourceType": "Patient", "id": "p1", "birthDate": "2002-05-01"}),
    );
    assert_eq!(record.birth_date, Some(date!(2002 - 05 - 01)));
    assert_eq!(record.age_on(date!(2024 - 04 - 30)), Some(21));
    assert_eq!(record.age_on(date!(2024 - 05 - 01)), Some(22));
    let text = serde_json::to_string(&record).expect("serialise");
    assert!(!text.contains("2002"), "{text}");
}

#[test]
fn a_partial_or_bad_birth_date_is_read_or_left_out() {
    let partial =
        record_with_patient(json!({"resourceType": "Patient", "id": "p1", "birthDate": "1990"}));
    assert_eq!(partial.birth_date, Some(date!(1990 - 01 - 01)));
    for bad in [json!("soon"), json!(19900101), json!("1990-02-30")] {
        let record =
            record_with_patient(json!({"resourceType": "Patient", "id": "p1", "birthDate": bad}));
        assert_eq!(record.birth_date, None, "{bad}");
    }
}
