//! RxNorm clinical drugs -> ingredient, strength and form, read from normalised display
//! names: SCD/SBD ("[24 HR] ingredient [salt] 50 MG [Extended Release] Oral Tablet
//! [Brand]"), SCDC/SBDC components without a dose form ("sertraline 100 MG",
//! "Sertraline 100MG", "sertraline 100 MG [Zoloft]"), GPCK/BPCK packs
//! ("{7 (...) / 23 (...) } Pack [Brand]"), combinations joined by " / ".
//!
//! The map is built from the VSAC medication value sets (`vsac/`, `valuesets/`) and
//! from `knowledge/rxnorm_extra.toml` (codes the value sets do not carry: SCDC, SBD,
//! augmentation agents), each entry there with a source.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::catalogue::DrugCatalogue;
use super::drug_product::ClinicalDrug;
use super::files::ProfileFiles;
use super::rxnorm_display::parse_rxnorm_display;
use super::sources::Source;
use super::{KnowledgeError, RXNORM_EXTRA_FILE};

pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";

/// RxNorm term types of the concepts in `knowledge/rxnorm_extra.toml`: each must
/// match the shape of its display name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum RxnormTermType {
    /// Semantic clinical drug: ingredient, strength, dose form.
    #[serde(rename = "SCD")]
    Scd,
    /// Semantic branded drug: the SCD with a brand.
    #[serde(rename = "SBD")]
    Sbd,
    /// Clinical drug component: ingredient and strength, no dose form.
    #[serde(rename = "SCDC")]
    Scdc,
    /// Branded drug component.
    #[serde(rename = "SBDC")]
    Sbdc,
    /// Generic pack.
    #[serde(rename = "GPCK")]
    Gpck,
    /// Branded pack.
    #[serde(rename = "BPCK")]
    Bpck,
}

impl RxnormTermType {
    /// Why `drug` does not have this term type's shape, if it does not.
    fn mismatch(self, drug: &ClinicalDrug) -> Option<&'static str> {
        let branded = matches!(self, Self::Sbd | Self::Sbdc | Self::Bpck);
        if branded != drug.brand.is_some() {
            return Some(if branded {
                "a branded term type needs '[Brand]' at the end of the display"
            } else {
                "a generic term type cannot have a '[Brand]'"
            });
        }
        let shape_ok = match self {
            Self::Scd | Self::Sbd => !drug.pack && !drug.form.is_empty(),
            Self::Scdc | Self::Sbdc => drug.is_component(),
            Self::Gpck | Self::Bpck => drug.pack,
        };
        (!shape_ok).then_some(match self {
            Self::Scd | Self::Sbd => "a clinical drug needs a dose form after the strength",
            Self::Scdc | Self::Sbdc => "a component has no dose form",
            Self::Gpck | Self::Bpck => "a pack is written '{...} Pack'",
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtraFile {
    sources: BTreeMap<String, Source>,
    #[serde(default)]
    concept: Vec<ExtraConcept>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExtraConcept {
    code: String,
    tty: RxnormTermType,
    display: String,
    /// Key of the entry's citation under [sources].
    source: String,
}

/// RxNorm code -> parsed clinical drug.
#[derive(Debug, Default)]
pub struct ClinicalDrugMap {
    by_code: HashMap<String, ClinicalDrug>,
}

impl ClinicalDrugMap {
    /// Parses every RxNorm concept in the medication value sets under `vsac/` and
    /// `valuesets/`, then the cited concepts of `knowledge/rxnorm_extra.toml`. A display
    /// that cannot be read is an error naming file and code.
    pub fn build(files: &ProfileFiles, catalogue: &DrugCatalogue) -> Result<Self, KnowledgeError> {
        let mut by_code = HashMap::new();
        for folder in ["vsac/", "valuesets/"] {
            for (file, text) in files.under(folder) {
                let value_set: serde_json::Value = serde_json::from_str(text)
                    .map_err(|e| KnowledgeError::invalid(file, e.to_string()))?;
                let contains = value_set
                    .pointer("/expansion/contains")
                    .and_then(|c| c.as_array())
                    .into_iter()
                    .flatten();
                for concept in contains {
                    if concept.get("system").and_then(|s| s.as_str()) != Some(RXNORM) {
                        continue;
                    }
                    let (Some(code), Some(display)) = (
                        concept.get("code").and_then(|c| c.as_str()),
                        concept.get("display").and_then(|d| d.as_str()),
                    ) else {
                        return Err(KnowledgeError::invalid(
                            file,
                            "an RxNorm concept lacks code or display",
                        ));
                    };
                    let drug = parse_rxnorm_display(display, catalogue).map_err(|message| {
                        KnowledgeError::invalid(
                            file,
                            format!("RxNorm {code} '{display}': {message}"),
                        )
                    })?;
                    by_code.insert(code.to_string(), drug);
                }
            }
        }
        let mut map = Self { by_code };
        map.add_extra(files.get(RXNORM_EXTRA_FILE)?, catalogue)?;
        Ok(map)
    }

    /// `knowledge/rxnorm_extra.toml`: each concept cites a declared source, has a term
    /// type that matches its display, names a catalogued drug, and agrees with a value
    /// set that also carries the code.
    fn add_extra(&mut self, text: &str, catalogue: &DrugCatalogue) -> Result<(), KnowledgeError> {
        let file = RXNORM_EXTRA_FILE;
        let parsed: ExtraFile =
            toml::from_str(text).map_err(|e| KnowledgeError::invalid(file, e.to_string()))?;
        let mut seen = std::collections::HashSet::new();
        for concept in parsed.concept {
            let entry = format!("concept `{}` '{}'", concept.code, concept.display);
            let invalid =
                |message: String| KnowledgeError::invalid(file, format!("{entry}: {message}"));
            if concept.code.is_empty() || !concept.code.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("an RxNorm code is digits only".into()));
            }
            if !seen.insert(concept.code.clone()) {
                return Err(invalid("listed twice".into()));
            }
            if !parsed.sources.contains_key(&concept.source) {
                return Err(invalid(format!(
                    "source `{}` is not declared under [sources]",
                    concept.source
                )));
            }
            let drug = parse_rxnorm_display(&concept.display, catalogue).map_err(invalid)?;
            if let Some(why) = concept.tty.mismatch(&drug) {
                return Err(invalid(format!("{:?}: {why}", concept.tty)));
            }
            if drug.components.iter().all(|c| c.drug.is_none()) {
                return Err(invalid(
                    "names no catalogued antidepressant or augmentation agent".into(),
                ));
            }
            if let Some(known) = self.by_code.get(&concept.code) {
                if known.components != drug.components {
                    return Err(invalid(format!(
                        "a value set gives this code as '{}'",
                        known.display
                    )));
                }
                continue;
            }
            self.by_code.insert(concept.code, drug);
        }
        Ok(())
    }

    pub fn get(&self, rxnorm_code: &str) -> Option<&ClinicalDrug> {
        self.by_code.get(rxnorm_code)
    }

    pub fn len(&self) -> usize {
        self.by_code.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_code.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clinical::knowledge::Knowledge;

    fn with_extra(concepts: &str) -> Result<Knowledge, KnowledgeError> {
        let mut files = ProfileFiles::embedded();
        files.set(
            RXNORM_EXTRA_FILE,
            format!("[sources.test]\ncitation = \"test\"\nquality = \"check\"\n{concepts}"),
        );
        Knowledge::from_files(&files)
    }

    #[test]
    fn every_shipped_rxnorm_concept_is_read() {
        let knowledge = Knowledge::embedded().expect("knowledge");
        // ~200 concepts across the two VSAC medication value sets (some shared), and
        // the extra file's.
        assert!(
            knowledge.clinical_drugs.len() >= 260,
            "{}",
            knowledge.clinical_drugs.len()
        );
        let sertraline = knowledge.clinical_drugs.get("312941").expect("312941");
        assert_eq!(sertraline.components[0].strength.value, 50.0);
        let scdc = knowledge.clinical_drugs.get("328670").expect("328670 SCDC");
        assert!(scdc.is_component());
        assert_eq!(scdc.components[0].strength.value, 100.0);
    }

    #[test]
    fn every_catalogued_agent_has_clinical_drug_codes() {
        let knowledge = Knowledge::embedded().expect("knowledge");
        let names = knowledge
            .drugs
            .antidepressants
            .iter()
            .map(|a| a.ingredient.as_str())
            .chain(
                knowledge
                    .drugs
                    .augmentation_agents
                    .iter()
                    .map(|a| a.ingredient.as_str()),
            );
        let mut missing = Vec::new();
        for name in names {
            let drug = knowledge.drugs.by_name(name).expect("catalogued");
            let known = knowledge
                .clinical_drugs
                .by_code
                .values()
                .any(|c| c.components.iter().any(|p| p.drug == Some(drug)));
            if !known {
                missing.push(name);
            }
        }
        // No public value set or package at hand carries clinical-drug codes for these
        // two (rxnorm_extra.toml says so); their orders are read from the display text.
        assert_eq!(
            missing,
            ["lithium", "liothyronine"],
            "catalogued agents without a clinical drug code"
        );
    }

    #[test]
    fn extra_concepts_are_validated() {
        let ok = "[[concept]]\ncode = \"999001\"\ntty = \"SCDC\"\ndisplay = \"sertraline 75 MG\"\nsource = \"test\"\n";
        let knowledge = with_extra(ok).expect("valid");
        assert!(knowledge.clinical_drugs.get("999001").is_some());
        let cases = [
            (ok.replace("SCDC", "SCD"), "needs a dose form"),
            (ok.replace("SCDC", "SBDC"), "branded term type"),
            (
                ok.replace("\"test\"\n", "\"hearsay\"\n"),
                "source `hearsay`",
            ),
            (
                ok.replace("sertraline", "lisinopril"),
                "names no catalogued",
            ),
            (ok.replace("75 MG", "MG"), "no strength"),
            (
                ok.replace("999001", "312941"),
                "a value set gives this code",
            ),
            (format!("{ok}{ok}"), "listed twice"),
            (ok.replace("999001", "99x"), "digits only"),
        ];
        for (text, expected) in cases {
            let error = with_extra(&text).expect_err(expected).to_string();
            assert!(
                error.starts_with(RXNORM_EXTRA_FILE) && error.contains(expected),
                "{expected}: {error}"
            );
        }
    }
}
