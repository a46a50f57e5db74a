//! The treatment summary as FHIR: a Composition with LOINC-coded sections (the C-CDA
//! on FHIR Referral Note's section codes, which the IPS shares), the document Bundle
//! that carries it, and the DocumentReference US EHRs accept as a clinical note
//! (research/clinical-whole-person.md section 3: category `clinical-note`, `text/plain`
//! first, `docStatus` preliminary for the clinician's sign-off).
//!
//! The XHTML is written with maud, which escapes every interpolated string: drug
//! displays and diagnosis texts come from the record and are never trusted.

use base64::Engine as _;
use maud::{html, Markup, PreEscaped, DOCTYPE};
use serde_json::{json, Value};
use time::Date;

use crate::clinical::assessment::Assessment;
use crate::clinical::summary::{SectionKind, TreatmentSummary};

pub use crate::clinical::record::LOINC;
/// The document type: LOINC 57133-1 "Referral note" (ReferralDocumentType).
pub const REFERRAL_NOTE: (&str, &str) = ("57133-1", "Referral note");
const NOTE_CATEGORY: &str =
    "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category";
const XHTML_NS: &str = "http://www.w3.org/1999/xhtml";

/// The LOINC section code of each part (C-CDA on FHIR Referral Note, IPS).
pub fn section_code(kind: SectionKind) -> (&'static str, &'static str) {
    match kind {
        SectionKind::ReasonForReferral => ("42349-1", "Reason for referral (narrative)"),
        SectionKind::Medications => ("10160-0", "History of Medication use Narrative"),
        SectionKind::Psychotherapy => ("47519-4", "History of Procedures Document"),
        SectionKind::Problems => ("11450-4", "Problem list - Reported"),
        SectionKind::MentalStatus => ("10190-7", "Mental status Narrative"),
        SectionKind::FunctionalStatus => ("47420-5", "Functional status assessment note"),
        SectionKind::MedicalFactors => ("51848-0", "Evaluation note"),
        SectionKind::Plan => ("18776-5", "Plan of care note"),
    }
}

/// The author every written document names: the service (and its version), never a
/// clinician; `docStatus` preliminary says a clinician has not signed it.
fn author() -> Value {
    json!([{ "display": concat!("trd-sentinel ", env!("CARGO_PKG_VERSION"), " (automated draft)") }])
}

fn instant(date: Date) -> String {
    format!("{date}T00:00:00Z")
}

fn list(lines: &[String]) -> Markup {
    html! { ul { @for line in lines { li { (line) } } } }
}

/// The whole summary as one FHIR Narrative div.
pub fn xhtml(summary: &TreatmentSummary) -> String {
    html! {
        div xmlns=(XHTML_NS) {
            h2 { (summary.title) }
            @if !summary.safety.is_empty() {
                p { b { "SAFETY:" } }
                (list(&summary.safety))
            }
            @for s in &summary.sections {
                h3 { (s.title) }
                (list(&s.lines))
            }
        }
    }
    .into_string()
}

/// The summary as a standalone XHTML document (the DocumentReference's second
/// attachment).
fn xhtml_document(summary: &TreatmentSummary) -> String {
    html! {
        (DOCTYPE)
        html xmlns=(XHTML_NS) {
            head { meta charset="utf-8"; title { (summary.title) } }
            body { (PreEscaped(xhtml(summary))) }
        }
    }
    .into_string()
}

/// The Composition (no identifier or meta: the write-back adds its own).
pub fn composition(summary: &TreatmentSummary, a: &Assessment) -> Value {
    let sections: Vec<Value> = summary
        .sections
        .iter()
        .map(|s| {
            let (code, display) = section_code(s.kind);
            let mut section = json!({
                "title": s.title,
                "code": { "coding": [{ "system": LOINC, "code": code, "display": display }] },
                "text": { "status": "generated", "div": html! { div xmlns=(XHTML_NS) { (list(&s.lines)) } }.into_string() },
            });
            if !s.evidence.is_empty() {
                section["entry"] = s
                    .evidence
                    .iter()
                    .filter(|r| r.contains('/') && !r.starts_with("urn:"))
                    .map(|r| json!({ "reference": r }))
                    .collect();
            }
            section
        })
        .collect();
    let (code, display) = REFERRAL_NOTE;
    json!({
        "resourceType": "Composition",
        "status": "preliminary",
        "type": { "coding": [{ "system": LOINC, "code": code, "display": display }] },
        "subject": { "reference": a.patient },
        "date": instant(a.as_of),
        "author": author(),
        "title": summary.title,
        "text": { "status": "generated", "div": xhtml(summary) },
        "section": sections,
    })
}

/// The FHIR document: a `document` Bundle with the Composition first (what
/// `summary` and `evaluate --format document` print).
pub fn document_bundle(
    summary: &TreatmentSummary,
    a: &Assessment,
    identifier_system: &str,
) -> Value {
    let identifier = format!("{}/summary", a.patient);
    let mut composition = composition(summary, a);
    composition["identifier"] = json!({ "system": identifier_system, "value": identifier });
    json!({
        "resourceType": "Bundle",
        "type": "document",
        "identifier": { "system": identifier_system, "value": format!("{identifier}/{}", a.as_of) },
        "timestamp": instant(a.as_of),
        "entry": [{ "fullUrl": crate::fhir::urn::urn_for(&identifier), "resource": composition }],
    })
}

/// How much the DocumentReference carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attachments {
    /// One `text/plain` attachment (EHRs that keep only the first, or only text).
    TextOnly,
    /// Text, then the XHTML rendering.
    TextAndXhtml,
}

/// The clinical note (no identifier, meta or date: the write-back adds them).
/// `composition`: a reference to the written Composition, in the full mode.
pub fn document_reference(
    summary: &TreatmentSummary,
    a: &Assessment,
    attachments: Attachments,
    composition: Option<&str>,
) -> Value {
    let b64 = |text: &str| base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    let mut content = vec![json!({ "attachment": {
        "contentType": "text/plain; charset=utf-8",
        "language": "en",
        "data": b64(&summary.text()),
        "title": summary.title,
    } })];
    if attachments == Attachments::TextAndXhtml {
        content.push(json!({ "attachment": {
            "contentType": "application/xhtml+xml",
            "language": "en",
            "data": b64(&xhtml_document(summary)),
            "title": summary.title,
        } }));
    }
    let (code, display) = REFERRAL_NOTE;
    let mut body = json!({
        "resourceType": "DocumentReference",
        "status": "current",
        "docStatus": "preliminary",
        "type": { "coding": [{ "system": LOINC, "code": code, "display": display }], "text": display },
        "category": [{ "coding": [{ "system": NOTE_CATEGORY, "code": "clinical-note", "display": "Clinical Note" }] }],
        "subject": { "reference": a.patient },
        "author": author(),
        "description": summary.title,
        "content": content,
    });
    if let Some(reference) = composition {
        body["context"] = json!({ "related": [{ "reference": reference }] });
    }
    body
}
