//! CDS Hooks: the specification's own examples (JWT, requests, feedback) and the
//! deadline, against the real process.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/cds.rs"]
mod cds;
#[path = "support/cds_service.rs"]
mod cds_service;
#[path = "support/hfs.rs"]
mod hfs;
#[path = "support/service.rs"]
mod service;

use serde_json::{json, Value};

use cds::*;
use cds_service::*;

fn spec(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(data(&format!("spec/{name}"))).expect("example"))
        .expect("json")
}

#[tokio::test]
async fn the_specifications_examples_are_accepted_and_feedback_is_counted_once() {
    let setup = Setup::start("cds-spec", "", &[]).await;

    // The spec's patient-view request (its fhirServer is an example host: pointed at
    // the allow-listed server here, which knows nothing of patient 1288992).
    let mut request = spec("spec-patient-view-request.json");
    request["fhirServer"] = json!(setup.recorder.base);
    assert_eq!(
        setup.call("trd-patient-view", &request).await,
        (200, json!({ "cards": [] }))
    );
    let token = request["fhirAuthorization"]["access_token"]
        .as_str()
        .expect("token");
    assert!(setup
        .recorder
        .requests()
        .iter()
        .all(|(_, auth)| auth.as_deref() == Some(&*format!("Bearer {token}"))));

    // The library's R4 order-select and order-sign contexts (a NutritionOrder and a
    // MedicationRequest that is not an antidepressant; dosages as published).
    for (hook, file) in [
        ("order-select", "library-order-select.json"),
        ("order-sign", "library-order-sign.json"),
    ] {
        let mut body = spec(file);
        body["hook"] = json!(hook);
        body["hookInstance"] = json!(uuid_like());
        body["fhirServer"] = json!(setup.recorder.base);
        let (status, answer) = setup.call("trd-prescribing", &body).await;
        assert_eq!((status, &answer), (200, &json!({ "cards": [] })), "{hook}");
    }
    // Lenient reading, strict answers: a bad body is a 400 OperationOutcome, a hook
    // the service does not answer too, an unknown service 404.
    let (status, outcome) = setup
        .call("trd-patient-view", &json!({ "hook": "patient-view" }))
        .await;
    assert_eq!(
        (status, outcome["resourceType"].as_str()),
        (400, Some("OperationOutcome"))
    );
    let (status, _) = setup
        .call(
            "trd-patient-view",
            &hook_request("order-sign", "Patient/1", None, None, None, &[]),
        )
        .await;
    assert_eq!(status, 400);
    let (status, _) = setup
        .call(
            "no-such-service",
            &hook_request("patient-view", "Patient/1", None, None, None, &[]),
        )
        .await;
    assert_eq!(status, 404);

    // Feedback: the spec's examples; a repeat is tolerated and not counted twice.
    let feedback = |body: Value| {
        let url = setup.url("/cds-services/trd-prescribing/feedback");
        let token = jwt("es384-a", "key-a", &claims(EHR, &url), None);
        async move {
            reqwest::Client::new()
                .post(&url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("feedback")
                .status()
                .as_u16()
        }
    };
    let accepted = spec("spec-feedback-accepted.json");
    assert_eq!(feedback(accepted.clone()).await, 200);
    assert_eq!(feedback(accepted).await, 200, "a repeat is fine");
    assert_eq!(
        feedback(spec("spec-feedback-overridden-with-reason.json")).await,
        200
    );
    let ours = json!({ "feedback": [{ "card": uuid_like(), "outcome": "overridden", "outcomeTimestamp": "2026-01-01T00:00:00Z",
        "overrideReason": { "reason": { "system": "https://fhir.trd-sentinel.org/CodeSystem/trd-cds-override", "code": "patient-preference" } } }] });
    assert_eq!(feedback(ours).await, 200);
    assert_eq!(
        feedback(json!({ "feedback": [{ "outcome": "accepted" }] })).await,
        400
    );
    let metrics = setup.service.metrics().await;
    let count = |labels: &str| {
        service::metric_sum(&metrics, &format!("trd_cds_feedback_total{{{labels}}}"))
    };
    assert_eq!(
        count(r#"outcome="accepted",reason="-",service="trd-prescribing""#),
        1.0,
        "{metrics}"
    );
    assert_eq!(
        count(r#"outcome="overridden",reason="other",service="trd-prescribing""#),
        1.0
    );
    assert_eq!(
        count(r#"outcome="overridden",reason="patient-preference",service="trd-prescribing""#),
        1.0
    );
}

#[tokio::test]
async fn a_call_past_the_deadline_answers_no_cards() {
    // A FHIR server that accepts connections and never answers.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_url = format!("http://{}", silent.local_addr().expect("addr"));
    let extra = format!(
        r#"
[[cds.clients]]
iss = "https://slow.test"
jwks_file = "{}"
fhir_servers = ["{silent_url}"]
"#,
        data("jwks-a.json").display()
    );
    let setup = Setup::start("cds-deadline", &extra, &[("TRD_CDS_DEADLINE_MS", "300")]).await;
    let url = setup.url("/cds-services/trd-patient-view");
    let token = jwt("es384-a", "key-a", &claims("https://slow.test", &url), None);
    let body = hook_request(
        "patient-view",
        "Patient/1",
        Some(&silent_url),
        None,
        None,
        &[],
    );
    let started = std::time::Instant::now();
    let response = reqwest::Client::new()
        .post(&url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("call");
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.expect("json"),
        json!({ "cards": [] })
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    let log = std::fs::read_to_string(&setup.service.log).expect("log");
    let instance = body["hookInstance"].as_str().expect("instance");
    assert!(
        log.contains("CDS deadline passed") && log.contains(instance),
        "{log}"
    );
    drop(silent);
}
