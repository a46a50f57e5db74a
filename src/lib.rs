//! trd-sentinel watches an EHR's FHIR data for antidepressant trials, judges their
//! adequacy and response, derives treatment-resistant depression (TRD) status, staging
//! and a pseudo-resistance checklist, and writes the result back.
//!
//! The crate in data-flow order:
//!
//! - [`config`]: typed settings from a file and `TRD_*` environment variables (depends
//!   on no adapter).
//! - [`http`]: actix-web: `/notify` (Subscription notifications), health, metrics.
//! - [`cds`]: CDS Hooks: discovery, patient-view and order-select/sign cards, the
//!   caller's JWT, prefetch and its fallback, feedback.
//! - [`page`]: the patient's treatment timeline page (SVG) behind a signed link, and
//!   the population index `evaluate --format html` writes (with the quality measures'
//!   rates and the worklist).
//! - [`intake`]: notifications of every shape -> work items; reconciliation polling;
//!   the EHR Subscriptions.
//! - [`work`]: the unit of work the queue carries from every intake to the pipeline.
//! - [`queue`]: RabbitMQ intake, work shards, retries, dead letters (or in-process).
//! - [`pipeline`]: the work loop: coalesce, route id-only items to their patient,
//!   assess, publish events (at least once); `pipeline::settle`: ack, retry, dead letter.
//! - [`ehr`]: one patient against the EHR: gather, assess, write back.
//! - [`engine`]: the one way into the clinical engine every caller holds (knowledge,
//!   policy, options, the codes it reads; `assess` and `review_drafts`).
//! - [`outputs`]: what an assessment becomes for each channel (the write-back
//!   transaction, the summary document, the integration event, the quality measures'
//!   MeasureReports).
//! - [`resource_types`]: every FHIR type the service reads, watches, prefetches or
//!   writes, in one table (depends on nothing; the default SMART scope comes from it).
//! - [`fhir`]: FHIR R4 in (bundles, resources, Bulk NDJSON; the EHR client with its
//!   auth, the gather, the Bulk Data `$export` client) and out (write-back; the
//!   treatment summary as a FHIR document); mapping resources to the engine's
//!   `PatientRecord`.
//! - [`clinical`]: the pure engine, `assess(record, policy, knowledge, as_of)`, with
//!   the quality measures CMS159 and CMS128 (`clinical::measures`).
//! - [`batch`]: `evaluate` over files and directories: which files, progress, reading
//!   on all cores (the reader skips what the engine never reads without parsing it),
//!   Bulk exports past the memory budget grouped on disk, and assessing each patient
//!   on all cores so one that cannot be assessed does not stop the rest.
//! - [`report`]: the `evaluate` outputs (table, jsonl, fhir, document, html,
//!   measurereport), and
//!   `report::run`, one `evaluate` run from files to a format.
//! - [`export`]: `export`: a Bulk Data export from the EHR, downloaded resumably, then
//!   evaluated, written back, or queued per patient for the replicas; `--since last`.
//! - [`metrics`]: the Prometheus registry.
//! - [`service`]: `serve`: wiring and graceful shutdown.
//!
//! Modules form layers: no two siblings, at any level, use each other
//! (`tests/architecture.rs` keeps it so).

pub mod batch;
pub mod cds;
pub mod clinical;
pub mod config;
pub mod ehr;
pub mod engine;
pub mod export;
pub mod fhir;
pub mod intake;
pub mod metrics;
pub mod outputs;
pub mod page;
pub mod pipeline;
pub mod queue;
pub mod report;
pub mod resource_types;

pub use fhir_sdk;
pub mod http;
pub mod service;
pub mod work;
