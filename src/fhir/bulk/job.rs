//! The job file: what a killed `export` needs to continue where it stopped. Written
//! atomically (a temporary file renamed over the old) after every step, so it is
//! always one consistent state: before the kick-off answered (nothing), polling (the
//! status URL), downloading (the manifest and the files finished, with their sizes).

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::manifest::{FileKind, Manifest};
use super::BulkError;

/// Bumped when the file's shape changes: an older file is not resumed.
const VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExportJob {
    pub version: u32,
    /// The EHR's base URL and the kick-off path and query: a job is resumed only for
    /// the same request.
    pub base_url: String,
    pub request: String,
    /// The status URL the kick-off answered with (`Content-Location`).
    pub status_url: Option<String>,
    pub manifest: Option<Manifest>,
    /// Files downloaded completely, with their sizes on disk.
    pub files: Vec<FileRecord>,
    /// Asked without `_typeFilter` after the EHR could not apply it (a resumed run
    /// asks the same).
    #[serde(default)]
    pub unfiltered: bool,
    /// The run that made it handed the export on (evaluated, queued, written): the
    /// next run in the directory starts a new export.
    #[serde(default)]
    pub finished: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub kind: FileKind,
    pub resource_type: String,
    pub url: String,
    /// The path relative to the export directory.
    pub path: PathBuf,
    pub bytes: u64,
}

impl ExportJob {
    pub fn new(base_url: &str, request: &str) -> Self {
        Self {
            version: VERSION,
            base_url: base_url.to_string(),
            request: request.to_string(),
            status_url: None,
            manifest: None,
            files: Vec::new(),
            unfiltered: false,
            finished: false,
        }
    }

    /// The job file of a directory, if there is one.
    pub fn load(path: &Path) -> Result<Option<Self>, BulkError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(BulkError::io(path)(e)),
        };
        let job: Self = serde_json::from_str(&text).map_err(|e| BulkError::JobFile {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        if job.version != VERSION {
            return Err(BulkError::JobFile {
                path: path.to_path_buf(),
                detail: format!("version {} (this build writes {VERSION})", job.version),
            });
        }
        Ok(Some(job))
    }

    /// Writes the job file atomically and durably.
    pub fn save(&self, path: &Path) -> Result<(), BulkError> {
        let temporary = path.with_extension("tmp");
        let body = serde_json::to_vec_pretty(self).map_err(|e| BulkError::JobFile {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        let mut file = fs::File::create(&temporary).map_err(BulkError::io(&temporary))?;
        file.write_all(&body)
            .and_then(|()| file.sync_all())
            .map_err(BulkError::io(&temporary))?;
        fs::rename(&temporary, path).map_err(BulkError::io(path))
    }

    /// Whether a manifest file was downloaded completely and is still on disk at its
    /// recorded size (a file cut off or changed since is fetched again).
    pub fn is_done(&self, url: &str, directory: &Path) -> bool {
        self.files.iter().any(|f| {
            f.url == url && fs::metadata(directory.join(&f.path)).is_ok_and(|m| m.len() == f.bytes)
        })
    }

    pub fn record(&mut self, record: FileRecord) {
        self.files.retain(|f| f.url != record.url);
        self.files.push(record);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_file_round_trips_and_knows_which_files_are_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("job.json");
        assert_eq!(ExportJob::load(&path).expect("no file"), None);
        let mut job = ExportJob::new("http://ehr", "$export?_type=Patient");
        job.status_url = Some("http://ehr/status/1".into());
        fs::create_dir_all(dir.path().join("output")).expect("mkdir");
        fs::write(dir.path().join("output/a.ndjson"), b"0123456789").expect("write");
        job.record(FileRecord {
            kind: FileKind::Output,
            resource_type: "Patient".into(),
            url: "http://ehr/f/a".into(),
            path: "output/a.ndjson".into(),
            bytes: 10,
        });
        job.save(&path).expect("save");
        let loaded = ExportJob::load(&path).expect("read").expect("present");
        assert_eq!(loaded, job);
        assert!(loaded.is_done("http://ehr/f/a", dir.path()));
        assert!(!loaded.is_done("http://ehr/f/b", dir.path()));
        // Cut off (or changed) on disk: fetched again.
        fs::write(dir.path().join("output/a.ndjson"), b"01234").expect("truncate");
        assert!(!loaded.is_done("http://ehr/f/a", dir.path()));

        fs::write(&path, b"{").expect("corrupt");
        assert!(matches!(
            ExportJob::load(&path),
            Err(BulkError::JobFile { .. })
        ));
    }
}
