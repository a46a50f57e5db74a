//! Which catalogue drug(s) a medication is, and at what strength per unit: from an
//! RxNorm clinical-drug code, an ingredient code, a Medication resource's ingredients,
//! or (last) the display/text read as an RxNorm name.

use serde::Serialize;

use super::knowledge::{
    parse_rxnorm_display, DrugComponent, DrugRef, Knowledge, Strength, StrengthUnit, NDC_SYSTEM,
};
use super::numbers::is_positive;
use super::record::{Amount, MedicationProduct};
use super::units::{mass_in_mg, UnitKind};

pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IdentifiedComponent {
    #[serde(skip)]
    pub drug: DrugRef,
    pub strength: Option<Strength>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IdentifiedProduct {
    /// Catalogue drugs only (antidepressants and augmentation agents).
    pub components: Vec<IdentifiedComponent>,
    pub extended_release: bool,
    pub transdermal: bool,
    pub pack: bool,
    /// How it was recognised, for explanations ("RxNorm 312941", "display name").
    pub identified_by: String,
    /// The strength was read from a display name or text, not from a known code or a
    /// Medication's ingredient strengths: the label the strength came from.
    pub strength_from_display: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ProductIdentity {
    Known(IdentifiedProduct),
    /// A medication, but not one the catalogue tracks (e.g. lamotrigine, a statin).
    NotInCatalogue {
        label: String,
    },
    /// Nothing to go on: no usable code, text or resolvable reference.
    Unidentifiable {
        reason: String,
    },
}

pub fn identify(product: &MedicationProduct, knowledge: &Knowledge) -> ProductIdentity {
    if let Some(reference) = &product.unresolved_reference {
        return ProductIdentity::Unidentifiable {
            reason: format!("medicationReference {reference} could not be resolved"),
        };
    }
    let form_text = product.form.as_deref().unwrap_or("").to_lowercase();
    let mut transdermal = form_text.contains("transdermal") || form_text.contains("patch");

    // 1. RxNorm codes: clinical drug (SCD/SBD) or ingredient; then NDCs the
    // hospital's map turns into RxNorm codes.
    let rxnorm = product
        .codes
        .iter()
        .filter(|c| c.system == RXNORM)
        .map(|c| (c.code.as_str(), String::new()));
    let from_ndc = product
        .codes
        .iter()
        .filter(|c| c.system == NDC_SYSTEM)
        .filter_map(|c| Some((knowledge.ndc.rxcui(&c.code)?, format!("NDC {} = ", c.code))));
    for (code, via) in rxnorm.chain(from_ndc) {
        if let Some(clinical) = knowledge.clinical_drugs.get(code) {
            transdermal |= clinical.is_transdermal();
            let components = catalogue_components(&clinical.components, clinical.pack);
            return finish(
                components,
                clinical.extended_release,
                transdermal,
                clinical.pack,
                format!("{via}RxNorm {code}"),
                product,
                knowledge,
            );
        }
        if let Some(drug) = knowledge.drugs.by_rxnorm(code) {
            let label = format!("{via}RxNorm ingredient {code}");
            let strength = ingredient_strength(product, knowledge, drug);
            // An ingredient code with a display such as "sertraline 100 MG": the
            // strength is read from the display (and said so).
            if strength.is_none() {
                if let Some(mut found) = from_labels(product, knowledge, transdermal) {
                    if found.components.iter().any(|c| c.drug == drug) {
                        found.components.retain(|c| c.drug == drug);
                        found.identified_by = label;
                        return ProductIdentity::Known(found);
                    }
                }
            }
            let components = vec![IdentifiedComponent { drug, strength }];
            return finish(
                components,
                false,
                transdermal,
                false,
                label,
                product,
                knowledge,
            );
        }
    }

    // 2. A Medication resource's ingredient list.
    let from_ingredients: Vec<IdentifiedComponent> = product
        .ingredients
        .iter()
        .filter_map(|ingredient| {
            let drug = ingredient
                .codes
                .iter()
                .find_map(|c| knowledge.drugs.by_rxnorm(&c.code))
                .or_else(|| {
                    ingredient
                        .codes
                        .iter()
                        .find_map(|c| c.display.as_deref().and_then(|d| name_match(d, knowledge)))
                })
                .or_else(|| {
                    ingredient
                        .text
                        .as_deref()
                        .and_then(|t| name_match(t, knowledge))
                })?;
            let strength = ingredient
                .strength
                .as_ref()
                .and_then(|(n, d)| strength_of(n, d));
            Some(IdentifiedComponent { drug, strength })
        })
        .collect();
    if !from_ingredients.is_empty() {
        let label = "Medication.ingredient".to_string();
        return finish(
            from_ingredients,
            false,
            transdermal,
            false,
            label,
            product,
            knowledge,
        );
    }

    // 3. Display names and text read as RxNorm names, then as bare ingredient names.
    if let Some(found) = from_labels(product, knowledge, transdermal) {
        return ProductIdentity::Known(found);
    }
    let labels = labels_of(product);
    for label in labels {
        if let Some(drug) = name_match(label, knowledge) {
            let components = vec![IdentifiedComponent {
                drug,
                strength: ingredient_strength(product, knowledge, drug),
            }];
            return finish(
                components,
                false,
                transdermal,
                false,
                "ingredient name in text".into(),
                product,
                knowledge,
            );
        }
    }

    match label_of(product) {
        Some(label) => ProductIdentity::NotInCatalogue { label },
        None => ProductIdentity::Unidentifiable {
            reason: "no medication code, text or ingredient".into(),
        },
    }
}

/// A product's code displays, then its text: what a person would read as its name.
pub(crate) fn labels_of(product: &MedicationProduct) -> impl Iterator<Item = &str> {
    product
        .codes
        .iter()
        .filter_map(|c| c.display.as_deref())
        .chain(product.text.as_deref())
}

/// The first display or text that reads as an RxNorm name naming a catalogued drug
/// (SCD, SBD, SCDC "sertraline 100 MG", packs). Strengths read this way are marked.
fn from_labels(
    product: &MedicationProduct,
    knowledge: &Knowledge,
    transdermal: bool,
) -> Option<IdentifiedProduct> {
    let labels = labels_of(product);
    for label in labels {
        let Ok(parsed) = parse_rxnorm_display(label, &knowledge.drugs) else {
            continue;
        };
        let components = catalogue_components(&parsed.components, parsed.pack);
        if components.is_empty() {
            continue;
        }
        let with_strength = components.iter().any(|c| c.strength.is_some());
        let identity = finish(
            components,
            parsed.extended_release,
            transdermal || parsed.is_transdermal(),
            parsed.pack,
            "display name".to_string(),
            product,
            knowledge,
        );
        if let ProductIdentity::Known(mut found) = identity {
            found.strength_from_display = with_strength.then(|| label.to_string());
            return Some(found);
        }
    }
    None
}

/// "system|code (display)" of the first coding, else the text: how an ignored
/// medication is listed.
fn label_of(product: &MedicationProduct) -> Option<String> {
    match product.codes.first() {
        Some(code) => Some(match &code.display {
            Some(display) => format!("{}|{} ({display})", code.system, code.code),
            None => format!("{}|{}", code.system, code.code),
        }),
        None => product.text.clone(),
    }
}

/// The catalogue drugs of a clinical drug, one entry per drug: a pack's tablets of
/// different strengths are one drug with no single strength per unit.
fn catalogue_components(components: &[DrugComponent], pack: bool) -> Vec<IdentifiedComponent> {
    let mut out: Vec<IdentifiedComponent> = Vec::new();
    for component in components {
        let Some(drug) = component.drug else { continue };
        if out.iter().any(|c| c.drug == drug) {
            continue;
        }
        out.push(IdentifiedComponent {
            drug,
            strength: (!pack).then_some(component.strength),
        });
    }
    out
}

/// Applies route rules (selegiline counts only as a transdermal system).
fn finish(
    components: Vec<IdentifiedComponent>,
    extended_release: bool,
    transdermal: bool,
    pack: bool,
    identified_by: String,
    product: &MedicationProduct,
    knowledge: &Knowledge,
) -> ProductIdentity {
    let (kept, dropped): (Vec<_>, Vec<_>) = components.into_iter().partition(|c| {
        match knowledge
            .drugs
            .antidepressant(c.drug)
            .and_then(|a| a.route.as_deref())
        {
            Some("transdermal") => transdermal,
            _ => true,
        }
    });
    if kept.is_empty() {
        let label = label_of(product).unwrap_or_default();
        if dropped.is_empty() {
            return ProductIdentity::NotInCatalogue { label };
        }
        let names: Vec<&str> = dropped
            .iter()
            .map(|c| knowledge.drugs.name(c.drug))
            .collect();
        let label = format!(
            "{label} ({} not by its antidepressant route)",
            names.join(", ")
        );
        return ProductIdentity::NotInCatalogue { label };
    }
    ProductIdentity::Known(IdentifiedProduct {
        components: kept,
        extended_release,
        transdermal,
        pack,
        identified_by,
        strength_from_display: None,
    })
}

/// Strength of one drug from the product's Medication ingredients, if given.
fn ingredient_strength(
    product: &MedicationProduct,
    knowledge: &Knowledge,
    drug: DrugRef,
) -> Option<Strength> {
    product.ingredients.iter().find_map(|ingredient| {
        let matches = ingredient
            .codes
            .iter()
            .any(|c| knowledge.drugs.by_rxnorm(&c.code) == Some(drug))
            || ingredient
                .text
                .as_deref()
                .and_then(|t| name_match(t, knowledge))
                == Some(drug)
            || product.ingredients.len() == 1;
        if !matches {
            return None;
        }
        ingredient
            .strength
            .as_ref()
            .and_then(|(n, d)| strength_of(n, d))
    })
}

/// A Medication.ingredient.strength ratio as mg per presentation unit, per mL or per hour.
pub fn strength_of(numerator: &Amount, denominator: &Amount) -> Option<Strength> {
    let mg = mass_in_mg(numerator)?;
    let per = denominator.value;
    if !is_positive(per) {
        return None;
    }
    let unit = match super::units::classify(&denominator.unit) {
        UnitKind::Volume { ml_per_unit } => {
            return Some(Strength {
                value: mg / (per * ml_per_unit),
                unit: StrengthUnit::MgPerMl,
            })
        }
        UnitKind::Hour => StrengthUnit::MgPerHour,
        UnitKind::Count => StrengthUnit::Mg,
        _ => return None,
    };
    Some(Strength {
        value: mg / per,
        unit,
    })
}

/// The catalogue drug whose name appears as a whole word in free text.
fn name_match(text: &str, knowledge: &Knowledge) -> Option<DrugRef> {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric() && c != '-')
        .filter(|w| !w.is_empty())
        .collect();
    words.iter().find_map(|w| knowledge.drugs.by_name(w))
}
