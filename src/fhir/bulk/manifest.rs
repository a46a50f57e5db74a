//! The completion manifest of an export (Bulk Data IG 2.0.0, "Response - Complete
//! Status"): the files to download and what each holds.

use serde::{Deserialize, Serialize};

use super::BulkError;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// The server's time when the export began: the next incremental run's `_since`.
    pub transaction_time: String,
    #[serde(default)]
    pub request: String,
    /// Whether the files need the EHR's token (else they are pre-signed URLs).
    #[serde(default)]
    pub requires_access_token: bool,
    #[serde(default)]
    pub output: Vec<ManifestFile>,
    /// OperationOutcome NDJSON: what the server could not export.
    #[serde(default)]
    pub error: Vec<ManifestFile>,
    /// Bundles of `DELETE` entries: resources deleted since `_since`.
    #[serde(default)]
    pub deleted: Vec<ManifestFile>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestFile {
    #[serde(rename = "type")]
    pub resource_type: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

/// Which list of the manifest a file came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FileKind {
    Output,
    Error,
    Deleted,
}

impl FileKind {
    /// The sub-directory of the export directory its files go to: `output/` is what
    /// `evaluate` reads; errors and deletions stay beside it.
    pub fn directory(self) -> &'static str {
        match self {
            FileKind::Output => "output",
            FileKind::Error => "error",
            FileKind::Deleted => "deleted",
        }
    }
}

impl Manifest {
    /// Parses a manifest; relative file URLs are resolved against the status URL.
    pub fn parse(bytes: &[u8], status_url: &str) -> Result<Self, BulkError> {
        let invalid = |detail: String| BulkError::Manifest {
            url: status_url.to_string(),
            detail,
        };
        let mut manifest: Manifest =
            serde_json::from_slice(bytes).map_err(|e| invalid(e.to_string()))?;
        if time::OffsetDateTime::parse(
            &manifest.transaction_time,
            &time::format_description::well_known::Rfc3339,
        )
        .is_err()
        {
            return Err(invalid("transactionTime is not a FHIR instant".to_string()));
        }
        let base = reqwest::Url::parse(status_url).map_err(|e| invalid(e.to_string()))?;
        for file in manifest
            .output
            .iter_mut()
            .chain(manifest.error.iter_mut())
            .chain(manifest.deleted.iter_mut())
        {
            file.url = base
                .join(&file.url)
                .map_err(|e| invalid(format!("file URL: {e}")))?
                .to_string();
        }
        Ok(manifest)
    }

    /// Every file, with its list, in manifest order.
    pub fn files(&self) -> impl Iterator<Item = (FileKind, &ManifestFile)> {
        self.output
            .iter()
            .map(|f| (FileKind::Output, f))
            .chain(self.error.iter().map(|f| (FileKind::Error, f)))
            .chain(self.deleted.iter().map(|f| (FileKind::Deleted, f)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_is_read_and_its_relative_urls_resolved() {
        let manifest = Manifest::parse(
            br#"{"transactionTime": "2026-12-07T10:00:00Z", "request": "x", "requiresAccessToken": true,
                "output": [{"type": "Patient", "url": "/files/1.ndjson", "count": 2}],
                "error": [{"type": "OperationOutcome", "url": "https://files.example.org/e.ndjson"}]}"#,
            "https://ehr.example.org/fhir/export-status/7",
        )
        .expect("valid");
        assert_eq!(
            manifest.output[0].url,
            "https://ehr.example.org/files/1.ndjson"
        );
        assert_eq!(manifest.error[0].url, "https://files.example.org/e.ndjson");
        assert!(manifest.deleted.is_empty());
        let kinds: Vec<FileKind> = manifest.files().map(|(k, _)| k).collect();
        assert_eq!(kinds, [FileKind::Output, FileKind::Error]);
        assert!(matches!(
            Manifest::parse(br#"{"transactionTime": "yesterday"}"#, "https://e/s"),
            Err(BulkError::Manifest { .. })
        ));
        assert!(matches!(
            Manifest::parse(b"<html>", "https://e/s"),
            Err(BulkError::Manifest { .. })
        ));
    }
}
