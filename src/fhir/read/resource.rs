//! One resource into the pool, from JSON text (files, the EHR's pages, NDJSON lines)
//! or from a value already parsed (a hook's prefetch, a Bundle off the queue): the
//! same reading either way, and neither is turned into the other, so nothing is
//! parsed twice.

use fhir_sdk::r4b::resources::Medication;
use serde::Deserialize;
use serde_json::Value;

use super::heads::{CodedHead, EncounterHead, Head, ObservationHead, SubjectHead};
use super::scan::{is_read_type, Origin};
use super::{mapping, subject_of, Clinical, NoteKind, PatientHead, RecordNote, ResourcePool};
use crate::fhir::mapping::normalise_reference;

/// Where a resource's fields are read from.
pub(super) trait ResourceSource<'a>: Copy {
    /// Whether the pool may keep it, decided before anything is parsed where that can
    /// be (text); a value's type is simply looked at.
    fn may_keep(self, pool: &ResourcePool) -> bool;
    fn parse<T: Deserialize<'a>>(self) -> Result<T, serde_json::Error>;
}

impl<'a> ResourceSource<'a> for &'a str {
    fn may_keep(self, pool: &ResourcePool) -> bool {
        pool.would_keep(self)
    }
    fn parse<T: Deserialize<'a>>(self) -> Result<T, serde_json::Error> {
        serde_json::from_str(self)
    }
}

impl<'a> ResourceSource<'a> for &'a Value {
    fn may_keep(self, _pool: &ResourcePool) -> bool {
        match self.get("resourceType").and_then(Value::as_str) {
            Some(kind) => is_read_type(kind),
            None => true, // the parse says why it is unreadable
        }
    }
    fn parse<T: Deserialize<'a>>(self) -> Result<T, serde_json::Error> {
        T::deserialize(self)
    }
}

impl ResourcePool {
    /// One JSON value already parsed: a Bundle or a single resource, read as it is.
    pub fn add_value(&mut self, value: &Value, origin: &str) {
        if value.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
            self.add_resource(value, None, &Origin::whole(origin));
            return;
        }
        let entries = value.get("entry").and_then(Value::as_array);
        for (n, entry) in entries.into_iter().flatten().enumerate() {
            if let Some(resource) = entry.get("resource") {
                let full_url = entry.get("fullUrl").and_then(Value::as_str);
                self.add_resource(resource, full_url, &Origin::entry(origin, n));
            }
        }
    }

    pub(super) fn add_resource<'a, S: ResourceSource<'a>>(
        &mut self,
        text: S,
        full_url: Option<&str>,
        origin: &Origin<'_>,
    ) {
        self.stats.resources += 1;
        if !text.may_keep(self) {
            return;
        }
        let head: Head<'a> = match text.parse() {
            Ok(head) => head,
            Err(e) => {
                self.unattributed
                    .push(format!("{origin}: no resourceType: {e}"));
                return;
            }
        };
        let kind = head.resource_type.as_ref();
        let source = match (&head.id, full_url) {
            (Some(id), _) => format!("{kind}/{id}"),
            (None, Some(url)) => url.to_string(),
            (None, None) => format!("{kind}/({origin})"),
        };
        if let Some(url) = full_url {
            if url.starts_with("urn:") || head.id.is_none() {
                self.aliases.insert(url.to_string(), source.clone());
            } else {
                self.aliases
                    .insert(normalise_reference(url), source.clone());
            }
        }
        let typed = match kind {
            "Patient" => {
                // A birthDate that does not parse is no birth date: the age rules then
                // say nothing rather than guess (the value itself is never logged).
                let head = text.parse::<PatientHead<'a>>().ok();
                let birth_date = head
                    .as_ref()
                    .and_then(|h| h.birth_date.as_ref())
                    .and_then(|b| mapping::birth_date_of(b));
                let deceased = head.as_ref().and_then(PatientHead::deceased);
                let bucket = self.patients.entry(source).or_default();
                if birth_date.is_some() {
                    bucket.birth_date = birth_date;
                }
                if deceased.is_some() {
                    bucket.deceased = deceased;
                }
                return;
            }
            "Medication" => {
                match text.parse::<Medication>() {
                    Ok(m) => {
                        self.medications.insert(source, m);
                    }
                    Err(e) => self.unattributed.push(format!(
                        "{source}: unreadable: {}",
                        without_position(&e.to_string())
                    )),
                }
                return;
            }
            "MedicationRequest" => text.parse().map(Clinical::Request),
            "MedicationDispense" => text.parse().map(Clinical::Dispense),
            "MedicationStatement" => text.parse().map(Clinical::Statement),
            "MedicationAdministration" => text.parse().map(Clinical::Administration),
            "QuestionnaireResponse" => text.parse().map(Clinical::Questionnaire),
            "Condition" => text.parse().map(Clinical::Condition),
            "ServiceRequest" => {
                // Only the kinds a measure reads (hospice referrals): not the
                // service's own proposals, nor every lab order.
                let wanted = text
                    .parse::<CodedHead<'a>>()
                    .map(|h| self.relevance.wants_coded("ServiceRequest", &h))
                    .unwrap_or(true); // unreadable: let the typed parse say why
                if !wanted {
                    return;
                }
                text.parse().map(Clinical::ServiceRequest)
            }
            "Procedure" => text.parse().map(Clinical::Procedure),
            "Encounter" => {
                let wanted = text
                    .parse::<EncounterHead<'a>>()
                    .map(|h| self.relevance.wants_encounter(&h))
                    .unwrap_or(false);
                if !wanted {
                    return;
                }
                text.parse().map(Clinical::Encounter)
            }
            "Observation" => {
                let wanted = text
                    .parse::<ObservationHead<'a>>()
                    .map(|h| self.relevance.wants(&h))
                    .unwrap_or(true); // unreadable: let the typed parse say why
                if !wanted {
                    return;
                }
                text.parse().map(Clinical::Observation)
            }
            _ => return,
        };
        self.stats.typed += 1;
        match typed {
            Ok(resource) => match subject_of(&resource) {
                Some(patient) => self
                    .patients
                    .entry(patient)
                    .or_default()
                    .resources
                    .push((source, resource)),
                None => self
                    .unattributed
                    .push(format!("{source}: no subject/patient reference")),
            },
            Err(e) => {
                let subject = text
                    .parse::<SubjectHead>()
                    .ok()
                    .and_then(|h| h.subject.or(h.patient))
                    .and_then(|r| r.reference)
                    .map(|r| normalise_reference(&r));
                let message = format!("unreadable: {}", without_position(&e.to_string()));
                match subject {
                    Some(patient) => {
                        self.patients
                            .entry(patient)
                            .or_default()
                            .notes
                            .push(RecordNote {
                                source,
                                kind: NoteKind::Unreadable,
                                message,
                            })
                    }
                    None => self.unattributed.push(format!("{source}: {message}")),
                }
            }
        }
    }
}

/// A parse error without serde's "at line L column C": the position is in the text
/// as it came (a pretty-printed Bundle, an NDJSON line), and the same resource must
/// read the same in every shape; the resource's reference already says where.
fn without_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at)
            if message[at..]
                .trim_start_matches(" at line ")
                .split(" column ")
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
        {
            message[..at].to_string()
        }
        _ => message.to_string(),
    }
}

#[cfg(test)]
mod position_tests {
    #[test]
    fn a_parse_error_reads_the_same_in_every_shape() {
        assert_eq!(
            super::without_position(
                "invalid type: string \"x\", expected a sequence at line 19 column 49"
            ),
            "invalid type: string \"x\", expected a sequence"
        );
        assert_eq!(
            super::without_position("seen at line one"),
            "seen at line one"
        );
    }
}
