//! Write-back planning: what an assessment writes, that a second run writes nothing,
//! what gets retired, and that every written resource passes an independent FHIR
//! validator (fhir.resources R4B models, provisioned by scripts/provision).

use std::path::Path;

#[path = "support/validator.rs"]
mod validator;
use validator::validate_with_fhir_resources;

use serde_json::{json, Value};
use time::macros::date;
use trd_sentinel::clinical::policy::PolicyBook;
use trd_sentinel::clinical::{assess, Assessment, Knowledge};
use trd_sentinel::config::WritebackSettings;
use trd_sentinel::fhir::read::{Relevance, ResourcePool};
use trd_sentinel::fhir::writeback::{desired_resources, existing_from, plan, Existing, Plan};

fn assessment(fixture: &str, policy: &str) -> Assessment {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/patients")
            .join(format!("{fixture}.json")),
    )
    .expect("fixture");
    assessment_of(&text, policy)
}

fn assessment_of(bundle: &str, policy: &str) -> Assessment {
    let knowledge = Knowledge::embedded().expect("knowledge");
    let mut pool = ResourcePool::new(Relevance::from_knowledge(&knowledge));
    pool.add_json(bundle, "test bundle").expect("bundle");
    let record = pool.records().pop().expect("patient");
    let policy = PolicyBook::embedded()
        .expect("policies")
        .get(policy)
        .expect("policy")
        .clone();
    assess(&record, &policy, &knowledge, date!(2024 - 10 - 20))
}

fn settings() -> WritebackSettings {
    WritebackSettings::default()
}

/// What the server would hold after applying a plan (ids assigned).
fn applied(plan: &Plan, settings: &WritebackSettings) -> Vec<Existing> {
    plan.entries
        .iter()
        .enumerate()
        .filter_map(|(i, entry)| {
            let mut resource = entry["resource"].clone();
            resource["id"] = json!(format!("srv{i}"));
            existing_from(&resource, &settings.identifier_system)
        })
        .collect()
}

fn types(plan: &Plan) -> Vec<String> {
    plan.entries
        .iter()
        .map(|e| {
            e["resource"]["resourceType"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

#[test]
fn a_trd_assessment_writes_flag_observation_issues_proposals_and_provenance() {
    let a = assessment("trd-two-ssris", "default");
    let s = settings();
    let plan = plan(&a, desired_resources(&a, &s), &[], &s);
    let kinds = types(&plan);
    assert_eq!(kinds.iter().filter(|k| *k == "Flag").count(), 1);
    assert_eq!(kinds.iter().filter(|k| *k == "Observation").count(), 1);
    assert_eq!(
        kinds.iter().filter(|k| *k == "DetectedIssue").count(),
        4,
        "no recent TSH, no recent vitamin D, no functional measure, no psychotherapy (issue 14)"
    );
    assert_eq!(kinds.iter().filter(|k| *k == "ServiceRequest").count(), 7);
    assert_eq!(kinds.last().map(String::as_str), Some("Provenance"));

    let flag = plan
        .entries
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Flag")
        .expect("flag");
    assert_eq!(flag["request"]["method"], "PUT");
    assert_eq!(
        flag["request"]["url"],
        "Flag?identifier=https://fhir.trd-sentinel.org/id%7CPatient/trd-two-ssris/trd"
    );
    assert_eq!(flag["resource"]["status"], "active");
    assert_eq!(flag["resource"]["code"]["coding"][0]["code"], "trd");
    assert_eq!(
        flag["resource"]["period"]["start"], "2024-07-06",
        "outcome date of the second failure"
    );
    let observation = plan
        .entries
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Observation")
        .expect("observation");
    assert_eq!(
        flag["resource"]["extension"][0]["valueReference"]["reference"], observation["fullUrl"],
        "flag-detail points at the assessment"
    );
    let proposal = plan
        .entries
        .iter()
        .find(|e| e["resource"]["resourceType"] == "ServiceRequest")
        .expect("proposal");
    assert_eq!(proposal["resource"]["intent"], "proposal");
    assert_eq!(
        proposal["resource"]["reasonReference"][0]["reference"],
        observation["fullUrl"]
    );
    let provenance = &plan.entries.last().expect("provenance")["resource"];
    assert_eq!(
        provenance["target"].as_array().map(Vec::len),
        Some(plan.entries.len() - 1)
    );
    assert!(provenance["entity"].as_array().is_some_and(|e| e
        .iter()
        .any(|x| x["what"]["reference"]
            .as_str()
            .is_some_and(|r| r.starts_with("MedicationDispense/")))));
    assert!(
        plan.entries.last().expect("provenance")["request"]["ifNoneExist"]
            .as_str()
            .is_some_and(|s| s.starts_with("_tag="))
    );
    for entry in &plan.entries {
        assert_eq!(
            entry["resource"]["meta"]["tag"][0]["code"], "trd-sentinel",
            "every resource is tagged as the service's own"
        );
    }
}

#[test]
fn a_second_run_with_the_same_content_writes_nothing() {
    let s = settings();
    let a = assessment("trd-two-ssris", "default");
    let first = plan(&a, desired_resources(&a, &s), &[], &s);
    let existing = applied(&first, &s);
    let second = plan(&a, desired_resources(&a, &s), &existing, &s);
    assert!(
        second.entries.is_empty(),
        "unchanged content is not rewritten: {:?}",
        second.written
    );
    assert_eq!(
        second.unchanged,
        first.entries.len() - 1,
        "everything but the provenance"
    );

    // A later as-of date alone (same findings, same months) changes nothing either.
    let mut later = a.clone();
    later.as_of = date!(2024 - 10 - 25);
    assert!(plan(&later, desired_resources(&later, &s), &existing, &s)
        .entries
        .is_empty());
}

#[test]
fn changed_data_updates_and_what_no_longer_applies_is_retired() {
    let s = settings();
    let trd = assessment("trd-two-ssris", "default");
    let existing = applied(&plan(&trd, desired_resources(&trd, &s), &[], &s), &s);

    // The same patient now has a TSH on record and is assessed under EMA (not TRD).
    let mut at_risk = assessment("ema-same-class", "ema");
    at_risk.patient = trd.patient.clone();
    let mut reassessed = assess_again(&at_risk, &trd);
    reassessed.findings.retain(|f| f.code != "no-recent-tsh");
    let second = plan(
        &reassessed,
        desired_resources(&reassessed, &s),
        &existing,
        &s,
    );

    let flag = second
        .entries
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Flag")
        .expect("flag updated");
    assert_eq!(
        flag["resource"]["code"]["coding"][0]["code"],
        "one-failed-trial"
    );
    assert!(
        second.retired.iter().any(|r| r.starts_with("DetectedIssue")
            && r.contains("no-recent-tsh")
            && r.ends_with("-> cancelled")),
        "{:?}",
        second.retired
    );
    assert!(
        second
            .retired
            .iter()
            .any(|r| r.contains("suggestion/183524004") && r.ends_with("-> revoked")),
        "{:?}",
        second.retired
    );
    let revoked = second
        .entries
        .iter()
        .find(|e| {
            e["resource"]["resourceType"] == "ServiceRequest"
                && e["resource"]["status"] == "revoked"
        })
        .expect("revoked");
    assert_eq!(
        revoked["request"]["method"], "PUT",
        "retired by update, never deleted"
    );
    assert!(second
        .entries
        .iter()
        .all(|e| e["request"]["method"] != "DELETE"));
}

/// The at-risk assessment as if made for the TRD patient (same patient reference).
fn assess_again(at_risk: &Assessment, trd: &Assessment) -> Assessment {
    let mut a = at_risk.clone();
    a.patient = trd.patient.clone();
    a
}

#[test]
fn a_patient_who_recovers_gets_the_flag_inactivated() {
    let s = settings();
    let trd = assessment("trd-two-ssris", "default");
    let existing = applied(&plan(&trd, desired_resources(&trd, &s), &[], &s), &s);
    let mut recovered = assessment("remission-after-second", "default");
    recovered.patient = trd.patient.clone();
    let update = plan(&recovered, desired_resources(&recovered, &s), &existing, &s);
    let flag = update
        .entries
        .iter()
        .find(|e| e["resource"]["resourceType"] == "Flag")
        .expect("flag");
    assert_eq!(flag["resource"]["status"], "inactive");
    assert_eq!(flag["resource"]["period"]["end"], "2024-10-20");
}

#[test]
fn a_patient_never_flagged_gets_no_inactive_flag() {
    let s = settings();
    let a = assessment("remission-after-second", "default");
    let plan = plan(&a, desired_resources(&a, &s), &[], &s);
    assert!(!types(&plan).contains(&"Flag".to_string()));
}

#[test]
fn only_the_configured_types_are_written() {
    let s = WritebackSettings {
        resources: vec!["Flag".into()],
        ..settings()
    };
    let a = assessment("trd-two-ssris", "default");
    let plan = plan(&a, desired_resources(&a, &s), &[], &s);
    assert_eq!(types(&plan), vec!["Flag"]);
    assert!(
        plan.entries[0]["resource"]
            .get("extension")
            .and_then(Value::as_array)
            .is_some_and(|e| e.len() == 1),
        "only the hash: no flag-detail to an unwritten Observation"
    );
}

#[test]
fn every_written_resource_passes_the_independent_validator() {
    let s = settings();
    let dir = std::env::temp_dir().join(format!("trd-written-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut files = Vec::new();
    for (fixture, policy) in [
        ("trd-two-ssris", "default"),
        ("thase-rush-v", "default"),
        ("bipolar-ii-history", "default"),
        ("subtherapeutic-ongoing", "default"),
        ("high-tsh", "default"),
        ("failure-plus-too-short", "default"),
        ("malformed-resource", "default"),
    ] {
        let a = assessment(fixture, policy);
        let first = plan(&a, desired_resources(&a, &s), &[], &s);
        let path = dir.join(format!("{fixture}.json"));
        std::fs::write(&path, first.transaction().to_string()).expect("write");
        files.push(path);
        // Retirements too: the same patient recovered.
        let mut recovered = assessment("remission-after-second", "default");
        recovered.patient = a.patient.clone();
        let retire = plan(
            &recovered,
            desired_resources(&recovered, &s),
            &applied(&first, &s),
            &s,
        );
        let path = dir.join(format!("{fixture}-retired.json"));
        std::fs::write(&path, retire.transaction().to_string()).expect("write");
        files.push(path);
    }
    validate_with_fhir_resources(&files);
}

#[test]
fn the_profiles_are_valid_fhir_and_cover_every_written_type() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles");
    let mut files = Vec::new();
    for folder in ["structuredefinitions", "codesystems", "valuesets"] {
        for entry in std::fs::read_dir(root.join(folder)).expect("folder") {
            files.push(entry.expect("entry").path());
        }
    }
    validate_with_fhir_resources(&files);
    let s = settings();
    let a = assessment("trd-two-ssris", "default");
    for entry in plan(&a, desired_resources(&a, &s), &[], &s).entries {
        let profile = entry["resource"]["meta"]["profile"][0]
            .as_str()
            .expect("profile")
            .to_string();
        let id = profile.rsplit('/').next().expect("id");
        let sd: Value = serde_json::from_str(
            &std::fs::read_to_string(root.join(format!(
                "structuredefinitions/StructureDefinition-{id}.json"
            )))
            .expect("profile file"),
        )
        .expect("json");
        assert_eq!(sd["type"], entry["resource"]["resourceType"], "{profile}");
    }
}

/// Most of a hospital's patients: no antidepressant, no depression. Nothing is written
/// for them; what an earlier assessment wrote (before the antidepressant was entered
/// in error, say) is retired, and nothing else.
#[test]
fn a_patient_with_nothing_to_report_gets_nothing_written() {
    let bundle = json!({ "resourceType": "Bundle", "type": "collection", "entry": [
        { "resource": { "resourceType": "Patient", "id": "bp", "birthDate": "1970-01-01" } },
        { "resource": { "resourceType": "Observation", "id": "bp1", "status": "final",
            "subject": { "reference": "Patient/bp" }, "effectiveDateTime": "2024-09-01",
            "code": { "coding": [{ "system": "http://loinc.org", "code": "8480-6" }] },
            "valueQuantity": { "value": 150, "unit": "mm[Hg]" } } },
        { "resource": { "resourceType": "MedicationRequest", "id": "m1", "status": "active", "intent": "order",
            "subject": { "reference": "Patient/bp" }, "authoredOn": "2024-09-01",
            "medicationCodeableConcept": { "coding": [{ "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "860975", "display": "metformin 500 MG" }] } } }
    ]});
    let a = assessment_of(&bundle.to_string(), "default");
    assert!(a.has_nothing_to_report(), "{:?}", a.trd_status);
    let s = settings();
    assert_eq!(desired_resources(&a, &s), Vec::new());
    assert_eq!(
        plan(&a, Vec::new(), &[], &s),
        Plan::default(),
        "nothing to send"
    );

    // Written before: the Flag is retired (Provenance records it); the assessment
    // Observation, never retired, is left as the last word.
    let earlier = assessment("trd-two-ssris", "default");
    let written = applied(
        &plan(&earlier, desired_resources(&earlier, &s), &[], &s),
        &s,
    );
    let mut earlier_of_bp = written.clone();
    for e in &mut earlier_of_bp {
        e.identifier = e.identifier.replace("Patient/trd-two-ssris", "Patient/bp");
    }
    let retiring = plan(&a, desired_resources(&a, &s), &earlier_of_bp, &s);
    assert!(retiring.written.is_empty(), "{:?}", retiring.written);
    assert!(
        retiring
            .retired
            .iter()
            .any(|r| r.starts_with("Flag Patient/bp/trd -> inactive")),
        "{:?}",
        retiring.retired
    );
    assert!(
        retiring
            .retired
            .iter()
            .all(|r| !r.starts_with("Observation")),
        "{:?}",
        retiring.retired
    );
    assert_eq!(
        types(&retiring)
            .iter()
            .filter(|t| *t != "Provenance")
            .count(),
        retiring.retired.len()
    );
}
