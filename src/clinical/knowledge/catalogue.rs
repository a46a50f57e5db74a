//! The antidepressant catalogue: which ingredients make a trial, their class and the
//! minimum adequate daily dose; and the agents that count as augmentation.

use std::collections::{BTreeMap, HashMap};

use serde::Deserialize;

use super::sources::{check_citations, Source};
use super::KnowledgeError;
use crate::clinical::numbers::is_positive;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Antidepressant {
    pub ingredient: String,
    pub class: String,
    pub rxnorm: String,
    pub atc: String,
    pub min_daily_mg: f64,
    /// Some extended-release products have their own minimum (paroxetine CR 25 mg).
    pub min_daily_mg_extended_release: Option<f64>,
    pub usual_range_mg: [f64; 2],
    /// When set, only products for this route count (selegiline: transdermal).
    pub route: Option<String>,
    /// Below this daily dose the drug is used for something else (trazodone as a
    /// hypnotic): such use is listed as "not an antidepressant trial", not judged.
    pub not_antidepressant_below_mg: Option<f64>,
    /// At or below this daily dose, with a pain, migraine or sleep condition recorded,
    /// the drug is not antidepressant treatment (low-dose tricyclics).
    pub low_dose_with_indication_max_mg: Option<f64>,
    /// What the low-dose use is, in words ("hypnotic").
    pub low_dose_use: Option<String>,
    pub note: Option<String>,
    pub sources: BTreeMap<String, String>,
}

impl Antidepressant {
    /// The minimum adequate daily dose for this presentation (some extended-release
    /// products have their own).
    pub fn min_adequate_mg(&self, extended_release: bool) -> f64 {
        match (extended_release, self.min_daily_mg_extended_release) {
            (true, Some(er)) => er,
            _ => self.min_daily_mg,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AugmentationAgent {
    pub ingredient: String,
    pub kind: String,
    pub rxnorm: String,
    /// The agent counts as augmentation only from this daily dose (quetiapine 150 mg):
    /// below it, it is listed as not augmentation.
    pub augmenting_from_mg: f64,
    /// Labelled maximum daily dose (highest across indications): the ceiling of the
    /// dose plausibility check.
    pub max_daily_mg: Option<f64>,
    pub note: Option<String>,
    pub sources: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DrugKind {
    Antidepressant,
    Augmentation,
}

/// A handle on one catalogue entry; cheap to copy and compare.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DrugRef {
    pub kind: DrugKind,
    pub index: usize,
}

/// A daily dose above `max_factor` x the drug's labelled maximum is taken as a data
/// error (a count or unit misread), not a dose.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DosePlausibility {
    pub max_factor: f64,
    pub sources: BTreeMap<String, String>,
}

/// Brand names of single-ingredient products, each naming its catalogue ingredient.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Brands {
    pub names: BTreeMap<String, String>,
    pub sources: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    sources: BTreeMap<String, Source>,
    #[serde(default)]
    dose_plausibility: Option<DosePlausibility>,
    antidepressant: Vec<Antidepressant>,
    #[serde(default)]
    augmentation_agent: Vec<AugmentationAgent>,
    #[serde(default)]
    brands: Option<Brands>,
}

#[derive(Debug)]
pub struct DrugCatalogue {
    pub sources: BTreeMap<String, Source>,
    pub dose_plausibility: Option<DosePlausibility>,
    pub antidepressants: Vec<Antidepressant>,
    pub augmentation_agents: Vec<AugmentationAgent>,
    pub brands: Brands,
    /// Ingredient names and brand names, lower case.
    by_name: HashMap<String, DrugRef>,
    by_rxnorm: HashMap<String, DrugRef>,
}

impl DrugCatalogue {
    pub fn parse(file: &str, text: &str) -> Result<Self, KnowledgeError> {
        let parsed: CatalogueFile =
            toml::from_str(text).map_err(|e| KnowledgeError::invalid(file, e.to_string()))?;
        let mut catalogue = Self {
            sources: parsed.sources,
            dose_plausibility: parsed.dose_plausibility,
            antidepressants: parsed.antidepressant,
            augmentation_agents: parsed.augmentation_agent,
            brands: parsed.brands.unwrap_or_default(),
            by_name: HashMap::new(),
            by_rxnorm: HashMap::new(),
        };
        catalogue.validate_and_index(file)?;
        Ok(catalogue)
    }

    fn validate_and_index(&mut self, file: &str) -> Result<(), KnowledgeError> {
        if let Some(plausibility) = &self.dose_plausibility {
            let entry = "dose_plausibility";
            check_citations(
                file,
                entry,
                &plausibility.sources,
                &["max_factor"],
                &self.sources,
            )?;
            if !(plausibility.max_factor.is_finite() && plausibility.max_factor >= 1.0) {
                return Err(KnowledgeError::invalid(
                    file,
                    format!("{entry}: max_factor must be a number >= 1"),
                ));
            }
        }
        let mut entries: Vec<(DrugRef, String, String)> = Vec::new();
        for (index, drug) in self.antidepressants.iter().enumerate() {
            let entry = format!("antidepressant `{}`", drug.ingredient);
            check_citations(
                file,
                &entry,
                &drug.sources,
                &["rxnorm", "min_daily_mg", "usual_range_mg", "atc"],
                &self.sources,
            )?;
            if !is_positive(drug.min_daily_mg) {
                return Err(KnowledgeError::invalid(
                    file,
                    format!("{entry}: min_daily_mg must be > 0"),
                ));
            }
            let low_dose_keys = [
                (
                    "not_antidepressant_below_mg",
                    drug.not_antidepressant_below_mg,
                ),
                (
                    "low_dose_with_indication_max_mg",
                    drug.low_dose_with_indication_max_mg,
                ),
            ];
            for (key, value) in low_dose_keys {
                let Some(value) = value else { continue };
                check_citations(file, &entry, &drug.sources, &[key], &self.sources)?;
                if !is_positive(value) || drug.low_dose_use.is_none() {
                    return Err(KnowledgeError::invalid(
                        file,
                        format!("{entry}: {key} must be > 0 and come with low_dose_use"),
                    ));
                }
            }
            let [low, high] = drug.usual_range_mg;
            if !(low > 0.0 && low <= high) {
                return Err(KnowledgeError::invalid(
                    file,
                    format!("{entry}: usual_range_mg must be [low, high] with 0 < low <= high"),
                ));
            }
            let kind = DrugKind::Antidepressant;
            entries.push((
                DrugRef { kind, index },
                drug.ingredient.clone(),
                drug.rxnorm.clone(),
            ));
        }
        for (index, agent) in self.augmentation_agents.iter().enumerate() {
            let entry = format!("augmentation_agent `{}`", agent.ingredient);
            let mut required = vec!["rxnorm", "augmenting_from_mg"];
            if let Some(max) = agent.max_daily_mg {
                required.push("max_daily_mg");
                if !is_positive(max) {
                    return Err(KnowledgeError::invalid(
                        file,
                        format!("{entry}: max_daily_mg must be > 0"),
                    ));
                }
            }
            check_citations(file, &entry, &agent.sources, &required, &self.sources)?;
            if !is_positive(agent.augmenting_from_mg) {
                return Err(KnowledgeError::invalid(
                    file,
                    format!("{entry}: augmenting_from_mg must be > 0"),
                ));
            }
            let kind = DrugKind::Augmentation;
            entries.push((
                DrugRef { kind, index },
                agent.ingredient.clone(),
                agent.rxnorm.clone(),
            ));
        }
        for (drug, name, rxnorm) in entries {
            let name = name.to_lowercase();
            if name.trim().is_empty() || rxnorm.trim().is_empty() {
                return Err(KnowledgeError::invalid(
                    file,
                    "an entry has an empty ingredient or rxnorm",
                ));
            }
            if self.by_name.insert(name.clone(), drug).is_some() {
                return Err(KnowledgeError::invalid(
                    file,
                    format!("ingredient `{name}` is listed twice"),
                ));
            }
            if self.by_rxnorm.insert(rxnorm.clone(), drug).is_some() {
                return Err(KnowledgeError::invalid(
                    file,
                    format!("rxnorm `{rxnorm}` is listed twice"),
                ));
            }
        }
        self.index_brands(file)
    }

    /// Brand names join the ingredient names: a product named "Zoloft 100 MG Oral
    /// Tablet" or "Effexor XR" is read as its ingredient.
    fn index_brands(&mut self, file: &str) -> Result<(), KnowledgeError> {
        if self.brands.names.is_empty() {
            return Ok(());
        }
        check_citations(
            file,
            "brands",
            &self.brands.sources,
            &["names"],
            &self.sources,
        )?;
        for (brand, ingredient) in &self.brands.names {
            let drug = self.by_name(ingredient).ok_or_else(|| {
                KnowledgeError::invalid(
                    file,
                    format!("brand `{brand}`: ingredient `{ingredient}` is not in the catalogue"),
                )
            })?;
            let name = brand.to_lowercase();
            if self
                .by_name
                .insert(name.clone(), drug)
                .is_some_and(|d| d != drug)
            {
                return Err(KnowledgeError::invalid(
                    file,
                    format!("brand `{brand}` names another catalogue entry too"),
                ));
            }
        }
        Ok(())
    }

    /// The drug an ingredient name or a brand name (any case) stands for.
    pub fn by_name(&self, ingredient: &str) -> Option<DrugRef> {
        self.by_name.get(&ingredient.to_lowercase()).copied()
    }

    pub fn by_rxnorm(&self, code: &str) -> Option<DrugRef> {
        self.by_rxnorm.get(code).copied()
    }

    pub fn name(&self, drug: DrugRef) -> &str {
        match drug.kind {
            DrugKind::Antidepressant => &self.antidepressants[drug.index].ingredient,
            DrugKind::Augmentation => &self.augmentation_agents[drug.index].ingredient,
        }
    }

    pub fn rxnorm(&self, drug: DrugRef) -> &str {
        match drug.kind {
            DrugKind::Antidepressant => &self.antidepressants[drug.index].rxnorm,
            DrugKind::Augmentation => &self.augmentation_agents[drug.index].rxnorm,
        }
    }

    pub fn antidepressant(&self, drug: DrugRef) -> Option<&Antidepressant> {
        match drug.kind {
            DrugKind::Antidepressant => self.antidepressants.get(drug.index),
            DrugKind::Augmentation => None,
        }
    }

    /// The labelled maximum daily dose: an antidepressant's usual range high, an
    /// augmentation agent's `max_daily_mg`.
    pub fn max_daily_mg(&self, drug: DrugRef) -> Option<f64> {
        match drug.kind {
            DrugKind::Antidepressant => self
                .antidepressants
                .get(drug.index)
                .map(|a| a.usual_range_mg[1]),
            DrugKind::Augmentation => self
                .augmentation_agents
                .get(drug.index)
                .and_then(|a| a.max_daily_mg),
        }
    }

    pub fn augmentation_agent(&self, drug: DrugRef) -> Option<&AugmentationAgent> {
        match drug.kind {
            DrugKind::Augmentation => self.augmentation_agents.get(drug.index),
            DrugKind::Antidepressant => None,
        }
    }

    /// Names known to the catalogue, longest first: the display parser matches the
    /// longest ingredient name a display ends with.
    pub fn names(&self) -> impl Iterator<Item = (&str, DrugRef)> {
        self.by_name
            .iter()
            .map(|(name, drug)| (name.as_str(), *drug))
    }
}
