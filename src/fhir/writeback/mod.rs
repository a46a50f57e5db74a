//! Write-back: the resources an assessment implies (Flag, assessment Observation,
//! DetectedIssue per finding, ServiceRequest proposal per suggestion, Provenance),
//! compared with what the EHR already holds, sent as one idempotent transaction.
//!
//! - Every resource carries a stable identifier and the service's tag; updates are
//!   conditional on the identifier, so replays and retries cannot duplicate.
//! - A content hash (an extension) is compared first: unchanged content is not
//!   rewritten, so no new versions pile up.
//! - What no longer applies is retired (Flag inactive, DetectedIssue cancelled,
//!   ServiceRequest revoked, the summary DocumentReference superseded), never deleted.
//! - The treatment summary (DocumentReference, Composition) is written without
//!   conditional requests, which many EHRs' note APIs lack: the service's own search,
//!   part of every gather, finds it by identifier, so it is created once and then
//!   updated by id.
//!
//! The arrow in three steps, one file each: [`build`] (the resources the assessment
//! wants), [`diff`] (against what the EHR holds: the plan of one transaction) and
//! [`send`] (read what is there, send the plan). [`repair`] handles identifiers that
//! name several resources.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

pub const OWN_TAG_SYSTEM: &str = "https://fhir.trd-sentinel.org/CodeSystem/trd-meta";
pub const OWN_TAG_CODE: &str = "trd-sentinel";
pub const HASH_EXTENSION: &str = "https://fhir.trd-sentinel.org/StructureDefinition/content-hash";
pub const ASSESSMENT_SYSTEM: &str = "https://fhir.trd-sentinel.org/CodeSystem/trd-assessment";

pub use crate::resource_types::WRITTEN_TYPES;

mod build;
mod diff;
mod repair;
mod send;

pub use build::desired_resources;
pub use diff::{existing_from, plan};
pub use send::{existing_in, fetch_existing, own_searches, write_back, WriteOutcome};

/// The written type of this name, as the static name the planner keys on.
pub fn static_type(name: &str) -> Option<&'static str> {
    WRITTEN_TYPES
        .iter()
        .chain(crate::config::DocumentMode::Composition.types())
        .copied()
        .find(|t| *t == name)
}

/// The types whose current state the service reads back and keeps in step (every
/// written type but Provenance, which is only ever added).
fn kept_in_step() -> impl Iterator<Item = &'static str> {
    WRITTEN_TYPES
        .iter()
        .chain(crate::config::DocumentMode::Composition.types())
        .copied()
        .filter(|k| *k != "Provenance")
}

/// The search parameter that finds the service's own resources (Flags, Subscriptions,
/// topics...): everything it writes carries this tag.
pub fn own_tag_search() -> (&'static str, String) {
    ("_tag", format!("{OWN_TAG_SYSTEM}|{OWN_TAG_CODE}"))
}

/// Placeholder for a reference to this patient's assessment Observation, resolved
/// when the transaction is planned (so it does not change the content hash).
const ASSESSMENT_REF: &str = "@assessment";
/// Placeholder for a reference to this patient's summary Composition, likewise.
const COMPOSITION_REF: &str = "@composition";

/// The placeholders a desired body may hold: (placeholder, type, identifier suffix of
/// the resource it stands for).
const PLACEHOLDERS: &[(&str, &str, &str)] = &[
    (ASSESSMENT_REF, "Observation", "assessment"),
    (COMPOSITION_REF, "Composition", "summary"),
];

/// Documents are written without conditional requests: many EHRs' clinical-note APIs
/// take a plain create and an update by id only, so the service's own search (done
/// with every gather) decides between the two.
fn written_without_conditions(resource_type: &str) -> bool {
    matches!(resource_type, "DocumentReference" | "Composition")
}

/// The `identifier` element of a written resource: a list, but one object for a
/// Composition (its identifier is 0..1).
fn identifier_element(resource_type: &str, system: &str, value: &str) -> Value {
    let identifier = json!({ "system": system, "value": value });
    if resource_type == "Composition" {
        identifier
    } else {
        json!([identifier])
    }
}

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
    /// Transaction entries (moved into the transaction by [`Plan::take_transaction`]).
    pub entries: Vec<Value>,
    /// "Flag Patient/1/trd" per entry written (created or updated).
    pub written: Vec<String>,
    pub retired: Vec<String>,
    pub unchanged: usize,
}

impl Plan {
    /// The transaction Bundle, the plan keeping its entries (for tests and reports).
    pub fn transaction(&self) -> Value {
        transaction_of(self.entries.clone())
    }

    /// The transaction Bundle, the entries moved into it rather than copied: a
    /// write-back's largest allocation was that copy.
    pub fn take_transaction(&mut self) -> Value {
        transaction_of(std::mem::take(&mut self.entries))
    }

    /// Whether the transaction may be sent again when its outcome is unknown: only
    /// conditional writes and updates by id. A plain create (the summary document,
    /// for EHRs without conditional create) is not; the work item is retried instead,
    /// and its new gather finds the document if the first send created it.
    pub fn is_idempotent(&self) -> bool {
        self.entries.iter().all(|e| {
            e.pointer("/request/method").and_then(Value::as_str) != Some("POST")
                || e.pointer("/request/ifNoneExist").is_some()
        })
    }
}

fn transaction_of(entries: Vec<Value>) -> Value {
    // Assembled by hand: `json!` would serialise the entries into a copy.
    let mut bundle = serde_json::Map::new();
    bundle.insert("resourceType".into(), Value::from("Bundle"));
    bundle.insert("type".into(), Value::from("transaction"));
    bundle.insert("entry".into(), Value::Array(entries));
    Value::Object(bundle)
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
        "DocumentReference" => "trd-summary-document-reference",
        "Composition" => "trd-summary-composition",
        _ => "trd-provenance",
    };
    format!("https://fhir.trd-sentinel.org/StructureDefinition/{id}")
}

fn short_hash(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Still in force (so retiring it is a change).
fn is_live(resource: &Value) -> bool {
    let status = resource.get("status").and_then(Value::as_str).unwrap_or("");
    match resource.get("resourceType").and_then(Value::as_str) {
        Some("Flag") => status == "active",
        Some("DetectedIssue") => !matches!(status, "cancelled" | "entered-in-error"),
        Some("ServiceRequest") => matches!(status, "active" | "draft" | "on-hold"),
        Some("DocumentReference") => status == "current",
        Some("Composition") => status != "entered-in-error",
        _ => false,
    }
}
