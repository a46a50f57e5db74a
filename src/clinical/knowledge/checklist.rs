//! The pseudo-resistance checklist as loaded from `knowledge/checklist.toml`:
//! diagnoses, laboratory limits and instrument scores that each raise a finding.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::sources::{check_citations, Source};
use super::value_sets::ValueSetIndex;
use super::KnowledgeError;
use crate::clinical::finding::Severity;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagnosisCheck {
    pub code: String,
    pub value_set: String,
    pub severity: Severity,
    pub text: String,
    /// Counts even when the condition is resolved or inactive.
    #[serde(default)]
    pub any_status: bool,
    pub sources: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabCheck {
    pub code: String,
    pub value_set: String,
    pub name: String,
    pub above: Option<f64>,
    pub below: Option<f64>,
    pub unit: String,
    pub severity: Severity,
    /// Finding code when no result exists in the work-up look-back.
    pub missing_code: Option<String>,
    pub sources: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreCheck {
    pub code: String,
    pub instrument: String,
    pub severity: Severity,
    pub text: String,
    pub sources: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkUp {
    pub look_back_months: u32,
    pub sources: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checklist {
    pub sources: BTreeMap<String, Source>,
    #[serde(default)]
    pub diagnosis: Vec<DiagnosisCheck>,
    #[serde(default)]
    pub lab: Vec<LabCheck>,
    #[serde(default)]
    pub score: Vec<ScoreCheck>,
    pub work_up: WorkUp,
}

pub(crate) fn parse(
    file: &str,
    text: &str,
    value_sets: &ValueSetIndex,
) -> Result<Checklist, KnowledgeError> {
    let checklist: Checklist =
        toml::from_str(text).map_err(|e| KnowledgeError::invalid(file, e.to_string()))?;
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
    for check in &checklist.diagnosis {
        let entry = format!("diagnosis `{}`", check.code);
        check_citations(file, &entry, &check.sources, &["rule"], &checklist.sources)?;
        known_set(&entry, &check.value_set)?;
    }
    for check in &checklist.lab {
        let entry = format!("lab `{}`", check.code);
        let required: Vec<&str> = [
            ("above", check.above.is_some()),
            ("below", check.below.is_some()),
        ]
        .into_iter()
        .filter_map(|(field, present)| present.then_some(field))
        .collect();
        if required.is_empty() {
            return Err(KnowledgeError::invalid(
                file,
                format!("{entry}: needs `above` or `below`"),
            ));
        }
        check_citations(file, &entry, &check.sources, &required, &checklist.sources)?;
        known_set(&entry, &check.value_set)?;
    }
    for check in &checklist.score {
        check_citations(
            file,
            &format!("score `{}`", check.code),
            &check.sources,
            &["rule"],
            &checklist.sources,
        )?;
    }
    check_citations(
        file,
        "[work_up]",
        &checklist.work_up.sources,
        &["look_back_months"],
        &checklist.sources,
    )?;
    Ok(checklist)
}
