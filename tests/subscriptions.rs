//! The EHR's Subscriptions end to end, against Helios: `serve` ensures them in the
//! default mode and a change on the EHR reaches it; `subscriptions ensure` fails loudly
//! when the EHR never activates them.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/e2e.rs"]
mod e2e;
#[path = "support/hfs.rs"]
mod hfs;
#[path = "support/service.rs"]
mod service;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use e2e::*;
use hfs::{free_port, Hfs};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_medication_order_reaches_the_service_through_a_real_subscription() {
    let _serial = SERIAL.lock().await;
    let server = Hfs::start();
    load(&server, &["trd-two-ssris"]).await;
    let name = format!("e2e{}-sub", std::process::id());
    let port = free_port();
    let mut service = start(
        &name,
        &server.base,
        &[
            ("TRD_HTTP_ADDR", &format!("127.0.0.1:{port}")),
            (
                "TRD_HTTP_PUBLIC_BASE_URL",
                &format!("http://127.0.0.1:{port}"),
            ),
            // The default mode (auto): Helios does not advertise Backport topics,
            // so auto must find out by trying.
            ("TRD_SUBSCRIPTIONS_ENSURE_ON_START", "true"),
        ],
    );
    assert!(flags(&server.base, "Patient/trd-two-ssris")
        .await
        .is_empty());
    // serve listens before it ensures, and ensures until the EHR has activated the
    // Subscription (handshake): then exactly one, active, on the Backport topic.
    let subscriptions = wait_for_active_subscription(&server.base).await;
    assert_eq!(
        subscriptions
            .iter()
            .map(|s| (s["criteria"].as_str(), s["status"].as_str()))
            .collect::<Vec<_>>(),
        vec![(
            Some(trd_sentinel::intake::subscriptions::TOPIC_URL),
            Some("active")
        )],
        "auto chose the Backport topic and the EHR activated it"
    );
    // The EHR records a new order: the subscription notifies, the service assesses.
    let order = json!({ "resourceType": "MedicationRequest", "id": "new-order", "status": "active", "intent": "order",
        "subject": { "reference": "Patient/trd-two-ssris" }, "authoredOn": "2024-10-01",
        "medicationCodeableConcept": { "coding": [{ "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "312938" }] } });
    let response = reqwest::Client::new()
        .put(format!("{}/MedicationRequest/new-order", server.base))
        .header("Content-Type", "application/fhir+json")
        .json(&order)
        .send()
        .await
        .expect("put");
    assert!(response.status().is_success());
    wait_for(
        "the Flag from the subscription",
        Duration::from_secs(60),
        || async { flags(&server.base, "Patient/trd-two-ssris").await.len() == 1 },
    )
    .await;
    // Our own writes notified too, and were ignored: still exactly one Flag, no loop.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(flags(&server.base, "Patient/trd-two-ssris").await.len(), 1);

    // A blood pressure leads to no assessment (the topic's criterion narrows
    // Observations to the engine's codes; Helios 0.2.7 does not evaluate it, so here
    // the id-only read finds it irrelevant); a PHQ-9 leads to one.
    let assessed = || service.metric("trd_assessments_total");
    let observation = |id: &str, code: &str, value: f64| {
        json!({ "resourceType": "Observation", "id": id, "status": "final",
            "subject": { "reference": "Patient/trd-two-ssris" }, "effectiveDateTime": "2024-10-10",
            "code": { "coding": [{ "system": "http://loinc.org", "code": code }] },
            "valueQuantity": { "value": value } })
    };
    let put = |resource: Value| {
        let base = server.base.clone();
        async move {
            let id = resource["id"].as_str().unwrap_or_default().to_string();
            let response = reqwest::Client::new()
                .put(format!("{base}/Observation/{id}"))
                .header("Content-Type", "application/fhir+json")
                .json(&resource)
                .send()
                .await
                .expect("put");
            assert!(response.status().is_success(), "{}", response.status());
        }
    };
    let before = assessed().await;
    put(observation("vitals-bp", "8480-6", 150.0)).await;
    wait_for(
        "the blood pressure found irrelevant",
        Duration::from_secs(30),
        || async { service.metric("trd_irrelevant_changes_total").await >= 1.0 },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(assessed().await, before, "a blood pressure is not assessed");
    put(observation("new-phq9", "44261-6", 21.0)).await;
    wait_for("the PHQ-9 assessed", Duration::from_secs(30), || async {
        assessed().await > before
    })
    .await;
    assert!(service.terminate().success(), "graceful exit on SIGTERM");
    let log = std::fs::read_to_string(&service.log).expect("log");
    assert!(
        log.contains("shutting down") && log.contains("\"stopped\""),
        "{log}"
    );
}

/// The Subscriptions on the server once one is active (the service ensures them
/// after it starts listening).
async fn wait_for_active_subscription(base: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let bundle: Value = reqwest::get(format!("{base}/Subscription"))
            .await
            .expect("search")
            .json()
            .await
            .expect("json");
        let subscriptions: Vec<Value> = bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| e["resource"].clone())
            .collect();
        if subscriptions.iter().any(|s| s["status"] == "active") || Instant::now() > deadline {
            return subscriptions;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `subscriptions ensure` against an EHR whose handshake cannot reach the service
/// (nothing listens at the public URL): it fails, naming the cause and the fixes,
/// instead of reporting "created"; `status` shows each Subscription's state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_fails_loudly_when_the_subscription_never_works() {
    let _serial = SERIAL.lock().await;
    let server = Hfs::start();
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let run = |action: &str| {
        Command::new(env!("CARGO_BIN_EXE_trd-sentinel"))
            .args(["subscriptions", action])
            .env("TRD_FHIR_BASE_URL", &server.base)
            .env("TRD_HTTP_PUBLIC_BASE_URL", &nobody)
            .env("TRD_NOTIFY_TOKEN", service::TOKEN)
            .env("TRD_SUBSCRIPTIONS_ACTIVATION_TIMEOUT_SECS", "8")
            .env("TRD_FHIR_MAX_CONCURRENCY", "1")
            .output()
            .expect("runs")
    };
    let ensure = run("ensure");
    let stderr = String::from_utf8_lossy(&ensure.stderr);
    let stdout = String::from_utf8_lossy(&ensure.stdout);
    assert!(
        !ensure.status.success(),
        "ensure must fail: {stdout}{stderr}"
    );
    for expected in [
        "not active",
        "Subscription/",
        "/notify is reachable from the EHR",
        "subscriptions.token_in_url",
        "subscriptions.mode",
    ] {
        assert!(stderr.contains(expected), "names `{expected}`: {stderr}");
    }
    assert!(
        !stderr.contains(service::TOKEN),
        "no token in the message: {stderr}"
    );
    let status = run("status");
    let listed = String::from_utf8_lossy(&status.stdout);
    assert!(status.status.success(), "{listed}");
    // `Subscription/{id}  {status}  {criteria}  {channel}  error: {error}`: none active.
    let statuses: Vec<&str> = listed
        .lines()
        .map(|l| l.split_whitespace().nth(1).unwrap_or(""))
        .collect();
    assert!(
        !statuses.is_empty()
            && listed
                .lines()
                .all(|l| l.starts_with("Subscription/") && l.contains("  error: "))
            && statuses
                .iter()
                .all(|s| matches!(*s, "requested" | "error" | "off")),
        "each Subscription with its status (none active) and error: {listed}"
    );
}
