//! The one way into the clinical engine for every caller (`evaluate`, the EHR
//! pipeline, CDS Hooks, the page, `summary`): the knowledge, the policy, the
//! assessment options and the codes the reader keeps, loaded and checked once, with
//! [`Engine::assess`] and [`Engine::review_drafts`] as the only entry points. The
//! engine itself stays pure (`clinical::assess_with`); this is what every adapter
//! holds instead of four loose parts.

use time::Date;

use crate::clinical::draft::{self, DraftReview};
use crate::clinical::knowledge::{KnowledgeError, ProfileFiles};
use crate::clinical::policy::PolicyBook;
use crate::clinical::record::{MedicationOrder, PatientRecord};
use crate::clinical::{self, AssessOptions, Assessment, Knowledge, Policy};
use crate::config::EngineSettings;
use crate::fhir::read::Relevance;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Knowledge(#[from] KnowledgeError),
    #[error("unknown policy `{name}`; known: {known}")]
    UnknownPolicy { name: String, known: String },
}

/// Everything an assessment needs besides the record and the date.
#[derive(Debug)]
pub struct Engine {
    pub knowledge: Knowledge,
    pub policy: Policy,
    pub options: AssessOptions,
    /// The codes the engine reads, from the knowledge (and the quality measures', when
    /// it computes them): what the reader keeps, the EHR is asked for, and a
    /// notification must name to lead to an assessment.
    pub relevance: Relevance,
}

impl Engine {
    pub fn new(knowledge: Knowledge, policy: Policy, options: AssessOptions) -> Self {
        Self {
            relevance: if options.quality_measures == Default::default() {
                Relevance::from_knowledge(&knowledge)
            } else {
                Relevance::with_measures(&knowledge)
            },
            knowledge,
            policy,
            options,
        }
    }

    /// The engine a configuration describes: the shipped knowledge with the
    /// hospital's directory laid over it, and the named policy preset.
    pub fn from_settings(settings: &EngineSettings) -> Result<Self, EngineError> {
        let files = match &settings.knowledge_dir {
            Some(dir) => ProfileFiles::embedded_with_overrides(dir)?,
            None => ProfileFiles::embedded(),
        };
        let knowledge = Knowledge::from_files(&files)?;
        let book = PolicyBook::from_files(&files)?;
        let policy =
            book.get(&settings.policy)
                .cloned()
                .ok_or_else(|| EngineError::UnknownPolicy {
                    name: settings.policy.clone(),
                    known: book.names().collect::<Vec<_>>().join(", "),
                })?;
        let options = AssessOptions {
            measurement_year: settings.measurement_year,
            ..AssessOptions::default()
        };
        Ok(Self::new(knowledge, policy, options))
    }

    /// The patient's assessment as of `as_of`.
    pub fn assess(&self, record: &PatientRecord, as_of: Date) -> Assessment {
        clinical::assess_with(record, &self.policy, &self.knowledge, as_of, self.options)
    }

    /// Draft orders (CDS order-select / order-sign) judged as the trials they would
    /// start today, against the record without them.
    pub fn review_drafts(
        &self,
        record: &PatientRecord,
        drafts: &[MedicationOrder],
        as_of: Date,
    ) -> DraftReview {
        draft::review(
            record,
            drafts,
            &self.policy,
            &self.knowledge,
            as_of,
            self.options,
        )
    }
}
