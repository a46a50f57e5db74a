//! trd-sentinel: finds antidepressant trials in FHIR data, judges their adequacy and
//! response, and (in later stages) flags treatment-resistant depression.
//!
//! - [`clinical`]: the pure engine, `assess(record, policy, knowledge, as_of)`.
//! - [`fhir`]: FHIR R4 JSON in (bundles, single resources, Bulk NDJSON) and the
//!   mapping from resources to the engine's `PatientRecord`.
//! - [`report`]: the `evaluate` outputs (table, jsonl, fhir).
//! - [`batch`]: `evaluate` over files and directories: which files, progress, and
//!   assessing each patient so one that cannot be assessed does not stop the rest.
//! - [`ehr`]: one patient against the EHR: gather, assess, write back.
//! - [`config`]: typed settings from a file and `TRD_*` environment variables.

pub mod batch;
pub mod clinical;
pub mod config;
pub mod ehr;
pub mod fhir;
pub mod intake;
pub mod metrics;
pub mod pipeline;
pub mod queue;
pub mod report;

pub use fhir_sdk;
pub mod http;
pub mod service;
