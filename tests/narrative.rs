//! The clinician-facing narrative says the status, the counted trials with dose,
//! duration and response, the stages, and the top findings and suggestions.

use std::path::Path;

use time::macros::date;
use trd_sentinel::clinical::{assess, Assessment, Knowledge, Policy};
use trd_sentinel::fhir::read::{Relevance, ResourcePool};

fn fixture(name: &str) -> Assessment {
    let knowledge = Knowledge::embedded().expect("knowledge");
    let mut pool = ResourcePool::new(Relevance::from_knowledge(&knowledge));
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/patients")
        .join(format!("{name}.json"));
    pool.add_path(&path).expect("fixture");
    let record = pool.records().pop().expect("patient");
    assess(
        &record,
        &Policy::default_preset().expect("policy"),
        &knowledge,
        date!(2024 - 10 - 20),
    )
}

/// Tags open and close in order (the narrative uses no self-closing tags), and no
/// raw `<`, `>` or `&` appears in text.
fn assert_well_formed(xhtml: &str) {
    assert!(xhtml.starts_with("<div xmlns=\"http://www.w3.org/1999/xhtml\">"));
    let mut stack = Vec::new();
    let mut rest = xhtml;
    while let Some(open) = rest.find('<') {
        let text = &rest[..open];
        assert!(!text.contains('>'), "raw > in text: {text}");
        for (i, _) in text.match_indices('&') {
            let entity = &text[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;"]
                    .iter()
                    .any(|e| entity.starts_with(e)),
                "raw & in {text}"
            );
        }
        let close = rest[open..].find('>').expect("tag closes") + open;
        let tag = &rest[open + 1..close];
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(stack.pop(), Some(name.to_string()), "mismatched </{name}>");
        } else {
            stack.push(tag.split_whitespace().next().expect("name").to_string());
        }
        rest = &rest[close + 1..];
    }
    assert!(stack.is_empty(), "unclosed: {stack:?}");
}

#[test]
fn the_narrative_explains_a_trd_verdict() {
    let a = fixture("thase-rush-v");
    let text = &a.narrative.text;
    // Phenelzine started 6 days after nortriptyline: the safety block comes first.
    assert!(
        text.starts_with(
            "SAFETY:\n- MAOI and serotonergic antidepressant: phenelzine started 2023-10-21 6 days after the last day of nortriptyline (2023-10-15): 14 days needed after nortriptyline; serotonin syndrome risk\nTRD status: trd (>= 2 failed adequate trials in the current episode (policy default))"
        ),
        "{text}"
    );
    assert!(
        text.contains("- since 2023-01-09 (21 months); baseline PHQ-9 22 (severe)"),
        "{text}"
    );
    assert!(
        text.contains("- T1 sertraline 100 mg/day, 2023-01-09 to 2023-04-08: counted as failed — adequate (100 mg/day, 12.8 weeks at adequate dose), non-response: PHQ-9 22 on 2023-01-07 -> 21 on 2023-04-12 (4.5% reduction)"),
        "{text}"
    );
    assert!(text.contains("Thase-Rush V; MSM 9 moderate (duration 2 + severity 4 + failed treatments 2 + augmentation 0 + ECT 1); MGH-S 7"), "{text}");
    assert!(
        text.contains("- no TSH result in the last 12 months"),
        "{text}"
    );
    assert!(text.contains("- refer to psychiatry"), "{text}");
    // The safety block is never shortened; the summary under it stays short.
    let summary = text
        .lines()
        .skip_while(|l| !l.starts_with("TRD status:"))
        .count();
    assert!(summary <= 20, "readable in ten seconds: {summary} lines");
    assert_well_formed(&a.narrative.xhtml);
    assert!(a.narrative.xhtml.contains("&gt;= 2 failed adequate trials"));
}

#[test]
fn data_handling_findings_stay_out_of_the_clinical_narrative() {
    let a = fixture("malformed-resource");
    assert!(a.findings.iter().any(|f| f.code == "resource-unreadable"));
    assert!(
        !a.narrative.text.contains("unreadable"),
        "{}",
        a.narrative.text
    );
    assert_well_formed(&a.narrative.xhtml);
}

#[test]
fn safety_signals_open_the_narrative_and_are_not_repeated() {
    let a = fixture("cssrs-high-risk");
    let text = &a.narrative.text;
    let first_line = text.lines().nth(1).unwrap_or_default();
    assert!(
        first_line.starts_with("- C-SSRS suicidal intent or plan (Q4 or Q5) in the past month: yes on 2024-10-17: high risk, assess today"),
        "{text}"
    );
    assert_eq!(text.matches("C-SSRS suicidal intent").count(), 1, "{text}");
    assert!(
        text.contains("Suggestions:\n- assess suicide risk now (full C-SSRS or clinical interview) and agree a safety plan"),
        "{text}"
    );
    assert!(a
        .narrative
        .xhtml
        .contains("<p><b>SAFETY:</b></p><ul><li><b>C-SSRS suicidal intent"));
    assert_well_formed(&a.narrative.xhtml);
}

#[test]
fn function_is_said_in_one_line_beside_symptoms() {
    let impaired = fixture("phq9-responds-wsas-impaired");
    assert!(
        impaired.narrative.text.contains("Function:\n- T1 sertraline: PHQ-9 18 -> 8 (response), but WSAS 26 -> 22 on 2024-03-23 (severe impairment): symptoms improved, function still impaired\n"),
        "{}",
        impaired.narrative.text
    );
    assert_eq!(
        impaired
            .narrative
            .text
            .matches("function still impaired")
            .count(),
        1,
        "said once, not again under Findings"
    );
    let improving = fixture("wsas-improves-phq9-does-not");
    assert!(
        improving.narrative.text.contains("Function:\n- T1 sertraline: WSAS 28 -> 12 on 2024-03-28 (significant impairment), improved; symptoms: non-response\n"),
        "{}",
        improving.narrative.text
    );
    let unmeasured = fixture("trd-two-ssris");
    assert!(unmeasured.narrative.text.contains(
        "Function:\n- no functional measure (WSAS, SDS, Q-LES-Q-SF, ...) recorded in the current episode\n"
    ));
}

#[test]
fn psychotherapy_courses_are_listed() {
    let a = fixture("cbt-adequate-no-response");
    assert!(
        a.narrative.text.contains("Psychotherapy:\n- CBT 2024-04-17 to 2024-06-19: 10 sessions over 10 weeks (adequate); PHQ-9 18 -> 17 at best (5.5% reduction)\n"),
        "{}",
        a.narrative.text
    );
    let group = fixture("trd-ptsd-no-trauma-focused");
    assert!(
        group.narrative.text.contains("- group therapy 2024-04-17 to 2024-05-08: 4 sessions over 4 weeks (short), during T2\n"),
        "{}",
        group.narrative.text
    );
}
