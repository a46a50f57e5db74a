//! The Bulk Data protocol against the EHR: kick-off, status polls, downloads, cancel.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use tokio::io::AsyncWriteExt;

use super::manifest::{Manifest, ManifestFile};
use super::request::ExportRequest;
use super::{origin_of, BulkError};
use crate::config::ExportSettings;
use crate::fhir::client::{body_kind, with_causes, FhirClient, FhirError};

/// A manifest is a few KB per thousand files; anything far larger is not a manifest.
const MAX_MANIFEST_BYTES: usize = 16 * 1024 * 1024;

/// What was sent to the EHR (and its storage): the load an EHR team asks about.
#[derive(Debug, Default)]
pub struct BulkStats {
    pub kick_offs: AtomicU64,
    pub polls: AtomicU64,
    pub downloads: AtomicU64,
    pub bytes: AtomicU64,
    pub retries: AtomicU64,
    pub cancels: AtomicU64,
}

impl BulkStats {
    fn count(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Every request sent: kick-offs, polls, downloads (retries included), cancels.
    pub fn requests(&self) -> u64 {
        [
            &self.kick_offs,
            &self.polls,
            &self.downloads,
            &self.retries,
            &self.cancels,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }
}

/// The answer to one status poll.
#[derive(Debug)]
pub enum Poll {
    /// Still running: `X-Progress` as the server said it, and how long to wait.
    InProgress {
        progress: Option<String>,
        wait: Duration,
    },
    Complete(Manifest),
}

/// The Bulk Data client over the EHR's [`FhirClient`] (its base URL, credentials and
/// connection pool).
pub struct BulkClient<'a> {
    fhir: &'a FhirClient,
    settings: &'a ExportSettings,
    pub stats: BulkStats,
}

/// What a retried request is for: how it is counted, what it accepts.
#[derive(Clone, Copy)]
enum Purpose {
    KickOff,
    Poll,
    Download,
    Cancel,
}

impl<'a> BulkClient<'a> {
    pub fn new(fhir: &'a FhirClient, settings: &'a ExportSettings) -> Self {
        Self {
            fhir,
            settings,
            stats: BulkStats::default(),
        }
    }

    pub fn base_url(&self) -> &str {
        self.fhir.base_url()
    }

    /// Whether the EHR's token may go to this URL: the EHR's own origin, or a storage
    /// origin the configuration names.
    fn may_carry_token(&self, url: &str) -> bool {
        let Some(origin) = origin_of(url) else {
            return false;
        };
        origin_of(self.fhir.base_url()).as_deref() == Some(origin.as_str())
            || self
                .settings
                .storage_origins
                .iter()
                .any(|o| o.trim_end_matches('/') == origin)
    }

    fn ceiling(&self) -> Duration {
        Duration::from_secs(self.settings.max_poll_interval_secs)
    }

    /// `Retry-After` in seconds or as an HTTP date, at most the configured ceiling.
    fn retry_after(&self, headers: &HeaderMap) -> Option<Duration> {
        let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
        let wait = match value.trim().parse::<u64>() {
            Ok(secs) => Duration::from_secs(secs),
            Err(_) => {
                let when = time::OffsetDateTime::parse(
                    value.trim(),
                    &time::format_description::well_known::Rfc2822,
                )
                .ok()?;
                let left = when - time::OffsetDateTime::now_utc();
                Duration::try_from(left).unwrap_or(Duration::ZERO)
            }
        };
        Some(wait.min(self.ceiling()))
    }

    /// Exponential back-off from the configured first wait, at most the ceiling.
    fn backoff(&self, attempt: u32) -> Duration {
        Duration::from_secs(self.settings.poll_interval_secs)
            .saturating_mul(2u32.saturating_pow(attempt.min(16)))
            .min(self.ceiling())
    }

    /// One request, sent again after a transport error, 429, 502, 503 or 504 (waiting
    /// `Retry-After` when the server says it), and once with a fresh token after a 401.
    /// Any other answer is returned for the caller to read.
    async fn execute(
        &self,
        method: Method,
        url: &str,
        accept: &str,
        with_token: bool,
        purpose: Purpose,
    ) -> Result<reqwest::Response, BulkError> {
        let (max_retries, _) = self.fhir.retry_policy();
        let timeout = match purpose {
            Purpose::Download => Duration::from_secs(self.settings.download_timeout_secs),
            _ => Duration::from_secs(60),
        };
        let mut attempt = 0u32;
        let mut refreshed = false;
        loop {
            let counter = match (attempt > 0 || refreshed, purpose) {
                (true, _) => &self.stats.retries,
                (false, Purpose::KickOff) => &self.stats.kick_offs,
                (false, Purpose::Poll) => &self.stats.polls,
                (false, Purpose::Download) => &self.stats.downloads,
                (false, Purpose::Cancel) => &self.stats.cancels,
            };
            BulkStats::count(counter, 1);
            let mut request = self
                .fhir
                .http()
                .request(method.clone(), url)
                .header("Accept", accept)
                .timeout(timeout);
            if matches!(purpose, Purpose::KickOff) {
                request = request.header("Prefer", "respond-async");
            }
            if with_token {
                if let Some(header) = self.fhir.authorization().await? {
                    request = request.header("Authorization", header);
                }
            }
            let outcome = request.send().await;
            let wait = match outcome {
                Ok(response) if response.status() == StatusCode::UNAUTHORIZED && with_token => {
                    if refreshed || !self.fhir.refresh_after_401().await {
                        return Err(FhirError::Unauthorized { url: url.into() }.into());
                    }
                    refreshed = true;
                    continue;
                }
                Ok(response)
                    if matches!(response.status().as_u16(), 429 | 502 | 503 | 504)
                        && attempt < max_retries =>
                {
                    self.retry_after(response.headers())
                        .unwrap_or_else(|| self.backoff(attempt))
                }
                Ok(response) => return Ok(response),
                Err(e) if attempt < max_retries => {
                    tracing::warn!(%url, attempt, error = %with_causes(&e), "export request failed; retrying");
                    self.backoff(attempt)
                }
                Err(e) => {
                    return Err(FhirError::Transport {
                        method: method.to_string(),
                        url: url.into(),
                        detail: with_causes(&e),
                    }
                    .into())
                }
            };
            attempt += 1;
            tracing::info!(%url, attempt, wait_ms = wait.as_millis() as u64, "export: the EHR asked to wait; retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// Kicks the export off; returns the status URL.
    pub async fn kick_off(&self, request: &ExportRequest) -> Result<String, BulkError> {
        let url = format!("{}/{}", self.fhir.base_url(), request.path());
        let response = self
            .execute(
                Method::GET,
                &url,
                "application/fhir+json",
                true,
                Purpose::KickOff,
            )
            .await?;
        let status = response.status();
        if status != StatusCode::ACCEPTED {
            let body = read_limited(response, MAX_MANIFEST_BYTES, &url).await?;
            return Err(BulkError::KickOffRefused {
                url: path_only(&url),
                status: status.as_u16(),
                detail: body_kind(&body, status),
            });
        }
        let location = response
            .headers()
            .get(reqwest::header::CONTENT_LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(BulkError::NoStatusUrl)?;
        let resolved = reqwest::Url::parse(&url)
            .and_then(|base| base.join(location))
            .map_err(|_| BulkError::NoStatusUrl)?;
        Ok(resolved.to_string())
    }

    /// One status poll.
    pub async fn poll(&self, status_url: &str, attempt: u32) -> Result<Poll, BulkError> {
        let with_token = self.may_carry_token(status_url);
        let response = self
            .execute(
                Method::GET,
                status_url,
                "application/json",
                with_token,
                Purpose::Poll,
            )
            .await?;
        let status = response.status();
        let headers = response.headers().clone();
        match status.as_u16() {
            202 => Ok(Poll::InProgress {
                progress: headers
                    .get("X-Progress")
                    .and_then(|v| v.to_str().ok())
                    .map(|p| p.chars().take(100).collect()),
                wait: self
                    .retry_after(&headers)
                    .unwrap_or_else(|| self.backoff(attempt)),
            }),
            200 => {
                let body = read_limited(response, MAX_MANIFEST_BYTES, status_url).await?;
                Ok(Poll::Complete(Manifest::parse(&body, status_url)?))
            }
            404 | 410 => Err(BulkError::JobGone {
                url: status_url.into(),
                status: status.as_u16(),
            }),
            _ => {
                let body = read_limited(response, MAX_MANIFEST_BYTES, status_url).await?;
                let detail = body_kind(&body, status);
                // The IG: a transient error says so in its OperationOutcome; polling goes on.
                if detail.contains("transient") {
                    return Ok(Poll::InProgress {
                        progress: None,
                        wait: self.backoff(attempt),
                    });
                }
                Err(BulkError::Failed {
                    url: status_url.into(),
                    status: status.as_u16(),
                    detail,
                })
            }
        }
    }

    /// Downloads one file to `destination` (through a `.part` file renamed when
    /// whole), streamed, never the whole file in memory. Returns its size.
    pub async fn download(
        &self,
        file: &ManifestFile,
        requires_token: bool,
        destination: &Path,
    ) -> Result<u64, BulkError> {
        let url = file.url.as_str();
        if requires_token && !self.may_carry_token(url) {
            return Err(BulkError::ForeignStorage {
                url: url.into(),
                origin: origin_of(url).unwrap_or_else(|| "(unparsable URL)".into()),
            });
        }
        let (max_retries, _) = self.fhir.retry_policy();
        let mut attempt = 0u32;
        loop {
            match self.download_once(url, requires_token, destination).await {
                // A connection cut mid-file: the file is fetched again from its start.
                Err(BulkError::Fhir(FhirError::Transport { .. })) if attempt < max_retries => {
                    tokio::time::sleep(self.backoff(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    async fn download_once(
        &self,
        url: &str,
        with_token: bool,
        destination: &Path,
    ) -> Result<u64, BulkError> {
        let limit = self.settings.max_file_bytes;
        let mut response = self
            .execute(
                Method::GET,
                url,
                "application/fhir+ndjson",
                with_token,
                Purpose::Download,
            )
            .await?;
        let status = response.status();
        if !status.is_success() {
            return Err(match status.as_u16() {
                404 | 410 => BulkError::JobGone {
                    url: url.into(),
                    status: status.as_u16(),
                },
                code => BulkError::Failed {
                    url: url.into(),
                    status: code,
                    detail: status.canonical_reason().unwrap_or("error").into(),
                },
            });
        }
        if response.content_length().is_some_and(|n| n > limit) {
            return Err(BulkError::TooLarge {
                url: url.into(),
                limit,
            });
        }
        let part = destination.with_extension("part");
        let mut out = tokio::fs::File::create(&part)
            .await
            .map_err(BulkError::io(&part))?;
        let mut written = 0u64;
        loop {
            let chunk = response.chunk().await.map_err(|e| FhirError::Transport {
                method: "GET".into(),
                url: url.into(),
                detail: with_causes(&e),
            })?;
            let Some(chunk) = chunk else { break };
            written = written.saturating_add(chunk.len() as u64);
            if written > limit {
                drop(out);
                let _ = tokio::fs::remove_file(&part).await;
                return Err(BulkError::TooLarge {
                    url: url.into(),
                    limit,
                });
            }
            out.write_all(&chunk).await.map_err(BulkError::io(&part))?;
        }
        out.flush().await.map_err(BulkError::io(&part))?;
        out.sync_all().await.map_err(BulkError::io(&part))?;
        drop(out);
        tokio::fs::rename(&part, destination)
            .await
            .map_err(BulkError::io(destination))?;
        BulkStats::count(&self.stats.bytes, written);
        Ok(written)
    }

    /// Cancels the job on the EHR (`DELETE` on its status URL): after Ctrl-C, or when
    /// the export is abandoned. A job already gone is fine.
    pub async fn cancel(&self, status_url: &str) -> Result<(), BulkError> {
        let with_token = self.may_carry_token(status_url);
        let response = self
            .execute(
                Method::DELETE,
                status_url,
                "application/fhir+json",
                with_token,
                Purpose::Cancel,
            )
            .await?;
        match response.status().as_u16() {
            200..=299 | 404 | 410 => Ok(()),
            code => Err(BulkError::Failed {
                url: status_url.into(),
                status: code,
                detail: "the cancel request was refused".into(),
            }),
        }
    }
}

/// The URL without its query (which may hold codes and dates, never PHI, but is long).
fn path_only(url: &str) -> String {
    url.split('?').next().unwrap_or(url).to_string()
}

async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
    url: &str,
) -> Result<Vec<u8>, BulkError> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| FhirError::Transport {
        method: "GET".into(),
        url: url.into(),
        detail: with_causes(&e),
    })? {
        if bytes.len().saturating_add(chunk.len()) > limit {
            return Err(FhirError::TooLarge {
                url: url.into(),
                limit,
            }
            .into());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}
