//! CDS Hooks cards against the real process: patient-view, draft orders at select
//! and sign, every prefetch state and the fallback fetch from Helios. Fixture patients
//! are moved to today, as the service assesses as of today.

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
        "| T1 | sertraline | 100 mg (50) | 12.8 (12.8) | 100% of days | adequate |".to_string(),
        "| T2 | escitalopram | 20 mg (10) | 12.8 (12.8) | 100% of days | adequate |".to_string(),
        format!("non-response: PHQ-9 18 on {} -> 17 on {} (5.5% reduction)", moved("2024-04-10"), moved("2024-07-06")),
        format!("- No antidepressant supplied since {}: confirm whether it was stopped; for the next trial consider switching, or restarting with augmentation (aripiprazole, bupropion, lithium, T3)", moved("2024-07-10")),
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
            o("already-failed", "warning", "Sertraline already failed an adequate trial this episode (T1 100 mg/day for 12.8 wk)"),
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
        [o("safety", "critical", &format!("Before signing: citalopram 60 mg/day above 20 mg/day, the maximum over 60 (age 70) from {}: QT prolongation", moved("2024-07-12")))]
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
    assert_eq!(
        seen.len(),
        trd_sentinel::resource_types::READ_TYPES.len(),
        "one search per key: {seen:?}"
    );
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
