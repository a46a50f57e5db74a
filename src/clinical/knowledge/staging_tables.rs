//! The staging point tables (Thase-Rush, Maudsley, MGH-S) as loaded from
//! `knowledge/staging.toml`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::sources::{check_citations, Source};
use super::KnowledgeError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThaseRushTable {
    pub tca_classes: Vec<String>,
    pub maoi_classes: Vec<String>,
    pub sources: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MsmTable {
    /// (up to months, points), ascending.
    pub duration: Vec<(u32, u32)>,
    pub duration_above: u32,
    pub severity: BTreeMap<String, u32>,
    /// (up to failed treatments, points), ascending.
    pub failed_treatments: Vec<(u32, u32)>,
    pub failed_treatments_above: u32,
    pub augmentation_used: u32,
    pub ect_used: u32,
    /// (up to total, band), ascending.
    pub bands: Vec<(u32, String)>,
    /// PHQ-9 severity band -> MSM severity level.
    pub phq9_severity: BTreeMap<String, String>,
    pub sources: BTreeMap<String, String>,
}

impl MsmTable {
    pub fn duration_points(&self, months: u32) -> u32 {
        step(&self.duration, months).unwrap_or(self.duration_above)
    }

    /// 0 failed treatments scores 0: the item starts at one failure.
    pub fn failure_points(&self, failed: u32) -> u32 {
        if failed == 0 {
            return 0;
        }
        step(&self.failed_treatments, failed).unwrap_or(self.failed_treatments_above)
    }

    pub fn band(&self, total: u32) -> &str {
        self.bands
            .iter()
            .find(|(max, _)| total <= *max)
            .or(self.bands.last())
            .map(|(_, band)| band.as_str())
            .unwrap_or("unknown")
    }
}

fn step(table: &[(u32, u32)], value: u32) -> Option<u32> {
    table
        .iter()
        .find(|(max, _)| value <= *max)
        .map(|(_, points)| *points)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MghSTable {
    pub per_failed_trial: f64,
    pub per_optimised_or_augmented_trial: f64,
    pub failed_ect: f64,
    pub sources: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StagingTables {
    pub sources: BTreeMap<String, Source>,
    pub thase_rush: ThaseRushTable,
    pub msm: MsmTable,
    pub mgh_s: MghSTable,
}

pub(crate) fn parse(file: &str, text: &str) -> Result<StagingTables, KnowledgeError> {
    let tables: StagingTables =
        toml::from_str(text).map_err(|e| KnowledgeError::invalid(file, e.to_string()))?;
    check_citations(
        file,
        "[thase_rush]",
        &tables.thase_rush.sources,
        &["stages"],
        &tables.sources,
    )?;
    let msm_fields = [
        "duration",
        "severity",
        "failed_treatments",
        "augmentation_used",
        "ect_used",
        "bands",
        "phq9_severity",
    ];
    check_citations(
        file,
        "[msm]",
        &tables.msm.sources,
        &msm_fields,
        &tables.sources,
    )?;
    let mgh_fields = [
        "per_failed_trial",
        "per_optimised_or_augmented_trial",
        "failed_ect",
    ];
    check_citations(
        file,
        "[mgh_s]",
        &tables.mgh_s.sources,
        &mgh_fields,
        &tables.sources,
    )?;
    for (name, table) in [
        ("msm.duration", &tables.msm.duration),
        ("msm.failed_treatments", &tables.msm.failed_treatments),
    ] {
        if table.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(KnowledgeError::invalid(file, format!("{name} must ascend")));
        }
    }
    for level in [
        "subsyndromal",
        "mild",
        "moderate",
        "severe",
        "severe-psychotic",
    ] {
        if !tables.msm.severity.contains_key(level) {
            return Err(KnowledgeError::invalid(
                file,
                format!("msm.severity lacks `{level}`"),
            ));
        }
    }
    for level in tables.msm.phq9_severity.values() {
        if !tables.msm.severity.contains_key(level) {
            return Err(KnowledgeError::invalid(
                file,
                format!("msm.phq9_severity maps to unknown level `{level}`"),
            ));
        }
    }
    Ok(tables)
}
