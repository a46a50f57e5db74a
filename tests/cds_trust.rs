//! CDS Hooks discovery, CORS and every JWT trust rule, against the real process.

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

async fn get_discovery(setup: &Setup, token: Option<&str>) -> u16 {
    let mut request = reqwest::Client::new().get(setup.url("/cds-services"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("discovery").status().as_u16()
}

#[tokio::test]
async fn discovery_cors_and_every_trust_rule() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let keys = MockServer::start().await;
    let jwks = |file: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(data(file)).expect("jwks")).expect("json")
    };
    let serve_keys = |file: &'static str| {
        Mock::given(method("GET"))
            .and(path("/jwks"))
            .respond_with(ResponseTemplate::new(200).set_body_json(jwks(file)))
    };
    serve_keys("jwks-a.json").mount(&keys).await;
    Mock::given(method("GET"))
        .and(path("/jku"))
        .respond_with(ResponseTemplate::new(200).set_body_json(jwks("jwks-a.json")))
        .mount(&keys)
        .await;
    let extra = format!(
        r#"
[[cds.clients]]
iss = "https://rotating.test"
jwks_url = "{base}/jwks"

[[cds.clients]]
iss = "https://jku.test"
jku = ["{base}/jku"]
"#,
        base = keys.uri()
    );
    let setup = Setup::start("cds-trust", &extra, &[("TRD_CDS_JWKS_REFETCH_SECS", "3")]).await;
    let aud = setup.url("/cds-services");
    let valid = |iss: &str| jwt("es384-a", "key-a", &claims(iss, &aud), None);

    // Discovery: three services (order-select and order-sign share one id), each
    // with the prefetch templates.
    let response = reqwest::Client::new()
        .get(&aud)
        .bearer_auth(valid(EHR))
        .send()
        .await
        .expect("discovery");
    assert_eq!(response.status(), 200);
    let discovery: Value = response.json().await.expect("json");
    let services = discovery["services"].as_array().expect("services");
    let hooks: Vec<(&str, &str)> = services
        .iter()
        .map(|s| {
            (
                s["hook"].as_str().expect("hook"),
                s["id"].as_str().expect("id"),
            )
        })
        .collect();
    assert_eq!(
        hooks,
        [
            ("patient-view", "trd-patient-view"),
            ("order-select", "trd-prescribing"),
            ("order-sign", "trd-prescribing")
        ]
    );
    for service in services {
        assert!(service["title"].is_string() && service["description"].is_string());
        let keys: Vec<&String> = service["prefetch"]
            .as_object()
            .expect("prefetch")
            .keys()
            .collect();
        // One key per type the gather reads (src/resource_types.rs).
        assert_eq!(
            keys.len(),
            trd_sentinel::resource_types::READ_TYPES.len(),
            "{keys:?}"
        );
        assert_eq!(
            service["prefetch"]["questionnaireResponses"],
            "QuestionnaireResponse?patient={{context.patientId}}"
        );
        assert_eq!(
            service["prefetch"]["patient"],
            "Patient/{{context.patientId}}"
        );
        assert!(service["prefetch"]["observations"]
            .as_str()
            .expect("template")
            .contains("http://loinc.org|44261-6"));
    }

    // Every rule, each refused with a bare 401.
    let now = now();
    let mut refused: Vec<(&str, String)> = vec![
        ("algorithm none", unsigned_jwt(&claims(EHR, &aud))),
        ("HS256", hmac_jwt(&claims(EHR, &aud))),
        ("unknown issuer", valid("https://stranger.test")),
        (
            "wrong audience",
            jwt(
                "es384-a",
                "key-a",
                &claims(EHR, "https://other.example.org/cds-services"),
                None,
            ),
        ),
        (
            "expired",
            jwt(
                "es384-a",
                "key-a",
                &json!({ "iss": EHR, "aud": aud, "iat": now - 3900, "exp": now - 3600, "jti": uuid_like() }),
                None,
            ),
        ),
        (
            "issued in the future",
            jwt(
                "es384-a",
                "key-a",
                &json!({ "iss": EHR, "aud": aud, "iat": now + 600, "exp": now + 900, "jti": uuid_like() }),
                None,
            ),
        ),
        (
            "lives too long",
            jwt(
                "es384-a",
                "key-a",
                &json!({ "iss": EHR, "aud": aud, "iat": now, "exp": now + 7200, "jti": uuid_like() }),
                None,
            ),
        ),
        (
            "no jti",
            jwt(
                "es384-a",
                "key-a",
                &json!({ "iss": EHR, "aud": aud, "iat": now, "exp": now + 300 }),
                None,
            ),
        ),
        (
            "unknown kid",
            jwt("es384-b", "key-b", &claims(EHR, &aud), None),
        ),
        (
            "signed by another key",
            jwt("es384-b", "key-a", &claims(EHR, &aud), None),
        ),
        (
            "jku not allow-listed",
            jwt(
                "es384-a",
                "key-a",
                &claims(EHR, &aud),
                Some("https://attacker.example.org/jwks"),
            ),
        ),
        ("tenant missing", valid("https://tenant.test")),
    ];
    let replayed = valid(EHR);
    assert_eq!(get_discovery(&setup, Some(&replayed)).await, 200);
    refused.push(("replayed jti", replayed));
    assert_eq!(get_discovery(&setup, None).await, 401, "no token");
    for (rule, token) in &refused {
        let response = reqwest::Client::new()
            .get(&aud)
            .bearer_auth(token)
            .send()
            .await
            .expect("call");
        assert_eq!(response.status(), 401, "{rule}");
        assert!(
            response.text().await.expect("body").is_empty(),
            "{rule}: no detail"
        );
    }

    // Accepted: RS384; the hand-set audience; the tenant; a jku on the allow-list.
    let mut tenant = claims("https://tenant.test", &aud);
    tenant["tenant"] = json!("hospital-a");
    for (what, token) in [
        ("RS384", jwt("rs384", "key-rsa", &claims(EHR, &aud), None)),
        (
            "hand-set audience",
            jwt(
                "es384-a",
                "key-a",
                &claims(EHR, "https://hand-set.example.org/cds"),
                None,
            ),
        ),
        ("tenant", jwt("es384-a", "key-a", &tenant, None)),
        (
            "allow-listed jku",
            jwt(
                "es384-a",
                "key-a",
                &claims("https://jku.test", &aud),
                Some(&format!("{}/jku", keys.uri())),
            ),
        ),
        ("jwks url", valid("https://rotating.test")),
    ] {
        assert_eq!(get_discovery(&setup, Some(&token)).await, 200, "{what}");
    }

    // Rotation: the client starts signing with key-b. An unknown kid fetches the
    // JWKS again, but not more often than every jwks_refetch_secs.
    keys.reset().await;
    serve_keys("jwks-ab.json").mount(&keys).await;
    let rotated = || {
        jwt(
            "es384-b",
            "key-b",
            &claims("https://rotating.test", &aud),
            None,
        )
    };
    assert_eq!(
        get_discovery(&setup, Some(&rotated())).await,
        401,
        "fetched less than 3 s ago"
    );
    tokio::time::sleep(std::time::Duration::from_millis(3200)).await;
    assert_eq!(
        get_discovery(&setup, Some(&rotated())).await,
        200,
        "fetched again, key-b found"
    );

    // The service and feedback routes check the token as well.
    for path in [
        "/cds-services/trd-patient-view",
        "/cds-services/trd-patient-view/feedback",
    ] {
        let status = reqwest::Client::new()
            .post(setup.url(path))
            .json(&json!({}))
            .send()
            .await
            .expect("post")
            .status();
        assert_eq!(status, 401, "{path}");
    }

    // CORS: the preflight, and the headers on an error answer too.
    let preflight = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            setup.url("/cds-services/trd-prescribing"),
        )
        .header("Origin", "https://sandbox.cds-hooks.org")
        .header("Access-Control-Request-Method", "POST")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type",
        )
        .send()
        .await
        .expect("preflight");
    assert_eq!(preflight.status(), 200);
    let allowed = |r: &reqwest::Response, h: &str| {
        r.headers()
            .get(h)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_lowercase()
    };
    assert!(!allowed(&preflight, "access-control-allow-origin").is_empty());
    assert!(allowed(&preflight, "access-control-allow-headers").contains("authorization"));
    assert!(allowed(&preflight, "access-control-allow-methods").contains("post"));
    let error = reqwest::Client::new()
        .get(&aud)
        .header("Origin", "https://sandbox.cds-hooks.org")
        .send()
        .await
        .expect("401");
    assert_eq!(error.status(), 401);
    assert!(
        !allowed(&error, "access-control-allow-origin").is_empty(),
        "CORS on errors"
    );

    // No JWT in the log.
    let log = std::fs::read_to_string(&setup.service.log).expect("log");
    for (rule, token) in &refused {
        let signature = token.rsplit('.').next().unwrap_or("");
        assert!(
            signature.is_empty() || !log.contains(signature),
            "{rule}: token logged"
        );
        assert!(!log.contains(token.as_str()), "{rule}: token logged");
    }
    assert!(setup.service.metric("trd_cds_requests_total").await >= 20.0);
}
