//! Subscription notifications in every shape EHRs send, reduced to what needs doing:
//! - R4 Backport IG notification Bundles (history; first entry a Parameters or
//!   SubscriptionStatus): handshake, heartbeat, event-notification with full-resource,
//!   id-only or empty payloads;
//! - a bare resource POSTed (Medplum style);
//! - `PUT {endpoint}/{Type}/{id}` (HAPI classic rest-hook), with or without a body;
//! - a body-less POST (classic rest-hook, no payload).
//!
//! A notification is a hint: it becomes "patient P needs assessment", "resource R
//! changed (find its patient)", or "re-query" when it names nothing.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

use crate::fhir::mapping::{normalise_reference, patient_of};
use crate::fhir::read::ObservationCodes;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shape {
    BackportBundle,
    BareResource,
    RestHookPut,
    Empty,
}

impl Shape {
    pub fn label(self) -> &'static str {
        match self {
            Shape::BackportBundle => "backport-bundle",
            Shape::BareResource => "bare-resource",
            Shape::RestHookPut => "rest-hook-put",
            Shape::Empty => "empty",
        }
    }
}

/// What a notification asks for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Target {
    /// Assess this patient.
    Patient { patient: String },
    /// This resource changed; read it to learn its patient (id-only payloads).
    Resource { reference: String },
    /// Something changed but the notification does not say what: re-query.
    Requery { subscription: Option<String> },
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reduced {
    pub shape: Shape,
    /// handshake | heartbeat | event-notification | query-status ... (Backport only)
    pub notification_type: Option<String>,
    pub subscription: Option<String>,
    pub events_since_start: Option<u64>,
    pub targets: Vec<Target>,
    /// Resources the service wrote itself: ignored, so write-back never loops.
    pub ignored_own: usize,
    /// Full resources the engine would not read (a vital sign, an encounter that is
    /// not psychotherapy): dropped here, so they cost the EHR no request.
    pub ignored_irrelevant: usize,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum NotificationError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("body is JSON but not a FHIR resource (no resourceType)")]
    NotFhir,
}

/// Reduces one notification. `path_resource` is `(Type, id)` from a
/// `PUT {endpoint}/{Type}/{id}` URL; `relevance`, when given, drops full resources the
/// engine would not read.
pub fn reduce(
    body: &[u8],
    path_resource: Option<(&str, &str)>,
    relevance: Option<&ObservationCodes>,
) -> Result<Reduced, NotificationError> {
    let text = std::str::from_utf8(body).map_err(|e| NotificationError::NotJson(e.to_string()))?;
    if text.trim().is_empty() {
        return Ok(match path_resource {
            Some((kind, id)) => single(
                Shape::RestHookPut,
                Target::Resource {
                    reference: format!("{kind}/{id}"),
                },
            ),
            None => single(Shape::Empty, Target::Requery { subscription: None }),
        });
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| NotificationError::NotJson(e.to_string()))?;
    let kind = value
        .get("resourceType")
        .and_then(Value::as_str)
        .ok_or(NotificationError::NotFhir)?;
    if kind == "Bundle" && is_notification_bundle(&value) {
        return Ok(backport(&value, relevance));
    }
    let shape = if path_resource.is_some() {
        Shape::RestHookPut
    } else {
        Shape::BareResource
    };
    let mut reduced = Reduced {
        shape,
        notification_type: None,
        subscription: None,
        events_since_start: None,
        targets: vec![],
        ignored_own: 0,
        ignored_irrelevant: 0,
    };
    if kind == "Bundle" {
        // A plain Bundle POSTed: every entry is a changed resource. References to a
        // Patient inside the Bundle (`urn:uuid:...` fullUrls) name that Patient.
        let entries = value.get("entry").and_then(Value::as_array);
        let local: HashMap<&str, String> = entries
            .into_iter()
            .flatten()
            .filter_map(|entry| {
                let url = entry.get("fullUrl").and_then(Value::as_str)?;
                let patient = entry.get("resource").and_then(patient_of)?;
                (entry
                    .pointer("/resource/resourceType")
                    .and_then(Value::as_str)
                    == Some("Patient"))
                .then_some((url, patient))
            })
            .collect();
        for entry in entries.into_iter().flatten() {
            let in_bundle = entry.get("resource").and_then(|r| {
                ["subject", "patient"].iter().find_map(|field| {
                    let reference = r.pointer(&format!("/{field}/reference"))?.as_str()?;
                    local.get(reference).cloned()
                })
            });
            if let Some(patient) = in_bundle {
                let resource = entry.get("resource");
                if !resource.is_some_and(crate::ehr::is_own_resource)
                    && resource.is_some_and(|r| matters(r, relevance))
                {
                    reduced.targets.push(Target::Patient { patient });
                    continue;
                }
            }
            add_resource(
                &mut reduced,
                entry.get("resource"),
                entry.get("fullUrl").and_then(Value::as_str),
                relevance,
            );
        }
    } else {
        add_resource(&mut reduced, Some(&value), None, relevance);
        if reduced.targets.is_empty() && reduced.ignored_own == 0 && reduced.ignored_irrelevant == 0
        {
            if let Some((kind, id)) = path_resource {
                reduced.targets.push(Target::Resource {
                    reference: format!("{kind}/{id}"),
                });
            }
        }
    }
    dedup(&mut reduced.targets);
    Ok(reduced)
}

fn single(shape: Shape, target: Target) -> Reduced {
    Reduced {
        shape,
        notification_type: None,
        subscription: None,
        events_since_start: None,
        targets: vec![target],
        ignored_own: 0,
        ignored_irrelevant: 0,
    }
}

fn is_notification_bundle(bundle: &Value) -> bool {
    let first = bundle
        .pointer("/entry/0/resource/resourceType")
        .and_then(Value::as_str);
    bundle.get("type").and_then(Value::as_str) == Some("history")
        && matches!(first, Some("Parameters" | "SubscriptionStatus"))
}

fn backport(bundle: &Value, relevance: Option<&ObservationCodes>) -> Reduced {
    let status = bundle
        .pointer("/entry/0/resource")
        .cloned()
        .unwrap_or(Value::Null);
    let status_info = StatusInfo::read(&status);
    let mut reduced = Reduced {
        shape: Shape::BackportBundle,
        notification_type: status_info.notification_type.clone(),
        subscription: status_info.subscription.clone(),
        events_since_start: status_info.events_since_start,
        targets: vec![],
        ignored_own: 0,
        ignored_irrelevant: 0,
    };
    let is_event = matches!(
        status_info.notification_type.as_deref(),
        Some("event-notification") | Some("query-event") | None
    );
    if !is_event {
        return reduced; // handshake, heartbeat, query-status: nothing to assess
    }
    for entry in bundle
        .get("entry")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .skip(1)
    {
        let full_url = entry.get("fullUrl").and_then(Value::as_str);
        match entry.get("resource") {
            Some(resource) => add_resource(&mut reduced, Some(resource), full_url, relevance),
            // id-only payload: only the fullUrl names the resource
            None => {
                if let Some(url) = full_url {
                    reduced.targets.push(Target::Resource {
                        reference: normalise_reference(url),
                    });
                }
            }
        }
    }
    if reduced.targets.is_empty() && reduced.ignored_own == 0 {
        // Focus references in the status, else nothing named at all: re-query.
        for focus in &status_info.focus {
            reduced.targets.push(Target::Resource {
                reference: normalise_reference(focus),
            });
        }
        if reduced.targets.is_empty() {
            reduced.targets.push(Target::Requery {
                subscription: status_info.subscription.clone(),
            });
        }
    }
    dedup(&mut reduced.targets);
    reduced
}

/// The patient a resource is about, or the resource itself to look up.
fn matters(resource: &Value, relevance: Option<&ObservationCodes>) -> bool {
    relevance.is_none_or(|codes| codes.matters(resource))
}

fn add_resource(
    reduced: &mut Reduced,
    resource: Option<&Value>,
    full_url: Option<&str>,
    relevance: Option<&ObservationCodes>,
) {
    let Some(resource) = resource else { return };
    if crate::ehr::is_own_resource(resource) {
        reduced.ignored_own += 1;
        return;
    }
    if !matters(resource, relevance) {
        reduced.ignored_irrelevant += 1;
        return;
    }
    let kind = resource
        .get("resourceType")
        .and_then(Value::as_str)
        .unwrap_or("");
    let id = resource.get("id").and_then(Value::as_str);
    let patient = patient_of(resource);
    match (patient, id, full_url) {
        (Some(patient), _, _) => reduced.targets.push(Target::Patient { patient }),
        (None, Some(id), _) if !kind.is_empty() => reduced.targets.push(Target::Resource {
            reference: format!("{kind}/{id}"),
        }),
        (None, _, Some(url)) => reduced.targets.push(Target::Resource {
            reference: normalise_reference(url),
        }),
        _ => {}
    }
}

fn dedup(targets: &mut Vec<Target>) {
    targets.sort();
    targets.dedup();
}

struct StatusInfo {
    notification_type: Option<String>,
    subscription: Option<String>,
    events_since_start: Option<u64>,
    focus: Vec<String>,
}

impl StatusInfo {
    /// From an R4 Backport `Parameters` or an R4B/R5 `SubscriptionStatus`.
    fn read(status: &Value) -> Self {
        if status.get("resourceType").and_then(Value::as_str) == Some("SubscriptionStatus") {
            return Self {
                notification_type: status
                    .get("type")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                subscription: status
                    .pointer("/subscription/reference")
                    .and_then(Value::as_str)
                    .map(normalise_reference),
                events_since_start: number(status.get("eventsSinceSubscriptionStart")),
                focus: status
                    .get("notificationEvent")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| {
                        e.pointer("/focus/reference")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .collect(),
            };
        }
        let params: Vec<&Value> = status
            .get("parameter")
            .and_then(Value::as_array)
            .map(|p| p.iter().collect())
            .unwrap_or_default();
        let named = |name: &str| {
            params
                .iter()
                .copied()
                .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
        };
        let mut focus = Vec::new();
        for event in params
            .iter()
            .filter(|p| p.get("name").and_then(Value::as_str) == Some("notification-event"))
        {
            for part in event
                .get("part")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if part.get("name").and_then(Value::as_str) == Some("focus") {
                    if let Some(r) = part
                        .pointer("/valueReference/reference")
                        .and_then(Value::as_str)
                    {
                        focus.push(r.to_string());
                    }
                }
            }
        }
        Self {
            notification_type: named("type")
                .and_then(|p| p.get("valueCode"))
                .and_then(Value::as_str)
                .map(str::to_string),
            subscription: named("subscription")
                .and_then(|p| p.pointer("/valueReference/reference"))
                .and_then(Value::as_str)
                .map(normalise_reference),
            events_since_start: named("events-since-subscription-start").and_then(|p| {
                number(p.get("valueString"))
                    .or(number(p.get("valueInteger64")))
                    .or(number(p.get("valueUnsignedInt")))
                    .or(number(p.get("valueInteger")))
            }),
            focus,
        }
    }
}

fn number(value: Option<&Value>) -> Option<u64> {
    match value? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn status(kind: &str, events: &str, focus: Option<&str>) -> Value {
        let mut params = vec![
            json!({ "name": "subscription", "valueReference": { "reference": "http://ehr/fhir/Subscription/s1" } }),
            json!({ "name": "topic", "valueCanonical": "http://ehr/topic/meds" }),
            json!({ "name": "status", "valueCode": "active" }),
            json!({ "name": "type", "valueCode": kind }),
            json!({ "name": "events-since-subscription-start", "valueString": events }),
        ];
        if let Some(f) = focus {
            params.push(json!({ "name": "notification-event", "part": [{ "name": "event-number", "valueString": events }, { "name": "focus", "valueReference": { "reference": f } }] }));
        }
        json!({ "resourceType": "Parameters", "parameter": params })
    }

    fn bundle(status: Value, entries: Vec<Value>) -> Vec<u8> {
        let mut all = vec![json!({ "fullUrl": "urn:uuid:status", "resource": status })];
        all.extend(entries);
        serde_json::to_vec(&json!({ "resourceType": "Bundle", "type": "history", "entry": all }))
            .expect("json")
    }

    fn order(id: &str, patient: &str) -> Value {
        json!({ "resourceType": "MedicationRequest", "id": id, "status": "active", "intent": "order", "subject": { "reference": patient } })
    }

    fn patient(p: &str) -> Target {
        Target::Patient { patient: p.into() }
    }

    #[test]
    fn handshake_and_heartbeat_ask_for_nothing() {
        for kind in ["handshake", "heartbeat"] {
            let r = reduce(&bundle(status(kind, "0", None), vec![]), None, None).expect("reads");
            assert_eq!(r.shape, Shape::BackportBundle);
            assert_eq!(r.notification_type.as_deref(), Some(kind));
            assert_eq!(r.subscription.as_deref(), Some("Subscription/s1"));
            assert!(r.targets.is_empty());
        }
    }

    #[test]
    fn full_resource_events_name_their_patients_once() {
        let body = bundle(
            status("event-notification", "7", Some("MedicationRequest/1")),
            vec![
                json!({ "fullUrl": "http://ehr/fhir/MedicationRequest/1", "resource": order("1", "Patient/a") }),
                json!({ "fullUrl": "http://ehr/fhir/MedicationRequest/2", "resource": order("2", "http://ehr/fhir/Patient/a") }),
                json!({ "fullUrl": "http://ehr/fhir/MedicationRequest/3", "resource": order("3", "Patient/b") }),
            ],
        );
        let r = reduce(&body, None, None).expect("reads");
        assert_eq!(r.events_since_start, Some(7));
        assert_eq!(r.targets, vec![patient("Patient/a"), patient("Patient/b")]);
    }

    /// An integration engine's transaction Bundle refers to its Patient by urn:uuid.
    #[test]
    fn a_plain_bundle_names_the_patient_its_urn_references_point_at() {
        let body = json!({ "resourceType": "Bundle", "type": "transaction", "entry": [
            { "fullUrl": "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a", "resource": { "resourceType": "Patient", "id": "p7" } },
            { "fullUrl": "urn:uuid:88f151c0-a954-468a-88bd-5ae15c08e059", "resource": order("m1", "urn:uuid:61ebe359-bfdc-4613-8bf2-c5e300945f0a") },
        ]});
        let r = reduce(&serde_json::to_vec(&body).expect("json"), None, None).expect("reads");
        assert_eq!(r.targets, vec![patient("Patient/p7")]);
    }

    #[test]
    fn id_only_events_name_resources_to_look_up() {
        let body = bundle(
            status("event-notification", "2", None),
            vec![json!({ "fullUrl": "http://ehr/fhir/MedicationDispense/9" })],
        );
        let r = reduce(&body, None, None).expect("reads");
        assert_eq!(
            r.targets,
            vec![Target::Resource {
                reference: "MedicationDispense/9".into()
            }]
        );
        // Only a focus in the status (R4B SubscriptionStatus):
        let status = json!({ "resourceType": "SubscriptionStatus", "type": "event-notification", "eventsSinceSubscriptionStart": "3",
            "subscription": { "reference": "Subscription/s2" }, "notificationEvent": [{ "eventNumber": "3", "focus": { "reference": "Observation/5" } }] });
        let r = reduce(&bundle(status, vec![]), None, None).expect("reads");
        assert_eq!(
            (r.events_since_start, r.targets),
            (
                Some(3),
                vec![Target::Resource {
                    reference: "Observation/5".into()
                }]
            )
        );
    }

    #[test]
    fn empty_events_ask_for_a_requery() {
        let r = reduce(
            &bundle(status("event-notification", "4", None), vec![]),
            None,
            None,
        )
        .expect("reads");
        assert_eq!(
            r.targets,
            vec![Target::Requery {
                subscription: Some("Subscription/s1".into())
            }]
        );
    }

    #[test]
    fn bare_resources_and_rest_hook_puts() {
        let body = serde_json::to_vec(&order("7", "Patient/c")).expect("json");
        let r = reduce(&body, None, None).expect("reads");
        assert_eq!(
            (r.shape, r.targets),
            (Shape::BareResource, vec![patient("Patient/c")])
        );
        let r = reduce(&body, Some(("MedicationRequest", "7")), None).expect("reads");
        assert_eq!(
            (r.shape, r.targets),
            (Shape::RestHookPut, vec![patient("Patient/c")])
        );
        let r = reduce(b"", Some(("MedicationRequest", "7")), None).expect("reads");
        assert_eq!(
            r.targets,
            vec![Target::Resource {
                reference: "MedicationRequest/7".into()
            }]
        );
        let r = reduce(b"  ", None, None).expect("reads");
        assert_eq!(
            (r.shape, r.targets),
            (Shape::Empty, vec![Target::Requery { subscription: None }])
        );
        let p = serde_json::to_vec(&json!({ "resourceType": "Patient", "id": "d" })).expect("json");
        assert_eq!(
            reduce(&p, None, None).expect("reads").targets,
            vec![patient("Patient/d")]
        );
    }

    #[test]
    fn resources_the_engine_would_not_read_are_dropped() {
        let knowledge = crate::clinical::Knowledge::embedded().expect("knowledge");
        let codes = ObservationCodes::from_knowledge(&knowledge);
        let observation = |id: &str, patient: &str, code: &str| {
            json!({ "resourceType": "Observation", "id": id, "status": "final",
                "subject": { "reference": patient },
                "code": { "coding": [{ "system": "http://loinc.org", "code": code }] } })
        };
        let body = bundle(
            status("event-notification", "2", None),
            vec![
                json!({ "fullUrl": "http://ehr/Observation/bp", "resource": observation("bp", "Patient/a", "8480-6") }),
                json!({ "fullUrl": "http://ehr/Observation/phq", "resource": observation("phq", "Patient/b", "44261-6") }),
                json!({ "fullUrl": "http://ehr/MedicationRequest/m", "resource": order("m", "Patient/c") }),
            ],
        );
        let r = reduce(&body, None, Some(&codes)).expect("reads");
        assert_eq!(r.targets, vec![patient("Patient/b"), patient("Patient/c")]);
        assert_eq!(r.ignored_irrelevant, 1);
        // Without the codes (intake from an integration engine) nothing is dropped.
        let all = reduce(&body, None, None).expect("reads");
        assert_eq!(all.targets.len(), 3);
        assert_eq!(all.ignored_irrelevant, 0);
        // A vital sign PUT to the rest-hook path is not looked up either.
        let put = serde_json::to_vec(&observation("bp", "Patient/a", "8480-6")).expect("json");
        let r = reduce(&put, Some(("Observation", "bp")), Some(&codes)).expect("reads");
        assert!(r.targets.is_empty(), "{:?}", r.targets);
        assert_eq!(r.ignored_irrelevant, 1);
    }

    #[test]
    fn the_services_own_resources_are_ignored() {
        let own = json!({ "resourceType": "Flag", "id": "f", "subject": { "reference": "Patient/a" },
            "meta": { "tag": [{ "system": "https://fhir.trd-sentinel.org/CodeSystem/trd-meta", "code": "trd-sentinel" }] } });
        let r = reduce(&serde_json::to_vec(&own).expect("json"), None, None).expect("reads");
        assert!(r.targets.is_empty());
        assert_eq!(r.ignored_own, 1);
        let body = bundle(
            status("event-notification", "5", None),
            vec![json!({ "fullUrl": "Flag/f", "resource": own })],
        );
        let r = reduce(&body, None, None).expect("reads");
        assert!(r.targets.is_empty(), "no requery either: it was ours");
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(matches!(
            reduce(b"{not json", None, None),
            Err(NotificationError::NotJson(_))
        ));
        assert_eq!(
            reduce(b"{\"hello\": 1}", None, None),
            Err(NotificationError::NotFhir)
        );
        assert!(matches!(
            reduce(&[0xff, 0xfe], None, None),
            Err(NotificationError::NotJson(_))
        ));
    }
}
