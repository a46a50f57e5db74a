//! Safety rules as loaded from `knowledge/safety.toml`: suicide-risk signals, the
//! antidepressant boxed warning under 25, MAOI washouts, dose limits and lithium
//! monitoring. Every threshold is cited; references to instruments, drug classes,
//! ingredients and value sets are checked against the rest of the knowledge at load.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::catalogue::DrugCatalogue;
use super::instruments::{Instrument, InstrumentPurpose};
use super::sources::{check_citations, Source};
use super::value_sets::ValueSetIndex;
use super::KnowledgeError;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuicideSignal {
    /// An instrument id from instruments.toml with `measures = "suicide-risk"`.
    pub instrument: String,
    /// What a positive answer means, in words.
    pub what: String,
    /// Finding code when positive.
    pub code: String,
    /// Finding code when at or above `high_at_or_above` (else `code`, ranked first).
    pub high_code: Option<String>,
    pub positive_at_or_above: f64,
    pub high_at_or_above: Option<f64>,
    /// Add the suicide-risk note (PHQ-9 item 9 alone misses many at-risk patients).
    #[serde(default)]
    pub with_note: bool,
    pub sources: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SuicideRisk {
    pub window_days: u32,
    /// Said with every PHQ-9 item 9 finding.
    pub note: String,
    pub signal: Vec<SuicideSignal>,
    pub sources: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct YoungAdult {
    pub under_age: i32,
    pub monitor_days: u32,
    pub sources: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedDrug {
    /// Matched in a medication's code displays and text (lower case; a part of a
    /// name, such as "valpro", matches every salt and form).
    pub name: String,
    #[serde(default)]
    pub rxnorm: Vec<String>,
    pub sources: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Serotonin {
    pub maoi_classes: Vec<String>,
    pub serotonergic_classes: Vec<String>,
    pub washout_days: u32,
    /// Longer washouts after some ingredients (fluoxetine 35 days).
    #[serde(default)]
    pub washout_days_after: BTreeMap<String, u32>,
    #[serde(default)]
    pub interacting: Vec<NamedDrug>,
    pub sources: BTreeMap<String, String>,
}

impl Serotonin {
    /// Days to wait after stopping `ingredient` before an MAOI or linezolid.
    pub fn washout_after(&self, ingredient: &str) -> u32 {
        self.washout_days_after
            .get(ingredient)
            .copied()
            .unwrap_or(self.washout_days)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoseLimit {
    pub ingredient: String,
    pub max_daily_mg: f64,
    pub older_than_years: Option<i32>,
    pub older_max_daily_mg: Option<f64>,
    pub look_back_days: u32,
    /// Why the limit exists ("QT prolongation").
    pub reason: String,
    pub sources: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LithiumMonitoring {
    pub ingredient: String,
    pub value_set: String,
    pub current_within_days: u32,
    pub level_every_days: u32,
    pub level_after_change_days: u32,
    pub sources: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SafetyRules {
    pub sources: BTreeMap<String, Source>,
    pub suicide_risk: SuicideRisk,
    pub young_adult: YoungAdult,
    pub serotonin: Serotonin,
    #[serde(default)]
    pub dose_limit: Vec<DoseLimit>,
    pub lithium: LithiumMonitoring,
    pub bipolar_cover: BipolarCover,
}

/// What covers an antidepressant in bipolar disorder (a mood stabiliser or an
/// antipsychotic taken now): without it, an antidepressant order is a switch risk.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BipolarCover {
    /// Taken within this many days before the as-of date: current.
    pub current_within_days: u32,
    pub mood_stabilisers: Vec<NamedDrug>,
    pub antipsychotics: Vec<NamedDrug>,
    pub sources: BTreeMap<String, String>,
}

impl BipolarCover {
    pub fn agents(&self) -> impl Iterator<Item = &NamedDrug> {
        self.mood_stabilisers.iter().chain(&self.antipsychotics)
    }
}

impl SafetyRules {
    /// The suicide-risk finding codes the rules can raise (the medicine codes are the
    /// engine's own, in `finding::codes`).
    pub fn finding_codes(&self) -> Vec<String> {
        let mut codes: Vec<String> = self
            .suicide_risk
            .signal
            .iter()
            .flat_map(|s| std::iter::once(s.code.clone()).chain(s.high_code.clone()))
            .collect();
        codes.sort();
        codes.dedup();
        codes
    }
}

pub(crate) fn parse(
    file: &str,
    text: &str,
    instruments: &[Instrument],
    drugs: &DrugCatalogue,
    value_sets: &ValueSetIndex,
) -> Result<SafetyRules, KnowledgeError> {
    let rules: SafetyRules =
        toml::from_str(text).map_err(|e| KnowledgeError::invalid(file, e.to_string()))?;
    let invalid = |message: String| KnowledgeError::invalid(file, message);
    let cite = |entry: &str, cited: &BTreeMap<String, String>, required: &[&str]| {
        check_citations(file, entry, cited, required, &rules.sources)
    };

    let risk = &rules.suicide_risk;
    cite("[suicide_risk]", &risk.sources, &["window_days", "note"])?;
    for signal in &risk.signal {
        let entry = format!("suicide_risk signal `{}`", signal.instrument);
        let mut required = vec!["positive_at_or_above"];
        if signal.high_at_or_above.is_some() {
            required.push("high_at_or_above");
        }
        cite(&entry, &signal.sources, &required)?;
        if !instruments
            .iter()
            .any(|i| i.id == signal.instrument && i.measures == InstrumentPurpose::SuicideRisk)
        {
            return Err(invalid(format!(
                "{entry}: no instrument `{}` with measures = \"suicide-risk\"",
                signal.instrument
            )));
        }
    }
    cite(
        "[young_adult]",
        &rules.young_adult.sources,
        &["under_age", "monitor_days"],
    )?;

    let serotonin = &rules.serotonin;
    cite(
        "[serotonin]",
        &serotonin.sources,
        &[
            "maoi_classes",
            "serotonergic_classes",
            "washout_days",
            "washout_days_after",
        ],
    )?;
    let known_class = |class: &String| drugs.antidepressants.iter().any(|d| &d.class == class);
    if let Some(class) = serotonin
        .maoi_classes
        .iter()
        .chain(&serotonin.serotonergic_classes)
        .find(|c| !known_class(c))
    {
        return Err(invalid(format!(
            "[serotonin]: class `{class}` is not used in the antidepressant catalogue"
        )));
    }
    if let Some(ingredient) = serotonin
        .washout_days_after
        .keys()
        .find(|i| drugs.by_name(i).is_none())
    {
        return Err(invalid(format!(
            "[serotonin] washout_days_after: `{ingredient}` is not in the catalogue"
        )));
    }
    for drug in &serotonin.interacting {
        cite(
            &format!("serotonin interacting `{}`", drug.name),
            &drug.sources,
            &["name"],
        )?;
    }

    let cover = &rules.bipolar_cover;
    cite(
        "[bipolar_cover]",
        &cover.sources,
        &["current_within_days", "mood_stabilisers", "antipsychotics"],
    )?;
    for drug in cover.agents() {
        cite(
            &format!("bipolar_cover `{}`", drug.name),
            &drug.sources,
            &["name"],
        )?;
    }

    for limit in &rules.dose_limit {
        let entry = format!("dose_limit `{}`", limit.ingredient);
        let mut required = vec!["max_daily_mg", "look_back_days"];
        if limit.older_than_years.is_some() || limit.older_max_daily_mg.is_some() {
            if limit.older_than_years.is_none() || limit.older_max_daily_mg.is_none() {
                return Err(invalid(format!(
                    "{entry}: older_than_years and older_max_daily_mg go together"
                )));
            }
            required.extend(["older_than_years", "older_max_daily_mg"]);
        }
        cite(&entry, &limit.sources, &required)?;
        if drugs.by_name(&limit.ingredient).is_none() {
            return Err(invalid(format!("{entry}: not in the catalogue")));
        }
    }

    let lithium = &rules.lithium;
    cite(
        "[lithium]",
        &lithium.sources,
        &[
            "value_set",
            "current_within_days",
            "level_every_days",
            "level_after_change_days",
        ],
    )?;
    if drugs.by_name(&lithium.ingredient).is_none() {
        return Err(invalid(format!(
            "[lithium]: `{}` is not in the catalogue",
            lithium.ingredient
        )));
    }
    if !value_sets.has(&lithium.value_set) {
        return Err(invalid(format!(
            "[lithium]: value set {} is not loaded",
            lithium.value_set
        )));
    }
    Ok(rules)
}
