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
    let codes = Relevance::from_knowledge(&knowledge);
    let observation = |id: &str, patient: &str, code: &str| {
        json!({ "resourceType": "Observation", "id": id, "status": "final",
            "subject": { "reference": patient },
            "code": { "coding": [{ "system": "http://loinc.org", "code": code }] } })
    };
    let coded = |kind: &str, id: &str, patient: &str, system: &str, code: &str| {
        json!({ "resourceType": kind, "id": id, "subject": { "reference": patient },
            "code": { "coding": [{ "system": system, "code": code }] } })
    };
    const ICD10: &str = "http://hl7.org/fhir/sid/icd-10-cm";
    const SCT: &str = "http://snomed.info/sct";
    let body = bundle(
        status("event-notification", "6", None),
        vec![
            json!({ "fullUrl": "http://ehr/Observation/bp", "resource": observation("bp", "Patient/a", "8480-6") }),
            json!({ "fullUrl": "http://ehr/Observation/phq", "resource": observation("phq", "Patient/b", "44261-6") }),
            json!({ "fullUrl": "http://ehr/MedicationRequest/m", "resource": order("m", "Patient/c") }),
            // An ankle fracture and an appendectomy: dropped. Recurrent MDD written
            // with its dot (matched by the F33 prefix) and a CBT session: kept.
            json!({ "fullUrl": "http://ehr/Condition/fx", "resource": coded("Condition", "fx", "Patient/d", ICD10, "S82.6") }),
            json!({ "fullUrl": "http://ehr/Condition/mdd", "resource": coded("Condition", "mdd", "Patient/e", ICD10, "F33.1") }),
            json!({ "fullUrl": "http://ehr/Procedure/appx", "resource": coded("Procedure", "appx", "Patient/f", SCT, "80146002") }),
            json!({ "fullUrl": "http://ehr/Procedure/cbt", "resource": coded("Procedure", "cbt", "Patient/g", SCT, "228557008") }),
        ],
    );
    let r = reduce(&body, None, Some(&codes)).expect("reads");
    assert_eq!(
        r.targets,
        vec![
            patient("Patient/b"),
            patient("Patient/c"),
            patient("Patient/e"),
            patient("Patient/g")
        ]
    );
    assert_eq!(r.ignored_irrelevant, 3);
    // Without the codes (intake from an integration engine) nothing is dropped.
    let all = reduce(&body, None, None).expect("reads");
    assert_eq!(all.targets.len(), 7);
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

/// Backport IG (R4 `Parameters` and R4B `SubscriptionStatus`): the events' own numbers
/// are read, several to a notification.
#[test]
fn every_event_number_is_read() {
    let event = |n: &str, focus: &str| {
        json!({ "name": "notification-event", "part": [
            { "name": "event-number", "valueString": n },
            { "name": "focus", "valueReference": { "reference": focus } } ] })
    };
    let mut status = status("event-notification", "4", None);
    if let Some(params) = status["parameter"].as_array_mut() {
        params.extend([
            event("2", "MedicationRequest/1"),
            event("3", "MedicationRequest/2"),
            event("4", "MedicationRequest/3"),
        ]);
    }
    let r = reduce(&bundle(status, vec![]), None, None).expect("reads");
    assert_eq!(
        (r.events_since_start, r.event_numbers),
        (Some(4), vec![2, 3, 4])
    );

    // R4B, without the optional count.
    let status = json!({ "resourceType": "SubscriptionStatus", "type": "event-notification",
        "subscription": { "reference": "Subscription/s2" },
        "notificationEvent": [{ "eventNumber": "5", "focus": { "reference": "Observation/5" } },
                              { "eventNumber": "6", "focus": { "reference": "Observation/6" } }] });
    let r = reduce(&bundle(status, vec![]), None, None).expect("reads");
    assert_eq!((r.events_since_start, r.event_numbers), (None, vec![5, 6]));
}

/// A full-resource notification whose resources the engine would not read (a vital
/// sign) costs the EHR nothing: no fall back to its focus references.
#[test]
fn irrelevant_full_resources_are_not_looked_up_by_their_focus() {
    let knowledge = crate::clinical::Knowledge::embedded().expect("knowledge");
    let relevance = crate::fhir::read::Relevance::from_knowledge(&knowledge);
    let vital = json!({ "resourceType": "Observation", "id": "hr", "status": "final",
        "code": { "coding": [{ "system": "http://loinc.org", "code": "8867-4" }] },
        "subject": { "reference": "Patient/a" }, "valueQuantity": { "value": 72 } });
    let body = bundle(
        status("event-notification", "8", Some("Observation/hr")),
        vec![json!({ "fullUrl": "http://ehr/fhir/Observation/hr", "resource": vital })],
    );
    let r = reduce(&body, None, Some(&relevance)).expect("reads");
    assert_eq!((r.targets, r.ignored_irrelevant), (vec![], 1));
}
