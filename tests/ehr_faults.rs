//! Fault injection with a stub server (wiremock): retries, timeouts, token refresh,
//! identity-provider outages, refused conditional updates, malformed and oversized
//! answers, paging loops and links to other hosts each end in the expected behaviour
//! with a clear error that quotes nothing of the record.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use trd_sentinel::config::{FhirSettings, JwtAlgorithm};
use trd_sentinel::fhir::client::{Auth, SmartBackend};
use trd_sentinel::fhir::client::{FhirClient, FhirError, Idempotency};
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

fn settings() -> FhirSettings {
    FhirSettings {
        max_retries: 3,
        retry_base_ms: 5,
        request_timeout_secs: 2,
        ..FhirSettings::default()
    }
}

fn client(server: &MockServer) -> FhirClient {
    FhirClient::new(&server.uri(), &settings(), Auth::None).expect("client")
}

fn bundle(entries: serde_json::Value) -> serde_json::Value {
    json!({ "resourceType": "Bundle", "type": "searchset", "entry": entries })
}

/// Answers from a list, one per call, repeating the last.
struct Sequence(Vec<ResponseTemplate>, std::sync::atomic::AtomicUsize);

impl Respond for Sequence {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let n = self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.0[n.min(self.0.len() - 1)].clone()
    }
}

fn sequence(answers: Vec<ResponseTemplate>) -> Sequence {
    Sequence(answers, Default::default())
}

#[tokio::test]
async fn server_errors_on_reads_are_retried_until_success() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/Condition"))
        .respond_with(sequence(vec![
            ResponseTemplate::new(500),
            ResponseTemplate::new(503),
            ResponseTemplate::new(200).set_body_json(bundle(json!([]))),
        ]))
        .expect(3)
        .mount(&server)
        .await;
    let pages = client(&server)
        .search("Condition", &[("patient", "Patient/1".into())])
        .await
        .expect("third try works");
    assert_eq!(pages.len(), 1);
}

#[tokio::test]
async fn persistent_errors_name_the_outcome_codes_never_its_text() {
    let server = MockServer::start().await;
    // Diagnostics can quote the record: they must not reach the error (logs, dead letters).
    let outcome = json!({ "resourceType": "OperationOutcome", "issue": [{ "severity": "error", "code": "exception", "diagnostics": "Patient Jane Doe born 1980-02-29: database is locked" }] });
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503).set_body_json(outcome))
        .expect(4)
        .mount(&server)
        .await;
    let error = client(&server)
        .search("Condition", &[])
        .await
        .expect_err("gives up");
    let text = error.to_string();
    assert!(
        text.ends_with("HTTP 503: Service Unavailable (OperationOutcome: exception)"),
        "{text}"
    );
    for phi in ["Jane", "1980-02-29", "locked"] {
        assert!(!text.contains(phi), "{text}");
    }
    assert!(
        error.is_transient(),
        "the work item should be retried later"
    );
}

#[tokio::test]
async fn non_idempotent_requests_are_never_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .expect(1)
        .mount(&server)
        .await;
    let body = json!({ "resourceType": "Basic" });
    let error = client(&server)
        .send(Method::POST, "Basic", Some(&body), Idempotency::Once)
        .await
        .expect_err("503");
    assert!(
        matches!(error, FhirError::Status { status: 503, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn a_slow_server_times_out_with_a_clear_error() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(bundle(json!([])))
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    let fast = FhirSettings {
        request_timeout_secs: 1,
        max_retries: 1,
        retry_base_ms: 5,
        ..FhirSettings::default()
    };
    let client = FhirClient::new(&server.uri(), &fast, Auth::None).expect("client");
    let error = client.search("Condition", &[]).await.expect_err("timeout");
    assert!(
        matches!(error, FhirError::Timeout { secs: 1, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("no answer within 1 s"));
}

#[tokio::test]
async fn a_refused_conditional_update_is_not_resent_but_the_work_item_is_retried() {
    let server = MockServer::start().await;
    let outcome = json!({ "resourceType": "OperationOutcome", "issue": [{ "severity": "error", "code": "conflict", "details": { "text": "multiple matches for identifier" } }] });
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(412).set_body_json(outcome))
        .expect(1)
        .mount(&server)
        .await;
    let tx = json!({ "resourceType": "Bundle", "type": "transaction", "entry": [] });
    let error = client(&server)
        .transaction(&tx, Idempotency::Idempotent)
        .await
        .expect_err("412");
    let text = error.to_string();
    assert!(
        text.ends_with("HTTP 412: Precondition Failed (OperationOutcome: conflict)"),
        "{text}"
    );
    // Not sent again at once (expect(1)), but the work item is retried: the next
    // attempt reads the duplicates and repairs them.
    assert!(!error.is_retryable_now());
    assert!(error.is_transient());
    assert_eq!(error.kind(), "conflict");
}

#[tokio::test]
async fn malformed_json_is_an_error_not_a_crash() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{\"resourceType\": \"Bundle\", "))
        .mount(&server)
        .await;
    let error = client(&server)
        .search("Condition", &[])
        .await
        .expect_err("malformed");
    assert!(matches!(error, FhirError::Malformed { .. }), "{error}");
}

#[tokio::test]
async fn a_next_link_that_loops_is_stopped() {
    let server = MockServer::start().await;
    let looping = json!({ "resourceType": "Bundle", "type": "searchset",
        "link": [{ "relation": "next", "url": format!("{}/Condition?page=2", server.uri()) }], "entry": [] });
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(looping))
        .mount(&server)
        .await;
    let error = client(&server)
        .search("Condition", &[])
        .await
        .expect_err("loop");
    assert!(matches!(error, FhirError::PagingLoop { .. }), "{error}");
    assert!(error.to_string().contains("page=2"));
}

#[tokio::test]
async fn paging_follows_next_links() {
    let server = MockServer::start().await;
    let page1 = json!({ "resourceType": "Bundle", "type": "searchset",
        "link": [{ "relation": "next", "url": format!("{}/Condition?page=2", server.uri()) }], "entry": [{ "resource": { "resourceType": "Condition", "id": "a" } }] });
    let page2 = bundle(json!([{ "resource": { "resourceType": "Condition", "id": "b" } }]));
    Mock::given(method("GET"))
        .respond_with(sequence(vec![
            ResponseTemplate::new(200).set_body_json(page1),
            ResponseTemplate::new(200).set_body_json(page2),
        ]))
        .expect(2)
        .mount(&server)
        .await;
    let pages = client(&server)
        .search("Condition", &[])
        .await
        .expect("two pages");
    assert_eq!(pages.len(), 2);
}

#[tokio::test]
async fn the_configured_media_type_is_sent() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(header("accept", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(bundle(json!([]))))
        .expect(1)
        .mount(&server)
        .await;
    let custom = FhirSettings {
        media_type: "application/json".into(),
        ..settings()
    };
    FhirClient::new(&server.uri(), &custom, Auth::None)
        .expect("client")
        .search("Condition", &[])
        .await
        .expect("ok");
}

#[tokio::test]
async fn missing_capabilities_are_named() {
    let server = MockServer::start().await;
    let statement = json!({ "resourceType": "CapabilityStatement", "rest": [{ "mode": "server",
        "interaction": [{ "code": "batch" }],
        "resource": [{ "type": "Flag", "interaction": [{ "code": "read" }, { "code": "search-type" }] }] }] });
    Mock::given(method("GET"))
        .and(path("/metadata"))
        .respond_with(ResponseTemplate::new(200).set_body_json(statement))
        .mount(&server)
        .await;
    let error = client(&server)
        .check_capabilities(&[
            ("*", "transaction"),
            ("Flag", "update"),
            ("Flag", "search-type"),
        ])
        .await
        .expect_err("missing");
    assert_eq!(
        error.to_string(),
        "the EHR does not support what the configuration needs: transaction on *, update on Flag"
    );
}

fn smart_client(server: &MockServer) -> FhirClient {
    let key = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/test-smart-es384.pem"
    ))
    .expect("test key");
    let smart = SmartBackend::new(
        "trd-test".into(),
        &key,
        JwtAlgorithm::ES384,
        Some("k1".into()),
        "system/*.read".into(),
        None,
    )
    .expect("smart");
    FhirClient::new(&server.uri(), &settings(), Auth::Smart(Box::new(smart))).expect("client")
}

async fn mount_smart(server: &MockServer, tokens: Vec<&str>) {
    let config = json!({ "token_endpoint": format!("{}/auth/token", server.uri()) });
    Mock::given(method("GET"))
        .and(path("/.well-known/smart-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(config))
        .mount(server)
        .await;
    let answers = tokens
        .iter()
        .map(|t| {
            ResponseTemplate::new(200).set_body_json(
                json!({ "access_token": t, "expires_in": 300, "token_type": "bearer" }),
            )
        })
        .collect();
    Mock::given(method("POST"))
        .and(path("/auth/token"))
        .respond_with(sequence(answers))
        .expect(tokens.len() as u64)
        .mount(server)
        .await;
}

#[tokio::test]
async fn smart_tokens_are_cached_and_refreshed_once_after_a_401() {
    let server = MockServer::start().await;
    mount_smart(&server, vec!["first", "second"]).await;
    Mock::given(method("GET"))
        .and(path("/Condition"))
        .and(header("authorization", "Bearer first"))
        .respond_with(ResponseTemplate::new(401))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/Condition"))
        .and(header("authorization", "Bearer second"))
        .respond_with(ResponseTemplate::new(200).set_body_json(bundle(json!([]))))
        .expect(2)
        .mount(&server)
        .await;
    let client = smart_client(&server);
    client
        .search("Condition", &[])
        .await
        .expect("works after one refresh");
    client
        .search("Condition", &[])
        .await
        .expect("cached token reused");
}

#[tokio::test]
async fn a_second_401_is_a_clear_error() {
    let server = MockServer::start().await;
    mount_smart(&server, vec!["first", "second"]).await;
    Mock::given(method("GET"))
        .and(path("/Condition"))
        .respond_with(ResponseTemplate::new(401))
        .expect(2)
        .mount(&server)
        .await;
    let error = smart_client(&server)
        .search("Condition", &[])
        .await
        .expect_err("401 twice");
    assert!(matches!(error, FhirError::Unauthorized { .. }), "{error}");
    assert!(error
        .to_string()
        .contains("401 Unauthorized even with a fresh token"));
    // Credentials rotated on the EHR's side come back: retried later, not dead-lettered.
    assert!(error.is_transient());
    assert_eq!(error.kind(), "unauthorized");
}

#[tokio::test]
async fn the_smart_assertion_is_a_signed_jwt_for_the_token_endpoint() {
    let server = MockServer::start().await;
    mount_smart(&server, vec!["t"]).await;
    Mock::given(method("GET"))
        .and(path("/Condition"))
        .respond_with(ResponseTemplate::new(200).set_body_json(bundle(json!([]))))
        .mount(&server)
        .await;
    smart_client(&server)
        .search("Condition", &[])
        .await
        .expect("ok");
    let requests = server.received_requests().await.expect("recorded");
    let token_call = requests
        .iter()
        .find(|r| r.url.path() == "/auth/token")
        .expect("token call");
    let form = String::from_utf8_lossy(&token_call.body).to_string();
    assert!(form.contains("grant_type=client_credentials"), "{form}");
    assert!(form.contains("client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"), "{form}");
    let jwt = form
        .split("client_assertion=")
        .nth(1)
        .and_then(|s| s.split('&').next())
        .expect("assertion");
    let header = jsonwebtoken::decode_header(jwt).expect("a JWT");
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES384);
    assert_eq!(header.kid.as_deref(), Some("k1"));
}

#[tokio::test]
async fn an_identity_provider_outage_is_transient() {
    let server = MockServer::start().await;
    let config = json!({ "token_endpoint": format!("{}/auth/token", server.uri()) });
    Mock::given(method("GET"))
        .and(path("/.well-known/smart-configuration"))
        .respond_with(ResponseTemplate::new(200).set_body_json(config))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/auth/token"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let error = smart_client(&server)
        .search("Condition", &[])
        .await
        .expect_err("no token");
    assert!(matches!(error, FhirError::IdentityProvider(_)), "{error}");
    assert!(error.is_transient());
    assert_eq!(error.kind(), "identity-provider");
    let requests = server.received_requests().await.expect("recorded");
    assert!(
        requests.iter().all(|r| r.url.path() != "/Condition"),
        "nothing is sent to the EHR without a token"
    );
}

/// A `next` link to another host would carry the EHR's token there: refused before
/// anything is sent.
#[tokio::test]
async fn a_next_link_to_another_origin_is_refused_and_gets_no_token() {
    let server = MockServer::start().await;
    let elsewhere = MockServer::start().await;
    let page1 = json!({ "resourceType": "Bundle", "type": "searchset",
        "link": [{ "relation": "next", "url": format!("{}/Condition?page=2", elsewhere.uri()) }], "entry": [] });
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(page1))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(bundle(json!([]))))
        .expect(0)
        .mount(&elsewhere)
        .await;
    let client = FhirClient::new(
        &server.uri(),
        &settings(),
        Auth::Bearer(trd_sentinel::config::Secret::new("ehr-token")),
    )
    .expect("client");
    let error = client
        .search("Condition", &[])
        .await
        .expect_err("foreign origin");
    assert!(matches!(error, FhirError::ForeignOrigin { .. }), "{error}");
    assert!(!error.is_transient());
    assert!(error.to_string().contains(&elsewhere.uri()), "{error}");
    let error = client
        .send(
            Method::GET,
            &format!("{}/Patient/1", elsewhere.uri()),
            None,
            Idempotency::Idempotent,
        )
        .await
        .expect_err("an absolute reference elsewhere");
    assert!(matches!(error, FhirError::ForeignOrigin { .. }), "{error}");
}

#[tokio::test]
async fn an_oversized_answer_is_an_error_not_a_memory_spike() {
    let server = MockServer::start().await;
    let huge = format!(
        "{{\"resourceType\": \"Bundle\", \"type\": \"searchset\", \"entry\": [], \"pad\": \"{}\"}}",
        "x".repeat(200_000)
    );
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string(huge))
        .mount(&server)
        .await;
    let small = FhirSettings {
        max_response_bytes: 100_000,
        ..settings()
    };
    let error = FhirClient::new(&server.uri(), &small, Auth::None)
        .expect("client")
        .search("Condition", &[])
        .await
        .expect_err("too large");
    assert!(
        matches!(error, FhirError::TooLarge { limit: 100_000, .. }),
        "{error}"
    );
}
