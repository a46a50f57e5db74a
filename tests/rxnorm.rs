//! RxNorm coverage on real-shaped records: every antidepressant order in the public
//! Synthea R4 sample gets a daily dose; codes outside the clinical-drug map are read
//! from their display (and said so); a unit-less dose is a count; an implausible count
//! is a finding, not a dose.

use std::fs;
use std::path::{Path, PathBuf};

use time::macros::date;
use trd_sentinel::clinical::dose::daily_dose;
use trd_sentinel::clinical::finding::codes;
use trd_sentinel::clinical::knowledge::{DrugKind, Strength, StrengthUnit};
use trd_sentinel::clinical::policy::PolicyBook;
use trd_sentinel::clinical::product::{identify, ProductIdentity};
use trd_sentinel::clinical::record::{Amount, DosageInstruction, DoseQuantity};
use trd_sentinel::clinical::supply::{collect_supplies, SupplyOrigin};
use trd_sentinel::clinical::{assess, Assessment, Knowledge, PatientRecord};
use trd_sentinel::fhir::read::{Relevance, ResourcePool};

fn synthea_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/synthea-r4-sample")
}

fn records_of(path: &Path, knowledge: &Knowledge) -> Vec<PatientRecord> {
    let mut pool = ResourcePool::new(Relevance::from_knowledge(knowledge));
    pool.add_path(path).expect("bundle reads");
    pool.records()
}

fn is_antidepressant_order(record: &PatientRecord, source: &str, knowledge: &Knowledge) -> bool {
    record.orders.iter().any(|o| {
        o.source == source
            && matches!(identify(&o.medication, knowledge), ProductIdentity::Known(p)
                if p.components.iter().any(|c| c.drug.kind == DrugKind::Antidepressant))
    })
}

#[test]
fn every_antidepressant_order_in_the_synthea_sample_has_a_daily_dose() {
    let dir = synthea_dir();
    assert!(
        dir.is_dir(),
        "{} is missing: the Synthea sample ships in ../shared/data",
        dir.display()
    );
    let knowledge = Knowledge::embedded().expect("knowledge");
    let policy = PolicyBook::embedded()
        .expect("policies")
        .get("default")
        .expect("default")
        .clone();
    let as_of = date!(2019 - 12 - 31);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .expect("sample dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 50, "the sample has 50 bundles");

    let (mut orders, mut dosed, mut trials_dosed, mut non_trials_dosed) = (0, 0, 0, 0);
    for file in &files {
        for record in records_of(file, &knowledge) {
            let ledger = collect_supplies(&record, &knowledge, &policy, as_of);
            let antidepressant_orders: Vec<_> = record
                .orders
                .iter()
                .filter(|o| is_antidepressant_order(&record, &o.source, &knowledge))
                .collect();
            orders += antidepressant_orders.len();
            for order in &antidepressant_orders {
                let supply = ledger
                    .supplies
                    .iter()
                    .find(|s| s.source == order.source && s.origin == SupplyOrigin::Order)
                    .unwrap_or_else(|| {
                        panic!("{}: {} has no supply", file.display(), order.source)
                    });
                assert_eq!(
                    supply.daily_dose.mg,
                    Some(100.0),
                    "{}: {}",
                    order.source,
                    supply.daily_dose.basis
                );
                assert!(
                    supply
                        .daily_dose
                        .basis
                        .starts_with("1 unit (no unit given, read as a count) x 100 mg"),
                    "{}",
                    supply.daily_dose.basis
                );
                dosed += 1;
            }
            let assessment = assess(&record, &policy, &knowledge, as_of);
            for trial in &assessment.trials {
                assert!(
                    trial.daily_dose_mg.is_some(),
                    "{}: {trial:?}",
                    record.patient
                );
                trials_dosed += 1;
            }
            for non_trial in &assessment.non_trials {
                assert!(non_trial.daily_dose_mg.is_some(), "{non_trial:?}");
                non_trials_dosed += 1;
            }
        }
    }
    // Three bundles hold sertraline orders (RxNorm SCDC 328670 "Sertraline 100MG",
    // doseQuantity 1 without a unit); before the SCDC work none of them had a dose.
    // One is ordered for PTSD (reasonReference): a non-trial, with its dose.
    assert_eq!(
        (orders, dosed, trials_dosed, non_trials_dosed),
        (3, 3, 2, 1)
    );
}

fn bundle(medication: &str, dose: &str) -> String {
    format!(
        r#"{{"resourceType":"Bundle","type":"collection","entry":[
        {{"resource":{{"resourceType":"Patient","id":"p1"}}}},
        {{"resource":{{"resourceType":"MedicationRequest","id":"rx1","status":"completed","intent":"order",
          "subject":{{"reference":"Patient/p1"}},"authoredOn":"2024-01-02",
          "medicationCodeableConcept":{medication},
          "dosageInstruction":[{{"timing":{{"repeat":{{"frequency":1,"period":1,"periodUnit":"d"}}}},
            "doseAndRate":[{{"doseQuantity":{dose}}}]}}],
          "dispenseRequest":{{"expectedSupplyDuration":{{"value":90,"unit":"days","code":"d"}}}}}}}}]}}"#
    )
}

fn assess_bundle(text: &str) -> Assessment {
    let knowledge = Knowledge::embedded().expect("knowledge");
    let policy = PolicyBook::embedded()
        .expect("policies")
        .get("default")
        .expect("default")
        .clone();
    let mut pool = ResourcePool::new(Relevance::from_knowledge(&knowledge));
    pool.add_json(text, "test").expect("reads");
    let records = pool.records();
    assert_eq!(records.len(), 1);
    assess(&records[0], &policy, &knowledge, date!(2024 - 10 - 01))
}

#[test]
fn a_code_outside_the_map_is_read_from_its_display_and_said_so() {
    let assessment = assess_bundle(&bundle(
        r#"{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"999999","display":"Sertraline 150MG"}]}"#,
        r#"{"value":1,"unit":"tablet"}"#,
    ));
    let trial = assessment.trials.first().expect("a sertraline trial");
    assert_eq!(trial.ingredient, "sertraline");
    assert_eq!(trial.daily_dose_mg, Some(150.0));
    let finding = assessment
        .findings
        .iter()
        .find(|f| f.code == codes::STRENGTH_FROM_DISPLAY)
        .expect("strength-from-display finding");
    assert_eq!(finding.evidence, vec!["MedicationRequest/rx1".to_string()]);
    assert!(
        finding.text.contains("'Sertraline 150MG'")
            && finding.text.contains("sertraline 150 mg")
            && finding.text.contains("RxNorm 999999"),
        "{}",
        finding.text
    );
}

#[test]
fn a_known_component_code_needs_no_display_finding() {
    let assessment = assess_bundle(&bundle(
        r#"{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"328670"}]}"#,
        r#"{"value":1}"#,
    ));
    assert_eq!(assessment.trials[0].daily_dose_mg, Some(100.0));
    assert!(!assessment
        .findings
        .iter()
        .any(|f| f.code == codes::STRENGTH_FROM_DISPLAY));
}

#[test]
fn a_unitless_count_is_units_of_the_strength() {
    let assessment = assess_bundle(&bundle(
        r#"{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"328670","display":"Sertraline 100MG"}]}"#,
        r#"{"value":2}"#,
    ));
    let trial = &assessment.trials[0];
    assert_eq!(trial.daily_dose_mg, Some(200.0));
    let json = serde_json::to_value(trial).expect("json");
    assert!(
        json.to_string()
            .contains("2 units (no unit given, read as a count) x 100 mg"),
        "{json}"
    );
}

#[test]
fn an_implausible_count_is_a_finding_not_a_dose() {
    // 10 "units" of sertraline 100 mg = 1000 mg/day: above 2 x the 200 mg maximum.
    let assessment = assess_bundle(&bundle(
        r#"{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"328670","display":"Sertraline 100MG"}]}"#,
        r#"{"value":10}"#,
    ));
    let trial = &assessment.trials[0];
    assert_eq!(trial.daily_dose_mg, None, "{trial:?}");
    let finding = assessment
        .findings
        .iter()
        .find(|f| f.code == codes::DOSE_IMPLAUSIBLE)
        .expect("dose-implausible finding");
    assert!(
        finding.text.contains("1000 mg/day of sertraline")
            && finding.text.contains("2 x the labelled maximum 200 mg/day"),
        "{}",
        finding.text
    );
    let json = serde_json::to_value(trial).expect("json").to_string();
    assert!(json.contains("dose-unknown"), "{json}");
    assert!(json.contains("dose implausible"), "{json}");

    // Exactly at the ceiling (4 x 100 = 400 mg/day) is still a dose.
    let at_ceiling = assess_bundle(&bundle(
        r#"{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"328670"}]}"#,
        r#"{"value":4}"#,
    ));
    assert_eq!(at_ceiling.trials[0].daily_dose_mg, Some(400.0));
    assert!(!at_ceiling
        .findings
        .iter()
        .any(|f| f.code == codes::DOSE_IMPLAUSIBLE));
}

#[test]
fn count_units_and_their_basis_text() {
    let strength = Some(Strength {
        value: 100.0,
        unit: StrengthUnit::Mg,
    });
    let once_daily = |value: f64, unit: &str| {
        [DosageInstruction {
            dose: Some(DoseQuantity::Quantity(Amount {
                value,
                unit: unit.into(),
            })),
            frequency: Some(1),
            period: Some(1.0),
            period_unit: Some("d".into()),
            ..Default::default()
        }]
    };
    let none = daily_dose(&once_daily(1.0, ""), strength);
    assert_eq!(none.mg, Some(100.0));
    assert_eq!(
        none.basis,
        "1 unit (no unit given, read as a count) x 100 mg x 1 per 1 d"
    );
    let one = daily_dose(&once_daily(2.0, "1"), strength);
    assert_eq!(one.mg, Some(200.0));
    assert_eq!(
        one.basis,
        "2 units (unit '1', read as a count) x 100 mg x 1 per 1 d"
    );
    for unit in ["{tbl}", "TAB", "tablet"] {
        let dose = daily_dose(&once_daily(1.0, unit), strength);
        assert_eq!(dose.mg, Some(100.0), "{unit}");
        assert_eq!(dose.basis, format!("1 {unit} x 100 mg x 1 per 1 d"));
    }
}
