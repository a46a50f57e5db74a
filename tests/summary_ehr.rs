//! The treatment summary against a real FHIR server (Helios): written without
//! conditional create and found again by the service's own search, so a second run
//! writes nothing and a change of mode updates the same note; `summary --patient`
//! prints what was written.

#[path = "support/hfs.rs"]
mod hfs;

use base64::Engine as _;
use serde_json::Value;
use time::macros::date;
use trd_sentinel::config::Config;
use trd_sentinel::ehr::Ehr;

use hfs::{as_transaction, fixture, Hfs};

const PATIENT: &str = "Patient/trd-two-ssris";

fn ehr(server: &Hfs, document: &str) -> Ehr {
    let config = Config::load_from(
        None,
        vec![
            ("TRD_FHIR_BASE_URL".to_string(), server.base.clone()),
            ("TRD_WRITEBACK_DOCUMENT".to_string(), document.to_string()),
        ],
    )
    .expect("config");
    Ehr::from_config(&config).expect("ehr")
}

async fn search(server: &Hfs, query: &str) -> Vec<Value> {
    let bundle: Value = reqwest::Client::new()
        .get(format!("{}/{query}", server.base))
        .header("Accept", "application/fhir+json")
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    bundle["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e["resource"].clone())
        .collect()
}

fn attachment_text(note: &Value, index: usize) -> String {
    let data = note["content"][index]["attachment"]["data"]
        .as_str()
        .expect("data");
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("base64"),
    )
    .expect("utf-8")
}

#[tokio::test]
async fn the_note_is_created_once_then_kept_in_step_without_conditional_writes() {
    let server = Hfs::start();
    reqwest::Client::new()
        .post(&server.base)
        .header("Content-Type", "application/fhir+json")
        .json(&as_transaction(&fixture("trd-two-ssris")))
        .send()
        .await
        .expect("load")
        .error_for_status()
        .expect("loaded");
    let as_of = date!(2024 - 10 - 20);

    // An EHR that takes text notes only.
    let text_only = ehr(&server, "text");
    text_only.check_capabilities().await.expect("capabilities");
    let first = text_only
        .run_patient(PATIENT, as_of)
        .await
        .expect("first run");
    assert!(first
        .write
        .plan
        .written
        .contains(&format!("DocumentReference {PATIENT}/summary")));
    let notes = search(&server, &format!("DocumentReference?patient={PATIENT}")).await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    let note = &notes[0];
    assert_eq!(note["docStatus"], "preliminary");
    assert_eq!(note["content"].as_array().map(Vec::len), Some(1));
    let text = attachment_text(note, 0);
    assert!(
        text.starts_with("Treatment summary: depression and antidepressant trials\n\nReason for referral:\n- Treatment-resistant depression: 2 failed adequate trials"),
        "{text}"
    );
    assert!(search(&server, &format!("Composition?patient={PATIENT}"))
        .await
        .is_empty());

    // Again, and the next day: found by the own search, nothing written.
    for day in [as_of, date!(2024 - 10 - 21)] {
        let again = text_only.run_patient(PATIENT, day).await.expect("again");
        assert!(
            again.write.transaction.is_none(),
            "{:?}",
            again.write.plan.written
        );
        assert_eq!(again.requests, 1, "one batch, no transaction");
    }
    // A month later the episode is a month longer (the assessment Observation
    // changes): the note is updated by id, not created again.
    let later = text_only
        .run_patient(PATIENT, date!(2024 - 11 - 20))
        .await
        .expect("later");
    assert_eq!(
        later.write.plan.written,
        [
            format!("Observation {PATIENT}/assessment"),
            format!("DocumentReference {PATIENT}/summary")
        ]
    );
    let notes = search(&server, &format!("DocumentReference?patient={PATIENT}")).await;
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!(notes[0]["id"], note["id"]);
    text_only.run_patient(PATIENT, as_of).await.expect("back");

    // The hospital turns on the full document: the same note (by id) gains the
    // XHTML and points at a new Composition.
    let full = ehr(&server, "composition");
    let run = full.run_patient(PATIENT, as_of).await.expect("full");
    assert!(run.write.transaction.is_some());
    let notes = search(&server, &format!("DocumentReference?patient={PATIENT}")).await;
    assert_eq!(notes.len(), 1, "updated by id, not created again");
    assert_eq!(notes[0]["id"], note["id"]);
    assert_eq!(notes[0]["content"].as_array().map(Vec::len), Some(2));
    let compositions = search(&server, &format!("Composition?patient={PATIENT}")).await;
    assert_eq!(compositions.len(), 1);
    assert_eq!(
        notes[0]["context"]["related"][0]["reference"],
        Value::String(format!(
            "Composition/{}",
            compositions[0]["id"].as_str().expect("id")
        ))
    );
    let again = full.run_patient(PATIENT, as_of).await.expect("again");
    assert!(again.write.transaction.is_none());

    // The command prints the same text the note holds.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_trd-sentinel"))
        .args(["summary", "--patient", PATIENT, "--as-of", "2024-10-20"])
        .env("TRD_FHIR_BASE_URL", &server.base)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run summary");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), text);
}
