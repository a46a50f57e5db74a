//! One patient against the EHR: gather the record, assess it, write back. The CLI's
//! `assess` and the service's pipeline both run this.

use time::Date;

use std::sync::Arc;

use crate::clinical::record::PatientRecord;
use crate::clinical::Assessment;
use crate::config::{Config, ConfigError, WritebackSettings};
use crate::engine::{Engine, EngineError};
use crate::fhir::client::Auth;
use crate::fhir::client::{FhirClient, FhirError};
use crate::fhir::gather::gather;
use crate::fhir::writeback::{write_back, Existing, WriteOutcome, OWN_TAG_CODE};

#[derive(Debug, thiserror::Error)]
pub enum EhrError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Fhir(#[from] FhirError),
}

/// Everything needed to assess patients against one EHR.
pub struct Ehr {
    pub client: FhirClient,
    /// The clinical engine (knowledge, policy, options, the codes it reads), shared
    /// with CDS Hooks and the page.
    pub engine: Arc<Engine>,
    pub writeback: WritebackSettings,
    pub look_back_months: u32,
}

/// The result of one patient's run.
#[derive(Debug)]
pub struct PatientRun {
    pub assessment: Assessment,
    pub write: WriteOutcome,
    /// HTTP requests: gathering plus write-back.
    pub requests: usize,
}

impl Ehr {
    pub fn from_config(config: &Config) -> Result<Self, EhrError> {
        let base = config.require_base_url()?;
        let engine = Engine::from_settings(&config.engine)?;
        let auth = Auth::from_settings(&config.fhir, config.auth_mode())?;
        Ok(Self {
            client: FhirClient::new(base, &config.fhir, auth)?,
            engine: Arc::new(engine),
            writeback: config.writeback.clone(),
            look_back_months: config.fhir.look_back_months,
        })
    }

    /// The interactions this configuration needs from the EHR.
    pub fn needed_interactions(&self) -> Vec<(&'static str, &'static str)> {
        let mut needed: Vec<(&'static str, &'static str)> = crate::resource_types::READ_TYPES
            .iter()
            .map(|t| (t.name, "search-type"))
            .collect();
        if !self.writeback.dry_run {
            needed.push(("*", "transaction"));
            for kind in self.writeback.written_types() {
                let Some(kind) = crate::fhir::writeback::static_type(kind) else {
                    continue;
                };
                match kind {
                    "Provenance" => needed.push((kind, "create")),
                    // Written without conditions: created once, then updated by id.
                    "DocumentReference" | "Composition" => {
                        needed.push((kind, "create"));
                        needed.push((kind, "update"));
                    }
                    _ => needed.push((kind, "update")),
                }
            }
        }
        needed
    }

    /// Fails with a clear message when the EHR lacks an interaction we need.
    pub async fn check_capabilities(&self) -> Result<(), EhrError> {
        Ok(self
            .client
            .check_capabilities(&self.needed_interactions())
            .await?)
    }

    /// Gathers the patient's record and assesses it, writing nothing (the `summary`
    /// command, the patient page).
    pub async fn assess_only(&self, patient: &str, as_of: Date) -> Result<Assessment, EhrError> {
        let gathered = gather(
            &self.client,
            patient,
            &self.engine.relevance,
            self.look_back_months,
            as_of,
            None,
        )
        .await?;
        Ok(self.engine.assess(&gathered.record, as_of))
    }

    /// Gathers the patient's record from the EHR, then [`Ehr::assess_and_write`].
    pub async fn run_patient(&self, patient: &str, as_of: Date) -> Result<PatientRun, EhrError> {
        let gathered = gather(
            &self.client,
            patient,
            &self.engine.relevance,
            self.look_back_months,
            as_of,
            Some(&self.writeback),
        )
        .await?;
        let mut run = self
            .assess_and_write(&gathered.record, gathered.existing, as_of)
            .await?;
        run.requests += gathered.requests;
        Ok(run)
    }

    /// The one orchestration of a record already in hand (gathered, or a Bundle
    /// declared complete): assess, then write back. `existing`: the service's
    /// resources about the patient when gathered with the record (else read first).
    pub async fn assess_and_write(
        &self,
        record: &PatientRecord,
        existing: Option<Vec<Existing>>,
        as_of: Date,
    ) -> Result<PatientRun, EhrError> {
        let assessment = self.engine.assess(record, as_of);
        let write = write_back(&self.client, &assessment, &self.writeback, existing).await?;
        tracing::info!(
            patient = %assessment.patient,
            status = assessment.trd_status.code(),
            written = write.plan.written.len(),
            retired = write.plan.retired.len(),
            unchanged = write.plan.unchanged,
            requests = write.requests,
            "assessed"
        );
        Ok(PatientRun {
            requests: write.requests,
            assessment,
            write,
        })
    }
}

/// Whether a resource was written by this service (its tag), so notifications
/// about it can be ignored and write-back never loops.
pub fn is_own_resource(resource: &serde_json::Value) -> bool {
    resource
        .pointer("/meta/tag")
        .and_then(serde_json::Value::as_array)
        .is_some_and(|tags| {
            tags.iter()
                .any(|t| t.get("code").and_then(serde_json::Value::as_str) == Some(OWN_TAG_CODE))
        })
}
