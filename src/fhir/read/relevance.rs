//! Which Observations and Encounters the engine reads: by their codes, known before a
//! resource is typed (and, for most resources, before it is parsed at all).

use std::collections::HashSet;

use serde::Deserialize;

use super::heads::{ConceptHead, EncounterHead, ObservationHead};
use crate::clinical::knowledge::Knowledge;

/// Codes of Observations worth typing (scores and labs), and of Encounter types that
/// are psychotherapy sessions: everything else is skipped unparsed.
#[derive(Debug, Default, Clone)]
pub struct ObservationCodes {
    codes: HashSet<(String, String)>,
    encounter_types: HashSet<(String, String)>,
    /// Every wanted code as a JSON string (`"44261-6"`, quotes included): a resource
    /// whose text holds none of them cannot be wanted, and is skipped without being
    /// parsed. (Codes are plain ASCII; JSON writers do not escape them.)
    prefilter: Option<std::sync::Arc<aho_corasick::AhoCorasick>>,
}

impl ObservationCodes {
    pub fn from_knowledge(knowledge: &Knowledge) -> Self {
        let codes: HashSet<(String, String)> = knowledge.observation_codes().into_iter().collect();
        let encounter_types: HashSet<(String, String)> =
            knowledge.psychotherapy_codes().into_iter().collect();
        let mut needles: Vec<String> = codes
            .iter()
            .chain(&encounter_types)
            .map(|(_, code)| format!("\"{code}\""))
            .collect();
        needles.sort();
        needles.dedup();
        let prefilter = aho_corasick::AhoCorasick::new(&needles)
            .ok()
            .map(std::sync::Arc::new);
        Self {
            codes,
            encounter_types,
            prefilter,
        }
    }

    /// False when the text holds none of the wanted codes (it cannot be wanted).
    pub(super) fn may_want(&self, text: &str) -> bool {
        self.prefilter
            .as_ref()
            .is_none_or(|finder| finder.is_match(text))
    }

    fn any_in(set: &HashSet<(String, String)>, concepts: &[ConceptHead<'_>]) -> bool {
        concepts
            .iter()
            .flat_map(|c| &c.coding)
            .any(|coding| match (&coding.system, &coding.code) {
                (Some(system), Some(code)) => set.contains(&(system.to_string(), code.to_string())),
                _ => false,
            })
    }

    pub(super) fn wants(&self, head: &ObservationHead<'_>) -> bool {
        Self::any_in(&self.codes, head.code.as_slice())
            || head
                .component
                .iter()
                .any(|c| Self::any_in(&self.codes, c.code.as_slice()))
    }

    pub(super) fn wants_encounter(&self, head: &EncounterHead<'_>) -> bool {
        Self::any_in(&self.encounter_types, &head.types)
    }

    /// Whether the engine would read this resource at all: an Observation only with a
    /// score or lab code it knows, an Encounter only of a psychotherapy type; every
    /// other type counts (medications of every kind matter: interactions).
    pub fn matters(&self, resource: &serde_json::Value) -> bool {
        match resource
            .get("resourceType")
            .and_then(serde_json::Value::as_str)
        {
            Some("Observation") => {
                ObservationHead::deserialize(resource).is_ok_and(|head| self.wants(&head))
            }
            Some("Encounter") => {
                EncounterHead::deserialize(resource).is_ok_and(|head| self.wants_encounter(&head))
            }
            _ => true,
        }
    }
}
