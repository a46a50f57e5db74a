//! Write-back: the resources an assessment implies (Flag, assessment Observation,
//! DetectedIssue per finding, ServiceRequest proposal per suggestion, Provenance),
//! compared with what the EHR already holds, sent as one idempotent transaction.
//!
//! - Every resource carries a stable identifier and the service's tag; updates are
//!   conditional on the identifier, so replays and retries cannot duplicate.
//! - A content hash (an extension) is compared first: unchanged content is not
//!   rewritten, so no new versions pile up.
//! - What no longer applies is retired (Flag inactive, DetectedIssue cancelled,
//!   ServiceRequest revoked), never deleted.

use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use super::client::{FhirClient, FhirError, Idempotency};
use crate::clinical::assessment::Assessment;
use crate::clinical::finding::{codes, Severity};
use crate::clinical::response::ResponseClass;
use crate::clinical::status::TrdStatus;
use crate::config::WritebackSettings;

pub const OWN_TAG_SYSTEM: &str = "https://fhir.trd-sentinel.org/CodeSystem/trd-meta";
pub const OWN_TAG_CODE: &str = "trd-sentinel";
pub const HASH_EXTENSION: &str = "https://fhir.trd-sentinel.org/StructureDefinition/content-hash";
pub const ASSESSMENT_SYSTEM: &str = "https://fhir.trd-sentinel.org/CodeSystem/trd-assessment";
const STATUS_SYSTEM: &str = "https://fhir.trd-sentinel.org/CodeSystem/trd-status";
const FINDING_SYSTEM: &str = "https://fhir.trd-sentinel.org/CodeSystem/trd-finding";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";

pub use crate::config::WRITTEN_TYPES;

mod repair;

fn kept_in_step() -> impl Iterator<Item = &'static str> {
    WRITTEN_TYPES.iter().copied().filter(|k| *k != "Provenance")
}

/// The search parameter that finds the service's own resources (Flags, Subscriptions,
/// topics...): everything it writes carries this tag.
pub fn own_tag_search() -> (&'static str, String) {
    ("_tag", format!("{OWN_TAG_SYSTEM}|{OWN_TAG_CODE}"))
}

/// Placeholder for a reference to this patient's assessment Observation, resolved
/// when the transaction is planned (so it does not change the content hash).
const ASSESSMENT_REF: &str = "@assessment";

/// Statuses that raise an active Flag.
const FLAGGED: &[TrdStatus] = &[
    TrdStatus::Trd,
    TrdStatus::OneFailedTrial,
    TrdStatus::PartialResponseDepression,
    TrdStatus::ExcludedBipolarSpectrum,
];

/// A resource as the assessment wants it.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub resource_type: &'static str,
    pub identifier: String,
    /// The body, hashed (no volatile fields, no resolved self-references).
    pub body: Value,
    /// Fields that may differ between runs without being a change (dates of the run).
    pub volatile: Vec<(&'static str, Value)>,
    pub hash: String,
}

/// One of the service's resources already on the EHR.
#[derive(Debug, Clone, PartialEq)]
pub struct Existing {
    pub resource_type: String,
    pub id: String,
    pub identifier: String,
    pub hash: Option<String>,
    pub body: Value,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Plan {
    /// Transaction entries.
    pub entries: Vec<Value>,
    /// "Flag Patient/1/trd" per entry written (created or updated).
    pub written: Vec<String>,
    pub retired: Vec<String>,
    pub unchanged: usize,
}

impl Plan {
    pub fn transaction(&self) -> Value {
        json!({ "resourceType": "Bundle", "type": "transaction", "entry": self.entries })
    }
}

fn hash_of(body: &Value) -> String {
    // serde_json maps are ordered by key, so this serialisation is canonical.
    let digest = Sha256::digest(body.to_string().as_bytes());
    format!(
        "sha256:{}",
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// A urn:uuid made from a stable name, so the same entry gets the same fullUrl.
fn urn_for(name: &str) -> String {
    let d = Sha256::digest(name.as_bytes());
    let h: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn own_meta() -> Value {
    json!({ "tag": [{ "system": OWN_TAG_SYSTEM, "code": OWN_TAG_CODE, "display": "Written by trd-sentinel" }] })
}

/// The profile (profiles/structuredefinitions) each written type claims.
fn profile_of(resource_type: &str) -> String {
    let id = match resource_type {
        "Flag" => "trd-flag",
        "Observation" => "trd-assessment",
        "DetectedIssue" => "trd-detected-issue",
        "ServiceRequest" => "trd-service-request-proposal",
        _ => "trd-provenance",
    };
    format!("https://fhir.trd-sentinel.org/StructureDefinition/{id}")
}

fn desired(
    resource_type: &'static str,
    system: &str,
    identifier: String,
    mut body: Value,
    volatile: Vec<(&'static str, Value)>,
) -> Desired {
    body["identifier"] = json!([{ "system": system, "value": identifier }]);
    body["meta"] = own_meta();
    body["meta"]["profile"] = json!([profile_of(resource_type)]);
    let hash = hash_of(&body);
    Desired {
        resource_type,
        identifier,
        body,
        volatile,
        hash,
    }
}

fn narrative(div: &str) -> Value {
    json!({ "status": "generated", "div": div })
}

fn text_div(text: &str) -> Value {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    narrative(&format!(
        "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>{escaped}</p></div>"
    ))
}

fn status_coding(status: TrdStatus) -> Value {
    let display = match status {
        TrdStatus::Trd => "Treatment-resistant depression",
        TrdStatus::OneFailedTrial => "One failed trial (at risk)",
        TrdStatus::PartialResponseDepression => "Partial-response depression",
        TrdStatus::ExcludedBipolarSpectrum => "Excluded: bipolar spectrum",
        TrdStatus::Responding => "Responding",
        TrdStatus::Remission => "Remission",
        TrdStatus::NotTreated => "Not treated",
        TrdStatus::InadequatelyTreated => "Inadequately treated",
        TrdStatus::InsufficientData => "Insufficient data",
        TrdStatus::NoDepressionEvidence => "No depression evidence",
    };
    json!({ "system": STATUS_SYSTEM, "code": status.code(), "display": display })
}

/// When the flagged criteria were first met: the outcome date of the failure that
/// completed them (stable across runs, unlike the run date).
fn criteria_met_on(a: &Assessment) -> String {
    let mut failure_dates: Vec<String> = a
        .trials
        .iter()
        .zip(&a.status.trials)
        .filter(|(t, c)| {
            c.counted
                && matches!(
                    t.response.class,
                    ResponseClass::NonResponse | ResponseClass::Partial
                )
        })
        .filter_map(|(t, _)| t.response.outcome.as_ref().map(|o| o.date.to_string()))
        .collect();
    failure_dates.sort();
    let needed = if a.trd_status == TrdStatus::Trd {
        a.failed_adequate_trials.max(1) as usize
    } else {
        1
    };
    failure_dates
        .get(needed.saturating_sub(1))
        .cloned()
        .unwrap_or_else(|| a.episode.start.unwrap_or(a.as_of).to_string())
}

/// The resources this assessment implies, for the configured types.
pub fn desired_resources(a: &Assessment, settings: &WritebackSettings) -> Vec<Desired> {
    let system = settings.identifier_system.as_str();
    let patient = json!({ "reference": a.patient });
    let wants = |t: &str| settings.resources.iter().any(|r| r == t);
    let mut out = Vec::new();

    if wants("Observation") {
        let mut components = vec![
            component(
                "failed-adequate-trials",
                "Failed adequate trials",
                json!({ "valueInteger": a.failed_adequate_trials }),
            ),
            component(
                "adequate-trials",
                "Adequate trials",
                json!({ "valueInteger": a.trials.iter().filter(|t| t.adequacy == crate::clinical::adequacy::Adequacy::Adequate).count() }),
            ),
            component(
                "thase-rush-stage",
                "Thase-Rush stage",
                json!({ "valueInteger": a.thase_rush_stage.stage }),
            ),
            component(
                "mgh-s-score",
                "MGH-S score",
                json!({ "valueQuantity": { "value": a.mgh_s.score, "unit": "{score}", "system": "http://unitsofmeasure.org", "code": "{score}" } }),
            ),
        ];
        if let Some(msm) = &a.msm {
            components.push(component(
                "msm-score",
                "Maudsley Staging Method score",
                json!({ "valueInteger": msm.score }),
            ));
            components.push(component(
                "msm-band",
                "Maudsley Staging Method band",
                json!({ "valueString": msm.band }),
            ));
        }
        let mut derived: Vec<String> = a
            .trials
            .iter()
            .flat_map(|t| [t.response.baseline.as_ref(), t.response.outcome.as_ref()])
            .flatten()
            .map(|p| p.source.clone())
            .filter(|s| s.starts_with("Observation/"))
            .collect();
        derived.sort();
        derived.dedup();
        let mut body = json!({
            "resourceType": "Observation",
            "status": "final",
            "code": { "coding": [{ "system": ASSESSMENT_SYSTEM, "code": "trd-assessment", "display": "Treatment-resistant depression assessment" }] },
            "subject": patient,
            "valueCodeableConcept": { "coding": [status_coding(a.trd_status)], "text": a.status.explanation },
            "component": components,
            "note": [{ "text": format!("policy {}; rule: {}", a.policy, a.status.rule) }],
            "text": narrative(&a.narrative.xhtml),
        });
        if !derived.is_empty() {
            body["derivedFrom"] = derived.iter().map(|r| json!({ "reference": r })).collect();
        }
        let volatile = vec![("effectiveDateTime", json!(a.as_of.to_string()))];
        out.push(desired(
            "Observation",
            system,
            format!("{}/assessment", a.patient),
            body,
            volatile,
        ));
    }

    if wants("Flag") {
        let active = FLAGGED.contains(&a.trd_status);
        let mut body = json!({
            "resourceType": "Flag",
            "status": if active { "active" } else { "inactive" },
            "category": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/flag-category", "code": "clinical", "display": "Clinical" }] }],
            "code": { "coding": [status_coding(a.trd_status)], "text": a.status.explanation },
            "subject": patient,
            "period": { "start": criteria_met_on(a) },
            "text": text_div(a.narrative.text.lines().next().unwrap_or_default()),
        });
        if wants("Observation") {
            body["extension"] = json!([{ "url": "http://hl7.org/fhir/StructureDefinition/flag-detail", "valueReference": { "reference": ASSESSMENT_REF } }]);
        }
        let volatile = if active {
            vec![]
        } else {
            vec![("period/end", json!(a.as_of.to_string()))]
        };
        out.push(desired(
            "Flag",
            system,
            format!("{}/trd", a.patient),
            body,
            volatile,
        ));
    }

    if wants("DetectedIssue") {
        for finding in a.findings.iter().filter(|f| f.is_clinical()) {
            let mut coding = vec![json!({ "system": FINDING_SYSTEM, "code": finding.code })];
            if let Some((code, display)) = act_code(&finding.code) {
                coding.push(json!({ "system": ACT_CODE, "code": code, "display": display }));
            }
            let key = short_hash(&finding.evidence.join(","));
            let mut body = json!({
                "resourceType": "DetectedIssue",
                "status": "final",
                "code": { "coding": coding, "text": finding.code },
                "severity": match finding.severity { Severity::High | Severity::Safety => "high", Severity::Warning => "moderate", Severity::Info => "low" },
                "patient": patient,
                "detail": finding.text,
                "text": text_div(&finding.text),
            });
            if !finding.evidence.is_empty() {
                body["implicated"] = finding
                    .evidence
                    .iter()
                    .map(|r| json!({ "reference": r }))
                    .collect();
            }
            let volatile = vec![("identifiedDateTime", json!(a.as_of.to_string()))];
            out.push(desired(
                "DetectedIssue",
                system,
                format!("{}/finding/{}/{key}", a.patient, finding.code),
                body,
                volatile,
            ));
        }
    }

    if wants("ServiceRequest") {
        for suggestion in &a.suggestions {
            let mut body = json!({
                "resourceType": "ServiceRequest",
                "status": "active",
                "intent": "proposal",
                "code": { "coding": [{ "system": suggestion.code.system, "code": suggestion.code.code, "display": suggestion.code.display }], "text": suggestion.text },
                "subject": patient,
                "note": [{ "text": format!("because: {}", suggestion.because.join(", ")) }],
                "text": text_div(&suggestion.text),
            });
            if wants("Observation") {
                body["reasonReference"] = json!([{ "reference": ASSESSMENT_REF }]);
            }
            if !suggestion.evidence.is_empty() {
                body["supportingInfo"] = suggestion
                    .evidence
                    .iter()
                    .map(|r| json!({ "reference": r }))
                    .collect();
            }
            out.push(desired(
                "ServiceRequest",
                system,
                format!("{}/suggestion/{}", a.patient, suggestion.code.code),
                body,
                vec![],
            ));
        }
    }
    out
}

fn component(code: &str, display: &str, value: Value) -> Value {
    let mut c = json!({ "code": { "coding": [{ "system": ASSESSMENT_SYSTEM, "code": code, "display": display }] } });
    if let (Some(target), Some(values)) = (c.as_object_mut(), value.as_object()) {
        target.extend(values.clone());
    }
    c
}

/// HL7 v3 ActCode detected-issue codes where they fit a finding.
fn act_code(finding: &str) -> Option<(&'static str, &'static str)> {
    match finding {
        codes::SUBTHERAPEUTIC_DOSE => Some(("DOSEL", "low dose alert")),
        codes::TOO_SHORT_TRIAL => Some(("DOSEDURL", "dose duration low alert")),
        _ => None,
    }
}

fn short_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

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
    let identifier = resource
        .get("identifier")
        .and_then(Value::as_array)?
        .iter()
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

/// Still in force (so retiring it is a change).
fn is_live(resource: &Value) -> bool {
    let status = resource.get("status").and_then(Value::as_str).unwrap_or("");
    match resource.get("resourceType").and_then(Value::as_str) {
        Some("Flag") => status == "active",
        Some("DetectedIssue") => !matches!(status, "cancelled" | "entered-in-error"),
        Some("ServiceRequest") => matches!(status, "active" | "draft" | "on-hold"),
        _ => false,
    }
}

fn retired_status(resource_type: &str) -> Option<&'static str> {
    match resource_type {
        "Flag" => Some("inactive"),
        "DetectedIssue" => Some("cancelled"),
        "ServiceRequest" => Some("revoked"),
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

    for d in &desired {
        let current = find(d.resource_type, &d.identifier);
        if current.is_some_and(|e| e.hash.as_deref() == Some(d.hash.as_str())) {
            plan.unchanged += 1;
            continue;
        }
        if d.resource_type == "Flag" && current.is_none() && d.body["status"] == "inactive" {
            continue; // nothing to say: never flagged
        }
        let mut body = d.body.clone();
        for (pointer, value) in &d.volatile {
            set_path(&mut body, pointer, value.clone());
        }
        with_hash(&mut body, &d.hash);
        bodies.push((
            urn_for(&format!("{}|{}", d.resource_type, d.identifier)),
            d.resource_type,
            d.identifier.clone(),
            body,
        ));
        plan.written
            .push(format!("{} {}", d.resource_type, d.identifier));
    }

    for e in existing {
        let wanted = desired
            .iter()
            .any(|d| d.resource_type == e.resource_type && d.identifier == e.identifier);
        let Some(status) = retired_status(&e.resource_type) else {
            continue;
        };
        if wanted || !is_live(&e.body) {
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

    // Resolve references to the assessment Observation.
    let assessment_identifier = format!("{}/assessment", a.patient);
    let assessment_ref = bodies
        .iter()
        .find(|(_, kind, identifier, _)| {
            *kind == "Observation" && *identifier == assessment_identifier
        })
        .map(|(url, ..)| url.clone())
        .or_else(|| {
            find("Observation", &assessment_identifier).map(|e| format!("Observation/{}", e.id))
        });
    for (_, _, _, body) in &mut bodies {
        resolve_assessment_ref(body, assessment_ref.as_deref());
    }

    for (full_url, kind, identifier, body) in &mut bodies {
        let url = match split.repaired_id(kind, identifier) {
            Some(id) => {
                body["id"] = json!(id);
                format!("{kind}/{id}")
            }
            None => format!(
                "{kind}?identifier={}",
                query_escape(&format!("{system}|{identifier}"))
            ),
        };
        plan.entries.push(json!({
            "fullUrl": full_url,
            "resource": body,
            "request": { "method": "PUT", "url": url },
        }));
    }
    for duplicate in &split.duplicates {
        let (entry, label) = repair::retirement(duplicate, system);
        plan.entries.push(entry);
        plan.retired.push(label);
    }

    if !plan.entries.is_empty() && settings.resources.iter().any(|r| r == "Provenance") {
        plan.entries.push(provenance(a, &bodies, system));
    }
    plan
}

fn provenance(
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

/// Replaces the assessment placeholder with a real reference, or drops the element
/// holding it when the assessment Observation is not written.
fn resolve_assessment_ref(value: &mut Value, target: Option<&str>) {
    match value {
        Value::Object(map) => {
            if map.get("reference").and_then(Value::as_str) == Some(ASSESSMENT_REF) {
                match target {
                    Some(t) => {
                        map.insert("reference".into(), json!(t));
                    }
                    None => map.clear(),
                }
                return;
            }
            for v in map.values_mut() {
                resolve_assessment_ref(v, target);
            }
            map.retain(|_, v| !(v.is_object() && v.as_object().is_some_and(Map::is_empty)));
        }
        Value::Array(items) => {
            for v in items.iter_mut() {
                resolve_assessment_ref(v, target);
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

/// The service's resources about this patient now on the EHR.
pub async fn fetch_existing(
    client: &FhirClient,
    patient: &str,
    settings: &WritebackSettings,
) -> Result<(Vec<Existing>, usize), FhirError> {
    let mut out = Vec::new();
    let mut requests = 0;
    for kind in kept_in_step().filter(|k| settings.resources.iter().any(|r| r == k)) {
        let params = [("patient", patient.to_string()), own_tag_search()];
        let pages = client.search(kind, &params).await?;
        requests += pages.len();
        for page in pages {
            for entry in page
                .get("entry")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(existing) = entry
                    .get("resource")
                    .and_then(|r| existing_from(r, &settings.identifier_system))
                {
                    out.push(existing);
                }
            }
        }
    }
    Ok((out, requests))
}

#[derive(Debug, Clone, Default)]
pub struct WriteOutcome {
    pub plan: Plan,
    /// The TRD status of the assessment Observation found on the EHR before this write.
    pub previous_status: Option<String>,
    /// The transaction, when something was (or in dry-run would be) written.
    pub transaction: Option<Value>,
    pub requests: usize,
    pub dry_run: bool,
    /// What the EHR should hold for this patient, as one hash (of every desired
    /// resource's content hash): the same assessment gives the same hash, so events
    /// carry it as their message id and consumers de-duplicate re-sent events.
    pub content_hash: String,
}

/// The hash of everything the assessment wants written for the patient.
pub fn content_hash(patient: &str, desired: &[Desired]) -> String {
    let mut parts: Vec<String> = desired
        .iter()
        .map(|d| format!("{} {} {}", d.resource_type, d.identifier, d.hash))
        .collect();
    parts.sort();
    hash_of(&json!({ "patient": patient, "resources": parts }))
}

/// Compares, plans and (unless dry-run) sends one transaction for this patient.
pub async fn write_back(
    client: &FhirClient,
    a: &Assessment,
    settings: &WritebackSettings,
) -> Result<WriteOutcome, FhirError> {
    let (existing, mut requests) = fetch_existing(client, &a.patient, settings).await?;
    let previous_status = existing
        .iter()
        .find(|e| {
            e.resource_type == "Observation" && e.identifier == format!("{}/assessment", a.patient)
        })
        .and_then(|e| {
            e.body
                .pointer("/valueCodeableConcept/coding/0/code")
                .and_then(Value::as_str)
        })
        .map(str::to_string);
    let desired = desired_resources(a, settings);
    let content_hash = content_hash(&a.patient, &desired);
    let plan = plan(a, desired, &existing, settings);
    if plan.entries.is_empty() {
        return Ok(WriteOutcome {
            previous_status,
            plan,
            transaction: None,
            requests,
            dry_run: settings.dry_run,
            content_hash,
        });
    }
    let transaction = plan.transaction();
    if !settings.dry_run {
        // Conditional updates and ifNoneExist creates only: safe to retry.
        client
            .transaction(&transaction, Idempotency::Idempotent)
            .await?;
        requests += 1;
    }
    Ok(WriteOutcome {
        previous_status,
        plan,
        transaction: Some(transaction),
        requests,
        dry_run: settings.dry_run,
        content_hash,
    })
}
