//! A hook call as EHRs and test tools really send it: lenient in what it accepts
//! (`Patient/`-prefixed ids, `null` optional fields, a bare resource where a Bundle is
//! expected, objects where R4 wants arrays, DSTU2 `MedicationOrder` drafts, the legacy
//! `{response, resource}` prefetch wrapper), strict in what it requires (`hook`,
//! `hookInstance`, `context.patientId`).

use serde_json::{Map, Value};

use crate::config::Secret;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RequestError {
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    #[error("missing `{0}`")]
    Missing(&'static str),
    #[error("`fhirAuthorization` without `fhirServer`")]
    TokenWithoutServer,
}

/// One hook call, normalised.
#[derive(Debug)]
pub struct HookRequest {
    pub hook: String,
    pub hook_instance: String,
    /// `Patient/{id}`.
    pub patient: String,
    /// The user is the patient or a relative (patient portals): no clinician cards.
    pub user_is_patient: bool,
    pub fhir_server: Option<String>,
    pub access_token: Option<Secret>,
    /// Prefetch keys as sent (`null` kept: it means "nothing found").
    pub prefetch: Map<String, Value>,
    /// Draft orders: MedicationRequests (DSTU2 MedicationOrders converted), each with
    /// its id as sent.
    pub draft_orders: Vec<Value>,
    /// `context.selections` ("MedicationRequest/123"): order-select's focus.
    pub selections: Vec<String>,
}

/// The bare id of a reference or id (`Patient/1` and `1` are both `1`).
fn bare_id(value: &str) -> &str {
    value.rsplit('/').next().unwrap_or(value)
}

fn text<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

pub fn parse(body: &[u8]) -> Result<HookRequest, RequestError> {
    let mut value: Value =
        serde_json::from_slice(body).map_err(|e| RequestError::NotJson(e.to_string()))?;
    // Moved out, not copied: the prefetch is most of a hook call's bytes.
    let prefetch = match value.get_mut("prefetch").map(Value::take) {
        Some(Value::Object(keys)) => keys
            .into_iter()
            .map(|(k, v)| (k, unwrap_legacy(v)))
            .collect(),
        _ => Map::new(),
    };
    let hook = text(&value, "hook")
        .ok_or(RequestError::Missing("hook"))?
        .to_string();
    let hook_instance = text(&value, "hookInstance")
        .ok_or(RequestError::Missing("hookInstance"))?
        .to_string();
    let context = value
        .get("context")
        .filter(|c| c.is_object())
        .ok_or(RequestError::Missing("context"))?;
    let patient = text(context, "patientId")
        .map(|p| format!("Patient/{}", bare_id(p)))
        .ok_or(RequestError::Missing("context.patientId"))?;
    let user_is_patient = text(context, "userId")
        .is_some_and(|u| u.starts_with("Patient/") || u.starts_with("RelatedPerson/"));
    let fhir_server = text(&value, "fhirServer").map(|s| s.trim_end_matches('/').to_string());
    let access_token = value
        .get("fhirAuthorization")
        .and_then(|a| text(a, "access_token"))
        .map(Secret::new);
    if access_token.is_some() && fhir_server.is_none() {
        return Err(RequestError::TokenWithoutServer);
    }
    let draft_orders = context
        .get("draftOrders")
        .map(resources_of)
        .unwrap_or_default()
        .into_iter()
        .filter_map(as_medication_request)
        .collect();
    let selections = match context.get("selections") {
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_string)
            .collect(),
        Some(Value::String(one)) => vec![one.clone()],
        _ => Vec::new(),
    };
    Ok(HookRequest {
        hook,
        hook_instance,
        patient,
        user_is_patient,
        fhir_server,
        access_token,
        prefetch,
        draft_orders,
        selections,
    })
}

/// Pre-1.0 clients wrapped each prefetch value as `{"response": ..., "resource": ...}`.
fn unwrap_legacy(value: Value) -> Value {
    match value {
        Value::Object(mut map)
            if map.contains_key("response") && !map.contains_key("resourceType") =>
        {
            map.remove("resource").unwrap_or(Value::Null)
        }
        other => other,
    }
}

/// The resources of a Bundle (with or without `type`), of a bare resource, or of an
/// array of either.
pub fn resources_of(value: &Value) -> Vec<Value> {
    match value {
        Value::Array(items) => items.iter().flat_map(resources_of).collect(),
        Value::Object(map) if map.get("resourceType").and_then(Value::as_str) == Some("Bundle") => {
            let entries = match map.get("entry") {
                Some(Value::Array(entries)) => entries.iter().collect::<Vec<_>>(),
                Some(one @ Value::Object(_)) => vec![one],
                _ => Vec::new(),
            };
            entries
                .into_iter()
                .filter_map(|e| e.get("resource"))
                .flat_map(resources_of)
                .collect()
        }
        Value::Object(map) if map.contains_key("resourceType") => vec![value.clone()],
        _ => Vec::new(),
    }
}

/// Fields R4 MedicationRequest holds as arrays, which some clients send as one object.
const ARRAY_FIELDS: &[&str] = &[
    "identifier",
    "category",
    "reasonCode",
    "reasonReference",
    "dosageInstruction",
    "note",
    "basedOn",
    "insurance",
    "detectedIssue",
    "eventHistory",
    "contained",
    "supportingInformation",
];
const DOSAGE_ARRAY_FIELDS: &[&str] = &["doseAndRate", "additionalInstruction"];

fn as_array(map: &mut Map<String, Value>, key: &str) {
    if let Some(value) = map.get_mut(key) {
        if value.is_object() {
            *value = Value::Array(vec![value.take()]);
        } else if value.is_null() {
            map.remove(key);
        }
    }
}

/// A draft as an R4 MedicationRequest the reader takes: arrays where R4 wants them,
/// nulls dropped, a DSTU2 MedicationOrder converted; other resource types are not
/// medication orders and are left out.
fn as_medication_request(resource: Value) -> Option<Value> {
    let Value::Object(mut map) = resource else {
        return None;
    };
    map.retain(|_, v| !v.is_null());
    match map.get("resourceType").and_then(Value::as_str) {
        Some("MedicationRequest") => {}
        Some("MedicationOrder") => from_dstu2(&mut map),
        _ => return None,
    }
    for key in ARRAY_FIELDS {
        as_array(&mut map, key);
    }
    if let Some(Value::Array(dosages)) = map.get_mut("dosageInstruction") {
        for dosage in dosages.iter_mut().filter_map(Value::as_object_mut) {
            dose_into_dose_and_rate(dosage);
            for key in DOSAGE_ARRAY_FIELDS {
                as_array(dosage, key);
            }
        }
    }
    map.entry("intent").or_insert_with(|| Value::from("order"));
    map.entry("status").or_insert_with(|| Value::from("draft"));
    Some(Value::Object(map))
}

/// STU3 and DSTU2 put `doseQuantity` (or `doseRange`) directly on the dosage, and
/// so do some R4 examples; R4 has it in `doseAndRate`.
fn dose_into_dose_and_rate(dosage: &mut Map<String, Value>) {
    if dosage.contains_key("doseAndRate") {
        return;
    }
    for key in ["doseQuantity", "doseRange"] {
        if let Some(dose) = dosage.remove(key) {
            let mut rate = Map::new();
            rate.insert(key.into(), dose);
            dosage.insert(
                "doseAndRate".into(),
                Value::Array(vec![Value::Object(rate)]),
            );
            return;
        }
    }
}

/// DSTU2 MedicationOrder (the public sandbox's default server): `dateWritten` for
/// `authoredOn`, `patient` for `subject`.
fn from_dstu2(map: &mut Map<String, Value>) {
    map.insert("resourceType".into(), Value::from("MedicationRequest"));
    if let Some(written) = map.remove("dateWritten") {
        map.entry("authoredOn").or_insert(written);
    }
    if let Some(patient) = map.remove("patient") {
        map.entry("subject").or_insert(patient);
    }
    // DSTU2 status values (active, on-hold, completed, entered-in-error, stopped,
    // draft) are R4's too; "draft" is what a draft order is.
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_sandbox_shapes_are_accepted() {
        let body = json!({
            "hook": "order-select",
            "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "fhirServer": "https://launch.smarthealthit.org/v/r4/fhir/",
            "fhirAuthorization": null,
            "context": {
                "userId": "Practitioner/example",
                "patientId": "Patient/smart-1288992",
                "encounterId": null,
                "selections": ["MedicationRequest/request-123"],
                "draftOrders": { "resourceType": "Bundle", "entry": [{ "resource": {
                    "resourceType": "MedicationRequest", "id": "request-123", "status": "draft",
                    "category": { "coding": [{ "code": "outpatient" }] },
                    "reasonCode": { "text": "depression" },
                    "medicationCodeableConcept": { "coding": [{ "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "312940" }] },
                    "dosageInstruction": [{ "timing": { "repeat": { "frequency": 1, "period": 1, "periodUnit": "d" } },
                        "doseAndRate": { "doseQuantity": { "value": 1, "unit": "tablet" } } }]
                } }] }
            },
            "prefetch": { "patient": null, "old": { "response": { "status": "200" }, "resource": { "resourceType": "Patient", "id": "1" } } }
        });
        let request = parse(body.to_string().as_bytes()).expect("accepted");
        assert_eq!(request.patient, "Patient/smart-1288992");
        assert_eq!(
            request.fhir_server.as_deref(),
            Some("https://launch.smarthealthit.org/v/r4/fhir")
        );
        assert!(request.access_token.is_none());
        assert_eq!(request.prefetch["patient"], Value::Null);
        assert_eq!(request.prefetch["old"]["resourceType"], "Patient");
        assert_eq!(request.selections, ["MedicationRequest/request-123"]);
        let draft = &request.draft_orders[0];
        assert!(draft["category"].is_array());
        assert!(draft["reasonCode"].is_array());
        assert!(draft["dosageInstruction"][0]["doseAndRate"].is_array());
        assert_eq!(draft["intent"], "order");
    }

    #[test]
    fn a_dstu2_medication_order_becomes_a_medication_request() {
        let draft = as_medication_request(json!({
            "resourceType": "MedicationOrder", "id": "o1", "status": "draft",
            "dateWritten": "2024-10-20", "patient": { "reference": "Patient/1" },
            "medicationCodeableConcept": { "text": "sertraline 50 MG" },
            "dosageInstruction": [{ "doseQuantity": { "value": 1 } }]
        }))
        .expect("converted");
        assert_eq!(draft["resourceType"], "MedicationRequest");
        assert_eq!(draft["authoredOn"], "2024-10-20");
        assert_eq!(draft["subject"]["reference"], "Patient/1");
        assert_eq!(
            draft["dosageInstruction"][0]["doseAndRate"][0]["doseQuantity"]["value"],
            1
        );
    }

    #[test]
    fn what_is_required_is_required() {
        assert_eq!(
            parse(br#"{"hookInstance":"x","context":{"patientId":"1"}}"#).err(),
            Some(RequestError::Missing("hook"))
        );
        assert_eq!(
            parse(br#"{"hook":"patient-view","hookInstance":"x","context":{}}"#).err(),
            Some(RequestError::Missing("context.patientId"))
        );
        assert_eq!(
            parse(br#"{"hook":"patient-view","hookInstance":"x","context":{"patientId":"1"},"fhirAuthorization":{"access_token":"t"}}"#).err(),
            Some(RequestError::TokenWithoutServer)
        );
        assert!(matches!(parse(b"{"), Err(RequestError::NotJson(_))));
    }
}
