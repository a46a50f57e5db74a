//! Psychotherapy as loaded from `knowledge/psychotherapy.toml`: the modality of a
//! procedure code, how sessions make a course, the (configurable, consensus-free)
//! adequacy threshold, and the modalities the fit findings look for.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::sources::{check_citations, Source};
use super::value_sets::ValueSetIndex;
use super::KnowledgeError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Modality {
    pub id: String,
    pub name: String,
    pub value_set: String,
    /// Counts as trauma-focused therapy (EMDR, trauma-focused CBT).
    #[serde(default)]
    pub trauma_focused: bool,
    pub sources: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CourseRules {
    /// Sessions further apart than this start a new course.
    pub gap_days: u32,
    pub adequate_sessions: u32,
    pub adequate_weeks: u32,
    pub sources: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FitRules {
    pub cbt_modality: String,
    pub dbt_modality: String,
    pub borderline_value_set: String,
    pub trauma_finding: String,
    pub sources: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PsychotherapyRules {
    pub sources: BTreeMap<String, Source>,
    pub course: CourseRules,
    pub modality: Vec<Modality>,
    pub fit: FitRules,
}

impl PsychotherapyRules {
    pub fn modality(&self, id: &str) -> Option<&Modality> {
        self.modality.iter().find(|m| m.id == id)
    }
}

pub(crate) fn parse(
    file: &str,
    text: &str,
    value_sets: &ValueSetIndex,
) -> Result<PsychotherapyRules, KnowledgeError> {
    let rules: PsychotherapyRules =
        toml::from_str(text).map_err(|e| KnowledgeError::invalid(file, e.to_string()))?;
    let cite = |entry: &str, cited: &BTreeMap<String, String>, required: &[&str]| {
        check_citations(file, entry, cited, required, &rules.sources)
    };
    let known_set = |entry: &str, url: &str| {
        if value_sets.has(url) {
            Ok(())
        } else {
            Err(KnowledgeError::invalid(
                file,
                format!("{entry}: value set {url} is not loaded"),
            ))
        }
    };
    cite(
        "[course]",
        &rules.course.sources,
        &["gap_days", "adequate_sessions", "adequate_weeks"],
    )?;
    for modality in &rules.modality {
        let entry = format!("modality `{}`", modality.id);
        let mut required = vec!["value_set"];
        if modality.trauma_focused {
            required.push("trauma_focused");
        }
        cite(&entry, &modality.sources, &required)?;
        known_set(&entry, &modality.value_set)?;
    }
    let fit = &rules.fit;
    cite(
        "[fit]",
        &fit.sources,
        &[
            "cbt_modality",
            "dbt_modality",
            "borderline_value_set",
            "trauma_finding",
        ],
    )?;
    known_set("[fit]", &fit.borderline_value_set)?;
    for id in [&fit.cbt_modality, &fit.dbt_modality] {
        if rules.modality(id).is_none() {
            return Err(KnowledgeError::invalid(
                file,
                format!("[fit]: modality `{id}` is not defined"),
            ));
        }
    }
    Ok(rules)
}
