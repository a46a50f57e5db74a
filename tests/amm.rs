//! HEDIS AMM (CMS128FHIR CQL) boundaries: the intake period, the half-open 105-day
//! negative history with CMD's medicationRequestPeriod (expected supply x fills,
//! quantity / dose, boundsPeriod), the closed numerator windows and collapsing.

use time::macros::date;
use time::{Date, Duration};
use trd_sentinel::clinical::amm::{evaluate, AmmResult};
use trd_sentinel::clinical::record::{
    Amount, Code, DosageInstruction, DoseQuantity, MedicationDispensed, MedicationOrder,
    MedicationProduct, PatientRecord,
};
use trd_sentinel::clinical::Knowledge;

const RX: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
/// escitalopram 10 MG Oral Tablet: in the VSAC "Antidepressant Medication" value set.
const ESC10: &str = "349332";
const IPSD: Date = date!(2024 - 01 - 10);
const AS_OF: Date = date!(2025 - 06 - 30);

fn product(code: &str) -> MedicationProduct {
    MedicationProduct {
        codes: vec![Code {
            system: RX.into(),
            code: code.into(),
            display: None,
        }],
        ..Default::default()
    }
}

fn tablets(per_day: u32) -> DosageInstruction {
    DosageInstruction {
        dose: Some(DoseQuantity::Quantity(Amount {
            value: 1.0,
            unit: "{tbl}".into(),
        })),
        frequency: Some(per_day),
        period: Some(1.0),
        period_unit: Some("d".into()),
        ..Default::default()
    }
}

fn dispense(
    record: &mut PatientRecord,
    start: Date,
    days: Option<f64>,
) -> &mut MedicationDispensed {
    let n = record.dispenses.len() + 1;
    record.dispenses.push(MedicationDispensed {
        source: format!("MedicationDispense/{n}"),
        status: "completed".into(),
        handed_over: Some(start),
        days_supply: days,
        quantity: days.map(|d| Amount {
            value: d,
            unit: "{tbl}".into(),
        }),
        medication: product(ESC10),
        dosage: vec![tablets(1)],
        authorizing: Vec::new(),
    });
    record.dispenses.last_mut().expect("just pushed")
}

fn order(
    record: &mut PatientRecord,
    authored: Date,
    supply_days: Option<f64>,
) -> &mut MedicationOrder {
    let n = record.orders.len() + 1;
    record.orders.push(MedicationOrder {
        source: format!("MedicationRequest/{n}"),
        status: "active".into(),
        intent: "order".into(),
        authored_on: Some(authored),
        medication: product(ESC10),
        dosage: vec![tablets(1)],
        validity_start: None,
        validity_end: None,
        expected_supply_days: supply_days,
        repeats_allowed: None,
        quantity: None,
        reasons: vec![],
    });
    record.orders.last_mut().expect("just pushed")
}

fn amm(record: &PatientRecord) -> Option<AmmResult> {
    let knowledge = Knowledge::embedded().expect("knowledge");
    evaluate(record, &knowledge, 2024, AS_OF)
}

fn with_ipsd_dispense() -> PatientRecord {
    let mut record = PatientRecord::new("Patient/amm");
    dispense(&mut record, IPSD, Some(30.0));
    record
}

fn days_before(days: i64) -> Date {
    IPSD - Duration::days(days)
}

#[test]
fn the_history_window_is_ipsd_minus_105_to_the_day_before() {
    // A one-day order on IPSD - k: [IPSD-105, IPSD) holds k = 1..=105.
    for (k, excluded) in [
        (106, false),
        (105, true),
        (104, true),
        (1, true),
        (0, false),
    ] {
        let mut record = with_ipsd_dispense();
        order(&mut record, days_before(k), Some(1.0));
        assert_eq!(
            amm(&record).expect("ipsd").prior_use_excluded,
            excluded,
            "order on IPSD - {k}"
        );
    }
}

#[test]
fn a_request_period_ends_start_plus_total_minus_one() {
    // 30 days from IPSD - 135 ends on IPSD - 106: outside; from IPSD - 134 it ends on
    // IPSD - 105: inside.
    let mut outside = with_ipsd_dispense();
    order(&mut outside, days_before(135), Some(30.0));
    assert!(!amm(&outside).expect("ipsd").prior_use_excluded);
    let mut inside = with_ipsd_dispense();
    order(&mut inside, days_before(134), Some(30.0));
    assert!(amm(&inside).expect("ipsd").prior_use_excluded);
}

#[test]
fn refills_multiply_the_expected_supply() {
    // 30 x (1 + 2) = 90 days from IPSD - 200 ends on IPSD - 111; 3 repeats: IPSD - 81.
    let mut two = with_ipsd_dispense();
    order(&mut two, days_before(200), Some(30.0)).repeats_allowed = Some(2);
    assert!(!amm(&two).expect("ipsd").prior_use_excluded);
    let mut three = with_ipsd_dispense();
    order(&mut three, days_before(200), Some(30.0)).repeats_allowed = Some(3);
    assert!(amm(&three).expect("ipsd").prior_use_excluded);
}

#[test]
fn quantity_over_daily_dose_when_no_expected_supply() {
    // 60 tablets, 2 a day = 30 days from IPSD - 135: ends IPSD - 106, outside; 62
    // tablets = 31 days: ends IPSD - 105, inside.
    for (tablets_ordered, excluded) in [(60.0, false), (62.0, true), (61.0, false)] {
        let mut record = with_ipsd_dispense();
        let o = order(&mut record, days_before(135), None);
        o.dosage = vec![tablets(2)];
        o.quantity = Some(Amount {
            value: tablets_ordered,
            unit: "{tbl}".into(),
        });
        assert_eq!(
            amm(&record).expect("ipsd").prior_use_excluded,
            excluded,
            "{tablets_ordered} tablets (30.5 days truncate to 30)"
        );
    }
}

#[test]
fn bounds_period_start_comes_first_and_its_end_is_the_fallback() {
    // Authored long before, but the boundsPeriod starts inside the history window.
    let mut start_inside = with_ipsd_dispense();
    let o = order(&mut start_inside, days_before(400), Some(30.0));
    o.dosage[0].bounds_start = Some(days_before(20));
    assert!(amm(&start_inside).expect("ipsd").prior_use_excluded);
    // No supply figure: [bounds start, bounds end].
    let mut fallback = with_ipsd_dispense();
    let o = order(&mut fallback, days_before(400), None);
    o.dosage[0].bounds_start = Some(days_before(300));
    o.dosage[0].bounds_end = Some(days_before(105));
    assert!(amm(&fallback).expect("ipsd").prior_use_excluded);
    o_end(&mut fallback, days_before(106));
    assert!(!amm(&fallback).expect("ipsd").prior_use_excluded);
    // Neither a supply figure nor a bounds end: no period, no exclusion.
    let mut open = with_ipsd_dispense();
    order(&mut open, days_before(10), None).validity_end = Some(IPSD);
    assert!(!amm(&open).expect("ipsd").prior_use_excluded);
}

fn o_end(record: &mut PatientRecord, end: Date) {
    if let Some(d) = record.orders.last_mut().and_then(|o| o.dosage.first_mut()) {
        d.bounds_end = Some(end);
    }
}

#[test]
fn only_active_orders_with_intent_order_exclude() {
    for (status, intent, excluded) in [
        ("active", "order", true),
        ("completed", "order", false),
        ("stopped", "order", false),
        ("active", "plan", false),
        ("active", "original-order", false),
    ] {
        let mut record = with_ipsd_dispense();
        let o = order(&mut record, days_before(30), Some(30.0));
        o.status = status.into();
        o.intent = intent.into();
        assert_eq!(
            amm(&record).expect("ipsd").prior_use_excluded,
            excluded,
            "{status}/{intent}"
        );
    }
}

#[test]
fn intake_period_is_may_1_to_april_30_and_dispense_status_counts() {
    let ipsd_of = |start: Date, status: &str| {
        let mut record = PatientRecord::new("Patient/amm");
        dispense(&mut record, start, Some(30.0)).status = status.into();
        amm(&record).map(|a| a.ipsd)
    };
    assert_eq!(
        ipsd_of(date!(2023 - 05 - 01), "completed"),
        Some(date!(2023 - 05 - 01))
    );
    assert_eq!(
        ipsd_of(date!(2024 - 04 - 30), "completed"),
        Some(date!(2024 - 04 - 30))
    );
    assert_eq!(ipsd_of(date!(2023 - 04 - 30), "completed"), None);
    assert_eq!(ipsd_of(date!(2024 - 05 - 01), "completed"), None);
    assert_eq!(ipsd_of(IPSD, "on-hold"), Some(IPSD));
    assert_eq!(ipsd_of(IPSD, "in-progress"), Some(IPSD));
    assert_eq!(ipsd_of(IPSD, "cancelled"), None);
}

#[test]
fn numerator_windows_are_closed_and_collapse_overlaps() {
    // 84 days from the IPSD: acute met; 83 not.
    for (days, met) in [(84.0, true), (83.0, false)] {
        let mut record = PatientRecord::new("Patient/amm");
        dispense(&mut record, IPSD, Some(days));
        let result = amm(&record).expect("ipsd");
        assert_eq!(result.acute_phase_met, met, "{days}");
    }
    // A dispense starting on IPSD + 114 adds one day to the acute window.
    let mut record = PatientRecord::new("Patient/amm");
    dispense(&mut record, IPSD, Some(30.0));
    dispense(&mut record, IPSD + Duration::days(114), Some(30.0));
    let result = amm(&record).expect("ipsd");
    assert_eq!(result.acute_phase_days, 31);
    assert_eq!(result.continuation_phase_days, 60);
    // Overlapping dispenses count each day once (no roll-forward).
    let mut overlap = PatientRecord::new("Patient/amm");
    dispense(&mut overlap, IPSD, Some(30.0));
    dispense(&mut overlap, IPSD + Duration::days(20), Some(30.0));
    assert_eq!(amm(&overlap).expect("ipsd").acute_phase_days, 50);
    // A dispense before the intake period still counts where it reaches the window.
    let mut before = PatientRecord::new("Patient/amm");
    dispense(&mut before, date!(2023 - 05 - 01), Some(10.0));
    dispense(&mut before, date!(2023 - 04 - 25), Some(30.0));
    assert_eq!(amm(&before).expect("ipsd").acute_phase_days, 24);
    // The continuation window is [IPSD, IPSD + 231]: 232 days at most.
    let mut full = PatientRecord::new("Patient/amm");
    dispense(&mut full, IPSD, Some(365.0));
    let result = amm(&full).expect("ipsd");
    assert_eq!(
        (result.acute_phase_days, result.continuation_phase_days),
        (115, 232)
    );
}

#[test]
fn dispense_days_from_quantity_and_its_own_dosage() {
    // No daysSupply: 45 tablets at 2 a day = 22.5 days, truncated to 22.
    let mut record = PatientRecord::new("Patient/amm");
    let d = dispense(&mut record, IPSD, None);
    d.quantity = Some(Amount {
        value: 45.0,
        unit: "{tbl}".into(),
    });
    d.dosage = vec![tablets(2)];
    assert_eq!(amm(&record).expect("ipsd").acute_phase_days, 22);
    // Without its own dosage (CMD does not borrow the order's) there is no period.
    record.dispenses[0].dosage.clear();
    assert_eq!(amm(&record), None);
}

#[test]
fn medications_outside_the_value_set_do_not_count() {
    // RxNorm SCDC 328670 "sertraline 100 MG" is not in the CMS128 value set.
    let mut record = PatientRecord::new("Patient/amm");
    dispense(&mut record, IPSD, Some(90.0)).medication = product("328670");
    assert_eq!(amm(&record), None);
}
