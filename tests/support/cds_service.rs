//! The CDS Hooks tests' running service: Helios, a recorder in front of it (the
//! allow-listed fhirServer) and `serve` with CDS on, and helpers to call the hooks and
//! read their cards. Used by tests/cds_*.rs, each of which also includes
//! support/{cds,hfs,service}.rs.
#![allow(dead_code)]

use serde_json::{json, Value};

use super::cds::*;
use super::hfs::{as_transaction, Hfs};
use super::service::Service;

pub const EHR: &str = "https://ehr.test";

/// Helios, a recorder in front of it (the allow-listed fhirServer), and the service.
pub struct Setup {
    pub hfs: Hfs,
    pub recorder: Recorder,
    pub service: Service,
    pub _config: tempfile::TempDir,
}

impl Setup {
    pub async fn start(name: &str, extra: &str, env: &[(&str, &str)]) -> Self {
        let hfs = Hfs::start();
        let recorder = Recorder::start(&hfs.base).await;
        let dir = tempfile::tempdir().expect("dir");
        let config = dir.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[cds]
enabled = true
jwks_refetch_secs = 1

[[cds.clients]]
iss = "{EHR}"
jwks_file = "{jwks}"
audiences = ["https://hand-set.example.org/cds"]
fhir_servers = ["{recorder}"]

[[cds.clients]]
iss = "https://tenant.test"
jwks_file = "{jwks}"
tenant = "hospital-a"
{extra}
"#,
                jwks = data("jwks-a.json").display(),
                recorder = recorder.base,
            ),
        )
        .expect("config");
        let config_path = config.display().to_string();
        let mut all_env = vec![("TRD_CONFIG", config_path.as_str())];
        all_env.extend_from_slice(env);
        let service = Service::start(name, &hfs.base, &all_env);
        Self {
            hfs,
            recorder,
            service,
            _config: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.service.http)
    }

    pub async fn load(&self, bundle: &Value) {
        reqwest::Client::new()
            .post(&self.hfs.base)
            .header("Content-Type", "application/fhir+json")
            .json(&as_transaction(bundle))
            .send()
            .await
            .expect("load")
            .error_for_status()
            .expect("loaded");
    }

    /// POSTs a hook call with a fresh valid JWT; (status, body).
    pub async fn call(&self, service: &str, body: &Value) -> (u16, Value) {
        let url = self.url(&format!("/cds-services/{service}"));
        let token = jwt("es384-a", "key-a", &claims(EHR, &url), None);
        let response = reqwest::Client::new()
            .post(&url)
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("call");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// Each card's (concern, indicator, summary), in order.
pub fn outline(response: &Value) -> Vec<(String, String, String)> {
    response["cards"]
        .as_array()
        .expect("cards")
        .iter()
        .map(|c| {
            (
                c["source"]["topic"]["code"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                c["indicator"].as_str().unwrap_or("").to_string(),
                c["summary"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// Every rule of a card the spec and the Inferno checks state, checked on the whole
/// answer: no `null` or empty optional anywhere, summary under 140 characters, an
/// allowed indicator, a source label, a uuid, suggestions with labels, actions with
/// type and description, at most one recommended among alternatives, override
/// reasons with displays, links with label, url and type.
pub fn assert_valid(response: &Value) {
    fn no_empties(v: &Value, path: &str) {
        match v {
            Value::Null => panic!("null at {path}"),
            Value::String(s) => assert!(!s.is_empty(), "empty string at {path}"),
            Value::Array(a) => {
                assert!(!a.is_empty() || path == "/cards", "empty array at {path}");
                for (i, x) in a.iter().enumerate() {
                    no_empties(x, &format!("{path}/{i}"));
                }
            }
            Value::Object(o) => {
                assert!(!o.is_empty(), "empty object at {path}");
                for (k, x) in o {
                    no_empties(x, &format!("{path}/{k}"));
                }
            }
            _ => {}
        }
    }
    no_empties(response, "");
    for card in response["cards"].as_array().expect("cards") {
        let summary = card["summary"].as_str().expect("summary");
        assert!(summary.chars().count() < 140, "{summary}");
        assert!(matches!(
            card["indicator"].as_str(),
            Some("info" | "warning" | "critical")
        ));
        assert!(card["source"]["label"].is_string());
        let uuid = card["uuid"].as_str().expect("uuid");
        assert_eq!(uuid.len(), 36, "{uuid}");
        assert!(card["detail"].is_string());
        if let Some(suggestions) = card["suggestions"].as_array() {
            let behaviour = card["selectionBehavior"]
                .as_str()
                .expect("selectionBehavior");
            assert!(matches!(behaviour, "at-most-one" | "any"));
            let recommended = suggestions
                .iter()
                .filter(|s| s["isRecommended"] == true)
                .count();
            assert!(behaviour != "at-most-one" || recommended <= 1);
            for s in suggestions {
                assert!(s["label"].is_string());
                for action in s["actions"].as_array().expect("actions") {
                    assert!(matches!(
                        action["type"].as_str(),
                        Some("create" | "update" | "delete")
                    ));
                    assert!(action["description"].is_string());
                    assert!(action["resource"]["resourceType"].is_string());
                }
            }
        }
        for reason in card["overrideReasons"].as_array().expect("overrideReasons") {
            assert!(reason["display"].is_string() && reason["code"].is_string());
        }
        for link in card["links"].as_array().into_iter().flatten() {
            assert!(link["label"].is_string() && link["url"].is_string());
            assert!(matches!(link["type"].as_str(), Some("absolute" | "smart")));
        }
    }
}

pub fn card<'a>(response: &'a Value, concern: &str) -> &'a Value {
    response["cards"]
        .as_array()
        .expect("cards")
        .iter()
        .find(|c| c["source"]["topic"]["code"] == concern)
        .unwrap_or_else(|| panic!("no {concern} card in {response}"))
}

/// The codes of the ServiceRequests a card's suggestions would create.
pub fn proposed(card: &Value) -> Vec<String> {
    card["suggestions"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|s| s["actions"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["type"] == "create")
        .map(|a| {
            a["resource"]["code"]["coding"][0]["code"]
                .as_str()
                .unwrap_or("")
                .to_string()
        })
        .collect()
}

pub fn o(concern: &str, indicator: &str, summary: &str) -> (String, String, String) {
    (concern.into(), indicator.into(), summary.into())
}

/// A fixture date as it reads after the move to today.
pub fn moved(date: &str) -> String {
    let mut v = json!(date);
    roll(
        &mut v,
        (time::OffsetDateTime::now_utc().date() - FIXTURE_AS_OF).whole_days(),
    );
    v.as_str().expect("date").to_string()
}

pub async fn patient_view(setup: &Setup, name: &str) -> Value {
    let bundle = patient_today(name);
    let body = hook_request(
        "patient-view",
        &format!("Patient/{name}"),
        None,
        None,
        Some(full_prefetch(&bundle)),
        &[],
    );
    let (status, response) = setup.call("trd-patient-view", &body).await;
    assert_eq!(status, 200, "{name}: {response}");
    assert_valid(&response);
    response
}

/// order-select and order-sign (one service id) on a draft, with full prefetch.
pub async fn review(setup: &Setup, name: &str, draft: &Value) -> Value {
    let bundle = patient_today(name);
    let patient = format!("Patient/{name}");
    let mut answers = Vec::new();
    for hook in ["order-select", "order-sign"] {
        let body = hook_request(
            hook,
            &patient,
            None,
            None,
            Some(full_prefetch(&bundle)),
            std::slice::from_ref(draft),
        );
        let (status, response) = setup.call("trd-prescribing", &body).await;
        assert_eq!(status, 200, "{name} {hook}: {response}");
        assert_valid(&response);
        answers.push(response);
    }
    assert_eq!(answers[0], answers[1], "{name}: select and sign agree");
    answers.remove(0)
}

pub fn rx(patient: &str, code: &str, display: &str, tablets: f64, per_day: u32) -> Value {
    draft(
        "draft-1",
        &format!("Patient/{patient}"),
        code,
        display,
        tablets,
        per_day,
    )
}
