//! Every code the service emits is defined, with a definition, in the project's
//! CodeSystems under profiles/codesystems.

use std::collections::BTreeSet;

use serde_json::Value;
use trd_sentinel::clinical::adequacy::{Adequacy, ReasonCode};
use trd_sentinel::clinical::finding::codes;
use trd_sentinel::clinical::knowledge::{Knowledge, ProfileFiles};
use trd_sentinel::clinical::response::ResponseClass;
use trd_sentinel::clinical::status::TrdStatus;
use trd_sentinel::clinical::suggestion::{kinds, SUGGESTION_SYSTEM};

fn defined(id: &str) -> BTreeSet<String> {
    let files = ProfileFiles::embedded();
    let text = files
        .get(&format!("codesystems/CodeSystem-{id}.json"))
        .expect("code system file");
    let cs: Value = serde_json::from_str(text).expect("json");
    assert_eq!(
        cs["url"],
        format!("https://fhir.trd-sentinel.org/CodeSystem/{id}")
    );
    let concepts = cs["concept"].as_array().expect("concepts");
    assert_eq!(
        cs["count"].as_u64(),
        Some(concepts.len() as u64),
        "{id}: count"
    );
    concepts
        .iter()
        .map(|c| {
            assert!(
                c["definition"].as_str().is_some_and(|d| !d.is_empty()),
                "{id}: {c} has no definition"
            );
            c["code"].as_str().expect("code").to_string()
        })
        .collect()
}

fn code_of<T: serde::Serialize>(value: T) -> String {
    serde_json::to_value(value)
        .expect("serialise")
        .as_str()
        .expect("string")
        .to_string()
}

#[test]
fn statuses_are_defined() {
    let defined = defined("trd-status");
    let emitted: BTreeSet<String> = TrdStatus::ALL
        .iter()
        .map(|s| s.code().to_string())
        .collect();
    assert_eq!(emitted, defined);
    for status in TrdStatus::ALL {
        assert_eq!(code_of(status), status.code(), "serde and code() agree");
    }
}

#[test]
fn finding_codes_from_engine_and_checklist_are_defined() {
    let defined = defined("trd-finding");
    let knowledge = Knowledge::embedded().expect("knowledge");
    let checklist = &knowledge.checklist;
    let emitted = codes::ALL
        .iter()
        .map(|c| c.to_string())
        .chain(checklist.diagnosis.iter().map(|d| d.code.clone()))
        .chain(checklist.lab.iter().map(|l| l.code.clone()))
        .chain(checklist.lab.iter().filter_map(|l| l.missing_code.clone()))
        .chain(checklist.score.iter().map(|s| s.code.clone()))
        .chain(knowledge.safety.finding_codes());
    for code in emitted {
        assert!(
            defined.contains(&code),
            "finding code `{code}` is not in CodeSystem-trd-finding.json"
        );
    }
}

#[test]
fn suggestion_codes_are_defined() {
    let defined = defined("trd-suggestion");
    for kind in kinds::ALL {
        if kind.system == SUGGESTION_SYSTEM {
            assert!(defined.contains(kind.code), "{} missing", kind.code);
        }
    }
    let own = kinds::ALL
        .iter()
        .filter(|k| k.system == SUGGESTION_SYSTEM)
        .count();
    assert_eq!(own, defined.len(), "no stale codes in the CodeSystem");
}

#[test]
fn adequacy_reason_and_response_codes_are_defined() {
    let adequacy: BTreeSet<String> = [
        Adequacy::Adequate,
        Adequacy::Inadequate,
        Adequacy::Indeterminate,
    ]
    .map(code_of)
    .into();
    assert_eq!(adequacy, defined("trd-trial-adequacy"));
    let reasons: BTreeSet<String> = [
        ReasonCode::DoseUnknown,
        ReasonCode::DoseBelowMinimum,
        ReasonCode::Titrating,
        ReasonCode::AsNeededDosing,
        ReasonCode::StoppedBeforeWeek4,
        ReasonCode::TooShort,
        ReasonCode::OngoingTooEarly,
        ReasonCode::LowAdherence,
        ReasonCode::ReportedNotTaken,
    ]
    .map(code_of)
    .into();
    assert_eq!(reasons, defined("trd-adequacy-reason"));
    let responses: BTreeSet<String> = [
        ResponseClass::NonResponse,
        ResponseClass::Partial,
        ResponseClass::Response,
        ResponseClass::Remission,
        ResponseClass::Unknown,
    ]
    .map(code_of)
    .into();
    assert_eq!(responses, defined("trd-response"));
}

#[test]
fn every_code_system_has_a_value_set() {
    let files = ProfileFiles::embedded();
    for (path, _) in files.under("codesystems/") {
        let id = path
            .trim_start_matches("codesystems/CodeSystem-")
            .trim_end_matches(".json");
        let vs: Value = serde_json::from_str(
            files
                .get(&format!("valuesets/ValueSet-{id}.json"))
                .expect("value set"),
        )
        .expect("json");
        assert_eq!(
            vs["compose"]["include"][0]["system"],
            format!("https://fhir.trd-sentinel.org/CodeSystem/{id}")
        );
    }
}

#[test]
fn write_back_codes_are_defined() {
    let assessment = defined("trd-assessment");
    for code in [
        "trd-assessment",
        "failed-adequate-trials",
        "adequate-trials",
        "thase-rush-stage",
        "msm-score",
        "msm-band",
        "mgh-s-score",
    ] {
        assert!(assessment.contains(code), "{code}");
    }
    assert!(defined("trd-meta").contains(trd_sentinel::fhir::writeback::OWN_TAG_CODE));
}

#[test]
fn cds_card_concerns_and_override_reasons_are_defined() {
    use trd_sentinel::cds::cards::{CONCERNS, OVERRIDES};
    let concerns: BTreeSet<String> = CONCERNS.iter().map(|c| c.to_string()).collect();
    assert_eq!(concerns, defined("trd-cds-concern"));
    let overrides: BTreeSet<String> = OVERRIDES.iter().map(|(c, _)| c.to_string()).collect();
    assert_eq!(overrides, defined("trd-cds-override"));
}
