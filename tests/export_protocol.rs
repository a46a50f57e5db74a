//! `trd-sentinel export` and the Bulk Data protocol's harder moments, against a stub
//! EHR (fault injection: the real export path against Helios is `tests/export.rs`):
//! a refused `_typeFilter`, 429 and `Retry-After` above the ceiling, error files, the
//! token kept from foreign storage, a download killed half-way and resumed, an
//! expired job, Ctrl-C.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/export.rs"]
mod export;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use wiremock::matchers::{header, method, path, query_param_is_missing};
use wiremock::{Mock, MockServer, ResponseTemplate};

use cli::temp_dir;
use export::{run, spawn, stderr, succeeded};

const TOKEN: &str = "ehr-token-0123456789";

fn bearer() -> [(&'static str, &'static str); 1] {
    [("TRD_FHIR_TOKEN", TOKEN)]
}

fn ndjson(resources: &[Value]) -> String {
    resources.iter().map(|r| format!("{r}\n")).collect()
}

fn patient_line() -> String {
    ndjson(&[json!({"resourceType": "Patient", "id": "p1", "birthDate": "1980-01-01"})])
}

/// `n` orders of one patient: a file of some size.
fn orders(n: usize) -> String {
    let lines: Vec<Value> = (0..n)
        .map(|i| {
            json!({"resourceType": "MedicationRequest", "id": format!("mr{i}"), "status": "completed",
                "intent": "order", "subject": {"reference": "Patient/p1"}, "authoredOn": "2025-01-01",
                "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "36437"}]}})
        })
        .collect();
    ndjson(&lines)
}

fn manifest(files: &[(&str, String)], errors: &[String], requires_token: bool) -> Value {
    json!({
        "transactionTime": "2026-12-07T10:00:00Z",
        "request": "$export",
        "requiresAccessToken": requires_token,
        "output": files.iter().map(|(t, url)| json!({"type": t, "url": url})).collect::<Vec<_>>(),
        "error": errors.iter().map(|url| json!({"type": "OperationOutcome", "url": url})).collect::<Vec<_>>(),
    })
}

async fn kick_off(ehr: &MockServer) {
    Mock::given(method("GET"))
        .and(path("/$export"))
        .respond_with(
            ResponseTemplate::new(202)
                .insert_header("Content-Location", format!("{}/status/1", ehr.uri())),
        )
        .expect(1)
        .mount(ehr)
        .await;
}

async fn complete(ehr: &MockServer, manifest: Value) {
    Mock::given(method("GET"))
        .and(path("/status/1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(manifest))
        .mount(ehr)
        .await;
}

async fn file(server: &MockServer, at: &str, body: String) {
    Mock::given(method("GET"))
        .and(path(at))
        .respond_with(ResponseTemplate::new(200).set_body_string(body))
        .mount(server)
        .await;
}

async fn requests_to(server: &MockServer, prefix: &str) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path().starts_with(prefix))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protocol_as_the_bulk_data_ig_describes_it() {
    let ehr = MockServer::start().await;
    let storage = MockServer::start().await;
    // The filtered kick-off is refused (a server may refuse filters it cannot apply);
    // the same request without _typeFilter is accepted.
    Mock::given(method("GET"))
        .and(path("/$export"))
        .and(query_param_is_missing("_typeFilter"))
        .and(header("Prefer", "respond-async"))
        .and(header("Accept", "application/fhir+json"))
        .and(header("Authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(
            ResponseTemplate::new(202)
                .insert_header("Content-Location", format!("{}/status/1", ehr.uri())),
        )
        .with_priority(1)
        .expect(1)
        .mount(&ehr)
        .await;
    Mock::given(method("GET"))
        .and(path("/$export"))
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "not-supported", "diagnostics": "_typeFilter"}]})))
        .with_priority(2)
        .expect(1)
        .mount(&ehr)
        .await;
    // Polled too often (429), then in progress asking for two minutes, then done.
    Mock::given(method("GET"))
        .and(path("/status/1"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&ehr)
        .await;
    Mock::given(method("GET"))
        .and(path("/status/1"))
        .respond_with(
            ResponseTemplate::new(202)
                .insert_header("X-Progress", "50%")
                .insert_header("Retry-After", "120"),
        )
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&ehr)
        .await;
    let files = [
        ("Patient", format!("{}/files/patient.ndjson", ehr.uri())),
        (
            "MedicationRequest",
            format!("{}/files/orders.ndjson", storage.uri()),
        ),
    ];
    let errors = [format!("{}/files/errors.ndjson", ehr.uri())];
    Mock::given(method("GET"))
        .and(path("/status/1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(manifest(&files, &errors, false)))
        .with_priority(3)
        .mount(&ehr)
        .await;
    file(&ehr, "/files/patient.ndjson", patient_line()).await;
    file(&storage, "/files/orders.ndjson", orders(3)).await;
    let outcome = |code: &str| {
        json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": code,
            "diagnostics": "Observation for Jane Doe (MRN 555-12) could not be serialised"}]})
    };
    file(
        &ehr,
        "/files/errors.ndjson",
        ndjson(&[
            outcome("processing"),
            outcome("processing"),
            outcome("too-costly"),
        ]),
    )
    .await;

    let dir = temp_dir("export-protocol");
    let state = dir.join("state/since");
    let state_var = state.display().to_string();
    let out = dir.join("export");
    let output = run(
        &ehr.uri(),
        &["--out", &out.display().to_string()],
        &[bearer()[0], ("TRD_EXPORT_STATE_FILE", state_var.as_str())],
    );
    succeeded(&output);
    let log = stderr(&output);

    // The files, as served, where `evaluate` reads them; the errors beside them.
    assert_eq!(
        std::fs::read_to_string(out.join("output/0000.Patient.ndjson")).expect("patient file"),
        patient_line()
    );
    assert_eq!(
        std::fs::read_to_string(out.join("output/0001.MedicationRequest.ndjson")).expect("orders"),
        orders(3)
    );
    assert!(out.join("error/0002.OperationOutcome.ndjson").exists());
    // The errors are reported by issue code, never by their text.
    assert!(
        log.contains("OperationOutcome issues: processing x2, too-costly x1"),
        "{log}"
    );
    assert!(
        !log.contains("Jane Doe") && !log.contains("555-12"),
        "{log}"
    );
    // Retry-After honoured up to the 1 s ceiling: for the 429 and for the 202.
    assert_eq!(log.matches("\"wait_ms\":1000").count(), 2, "{log}");
    assert!(log.contains("\"progress\":\"50%\""), "{log}");
    // requiresAccessToken false: no token with any file, on either origin.
    let downloads: Vec<_> = requests_to(&ehr, "/files/")
        .await
        .into_iter()
        .chain(requests_to(&storage, "/files/").await)
        .collect();
    assert_eq!(downloads.len(), 3);
    assert!(downloads
        .iter()
        .all(|r| !r.headers.contains_key("authorization")));
    // Kick-offs 2 (filtered, refused; whole), polls 3; the next `--since last` starts here.
    assert_eq!(requests_to(&ehr, "/status/1").await.len(), 3);
    assert_eq!(
        std::fs::read_to_string(&state).expect("state"),
        "2026-12-07T10:00:00Z"
    );
    let job: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("job.json")).expect("job"))
            .expect("json");
    assert_eq!(job["finished"], true);
    assert_eq!(job["files"].as_array().map(Vec::len), Some(3));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_goes_to_the_ehr_and_configured_storage_only() {
    let ehr = MockServer::start().await;
    let storage = MockServer::start().await;
    kick_off(&ehr).await;
    let files = [
        ("Patient", format!("{}/files/patient.ndjson", ehr.uri())),
        (
            "MedicationRequest",
            format!("{}/files/orders.ndjson", storage.uri()),
        ),
    ];
    complete(&ehr, manifest(&files, &[], true)).await;
    file(&ehr, "/files/patient.ndjson", patient_line()).await;
    file(&storage, "/files/orders.ndjson", orders(2)).await;
    let dir = temp_dir("export-token");
    let out = dir.join("export").display().to_string();

    // A file on a foreign origin that needs the token: refused, nothing sent there.
    let refused = run(&ehr.uri(), &["--out", &out], &bearer());
    assert!(!refused.status.success());
    let message = stderr(&refused);
    assert!(
        message.contains("neither the EHR's origin nor in export.storage_origins: not downloaded"),
        "{message}"
    );
    assert!(requests_to(&storage, "/").await.is_empty());

    // Named as the export's storage: it gets the token; the EHR's own file too.
    let storage_origin = storage.uri();
    let allowed = run(
        &ehr.uri(),
        &["--out", &out],
        &[
            bearer()[0],
            ("TRD_EXPORT_STORAGE_ORIGINS", storage_origin.as_str()),
        ],
    );
    succeeded(&allowed);
    let expected = format!("Bearer {TOKEN}");
    for request in requests_to(&ehr, "/files/")
        .await
        .iter()
        .chain(&requests_to(&storage, "/files/").await)
    {
        assert_eq!(
            request
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok()),
            Some(expected.as_str())
        );
    }
    // The resumed run re-used the kick-off and the manifest: one kick-off in all.
    assert_eq!(requests_to(&ehr, "/$export").await.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Serves `body` over raw HTTP: the first connection gets the headers and half the
/// body, then nothing (a download cut off); later ones get it whole.
async fn stalling_file_server(body: String) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = vec![0u8; 8192];
                let _ = socket.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/fhir+ndjson\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = socket.write_all(head.as_bytes()).await;
                if n == 0 {
                    let _ = socket.write_all(&body.as_bytes()[..body.len() / 2]).await;
                    let _ = socket.flush().await;
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                } else {
                    let _ = socket.write_all(body.as_bytes()).await;
                }
            });
        }
    });
    (format!("http://{address}"), connections)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_export_resumes_without_fetching_finished_files_again() {
    let ehr = MockServer::start().await;
    let big = orders(400);
    let (stalling, connections) = stalling_file_server(big.clone()).await;
    kick_off(&ehr).await;
    let files = [
        ("Patient", format!("{}/files/patient.ndjson", ehr.uri())),
        (
            "MedicationRequest",
            format!("{stalling}/files/orders.ndjson"),
        ),
        (
            "Condition",
            format!("{}/files/conditions.ndjson", ehr.uri()),
        ),
    ];
    complete(&ehr, manifest(&files, &[], false)).await;
    file(&ehr, "/files/patient.ndjson", patient_line()).await;
    file(&ehr, "/files/conditions.ndjson", String::new()).await;
    let dir = temp_dir("export-resume");
    let out = dir.join("export");
    let out_arg = out.display().to_string();
    let log = dir.join("first.log");

    let mut first = spawn(&ehr.uri(), &["--out", &out_arg], &bearer(), &log);
    // Killed while the second file is half on disk.
    let part = out.join("output/0001.MedicationRequest.part");
    let deadline = Instant::now() + Duration::from_secs(60);
    while std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0) < (big.len() / 2) as u64 {
        assert!(
            Instant::now() < deadline,
            "the download never got half-way: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill().expect("kill -9");
    let _ = first.wait();
    let job: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("job.json")).expect("job"))
            .expect("json");
    assert_eq!(job["files"].as_array().map(Vec::len), Some(1), "{job}");

    let second = run(&ehr.uri(), &["--out", &out_arg], &bearer());
    succeeded(&second);
    // The finished file was not fetched again, the cut-off one was, whole.
    assert_eq!(requests_to(&ehr, "/files/patient.ndjson").await.len(), 1);
    assert_eq!(requests_to(&ehr, "/files/conditions.ndjson").await.len(), 1);
    assert_eq!(connections.load(Ordering::SeqCst), 2);
    assert_eq!(
        std::fs::read_to_string(out.join("output/0001.MedicationRequest.ndjson")).expect("orders"),
        big
    );
    assert!(!part.exists());
    // One kick-off and one manifest: the second run went on from the job file.
    assert_eq!(requests_to(&ehr, "/$export").await.len(), 1);
    assert_eq!(requests_to(&ehr, "/status/1").await.len(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_job_is_a_clear_error_and_ctrl_c_cancels_the_job() {
    let ehr = MockServer::start().await;
    kick_off(&ehr).await;
    Mock::given(method("GET"))
        .and(path("/status/1"))
        .respond_with(ResponseTemplate::new(202).insert_header("Retry-After", "1"))
        .mount(&ehr)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/status/1"))
        .respond_with(ResponseTemplate::new(202))
        .expect(1)
        .mount(&ehr)
        .await;
    let dir = temp_dir("export-cancel");
    let out = dir.join("export");
    let out_arg = out.display().to_string();
    let log = dir.join("cancel.log");
    let mut child = spawn(&ehr.uri(), &["--out", &out_arg], &bearer(), &log);
    let deadline = Instant::now() + Duration::from_secs(60);
    while requests_to(&ehr, "/status/1").await.is_empty() {
        assert!(Instant::now() < deadline, "never polled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let interrupted = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill -INT");
    assert!(interrupted.success());
    let status = child.wait().expect("wait");
    assert!(!status.success());
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("export cancelled"), "{text}");
    assert!(
        !out.join("job.json").exists(),
        "a cancelled job is not resumed"
    );
    ehr.verify().await;

    // A status URL that answers 404: the job expired on the EHR.
    let expired = MockServer::start().await;
    kick_off(&expired).await;
    Mock::given(method("GET"))
        .and(path("/status/1"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&expired)
        .await;
    let output = run(&expired.uri(), &["--out", &out_arg], &bearer());
    assert!(!output.status.success());
    let message = stderr(&output);
    assert!(
        message.contains("is gone (HTTP 404): it expired or was cancelled on the EHR; start a new export (`--restart`)"),
        "{message}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delta_names_the_patients_of_changed_and_deleted_resources() {
    let ehr = MockServer::start().await;
    kick_off(&ehr).await;
    let mut manifest = manifest(
        &[(
            "Observation",
            format!("{}/files/observations.ndjson", ehr.uri()),
        )],
        &[],
        false,
    );
    manifest["deleted"] =
        json!([{"type": "Bundle", "url": format!("{}/files/deleted.ndjson", ehr.uri())}]);
    complete(&ehr, manifest).await;
    // A PHQ-9 for p1 (read by the engine) and a heart rate for p2 (never read).
    file(
        &ehr,
        "/files/observations.ndjson",
        ndjson(&[
            json!({"resourceType": "Observation", "id": "o1", "status": "final", "subject": {"reference": "Patient/p1"},
                "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]}, "valueInteger": 12}),
            json!({"resourceType": "Observation", "id": "o2", "status": "final", "subject": {"reference": "Patient/p2"},
                "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}, "valueQuantity": {"value": 70}}),
        ]),
    )
    .await;
    // An order of p9 deleted since; one whose history the EHR no longer has.
    file(
        &ehr,
        "/files/deleted.ndjson",
        ndjson(&[
            json!({"resourceType": "Bundle", "type": "transaction", "entry": [
            {"request": {"method": "DELETE", "url": "MedicationRequest/gone"}},
            {"request": {"method": "DELETE", "url": "MedicationRequest/forgotten"}}]}),
        ]),
    )
    .await;
    Mock::given(method("GET"))
        .and(path("/MedicationRequest/gone/_history"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "resourceType": "Bundle", "type": "history", "entry": [
                {"request": {"method": "DELETE", "url": "MedicationRequest/gone"}},
                {"resource": {"resourceType": "MedicationRequest", "id": "gone", "status": "active", "intent": "order",
                    "subject": {"reference": "Patient/p9"}}}]})))
        .mount(&ehr)
        .await;
    Mock::given(method("GET"))
        .and(path("/MedicationRequest/forgotten/_history"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&ehr)
        .await;
    let dir = temp_dir("export-delta");
    let out = dir.join("export").display().to_string();
    let output = run(
        &ehr.uri(),
        &["--since", "2026-12-01T00:00:00Z", "--out", &out],
        &bearer(),
    );
    succeeded(&output);
    let log = stderr(&output);
    assert!(
        log.contains("since 2026-12-01T00:00:00Z: 2 patients changed"),
        "{log}"
    );
    assert!(
        log.contains("1 deleted resources named no patient the EHR still knows"),
        "{log}"
    );
    let kick_off = requests_to(&ehr, "/$export").await;
    assert_eq!(
        kick_off[0]
            .url
            .query_pairs()
            .find(|(k, _)| k == "_since")
            .map(|(_, v)| v.into_owned()),
        Some("2026-12-01T00:00:00Z".to_string())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Helios's filtered export jobs time out on PostgreSQL with real-shaped data (the
/// Synthea sample): under `type_filter = auto` a filtered job that fails is asked
/// again for the types whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_job_the_ehr_fails_is_asked_again_whole() {
    let ehr = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/$export"))
        .and(query_param_is_missing("_typeFilter"))
        .respond_with(
            ResponseTemplate::new(202)
                .insert_header("Content-Location", format!("{}/status/2", ehr.uri())),
        )
        .with_priority(1)
        .expect(1)
        .mount(&ehr)
        .await;
    Mock::given(method("GET"))
        .and(path("/$export"))
        .respond_with(
            ResponseTemplate::new(202)
                .insert_header("Content-Location", format!("{}/status/1", ehr.uri())),
        )
        .with_priority(2)
        .expect(1)
        .mount(&ehr)
        .await;
    Mock::given(method("GET"))
        .and(path("/status/1"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": "processing", "diagnostics": "postgres operation timed out"}]})))
        .mount(&ehr)
        .await;
    let files = [("Patient", format!("{}/files/patient.ndjson", ehr.uri()))];
    Mock::given(method("GET"))
        .and(path("/status/2"))
        .respond_with(ResponseTemplate::new(200).set_body_json(manifest(&files, &[], false)))
        .mount(&ehr)
        .await;
    file(&ehr, "/files/patient.ndjson", patient_line()).await;
    let dir = temp_dir("export-fallback");
    let out = dir.join("export");
    let output = run(
        &ehr.uri(),
        &["--out", &out.display().to_string()],
        &bearer(),
    );
    succeeded(&output);
    assert!(
        stderr(&output).contains("the EHR's filtered export job failed; exporting the types whole"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        std::fs::read_to_string(out.join("output/0000.Patient.ndjson")).expect("file"),
        patient_line()
    );
    ehr.verify().await;
    // `never`: the failure is the answer.
    let never = MockServer::start().await;
    kick_off(&never).await;
    Mock::given(method("GET"))
        .and(path("/status/1"))
        .respond_with(ResponseTemplate::new(500))
        .mount(&never)
        .await;
    let refused = run(
        &never.uri(),
        &["--out", &out.display().to_string(), "--restart"],
        &[bearer()[0], ("TRD_EXPORT_TYPE_FILTER", "never")],
    );
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("the export failed on the EHR"));
    let _ = std::fs::remove_dir_all(&dir);
}
