//! Which resources the engine reads, by their codes: Observations (scores and labs),
//! Encounters (psychotherapy sessions), Conditions (the diagnosis value sets) and
//! Procedures (psychotherapy, ECT, TMS, esketamine), and beside them what the quality
//! measures read when they are asked for (visits, hospice and palliative care, the
//! measures' diagnoses: `clinical::measures::value_sets::MeasureReads`). The reader
//! uses it before a
//! resource is typed (for most, before it is parsed at all); intake uses it to drop
//! notifications that cannot change an assessment.

use std::sync::Arc;

use serde::Deserialize;

use super::heads::{CodedHead, ConceptHead, EncounterHead, ObservationHead};
use crate::clinical::knowledge::{CodeSelection, Knowledge};
use crate::clinical::measures::value_sets::{MeasureReads, CMS128_ENCOUNTERS};

/// Codes of Observations worth typing (scores and labs), of Encounter types that are
/// psychotherapy sessions, of the diagnoses and of the procedures the engine reads.
#[derive(Debug, Default, Clone)]
pub struct Relevance {
    observations: Arc<CodeSelection>,
    encounter_types: Arc<CodeSelection>,
    /// The score and lab codes as a `code=` search value, made once.
    observation_search: Arc<str>,
    diagnoses: Arc<CodeSelection>,
    procedures: Arc<CodeSelection>,
    /// Hospice referrals (the measures' exclusions).
    service_requests: Arc<CodeSelection>,
    /// Every wanted code as a JSON string (`"44261-6"`, quotes included): a resource
    /// whose text holds none of them cannot be wanted, and is skipped without being
    /// parsed. (Codes are plain ASCII; JSON writers do not escape them.)
    prefilter: Option<Arc<aho_corasick::AhoCorasick>>,
}

impl Relevance {
    /// What the assessment reads.
    pub fn from_knowledge(knowledge: &Knowledge) -> Self {
        Self::build(knowledge, false)
    }

    /// What the assessment and the quality measures read (`--measure`): the measures'
    /// visits, hospice and palliative care and diagnoses besides. Kept apart so an
    /// assessment alone does not pay for reading every office visit.
    pub fn with_measures(knowledge: &Knowledge) -> Self {
        Self::build(knowledge, true)
    }

    fn build(knowledge: &Knowledge, measures: bool) -> Self {
        let sets = &knowledge.value_sets;
        let none: &[&str] = &[];
        let pick = |urls: &'static [&'static str]| if measures { urls } else { none };
        let measure_codes = |urls: &[&str]| sets.union(urls.iter().copied()).exact_codes();
        let observations = CodeSelection::from_exact(
            knowledge
                .observation_codes()
                .into_iter()
                .chain(measure_codes(pick(MeasureReads::OBSERVATION_SETS)))
                .chain(
                    MeasureReads::OBSERVATION_CODES
                        .iter()
                        .filter(|_| measures)
                        .map(|(system, code)| (system.to_string(), code.to_string())),
                ),
        );
        let encounter_types = CodeSelection::from_exact(
            knowledge
                .psychotherapy_codes()
                .into_iter()
                .chain(measure_codes(pick(MeasureReads::ENCOUNTERS)))
                .chain(measure_codes(pick(CMS128_ENCOUNTERS))),
        );
        let mut diagnoses = sets.every_diagnosis();
        diagnoses.absorb(&sets.union(pick(MeasureReads::CONDITIONS).iter().copied()));
        let mut procedures = sets.every_procedure();
        procedures.absorb(&sets.union(pick(MeasureReads::PROCEDURES).iter().copied()));
        let service_requests = sets.union(pick(MeasureReads::SERVICE_REQUESTS).iter().copied());
        let mut needles: Vec<String> = observations
            .exact_codes()
            .into_iter()
            .chain(encounter_types.exact_codes())
            .map(|(_, code)| format!("\"{code}\""))
            .collect();
        needles.sort();
        needles.dedup();
        let prefilter = aho_corasick::AhoCorasick::new(&needles).ok().map(Arc::new);
        let observation_search = observations.token_list().unwrap_or_default().into();
        Self {
            observations: Arc::new(observations),
            encounter_types: Arc::new(encounter_types),
            observation_search,
            diagnoses: Arc::new(diagnoses),
            procedures: Arc::new(procedures),
            service_requests: Arc::new(service_requests),
            prefilter,
        }
    }

    /// The score and lab codes as a `code=` search value (`system|code,...`).
    pub fn observation_search(&self) -> &str {
        &self.observation_search
    }

    /// The codes the engine reads of a type it reads by code (Observation, Condition,
    /// Procedure); `None` for a type it reads whole.
    pub fn selection_for(&self, kind: &str) -> Option<&CodeSelection> {
        match kind {
            "Observation" => Some(&self.observations),
            "Condition" => Some(&self.diagnoses),
            "Procedure" => Some(&self.procedures),
            "Encounter" => Some(&self.encounter_types),
            "ServiceRequest" => Some(&self.service_requests),
            _ => None,
        }
    }

    /// The search narrowing a type to the codes the engine reads: (parameter,
    /// `system|code,...`), where the type has a code parameter and the codes can be
    /// listed (ICD-10-CM prefixes cannot: Conditions are asked for whole).
    pub fn code_search(&self, kind: &str) -> Option<(&'static str, String)> {
        let param = crate::resource_types::read_type(kind)?.code_param?;
        Some((param, self.selection_for(kind)?.token_list()?))
    }

    /// False when the text holds none of the wanted codes (it cannot be wanted).
    pub(super) fn may_want(&self, text: &str) -> bool {
        self.prefilter
            .as_ref()
            .is_none_or(|finder| finder.is_match(text))
    }

    /// Whether a coding of these concepts is in the selection (no allocation: the
    /// reader asks this of every Observation it types).
    fn any_in<'c, 'a: 'c>(
        selection: &CodeSelection,
        concepts: impl IntoIterator<Item = &'c ConceptHead<'a>>,
    ) -> bool {
        concepts.into_iter().flat_map(|c| &c.coding).any(|coding| {
            match (&coding.system, &coding.code) {
                (Some(system), Some(code)) => selection.contains(system, code),
                _ => false,
            }
        })
    }

    pub(super) fn wants(&self, head: &ObservationHead<'_>) -> bool {
        Self::any_in(&self.observations, head.code.as_ref())
            || head
                .component
                .iter()
                .any(|c| Self::any_in(&self.observations, c.code.as_ref()))
    }

    pub(super) fn wants_encounter(&self, head: &EncounterHead<'_>) -> bool {
        Self::any_in(&self.encounter_types, &head.types)
    }

    /// A Condition, Procedure or ServiceRequest by its code.
    pub(super) fn wants_coded(&self, kind: &str, head: &CodedHead<'_>) -> bool {
        self.selection_for(kind)
            .is_some_and(|selection| Self::any_in(selection, head.code.as_ref()))
    }

    /// Whether the engine would read this resource at all: an Observation only with a
    /// score or lab code it knows, an Encounter only of a psychotherapy type, a
    /// Condition only in a diagnosis set, a Procedure only in a procedure set; every
    /// other type counts (medications of every kind matter: interactions).
    ///
    /// This looks at the resource as it is now: a diagnosis recoded out of every set
    /// no longer counts (the next relevant change of that patient catches it up).
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
            Some(kind @ ("Condition" | "Procedure" | "ServiceRequest")) => {
                CodedHead::deserialize(resource).is_ok_and(|head| self.wants_coded(kind, &head))
            }
            _ => true,
        }
    }
}
