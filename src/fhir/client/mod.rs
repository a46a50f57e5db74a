//! The EHR's FHIR REST API over reqwest: configurable media type, timeouts, bounded
//! concurrency, retries with exponential backoff and jitter for idempotent requests
//! only, `next`-link paging with loop detection, a size limit on every answer.
//!
//! Credentials stay home: a request (a `next` link, an absolute reference) to any
//! origin other than the configured base URL's is refused before it is sent, so the
//! EHR token never leaves for another host. Errors carry the status, the method, the
//! URL and the OperationOutcome's issue codes, never its text or a response body:
//! diagnostics can quote the patient's record, and errors reach logs and dead-letter
//! headers.

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use tokio::sync::Semaphore;

use crate::config::FhirSettings;

/// Whether a request may be sent again after a failure whose outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    Idempotent,
    /// Creates and other non-idempotent writes: never retried blindly.
    Once,
}

pub struct FhirClient {
    base: String,
    http: reqwest::Client,
    media_type: String,
    auth: Auth,
    limiter: Arc<Semaphore>,
    /// `fhir.max_concurrency`: the limiter's size.
    concurrency: usize,
    /// Limits concurrent transactions when configured.
    writers: Option<Arc<Semaphore>>,
    max_retries: u32,
    retry_base: Duration,
    timeout_secs: u64,
    page_size: u32,
    max_pages: u32,
    max_body_bytes: usize,
    observer: Option<RequestObserver>,
    /// `fhir.batch_searches`: batch when the EHR lists it.
    batch_wanted: bool,
    /// The EHR listed `batch` in its CapabilityStatement (set by
    /// [`FhirClient::check_capabilities`]).
    batch_listed: std::sync::atomic::AtomicBool,
}

mod auth;
mod capabilities;
mod error;
mod request_kind;
mod search;

pub use auth::{Auth, SmartBackend};
pub use capabilities::{lists_batch, missing_capabilities};
pub use error::FhirError;
pub(crate) use error::{body_kind, issue_code, with_causes};
pub use request_kind::{RequestKind, RequestObserver};
pub use search::Search;

impl FhirClient {
    pub fn new(base_url: &str, settings: &FhirSettings, auth: Auth) -> Result<Self, FhirError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(settings.connect_timeout_secs))
            .timeout(Duration::from_secs(settings.request_timeout_secs))
            .user_agent(concat!("trd-sentinel/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| FhirError::Transport {
                method: "-".into(),
                url: base_url.into(),
                detail: error::with_causes(&e),
            })?;
        Ok(Self {
            base: base_url.trim_end_matches('/').to_string(),
            http,
            media_type: settings.media_type.clone(),
            auth,
            limiter: Arc::new(Semaphore::new(settings.max_concurrency.max(1))),
            concurrency: settings.max_concurrency.max(1),
            writers: (settings.max_concurrent_transactions > 0)
                .then(|| Arc::new(Semaphore::new(settings.max_concurrent_transactions))),
            max_retries: settings.max_retries,
            retry_base: Duration::from_millis(settings.retry_base_ms),
            timeout_secs: settings.request_timeout_secs,
            page_size: settings.page_size,
            max_pages: settings.max_pages,
            max_body_bytes: settings.max_response_bytes,
            observer: None,
            batch_wanted: settings.batch_searches,
            batch_listed: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// A client for another FHIR server (a CDS client's `fhirServer`) with its own
    /// credentials, sharing this one's connection pool and settings: building a TLS
    /// client per request would cost more than the request. Nothing is counted as
    /// the EHR's load.
    pub fn for_server(&self, base_url: &str, auth: Auth) -> Self {
        Self {
            base: base_url.trim_end_matches('/').to_string(),
            http: self.http.clone(),
            media_type: self.media_type.clone(),
            auth,
            limiter: Arc::new(Semaphore::new(self.concurrency)),
            concurrency: self.concurrency,
            writers: None,
            max_retries: self.max_retries,
            retry_base: self.retry_base,
            timeout_secs: self.timeout_secs,
            page_size: self.page_size,
            max_pages: self.max_pages,
            max_body_bytes: self.max_body_bytes,
            observer: None,
            batch_wanted: false,
            batch_listed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The same client, telling `observer` of every request it sends.
    pub fn with_observer(mut self, observer: RequestObserver) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Whether searches go in one batch Bundle: wanted, and the EHR lists `batch`.
    pub fn batches_searches(&self) -> bool {
        self.batch_wanted && self.batch_listed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Requests in flight at once (`fhir.max_concurrency`).
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// The connection pool, for a caller that reads headers or streams a body itself
    /// (the Bulk Data client).
    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The Authorization header for the EHR (a cached SMART token, renewed when due).
    /// Only for URLs the caller has checked are the EHR's, or a storage origin the
    /// configuration trusts with its token.
    pub(crate) async fn authorization(&self) -> Result<Option<String>, FhirError> {
        self.auth.header(&self.http, &self.base).await
    }

    /// How often an idempotent request is retried, and the first back-off.
    pub(crate) fn retry_policy(&self) -> (u32, Duration) {
        (self.max_retries, self.retry_base)
    }

    /// After a 401: whether a fresh token can be fetched (a cached one is dropped).
    pub(crate) async fn refresh_after_401(&self) -> bool {
        self.auth.refresh_after_401().await
    }

    /// The URL for a path or an absolute URL; an absolute URL must be on the base
    /// URL's origin (scheme, host and port), or nothing is sent.
    fn url(&self, path: &str) -> Result<String, FhirError> {
        if !(path.starts_with("http://") || path.starts_with("https://")) {
            return Ok(format!("{}/{}", self.base, path.trim_start_matches('/')));
        }
        let origin_of = |url: &str| {
            reqwest::Url::parse(url)
                .ok()
                .map(|u| u.origin().ascii_serialization())
        };
        match (origin_of(path), origin_of(&self.base)) {
            (Some(theirs), Some(ours)) if theirs == ours => Ok(path.to_string()),
            (theirs, _) => Err(FhirError::ForeignOrigin {
                url: theirs.clone().unwrap_or_else(|| "(unparsable URL)".into()),
                origin: theirs.unwrap_or_default(),
            }),
        }
    }

    /// Sends one request, retrying as its idempotency allows; returns the parsed body
    /// (Null for an empty body).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotency: Idempotency,
    ) -> Result<Value, FhirError> {
        let bytes = self
            .send_for_bytes(method, path, body, idempotency, None)
            .await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes).map_err(|e| FhirError::Malformed {
            url: self.url(path).unwrap_or_else(|_| path.to_string()),
            detail: e.to_string(),
        })
    }

    /// [`FhirClient::send`] without parsing the answer: for callers that read only
    /// part of it (a batch's pages go to the reader as text; a transaction's answer
    /// is checked for its type). `prefer`: a `Prefer` header value.
    pub(crate) async fn send_for_bytes(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotency: Idempotency,
        prefer: Option<&'static str>,
    ) -> Result<Vec<u8>, FhirError> {
        let url = self.url(path)?;
        let mut attempt = 0;
        let mut refreshed = false;
        loop {
            let result = self.send_once(&method, &url, body, prefer).await;
            match result {
                Err(FhirError::Status { status: 401, .. })
                    if !refreshed && self.auth.refresh_after_401().await =>
                {
                    // The request was refused, not processed: safe to send again once.
                    refreshed = true;
                    tracing::info!(%url, "401: fetching a fresh token");
                }
                Err(FhirError::Status { status: 401, .. }) => {
                    return Err(FhirError::Unauthorized { url })
                }
                Err(e)
                    if e.is_retryable_now()
                        && idempotency == Idempotency::Idempotent
                        && attempt < self.max_retries =>
                {
                    let delay = self.backoff(attempt);
                    attempt += 1;
                    tracing::warn!(%url, attempt, delay_ms = delay.as_millis() as u64, error = %e, "retrying");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    /// Exponential backoff with full jitter: a random delay in [base * 2^n / 2, base * 2^n].
    fn backoff(&self, attempt: u32) -> Duration {
        let ceiling = self.retry_base.saturating_mul(2u32.saturating_pow(attempt));
        let half = ceiling / 2;
        half + ceiling.saturating_sub(half).mul_f64(rand::random::<f64>())
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &str,
        body: Option<&Value>,
        prefer: Option<&'static str>,
    ) -> Result<Vec<u8>, FhirError> {
        let _permit = self
            .limiter
            .acquire()
            .await
            .map_err(|e| FhirError::Transport {
                method: method.to_string(),
                url: url.to_string(),
                detail: error::with_causes(&e),
            })?;
        if let Some(observer) = &self.observer {
            observer(RequestKind::of(
                method,
                url.strip_prefix(self.base.as_str()).unwrap_or(url),
                body,
            ));
        }
        let mut request = self
            .http
            .request(method.clone(), url)
            .header("Accept", &self.media_type);
        if let Some(prefer) = prefer {
            request = request.header("Prefer", prefer);
        }
        if let Some(header) = self.auth.header(&self.http, &self.base).await? {
            request = request.header("Authorization", header);
        }
        if let Some(body) = body {
            let bytes = serde_json::to_vec(body).map_err(|e| FhirError::Malformed {
                url: url.into(),
                detail: e.to_string(),
            })?;
            request = request.header("Content-Type", &self.media_type).body(bytes);
        }
        let response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                FhirError::Timeout {
                    method: method.to_string(),
                    url: url.into(),
                    secs: self.timeout_secs,
                }
            } else {
                FhirError::Transport {
                    method: method.to_string(),
                    url: url.into(),
                    detail: error::with_causes(&e),
                }
            }
        })?;
        let status = response.status();
        let bytes = self.read_limited(response, method, url).await?;
        if !status.is_success() {
            return Err(FhirError::Status {
                method: method.to_string(),
                url: url.into(),
                status: status.as_u16(),
                detail: body_kind(&bytes, status),
            });
        }
        Ok(bytes)
    }

    /// The body, read chunk by chunk up to the size limit (a runaway answer is an
    /// error, not an out-of-memory).
    async fn read_limited(
        &self,
        mut response: reqwest::Response,
        method: &Method,
        url: &str,
    ) -> Result<Vec<u8>, FhirError> {
        let too_large = || FhirError::TooLarge {
            url: url.into(),
            limit: self.max_body_bytes,
        };
        if response
            .content_length()
            .is_some_and(|n| n > self.max_body_bytes as u64)
        {
            return Err(too_large());
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| FhirError::Transport {
            method: method.to_string(),
            url: url.into(),
            detail: error::with_causes(&e),
        })? {
            if bytes.len().saturating_add(chunk.len()) > self.max_body_bytes {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    /// A transaction Bundle; `idempotent` when every entry is a conditional update or
    /// a create guarded by ifNoneExist, so a retry cannot duplicate anything.
    ///
    /// Sent with `Prefer: return=minimal`: the service needs only the outcome, not
    /// its resources echoed back (less for the EHR to write and for us to read).
    pub async fn transaction(
        &self,
        bundle: &Value,
        idempotency: Idempotency,
    ) -> Result<(), FhirError> {
        let _writer =
            match &self.writers {
                Some(writers) => Some(writers.clone().acquire_owned().await.map_err(|e| {
                    FhirError::Transport {
                        method: "POST".into(),
                        url: self.base.clone(),
                        detail: error::with_causes(&e),
                    }
                })?),
                None => None,
            };
        let answer = self
            .send_for_bytes(
                Method::POST,
                "",
                Some(bundle),
                idempotency,
                Some("return=minimal"),
            )
            .await?;
        if std::str::from_utf8(&answer).is_ok_and(search::is_bundle_text) {
            Ok(())
        } else {
            Err(FhirError::Malformed {
                url: self.base.clone(),
                detail: "transaction answer is not a Bundle".into(),
            })
        }
    }
}
