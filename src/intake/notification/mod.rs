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
use crate::fhir::read::Relevance;
use crate::work::WorkItem;

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
    /// The notification's own events' numbers (`eventNumber`), required by the
    /// Backport IG where `events-since-subscription-start` is optional: a notification
    /// carrying events 2, 3 and 4 leaves no gap after event 1.
    pub event_numbers: Vec<u64>,
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
    relevance: Option<&Relevance>,
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
        event_numbers: vec![],
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
        event_numbers: vec![],
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

fn backport(bundle: &Value, relevance: Option<&Relevance>) -> Reduced {
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
        event_numbers: status_info.event_numbers.clone(),
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
    // Only a notification that carried no resource falls back to its focus references:
    // full resources the engine would not read (or the service's own) cost the EHR
    // no request.
    if reduced.targets.is_empty() && reduced.ignored_own == 0 && reduced.ignored_irrelevant == 0 {
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
fn matters(resource: &Value, relevance: Option<&Relevance>) -> bool {
    relevance.is_none_or(|codes| codes.matters(resource))
}

fn add_resource(
    reduced: &mut Reduced,
    resource: Option<&Value>,
    full_url: Option<&str>,
    relevance: Option<&Relevance>,
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
    event_numbers: Vec<u64>,
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
                event_numbers: status
                    .get("notificationEvent")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(|e| number(e.get("eventNumber")))
                    .collect(),
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
        let mut event_numbers = Vec::new();
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
                if part.get("name").and_then(Value::as_str) == Some("event-number") {
                    event_numbers.extend(
                        number(part.get("valueString"))
                            .or(number(part.get("valueInteger64")))
                            .or(number(part.get("valueUnsignedInt")))
                            .or(number(part.get("valueInteger"))),
                    );
                }
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
            event_numbers,
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

impl From<Target> for WorkItem {
    fn from(target: Target) -> Self {
        match target {
            Target::Patient { patient } => WorkItem::Patient { patient },
            Target::Resource { reference } => WorkItem::Resource { reference },
            Target::Requery { subscription } => WorkItem::Requery { subscription },
        }
    }
}

#[cfg(test)]
mod tests;
