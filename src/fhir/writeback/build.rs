//! The resources an assessment wants on the EHR: a Flag, the assessment
//! Observation, a DetectedIssue per finding and a ServiceRequest proposal per
//! suggestion, each with its identifier, profile, tag and content hash.

use serde_json::{json, Value};

use super::{
    hash_of, own_meta, profile_of, short_hash, Desired, ASSESSMENT_REF, ASSESSMENT_SYSTEM,
    COMPOSITION_REF,
};
use crate::clinical::assessment::Assessment;
use crate::clinical::finding::{codes, Severity};
use crate::clinical::response::ResponseClass;
use crate::clinical::status::TrdStatus;
use crate::clinical::summary::summarise;
use crate::config::{DocumentMode, WritebackSettings};
use crate::fhir::document::{self, Attachments};

const STATUS_SYSTEM: &str = "https://fhir.trd-sentinel.org/CodeSystem/trd-status";
const FINDING_SYSTEM: &str = "https://fhir.trd-sentinel.org/CodeSystem/trd-finding";
const ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";

/// Statuses that raise an active Flag.
const FLAGGED: &[TrdStatus] = &[
    TrdStatus::Trd,
    TrdStatus::OneFailedTrial,
    TrdStatus::PartialResponseDepression,
    TrdStatus::ExcludedBipolarSpectrum,
];

fn desired(
    resource_type: &'static str,
    system: &str,
    identifier: String,
    mut body: Value,
    volatile: Vec<(&'static str, Value)>,
) -> Desired {
    body["identifier"] = super::identifier_element(resource_type, system, &identifier);
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
    if a.has_nothing_to_report() {
        // What an earlier assessment wrote, if anything, is retired by the plan.
        return Vec::new();
    }
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
    out.extend(summary_documents(a, settings));
    out
}

/// The treatment summary, when a referral is suggested and the configuration
/// writes it: a DocumentReference (text, or text and XHTML), and in the full mode
/// the Composition it relates to.
///
/// The summary's numbers move every day an ongoing trial runs, but a note rewritten
/// daily would bury the chart in versions. So its text is set at write time (volatile)
/// and its hash is taken over the hashes of everything else the service would write
/// about the patient: the note is rewritten when the assessment changes, not the date.
fn summary_documents(a: &Assessment, settings: &WritebackSettings) -> Vec<Desired> {
    if settings.document == DocumentMode::Off || !a.suggests_referral() {
        return Vec::new();
    }
    let everything = WritebackSettings {
        resources: crate::resource_types::WRITTEN_TYPES
            .iter()
            .map(|t| t.to_string())
            .collect(),
        document: DocumentMode::Off,
        ..settings.clone()
    };
    let fingerprint = super::content_hash(&a.patient, &desired_resources(a, &everything));
    let system = settings.identifier_system.as_str();
    let identifier = format!("{}/summary", a.patient);
    let summary = summarise(a);
    let mut out = Vec::new();
    let (attachments, related) = match settings.document {
        DocumentMode::Composition => {
            let body = document::composition(&summary, a);
            out.push(desired_document(
                "Composition",
                system,
                identifier.clone(),
                body,
                &["date", "text", "section"],
                &fingerprint,
            ));
            (Attachments::TextAndXhtml, Some(COMPOSITION_REF))
        }
        _ => (Attachments::TextOnly, None),
    };
    let mut body = document::document_reference(&summary, a, attachments, related);
    body["date"] = json!(instant(a.as_of));
    if settings.document == DocumentMode::Composition {
        body["text"] = json!({ "status": "generated", "div": document::xhtml(&summary) });
    }
    out.push(desired_document(
        "DocumentReference",
        system,
        identifier,
        body,
        &["date", "text", "content"],
        &fingerprint,
    ));
    out
}

/// A document as desired: the `volatile` top-level elements are moved out of the
/// hashed body (set at write time), and the hash covers the rest and `fingerprint`.
fn desired_document(
    resource_type: &'static str,
    system: &str,
    identifier: String,
    mut body: Value,
    volatile: &[&'static str],
    fingerprint: &str,
) -> Desired {
    let taken: Vec<(&'static str, Value)> = volatile
        .iter()
        .filter_map(|key| {
            let value = body.as_object_mut()?.remove(*key)?;
            Some((*key, value))
        })
        .collect();
    let mut d = desired(resource_type, system, identifier, body, taken);
    d.hash = hash_of(&json!({ "body": d.hash, "assessment": fingerprint }));
    d
}

fn instant(date: time::Date) -> String {
    format!("{date}T00:00:00Z")
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
