//! CDS Hooks test support: JWTs signed with the test keys (tests/data/cds), fixture
//! patients moved to today (the service assesses as of today, the fixtures are dated
//! around 2024-10-20), prefetch built from a patient's resources, hook requests, and
//! a recording pass-through in front of Helios (to see which credentials reached the
//! FHIR server).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Map, Value};
use time::macros::date;
use time::{Date, Duration};

/// The date the fixtures' expectations are written for.
pub const FIXTURE_AS_OF: Date = date!(2024 - 10 - 20);

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/cds")
        .join(name)
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Claims a well-behaved client sends to `aud`.
pub fn claims(iss: &str, aud: &str) -> Value {
    let now = now();
    json!({
        "iss": iss,
        "aud": aud,
        "iat": now,
        "exp": now + 300,
        "jti": uuid_like(),
    })
}

pub fn uuid_like() -> String {
    use rand::Rng;
    let bytes: [u8; 16] = rand::rng().random();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A JWT signed with one of the test keys (`es384-a`, `es384-b`, `rs384`).
pub fn jwt(key: &str, kid: &str, claims: &Value, jku: Option<&str>) -> String {
    let pem = std::fs::read(data(&format!("{key}.pem"))).expect("test key");
    let (alg, encoding) = if key.starts_with("rs") {
        (
            Algorithm::RS384,
            EncodingKey::from_rsa_pem(&pem).expect("rsa key"),
        )
    } else {
        (
            Algorithm::ES384,
            EncodingKey::from_ec_pem(&pem).expect("ec key"),
        )
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    header.typ = Some("JWT".into());
    header.jku = jku.map(str::to_string);
    encode(&header, claims, &encoding).expect("sign")
}

/// A JWT with `"alg": "none"` and no signature.
pub fn unsigned_jwt(claims: &Value) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.",
        b64(&json!({ "alg": "none", "typ": "JWT", "kid": "key-a" })),
        b64(claims)
    )
}

/// A JWT signed with HMAC (HS256), the algorithm a confused verifier would accept
/// with the public key as the secret.
pub fn hmac_jwt(claims: &Value) -> String {
    let secret = std::fs::read(data("jwks-a.json")).expect("jwks");
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("key-a".into());
    encode(&header, claims, &EncodingKey::from_secret(&secret)).expect("sign")
}

/// Every date in a resource tree moved by `days` (dates and dateTimes alike).
pub fn roll(value: &mut Value, days: i64) {
    match value {
        Value::String(s)
            if s.len() >= 10
                && s.as_bytes().get(4) == Some(&b'-')
                && s.as_bytes().get(7) == Some(&b'-') =>
        {
            let format = time::macros::format_description!("[year]-[month]-[day]");
            if let Ok(d) = Date::parse(&s[..10], format) {
                let moved = d + Duration::days(days);
                *s = format!("{moved}{}", &s[10..]);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| roll(v, days)),
        Value::Object(map) => map.values_mut().for_each(|v| roll(v, days)),
        _ => {}
    }
}

/// A fixture patient's Bundle, moved so its as-of date is today.
pub fn patient_today(name: &str) -> Value {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/patients")
            .join(format!("{name}.json")),
    )
    .expect("fixture");
    let mut bundle: Value = serde_json::from_str(&text).expect("json");
    let today = time::OffsetDateTime::now_utc().date();
    roll(&mut bundle, (today - FIXTURE_AS_OF).whole_days());
    // As an EHR holds it: every resource with an id, references literal.
    for (n, entry) in bundle["entry"]
        .as_array_mut()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if entry["resource"]["id"].is_null() {
            entry["resource"]["id"] = json!(format!("{name}-r{n}"));
        }
    }
    let stored = super::hfs::as_transaction(&bundle);
    json!({ "resourceType": "Bundle", "type": "collection",
        "entry": stored["entry"].as_array().into_iter().flatten()
            .map(|e| json!({ "resource": e["resource"] })).collect::<Vec<_>>() })
}

pub fn resources(bundle: &Value) -> Vec<Value> {
    bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| e["resource"].clone())
        .collect()
}

/// The prefetch an EHR honouring every template would send for this Bundle: the
/// Patient bare, each search as a searchset (Medications as `include` entries), a
/// search with no match as `null`.
pub fn full_prefetch(bundle: &Value) -> Map<String, Value> {
    let all = resources(bundle);
    let of = |kind: &str| -> Vec<Value> {
        all.iter()
            .filter(|r| r["resourceType"] == kind)
            .cloned()
            .collect()
    };
    let searchset = |matches: Vec<Value>, included: Vec<Value>| -> Value {
        if matches.is_empty() {
            return Value::Null;
        }
        let mut entries: Vec<Value> = matches
            .iter()
            .map(|r| json!({ "resource": r, "search": { "mode": "match" } }))
            .collect();
        entries.extend(
            included
                .into_iter()
                .map(|r| json!({ "resource": r, "search": { "mode": "include" } })),
        );
        json!({ "resourceType": "Bundle", "type": "searchset", "total": matches.len(), "entry": entries })
    };
    let mut prefetch = Map::new();
    prefetch.insert(
        "patient".into(),
        of("Patient").into_iter().next().unwrap_or(Value::Null),
    );
    // Every key the service's discovery offers, as its gather table lists them.
    for read in trd_sentinel::resource_types::READ_TYPES
        .iter()
        .filter(|t| t.name != "Patient")
    {
        let (key, kind) = (read.prefetch_key, read.name);
        let included = if kind.starts_with("Medication") {
            of("Medication")
        } else {
            vec![]
        };
        prefetch.insert(key.into(), searchset(of(kind), included));
    }
    prefetch
}

/// A hook call body.
pub fn hook_request(
    hook: &str,
    patient: &str,
    fhir_server: Option<&str>,
    token: Option<&str>,
    prefetch: Option<Map<String, Value>>,
    drafts: &[Value],
) -> Value {
    let mut context =
        json!({ "userId": "Practitioner/p1", "patientId": patient.trim_start_matches("Patient/") });
    if hook != "patient-view" {
        context["draftOrders"] = json!({ "resourceType": "Bundle", "type": "collection",
            "entry": drafts.iter().map(|d| json!({ "resource": d })).collect::<Vec<_>>() });
        if hook == "order-select" {
            context["selections"] = drafts
                .iter()
                .map(|d| {
                    json!(format!(
                        "MedicationRequest/{}",
                        d["id"].as_str().unwrap_or("")
                    ))
                })
                .collect();
        }
    }
    let mut body = json!({ "hook": hook, "hookInstance": uuid_like(), "context": context });
    if let Some(server) = fhir_server {
        body["fhirServer"] = json!(server);
    }
    if let Some(token) = token {
        body["fhirAuthorization"] = json!({ "access_token": token, "token_type": "Bearer",
            "expires_in": 300, "scope": "patient/*.read", "subject": "trd-sentinel" });
    }
    if let Some(prefetch) = prefetch {
        body["prefetch"] = Value::Object(prefetch);
    }
    body
}

/// A draft MedicationRequest: `rxnorm` code, `tablets` of it `per_day` times a day.
pub fn draft(
    id: &str,
    patient: &str,
    rxnorm: &str,
    display: &str,
    tablets: f64,
    per_day: u32,
) -> Value {
    json!({
        "resourceType": "MedicationRequest", "id": id, "status": "draft", "intent": "order",
        "subject": { "reference": patient },
        "medicationCodeableConcept": { "coding": [{ "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": rxnorm, "display": display }], "text": display },
        "dosageInstruction": [{
            "timing": { "repeat": { "frequency": per_day, "period": 1, "periodUnit": "d" } },
            "doseAndRate": [{ "doseQuantity": { "value": tablets, "unit": "tablet", "system": "http://terminology.hl7.org/CodeSystem/v3-orderableDrugForm", "code": "TAB" } }]
        }],
        "dispenseRequest": { "expectedSupplyDuration": { "value": 30, "unit": "days", "system": "http://unitsofmeasure.org", "code": "d" } }
    })
}

/// A pass-through in front of a FHIR server that records each request's path and
/// Authorization header, so a test can see what reached the server.
/// (path and query, Authorization header) of each request seen.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

pub struct Recorder {
    pub base: String,
    pub seen: Seen,
    handle: actix_web::dev::ServerHandle,
}

impl Recorder {
    pub async fn start(target: &str) -> Self {
        use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
        let seen: Seen = Arc::default();
        let target = target.trim_end_matches('/').to_string();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let base = format!("http://127.0.0.1:{port}");
        let (log, upstream, own) = (seen.clone(), target.clone(), base.clone());
        let server = HttpServer::new(move || {
            let (log, upstream, own) = (log.clone(), upstream.clone(), own.clone());
            App::new().default_service(web::to(move |request: HttpRequest| {
                let (log, upstream, own) = (log.clone(), upstream.clone(), own.clone());
                async move {
                    let path = request
                        .uri()
                        .path_and_query()
                        .map(|p| p.as_str().to_string())
                        .unwrap_or_default();
                    let auth = request
                        .headers()
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    log.lock().expect("log").push((path.clone(), auth));
                    let response = reqwest::Client::new()
                        .get(format!("{upstream}{path}"))
                        .header("Accept", "application/fhir+json")
                        .send()
                        .await;
                    match response {
                        Ok(r) => {
                            let status = r.status().as_u16();
                            // Links point back through the recorder.
                            let text = r.text().await.unwrap_or_default().replace(&upstream, &own);
                            HttpResponse::build(
                                actix_web::http::StatusCode::from_u16(status)
                                    .unwrap_or(actix_web::http::StatusCode::BAD_GATEWAY),
                            )
                            .content_type("application/fhir+json")
                            .body(text)
                        }
                        Err(_) => HttpResponse::BadGateway().finish(),
                    }
                }
            }))
        })
        .listen(listener)
        .expect("listen")
        .workers(1)
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Self { base, seen, handle }
    }

    pub fn requests(&self) -> Vec<(String, Option<String>)> {
        self.seen.lock().expect("log").clone()
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        let handle = self.handle.clone();
        drop(handle.stop(false));
    }
}
