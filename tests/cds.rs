//! CDS Hooks against the real process: `serve` with CDS on, Helios behind the
//! fallback fetch, JWTs signed with the test keys (tests/data/cds). Fixture patients
//! are moved to today, as the service assesses as of today.

#[path = "support/cds.rs"]
mod cds;
#[path = "support/hfs.rs"]
mod hfs;
#[path = "support/service.rs"]
mod service;

use serde_json::{json, Value};

use cds::*;
use hfs::{as_transaction, Hfs};
use service::Service;

const EHR: &str = "https://ehr.test";

/// Helios, a recorder in front of it (the allow-listed fhirServer), and the service.
struct Setup {
    hfs: Hfs,
    recorder: Recorder,
    service: Service,
    _config: tempfile::TempDir,
}

impl Setup {
    async fn start(name: &str, extra: &str, env: &[(&str, &str)]) -> Self {
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

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.service.http)
    }

    async fn load(&self, bundle: &Value) {
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
    async fn call(&self, service: &str, body: &Value) -> (u16, Value) {
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
fn outline(response: &Value) -> Vec<(String, String, String)> {
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
fn assert_valid(response: &Value) {
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

fn card<'a>(response: &'a Value, concern: &str) -> &'a Value {
    response["cards"]
        .as_array()
        .expect("cards")
        .iter()
        .find(|c| c["source"]["topic"]["code"] == concern)
        .unwrap_or_else(|| panic!("no {concern} card in {response}"))
}

/// The codes of the ServiceRequests a card's suggestions would create.
fn proposed(card: &Value) -> Vec<String> {
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

fn o(concern: &str, indicator: &str, summary: &str) -> (String, String, String) {
    (concern.into(), indicator.into(), summary.into())
}

/// A fixture date as it reads after the move to today.
fn moved(date: &str) -> String {
    let mut v = json!(date);
    roll(
        &mut v,
        (time::OffsetDateTime::now_utc().date() - FIXTURE_AS_OF).whole_days(),
    );
    v.as_str().expect("date").to_string()
}

async fn patient_view(setup: &Setup, name: &str) -> Value {
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

#[tokio::test]
async fn patient_view_shows_what_is_actionable_and_nothing_else() {
    let setup = Setup::start("cds-patient-view", "", &[]).await;

    // TRD: the counted trials, staging and the pathway's orders; the missing work-up.
    let trd = patient_view(&setup, "trd-two-ssris").await;
    assert_eq!(
        outline(&trd),
        [
            o("trd", "warning", "Treatment-resistant depression: 2 adequate trials failed (sertraline 100 mg, escitalopram 20 mg)"),
            o("work-up", "info", "Work-up missing: no TSH result in the last 12 months; no 25-OH vitamin D result in the last 12 months"),
        ]
    );
    let status = card(&trd, "trd");
    assert_eq!(
        proposed(status),
        [
            "183524004",
            "psychotherapy-review",
            "pharmacogenetic-testing",
            "neuromodulation-esketamine-evaluation"
        ]
    );
    assert_eq!(status["selectionBehavior"], "any");
    let detail = status["detail"].as_str().expect("detail");
    for expected in [
        "Rule: >= 2 failed adequate trials in the current episode (policy default).".to_string(),
        format!("Episode since {}.", moved("2024-01-08")),
        "Staging: Thase-Rush I · Maudsley 6 (mild) · MGH-S 2".to_string(),
        "| T1 | sertraline | 100 mg (50) | 12.9 (12.9) | 100% of days | adequate |".to_string(),
        "| T2 | escitalopram | 20 mg (10) | 12.9 (12.9) | 100% of days | adequate |".to_string(),
        format!("non-response: PHQ-9 18 on {} -> 17 on {} (5.56% reduction)", moved("2024-04-10"), moved("2024-07-06")),
        "- Consider augmentation (aripiprazole, bupropion, lithium, T3) versus switching; VAST-D favoured augmentation".to_string(),
    ] {
        assert!(detail.contains(&expected), "{expected}\nnot in\n{detail}");
    }
    assert_eq!(
        proposed(card(&trd, "work-up")),
        ["thyroid-work-up", "vitamin-d-work-up"]
    );
    // The same guidance keeps the same ids.
    let again = patient_view(&setup, "trd-two-ssris").await;
    let uuids = |r: &Value| -> Vec<Value> {
        r["cards"]
            .as_array()
            .expect("cards")
            .iter()
            .map(|c| c["uuid"].clone())
            .collect()
    };
    assert_eq!(uuids(&trd), uuids(&again));

    // A safety signal comes first, critical, with the suicide risk assessment to order.
    let risk = patient_view(&setup, "cssrs-high-risk").await;
    assert_eq!(
        outline(&risk),
        [
            o("safety", "critical", &format!("Safety: C-SSRS suicidal intent or plan (Q4 or Q5) in the past month: yes on {}: high risk, assess today", moved("2024-10-17"))),
            o("at-risk", "info", "At risk of TRD: 1 adequate trial failed (sertraline 100 mg); optimise before a second"),
            o("work-up", "info", "Work-up missing: no TSH result in the last 12 months; no 25-OH vitamin D result in the last 12 months"),
        ]
    );
    assert_eq!(proposed(card(&risk, "safety")), ["suicide-risk-assessment"]);

    // The current trial is below the minimum: that is what to fix.
    assert_eq!(
        outline(&patient_view(&setup, "subtherapeutic-ongoing").await),
        [o("inadequate-current-trial", "warning", "Current trial not adequate: sertraline 25 mg/day is below the minimum adequate 50 mg/day")]
    );
    // A medical mimic beside TRD.
    assert_eq!(
        outline(&patient_view(&setup, "high-tsh").await),
        [
            o("trd", "warning", "Treatment-resistant depression: 2 adequate trials failed (sertraline 100 mg, escitalopram 20 mg)"),
            o("pseudo-resistance", "warning", &format!("Check before calling it resistant: TSH 7.2 mIU/L on {}, above 4", moved("2024-04-17"))),
            o("work-up", "info", "Work-up missing: no 25-OH vitamin D result in the last 12 months"),
        ]
    );
    assert_eq!(
        outline(&patient_view(&setup, "bipolar-on-antidepressant").await),
        [
            o("bipolar-on-antidepressant", "warning", "Bipolar disorder recorded, on an antidepressant: TRD criteria do not apply; review"),
            o("pseudo-resistance", "warning", "Check before calling it resistant: bipolar spectrum disorder recorded: not labelled TRD; review the depression diagnosis (possible…"),
        ]
    );

    // Nothing actionable: no card at all.
    for quiet in ["remission-after-second", "adequate-ssri", "not-treated"] {
        assert_eq!(
            patient_view(&setup, quiet).await,
            json!({ "cards": [] }),
            "{quiet}"
        );
    }
    // A patient looking at their own chart (a portal) gets no clinician cards.
    let bundle = patient_today("trd-two-ssris");
    let mut body = hook_request(
        "patient-view",
        "Patient/trd-two-ssris",
        None,
        None,
        Some(full_prefetch(&bundle)),
        &[],
    );
    body["context"]["userId"] = json!("Patient/trd-two-ssris");
    assert_eq!(
        setup.call("trd-patient-view", &body).await,
        (200, json!({ "cards": [] }))
    );
    // With full prefetch, nothing was fetched.
    assert!(setup.recorder.requests().is_empty());
    assert_eq!(
        setup.service.metric("trd_cds_fallback_fetches_total").await,
        0.0
    );
}

/// order-select and order-sign (one service id) on a draft, with full prefetch.
async fn review(setup: &Setup, name: &str, draft: &Value) -> Value {
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

fn rx(patient: &str, code: &str, display: &str, tablets: f64, per_day: u32) -> Value {
    draft(
        "draft-1",
        &format!("Patient/{patient}"),
        code,
        display,
        tablets,
        per_day,
    )
}

#[tokio::test]
async fn draft_orders_get_the_cards_that_apply() {
    let setup = Setup::start("cds-orders", "", &[]).await;
    const TRD: &str = "TRD: 2 adequate trials failed; consider augmentation, referral or ECT/esketamine/TMS over another switch";

    // A third SSRI after two failed adequate trials.
    let third = review(
        &setup,
        "trd-two-ssris",
        &rx(
            "trd-two-ssris",
            "310385",
            "fluoxetine 20 MG Oral Capsule",
            1.0,
            1,
        ),
    )
    .await;
    assert_eq!(
        outline(&third),
        [o("further-agent-after-trd", "warning", TRD)]
    );
    let further = card(&third, "further-agent-after-trd");
    assert_eq!(
        proposed(further),
        [
            "183524004",
            "psychotherapy-review",
            "pharmacogenetic-testing",
            "neuromodulation-esketamine-evaluation"
        ]
    );
    let detail = further["detail"].as_str().expect("detail");
    assert!(
        detail.contains("Staging: Thase-Rush I · Maudsley 6 (mild) · MGH-S 2"),
        "{detail}"
    );
    assert!(
        detail.contains("| T1 | sertraline | 100 mg (50) |")
            && detail.contains("| T2 | escitalopram | 20 mg (10) |"),
        "{detail}"
    );

    // The agent that already failed, again.
    let again = review(
        &setup,
        "trd-two-ssris",
        &rx(
            "trd-two-ssris",
            "312938",
            "sertraline 100 MG Oral Tablet",
            1.0,
            1,
        ),
    )
    .await;
    assert_eq!(
        outline(&again),
        [
            o("already-failed", "warning", "Sertraline already failed an adequate trial this episode (T1 100 mg/day for 12.9 wk)"),
            o("further-agent-after-trd", "warning", TRD),
        ]
    );
    let failed = card(&again, "already-failed")["detail"]
        .as_str()
        .expect("detail")
        .to_string();
    assert!(
        failed.contains(&format!(
            "non-response: PHQ-9 20 on {} -> 18 on {} (10% reduction)",
            moved("2024-01-06"),
            moved("2024-04-10")
        )),
        "{failed}"
    );

    // 25 mg "again" after eight weeks at 25 mg: not a titration start; the card
    // offers the draft at the minimum adequate dose (two tablets of 25 mg).
    let low = review(
        &setup,
        "subtherapeutic-ongoing",
        &rx(
            "subtherapeutic-ongoing",
            "312940",
            "sertraline 25 MG Oral Tablet",
            1.0,
            1,
        ),
    )
    .await;
    assert_eq!(
        outline(&low),
        [o("dose-below-minimum", "warning", "Sertraline 25 mg/day is below the minimum adequate 50 mg/day (8.6 wk below it already)")]
    );
    let dose = card(&low, "dose-below-minimum");
    assert!(
        dose["detail"].as_str().expect("detail").contains(&format!(
            "- T1: 25 mg/day from {} to {} (8.6 weeks)",
            moved("2024-08-21"),
            moved("2024-10-19")
        )),
        "{dose}"
    );
    assert_eq!(dose["selectionBehavior"], "at-most-one");
    let suggestion = &dose["suggestions"][0];
    assert_eq!(suggestion["label"], "Change to sertraline 50 mg/day");
    assert_eq!(suggestion["isRecommended"], true);
    let action = &suggestion["actions"][0];
    assert_eq!(action["type"], "update");
    assert_eq!(
        action["resource"]["id"], "draft-1",
        "the draft as the EHR knows it"
    );
    assert_eq!(
        action["resource"]["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"],
        2.0
    );
    assert_eq!(
        action["resource"]["subject"]["reference"],
        "Patient/subtherapeutic-ongoing"
    );

    // The same dose in the first weeks of the agent is a titration start: no card.
    assert_eq!(
        review(
            &setup,
            "titrating-early",
            &rx(
                "titrating-early",
                "312940",
                "sertraline 25 MG Oral Tablet",
                1.0,
                1
            )
        )
        .await,
        json!({ "cards": [] })
    );
    // A first antidepressant at a starting dose: nothing to say.
    assert_eq!(
        review(
            &setup,
            "not-treated",
            &rx(
                "not-treated",
                "312941",
                "sertraline 50 MG Oral Tablet",
                1.0,
                1
            )
        )
        .await,
        json!({ "cards": [] })
    );
    // Switching after a trial that was too low.
    assert_eq!(
        outline(&review(&setup, "dose-too-low", &rx("dose-too-low", "349332", "escitalopram 10 MG Oral Tablet", 1.0, 1)).await),
        [o("earlier-trials-not-adequate", "info", "Earlier trials were not adequate (T1 sertraline: sertraline 25 mg/day is below the minimum adequate 50 mg/day): optimise before switching")]
    );
    // An antidepressant alone in bipolar disorder.
    assert_eq!(
        outline(
            &review(
                &setup,
                "bipolar-no-antidepressant",
                &rx(
                    "bipolar-no-antidepressant",
                    "312941",
                    "sertraline 50 MG Oral Tablet",
                    1.0,
                    1
                )
            )
            .await
        ),
        [o(
            "bipolar-without-cover",
            "warning",
            "Bipolar disorder recorded: sertraline without a mood stabiliser or antipsychotic"
        )]
    );
    // ... but not with a mood stabiliser ordered with it.
    let bundle = patient_today("bipolar-no-antidepressant");
    let with_cover = [
        rx(
            "bipolar-no-antidepressant",
            "312941",
            "sertraline 50 MG Oral Tablet",
            1.0,
            1,
        ),
        draft(
            "draft-2",
            "Patient/bipolar-no-antidepressant",
            "198429",
            "lamotrigine 200 MG Oral Tablet",
            1.0,
            1,
        ),
    ];
    let body = hook_request(
        "order-sign",
        "Patient/bipolar-no-antidepressant",
        None,
        None,
        Some(full_prefetch(&bundle)),
        &with_cover,
    );
    assert_eq!(
        setup.call("trd-prescribing", &body).await,
        (200, json!({ "cards": [] }))
    );

    // Safety findings the draft brings are critical.
    assert_eq!(
        outline(&review(&setup, "subtherapeutic-ongoing", &rx("subtherapeutic-ongoing", "190376", "linezolid 600 MG Oral Tablet", 1.0, 2)).await),
        [o("safety", "critical", &format!("Before signing: linezolid on {} 1 days after the last day of sertraline ({}): 14 days needed", moved("2024-10-20"), moved("2024-10-19")))]
    );
    assert_eq!(
        outline(&review(&setup, "citalopram-60-at-70", &rx("citalopram-60-at-70", "200371", "citalopram 20 MG Oral Tablet", 3.0, 1)).await),
        [o("safety", "critical", &format!("Before signing: citalopram 60 mg/day above the 40 mg/day maximum from {}: QT prolongation", moved("2024-07-12")))]
    );
    assert!(
        setup.recorder.requests().is_empty(),
        "full prefetch: no fetch"
    );
}

#[tokio::test]
async fn prefetch_in_every_state_and_the_fallback_to_the_fhir_server() {
    let setup = Setup::start("cds-prefetch", "", &[]).await;
    let name = "trd-two-ssris";
    let patient = format!("Patient/{name}");
    let bundle = patient_today(name);
    setup.load(&bundle).await;
    let full = full_prefetch(&bundle);
    let (status, expected) = setup
        .call(
            "trd-patient-view",
            &hook_request(
                "patient-view",
                &patient,
                None,
                None,
                Some(full.clone()),
                &[],
            ),
        )
        .await;
    assert_eq!(status, 200);
    let expected = outline(&expected);
    assert_eq!(expected.len(), 2, "{expected:?}");

    // Nothing prefetched: everything fetched from the allow-listed server, with the
    // client's access token on every request.
    let token = "access-token-7f3a9c";
    let (status, answer) = setup
        .call(
            "trd-patient-view",
            &hook_request(
                "patient-view",
                &patient,
                Some(&setup.recorder.base),
                Some(token),
                None,
                &[],
            ),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(outline(&answer), expected);
    let seen = setup.recorder.requests();
    assert_eq!(seen.len(), 8, "one search per key: {seen:?}");
    assert!(seen
        .iter()
        .all(|(_, auth)| auth.as_deref() == Some(&*format!("Bearer {token}"))));

    // Mixed: a failed prefetch (OperationOutcome), a key not honoured, `null` (nothing
    // found), a paged searchset: only the failed and missing keys are searched, and
    // the page is followed, on the same server.
    let mut mixed = full.clone();
    mixed.insert("observations".into(), json!({ "resourceType": "OperationOutcome", "issue": [{ "severity": "error", "code": "timeout" }] }));
    mixed.remove("conditions");
    mixed.insert("procedures".into(), Value::Null);
    let dispenses = mixed.remove("medicationDispenses").expect("dispenses");
    let entries = dispenses["entry"].as_array().expect("entries").clone();
    let (first, rest) = entries.split_at(1);
    let rest_ids: Vec<String> = rest
        .iter()
        .map(|e| e["resource"]["id"].as_str().expect("id").to_string())
        .collect();
    mixed.insert("medicationDispenses".into(), json!({
        "resourceType": "Bundle", "type": "searchset", "entry": first,
        "link": [{ "relation": "next", "url": format!("{}/MedicationDispense?_id={}", setup.recorder.base, rest_ids.join(",")) }]
    }));
    let before = setup.recorder.requests().len();
    let (status, answer) = setup
        .call(
            "trd-patient-view",
            &hook_request(
                "patient-view",
                &patient,
                Some(&setup.recorder.base),
                Some(token),
                Some(mixed),
                &[],
            ),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(outline(&answer), expected);
    let fetched: Vec<String> = setup.recorder.requests()[before..]
        .iter()
        .map(|(path, _)| path.split('?').next().unwrap_or("").to_string())
        .collect();
    let mut fetched_sorted = fetched.clone();
    fetched_sorted.sort();
    assert_eq!(
        fetched_sorted,
        ["/Condition", "/MedicationDispense", "/Observation"],
        "{fetched:?}"
    );

    // Full prefetch needs no server at all.
    assert_eq!(
        setup
            .call(
                "trd-patient-view",
                &hook_request(
                    "patient-view",
                    &patient,
                    None,
                    None,
                    Some(full.clone()),
                    &[]
                )
            )
            .await
            .0,
        200
    );
    // Missing data and no server to fetch it from: 412 with an OperationOutcome.
    let (status, outcome) = setup
        .call(
            "trd-patient-view",
            &hook_request("patient-view", &patient, None, None, None, &[]),
        )
        .await;
    assert_eq!(status, 412);
    assert_eq!(outcome["resourceType"], "OperationOutcome");
    // A server not on the client's allow-list gets no request, and no token.
    let stranger = Recorder::start(&setup.hfs.base).await;
    let (status, _) = setup
        .call(
            "trd-patient-view",
            &hook_request(
                "patient-view",
                &patient,
                Some(&stranger.base),
                Some(token),
                None,
                &[],
            ),
        )
        .await;
    assert_eq!(status, 412);
    assert!(stranger.requests().is_empty(), "{:?}", stranger.requests());
    // The access token never reaches the log.
    let log = std::fs::read_to_string(&setup.service.log).expect("log");
    assert!(!log.contains(token));
    assert!(
        log.contains("CDS call"),
        "calls are logged (ids and counts)"
    );
    assert!(setup.service.metric("trd_cds_fallback_fetches_total").await >= 11.0);
}

#[tokio::test]
async fn draft_orders_fetched_from_the_fhir_server_get_the_same_cards() {
    let setup = Setup::start("cds-fallback-orders", "", &[]).await;
    let bundle = patient_today("trd-two-ssris");
    setup.load(&bundle).await;
    let d = rx(
        "trd-two-ssris",
        "310385",
        "fluoxetine 20 MG Oral Capsule",
        1.0,
        1,
    );
    let body = hook_request(
        "order-sign",
        "Patient/trd-two-ssris",
        Some(&setup.recorder.base),
        None,
        None,
        &[d],
    );
    let (status, answer) = setup.call("trd-prescribing", &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        outline(&answer),
        [o("further-agent-after-trd", "warning", "TRD: 2 adequate trials failed; consider augmentation, referral or ECT/esketamine/TMS over another switch")]
    );
    // An open server (as the public sandbox's): no token, no Authorization header.
    assert!(setup
        .recorder
        .requests()
        .iter()
        .all(|(_, auth)| auth.is_none()));
}

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
        assert_eq!(keys.len(), 8, "{keys:?}");
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
