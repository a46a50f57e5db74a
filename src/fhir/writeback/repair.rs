//! Repairing duplicates. One identifier should name one resource, but an earlier
//! fault, a concurrent writer before patients were sharded, or another system can
//! leave several; then every conditional update on that identifier fails with 412.
//! The repair keeps one (the live one, else the lowest id), retires the others as
//! `entered-in-error` with the identifier renamed `{identifier}#duplicate-{id}` (never
//! deleted: the EHR keeps its history), and writes the kept one by its id in the same
//! transaction.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{identifier_element, is_live, own_meta, profile_of, Existing};
use crate::fhir::urn::urn_for;

/// The existing resources split into the ones kept (one per identifier) and the
/// duplicates to retire.
pub struct Split<'a> {
    pub kept: Vec<Existing>,
    pub duplicates: Vec<&'a Existing>,
}

impl Split<'_> {
    /// The id of the kept resource when its identifier had duplicates: it must be
    /// written by id, since a conditional update would still see them.
    pub fn repaired_id(&self, resource_type: &str, identifier: &str) -> Option<&str> {
        self.duplicates
            .iter()
            .any(|d| d.resource_type == resource_type && d.identifier == identifier)
            .then(|| {
                self.kept
                    .iter()
                    .find(|k| k.resource_type == resource_type && k.identifier == identifier)
                    .map(|k| k.id.as_str())
            })
            .flatten()
    }
}

pub fn split(existing: &[Existing]) -> Split<'_> {
    let mut groups: BTreeMap<(&str, &str), Vec<&Existing>> = BTreeMap::new();
    for e in existing {
        groups
            .entry((e.resource_type.as_str(), e.identifier.as_str()))
            .or_default()
            .push(e);
    }
    let mut split = Split {
        kept: Vec::new(),
        duplicates: Vec::new(),
    };
    for (_, mut group) in groups {
        group.sort_by(|a, b| {
            is_live(&b.body)
                .cmp(&is_live(&a.body))
                .then_with(|| a.id.cmp(&b.id))
        });
        let mut members = group.into_iter();
        if let Some(kept) = members.next() {
            split.kept.push(kept.clone());
        }
        split.duplicates.extend(members);
    }
    split
}

/// The transaction entry retiring one duplicate, and its label for the plan.
pub fn retirement(duplicate: &Existing, identifier_system: &str) -> (Value, String) {
    let mut body = duplicate.body.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("meta");
        map.remove("extension");
    }
    let renamed = format!("{}#duplicate-{}", duplicate.identifier, duplicate.id);
    body["id"] = json!(duplicate.id);
    body["status"] = json!("entered-in-error");
    body["identifier"] = identifier_element(&duplicate.resource_type, identifier_system, &renamed);
    body["meta"] = own_meta();
    body["meta"]["profile"] = json!([profile_of(&duplicate.resource_type)]);
    let url = format!("{}/{}", duplicate.resource_type, duplicate.id);
    let entry = json!({
        "fullUrl": urn_for(&format!("duplicate|{url}")),
        "resource": body,
        "request": { "method": "PUT", "url": url },
    });
    let label = format!(
        "{} {} -> entered-in-error (duplicate {url})",
        duplicate.resource_type, duplicate.identifier
    );
    (entry, label)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flag(id: &str, status: &str) -> Existing {
        Existing {
            resource_type: "Flag".into(),
            id: id.into(),
            identifier: "Patient/1/trd".into(),
            hash: None,
            body: json!({ "resourceType": "Flag", "id": id, "status": status }),
        }
    }

    #[test]
    fn the_live_one_is_kept_and_the_others_retired_by_id() {
        let existing = vec![
            flag("b", "inactive"),
            flag("c", "active"),
            flag("a", "inactive"),
        ];
        let split = split(&existing);
        assert_eq!(split.kept.len(), 1);
        assert_eq!(split.kept[0].id, "c");
        let mut retired: Vec<&str> = split.duplicates.iter().map(|d| d.id.as_str()).collect();
        retired.sort_unstable();
        assert_eq!(retired, ["a", "b"]);
        assert_eq!(split.repaired_id("Flag", "Patient/1/trd"), Some("c"));

        let (entry, label) = retirement(split.duplicates[0], "https://sys");
        let id = split.duplicates[0].id.clone();
        assert_eq!(
            entry["request"],
            json!({ "method": "PUT", "url": format!("Flag/{id}") })
        );
        assert_eq!(entry["resource"]["status"], "entered-in-error");
        assert_eq!(
            entry["resource"]["identifier"],
            json!([{ "system": "https://sys", "value": format!("Patient/1/trd#duplicate-{id}") }])
        );
        assert!(label.contains("entered-in-error"), "{label}");
    }

    #[test]
    fn single_resources_are_not_repaired() {
        let existing = vec![flag("a", "active")];
        let split = split(&existing);
        assert!(split.duplicates.is_empty());
        assert_eq!(split.repaired_id("Flag", "Patient/1/trd"), None);
    }
}
