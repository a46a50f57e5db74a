//! Clinical knowledge as data: the antidepressant catalogue, the RxNorm clinical-drug
//! map, code sets, symptom-score instruments, psychotherapy and the safety rules. Loaded once, validated at start, and
//! read-only afterwards, so the engine can share it across threads.

mod catalogue;
mod checklist;
mod clinical_drugs;
mod drug_product;
mod files;
mod instruments;
mod ndc;
mod psychotherapy_rules;
mod rxnorm_display;
mod safety_rules;
mod sources;
mod staging_tables;
mod value_sets;

use std::path::Path;

pub use catalogue::{
    Antidepressant, AugmentationAgent, DosePlausibility, DrugCatalogue, DrugKind, DrugRef,
};
pub use checklist::{Checklist, DiagnosisCheck, LabCheck, ScoreCheck, WorkUp};
pub use clinical_drugs::{ClinicalDrugMap, RxnormTermType};
pub use drug_product::{ClinicalDrug, DrugComponent, Strength, StrengthUnit};
pub use files::ProfileFiles;
pub use instruments::{Instrument, InstrumentPurpose, ItemScoring};
pub use ndc::{NdcMap, NDC_SYSTEM};
pub use psychotherapy_rules::{CourseRules, FitRules, Modality, PsychotherapyRules};
pub use rxnorm_display::parse_rxnorm_display;
pub use safety_rules::{
    BipolarCover, DoseLimit, LithiumMonitoring, NamedDrug, SafetyRules, Serotonin, SuicideRisk,
    SuicideSignal, YoungAdult,
};
pub use sources::{Source, SourceQuality};
pub use staging_tables::{MghSTable, MsmTable, StagingTables, ThaseRushTable};
pub use value_sets::{CodeSelection, ValueSetIndex, ValueSetUrl};

/// Why knowledge could not be loaded; always names the file (and entry) at fault.
#[derive(Debug, thiserror::Error)]
pub enum KnowledgeError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{file}: required knowledge file is missing")]
    Missing { file: String },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

impl KnowledgeError {
    pub(crate) fn invalid(file: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            file: file.to_string(),
            message: message.into(),
        }
    }
}

/// Everything the engine knows about drugs and codes.
#[derive(Debug)]
pub struct Knowledge {
    pub drugs: DrugCatalogue,
    pub clinical_drugs: ClinicalDrugMap,
    pub value_sets: ValueSetIndex,
    pub instruments: Vec<Instrument>,
    pub staging: StagingTables,
    pub checklist: Checklist,
    pub safety: SafetyRules,
    pub psychotherapy: PsychotherapyRules,
    /// The hospital's NDC -> RxNorm map (empty unless it supplies one).
    pub ndc: NdcMap,
}

/// Lab value sets the engine reads (medical mimics and work-up).
pub const LAB_VALUE_SETS: &[&str] = &[
    "https://fhir.trd-sentinel.org/ValueSet/lab-tsh",
    "https://fhir.trd-sentinel.org/ValueSet/lab-free-t4",
    "https://fhir.trd-sentinel.org/ValueSet/lab-vitamin-d",
    "https://fhir.trd-sentinel.org/ValueSet/lab-b12",
    "https://fhir.trd-sentinel.org/ValueSet/lab-folate",
    "https://fhir.trd-sentinel.org/ValueSet/lab-lithium",
];

pub(crate) const CATALOGUE_FILE: &str = "knowledge/antidepressants.toml";
pub(crate) const INSTRUMENTS_FILE: &str = "knowledge/instruments.toml";
pub(crate) const STAGING_FILE: &str = "knowledge/staging.toml";
pub(crate) const CHECKLIST_FILE: &str = "knowledge/checklist.toml";
pub(crate) const RXNORM_EXTRA_FILE: &str = "knowledge/rxnorm_extra.toml";
pub(crate) const SAFETY_FILE: &str = "knowledge/safety.toml";
pub(crate) const PSYCHOTHERAPY_FILE: &str = "knowledge/psychotherapy.toml";

impl Knowledge {
    /// The knowledge shipped with the binary.
    pub fn embedded() -> Result<Self, KnowledgeError> {
        Self::from_files(&ProfileFiles::embedded())
    }

    /// The shipped knowledge with a hospital's own files laid over it.
    pub fn with_overrides(dir: &Path) -> Result<Self, KnowledgeError> {
        Self::from_files(&ProfileFiles::embedded_with_overrides(dir)?)
    }

    pub fn from_files(files: &ProfileFiles) -> Result<Self, KnowledgeError> {
        let drugs = DrugCatalogue::parse(CATALOGUE_FILE, files.get(CATALOGUE_FILE)?)?;
        let value_sets = ValueSetIndex::load(files)?;
        let clinical_drugs = ClinicalDrugMap::build(files, &drugs)?;
        let instruments =
            instruments::parse(INSTRUMENTS_FILE, files.get(INSTRUMENTS_FILE)?, &value_sets)?;
        let staging = staging_tables::parse(STAGING_FILE, files.get(STAGING_FILE)?)?;
        let checklist = checklist::parse(CHECKLIST_FILE, files.get(CHECKLIST_FILE)?, &value_sets)?;
        for check in &checklist.score {
            if !instruments
                .iter()
                .any(|i| i.id == check.instrument && i.flag_at_or_above.is_some())
            {
                return Err(KnowledgeError::invalid(
                    CHECKLIST_FILE,
                    format!(
                        "score `{}`: instrument `{}` is unknown or has no flag_at_or_above",
                        check.code, check.instrument
                    ),
                ));
            }
        }
        let safety = safety_rules::parse(
            SAFETY_FILE,
            files.get(SAFETY_FILE)?,
            &instruments,
            &drugs,
            &value_sets,
        )?;
        let psychotherapy = psychotherapy_rules::parse(
            PSYCHOTHERAPY_FILE,
            files.get(PSYCHOTHERAPY_FILE)?,
            &value_sets,
        )?;
        let ndc = NdcMap::parse(ndc::NDC_MAP_FILE, files.get(ndc::NDC_MAP_FILE)?)?;
        Ok(Self {
            ndc,
            drugs,
            clinical_drugs,
            value_sets,
            instruments,
            staging,
            checklist,
            safety,
            psychotherapy,
        })
    }

    /// Every (system, code) of the scores and labs the engine reads: what to fetch
    /// from an EHR and which Observations to type in bulk input.
    pub fn observation_codes(&self) -> Vec<(String, String)> {
        let mut codes: Vec<(String, String)> = self
            .instruments
            .iter()
            .map(|i| i.value_set.as_str())
            .chain(LAB_VALUE_SETS.iter().copied())
            .flat_map(|url| self.value_sets.exact_codes(url))
            .chain(self.instruments.iter().flat_map(|i| {
                // Panels and items kept too: a panel's members are Observations of
                // their own.
                let items = i
                    .items
                    .iter()
                    .flat_map(|items| std::iter::once(&items.panel).chain(&items.codes));
                items.map(|code| (super::record::LOINC.to_string(), code.clone()))
            }))
            .collect();
        codes.sort();
        codes.dedup();
        codes
    }

    /// Every (system, code) of a psychotherapy modality: the Encounter types the
    /// reader keeps.
    pub fn psychotherapy_codes(&self) -> Vec<(String, String)> {
        let mut codes: Vec<(String, String)> = self
            .psychotherapy
            .modality
            .iter()
            .flat_map(|m| self.value_sets.exact_codes(&m.value_set))
            .collect();
        codes.sort();
        codes.dedup();
        codes
    }

    pub fn instrument(&self, id: &str) -> Option<&Instrument> {
        self.instruments.iter().find(|i| i.id == id)
    }
}
