//! A clinical drug as its RxNorm display name describes it: ingredients with their
//! strengths, dose form, release, brand, pack. What [`super::rxnorm_display`] reads a
//! display name into and the clinical-drug map holds.

use serde::Serialize;

use super::catalogue::DrugRef;

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
    /// The dose form ("Oral Tablet"); empty for a component (SCDC/SBDC) display.
    pub form: String,
    /// The brand in brackets at the end of a branded name (SBD, SBDC, BPCK).
    pub brand: Option<String>,
    pub extended_release: bool,
    /// Titration packs hold tablets of different strengths: no single strength per unit.
    pub pack: bool,
}

impl ClinicalDrug {
    pub fn is_transdermal(&self) -> bool {
        self.form.to_lowercase().contains("transdermal")
    }

    /// A clinical drug component (SCDC/SBDC): ingredient and strength, no dose form.
    pub fn is_component(&self) -> bool {
        !self.pack && self.form.is_empty()
    }
}
