//! Engine rules at their boundaries, on records built in code (no FHIR parsing).

use time::{macros::date, Date, Duration};
use trd_sentinel::clinical::adequacy::{Adequacy, ReasonCode};
use trd_sentinel::clinical::policy::PolicyBook;
use trd_sentinel::clinical::record::{
    Amount, Code, DosageInstruction, DoseQuantity, MedicationDispensed, MedicationProduct,
    MedicationUse, PatientRecord,
};
use trd_sentinel::clinical::trial::TrialRelation;
use trd_sentinel::clinical::{assess, Assessment, Knowledge, Policy};

const RX: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
const START: Date = date!(2024 - 01 - 08);
const AS_OF: Date = date!(2024 - 12 - 31);

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

fn one_tablet_daily() -> Vec<DosageInstruction> {
    vec![DosageInstruction {
        dose: Some(DoseQuantity::Quantity(Amount {
            value: 1.0,
            unit: "{tbl}".into(),
        })),
        frequency: Some(1),
        period: Some(1.0),
        period_unit: Some("d".into()),
        ..Default::default()
    }]
}

fn dispense(record: &mut PatientRecord, code: &str, day: i64, days: f64) {
    let n = record.dispenses.len() + 1;
    record.dispenses.push(MedicationDispensed {
        source: format!("MedicationDispense/{code}-{n}"),
        status: "completed".into(),
        handed_over: Some(START + Duration::days(day)),
        days_supply: Some(days),
        quantity: Some(Amount {
            value: days,
            unit: "{tbl}".into(),
        }),
        medication: product(code),
        dosage: one_tablet_daily(),
        authorizing: vec![],
    });
}

fn run(record: &PatientRecord, policy: &str) -> Assessment {
    let knowledge = Knowledge::embedded().expect("knowledge");
    let policy: Policy = PolicyBook::embedded()
        .expect("policies")
        .get(policy)
        .expect("policy")
        .clone();
    assess(record, &policy, &knowledge, AS_OF)
}

const SERTRALINE_100: &str = "312938";
const ESCITALOPRAM_10: &str = "349332";

#[test]
fn a_gap_of_30_days_keeps_one_era_and_31_splits_it() {
    for (gap, trials) in [(30, 1), (31, 2)] {
        let mut record = PatientRecord::new("Patient/p");
        dispense(&mut record, SERTRALINE_100, 0, 30.0);
        dispense(&mut record, SERTRALINE_100, 30 + gap, 30.0);
        assert_eq!(run(&record, "default").trials.len(), trials, "gap {gap}");
    }
    // The claims policy allows 42 days.
    let mut record = PatientRecord::new("Patient/p");
    dispense(&mut record, SERTRALINE_100, 0, 30.0);
    dispense(&mut record, SERTRALINE_100, 30 + 40, 30.0);
    assert_eq!(run(&record, "claims-42d").trials.len(), 1);
}

#[test]
fn early_refills_shift_forward_instead_of_double_counting() {
    let mut record = PatientRecord::new("Patient/p");
    dispense(&mut record, SERTRALINE_100, 0, 30.0);
    dispense(&mut record, SERTRALINE_100, 20, 30.0); // 10 days early
    let trial = &run(&record, "default").trials[0];
    assert_eq!(trial.end, START + Duration::days(59));
    assert_eq!(trial.verdict.pdc, Some(1.0));
}

#[test]
fn weeks_required_follow_the_policy() {
    // 35 days = 5 weeks at 100 mg: adequate at 4 weeks, too short at 6 and 8.
    let mut record = PatientRecord::new("Patient/p");
    dispense(&mut record, SERTRALINE_100, 0, 35.0);
    for (policy, adequacy) in [
        ("athf-4w", Adequacy::Adequate),
        ("default", Adequacy::Inadequate),
        ("atrq-8w", Adequacy::Inadequate),
    ] {
        let trial = &run(&record, policy).trials[0];
        assert_eq!(trial.adequacy, adequacy, "{policy}");
        assert_eq!(trial.verdict.policy, policy);
    }
}

#[test]
fn exactly_six_weeks_is_adequate_and_one_day_less_is_not() {
    for (days, adequacy) in [(42.0, Adequacy::Adequate), (41.0, Adequacy::Inadequate)] {
        let mut record = PatientRecord::new("Patient/p");
        dispense(&mut record, SERTRALINE_100, 0, days);
        assert_eq!(
            run(&record, "default").trials[0].adequacy,
            adequacy,
            "{days} days"
        );
    }
}

#[test]
fn stopping_before_week_four_is_not_a_failure() {
    let mut record = PatientRecord::new("Patient/p");
    dispense(&mut record, SERTRALINE_100, 0, 27.0);
    let trial = &run(&record, "default").trials[0];
    assert_eq!(trial.reasons, vec![ReasonCode::StoppedBeforeWeek4]);
}

#[test]
fn the_first_date_at_adequate_dose_starts_the_clock() {
    // 25 mg for 4 weeks, then 100 mg for 5 weeks: 9 weeks in all, 5 at adequate dose.
    let mut record = PatientRecord::new("Patient/p");
    dispense(&mut record, "312940", 0, 28.0); // sertraline 25 mg
    dispense(&mut record, SERTRALINE_100, 28, 35.0);
    let assessment = run(&record, "default");
    assert_eq!(assessment.trials.len(), 1, "one trial with two dose steps");
    let trial = &assessment.trials[0];
    assert_eq!(trial.dose_steps.len(), 2);
    assert_eq!(
        trial.verdict.adequate_dose_from,
        Some(START + Duration::days(28))
    );
    assert_eq!(trial.verdict.weeks_at_adequate_dose, 5.0);
    assert_eq!(trial.reasons, vec![ReasonCode::TooShort]);
}

#[test]
fn overlap_beyond_30_days_is_a_combination_and_within_it_a_switch() {
    for (overlap, combined) in [(30, false), (31, true)] {
        let mut record = PatientRecord::new("Patient/p");
        dispense(&mut record, SERTRALINE_100, 0, 90.0);
        dispense(&mut record, ESCITALOPRAM_10, 90 - overlap, 90.0);
        let trials = run(&record, "default").trials;
        let expected = if combined {
            TrialRelation::CombinedWith { trial: "T1".into() }
        } else {
            TrialRelation::SwitchFrom { trial: "T1".into() }
        };
        assert_eq!(trials[1].relation, expected, "overlap {overlap}");
    }
}

#[test]
fn a_statement_of_not_taken_makes_the_trial_inadequate_with_evidence() {
    let mut record = PatientRecord::new("Patient/p");
    dispense(&mut record, SERTRALINE_100, 0, 90.0);
    record.statements.push(MedicationUse {
        source: "MedicationStatement/n".into(),
        status: "not-taken".into(),
        start: Some(START + Duration::days(10)),
        end: None,
        medication: product(SERTRALINE_100),
        dosage: vec![],
        reasons: vec![],
    });
    let trial = &run(&record, "default").trials[0];
    assert_eq!(trial.adequacy, Adequacy::Inadequate);
    let reason = trial
        .verdict
        .reasons
        .iter()
        .find(|r| r.code == ReasonCode::ReportedNotTaken)
        .expect("reason");
    assert_eq!(reason.evidence, vec!["MedicationStatement/n".to_string()]);
}

#[test]
fn facts_after_the_as_of_date_are_not_used() {
    let mut record = PatientRecord::new("Patient/p");
    dispense(&mut record, SERTRALINE_100, 400, 90.0); // starts 2025-02-11, after AS_OF
    assert!(run(&record, "default").trials.is_empty());
}

#[test]
fn the_same_inputs_give_the_same_assessment() {
    let mut record = PatientRecord::new("Patient/p");
    dispense(&mut record, SERTRALINE_100, 0, 90.0);
    dispense(&mut record, ESCITALOPRAM_10, 100, 90.0);
    assert_eq!(run(&record, "default"), run(&record, "default"));
}

// ---------------------------------------------------------------- safety boundaries

const PHENELZINE_15: &str = "312347";
const FLUOXETINE_20: &str = "310385";

fn safety_codes(record: &PatientRecord) -> Vec<String> {
    run(record, "default")
        .findings
        .iter()
        .filter(|f| f.severity == trd_sentinel::clinical::finding::Severity::Safety)
        .map(|f| f.code.clone())
        .collect()
}

#[test]
fn maoi_washout_is_14_days_and_35_after_fluoxetine() {
    // The earlier drug covers days 0-29; the gap is counted from its last day (29).
    for (first, second, start, flagged) in [
        (SERTRALINE_100, PHENELZINE_15, 43, false),
        (SERTRALINE_100, PHENELZINE_15, 42, true),
        (FLUOXETINE_20, PHENELZINE_15, 64, false),
        (FLUOXETINE_20, PHENELZINE_15, 63, true),
        (PHENELZINE_15, SERTRALINE_100, 43, false),
        (PHENELZINE_15, SERTRALINE_100, 42, true),
        (SERTRALINE_100, PHENELZINE_15, 20, true), // overlap
    ] {
        let mut record = PatientRecord::new("Patient/p");
        dispense(&mut record, first, 0, 30.0);
        dispense(&mut record, second, start, 30.0);
        let codes = safety_codes(&record);
        assert_eq!(
            codes.contains(&"maoi-serotonergic-washout".to_string()),
            flagged,
            "{first} then {second} on day {start}: {codes:?}"
        );
    }
}

#[test]
fn the_boxed_warning_applies_until_the_25th_birthday() {
    // Sertraline started on day 300 (2024-11-03), within 84 days of the as-of date.
    for (born, flagged) in [
        (date!(1999 - 11 - 03), false),
        (date!(1999 - 11 - 04), true),
    ] {
        let mut record = PatientRecord::new("Patient/p");
        record.birth_date = Some(born);
        dispense(&mut record, SERTRALINE_100, 300, 30.0);
        assert_eq!(
            safety_codes(&record).contains(&"young-adult-antidepressant-monitoring".to_string()),
            flagged,
            "born {born}"
        );
    }
    // Started 84 days before the as-of date (day 274): inside the window; 85: outside.
    for (day, flagged) in [(274, true), (273, false)] {
        let mut record = PatientRecord::new("Patient/p");
        record.birth_date = Some(date!(2004 - 01 - 01));
        dispense(&mut record, SERTRALINE_100, day, 120.0);
        assert_eq!(!safety_codes(&record).is_empty(), flagged, "day {day}");
    }
    // No birth date: the age rules say nothing.
    let mut record = PatientRecord::new("Patient/p");
    dispense(&mut record, SERTRALINE_100, 300, 30.0);
    assert!(safety_codes(&record).is_empty());
}

fn citalopram_mg(record: &mut PatientRecord, day: i64, mg: f64) {
    let n = record.dispenses.len() + 1;
    record.dispenses.push(MedicationDispensed {
        source: format!("MedicationDispense/citalopram-{n}"),
        status: "completed".into(),
        handed_over: Some(START + Duration::days(day)),
        days_supply: Some(30.0),
        quantity: None,
        medication: product("2556"),
        dosage: vec![DosageInstruction {
            dose: Some(DoseQuantity::Quantity(Amount {
                value: mg,
                unit: "mg".into(),
            })),
            frequency: Some(1),
            period: Some(1.0),
            period_unit: Some("d".into()),
            ..Default::default()
        }],
        authorizing: vec![],
    });
}

#[test]
fn citalopram_limits_are_40_mg_and_20_mg_over_60() {
    // Held from day 300 (2024-11-03) to the as-of date.
    for (mg, born, flagged) in [
        (40.0, date!(1980 - 01 - 01), false),
        (45.0, date!(1980 - 01 - 01), true),
        (20.0, date!(1950 - 01 - 01), false),
        (30.0, date!(1964 - 01 - 01), false), // 60 on the as-of date: not over 60
        (30.0, date!(1963 - 12 - 01), true),  // 61
    ] {
        let mut record = PatientRecord::new("Patient/p");
        record.birth_date = Some(born);
        citalopram_mg(&mut record, 300, mg);
        citalopram_mg(&mut record, 330, mg);
        assert_eq!(
            safety_codes(&record).contains(&"dose-above-safety-limit".to_string()),
            flagged,
            "{mg} mg, born {born}"
        );
    }
}
