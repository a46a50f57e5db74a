//! What the EHR holds against what the assessment wants: the plan of one
//! transaction (changed or new resources, retirements, repairs, a Provenance).
//! Unchanged content (same hash) is not rewritten.

use serde_json::{json, Map, Value};

use super::{
    hash_of, is_live, kept_in_step, own_meta, profile_of, repair, short_hash,
    written_without_conditions, Desired, Existing, Plan, HASH_EXTENSION, OWN_TAG_SYSTEM,
};
use crate::clinical::assessment::Assessment;
use crate::config::WritebackSettings;
use crate::fhir::urn::urn_for;

/// Reads one of the service's resources back from the EHR.
pub fn existing_from(resource: &Value, identifier_system: &str) -> Option<Existing> {
    let tagged = resource
        .pointer("/meta/tag")
        .and_then(Value::as_array)
        .is_some_and(|tags| {
            tags.iter()
                .any(|t| t.get("system").and_then(Value::as_str) == Some(OWN_TAG_SYSTEM))
        });
    if !tagged {
        return None;
    }
    // An array, or one object (Composition.identifier is 0..1).
    let identifiers = match resource.get("identifier")? {
        Value::Array(list) => list.iter().collect::<Vec<_>>(),
        one => vec![one],
    };
    let identifier = identifiers
        .into_iter()
        .find(|i| i.get("system").and_then(Value::as_str) == Some(identifier_system))?
        .get("value")
        .and_then(Value::as_str)?
        .to_string();
    let hash = resource
        .get("extension")
        .and_then(Value::as_array)
        .and_then(|exts| {
            exts.iter()
                .find(|e| e.get("url").and_then(Value::as_str) == Some(HASH_EXTENSION))
        })
        .and_then(|e| e.get("valueString").and_then(Value::as_str))
        .map(str::to_string);
    Some(Existing {
        resource_type: resource.get("resourceType")?.as_str()?.to_string(),
        id: resource.get("id")?.as_str()?.to_string(),
        identifier,
        hash,
        body: resource.clone(),
    })
}

fn retired_status(resource_type: &str) -> Option<&'static str> {
    match resource_type {
        "Flag" => Some("inactive"),
        "DetectedIssue" => Some("cancelled"),
        "ServiceRequest" => Some("revoked"),
        // A summary no longer wanted (no referral suggested now) stays in the chart
        // as it was written, marked superseded; a Composition has no such status and
        // is left as the DocumentReference's history.
        "DocumentReference" => Some("superseded"),
        _ => None,
    }
}

/// Decides what to write: changed or new resources, retirements, and a Provenance
/// for the write.
pub fn plan(
    a: &Assessment,
    desired: Vec<Desired>,
    existing: &[Existing],
    settings: &WritebackSettings,
) -> Plan {
    let system = settings.identifier_system.as_str();
    let split = repair::split(existing);
    let existing = &split.kept[..];
    let find = |kind: &str, identifier: &str| {
        existing
            .iter()
            .find(|e| e.resource_type == kind && e.identifier == identifier)
    };
    let mut plan = Plan::default();
    let mut bodies: Vec<(String, &'static str, String, Value)> = Vec::new(); // (fullUrl, type, identifier, body)

    // Bodies are moved, not copied, from here into the transaction: the copies were
    // a write-back's largest cost.
    let wanted: Vec<(&'static str, String)> = desired
        .iter()
        .map(|d| (d.resource_type, d.identifier.clone()))
        .collect();
    for d in desired {
        let current = find(d.resource_type, &d.identifier);
        if current.is_some_and(|e| e.hash.as_deref() == Some(d.hash.as_str())) {
            plan.unchanged += 1;
            continue;
        }
        if d.resource_type == "Flag" && current.is_none() && d.body["status"] == "inactive" {
            continue; // nothing to say: never flagged
        }
        let mut body = d.body;
        for (pointer, value) in d.volatile {
            set_path(&mut body, pointer, value);
        }
        with_hash(&mut body, &d.hash);
        plan.written
            .push(format!("{} {}", d.resource_type, d.identifier));
        bodies.push((
            urn_for(&format!("{}|{}", d.resource_type, d.identifier)),
            d.resource_type,
            d.identifier,
            body,
        ));
    }

    for e in existing {
        let is_wanted = wanted
            .iter()
            .any(|(kind, identifier)| *kind == e.resource_type && *identifier == e.identifier);
        let Some(status) = retired_status(&e.resource_type) else {
            continue;
        };
        if is_wanted || !is_live(&e.body) {
            continue;
        }
        let mut body = e.body.clone();
        if let Some(map) = body.as_object_mut() {
            map.remove("id");
            map.remove("meta");
            map.remove("extension");
        }
        body["status"] = json!(status);
        body["meta"] = own_meta();
        body["meta"]["profile"] = json!([profile_of(&e.resource_type)]);
        if e.resource_type == "Flag" {
            set_path(&mut body, "period/end", json!(a.as_of.to_string()));
        }
        let hash = hash_of(&body);
        with_hash(&mut body, &hash);
        let kind: &'static str = kept_in_step()
            .find(|k| *k == e.resource_type)
            .unwrap_or("Flag");
        bodies.push((
            urn_for(&format!("{}|{}", e.resource_type, e.identifier)),
            kind,
            e.identifier.clone(),
            body,
        ));
        plan.retired
            .push(format!("{} {} -> {status}", e.resource_type, e.identifier));
    }

    // Resolve the placeholders (the assessment Observation, the summary Composition):
    // the entry written now, else the resource already there, else dropped.
    for (placeholder, kind, suffix) in super::PLACEHOLDERS {
        let identifier = format!("{}/{suffix}", a.patient);
        let target = bodies
            .iter()
            .find(|(_, k, i, _)| k == kind && *i == identifier)
            .map(|(url, ..)| url.clone())
            .or_else(|| find(kind, &identifier).map(|e| format!("{kind}/{}", e.id)));
        for (_, _, _, body) in &mut bodies {
            resolve_placeholder(body, placeholder, target.as_deref());
        }
    }

    let mut requests = Vec::with_capacity(bodies.len());
    for (_, kind, identifier, body) in &mut bodies {
        let unconditional = written_without_conditions(kind);
        let by_id = split
            .repaired_id(kind, identifier)
            .map(str::to_string)
            .or_else(|| {
                find(kind, identifier)
                    .filter(|_| unconditional)
                    .map(|e| e.id.clone())
            });
        let (method, url) = match by_id {
            Some(id) => {
                body["id"] = json!(id);
                ("PUT", format!("{kind}/{id}"))
            }
            None if unconditional => ("POST", kind.to_string()),
            None => (
                "PUT",
                format!(
                    "{kind}?identifier={}",
                    query_escape(&format!("{system}|{identifier}"))
                ),
            ),
        };
        requests.push(json!({ "method": method, "url": url }));
    }
    let provenance = (!bodies.is_empty() || !split.duplicates.is_empty())
        && settings.resources.iter().any(|r| r == "Provenance");
    let provenance = provenance.then(|| provenance_entry(a, &bodies, system));
    for ((full_url, _, _, body), request) in bodies.into_iter().zip(requests) {
        let mut entry = serde_json::Map::new();
        entry.insert("fullUrl".into(), Value::String(full_url));
        entry.insert("resource".into(), body);
        entry.insert("request".into(), request);
        plan.entries.push(Value::Object(entry));
    }
    for duplicate in &split.duplicates {
        let (entry, label) = repair::retirement(duplicate, system);
        plan.entries.push(entry);
        plan.retired.push(label);
    }
    plan.entries.extend(provenance);
    plan
}

fn provenance_entry(
    a: &Assessment,
    bodies: &[(String, &'static str, String, Value)],
    system: &str,
) -> Value {
    let mut sources: Vec<String> = a
        .trials
        .iter()
        .flat_map(|t| t.evidence.iter().cloned())
        .collect();
    sources.extend(a.episode.evidence.iter().cloned());
    sources.sort();
    sources.dedup();
    let content: Vec<&Value> = bodies.iter().map(|(_, _, _, b)| b).collect();
    // Provenance has no identifier in R4: a tag names this write, and the create is
    // conditional on it, so a retried transaction cannot add a second Provenance.
    let write_tag = format!(
        "write-{}-{}",
        a.as_of,
        short_hash(&serde_json::to_string(&content).unwrap_or_default())
    );
    let mut meta = own_meta();
    if let Some(tags) = meta["tag"].as_array_mut() {
        tags.push(json!({ "system": OWN_TAG_SYSTEM, "code": write_tag }));
    }
    meta["profile"] = json!([profile_of("Provenance")]);
    let mut body = json!({
        "resourceType": "Provenance",
        "meta": meta,
        "target": bodies.iter().map(|(url, ..)| json!({ "reference": url })).collect::<Vec<_>>(),
        "recorded": format!("{}T00:00:00Z", a.as_of),
        "policy": [format!("https://fhir.trd-sentinel.org/policy/{}", a.policy)],
        "activity": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation", "code": "UPDATE", "display": "revise" }] },
        "agent": [{
            "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type", "code": "assembler", "display": "Assembler" }] },
            "who": { "identifier": { "system": system, "value": "trd-sentinel" }, "display": concat!("trd-sentinel ", env!("CARGO_PKG_VERSION")) }
        }],
    });
    if !sources.is_empty() {
        body["entity"] = sources
            .iter()
            .map(|s| json!({ "role": "source", "what": { "reference": s } }))
            .collect();
    }
    json!({
        "fullUrl": urn_for(&format!("{}|{write_tag}", a.patient)),
        "resource": body,
        "request": { "method": "POST", "url": "Provenance", "ifNoneExist": format!("_tag={}", query_escape(&format!("{OWN_TAG_SYSTEM}|{write_tag}"))) },
    })
}

fn with_hash(body: &mut Value, hash: &str) {
    let ext = json!({ "url": HASH_EXTENSION, "valueString": hash });
    match body.get_mut("extension").and_then(Value::as_array_mut) {
        Some(list) => list.push(ext),
        None => body["extension"] = json!([ext]),
    }
}

fn set_path(body: &mut Value, path: &str, value: Value) {
    let mut target = body;
    let parts: Vec<&str> = path.split('/').collect();
    for part in &parts[..parts.len() - 1] {
        if !target.get(*part).is_some_and(Value::is_object) {
            target[*part] = Value::Object(Map::new());
        }
        target = &mut target[*part];
    }
    target[parts[parts.len() - 1]] = value;
}

/// Replaces a placeholder with a real reference, or drops the element holding it
/// when the resource it stands for is not written.
fn resolve_placeholder(value: &mut Value, placeholder: &str, target: Option<&str>) {
    match value {
        Value::Object(map) => {
            if map.get("reference").and_then(Value::as_str) == Some(placeholder) {
                match target {
                    Some(t) => {
                        map.insert("reference".into(), json!(t));
                    }
                    None => map.clear(),
                }
                return;
            }
            for v in map.values_mut() {
                resolve_placeholder(v, placeholder, target);
            }
            map.retain(|_, v| !(v.is_object() && v.as_object().is_some_and(Map::is_empty)));
        }
        Value::Array(items) => {
            for v in items.iter_mut() {
                resolve_placeholder(v, placeholder, target);
            }
            items.retain(|v| !(v.is_object() && v.as_object().is_some_and(Map::is_empty)));
        }
        _ => {}
    }
}

fn query_escape(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
