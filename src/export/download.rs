//! An export from kick-off to the last byte on disk, resumable: every step is saved
//! in the job file (`job.json` in the export directory) before the next begins, so a
//! killed run polls the same status URL again and fetches only the files it had not
//! finished.

use std::collections::BTreeMap;
use std::fs;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::ExportError;
use crate::config::{ExportSettings, TypeFilterMode};
use crate::fhir::bulk::manifest::FileKind;
use crate::fhir::bulk::{
    BulkClient, BulkError, ExportJob, ExportRequest, FileRecord, Manifest, Poll,
};
use crate::fhir::client::issue_code;

/// The job file's name in the export directory.
pub const JOB_FILE: &str = "job.json";

/// A finished download.
#[derive(Debug)]
pub struct Downloaded {
    /// `DIR/output`: the NDJSON `evaluate` reads.
    pub output: PathBuf,
    pub manifest: Manifest,
    pub files: Vec<FileRecord>,
    /// Files fetched by this run, and those a killed run had finished already.
    pub fetched: usize,
    pub reused: usize,
    /// The EHR's error files, summarised: issue code -> count (never their text:
    /// diagnostics can quote the record).
    pub errors: BTreeMap<String, usize>,
    /// Resources deleted since `_since` (`Type/id`), from the `deleted` files.
    pub deleted: Vec<String>,
    /// Seconds from the manifest to the last byte (this run's downloads).
    pub download_seconds: f64,
}

impl Downloaded {
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// Where a run starts: a job to resume, or a fresh one.
fn prepare(
    dir: &Path,
    base_url: &str,
    request: &ExportRequest,
    restart: bool,
) -> Result<(ExportJob, Option<String>), ExportError> {
    let job_path = dir.join(JOB_FILE);
    fs::create_dir_all(dir).map_err(BulkError::io(dir))?;
    let path = request.path();
    let previous = ExportJob::load(&job_path)?;
    match previous {
        Some(job) if job.finished => {}
        Some(job) if job.base_url == base_url && job.request == path && !restart => {
            return Ok((job, None));
        }
        Some(job) if restart => return Ok((ExportJob::new(base_url, &path), job.status_url)),
        Some(job) => {
            return Err(ExportError::OtherJob {
                dir: dir.to_path_buf(),
                // The operation and `_since`, not the long list of codes.
                request: summary_of(&job.request),
            });
        }
        None => {}
    }
    for kind in [FileKind::Output, FileKind::Error, FileKind::Deleted] {
        let sub = dir.join(kind.directory());
        if sub.exists() {
            fs::remove_dir_all(&sub).map_err(BulkError::io(&sub))?;
        }
    }
    Ok((ExportJob::new(base_url, &path), None))
}

/// A kick-off path as a person reads it: `Group/x/$export` and its `_since`.
fn summary_of(request: &str) -> String {
    let (operation, query) = request.split_once('?').unwrap_or((request, ""));
    match query.split('&').find(|p| p.starts_with("_since=")) {
        Some(since) => format!("{operation} {since}"),
        None => operation.to_string(),
    }
}

fn spinner(terminal: bool) -> ProgressBar {
    if !terminal {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// Runs (or resumes) the export of `request` into `dir`.
pub async fn run(
    bulk: &BulkClient<'_>,
    settings: &ExportSettings,
    request: &ExportRequest,
    dir: &Path,
    restart: bool,
    terminal: bool,
) -> Result<Downloaded, ExportError> {
    let base_url = bulk.base_url().to_string();
    let job_path = dir.join(JOB_FILE);
    let (mut job, abandoned) = prepare(dir, &base_url, request, restart)?;
    if let Some(status_url) = abandoned {
        // `--restart`: the job it replaces is cancelled on the EHR, not left running.
        if let Err(e) = bulk.cancel(&status_url).await {
            tracing::warn!(error = %e, "could not cancel the abandoned export job");
        }
    }
    let bar = spinner(terminal);

    // `auto`: an EHR that cannot apply `_typeFilter`, by refusing the kick-off (the
    // IG lets it) or by failing the job (Helios's filtered searches time out on
    // PostgreSQL), is asked again for the types whole; the reader skips what the
    // engine never reads.
    let may_fall_back =
        settings.type_filter == TypeFilterMode::Auto && !request.type_filters.is_empty();
    let manifest = loop {
        let status_url = match job.status_url.clone() {
            Some(url) => {
                tracing::info!(status_url = %url, "polling the export job");
                url
            }
            None => {
                bar.set_message("kick-off");
                let asked = if job.unfiltered {
                    request.unfiltered()
                } else {
                    request.clone()
                };
                let url = match bulk.kick_off(&asked).await {
                    Err(BulkError::KickOffRefused {
                        status: 400 | 422, ..
                    }) if may_fall_back && !job.unfiltered => {
                        tracing::warn!("the EHR refused _typeFilter; exporting the types whole");
                        job.unfiltered = true;
                        bulk.kick_off(&request.unfiltered()).await?
                    }
                    other => other?,
                };
                job.status_url = Some(url.clone());
                job.save(&job_path)?;
                url
            }
        };
        if let Some(manifest) = job.manifest.clone() {
            break manifest;
        }
        match wait(bulk, settings, &status_url, &bar).await {
            Ok(manifest) => {
                job.manifest = Some(manifest.clone());
                job.save(&job_path)?;
                break manifest;
            }
            Err(ExportError::Bulk(BulkError::Failed { status: 500, .. }))
                if may_fall_back && !job.unfiltered =>
            {
                tracing::warn!("the EHR's filtered export job failed; exporting the types whole");
                job.unfiltered = true;
                job.status_url = None;
                job.save(&job_path)?;
            }
            Err(e) => return Err(e),
        }
    };

    let downloading = Instant::now();
    let total = manifest.files().count() as u64;
    let (mut fetched, mut reused) = (0usize, 0usize);
    bar.set_message(format!("downloading 0/{total} files"));
    for (n, (kind, file)) in manifest.files().enumerate() {
        if job.is_done(&file.url, dir) {
            reused += 1;
            continue;
        }
        let relative = PathBuf::from(kind.directory())
            .join(format!("{n:04}.{}.ndjson", sanitise(&file.resource_type)));
        let destination = dir.join(&relative);
        if let Some(parent) = destination.parent() {
            fs::create_dir_all(parent).map_err(BulkError::io(parent))?;
        }
        let bytes = bulk
            .download(file, manifest.requires_access_token, &destination)
            .await?;
        job.record(FileRecord {
            kind,
            resource_type: file.resource_type.clone(),
            url: file.url.clone(),
            path: relative,
            bytes,
        });
        job.save(&job_path)?;
        fetched += 1;
        bar.set_message(format!("downloading {}/{total} files", fetched + reused));
    }
    bar.finish_and_clear();

    let errors = summarise_errors(dir, &job.files)?;
    let deleted = deleted_references(dir, &job.files)?;
    let output = dir.join(FileKind::Output.directory());
    fs::create_dir_all(&output).map_err(BulkError::io(&output))?;
    Ok(Downloaded {
        output,
        manifest,
        files: job.files,
        fetched,
        reused,
        errors,
        deleted,
        download_seconds: downloading.elapsed().as_secs_f64(),
    })
}

/// Polls until the manifest is ready, within `export.timeout_secs` (then the job is
/// cancelled on the EHR).
async fn wait(
    bulk: &BulkClient<'_>,
    settings: &ExportSettings,
    status_url: &str,
    bar: &ProgressBar,
) -> Result<Manifest, ExportError> {
    let deadline = Instant::now() + Duration::from_secs(settings.timeout_secs);
    let mut attempt = 0u32;
    loop {
        match bulk.poll(status_url, attempt).await? {
            Poll::Complete(manifest) => return Ok(manifest),
            Poll::InProgress { progress, wait } => {
                bar.set_message(format!(
                    "the EHR is exporting: {}",
                    progress.as_deref().unwrap_or("in progress")
                ));
                tracing::info!(
                    wait_ms = wait.as_millis() as u64,
                    progress = progress.as_deref().unwrap_or("-"),
                    "export in progress on the EHR; polling again"
                );
                if Instant::now() + wait > deadline {
                    let _ = bulk.cancel(status_url).await;
                    return Err(BulkError::TimedOut {
                        secs: settings.timeout_secs,
                    }
                    .into());
                }
                tokio::time::sleep(wait).await;
                attempt = attempt.saturating_add(1);
            }
        }
    }
}

/// A resource type as a file-name part (letters only; anything else is `x`).
fn sanitise(kind: &str) -> String {
    let clean: String = kind
        .chars()
        .filter(char::is_ascii_alphabetic)
        .take(64)
        .collect();
    if clean.is_empty() {
        "x".into()
    } else {
        clean
    }
}

/// The JSON lines of the files of one manifest list, streamed (`None` for a line that
/// is not JSON; blank lines skipped).
fn json_lines<'a>(
    dir: &'a Path,
    files: &'a [FileRecord],
    kind: FileKind,
) -> impl Iterator<Item = Result<Option<serde_json::Value>, ExportError>> + 'a {
    files
        .iter()
        .filter(move |f| f.kind == kind)
        .flat_map(move |record| {
            let path = dir.join(&record.path);
            let lines: Box<dyn Iterator<Item = Result<String, ExportError>>> =
                match fs::File::open(&path) {
                    Ok(file) => {
                        let path = path.clone();
                        Box::new(
                            std::io::BufReader::new(file)
                                .lines()
                                .map(move |l| l.map_err(|e| BulkError::io(&path)(e).into())),
                        )
                    }
                    Err(e) => Box::new(std::iter::once(Err(BulkError::io(&path)(e).into()))),
                };
            lines
        })
        .filter(|line| !line.as_ref().is_ok_and(|l| l.trim().is_empty()))
        .map(|line| line.map(|l| serde_json::from_str(&l).ok()))
}

/// Reads the error files: OperationOutcome issue codes and how often each came.
fn summarise_errors(
    dir: &Path,
    files: &[FileRecord],
) -> Result<BTreeMap<String, usize>, ExportError> {
    let mut codes = BTreeMap::new();
    for outcome in json_lines(dir, files, FileKind::Error) {
        let Some(outcome) = outcome? else {
            *codes.entry("unreadable".to_string()).or_insert(0) += 1;
            continue;
        };
        let issues = outcome.get("issue").and_then(serde_json::Value::as_array);
        for issue in issues.into_iter().flatten() {
            let code = issue_code(issue).unwrap_or("unknown");
            *codes.entry(code.to_string()).or_insert(0) += 1;
        }
    }
    Ok(codes)
}

/// The `Type/id` of every resource a `deleted` file names (Bundles of DELETE entries).
fn deleted_references(dir: &Path, files: &[FileRecord]) -> Result<Vec<String>, ExportError> {
    let mut out = Vec::new();
    for bundle in json_lines(dir, files, FileKind::Deleted) {
        let Some(bundle) = bundle? else { continue };
        let entries = bundle.get("entry").and_then(serde_json::Value::as_array);
        for url in entries.into_iter().flatten().filter_map(|e| {
            e.pointer("/request/url")
                .and_then(serde_json::Value::as_str)
        }) {
            let reference = crate::fhir::mapping::normalise_reference(url);
            if reference.split('/').count() == 2 {
                out.push(reference);
            }
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Ctrl-C: the job is cancelled on the EHR (`DELETE`) and its job file removed.
pub async fn cancel(bulk: &BulkClient<'_>, dir: &Path) -> Result<(), ExportError> {
    let job_path = dir.join(JOB_FILE);
    if let Some(job) = ExportJob::load(&job_path)? {
        if let Some(status_url) = &job.status_url {
            bulk.cancel(status_url).await?;
        }
        fs::remove_file(&job_path).map_err(BulkError::io(&job_path))?;
    }
    Ok(())
}

/// Marks the job finished: the next run in this directory starts a new export.
pub fn finish(dir: &Path) -> Result<(), ExportError> {
    let job_path = dir.join(JOB_FILE);
    if let Some(mut job) = ExportJob::load(&job_path)? {
        job.finished = true;
        job.save(&job_path)?;
    }
    Ok(())
}
