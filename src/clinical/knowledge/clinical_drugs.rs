//! RxNorm clinical drugs (SCD/SBD) -> ingredient, strength and form, read from the
//! normalised display names of the VSAC medication value sets
//! ("[24 HR] ingredient [salt] 50 MG [Extended Release] Oral Tablet", packs as
//! "{7 (...) / 23 (...)} Pack", combinations joined by " / ").

use std::collections::HashMap;

use serde::Serialize;

use super::catalogue::{DrugCatalogue, DrugRef};
use super::files::ProfileFiles;
use super::KnowledgeError;

pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";

/// Salt and ester words that RxNorm puts after the ingredient name.
const SALT_WORDS: &[&str] = &[
    "hydrochloride",
    "hydrobromide",
    "maleate",
    "succinate",
    "pamoate",
    "mesylate",
    "oxalate",
    "fumarate",
    "sulfate",
    "citrate",
    "carbonate",
    "sodium",
    "besylate",
];

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub enum StrengthUnit {
    /// mg per unit of presentation (tablet, capsule).
    #[serde(rename = "mg")]
    Mg,
    /// mg per mL (solutions, suspensions).
    #[serde(rename = "mg/mL")]
    MgPerMl,
    /// mg released per hour (transdermal systems).
    #[serde(rename = "mg/h")]
    MgPerHour,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Strength {
    pub value: f64,
    pub unit: StrengthUnit,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DrugComponent {
    /// Ingredient name as read (salt removed), lower case.
    pub name: String,
    /// The catalogue entry, when the ingredient is an antidepressant or augmentation agent.
    pub drug: Option<DrugRef>,
    pub strength: Strength,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ClinicalDrug {
    pub display: String,
    /// One entry per active ingredient; for a pack, the components of every part.
    pub components: Vec<DrugComponent>,
    pub form: String,
    pub extended_release: bool,
    /// Titration packs hold tablets of different strengths: no single strength per unit.
    pub pack: bool,
}

impl ClinicalDrug {
    pub fn is_transdermal(&self) -> bool {
        self.form.to_lowercase().contains("transdermal")
    }
}

/// RxNorm code -> parsed clinical drug.
#[derive(Debug, Default)]
pub struct ClinicalDrugMap {
    by_code: HashMap<String, ClinicalDrug>,
}

impl ClinicalDrugMap {
    /// Parses every RxNorm concept in the medication value sets under `vsac/` and
    /// `valuesets/`. A display that cannot be read is an error naming file and code.
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
        Ok(Self { by_code })
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

/// Reads one RxNorm normalised display name. Also used at run time on the display or
/// text of medication codes the map does not know.
pub fn parse_rxnorm_display(
    display: &str,
    catalogue: &DrugCatalogue,
) -> Result<ClinicalDrug, String> {
    let display = display.trim();
    if let Some(inner) = display.strip_prefix('{') {
        return parse_pack(display, inner, catalogue);
    }
    let parts: Vec<&str> = display.split(" / ").collect();
    let mut components = Vec::with_capacity(parts.len());
    let mut form = String::new();
    for (i, part) in parts.iter().enumerate() {
        let (component, rest) = parse_component(part, catalogue)?;
        components.push(component);
        if i + 1 == parts.len() {
            form = rest;
        } else if !rest.is_empty() {
            return Err(format!(
                "unexpected words '{rest}' after a combination component"
            ));
        }
    }
    if form.is_empty() {
        return Err("no dose form after the strength".into());
    }
    let extended_release = form.contains("Extended Release")
        || display.contains(" HR ")
        || display.starts_with("12 HR")
        || display.starts_with("24 HR");
    Ok(ClinicalDrug {
        display: display.to_string(),
        components,
        form,
        extended_release,
        pack: false,
    })
}

fn parse_pack(
    display: &str,
    inner: &str,
    catalogue: &DrugCatalogue,
) -> Result<ClinicalDrug, String> {
    let Some(close) = inner.rfind('}') else {
        return Err("pack without closing brace".into());
    };
    let mut components = Vec::new();
    let mut extended_release = false;
    let mut form = String::new();
    for part in inner[..close].split(" / ") {
        let part = part.trim();
        let Some(open) = part.find('(') else {
            return Err(format!("pack part '{part}' has no '(drug)'"));
        };
        let drug_text = part[open + 1..].trim_end_matches(')').trim();
        let drug = parse_rxnorm_display(drug_text, catalogue)?;
        extended_release |= drug.extended_release;
        form = drug.form.clone();
        components.extend(drug.components);
    }
    Ok(ClinicalDrug {
        display: display.to_string(),
        components,
        form,
        extended_release,
        pack: true,
    })
}

/// "24 HR venlafaxine 150 MG Extended Release Oral Capsule" -> (venlafaxine 150 mg,
/// "Extended Release Oral Capsule").
fn parse_component(
    text: &str,
    catalogue: &DrugCatalogue,
) -> Result<(DrugComponent, String), String> {
    let tokens: Vec<&str> = text.split_whitespace().collect();
    let strength_at = (0..tokens.len().saturating_sub(1))
        .find(|&i| tokens[i].parse::<f64>().is_ok() && strength_unit(tokens[i + 1]).is_some())
        .ok_or_else(|| format!("no strength (number and MG, MG/ML or MG/HR) in '{text}'"))?;
    let value: f64 = tokens[strength_at]
        .parse()
        .map_err(|_| "bad strength".to_string())?;
    let unit = strength_unit(tokens[strength_at + 1]).ok_or("bad unit")?;
    let (value, unit) = match unit {
        // Micrograms are kept in mg so every strength compares with mg doses.
        UnitWord::Mcg => (value / 1000.0, StrengthUnit::Mg),
        UnitWord::Is(unit) => (value, unit),
    };
    let name_words = drop_release_prefix(&tokens[..strength_at]);
    let name_words: Vec<String> = name_words
        .iter()
        .map(|w| w.to_lowercase())
        .filter(|w| !SALT_WORDS.contains(&w.as_str()))
        .collect();
    if name_words.is_empty() {
        return Err(format!(
            "no ingredient name before the strength in '{text}'"
        ));
    }
    // The longest run of trailing words that the catalogue knows ("PMDD fluoxetine",
    // "Sprinkle duloxetine"); otherwise the whole name, unknown to the catalogue.
    let (name, drug) = (0..name_words.len())
        .find_map(|start| {
            let candidate = name_words[start..].join(" ");
            catalogue
                .by_name(&candidate)
                .map(|drug| (candidate, Some(drug)))
        })
        .unwrap_or_else(|| (name_words.join(" "), None));
    let rest = tokens[strength_at + 2..].join(" ");
    Ok((
        DrugComponent {
            name,
            drug,
            strength: Strength { value, unit },
        },
        rest,
    ))
}

/// Drops "12 HR" / "24 HR" and any brand-like qualifier before it
/// ("Smoking Cessation 12 HR bupropion").
fn drop_release_prefix<'a>(words: &'a [&'a str]) -> &'a [&'a str] {
    match words.iter().rposition(|w| *w == "HR") {
        Some(hr) if hr > 0 && words[hr - 1].parse::<f64>().is_ok() => &words[hr + 1..],
        _ => words,
    }
}

enum UnitWord {
    Is(StrengthUnit),
    Mcg,
}

fn strength_unit(word: &str) -> Option<UnitWord> {
    match word {
        "MG" => Some(UnitWord::Is(StrengthUnit::Mg)),
        "MG/ML" => Some(UnitWord::Is(StrengthUnit::MgPerMl)),
        "MG/HR" => Some(UnitWord::Is(StrengthUnit::MgPerHour)),
        "MCG" | "UG" => Some(UnitWord::Mcg),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clinical::knowledge::Knowledge;

    fn parse(display: &str) -> ClinicalDrug {
        let knowledge = Knowledge::embedded().expect("knowledge");
        parse_rxnorm_display(display, &knowledge.drugs).expect(display)
    }

    fn names(drug: &ClinicalDrug) -> Vec<(&str, f64, StrengthUnit, bool)> {
        drug.components
            .iter()
            .map(|c| {
                (
                    c.name.as_str(),
                    c.strength.value,
                    c.strength.unit,
                    c.drug.is_some(),
                )
            })
            .collect()
    }

    #[test]
    fn plain_tablet_with_salt() {
        let drug = parse("sertraline 50 MG Oral Tablet");
        assert_eq!(
            names(&drug),
            vec![("sertraline", 50.0, StrengthUnit::Mg, true)]
        );
        assert_eq!(drug.form, "Oral Tablet");
        assert!(!drug.extended_release && !drug.pack);
        let salt = parse("paroxetine hydrochloride 20 MG Oral Tablet");
        assert_eq!(
            names(&salt),
            vec![("paroxetine", 20.0, StrengthUnit::Mg, true)]
        );
    }

    #[test]
    fn extended_release_and_qualifier_prefixes() {
        let er = parse("24 HR venlafaxine 150 MG Extended Release Oral Capsule");
        assert_eq!(
            names(&er),
            vec![("venlafaxine", 150.0, StrengthUnit::Mg, true)]
        );
        assert!(er.extended_release);
        let cessation = parse(
            "Smoking Cessation 12 HR bupropion hydrochloride 150 MG Extended Release Oral Tablet",
        );
        assert_eq!(
            names(&cessation),
            vec![("bupropion", 150.0, StrengthUnit::Mg, true)]
        );
        let pmdd = parse("PMDD fluoxetine 10 MG Oral Tablet");
        assert_eq!(
            names(&pmdd),
            vec![("fluoxetine", 10.0, StrengthUnit::Mg, true)]
        );
        let sprinkle = parse("Sprinkle duloxetine 20 MG Delayed Release Oral Capsule");
        assert_eq!(names(&sprinkle)[0].0, "duloxetine");
    }

    #[test]
    fn combinations_keep_every_component() {
        let fluoxetine_olanzapine = parse("fluoxetine 25 MG / olanzapine 6 MG Oral Capsule");
        assert_eq!(
            names(&fluoxetine_olanzapine),
            vec![
                ("fluoxetine", 25.0, StrengthUnit::Mg, true),
                ("olanzapine", 6.0, StrengthUnit::Mg, true)
            ]
        );
        let with_unknown =
            parse("amitriptyline hydrochloride 10 MG / perphenazine 2 MG Oral Tablet");
        assert_eq!(
            names(&with_unknown),
            vec![
                ("amitriptyline", 10.0, StrengthUnit::Mg, true),
                ("perphenazine", 2.0, StrengthUnit::Mg, false)
            ]
        );
    }

    #[test]
    fn solutions_and_transdermal_systems() {
        assert_eq!(
            names(&parse("sertraline 20 MG/ML Oral Solution")),
            vec![("sertraline", 20.0, StrengthUnit::MgPerMl, true)]
        );
        let patch = parse("24 HR selegiline 0.25 MG/HR Transdermal System");
        assert_eq!(
            names(&patch),
            vec![("selegiline", 0.25, StrengthUnit::MgPerHour, true)]
        );
        assert!(patch.is_transdermal());
    }

    #[test]
    fn packs_list_their_parts() {
        let pack = parse("{7 (vilazodone hydrochloride 10 MG Oral Tablet) / 23 (vilazodone hydrochloride 20 MG Oral Tablet) } Pack");
        assert!(pack.pack);
        assert_eq!(pack.components.len(), 2);
        assert!(pack.components.iter().all(|c| c.name == "vilazodone"));
    }

    #[test]
    fn unreadable_displays_are_errors() {
        let knowledge = Knowledge::embedded().expect("knowledge");
        assert!(parse_rxnorm_display("sertraline Oral Tablet", &knowledge.drugs).is_err());
        assert!(parse_rxnorm_display("sertraline 50 MG", &knowledge.drugs).is_err());
        assert!(
            parse_rxnorm_display("{7 (sertraline 50 MG Oral Tablet)", &knowledge.drugs).is_err()
        );
    }

    #[test]
    fn every_shipped_rxnorm_concept_is_read() {
        let knowledge = Knowledge::embedded().expect("knowledge");
        // ~200 concepts across the two VSAC medication value sets (some shared).
        assert!(
            knowledge.clinical_drugs.len() >= 200,
            "{}",
            knowledge.clinical_drugs.len()
        );
        let sertraline = knowledge.clinical_drugs.get("312941").expect("312941");
        assert_eq!(sertraline.components[0].strength.value, 50.0);
    }
}
