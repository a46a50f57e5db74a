//! Clinical policy: every threshold the engine applies, as named presets from
//! `profiles/policies.toml`. An assessment always carries the policy that made it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::knowledge::{KnowledgeError, ProfileFiles, Source};

pub const POLICIES_FILE: &str = "policies.toml";

/// How the current depressive episode's start is found (docs/clinical-rules.md section 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EpisodeBoundary {
    /// A new episode starts after >= `treatment_free_months` without antidepressant (claims style).
    TreatmentFree,
    /// A new episode starts after >= `remission_months` in remission (ATHF).
    Remission,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Preset name, plus any overrides applied (e.g. `default+min_adequate_weeks=8`).
    #[serde(default)]
    pub name: String,
    pub description: String,
    pub min_adequate_weeks: u32,
    pub early_stop_weeks: u32,
    pub era_gap_days: u32,
    pub pdc_threshold: f64,
    pub combination_overlap_days: u32,
    pub baseline_window_days: [i32; 2],
    pub outcome_from_weeks: u32,
    pub outcome_after_end_days: u32,
    pub partial_response_from: f64,
    pub response_from: f64,
    pub trd_min_failed_trials: u32,
    pub trd_require_different_classes: bool,
    pub episode_boundary: EpisodeBoundary,
    pub treatment_free_months: u32,
    pub remission_months: u32,
    pub chronic_months: u32,
    /// An ongoing trial younger than this with a dose below the minimum is titrating.
    pub titration_window_weeks: u32,
    /// Early refills shift forward, but at most this many days of stock carry over.
    pub stockpile_cap_days: u32,
    /// A dispense's days supply above this is a data error (finding), not a supply.
    pub max_days_supply: u32,
    /// An order's estimated supply (fills x days) above this is a data error.
    pub max_order_days: u32,
    /// An order that states no supply (no expected supply duration, countable
    /// quantity or validity end) and was never dispensed supports this many days per
    /// allowed fill, no more: a stale `active` status never stretches a trial to the
    /// as-of date.
    pub order_default_supply_days: u32,
    /// A remission or response label whose last depression score is older than this
    /// (or whose drug has stopped) asks for a new measurement.
    pub remeasure_after_days: u32,
    /// Dates outside [first, last] year are data errors: the resource is a finding.
    pub plausible_years: [i32; 2],
    /// Field -> source key (see `[sources]` in the policies file).
    #[serde(default)]
    pub sources: BTreeMap<String, String>,
}

/// The presets of one policies file.
#[derive(Debug, Clone)]
pub struct PolicyBook {
    pub sources: BTreeMap<String, Source>,
    presets: BTreeMap<String, Policy>,
}

impl PolicyBook {
    pub fn embedded() -> Result<Self, KnowledgeError> {
        Self::from_files(&ProfileFiles::embedded())
    }

    pub fn from_files(files: &ProfileFiles) -> Result<Self, KnowledgeError> {
        Self::parse(POLICIES_FILE, files.get(POLICIES_FILE)?)
    }

    /// Every preset is `default` overlaid with its own keys.
    pub fn parse(file: &str, text: &str) -> Result<Self, KnowledgeError> {
        let invalid = |m: String| KnowledgeError::invalid(file, m);
        let mut table: toml::Table = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let sources: BTreeMap<String, Source> = table
            .remove("sources")
            .ok_or_else(|| invalid("no [sources] table".into()))?
            .try_into()
            .map_err(|e: toml::de::Error| invalid(format!("[sources]: {e}")))?;
        let default = table
            .get("default")
            .and_then(|d| d.as_table())
            .cloned()
            .ok_or_else(|| invalid("no [default] policy".into()))?;
        let mut presets = BTreeMap::new();
        for (name, overrides) in &table {
            let overrides = overrides
                .as_table()
                .ok_or_else(|| invalid(format!("[{name}] is not a table")))?;
            let mut merged = default.clone();
            for (key, value) in overrides {
                match (key.as_str(), merged.get_mut("sources"), value.as_table()) {
                    ("sources", Some(toml::Value::Table(base)), Some(extra)) => {
                        base.extend(extra.clone());
                    }
                    _ => {
                        merged.insert(key.clone(), value.clone());
                    }
                }
            }
            let mut policy: Policy = toml::Value::Table(merged)
                .try_into()
                .map_err(|e: toml::de::Error| invalid(format!("policy `{name}`: {e}")))?;
            policy.name = name.clone();
            policy
                .validate()
                .map_err(|m| invalid(format!("policy `{name}`: {m}")))?;
            for (field, key) in &policy.sources {
                if !sources.contains_key(key) {
                    return Err(invalid(format!(
                        "policy `{name}`: source `{key}` for `{field}` is not declared"
                    )));
                }
            }
            presets.insert(name.clone(), policy);
        }
        Ok(Self { sources, presets })
    }

    pub fn get(&self, name: &str) -> Option<&Policy> {
        self.presets.get(name)
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.presets.keys().map(String::as_str)
    }
}

impl Policy {
    /// The shipped default (EU-PEARL) policy.
    pub fn default_preset() -> Result<Self, KnowledgeError> {
        let book = PolicyBook::embedded()?;
        book.get("default")
            .cloned()
            .ok_or_else(|| KnowledgeError::invalid(POLICIES_FILE, "no [default] policy"))
    }

    /// Checks ranges; a hospital's edited file fails at start, not mid-run.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.pdc_threshold) {
            return Err("pdc_threshold must be between 0 and 1".into());
        }
        if !(0.0 < self.partial_response_from
            && self.partial_response_from < self.response_from
            && self.response_from <= 1.0)
        {
            return Err("need 0 < partial_response_from < response_from <= 1".into());
        }
        if self.min_adequate_weeks == 0 || self.trd_min_failed_trials == 0 {
            return Err("min_adequate_weeks and trd_min_failed_trials must be > 0".into());
        }
        if self.plausible_years[0] >= self.plausible_years[1]
            || self.plausible_years[0] < 1
            || self.plausible_years[1] > 9000
        {
            return Err(
                "plausible_years must be [first, last] with 1 <= first < last <= 9000".into(),
            );
        }
        if self.max_days_supply == 0
            || self.max_order_days == 0
            || self.order_default_supply_days == 0
        {
            return Err(
                "max_days_supply, max_order_days and order_default_supply_days must be > 0".into(),
            );
        }
        if self.baseline_window_days[0] > self.baseline_window_days[1] {
            return Err("baseline_window_days must be [before, after] with before <= after".into());
        }
        Ok(())
    }

    /// Records an override in the policy's name so the output says what was used.
    pub fn with_override(mut self, field: &str, value: impl std::fmt::Display) -> Self {
        self.name = format!("{}+{field}={value}", self.name);
        self.sources
            .insert(field.to_string(), "command-line".into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_overlay_the_default() {
        let book = PolicyBook::embedded().expect("policies");
        let default = book.get("default").expect("default");
        assert_eq!(
            (
                default.min_adequate_weeks,
                default.era_gap_days,
                default.pdc_threshold
            ),
            (6, 30, 0.8)
        );
        assert_eq!(book.get("athf-4w").expect("athf").min_adequate_weeks, 4);
        let atrq = book.get("atrq-8w").expect("atrq");
        assert_eq!(atrq.min_adequate_weeks, 8);
        assert_eq!(atrq.era_gap_days, 30, "unchanged keys come from default");
        assert_eq!(atrq.sources["min_adequate_weeks"], "atrq");
        assert_eq!(atrq.sources["era_gap_days"], "fife2018");
        assert!(book.get("ema").expect("ema").trd_require_different_classes);
        assert_eq!(book.get("claims-42d").expect("claims").era_gap_days, 42);
    }

    #[test]
    fn every_threshold_cites_a_source() {
        let book = PolicyBook::embedded().expect("policies");
        let default = book.get("default").expect("default");
        let fields = toml::Value::try_from(default).expect("serialise");
        for field in fields.as_table().expect("table").keys() {
            if ["name", "description", "sources"].contains(&field.as_str()) {
                continue;
            }
            assert!(default.sources.contains_key(field), "{field} has no source");
        }
    }

    #[test]
    fn bad_policies_are_rejected_with_the_preset_named() {
        let text = include_str!("../../profiles/policies.toml")
            .replace("pdc_threshold = 0.80", "pdc_threshold = 1.5");
        let error = PolicyBook::parse("policies.toml", &text).expect_err("invalid");
        assert!(
            error
                .to_string()
                .contains("pdc_threshold must be between 0 and 1"),
            "{error}"
        );
        let unknown = format!(
            "{}\n[typo]\nmin_adequate_wekes = 3\n",
            include_str!("../../profiles/policies.toml")
        );
        let error = PolicyBook::parse("policies.toml", &unknown).expect_err("unknown key");
        assert!(error.to_string().contains("policy `typo`"), "{error}");
        let override_named = Policy::default_preset()
            .expect("default")
            .with_override("min_adequate_weeks", 8);
        assert_eq!(override_named.name, "default+min_adequate_weeks=8");
    }
}
