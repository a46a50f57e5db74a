//! The quality measures: CMS159 against the public test deck (every case's
//! populations and stratum pinned; the cases that differ named with the reason),
//! the summary report's counts and rate equal to the individual reports', every
//! report valid FHIR R4 (independent validator); and our own records for each
//! CQL definition's boundaries of CMS159 and CMS128.

#[path = "support/browser.rs"]
mod browser;
#[path = "support/cli.rs"]
mod cli;
#[path = "support/validator.rs"]
mod validator;

use std::collections::BTreeMap;
use std::fs;
use std::path::PathBuf;

use serde_json::Value;
use time::macros::date;
use time::Date;
use trd_sentinel::clinical::measures::{self, MeasureId, MeasurementPeriod, Membership};
use trd_sentinel::clinical::record::{
    Code, ConditionFact, Deceased, EncounterFact, ObservationFact, ObservedValue, PatientRecord,
    ProcedureFact, ServiceRequestFact,
};
use trd_sentinel::clinical::Knowledge;

fn deck() -> PathBuf {
    cli::root().join("../shared/data/ecqm-cms159-qicore-2023/cases")
}

/// `evaluate` of the deck for CMS159 over 2024 in a format, with `--out DIR`.
fn evaluate_deck(format: &str, out: &std::path::Path) -> std::process::Output {
    cli::evaluate(&[
        deck().to_str().expect("path"),
        "--measure",
        "cms159",
        "--measurement-period",
        "2024",
        "--format",
        format,
        "--out",
        out.to_str().expect("path"),
    ])
}

/// Cases whose expectation the newest CQL and value sets do not give, and why:
/// (file name part, populations we give as IPP DENOM DENEX NUMER, the reason).
const DIFFERENCES: &[(&str, &str, &str)] = &[
    (
        "DENEXPopStrat1Pass-HospAmbInMP1",
        "1101",
        "the hospice order's subject is another patient (http://GoodHealthcare.com/fhir/Patient/46464646), so it is not in this patient's record",
    ),
    (
        "DENEXPopStrat2Pass-HospAmbInMP2",
        "1101",
        "the hospice order's subject is another patient (http://GoodHealthcare.com/fhir/Patient/46464646), so it is not in this patient's record",
    ),
    (
        "DENEXPopStrat1Pass-HospiceProcedureInMP1",
        "1101",
        "SNOMED 385765002 is in \"Hospice Encounter\", not in \"Hospice Care Ambulatory\" (VSAC 20210825), which `[Procedure: \"Hospice Care Ambulatory\"]` retrieves with",
    ),
    (
        "DENEXPopStrat2Pass-HospiceProcedureInMP2",
        "1101",
        "SNOMED 385765002 is in \"Hospice Encounter\", not in \"Hospice Care Ambulatory\" (VSAC 20210825), which `[Procedure: \"Hospice Care Ambulatory\"]` retrieves with",
    ),
];

/// Cases whose file name says one stratum and whose data gives the other.
const STRATUM_DIFFERENCES: &[(&str, &str)] = &[(
    "IPPPopStrat2Pass-Patientis18",
    // Born 2006-06-24, index PHQ-9 on 2023-06-25: 17 years old.
    "Stratification 1",
)];

fn populations(group: &Value) -> String {
    group["population"]
        .as_array()
        .expect("populations")
        .iter()
        .map(|p| p["count"].to_string())
        .collect()
}

#[test]
fn cms159_agrees_with_the_public_test_deck_and_the_summary_adds_up() {
    let out = cli::temp_dir("cms159-deck");
    let output = evaluate_deck("measurereport", &out);
    let reports = cli::jsonl(&output);
    let by_subject: BTreeMap<String, &Value> = reports
        .iter()
        .map(|r| {
            (
                r["subject"]["reference"]
                    .as_str()
                    .expect("subject")
                    .to_string(),
                r,
            )
        })
        .collect();

    let mut cases = 0;
    for entry in fs::read_dir(deck()).expect("deck") {
        let path = entry.expect("entry").path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("name")
            .to_string();
        let case = name.trim_start_matches("CMS159FHIR-v0.0.001-");
        let bundle: Value =
            serde_json::from_str(&fs::read_to_string(&path).expect("read")).expect("json");
        let resources: Vec<&Value> = bundle["entry"]
            .as_array()
            .expect("entries")
            .iter()
            .map(|e| &e["resource"])
            .collect();
        let patient = resources
            .iter()
            .find(|r| r["resourceType"] == "Patient")
            .and_then(|r| r["id"].as_str())
            .expect("patient");
        let expected = resources
            .iter()
            .find(|r| r["resourceType"] == "MeasureReport")
            .map(|r| populations(&r["group"][0]))
            .expect("expected report");
        let report = by_subject
            .get(&format!("Patient/{patient}"))
            .unwrap_or_else(|| panic!("{case}: no report"));
        let got = populations(&report["group"][0]);
        match DIFFERENCES.iter().find(|(c, _, _)| *c == case) {
            Some((_, ours, reason)) => {
                assert_ne!(expected, *ours, "{case}: listed as a difference but agrees");
                assert_eq!(
                    got, *ours,
                    "{case}: expected our populations {ours} ({reason})"
                );
            }
            None => assert_eq!(got, expected, "{case}: populations (IPP DENOM DENEX NUMER)"),
        }
        // The stratum: the one the case names, for every patient in the population.
        let strata: Vec<&str> = report["group"][0]["stratifier"]
            .as_array()
            .map(|s| {
                s.iter()
                    .filter_map(|s| s["code"][0]["text"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        let named = if case.contains("Strat1") {
            "Stratification 1"
        } else {
            "Stratification 2"
        };
        let want = STRATUM_DIFFERENCES
            .iter()
            .find(|(c, _)| *c == case)
            .map_or(named, |(_, s)| *s);
        if got.starts_with('1') {
            assert_eq!(strata, [want], "{case}: stratum");
        } else {
            assert!(
                strata.is_empty(),
                "{case}: no stratum outside the population"
            );
        }
        assert_eq!(
            report["measure"],
            "https://madie.cms.gov/Measure/CMS159FHIRDepressionRemissionatTwelveMonths|0.3.000"
        );
        assert_eq!(report["period"]["start"], "2024-01-01");
        assert_eq!(report["period"]["end"], "2024-12-31");
        cases += 1;
    }
    assert_eq!(cases, 50, "the deck's 50 cases");

    // The summary's counts are the individual reports' sums; its rate is
    // numerator / (denominator - exclusions); the strata likewise.
    let summary: Value = serde_json::from_str(
        &fs::read_to_string(out.join("cms159-2024-summary.json")).expect("summary"),
    )
    .expect("json");
    assert_eq!(summary["type"], "summary");
    let mut sums = [0u64; 4];
    for report in &reports {
        for (n, population) in report["group"][0]["population"]
            .as_array()
            .expect("pop")
            .iter()
            .enumerate()
        {
            sums[n] += population["count"].as_u64().expect("count");
        }
    }
    let counts: Vec<u64> = summary["group"][0]["population"]
        .as_array()
        .expect("pop")
        .iter()
        .map(|p| p["count"].as_u64().expect("count"))
        .collect();
    assert_eq!(counts, sums);
    // 46 agreeing cases + the 4 named differences, as counted by hand from the deck.
    assert_eq!(counts, [42, 42, 14, 14]);
    let rate = summary["group"][0]["measureScore"]["value"]
        .as_f64()
        .expect("score");
    assert!((rate - 14.0 / 28.0).abs() < 1e-9, "{rate}");
    let strata = summary["group"][0]["stratifier"]
        .as_array()
        .expect("strata");
    let stratum_counts: Vec<u64> = strata
        .iter()
        .map(|s| {
            s["stratum"][0]["population"][0]["count"]
                .as_u64()
                .expect("count")
        })
        .collect();
    assert_eq!(
        stratum_counts.iter().sum::<u64>(),
        42,
        "every patient in one stratum"
    );

    // The subject list names exactly the individual reports' patients.
    let list: Value = serde_json::from_str(
        &fs::read_to_string(out.join("cms159-2024-subject-list.json")).expect("list"),
    )
    .expect("json");
    let numerator = &list["group"][0]["population"][3];
    let reference = numerator["subjectResults"]["reference"]
        .as_str()
        .expect("ref");
    let contained = list["contained"]
        .as_array()
        .expect("contained")
        .iter()
        .find(|l| format!("#{}", l["id"].as_str().unwrap_or_default()) == reference)
        .expect("the numerator's List");
    let mut listed: Vec<&str> = contained["entry"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["item"]["reference"].as_str())
        .collect();
    listed.sort_unstable();
    let mut in_numerator: Vec<&str> = reports
        .iter()
        .filter(|r| r["group"][0]["population"][3]["count"] == 1)
        .filter_map(|r| r["subject"]["reference"].as_str())
        .collect();
    in_numerator.sort_unstable();
    assert_eq!(listed, in_numerator);

    // Valid FHIR R4: every individual report, the summary and the subject list.
    let individual = out.join("individual.json");
    let bundle = serde_json::json!({
        "resourceType": "Bundle",
        "type": "collection",
        "entry": reports.iter().map(|r| serde_json::json!({ "resource": r })).collect::<Vec<_>>(),
    });
    fs::write(&individual, bundle.to_string()).expect("write");
    validator::validate_with_fhir_resources(&[
        individual,
        out.join("cms159-2024-summary.json"),
        out.join("cms159-2024-subject-list.json"),
    ]);
}

#[test]
fn measurereport_without_a_measure_is_a_clear_error() {
    let output = cli::evaluate(&["fixtures", "--format", "measurereport"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--measure cms159"), "{stderr}");
    let output = cli::evaluate(&["fixtures", "--measure", "cms999"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown measure `cms999`"));
}

// ---- CMS159 boundaries, on records built here -------------------------------------

const SNOMED: &str = "http://snomed.info/sct";
const LOINC: &str = "http://loinc.org";
const ICD10: &str = "http://hl7.org/fhir/sid/icd-10-cm";
const CPT: &str = "http://www.ama-assn.org/go/cpt";

fn code(system: &str, code: &str) -> Code {
    Code {
        system: system.into(),
        code: code.into(),
        display: None,
    }
}

fn knowledge() -> Knowledge {
    Knowledge::embedded().expect("knowledge")
}

fn year(y: i32) -> MeasurementPeriod {
    MeasurementPeriod::year(y).expect("year")
}

const AS_OF: Date = date!(2026 - 12 - 07);

struct Patient(PatientRecord);

impl Patient {
    fn born(birth: Date) -> Self {
        let mut record = PatientRecord::new("Patient/p");
        record.birth_date = Some(birth);
        Self(record)
    }

    fn phq9(mut self, day: Date, score: f64) -> Self {
        let n = self.0.observations.len() + 1;
        self.0.observations.push(ObservationFact {
            source: format!("Observation/phq{n}"),
            codes: vec![code(LOINC, "44261-6")],
            effective: Some(day),
            value: Some(ObservedValue::Number {
                value: score,
                unit: None,
            }),
            reference_high: None,
            reference_low: None,
            components: Vec::new(),
            members: Vec::new(),
        });
        self
    }

    fn visit(mut self, system: &str, kind: &str, start: Date, end: Date, status: &str) -> Self {
        let n = self.0.encounters.len() + 1;
        self.0.encounters.push(EncounterFact {
            source: format!("Encounter/e{n}"),
            types: vec![code(system, kind)],
            status: status.into(),
            start: Some(start),
            end: Some(end),
            discharge_disposition: Vec::new(),
        });
        self
    }

    fn office_visit(self, day: Date) -> Self {
        self.visit(CPT, "90791", day, day, "finished")
    }

    fn diagnosis(
        mut self,
        system: &str,
        dx: &str,
        onset: Option<Date>,
        verification: Option<&str>,
    ) -> Self {
        let n = self.0.conditions.len() + 1;
        self.0.conditions.push(ConditionFact {
            source: format!("Condition/c{n}"),
            codes: vec![code(system, dx)],
            onset,
            abatement: None,
            recorded: None,
            clinical_status: Some("active".into()),
            verification_status: verification.map(Into::into),
        });
        self
    }

    fn depression(self, onset: Date) -> Self {
        self.diagnosis(ICD10, "F32.9", Some(onset), Some("confirmed"))
    }

    fn cms159(&self, y: i32) -> Membership {
        let result = measures::evaluate(MeasureId::Cms159, &self.0, &knowledge(), year(y), AS_OF);
        *result.first().expect("group")
    }
}

/// IPP DENOM DENEX NUMER as "1101".
fn code_of(m: Membership) -> String {
    [
        m.initial_population,
        m.denominator,
        m.denominator_exclusion,
        m.numerator,
    ]
    .iter()
    .map(|b| if *b { '1' } else { '0' })
    .collect()
}

/// A patient with an index PHQ-9 of 15 at a visit on `visit`, depressed since then.
fn indexed(visit: Date) -> Patient {
    Patient::born(date!(1980 - 05 - 01))
        .office_visit(visit)
        .depression(visit)
        .phq9(visit, 15.0)
}

#[test]
fn cms159_denominator_identification_period_is_november_to_october_half_open() {
    // MP 2026: the identification period is [2024-11-01, 2025-11-01).
    assert_eq!(code_of(indexed(date!(2024 - 11 - 01)).cms159(2026)), "1100");
    assert_eq!(code_of(indexed(date!(2025 - 10 - 31)).cms159(2026)), "1100");
    assert_eq!(code_of(indexed(date!(2024 - 10 - 31)).cms159(2026)), "0000");
    assert_eq!(code_of(indexed(date!(2025 - 11 - 01)).cms159(2026)), "0000");
}

#[test]
fn cms159_index_assessment_is_from_seven_days_before_the_visit_to_its_end() {
    let visit = date!(2025 - 03 - 10);
    let with_phq = |day: Date| {
        Patient::born(date!(1980 - 05 - 01))
            .office_visit(visit)
            .depression(date!(2025 - 01 - 01))
            .phq9(day, 12.0)
            .cms159(2026)
    };
    assert_eq!(
        code_of(with_phq(date!(2025 - 03 - 03))),
        "1100",
        "7 days before"
    );
    assert_eq!(
        code_of(with_phq(date!(2025 - 03 - 02))),
        "0000",
        "8 days before"
    );
    assert_eq!(
        code_of(with_phq(date!(2025 - 03 - 11))),
        "0000",
        "after the visit ended"
    );
    // A score of 9 is not above 9.
    let nine = Patient::born(date!(1980 - 05 - 01))
        .office_visit(visit)
        .depression(visit)
        .phq9(visit, 9.0);
    assert_eq!(code_of(nine.cms159(2026)), "0000");
}

#[test]
fn cms159_the_diagnosis_must_be_confirmed_active_and_overlap_the_visit() {
    let visit = date!(2025 - 03 - 10);
    let base = || {
        Patient::born(date!(1980 - 05 - 01))
            .office_visit(visit)
            .phq9(visit, 15.0)
    };
    assert_eq!(
        code_of(
            base()
                .diagnosis(ICD10, "F32.9", Some(visit), None)
                .cms159(2026)
        ),
        "0000",
        "no verification status"
    );
    assert_eq!(
        code_of(
            base()
                .diagnosis(ICD10, "F32.9", Some(visit), Some("provisional"))
                .cms159(2026)
        ),
        "0000"
    );
    assert_eq!(
        code_of(
            base()
                .diagnosis(
                    ICD10,
                    "F32.9",
                    Some(date!(2025 - 03 - 11)),
                    Some("confirmed")
                )
                .cms159(2026)
        ),
        "0000",
        "diagnosed after the visit"
    );
    assert_eq!(
        code_of(
            base()
                .diagnosis(ICD10, "F34.1", None, Some("confirmed"))
                .cms159(2026)
        ),
        "1100",
        "dysthymia with no onset: since ever"
    );
    let mut cancelled = base().depression(visit);
    cancelled.0.encounters[0].status = "cancelled".into();
    assert_eq!(
        code_of(cancelled.cms159(2026)),
        "0000",
        "a visit not finished"
    );
}

#[test]
fn cms159_age_twelve_on_the_index_day() {
    let visit = date!(2025 - 03 - 10);
    let child = |birth: Date| {
        Patient::born(birth)
            .office_visit(visit)
            .depression(visit)
            .phq9(visit, 15.0)
    };
    let twelve = measures::evaluate(
        MeasureId::Cms159,
        &child(date!(2013 - 03 - 10)).0,
        &knowledge(),
        year(2026),
        AS_OF,
    );
    assert_eq!(code_of(*twelve.first().expect("group")), "1100");
    assert_eq!(twelve.strata, ["Stratification 1"]);
    assert_eq!(
        code_of(child(date!(2013 - 03 - 11)).cms159(2026)),
        "0000",
        "eleven"
    );
    let adult = measures::evaluate(
        MeasureId::Cms159,
        &child(date!(2007 - 03 - 10)).0,
        &knowledge(),
        year(2026),
        AS_OF,
    );
    assert_eq!(adult.strata, ["Stratification 2"]);
}

#[test]
fn cms159_numerator_is_the_last_score_of_the_assessment_period_closed_at_both_ends() {
    // Index 2025-03-10: the assessment period is [2026-01-09, 2026-05-09].
    let visit = date!(2025 - 03 - 10);
    let with = |scores: &[(Date, f64)]| {
        let mut p = indexed(visit);
        for (day, score) in scores {
            p = p.phq9(*day, *score);
        }
        code_of(p.cms159(2026))
    };
    assert_eq!(with(&[(date!(2026 - 01 - 09), 4.0)]), "1101", "first day");
    assert_eq!(with(&[(date!(2026 - 05 - 09), 4.0)]), "1101", "last day");
    assert_eq!(with(&[(date!(2026 - 01 - 08), 4.0)]), "1100", "a day early");
    assert_eq!(with(&[(date!(2026 - 05 - 10), 4.0)]), "1100", "a day late");
    assert_eq!(
        with(&[(date!(2026 - 02 - 01), 3.0), (date!(2026 - 04 - 01), 8.0)]),
        "1100",
        "the last counts"
    );
    assert_eq!(
        with(&[(date!(2026 - 02 - 01), 8.0), (date!(2026 - 04 - 01), 3.0)]),
        "1101"
    );
    assert_eq!(
        with(&[(date!(2026 - 02 - 01), 5.0)]),
        "1100",
        "5 is not below 5"
    );
    // A leap-day index: + 12 months is February 28.
    let leap = Patient::born(date!(1980 - 05 - 01))
        .office_visit(date!(2024 - 02 - 29))
        .depression(date!(2024 - 02 - 29))
        .phq9(date!(2024 - 02 - 29), 15.0)
        .phq9(date!(2025 - 04 - 29), 2.0);
    assert_eq!(
        code_of(leap.cms159(2025)),
        "1101",
        "2025-02-28 + 60 days = 2025-04-29"
    );
}

#[test]
fn cms159_exclusions_each_with_its_window() {
    let visit = date!(2025 - 03 - 10);
    // The exclusion window: [2024-11-01, 2026-05-09].
    let mut hospice = indexed(visit).visit(
        SNOMED,
        "305336008",
        date!(2026 - 05 - 09),
        date!(2026 - 06 - 01),
        "finished",
    );
    assert_eq!(
        code_of(hospice.cms159(2026)),
        "1110",
        "hospice encounter overlapping the last day"
    );
    hospice.0.encounters[1].start = Some(date!(2026 - 05 - 10));
    assert_eq!(
        code_of(hospice.cms159(2026)),
        "1100",
        "hospice after the window"
    );

    let mut discharged = indexed(visit).visit(
        SNOMED,
        "183452005",
        date!(2026 - 04 - 01),
        date!(2026 - 04 - 05),
        "finished",
    );
    discharged.0.encounters[1].discharge_disposition = vec![code(SNOMED, "428361000124107")];
    assert_eq!(
        code_of(discharged.cms159(2026)),
        "1110",
        "discharged home to hospice"
    );

    let mut ordered = indexed(visit);
    ordered.0.service_requests.push(ServiceRequestFact {
        source: "ServiceRequest/h".into(),
        codes: vec![code(SNOMED, "385763009")],
        status: "active".into(),
        intent: "order".into(),
        authored_on: Some(date!(2025 - 12 - 01)),
        do_not_perform: false,
    });
    assert_eq!(code_of(ordered.cms159(2026)), "1110", "hospice ordered");
    ordered.0.service_requests[0].do_not_perform = true;
    assert_eq!(code_of(ordered.cms159(2026)), "1100", "an order not to");

    let mut palliative = indexed(visit);
    palliative.0.procedures.push(ProcedureFact {
        source: "Procedure/p".into(),
        codes: vec![code(SNOMED, "103735009")],
        status: "completed".into(),
        performed: Some(date!(2024 - 11 - 01)),
        performed_end: None,
    });
    let palliative_result = measures::evaluate(
        MeasureId::Cms159,
        &palliative.0,
        &knowledge(),
        year(2026),
        AS_OF,
    );
    assert_eq!(
        code_of(*palliative_result.first().expect("group")),
        "1110",
        "palliative care on the window's first day"
    );
    assert!(palliative_result
        .evaluated
        .contains(&"Procedure/p".to_string()));

    let bipolar = indexed(visit).diagnosis(
        ICD10,
        "F31.9",
        Some(date!(2026 - 05 - 09)),
        Some("confirmed"),
    );
    assert_eq!(
        code_of(bipolar.cms159(2026)),
        "1110",
        "bipolar by the end of the assessment period"
    );
    let later = indexed(visit).diagnosis(
        ICD10,
        "F31.9",
        Some(date!(2026 - 05 - 10)),
        Some("confirmed"),
    );
    assert_eq!(code_of(later.cms159(2026)), "1100");

    let mut died = indexed(visit).phq9(date!(2026 - 02 - 01), 2.0);
    died.0.deceased = Some(Deceased::On(date!(2026 - 05 - 09)));
    assert_eq!(
        code_of(died.cms159(2026)),
        "1110",
        "died by the end of the assessment period: excluded, not counted in the numerator"
    );
    died.0.deceased = Some(Deceased::Yes);
    assert_eq!(
        code_of(died.cms159(2026)),
        "1101",
        "deceasedBoolean has no date to compare (the CQL comparison is null)"
    );
}

#[test]
fn cms159_reads_observations_only_and_explains_itself() {
    let visit = date!(2025 - 03 - 10);
    let mut form = indexed(visit);
    form.0.observations[0].source = "QuestionnaireResponse/q1".into();
    assert_eq!(
        code_of(form.cms159(2026)),
        "0000",
        "the measure retrieves Observations"
    );

    let p = indexed(visit).phq9(date!(2026 - 03 - 01), 3.0);
    let result = measures::evaluate(MeasureId::Cms159, &p.0, &knowledge(), year(2026), AS_OF);
    assert_eq!(
        result.evaluated,
        [
            "Patient/p",
            "Observation/phq1",
            "Encounter/e1",
            "Condition/c1",
            "Observation/phq2"
        ]
    );
    assert_eq!(
        result.reasons,
        [
            "Index assessment: PHQ-9 above 9 on 2025-03-10 (Observation/phq1), with the visit Encounter/e1 for the depression diagnosis Condition/c1",
            "Measure assessment period: 2026-01-09 to 2026-05-09 (12 months after the index assessment, +/- 60 days)",
            "Last PHQ-9 in the assessment period: 3 on 2026-03-01 (Observation/phq2): remission (below 5)",
        ]
    );
}

// ---- CMS128: the initial population and exclusions around the AMM core ----------

const RX: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";

fn escitalopram_dispense(record: &mut PatientRecord, start: Date, days: f64) {
    use trd_sentinel::clinical::record::{Amount, MedicationDispensed, MedicationProduct};
    let n = record.dispenses.len() + 1;
    record.dispenses.push(MedicationDispensed {
        source: format!("MedicationDispense/d{n}"),
        status: "completed".into(),
        handed_over: Some(start),
        days_supply: Some(days),
        quantity: Some(Amount {
            value: days,
            unit: "{tbl}".into(),
        }),
        medication: MedicationProduct {
            // escitalopram 10 MG Oral Tablet: in "Antidepressant Medication".
            codes: vec![code(RX, "349332")],
            ..Default::default()
        },
        dosage: Vec::new(),
        authorizing: Vec::new(),
    });
}

/// IPSD 2026-01-15 (in the intake period of MP 2026), with `days` dispensed.
fn amm_patient(birth: Date, fills: &[(Date, f64)]) -> Patient {
    let mut p = Patient::born(birth)
        .diagnosis(ICD10, "F32.1", Some(date!(2026 - 01 - 15)), None)
        .visit(
            CPT,
            "99213",
            date!(2026 - 01 - 15),
            date!(2026 - 01 - 15),
            "finished",
        );
    for (day, days) in fills {
        escitalopram_dispense(&mut p.0, *day, *days);
    }
    p
}

fn cms128(p: &Patient) -> (String, String) {
    let result = measures::evaluate(MeasureId::Cms128, &p.0, &knowledge(), year(2026), AS_OF);
    let groups: Vec<String> = result
        .groups
        .iter()
        .map(|g| code_of(g.membership))
        .collect();
    (groups[0].clone(), groups[1].clone())
}

#[test]
fn cms128_groups_follow_the_cumulative_duration_and_the_population_rules() {
    let ipsd = date!(2026 - 01 - 15);
    // 90 days then 90 more: 84 met, 180 met.
    let full = amm_patient(
        date!(1980 - 01 - 01),
        &[(ipsd, 90.0), (date!(2026 - 04 - 15), 90.0)],
    );
    assert_eq!(cms128(&full), ("1101".into(), "1101".into()));
    // 90 days only: acute met, continuation not.
    let acute = amm_patient(date!(1980 - 01 - 01), &[(ipsd, 90.0)]);
    assert_eq!(cms128(&acute), ("1101".into(), "1100".into()));
    // 83 days: neither.
    let short = amm_patient(date!(1980 - 01 - 01), &[(ipsd, 83.0)]);
    assert_eq!(cms128(&short), ("1100".into(), "1100".into()));
    // Seventeen at the IPSD: not in the population.
    let young = amm_patient(date!(2008 - 01 - 16), &[(ipsd, 90.0)]);
    assert_eq!(cms128(&young), ("0000".into(), "0000".into()));
    // Eighteen on the IPSD itself.
    let eighteen = amm_patient(date!(2008 - 01 - 15), &[(ipsd, 90.0)]);
    assert_eq!(cms128(&eighteen).0, "1101");
}

#[test]
fn cms128_diagnosis_and_visit_within_60_days_and_hospice_in_the_year() {
    let ipsd = date!(2026 - 01 - 15);
    let mut far = amm_patient(date!(1980 - 01 - 01), &[(ipsd, 90.0)]);
    far.0.conditions[0].onset = Some(date!(2026 - 03 - 17)); // IPSD + 61 days
    assert_eq!(cms128(&far).0, "0000", "diagnosis 61 days after");
    far.0.conditions[0].onset = Some(date!(2026 - 03 - 16)); // + 60 days
    assert_eq!(cms128(&far).0, "1101", "diagnosis 60 days after");
    let mut no_visit = amm_patient(date!(1980 - 01 - 01), &[(ipsd, 90.0)]);
    no_visit.0.encounters[0].start = Some(date!(2025 - 11 - 15)); // IPSD - 61 days
    assert_eq!(cms128(&no_visit).0, "0000", "visit 61 days before");
    // Hospice (library Hospice 6.15.000): a hospice encounter in the measurement year.
    let hospice = amm_patient(date!(1980 - 01 - 01), &[(ipsd, 90.0)]).visit(
        SNOMED,
        "305336008",
        date!(2026 - 11 - 30),
        date!(2027 - 01 - 10),
        "in-progress",
    );
    let (acute, continuation) = cms128(&hospice);
    assert_eq!((acute.as_str(), continuation.as_str()), ("1110", "1110"));
    let result = measures::evaluate(
        MeasureId::Cms128,
        &hospice.0,
        &knowledge(),
        year(2026),
        AS_OF,
    );
    assert_eq!(
        result.evaluated,
        [
            "Patient/p",
            "MedicationDispense/d1",
            "Condition/c1",
            "Encounter/e1",
            "Encounter/e2"
        ]
    );
}

#[test]
fn the_html_report_shows_the_rates_linked_to_their_patients_and_a_worklist_in_chromium() {
    let out = cli::temp_dir("cms159-html");
    let output = evaluate_deck("html", &out);
    cli::stdout(&output);
    let index = out.join("index.html");
    let url = format!("file://{}", index.display());
    let dom = std::process::Command::new(browser::chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--dump-dom",
            &url,
        ])
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&dom.stdout).to_string();
    // The rate, with numerator / (denominator - exclusions), by stratum.
    assert!(
        dom.contains("<h2 id=\"cms159\">CMS159 Depression Remission at Twelve Months (2024)</h2>"),
        "{dom}"
    );
    assert!(dom.contains("<strong>50% (14 / 28)</strong>"), "the rate");
    // Every count links to the list of its patients.
    assert!(dom.contains("<a href=\"#cms159-Group_1-numerator\">14</a>"));
    let list_at = dom
        .find("id=\"cms159-Group_1-numerator\"")
        .expect("the numerator's list");
    let list = &dom[list_at..];
    let list = &list[..list.find("</details>").expect("end")];
    assert_eq!(list.matches("<li><a href=\"Patient_").count(), 14);
    // The worklist: the 14 patients who missed remission, each with the reason.
    let worklist_at = dom
        .find("<h2 id=\"worklist\">Worklist</h2>")
        .expect("worklist");
    let worklist = &dom[worklist_at..];
    let worklist = &worklist[..worklist.find("</table>").expect("end")];
    assert_eq!(
        worklist
            .matches("<td>Remission missed at twelve months</td>")
            .count(),
        14
    );
    assert!(
        worklist.contains("not in remission (5 or more)")
            || worklist.contains("No PHQ-9 in the assessment period")
    );
    // Worklist before the counts; labels, not codes.
    assert!(worklist_at < dom.find("<h2>By TRD status</h2>").expect("status"));
    let screenshot = browser::artifacts().join("quality-report.png");
    let shot = std::process::Command::new(browser::chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1100,1400",
        ])
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg(&url)
        .output()
        .expect("screenshot");
    assert!(shot.status.success() && screenshot.exists(), "screenshot");
}
