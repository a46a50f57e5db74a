//! Against a real FHIR server (Helios FHIR Server, started per test): patient-scoped
//! searches, write-back content, idempotence (second run writes nothing), updates on
//! changed data, inactivation on recovery, concurrent runs, the `assess` command.

#[path = "support/hfs.rs"]
mod hfs;

use serde_json::{json, Value};
use time::macros::date;
use trd_sentinel::config::Config;
use trd_sentinel::ehr::Ehr;
use trd_sentinel::fhir::writeback::{OWN_TAG_CODE, OWN_TAG_SYSTEM};

use hfs::{as_transaction, fixture, Hfs};

const AS_OF: time::Date = date!(2024 - 10 - 20);

async fn post(base: &str, body: &Value) -> Value {
    let response = reqwest::Client::new()
        .post(base)
        .header("Content-Type", "application/fhir+json")
        .header("Accept", "application/fhir+json")
        .json(body)
        .send()
        .await
        .expect("post");
    let status = response.status();
    let text = response.text().await.expect("body");
    assert!(status.is_success(), "POST failed {status}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn get(url: &str) -> Value {
    let response = reqwest::Client::new()
        .get(url)
        .header("Accept", "application/fhir+json")
        .send()
        .await
        .expect("get");
    assert!(
        response.status().is_success(),
        "GET {url}: {}",
        response.status()
    );
    response.json().await.expect("json")
}

async fn put(base: &str, resource: &Value) {
    let url = format!(
        "{base}/{}/{}",
        resource["resourceType"].as_str().expect("type"),
        resource["id"].as_str().expect("id")
    );
    let response = reqwest::Client::new()
        .put(&url)
        .header("Content-Type", "application/fhir+json")
        .json(resource)
        .send()
        .await
        .expect("put");
    assert!(
        response.status().is_success(),
        "PUT {url}: {}",
        response.status()
    );
}

async fn load(server: &Hfs, name: &str) {
    post(&server.base, &as_transaction(&fixture(name))).await;
}

async fn search(server: &Hfs, query: &str) -> Vec<Value> {
    let bundle = get(&format!("{}/{query}", server.base)).await;
    bundle["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e["resource"].clone())
        .collect()
}

fn ehr(server: &Hfs) -> Ehr {
    let config = Config::load_from(
        None,
        vec![("TRD_FHIR_BASE_URL".to_string(), server.base.clone())],
    )
    .expect("config");
    Ehr::from_config(&config).expect("ehr")
}

fn relevance() -> trd_sentinel::fhir::read::Relevance {
    trd_sentinel::fhir::read::Relevance::from_knowledge(
        &trd_sentinel::clinical::Knowledge::embedded().expect("knowledge"),
    )
}

fn ours(resources: &[Value]) -> Vec<&Value> {
    resources
        .iter()
        .filter(|r| trd_sentinel::ehr::is_own_resource(r))
        .collect()
}

#[tokio::test]
async fn a_patient_search_returns_only_that_patient() {
    let server = Hfs::start();
    load(&server, "trd-two-ssris").await;
    load(&server, "dose-too-low").await;
    let orders = search(
        &server,
        "MedicationDispense?patient=Patient/dose-too-low&_count=100",
    )
    .await;
    assert_eq!(orders.len(), 4, "only dose-too-low's four dispenses");
    assert!(orders
        .iter()
        .all(|o| o["subject"]["reference"] == "Patient/dose-too-low"));
    let gathered = trd_sentinel::fhir::gather::gather(
        &ehr(&server).client,
        "Patient/dose-too-low",
        &ehr(&server).engine.relevance,
        60,
        AS_OF,
        None,
    )
    .await
    .expect("gather");
    assert_eq!(gathered.record.dispenses.len(), 4);
    assert!(gathered.record.observations.is_empty());
}

#[tokio::test]
async fn write_back_is_right_idempotent_and_follows_changes() {
    let server = Hfs::start();
    load(&server, "trd-two-ssris").await;
    let patient = "Patient/trd-two-ssris";
    let ehr = ehr(&server);
    ehr.check_capabilities()
        .await
        .expect("hfs supports what we need");

    // First run: everything written.
    let first = ehr.run_patient(patient, AS_OF).await.expect("first run");
    assert_eq!(first.assessment.trd_status.code(), "trd");
    let flags = search(&server, &format!("Flag?patient={patient}")).await;
    assert_eq!(flags.len(), 1);
    let flag = &flags[0];
    assert_eq!(flag["status"], "active");
    assert_eq!(flag["code"]["coding"][0]["code"], "trd");
    assert_eq!(flag["identifier"][0]["value"], "Patient/trd-two-ssris/trd");
    let observations = search(&server, &format!("Observation?patient={patient}&code=https://fhir.trd-sentinel.org/CodeSystem/trd-assessment|trd-assessment")).await;
    assert_eq!(observations.len(), 1);
    let assessment = &observations[0];
    assert_eq!(
        assessment["valueCodeableConcept"]["coding"][0]["code"],
        "trd"
    );
    let detail = flag["extension"]
        .as_array()
        .expect("extensions")
        .iter()
        .find(|e| e["url"] == "http://hl7.org/fhir/StructureDefinition/flag-detail")
        .expect("flag-detail");
    assert_eq!(
        detail["valueReference"]["reference"],
        format!("Observation/{}", assessment["id"].as_str().expect("id")),
        "urn:uuid resolved to the stored Observation"
    );
    // No recent TSH, no recent vitamin D, no functional measure, no psychotherapy.
    assert_eq!(
        ours(&search(&server, &format!("DetectedIssue?patient={patient}")).await).len(),
        4
    );
    assert_eq!(
        ours(&search(&server, &format!("ServiceRequest?patient={patient}")).await).len(),
        7
    );
    let version = flag["meta"]["versionId"].clone();

    // Second run: nothing written, no new versions.
    let second = ehr.run_patient(patient, AS_OF).await.expect("second run");
    assert!(
        second.write.transaction.is_none(),
        "wrote again: {:?}",
        second.write.plan.written
    );
    let flag_again = get(&format!(
        "{}/Flag/{}",
        server.base,
        flag["id"].as_str().expect("id")
    ))
    .await;
    assert_eq!(flag_again["meta"]["versionId"], version, "no new version");

    // New data: a TSH on record, the no-recent-TSH issue is cancelled.
    put(&server.base, &json!({ "resourceType": "Observation", "id": "tsh-new", "status": "final", "subject": { "reference": patient },
        "code": { "coding": [{ "system": "http://loinc.org", "code": "3016-3" }] }, "effectiveDateTime": "2024-09-01",
        "valueQuantity": { "value": 2.1, "unit": "mIU/L", "system": "http://unitsofmeasure.org", "code": "mIU/L" } })).await;
    let third = ehr.run_patient(patient, AS_OF).await.expect("third run");
    assert!(
        third
            .write
            .plan
            .retired
            .iter()
            .any(|r| r.contains("no-recent-tsh")),
        "{:?}",
        third.write.plan.retired
    );
    let issues = search(&server, &format!("DetectedIssue?patient={patient}")).await;
    let tsh_issue = issues
        .iter()
        .find(|i| i["code"]["text"] == "no-recent-tsh")
        .expect("kept, not deleted");
    assert_eq!(tsh_issue["status"], "cancelled");

    // Recovery: the second trial's outcome becomes a remission; the Flag goes inactive.
    let scores = search(
        &server,
        &format!("Observation?patient={patient}&code=http://loinc.org|44261-6"),
    )
    .await;
    let mut last = scores
        .iter()
        .max_by_key(|o| o["effectiveDateTime"].as_str().unwrap_or("").to_string())
        .expect("score")
        .clone();
    last["valueInteger"] = json!(3);
    put(&server.base, &last).await;
    let fourth = ehr.run_patient(patient, AS_OF).await.expect("fourth run");
    assert_eq!(fourth.assessment.trd_status.code(), "remission");
    let flags = search(&server, &format!("Flag?patient={patient}")).await;
    assert_eq!(flags.len(), 1, "still one Flag");
    assert_eq!(flags[0]["status"], "inactive");
    let proposals = ours(&search(&server, &format!("ServiceRequest?patient={patient}")).await)
        .into_iter()
        .cloned()
        .collect::<Vec<_>>();
    assert!(
        proposals.iter().all(|s| s["status"] == "revoked"),
        "{proposals:?}"
    );
    // One Provenance per transaction that changed something (runs 1, 3 and 4; run 2
    // wrote nothing), each with its own write tag, each naming what it wrote.
    let provenances = search(
        &server,
        &format!("Provenance?_tag={OWN_TAG_SYSTEM}|{OWN_TAG_CODE}"),
    )
    .await;
    let write_tags: std::collections::BTreeSet<&str> = provenances
        .iter()
        .flat_map(|p| p["meta"]["tag"].as_array().into_iter().flatten())
        .filter_map(|t| t["code"].as_str())
        .filter(|code| code.starts_with("write-"))
        .collect();
    assert_eq!(provenances.len(), 3, "{provenances:#?}");
    assert_eq!(write_tags.len(), 3, "{write_tags:?}");
    assert!(provenances
        .iter()
        .all(|p| p["target"].as_array().is_some_and(|t| !t.is_empty())));
}

#[tokio::test]
async fn two_concurrent_runs_leave_exactly_one_flag() {
    let server = Hfs::start();
    load(&server, "chronic-psychotic").await;
    let patient = "Patient/chronic-psychotic";
    let (a, b) = (ehr(&server), ehr(&server));
    let (first, second) =
        tokio::join!(a.run_patient(patient, AS_OF), b.run_patient(patient, AS_OF));
    first.expect("first");
    second.expect("second");
    let flags = search(&server, &format!("Flag?patient={patient}")).await;
    assert_eq!(flags.len(), 1, "{flags:#?}");
    let assessments = search(&server, &format!("Observation?patient={patient}&code=https://fhir.trd-sentinel.org/CodeSystem/trd-assessment|trd-assessment")).await;
    assert_eq!(assessments.len(), 1);
}

#[tokio::test]
async fn the_assess_command_works_from_the_environment_alone() {
    let server = Hfs::start();
    load(&server, "one-failure-at-risk").await;
    let run = |dry: bool| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_trd-sentinel"));
        command
            .args([
                "assess",
                "--patient",
                "Patient/one-failure-at-risk",
                "--as-of",
                "2024-10-20",
            ])
            .env("TRD_FHIR_BASE_URL", &server.base)
            .env("RUST_LOG", "warn");
        if dry {
            command.env("TRD_WRITEBACK_DRY_RUN", "true");
        }
        command.output().expect("run")
    };
    let dry = run(true);
    let out = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry.status.success(),
        "{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(
        out.contains("one-failed-trial")
            && out.contains("dry run: would write")
            && out.contains("\"type\": \"transaction\""),
        "{out}"
    );
    assert!(
        search(&server, "Flag?patient=Patient/one-failure-at-risk")
            .await
            .is_empty(),
        "dry run writes nothing"
    );

    let real = run(false);
    let out = String::from_utf8_lossy(&real.stdout);
    assert!(
        real.status.success(),
        "{}",
        String::from_utf8_lossy(&real.stderr)
    );
    assert!(
        out.contains("wrote Flag Patient/one-failure-at-risk/trd"),
        "{out}"
    );
    assert_eq!(
        search(&server, "Flag?patient=Patient/one-failure-at-risk")
            .await
            .len(),
        1
    );
}

#[tokio::test]
async fn reconciliation_queues_changed_patients_and_keeps_its_watermark() {
    use trd_sentinel::intake::reconcile::{PollOutcome, Reconciler};
    use trd_sentinel::queue::{LocalQueue, WorkQueue};
    use trd_sentinel::work::WorkItem;

    let server = Hfs::start();
    load(&server, "one-failure-at-risk").await;
    // Another patient's changes the engine would never read (a blood pressure, which
    // the Observation search leaves out by code, and an ankle fracture, which the
    // Condition search returns and the poll then sets aside): they queue no one.
    put(
        &server.base,
        &json!({ "resourceType": "Patient", "id": "vitals-only" }),
    )
    .await;
    put(
        &server.base,
        &json!({ "resourceType": "Observation", "id": "vitals-only-bp", "status": "final",
        "subject": { "reference": "Patient/vitals-only" }, "effectiveDateTime": "2024-05-01",
        "code": { "coding": [{ "system": "http://loinc.org", "code": "8480-6" }] },
        "valueQuantity": { "value": 128, "unit": "mm[Hg]" } }),
    )
    .await;
    put(&server.base, &json!({ "resourceType": "Condition", "id": "vitals-only-fracture",
        "subject": { "reference": "Patient/vitals-only" }, "recordedDate": "2024-05-01",
        "code": { "coding": [{ "system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "S82.6" }] } })).await;
    let state = std::env::temp_dir().join(format!("trd-watermark-{}", std::process::id()));
    let _ = std::fs::remove_file(&state);
    let reconciler = Reconciler {
        state_file: state.clone(),
        initial_look_back_days: 1,
        min_spacing: std::time::Duration::ZERO,
        relevance: relevance(),
    };
    let queue = WorkQueue::Local(std::sync::Arc::new(LocalQueue::new(
        std::time::Duration::from_millis(10),
    )));
    let ehr = ehr(&server);

    assert_eq!(
        reconciler
            .poll_once(&ehr.client, &queue, false)
            .await
            .expect("poll"),
        PollOutcome::Polled(1)
    );
    let mark = reconciler
        .watermark(&queue)
        .await
        .expect("readable")
        .expect("saved");
    let mut receiver = queue.take_local_receiver().await.expect("receiver");
    assert_eq!(
        receiver.try_recv().expect("queued").item,
        WorkItem::Patient {
            patient: "Patient/one-failure-at-risk".into()
        }
    );

    // The watermark survives a restart (a new reconciler reads the same file); a
    // poll finds what changed since it (with a one-minute overlap, so the first
    // patient may be queued again: harmless, write-back is idempotent).
    load(&server, "dose-too-low").await;
    let restarted = Reconciler {
        state_file: state.clone(),
        initial_look_back_days: 1,
        min_spacing: std::time::Duration::ZERO,
        relevance: relevance(),
    };
    assert_eq!(
        restarted.watermark(&queue).await.expect("readable"),
        Some(mark)
    );
    restarted
        .poll_once(&ehr.client, &queue, false)
        .await
        .expect("poll");
    let mut again = Vec::new();
    while let Ok(job) = receiver.try_recv() {
        again.push(job.item);
    }
    assert!(
        again.contains(&WorkItem::Patient {
            patient: "Patient/dose-too-low".into()
        }),
        "{again:?}"
    );

    // A watermark after every change: nothing to queue.
    let later = time::OffsetDateTime::now_utc() + time::Duration::minutes(5);
    std::fs::write(
        &state,
        later
            .format(&time::format_description::well_known::Rfc3339)
            .expect("format"),
    )
    .expect("write");
    assert_eq!(
        restarted
            .poll_once(&ehr.client, &queue, false)
            .await
            .expect("poll"),
        PollOutcome::Polled(0)
    );

    // A scheduled tick soon after a poll is skipped (another replica's tick polled);
    // a re-query after a gap is not.
    let spaced = Reconciler {
        state_file: state.clone(),
        initial_look_back_days: 1,
        min_spacing: std::time::Duration::from_secs(3600),
        relevance: relevance(),
    };
    assert_eq!(
        spaced
            .poll_once(&ehr.client, &queue, true)
            .await
            .expect("tick"),
        PollOutcome::Skipped
    );
    assert_eq!(
        spaced
            .poll_once(&ehr.client, &queue, false)
            .await
            .expect("re-query"),
        PollOutcome::Polled(0)
    );
    let _ = std::fs::remove_file(&state);
}

/// Where Helios lists `batch`, one batch Bundle gathers exactly what the twelve
/// separate searches do (the record and the service's own resources), in one request;
/// a paged answer costs one request per further page, as a separate search would.
#[tokio::test]
async fn one_batch_gathers_what_the_separate_searches_do() {
    use trd_sentinel::fhir::gather::gather;

    let server = Hfs::start();
    load(&server, "trd-two-ssris").await;
    let patient = "Patient/trd-two-ssris";
    let small_pages = |server: &Hfs| {
        let config = Config::load_from(
            None,
            vec![
                ("TRD_FHIR_BASE_URL".to_string(), server.base.clone()),
                ("TRD_FHIR_PAGE_SIZE".to_string(), "2".to_string()),
            ],
        )
        .expect("config");
        Ehr::from_config(&config).expect("ehr")
    };
    for ehr in [ehr(&server), small_pages(&server)] {
        // Something of the service's own to find: a first assessment written back.
        ehr.run_patient(patient, AS_OF).await.expect("first run");
        let gathered = || {
            gather(
                &ehr.client,
                patient,
                &ehr.engine.relevance,
                60,
                AS_OF,
                Some(&ehr.writeback),
            )
        };
        assert!(
            !ehr.client.batches_searches(),
            "not before the capabilities"
        );
        let separate = gathered().await.expect("separate searches");
        ehr.check_capabilities().await.expect("capabilities");
        assert!(ehr.client.batches_searches(), "Helios lists batch");
        let batched = gathered().await.expect("one batch");

        assert_eq!(batched.record, separate.record);
        assert_eq!(batched.existing, separate.existing);
        let own = separate.existing.as_ref().map_or(0, Vec::len);
        assert!(
            own >= 2,
            "the Flag and the assessment Observation at least: {own}"
        );
        assert!(!separate.record.dispenses.is_empty());
        // Fourteen searches (one per type the record is read from, ten, and four for
        // the service's own): one request each, plus their further pages; batched, one
        // in all plus those pages.
        let searches = trd_sentinel::resource_types::READ_TYPES.len() + 4;
        let further_pages = separate.requests - searches;
        assert_eq!(batched.requests, 1 + further_pages);
        if ehr.client.page_size() == 2 {
            assert!(further_pages > 0, "two to a page: some answers are paged");
        } else {
            assert_eq!(batched.requests, 1);
        }
    }
}
