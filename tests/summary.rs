//! The treatment summary for primary care and referral (issue 14 item 6): what it
//! says, the FHIR document that carries it, and how write-back puts it in the EHR in
//! each configured mode, idempotently and without conditional create.

use std::path::Path;

use base64::Engine as _;
use serde_json::{json, Value};
use time::macros::date;
use trd_sentinel::clinical::policy::PolicyBook;
use trd_sentinel::clinical::summary::summarise;
use trd_sentinel::clinical::{assess, Assessment, Knowledge};
use trd_sentinel::config::{DocumentMode, WritebackSettings};
use trd_sentinel::fhir::document::{document_bundle, xhtml};
use trd_sentinel::fhir::read::{Relevance, ResourcePool};
use trd_sentinel::fhir::writeback::{desired_resources, existing_from, plan, Existing, Plan};

#[path = "support/validator.rs"]
mod validator;

fn assessment(fixture: &str) -> Assessment {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/patients")
            .join(format!("{fixture}.json")),
    )
    .expect("fixture");
    let knowledge = Knowledge::embedded().expect("knowledge");
    let mut pool = ResourcePool::new(Relevance::from_knowledge(&knowledge));
    pool.add_json(&text, fixture).expect("bundle");
    let record = pool.records().pop().expect("patient");
    let policy = PolicyBook::embedded()
        .expect("policies")
        .get("default")
        .expect("policy")
        .clone();
    assess(&record, &policy, &knowledge, date!(2024 - 10 - 20))
}

fn settings(document: DocumentMode) -> WritebackSettings {
    WritebackSettings {
        document,
        ..WritebackSettings::default()
    }
}

/// What the server would hold after applying a plan (ids assigned).
fn applied(plan: &Plan, settings: &WritebackSettings) -> Vec<Existing> {
    plan.entries
        .iter()
        .enumerate()
        .filter_map(|(i, entry)| {
            let mut resource = entry["resource"].clone();
            resource["id"] = json!(format!("srv{i}"));
            existing_from(&resource, &settings.identifier_system)
        })
        .collect()
}

fn entries_of<'p>(plan: &'p Plan, kind: &str) -> Vec<&'p Value> {
    plan.entries
        .iter()
        .filter(|e| e["resource"]["resourceType"] == kind)
        .collect()
}

fn decoded(attachment: &Value) -> String {
    let data = attachment["data"].as_str().expect("data");
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(data)
            .expect("base64"),
    )
    .expect("utf-8")
}

/// A TRD patient's letter, whole: every section the clinical approach names, in
/// reading order, with the numbers behind each verdict.
#[test]
fn a_trd_patients_summary_holds_what_a_referral_letter_needs() {
    let a = assessment("trd-two-ssris");
    let summary = summarise(&a);
    let expected = "\
Treatment summary: depression and antidepressant trials

Reason for referral:
- Treatment-resistant depression: 2 failed adequate trials (SSRI) in the current episode (rule: >= 2 failed adequate trials in the current episode (policy default))
- Current episode since 2024-01-08 (9 months)
- Staging: Thase-Rush I; Maudsley 6 (mild); MGH-S 2
- Last trial: escitalopram 20 mg/day from 2024-04-12 to 2024-07-10 (12.8 weeks); 100% of days covered (dispenses)
- Response on it: PHQ-9 18 on 2024-04-10 -> 17 on 2024-07-06 (5.5% reduction)
- Latest symptoms: PHQ-9 17 on 2024-07-06

Medication history: antidepressant trials:
- T1 sertraline (SSRI), 2024-01-08 to 2024-04-06: 100 mg/day (minimum adequate 50 mg/day), 12.8 weeks, 12.8 at or above the minimum; 100% of days covered (dispenses). adequate trial. Response: PHQ-9 20 on 2024-01-06 -> 18 on 2024-04-10 (10% reduction). Counted as a failed adequate trial.
- T2 escitalopram (SSRI), 2024-04-12 to 2024-07-10: 20 mg/day (minimum adequate 10 mg/day), 12.8 weeks, 12.8 at or above the minimum; 100% of days covered (dispenses). adequate trial. Response: PHQ-9 18 on 2024-04-10 -> 17 on 2024-07-06 (5.5% reduction). Counted as a failed adequate trial.

Psychotherapy and other treatments:
- none recorded

Problems:
- none recorded

Standardised measures:
- PHQ-9: 20 (2024-01-06), 18 (2024-03-28), 18 (2024-04-10), 17 (2024-07-06)

Functional status:
- no functional measure (WSAS, SDS, Q-LES-Q-SF, ...) recorded in the current episode

Suspected medical factors, mimics and pseudo-resistance:
- no TSH result in the last 12 months
- no 25-OH vitamin D result in the last 12 months
- no psychotherapy recorded in the current episode

Plan: suggestions for the treating team:
- refer to psychiatry: 2 failed adequate trials (SSRI) in the current episode
- check thyroid function (TSH, free T4)
- check 25-OH vitamin D
- no antidepressant supplied since 2024-07-10: confirm whether it was stopped; for the next trial consider switching, or restarting with augmentation (aripiprazole, bupropion, lithium, T3)
- psychotherapy: none recorded in this episode; behavioural activation as a core component (CBT; ACT or DBT when CBT has not helped)
- consider pharmacogenetic testing after 2 failed adequate trials
- evaluate for ECT, TMS or esketamine
";
    assert_eq!(summary.text(), expected);
    assert!(summary.safety.is_empty());
    let medications = summary
        .sections
        .iter()
        .find(|s| s.title.starts_with("Medication history"))
        .expect("medications");
    assert!(
        medications
            .evidence
            .iter()
            .any(|r| r.starts_with("MedicationDispense/")),
        "{:?}",
        medications.evidence
    );
}

/// Safety signals open the letter, before the reason for referral.
#[test]
fn safety_signals_come_first() {
    let a = assessment("cssrs-high-risk");
    let summary = summarise(&a);
    assert_eq!(
        summary.safety,
        vec!["C-SSRS suicidal intent or plan (Q4 or Q5) in the past month: yes on 2024-10-17: high risk, assess today; C-SSRS suicide risk level: high (3) on 2024-10-17: high risk, assess today".to_string()]
    );
    let text = summary.text();
    let safety = text.find("SAFETY:").expect("safety block");
    let reason = text.find("Reason for referral:").expect("reason");
    assert!(safety < reason, "{text}");
    let rendered = xhtml(&summary);
    assert!(rendered.find("SAFETY:") < rendered.find("Reason for referral"));
}

/// Text from the record (a diagnosis display) is escaped in the XHTML.
#[test]
fn record_text_is_inert_in_the_xhtml() {
    let mut a = assessment("trd-ptsd-no-trauma-focused");
    let problem = a.problems.first_mut().expect("PTSD on the problem list");
    problem.display = Some("<script>alert(1)</script>\"><img src=x onerror=alert(2)>".into());
    let rendered = xhtml(&summarise(&a));
    assert!(!rendered.contains("<script>"), "{rendered}");
    assert!(!rendered.contains("<img"), "{rendered}");
    assert!(rendered.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
}

#[test]
fn nothing_is_written_when_the_mode_is_off_or_no_referral_is_suggested() {
    let trd = assessment("trd-two-ssris");
    let off = settings(DocumentMode::Off);
    let p = plan(&trd, desired_resources(&trd, &off), &[], &off);
    assert!(entries_of(&p, "DocumentReference").is_empty());
    assert!(entries_of(&p, "Composition").is_empty());

    // At risk: work-up suggested, no referral; the summary goes with a referral.
    let text = settings(DocumentMode::Text);
    let at_risk = assessment("trd-ptsd-no-trauma-focused");
    assert!(at_risk.suggests_referral(), "TRD: psychiatry referral");
    let one_failure = assessment("cssrs-high-risk");
    assert!(!one_failure.suggests_referral());
    let p = plan(
        &one_failure,
        desired_resources(&one_failure, &text),
        &[],
        &text,
    );
    assert!(entries_of(&p, "DocumentReference").is_empty());
}

/// The mode for EHRs that take a text note only: one DocumentReference, one
/// `text/plain` attachment, created by a plain POST (no conditional create), then
/// updated by id; unchanged, it is not rewritten, even as the days pass.
#[test]
fn text_mode_creates_one_note_then_updates_it_by_id() {
    let s = settings(DocumentMode::Text);
    let a = assessment("trd-two-ssris");
    let first = plan(&a, desired_resources(&a, &s), &[], &s);
    assert!(entries_of(&first, "Composition").is_empty());
    let notes = entries_of(&first, "DocumentReference");
    assert_eq!(notes.len(), 1);
    let note = notes[0];
    assert_eq!(
        note["request"],
        json!({ "method": "POST", "url": "DocumentReference" })
    );
    assert!(!first.is_idempotent(), "a plain create is sent once");
    let resource = &note["resource"];
    assert_eq!(resource["status"], "current");
    assert_eq!(resource["docStatus"], "preliminary");
    assert_eq!(resource["type"]["coding"][0]["code"], "57133-1");
    assert_eq!(
        resource["category"][0]["coding"][0]["code"],
        "clinical-note"
    );
    assert_eq!(resource["subject"]["reference"], "Patient/trd-two-ssris");
    assert_eq!(resource["date"], "2024-10-20T00:00:00Z");
    assert_eq!(
        resource["identifier"],
        json!([{ "system": "https://fhir.trd-sentinel.org/id", "value": "Patient/trd-two-ssris/summary" }])
    );
    let content = resource["content"].as_array().expect("content");
    assert_eq!(content.len(), 1, "text only");
    assert_eq!(
        content[0]["attachment"]["contentType"],
        "text/plain; charset=utf-8"
    );
    assert_eq!(
        decoded(&content[0]["attachment"]),
        summarise(&a).text(),
        "the note is the summary's text"
    );
    assert!(
        resource.get("context").is_none(),
        "no Composition to relate"
    );

    // Read back: nothing to write, today or later (an ongoing trial's weeks grow, the
    // letter is not rewritten for that).
    let existing = applied(&first, &s);
    let again = plan(&a, desired_resources(&a, &s), &existing, &s);
    assert!(again.entries.is_empty(), "{:?}", again.written);
    let mut later = a.clone();
    later.as_of = date!(2024 - 11 - 20);
    assert!(plan(&later, desired_resources(&later, &s), &existing, &s)
        .entries
        .is_empty());

    // The assessment changes (a finding goes): the note is updated by id.
    let mut changed = a.clone();
    changed.findings.retain(|f| f.code != "no-recent-tsh");
    changed
        .suggestions
        .retain(|s| !s.because.iter().any(|b| b == "no-recent-tsh"));
    let update = plan(&changed, desired_resources(&changed, &s), &existing, &s);
    let note = entries_of(&update, "DocumentReference");
    assert_eq!(note.len(), 1);
    let id = existing
        .iter()
        .find(|e| e.resource_type == "DocumentReference")
        .map(|e| e.id.clone())
        .expect("note read back");
    assert_eq!(
        note[0]["request"],
        json!({ "method": "PUT", "url": format!("DocumentReference/{id}") })
    );
    assert_eq!(note[0]["resource"]["id"], json!(id));
    assert!(update.is_idempotent());

    // No referral any more (the patient recovered): the note is superseded, by id.
    let mut recovered = assessment("remission-after-second");
    recovered.patient = a.patient.clone();
    let retire = plan(&recovered, desired_resources(&recovered, &s), &existing, &s);
    let note = entries_of(&retire, "DocumentReference");
    assert_eq!(note.len(), 1);
    assert_eq!(note[0]["resource"]["status"], "superseded");
    assert_eq!(
        note[0]["request"]["url"],
        json!(format!("DocumentReference/{id}"))
    );
    assert!(retire
        .retired
        .iter()
        .any(|r| r == "DocumentReference Patient/trd-two-ssris/summary -> superseded"));
}

/// The full mode: the Composition and the note that renders it (text first, then the
/// XHTML), the note pointing at the Composition written in the same transaction.
#[test]
fn composition_mode_writes_the_composition_and_the_note_that_renders_it() {
    let s = settings(DocumentMode::Composition);
    let a = assessment("trd-two-ssris");
    let first = plan(&a, desired_resources(&a, &s), &[], &s);
    let compositions = entries_of(&first, "Composition");
    assert_eq!(compositions.len(), 1);
    let composition = compositions[0];
    assert_eq!(
        composition["request"],
        json!({ "method": "POST", "url": "Composition" })
    );
    let sections: Vec<&str> = composition["resource"]["section"]
        .as_array()
        .expect("sections")
        .iter()
        .map(|s| s["code"]["coding"][0]["code"].as_str().expect("code"))
        .collect();
    assert_eq!(
        sections,
        ["42349-1", "10160-0", "47519-4", "11450-4", "10190-7", "47420-5", "51848-0", "18776-5"]
    );
    assert_eq!(composition["resource"]["status"], "preliminary");
    assert_eq!(
        composition["resource"]["identifier"],
        json!({ "system": "https://fhir.trd-sentinel.org/id", "value": "Patient/trd-two-ssris/summary" })
    );
    let note = entries_of(&first, "DocumentReference")[0];
    assert_eq!(
        note["resource"]["context"]["related"][0]["reference"],
        composition["fullUrl"]
    );
    let content = note["resource"]["content"].as_array().expect("content");
    let types: Vec<&str> = content
        .iter()
        .map(|c| c["attachment"]["contentType"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        ["text/plain; charset=utf-8", "application/xhtml+xml"]
    );
    let page = decoded(&content[1]["attachment"]);
    assert!(page.starts_with("<!DOCTYPE html><html xmlns=\"http://www.w3.org/1999/xhtml\">"));

    // Read back, then changed: the Composition is updated by id and the note points
    // at it by id.
    let existing = applied(&first, &s);
    assert!(plan(&a, desired_resources(&a, &s), &existing, &s)
        .entries
        .is_empty());
    let mut changed = a.clone();
    changed.findings.retain(|f| f.code != "no-recent-tsh");
    let update = plan(&changed, desired_resources(&changed, &s), &existing, &s);
    let composition_id = existing
        .iter()
        .find(|e| e.resource_type == "Composition")
        .map(|e| e.id.clone())
        .expect("composition");
    let note = entries_of(&update, "DocumentReference")[0];
    assert_eq!(
        note["resource"]["context"]["related"][0]["reference"], composition["fullUrl"],
        "the Composition is rewritten in the same transaction"
    );
    assert_eq!(
        entries_of(&update, "Composition")[0]["request"]["url"],
        json!(format!("Composition/{composition_id}"))
    );
}

/// The FHIR document and both modes' transactions pass the independent validator,
/// and each written resource names a profile the project ships.
#[test]
fn the_summary_documents_validate() {
    let dir = std::env::temp_dir().join(format!("trd-summary-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let mut files = Vec::new();
    for fixture in [
        "trd-two-ssris",
        "trd-ptsd-no-trauma-focused",
        "thase-rush-v",
    ] {
        let a = assessment(fixture);
        let document = document_bundle(&summarise(&a), &a, "https://fhir.trd-sentinel.org/id");
        assert_eq!(document["type"], "document");
        assert_eq!(
            document["entry"][0]["resource"]["resourceType"],
            "Composition"
        );
        let path = dir.join(format!("{fixture}-document.json"));
        std::fs::write(&path, document.to_string()).expect("write");
        files.push(path);
        for mode in [DocumentMode::Text, DocumentMode::Composition] {
            let s = settings(mode);
            let p = plan(&a, desired_resources(&a, &s), &[], &s);
            assert!(!entries_of(&p, "DocumentReference").is_empty(), "{fixture}");
            let path = dir.join(format!("{fixture}-{mode:?}.json"));
            std::fs::write(&path, p.transaction().to_string()).expect("write");
            files.push(path);
        }
    }
    validator::validate_with_fhir_resources(&files);
    for id in ["trd-summary-document-reference", "trd-summary-composition"] {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!(
            "profiles/structuredefinitions/StructureDefinition-{id}.json"
        ));
        assert!(path.exists(), "{id}");
    }
}
