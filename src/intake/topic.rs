//! What the service subscribes to: the R4 Backport topic (a `Basic`
//! SubscriptionTopic) and the classic criteria, one per watched resource type.
//! Observations are narrowed to the score and lab codes the engine reads, so a vital
//! sign or a blood count never notifies (and costs the EHR nothing): by a FHIRPath
//! trigger criterion on the topic, by `code=` on the classic criteria.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::reconcile::WATCHED_TYPES;

/// The R4 Backport topic the service subscribes to.
pub const TOPIC_URL: &str = "https://fhir.trd-sentinel.org/topic/antidepressant-data";

/// A string literal in FHIRPath (single quotes, backslash escapes).
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The topic's trigger criterion for Observations: one of these codes on the
/// Observation or on one of its components (PHQ-9 item 9 in a panel). `None` (no
/// codes known) leaves every Observation in.
pub fn observation_criterion(codes: &[(String, String)]) -> Option<String> {
    let mut by_system: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (system, code) in codes {
        by_system.entry(system).or_default().push(code);
    }
    if by_system.is_empty() {
        return None;
    }
    let clauses: Vec<String> = by_system
        .iter()
        .map(|(system, codes)| {
            let any_code: Vec<String> = codes
                .iter()
                .map(|c| format!("code = {}", literal(c)))
                .collect();
            format!(
                "(system = {} and ({}))",
                literal(system),
                any_code.join(" or ")
            )
        })
        .collect();
    Some(format!(
        "(%current.code.coding | %current.component.code.coding).where({}).exists()",
        clauses.join(" or ")
    ))
}

/// The topic as an R4 `Basic` with the 5.0/4.3 cross-version extensions, tagged `meta`.
pub fn topic(meta: Value, observation_codes: &[(String, String)]) -> Value {
    let mut extension = vec![
        json!({ "url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic.url", "valueUri": TOPIC_URL }),
        json!({ "url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic.title", "valueString": "Antidepressant treatment and symptom-score data (trd-sentinel)" }),
    ];
    extension.extend(WATCHED_TYPES.iter().map(|kind| {
        let mut trigger = vec![
            json!({ "url": "resource", "valueUri": format!("http://hl7.org/fhir/StructureDefinition/{kind}") }),
            json!({ "url": "supportedInteraction", "valueCode": "create" }),
            json!({ "url": "supportedInteraction", "valueCode": "update" }),
        ];
        if *kind == "Observation" {
            if let Some(criterion) = observation_criterion(observation_codes) {
                trigger.push(json!({ "url": "fhirPathCriteria", "valueString": criterion }));
            }
        }
        json!({ "url": "http://hl7.org/fhir/4.3/StructureDefinition/extension-SubscriptionTopic.resourceTrigger", "extension": trigger })
    }));
    json!({ "resourceType": "Basic", "meta": meta,
        "code": { "coding": [{ "system": "http://hl7.org/fhir/fhir-types", "code": "SubscriptionTopic" }] },
        "extension": extension })
}

/// The classic criteria of one watched type: Observations by code, the rest whole.
pub fn classic_criteria(kind: &str, observation_codes: &[(String, String)]) -> String {
    if kind == "Observation" && !observation_codes.is_empty() {
        let codes: Vec<String> = observation_codes
            .iter()
            .map(|(system, code)| format!("{system}|{code}"))
            .collect();
        return format!("Observation?code={}", codes.join(","));
    }
    format!("{kind}?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_are_narrowed_to_the_engines_codes() {
        let codes = vec![
            ("http://loinc.org".to_string(), "44261-6".to_string()),
            ("http://loinc.org".to_string(), "44250-9".to_string()),
            ("http://snomed.info/sct".to_string(), "it's".to_string()),
        ];
        assert_eq!(
            observation_criterion(&codes).as_deref(),
            Some("(%current.code.coding | %current.component.code.coding).where((system = 'http://loinc.org' and (code = '44261-6' or code = '44250-9')) or (system = 'http://snomed.info/sct' and (code = 'it\\'s'))).exists()")
        );
        assert_eq!(observation_criterion(&[]), None);
        assert_eq!(
            classic_criteria("Observation", &codes[..2]),
            "Observation?code=http://loinc.org|44261-6,http://loinc.org|44250-9"
        );
        assert_eq!(classic_criteria("Condition", &codes), "Condition?");
        let topic = topic(json!({}), &codes);
        let observation_trigger = topic["extension"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e.to_string().contains("StructureDefinition/Observation"))
            .expect("an Observation trigger");
        assert!(observation_trigger.to_string().contains("fhirPathCriteria"));
    }
}
