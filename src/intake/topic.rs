//! What the service subscribes to: the R4 Backport topic (a `Basic`
//! SubscriptionTopic) and the classic criteria, one per watched resource type.
//! Observations, Conditions, Procedures and Encounters are narrowed to the codes the
//! engine reads (an Encounter by its psychotherapy type), so a vital sign, a blood
//! count, a fracture or a routine visit never notifies (and costs the EHR nothing): by
//! a FHIRPath trigger criterion on the topic, by `code=` (`type=`) on the classic
//! criteria where the codes can be listed (Observations, Procedures, Encounters).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::clinical::knowledge::CodeSelection;
use crate::fhir::read::Relevance;
use crate::resource_types;

/// The R4 Backport topic the service subscribes to.
pub const TOPIC_URL: &str = "https://fhir.trd-sentinel.org/topic/antidepressant-data";

/// A string literal in FHIRPath (single quotes, backslash escapes).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A FHIRPath clause true for a coding in the selection: exact codes, and `is-a`
/// prefixes compared with the dots removed (ICD-10-CM is written both ways).
fn coding_clause(selection: &CodeSelection) -> Option<String> {
    let mut by_system: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (system, code) in selection.exact_codes() {
        by_system
            .entry(system)
            .or_default()
            .push(format!("code = {}", literal(&code)));
    }
    for (system, prefix) in selection.prefixes() {
        by_system.entry(system).or_default().push(format!(
            "code.replace('.', '').startsWith({})",
            literal(&prefix)
        ));
    }
    if by_system.is_empty() {
        return None;
    }
    let clauses: Vec<String> = by_system
        .iter()
        .map(|(system, tests)| {
            format!(
                "(system = {} and ({}))",
                literal(system),
                tests.join(" or ")
            )
        })
        .collect();
    Some(clauses.join(" or "))
}

/// The topic's trigger criterion for a watched type: one of the engine's codes on
/// the resource before or after the change (so a diagnosis recoded out of the sets
/// still notifies once), for Observations on a component too (PHQ-9 item 9 in a
/// panel). `None` (a type read whole, or no codes known) leaves every resource in.
pub fn trigger_criterion(kind: &str, relevance: &Relevance) -> Option<String> {
    let clause = coding_clause(relevance.selection_for(kind)?)?;
    let codings = match kind {
        "Observation" => "select(code.coding | component.code.coding)",
        "Encounter" => "type.coding",
        _ => "code.coding",
    };
    Some(format!(
        "(%previous | %current).{codings}.where({clause}).exists()"
    ))
}

/// The topic as an R4 `Basic` with the 5.0/4.3 cross-version extensions, tagged `meta`.
pub fn topic(meta: Value, relevance: &Relevance) -> Value {
    let mut extension = vec![
        json!({ "url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic.url", "valueUri": TOPIC_URL }),
        json!({ "url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic.title", "valueString": "Antidepressant treatment and symptom-score data (trd-sentinel)" }),
    ];
    extension.extend(resource_types::watched().map(|kind| {
        let mut trigger = vec![
            json!({ "url": "resource", "valueUri": format!("http://hl7.org/fhir/StructureDefinition/{kind}") }),
            json!({ "url": "supportedInteraction", "valueCode": "create" }),
            json!({ "url": "supportedInteraction", "valueCode": "update" }),
        ];
        if let Some(criterion) = trigger_criterion(kind, relevance) {
            trigger.push(json!({ "url": "fhirPathCriteria", "valueString": criterion }));
        }
        json!({ "url": "http://hl7.org/fhir/4.3/StructureDefinition/extension-SubscriptionTopic.resourceTrigger", "extension": trigger })
    }));
    json!({ "resourceType": "Basic", "meta": meta,
        "code": { "coding": [{ "system": "http://hl7.org/fhir/fhir-types", "code": "SubscriptionTopic" }] },
        "extension": extension })
}

/// The classic criteria of one watched type: by code where the codes can be listed
/// ([`Relevance::code_search`]: Observations, Procedures, psychotherapy Encounters by
/// type); Conditions (ICD-10-CM `is-a` prefixes) and medications are asked for whole,
/// and intake drops what the engine would ignore.
pub fn classic_criteria(kind: &str, relevance: &Relevance) -> String {
    match relevance.code_search(kind) {
        Some((param, codes)) => format!("{kind}?{param}={codes}"),
        None => format!("{kind}?"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn relevance() -> Relevance {
        Relevance::from_knowledge(&crate::clinical::Knowledge::embedded().expect("knowledge"))
    }

    #[test]
    fn a_coding_clause_lists_codes_by_system_and_escapes_literals() {
        let selection = CodeSelection::from_exact([
            ("http://loinc.org".to_string(), "44261-6".to_string()),
            ("http://loinc.org".to_string(), "44250-9".to_string()),
            ("http://snomed.info/sct".to_string(), "it's".to_string()),
        ]);
        assert_eq!(
            coding_clause(&selection).as_deref(),
            Some("(system = 'http://loinc.org' and (code = '44250-9' or code = '44261-6')) or (system = 'http://snomed.info/sct' and (code = 'it\\'s'))")
        );
        assert_eq!(coding_clause(&CodeSelection::default()), None);
        assert_eq!(
            selection.token_list().as_deref(),
            Some("http://loinc.org|44250-9,http://loinc.org|44261-6,http://snomed.info/sct|it's")
        );
    }

    #[test]
    fn observations_conditions_and_procedures_are_narrowed_to_the_engines_codes() {
        let relevance = relevance();
        let observation =
            trigger_criterion("Observation", &relevance).expect("observation criterion");
        assert!(observation.starts_with(
            "(%previous | %current).select(code.coding | component.code.coding).where((system = 'http://loinc.org' and ("
        ), "{observation}");
        assert!(observation.contains("code = '44261-6'"), "PHQ-9 total");
        assert!(observation.contains("code = '44260-8'"), "PHQ-9 item 9");
        assert!(!observation.contains("8480-6"), "no blood pressure");

        let condition = trigger_criterion("Condition", &relevance).expect("condition criterion");
        assert!(
            condition.starts_with("(%previous | %current).code.coding.where("),
            "{condition}"
        );
        assert!(
            condition.contains("(system = 'http://hl7.org/fhir/sid/icd-10-cm' and (code = "),
            "{condition}"
        );
        assert!(
            condition.contains("code.replace('.', '').startsWith('F32')"),
            "MDD by prefix"
        );
        assert!(
            condition.contains("code.replace('.', '').startsWith('F31')"),
            "bipolar by prefix"
        );

        let procedure = trigger_criterion("Procedure", &relevance).expect("procedure criterion");
        assert!(procedure.starts_with("(%previous | %current).code.coding.where("));
        assert_eq!(trigger_criterion("MedicationRequest", &relevance), None);

        let classic = |kind: &str| classic_criteria(kind, &relevance);
        assert!(classic("Observation").starts_with("Observation?code="));
        assert!(classic("Observation").contains("http://loinc.org|44261-6,"));
        assert!(classic("Procedure").starts_with("Procedure?code="));
        // ICD-10-CM prefixes cannot be listed: Conditions are asked for whole.
        assert_eq!(classic("Condition"), "Condition?");
        assert_eq!(classic("MedicationRequest"), "MedicationRequest?");
        // Psychotherapy visits by type only: a routine visit never notifies.
        assert!(classic("Encounter").starts_with("Encounter?type="));
        assert!(
            classic("Encounter").contains("|90834"),
            "{}",
            classic("Encounter")
        );
        let encounter = trigger_criterion("Encounter", &relevance).expect("encounter criterion");
        assert!(encounter.starts_with("(%previous | %current).type.coding.where("));

        let topic = topic(json!({}), &relevance);
        let triggers_with_criteria: Vec<String> = topic["extension"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e.to_string().contains("fhirPathCriteria"))
            .filter_map(|e| e.pointer("/extension/0/valueUri").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        assert_eq!(
            triggers_with_criteria,
            [
                "http://hl7.org/fhir/StructureDefinition/Observation",
                "http://hl7.org/fhir/StructureDefinition/Condition",
                "http://hl7.org/fhir/StructureDefinition/Procedure",
                "http://hl7.org/fhir/StructureDefinition/Encounter"
            ]
        );
    }
}
