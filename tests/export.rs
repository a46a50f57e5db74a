//! `trd-sentinel export` against Helios, the real Bulk Data server (on PostgreSQL:
//! its export worker runs beside the polls): system, Patient and Group exports
//! assessed here print what `evaluate` prints for the same patients' files; `--since`
//! names only the patients that changed; an expired job is a clear error; `--queue`
//! with two replicas writes exactly one Flag per TRD patient.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/cli.rs"]
mod cli;
#[path = "support/e2e.rs"]
mod e2e;
#[path = "support/export.rs"]
mod export;
#[path = "support/hfs.rs"]
mod hfs;
#[path = "support/service.rs"]
mod service;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{json, Value};

use cli::{evaluate, root, temp_dir};
use e2e::{backlog, flags, start_concurrent, wait_for};
use export::{run, stderr, succeeded};
use hfs::{as_transaction, fixture, Hfs};

const AS_OF: &str = "2026-12-01";

/// Every fixture patient Helios accepts, loaded with its own ids.
async fn load_fixtures(server: &Hfs) -> Vec<String> {
    let http = reqwest::Client::new();
    let mut names: Vec<String> = std::fs::read_dir(root().join("fixtures/patients"))
        .expect("fixtures")
        .filter_map(|e| {
            let path = e.ok()?.path();
            Some(path.file_stem()?.to_str()?.to_string())
        })
        .collect();
    names.sort();
    let mut loaded = Vec::new();
    for name in names {
        let response = http
            .post(&server.base)
            .header("Content-Type", "application/fhir+json")
            .json(&as_transaction(&fixture(&name)))
            .send()
            .await
            .expect("load");
        if response.status().is_success() {
            loaded.push(name);
        }
    }
    loaded
}

/// `evaluate` of these fixtures' files: patient -> its JSON line.
fn evaluated(names: &[String]) -> BTreeMap<String, Value> {
    let mut args: Vec<String> = names
        .iter()
        .map(|n| format!("fixtures/patients/{n}.json"))
        .collect();
    args.extend(["--format", "jsonl", "--as-of", AS_OF].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    by_patient(&cli::stdout(&evaluate(&args)))
}

fn by_patient(text: &str) -> BTreeMap<String, Value> {
    text.lines()
        .map(|line| {
            let row: Value = serde_json::from_str(line).expect("a JSON line");
            (row["patient"].as_str().unwrap_or("").to_string(), row)
        })
        .collect()
}

fn work_dir(dir: &std::path::Path) -> String {
    dir.join("work").display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn system_patient_and_group_exports_assessed_here_print_what_evaluate_prints() {
    let server = Hfs::start_postgres();
    let loaded = load_fixtures(&server).await;
    assert!(
        loaded.len() >= 100,
        "Helios accepted only {} fixtures",
        loaded.len()
    );
    let expected = evaluated(&loaded);
    assert_eq!(expected.len(), loaded.len());
    let dir = temp_dir("export-helios");
    let work = work_dir(&dir);
    let env = [("TRD_EXPORT_WORK_DIR", work.as_str())];
    let assess = ["--evaluate", "--format", "jsonl", "--as-of", AS_OF];

    for level in [&["--system"][..], &["--patients"][..]] {
        let output = run(&server.base, &[level, &assess[..]].concat(), &env);
        let printed = by_patient(&succeeded(&output));
        let differing: Vec<&String> = expected
            .keys()
            .filter(|p| printed.get(*p) != expected.get(*p))
            .collect();
        assert!(
            differing.is_empty() && printed.len() == expected.len(),
            "{level:?}: {} of {} patients differ from evaluate: {differing:?}",
            differing.len(),
            expected.len()
        );
        assert!(
            !std::path::Path::new(&work).exists(),
            "the work directory is removed"
        );
    }

    // A Group of three: exactly their assessments.
    let members = ["adequate-ssri", "thase-rush-iii", "augmentation-counted"];
    let group = json!({"resourceType": "Group", "id": "trd-cohort", "type": "person", "actual": true,
        "member": members.iter().map(|m| json!({"entity": {"reference": format!("Patient/{m}")}})).collect::<Vec<_>>()});
    let response = reqwest::Client::new()
        .put(format!("{}/Group/trd-cohort", server.base))
        .header("Content-Type", "application/fhir+json")
        .json(&group)
        .send()
        .await
        .expect("group");
    assert!(response.status().is_success());
    let output = run(
        &server.base,
        &[&["--group", "trd-cohort"][..], &assess[..]].concat(),
        &env,
    );
    let printed = by_patient(&succeeded(&output));
    let wanted: BTreeMap<String, Value> = members
        .iter()
        .map(|m| {
            let key = format!("Patient/{m}");
            let row = expected.get(&key).cloned().expect("a loaded member");
            (key, row)
        })
        .collect();
    assert_eq!(printed, wanted);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn since_last_names_only_the_patients_that_changed() {
    let server = Hfs::start_postgres();
    let names = ["adequate-ssri", "thase-rush-iii", "one-failure-at-risk"];
    e2e::load(&server, &names).await;
    let dir = temp_dir("export-since");
    let out = dir.join("export").display().to_string();
    let state = dir.join("since").display().to_string();
    let env = [("TRD_EXPORT_STATE_FILE", state.as_str())];
    let assess = ["--evaluate", "--format", "jsonl", "--as-of", AS_OF];
    let first = run(
        &server.base,
        &[&["--out", &out][..], &assess[..]].concat(),
        &env,
    );
    assert_eq!(by_patient(&succeeded(&first)).len(), 3);
    let mark = std::fs::read_to_string(&state).expect("the mark is saved");

    // A new order for one patient; a heart rate (which the engine never reads) for another.
    let http = reqwest::Client::new();
    for resource in [
        json!({"resourceType": "MedicationRequest", "id": "new-order", "status": "active", "intent": "order",
            "subject": {"reference": "Patient/one-failure-at-risk"}, "authoredOn": "2026-11-20",
            "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "36437"}]}}),
        json!({"resourceType": "Observation", "id": "heart-rate", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
            "subject": {"reference": "Patient/adequate-ssri"}, "effectiveDateTime": "2026-11-20",
            "valueQuantity": {"value": 72, "unit": "/min"}}),
    ] {
        let url = format!(
            "{}/{}/{}",
            server.base,
            resource["resourceType"].as_str().unwrap_or(""),
            resource["id"].as_str().unwrap_or("")
        );
        let response = http
            .put(url)
            .header("Content-Type", "application/fhir+json")
            .json(&resource)
            .send()
            .await
            .expect("put");
        assert!(response.status().is_success());
    }
    let second = run(
        &server.base,
        &[&["--since", "last", "--out", &out][..], &assess[..]].concat(),
        &env,
    );
    let printed = by_patient(&succeeded(&second));
    assert_eq!(
        printed.keys().collect::<Vec<_>>(),
        ["Patient/one-failure-at-risk"],
        "{}",
        stderr(&second)
    );
    // Gathered whole from the EHR: the new order is a trial beside the old ones.
    let row = &printed["Patient/one-failure-at-risk"];
    let trials = row["status"]["trials"]
        .as_array()
        .map(Vec::len)
        .unwrap_or(0);
    assert!(trials >= 2, "{row}");
    let next_mark = std::fs::read_to_string(&state).expect("mark");
    assert!(next_mark > mark, "{next_mark} after {mark}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_the_ehr_no_longer_has_is_a_clear_error() {
    let server = Hfs::start_postgres();
    // A job kicked off, then deleted on the EHR (as an expired one is).
    let http = reqwest::Client::new();
    let kick_off = http
        .get(format!("{}/$export?_type=Patient", server.base))
        .header("Accept", "application/fhir+json")
        .header("Prefer", "respond-async")
        .send()
        .await
        .expect("kick-off");
    assert_eq!(kick_off.status().as_u16(), 202);
    let status_url = kick_off.headers()["content-location"]
        .to_str()
        .expect("ascii")
        .to_string();
    let deleted = http.delete(&status_url).send().await.expect("delete");
    assert!(deleted.status().is_success());
    // An export directory whose job file names that job.
    let dir = temp_dir("export-gone");
    let out = dir.join("export");
    std::fs::create_dir_all(&out).expect("mkdir");
    let path = trd_request_path();
    std::fs::write(
        out.join("job.json"),
        serde_json::to_vec(
            &json!({"version": 1, "base_url": server.base, "request": path,
            "status_url": status_url, "manifest": null, "files": []}),
        )
        .expect("json"),
    )
    .expect("job file");
    let output = run(&server.base, &["--out", &out.display().to_string()], &[]);
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message
            .contains("it expired or was cancelled on the EHR; start a new export (`--restart`)"),
        "{message}"
    );
    // `--restart` starts a new one.
    let restarted = run(
        &server.base,
        &["--out", &out.display().to_string(), "--restart"],
        &[],
    );
    succeeded(&restarted);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The kick-off path a default system export asks for (what the job file records).
fn trd_request_path() -> String {
    let knowledge = trd_sentinel::clinical::Knowledge::embedded().expect("knowledge");
    let relevance = trd_sentinel::fhir::read::Relevance::from_knowledge(&knowledge);
    trd_sentinel::fhir::bulk::ExportRequest::for_engine(
        trd_sentinel::fhir::bulk::ExportLevel::System,
        &relevance,
        None,
        true,
    )
    .path()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_to_two_replicas_every_trd_patient_gets_exactly_one_flag() {
    const PATIENTS: usize = 40;
    let server = Hfs::start_postgres();
    let patients = server
        .load_copies(
            &[
                "thase-rush-iii",
                "adequate-ssri",
                "one-failure-at-risk",
                "augmentation-counted",
            ],
            PATIENTS,
        )
        .await;
    let name = format!("export{}-pair", std::process::id());
    let sixteen = [("TRD_AMQP_SHARDS", "16")];
    let first = start_concurrent(&name, &server.base, &sixteen);
    let second = start_concurrent(&name, &server.base, &sixteen);
    wait_for(
        "both replicas owning shards",
        Duration::from_secs(60),
        || async {
            let (a, b) = (
                first.metric("trd_work_shards_owned").await,
                second.metric("trd_work_shards_owned").await,
            );
            a > 0.0 && b > 0.0 && a + b == 16.0
        },
    )
    .await;

    let (broker, connection) = e2e::broker(&name).await;
    let dir = temp_dir("export-queue");
    let work = work_dir(&dir);
    let (intake, work_queue, dead, events) = (
        format!("{name}.intake"),
        format!("{name}.work"),
        format!("{name}.dead"),
        format!("{name}.events"),
    );
    let env = [
        ("TRD_EXPORT_WORK_DIR", work.as_str()),
        ("TRD_AMQP_URL", broker.url.as_str()),
        ("TRD_AMQP_SHARDS", "16"),
        ("TRD_AMQP_INTAKE_QUEUE", intake.as_str()),
        ("TRD_AMQP_WORK_QUEUE", work_queue.as_str()),
        ("TRD_AMQP_DEAD_LETTER", dead.as_str()),
        ("TRD_AMQP_EVENTS_EXCHANGE", events.as_str()),
    ];
    let output = run(&server.base, &["--queue"], &env);
    succeeded(&output);
    assert!(
        stderr(&output).contains(&format!("queued {PATIENTS} patients")),
        "{}",
        stderr(&output)
    );
    wait_for(
        "every queued patient assessed",
        Duration::from_secs(180),
        || async {
            first.metric("trd_assessments_total").await
                + second.metric("trd_assessments_total").await
                >= PATIENTS as f64
        },
    )
    .await;
    let (by_first, by_second) = (
        first.metric("trd_assessments_total").await,
        second.metric("trd_assessments_total").await,
    );
    assert!(
        by_first > 0.0 && by_second > 0.0,
        "both replicas assess: {by_first} + {by_second}"
    );
    assert_eq!(by_first + by_second, PATIENTS as f64, "each patient once");

    // Which patients are TRD, as `evaluate` of the same export says today.
    let kept = dir.join("kept").display().to_string();
    let today = time::OffsetDateTime::now_utc().date().to_string();
    let local = run(
        &server.base,
        &[
            "--out",
            &kept,
            "--evaluate",
            "--format",
            "jsonl",
            "--as-of",
            &today,
        ],
        &[],
    );
    let statuses = by_patient(&succeeded(&local));
    let mut trd = 0;
    for patient in &patients {
        let flags = flags(&server.base, patient).await;
        let status = statuses[patient]["trd_status"].as_str().unwrap_or("");
        if status == "trd" {
            trd += 1;
            assert_eq!(flags.len(), 1, "{patient} (TRD): exactly one Flag");
        } else {
            assert!(flags.len() <= 1, "{patient} ({status}): at most one Flag");
        }
    }
    assert!(trd >= PATIENTS / 4, "the cohort has TRD patients: {trd}");
    assert_eq!(backlog(&connection, &name).await, 0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn written_back_from_here_once_and_unchanged_the_second_time() {
    let server = Hfs::start_postgres();
    let names = ["thase-rush-iii", "adequate-ssri", "augmentation-counted"];
    e2e::load(&server, &names).await;
    let dir = temp_dir("export-write");
    let out = dir.join("export").display().to_string();
    let first = run(&server.base, &["--patients", "--out", &out, "--write"], &[]);
    succeeded(&first);
    let log = stderr(&first);
    assert!(log.contains("wrote back 3 patients:"), "{log}");
    assert!(log.contains(", 0 failed"), "{log}");
    for patient in ["Patient/thase-rush-iii", "Patient/augmentation-counted"] {
        assert_eq!(flags(&server.base, patient).await.len(), 1, "{patient}");
    }
    // The same export again: everything is as written, nothing new.
    let second = run(&server.base, &["--patients", "--out", &out, "--write"], &[]);
    succeeded(&second);
    let log = stderr(&second);
    assert!(
        log.contains("wrote back 3 patients: 0 resources written, 0 retired, 0 failed"),
        "{log}"
    );
    for patient in ["Patient/thase-rush-iii", "Patient/augmentation-counted"] {
        assert_eq!(flags(&server.base, patient).await.len(), 1, "{patient}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
