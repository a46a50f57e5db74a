//! The treatment timeline and the patient page, read back as a machine would: the SVG
//! parsed (a lane per agent, a bar per supply, the score line through every score,
//! the thresholds, the verdict labels), record text escaped, the population index.

use std::path::Path;

use serde_json::json;
use time::macros::date;
use trd_sentinel::clinical::policy::PolicyBook;
use trd_sentinel::clinical::{assess, Assessment, Knowledge};
use trd_sentinel::fhir::read::{Relevance, ResourcePool};
use trd_sentinel::page::{index::PopulationIndex, patient::page, timeline::svg};

fn knowledge() -> Knowledge {
    Knowledge::embedded().expect("knowledge")
}

fn assessment_of(bundle: &str) -> Assessment {
    let knowledge = knowledge();
    let mut pool = ResourcePool::new(Relevance::from_knowledge(&knowledge));
    pool.add_json(bundle, "test").expect("bundle");
    let record = pool.records().pop().expect("patient");
    let policy = PolicyBook::embedded()
        .expect("policies")
        .get("default")
        .expect("policy")
        .clone();
    assess(&record, &policy, &knowledge, date!(2024 - 10 - 20))
}

fn assessment(fixture: &str) -> Assessment {
    assessment_of(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fixtures/patients")
                .join(format!("{fixture}.json")),
        )
        .expect("fixture"),
    )
}

/// What the picture shows, read from the SVG.
#[derive(Debug, PartialEq)]
struct Picture {
    lanes: Vec<String>,
    /// Per trial id: (dose, below the minimum, origin) of each bar.
    bars: Vec<(String, String, bool, String)>,
    verdicts: Vec<String>,
    scores: Vec<String>,
    line_points: usize,
    thresholds: Vec<String>,
    augmentations: usize,
    treatments: Vec<String>,
    function_points: usize,
}

fn picture(a: &Assessment) -> Picture {
    let text = svg(a, &knowledge()).into_string();
    let doc = roxmltree::Document::parse(&text).expect("the SVG is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    let class = |n: &roxmltree::Node, c: &str| {
        n.attribute("class")
            .is_some_and(|v| v.split(' ').any(|x| x == c))
    };
    let all =
        |c: &str| -> Vec<roxmltree::Node> { root.descendants().filter(|n| class(n, c)).collect() };
    let text_of = |n: &roxmltree::Node| -> String {
        n.descendants()
            .filter(|d| d.is_text())
            .filter_map(|d| d.text())
            .collect()
    };
    assert!(
        root.children().any(|n| n.tag_name().name() == "title"),
        "a text alternative"
    );
    let desc = root
        .children()
        .find(|n| n.tag_name().name() == "desc")
        .map(|n| text_of(&n))
        .expect("desc");
    for t in &a.trials {
        assert!(
            desc.contains(&format!("{} {}", t.id, t.ingredient)),
            "{desc}"
        );
    }
    let count_points = |c: &str| {
        all(c)
            .first()
            .and_then(|n| n.attribute("points"))
            .map(|p| p.split_whitespace().count())
            .unwrap_or(0)
    };
    Picture {
        lanes: all("lane")
            .iter()
            .filter_map(|n| n.attribute("data-agent").map(str::to_string))
            .collect(),
        bars: all("supply")
            .iter()
            .map(|n| {
                (
                    n.attribute("data-trial").unwrap_or("").to_string(),
                    n.attribute("data-dose").unwrap_or("").to_string(),
                    n.attribute("data-below-min") == Some("true"),
                    n.attribute("data-origin").unwrap_or("").to_string(),
                )
            })
            .collect(),
        verdicts: all("verdict").iter().map(&text_of).collect(),
        scores: all("score")
            .iter()
            .map(|n| {
                format!(
                    "{} {}",
                    n.attribute("data-date").unwrap_or(""),
                    n.attribute("data-value").unwrap_or("")
                )
            })
            .collect(),
        line_points: count_points("score-line"),
        thresholds: all("threshold")
            .iter()
            .filter_map(|n| n.attribute("class").map(|c| c.replace("threshold ", "")))
            .collect(),
        augmentations: all("augmentation").len(),
        treatments: all("treatment")
            .iter()
            .filter_map(|n| n.attribute("data-kind").map(str::to_string))
            .collect(),
        function_points: count_points("function-line"),
    }
}

fn bar(trial: &str, dose: &str, below: bool, origin: &str) -> (String, String, bool, String) {
    (trial.into(), dose.into(), below, origin.into())
}

#[test]
fn two_failed_ssris_draw_two_lanes_six_fills_and_the_score_line() {
    let p = picture(&assessment("trd-two-ssris"));
    assert_eq!(
        p,
        Picture {
            lanes: vec!["sertraline".into(), "escitalopram".into()],
            bars: vec![
                bar("T1", "100", false, "dispense"),
                bar("T1", "100", false, "dispense"),
                bar("T1", "100", false, "dispense"),
                bar("T2", "20", false, "dispense"),
                bar("T2", "20", false, "dispense"),
                bar("T2", "20", false, "dispense"),
            ],
            verdicts: vec![
                "T1 · adequate · non-response".into(),
                "T2 · adequate · non-response".into()
            ],
            scores: vec![
                "2024-01-06 20".into(),
                "2024-03-28 18".into(),
                "2024-04-10 18".into(),
                "2024-07-06 17".into()
            ],
            line_points: 4,
            thresholds: vec!["response".into(), "remission".into()],
            augmentations: 0,
            treatments: vec![],
            function_points: 0,
        }
    );
}

#[test]
fn below_the_minimum_orders_only_augmentation_procedures_and_function_are_drawn() {
    let low = picture(&assessment("subtherapeutic-ongoing"));
    assert_eq!(
        low.bars,
        [
            bar("T1", "25", true, "dispense"),
            bar("T1", "25", true, "dispense")
        ]
    );
    assert_eq!(low.verdicts, ["T1 · dose below minimum"]);
    assert_eq!(low.line_points, 0, "no scores, no line");

    let orders = picture(&assessment("orders-only-replaced"));
    assert_eq!(orders.lanes, ["sertraline", "escitalopram"]);
    assert!(
        orders.bars.iter().all(|b| b.3 == "order"),
        "{:?}",
        orders.bars
    );
    assert!(
        orders.verdicts.iter().all(|v| v.ends_with("· orders only")),
        "{:?}",
        orders.verdicts
    );

    let augmented = picture(&assessment("augmentation-aripiprazole"));
    assert_eq!(augmented.lanes, ["escitalopram"]);
    assert_eq!(augmented.augmentations, 1);
    assert_eq!(augmented.bars.len(), 6, "{:?}", augmented.bars);

    let ect = picture(&assessment("thase-rush-v"));
    assert_eq!(
        ect.lanes,
        ["sertraline", "venlafaxine", "nortriptyline", "phenelzine"]
    );
    assert_eq!(ect.treatments, ["ECT", "ECT", "ECT"]);
    assert_eq!(ect.line_points, ect.scores.len());

    let retrial = picture(&assessment("retrial-same-agent"));
    assert_eq!(
        retrial.lanes,
        ["sertraline"],
        "a re-trial stays in its lane"
    );
    assert_eq!(
        retrial.verdicts,
        [
            "T1 · adequate · non-response",
            "T2 · adequate · non-response"
        ]
    );

    let function = picture(&assessment("wsas-improves-phq9-does-not"));
    assert_eq!(function.function_points, 2);
    assert!(function.thresholds.contains(&"impaired".to_string()));
}

/// A drug display and a diagnosis text carrying markup come out as text.
#[test]
fn record_text_is_inert_on_the_page() {
    let script = "<script>alert(1)</script>";
    let img = "\"><img onerror=alert(2) src=x>";
    let bundle = json!({ "resourceType": "Bundle", "type": "collection", "entry": [
        { "resource": { "resourceType": "Patient", "id": "x1", "birthDate": "1980-01-01" } },
        { "resource": { "resourceType": "MedicationRequest", "id": "m1", "status": "active", "intent": "order",
            "subject": { "reference": "Patient/x1" }, "authoredOn": "2024-09-01",
            "medicationCodeableConcept": { "text": format!("{script} 10 MG Oral Tablet") } } },
        { "resource": { "resourceType": "Condition", "id": "c1", "subject": { "reference": "Patient/x1" },
            "clinicalStatus": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active" }] },
            "code": { "coding": [{ "system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "F43.10", "display": img }] },
            "onsetDateTime": "2020-01-01" } },
        { "resource": { "resourceType": "MedicationDispense", "id": "d1", "status": "completed",
            "subject": { "reference": "Patient/x1" }, "whenHandedOver": "2024-09-01",
            "medicationCodeableConcept": { "coding": [{ "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "312941", "display": format!("sertraline 50 MG {img}") }] },
            "quantity": { "value": 30 }, "daysSupply": { "value": 30 },
            "dosageInstruction": [{ "timing": { "repeat": { "frequency": 1, "period": 1, "periodUnit": "d" } }, "doseAndRate": [{ "doseQuantity": { "value": 1 } }] }] } }
    ]});
    let a = assessment_of(&bundle.to_string());
    let html = page(&a, &knowledge());
    assert!(!html.contains("<script>alert"), "script came through");
    assert!(!html.contains("<img onerror"), "img came through");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "the text is shown, escaped"
    );
    assert!(html.contains("&quot;&gt;&lt;img onerror=alert(2) src=x&gt;"));
    assert!(html.len() < 200 * 1024, "{} bytes", html.len());
}

#[test]
fn the_page_carries_the_verdicts_and_loads_nothing() {
    let a = assessment("trd-two-ssris");
    let html = page(&a, &knowledge());
    for expected in [
        "<h1>Treatment-resistant depression</h1>",
        "Staging: Thase-Rush I · Maudsley 6 (mild) · MGH-S 2",
        "<td>T1</td><td>sertraline (SSRI)</td>",
        "<td>100 mg (50)</td><td>12.8 (12.8)</td>",
        "refer to psychiatry: 2 failed adequate trials (SSRI) in the current episode",
        "no TSH result in the last 12 months",
        "Policy default.",
    ] {
        assert!(html.contains(expected), "{expected}");
    }
    for external in [
        "<script",
        "src=\"http",
        "href=\"http",
        "@import",
        "url(http",
    ] {
        assert!(!html.contains(external), "{external}");
    }
    assert!(html.len() < 200 * 1024);
}

#[test]
fn the_population_index_counts_and_links() {
    let mut index = PopulationIndex::default();
    for name in [
        "trd-two-ssris",
        "one-failure-at-risk",
        "dose-too-low",
        "adequate-ssri",
    ] {
        let a = assessment(name);
        index.add(&a, &trd_sentinel::page::index::file_name(&a.patient));
    }
    let html = index.render();
    for expected in [
        "4 patients, assessed as of 2024-10-20",
        "<th>Treatment-resistant depression</th><td>1 (25%)",
        "<th>One failed trial (at risk)</th><td>1 (25%)",
        "<th>Inadequately treated</th><td>1 (25%)",
        "<th>Responding</th><td>1 (25%)",
        "<th>Dose below minimum</th><td>1",
        "<a href=\"Patient_trd-two-ssris.html\">Patient/trd-two-ssris</a>",
        // The worklist names who needs what, most urgent first, in words.
        "<td>Treatment-resistant depression: refer</td><td><a href=\"Patient_trd-two-ssris.html\">Patient/trd-two-ssris</a></td>",
    ] {
        assert!(html.contains(expected), "{expected}\n{html}");
    }
    // Statuses by clinical importance, not alphabet; no status code left.
    let at = |text: &str| html.find(text).unwrap_or_else(|| panic!("{text}"));
    assert!(
        at("<th>Treatment-resistant depression</th>") < at("<th>One failed trial (at risk)</th>")
    );
    assert!(at("<th>Inadequately treated</th>") < at("<th>Responding</th>"));
    assert!(!html.contains("<th>trd</th>") && !html.contains("<td>trd</td>"));
    let worklist = &html[at("<h2 id=\"worklist\">")..at("<h2>By TRD status</h2>")];
    let row = |p: &str| {
        worklist
            .find(p)
            .unwrap_or_else(|| panic!("{p} on the worklist"))
    };
    assert!(
        row("Patient/trd-two-ssris") < row("Patient/dose-too-low"),
        "{worklist}"
    );
    assert_eq!(
        trd_sentinel::page::index::file_name("Patient/../../etc/passwd"),
        "Patient_.._.._etc_passwd.html"
    );
}
