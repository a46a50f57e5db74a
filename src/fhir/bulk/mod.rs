//! The FHIR Bulk Data Access client (`$export`, Bulk Data IG 2.0.0): kick-off, status
//! polls, file downloads and cancellation, against the EHR the service already talks
//! to and with its credentials (SMART Backend Services).
//!
//! - [`request`]: what is asked for: the level (system, every patient, a Group), the
//!   types the engine reads, `_typeFilter` narrowing them to the engine's codes
//!   (the gather's own searches), `_since`.
//! - [`manifest`]: the completion manifest (`output`, `error`, `deleted` files).
//! - [`client`]: the protocol: `Prefer: respond-async`, `Retry-After` honoured up to a
//!   configured ceiling and exponential back-off without it, `X-Progress`, 429/5xx
//!   retried, a 404 status URL (the job expired) a clear error, downloads streamed to
//!   disk under a size cap, `DELETE` on cancel. The token goes only to the EHR's
//!   origin or a storage origin the configuration names.
//! - [`job`]: the job file that lets a killed export continue where it stopped.

pub mod client;
pub mod job;
pub mod manifest;
pub mod request;

pub use client::{BulkClient, BulkStats, Poll};
pub use job::{ExportJob, FileRecord};
pub use manifest::{Manifest, ManifestFile};
pub use request::{ExportLevel, ExportRequest};

use std::path::PathBuf;

use super::client::FhirError;

#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    /// `detail`: the OperationOutcome's issue codes, never its text.
    #[error("the EHR refused the export kick-off ({url}): HTTP {status}: {detail}")]
    KickOffRefused {
        url: String,
        status: u16,
        detail: String,
    },
    #[error("the EHR accepted the export but named no status URL (Content-Location)")]
    NoStatusUrl,
    #[error("the export job at {url} is gone (HTTP {status}): it expired or was cancelled on the EHR; start a new export (`--restart`)")]
    JobGone { url: String, status: u16 },
    #[error("the export failed on the EHR ({url}): HTTP {status}: {detail}")]
    Failed {
        url: String,
        status: u16,
        detail: String,
    },
    #[error("the export was not complete after {secs} s (export.timeout_secs); it was cancelled")]
    TimedOut { secs: u64 },
    #[error("{url}: the completion manifest is not what the Bulk Data IG describes: {detail}")]
    Manifest { url: String, detail: String },
    #[error("{url}: the manifest requires the EHR's token for a file on {origin}, which is neither the EHR's origin nor in export.storage_origins: not downloaded")]
    ForeignStorage { url: String, origin: String },
    #[error("{url}: larger than export.max_file_bytes ({limit} bytes)")]
    TooLarge { url: String, limit: u64 },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: the job file is not readable: {detail}")]
    JobFile { path: PathBuf, detail: String },
    #[error(transparent)]
    Fhir(#[from] FhirError),
}

impl BulkError {
    pub(crate) fn io(path: &std::path::Path) -> impl Fn(std::io::Error) -> BulkError + '_ {
        move |source| BulkError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The origin (`scheme://host:port`) of a URL, `None` when it does not parse.
pub fn origin_of(url: &str) -> Option<String> {
    reqwest::Url::parse(url)
        .ok()
        .map(|u| u.origin().ascii_serialization())
}
