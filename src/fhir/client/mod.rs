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

use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::Semaphore;

use super::auth::Auth;
use crate::config::FhirSettings;

#[derive(Debug, thiserror::Error)]
pub enum FhirError {
    /// `detail`: what kind of body came back (an OperationOutcome's issue codes), never
    /// the body's text.
    #[error("{method} {url}: HTTP {status}: {detail}")]
    Status {
        method: String,
        url: String,
        status: u16,
        detail: String,
    },
    #[error("{method} {url}: no answer within {secs} s")]
    Timeout {
        method: String,
        url: String,
        secs: u64,
    },
    #[error("{method} {url}: {detail}")]
    Transport {
        method: String,
        url: String,
        detail: String,
    },
    #[error("{url}: the answer is not FHIR JSON: {detail}")]
    Malformed { url: String, detail: String },
    #[error("paging loop: {url} was already fetched")]
    PagingLoop { url: String },
    #[error("paging stopped after {pages} pages at {url}")]
    TooManyPages { url: String, pages: u32 },
    #[error("{url}: 401 Unauthorized even with a fresh token")]
    Unauthorized { url: String },
    #[error("the EHR does not support what the configuration needs: {0}")]
    Capability(String),
    /// Our own authentication set-up is wrong (key, missing token): retrying cannot help.
    #[error("authentication: {0}")]
    Auth(String),
    /// The identity provider (token endpoint, SMART configuration) did not give a
    /// token: an outage, retried later.
    #[error("identity provider: {0}")]
    IdentityProvider(String),
    #[error("{url}: refused: not the EHR's origin ({origin}); the EHR's credentials go to its base URL only")]
    ForeignOrigin { url: String, origin: String },
    #[error("{url}: the answer is larger than {limit} bytes")]
    TooLarge { url: String, limit: usize },
}

impl FhirError {
    /// Worth sending again at once, within one request's retries (overload, outage).
    pub fn is_retryable_now(&self) -> bool {
        match self {
            FhirError::Status { status, .. } => *status == 429 || *status >= 500,
            FhirError::Timeout { .. } | FhirError::Transport { .. } => true,
            _ => false,
        }
    }

    /// Worth trying the work item again later (retried, not dead-lettered): outages,
    /// an identity provider that is down, a 401 even after a fresh token (credentials
    /// rotated elsewhere come back), and a conditional write that found several
    /// matches (412: the next attempt sees the duplicates and repairs them) or a
    /// version conflict (409).
    pub fn is_transient(&self) -> bool {
        match self {
            FhirError::Status {
                status: 409 | 412, ..
            } => true,
            FhirError::IdentityProvider(_) | FhirError::Unauthorized { .. } => true,
            other => other.is_retryable_now(),
        }
    }

    /// A short label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            FhirError::Status {
                status: 409 | 412, ..
            } => "conflict",
            FhirError::IdentityProvider(_) => "identity-provider",
            FhirError::Unauthorized { .. } => "unauthorized",
            _ => "ehr",
        }
    }
}

/// Whether a request may be sent again after a failure whose outcome is unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    Idempotent,
    /// Creates and other non-idempotent writes: never retried blindly.
    Once,
}

/// What kind of request went to the EHR: the load a hospital's EHR team asks about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestKind {
    Read,
    /// A search, or one more page of one.
    Search,
    /// A transaction Bundle (POST to the base).
    Transaction,
    /// A batch Bundle of searches (POST to the base).
    Batch,
    /// A create or update outside a transaction.
    Write,
    Capabilities,
}

impl RequestKind {
    pub fn label(self) -> &'static str {
        match self {
            RequestKind::Read => "read",
            RequestKind::Search => "search",
            RequestKind::Transaction => "transaction",
            RequestKind::Batch => "batch",
            RequestKind::Write => "write",
            RequestKind::Capabilities => "capabilities",
        }
    }

    /// From the method, the URL's part after the base (`Type/id`, `Type?...`) and,
    /// for a Bundle posted to the base, its type.
    fn of(method: &Method, relative: &str, body: Option<&Value>) -> Self {
        let path = relative.trim_start_matches('/');
        let (path, query) = path
            .split_once('?')
            .map_or((path, false), |(p, _)| (p, true));
        let path = path.trim_end_matches('/');
        match *method {
            Method::GET if path == "metadata" => RequestKind::Capabilities,
            Method::GET if query || !path.contains('/') || path.ends_with("_search") => {
                RequestKind::Search
            }
            Method::GET => RequestKind::Read,
            Method::POST
                if path.is_empty()
                    && body.and_then(|b| b.get("type")).and_then(Value::as_str)
                        == Some("batch") =>
            {
                RequestKind::Batch
            }
            Method::POST if path.is_empty() => RequestKind::Transaction,
            Method::POST if path.ends_with("_search") => RequestKind::Search,
            _ => RequestKind::Write,
        }
    }
}

/// Told of every request sent to the EHR (retries included), e.g. to count them.
pub type RequestObserver = Arc<dyn Fn(RequestKind) + Send + Sync>;

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

mod capabilities;
mod search;

pub use capabilities::{lists_batch, missing_capabilities};
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
                detail: e.to_string(),
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

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn page_size(&self) -> u32 {
        self.page_size
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
                detail: e.to_string(),
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
                    detail: e.to_string(),
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
            detail: e.to_string(),
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
                        detail: e.to_string(),
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
        #[derive(serde::Deserialize)]
        struct TypeHead<'a> {
            #[serde(rename = "resourceType", borrow)]
            resource_type: Option<std::borrow::Cow<'a, str>>,
        }
        match serde_json::from_slice::<TypeHead>(&answer) {
            Ok(TypeHead {
                resource_type: Some(kind),
            }) if kind == "Bundle" => Ok(()),
            _ => Err(FhirError::Malformed {
                url: self.base.clone(),
                detail: "transaction answer is not a Bundle".into(),
            }),
        }
    }
}

/// What an error body was, without its text: an OperationOutcome's issue codes (a
/// fixed vocabulary), another resource's type, or the status's reason phrase.
/// Diagnostics and bodies can quote the record, so they never reach an error.
fn body_kind(bytes: &[u8], status: StatusCode) -> String {
    let reason = status.canonical_reason().unwrap_or("error");
    let Ok(value) = serde_json::from_slice::<Value>(bytes) else {
        return reason.to_string();
    };
    match value.get("resourceType").and_then(Value::as_str) {
        Some("OperationOutcome") => {
            let mut codes: Vec<&str> = value
                .get("issue")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|issue| issue.get("code").and_then(Value::as_str))
                .filter(|code| {
                    code.len() <= 32 && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
                })
                .collect();
            codes.sort_unstable();
            codes.dedup();
            format!("{reason} (OperationOutcome: {})", codes.join(", "))
        }
        Some(kind) if kind.len() <= 64 && kind.bytes().all(|b| b.is_ascii_alphabetic()) => {
            format!("{reason} ({kind})")
        }
        _ => reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_kind() {
        let kind = |method: Method, path: &str| RequestKind::of(&method, path, None).label();
        assert_eq!(kind(Method::GET, "/metadata"), "capabilities");
        assert_eq!(kind(Method::GET, "/Patient/1"), "read");
        assert_eq!(
            kind(Method::GET, "/Observation?patient=Patient/1"),
            "search"
        );
        assert_eq!(kind(Method::GET, "/Flag"), "search");
        assert_eq!(
            kind(Method::GET, "?_getpages=abc&_getpagesoffset=50"),
            "search"
        );
        assert_eq!(kind(Method::POST, "/Observation/_search"), "search");
        assert_eq!(kind(Method::POST, ""), "transaction");
        assert_eq!(kind(Method::POST, "/"), "transaction");
        assert_eq!(kind(Method::PUT, "/Subscription/7"), "write");
        assert_eq!(kind(Method::POST, "/Basic"), "write");
        let batch = serde_json::json!({ "resourceType": "Bundle", "type": "batch" });
        assert_eq!(
            RequestKind::of(&Method::POST, "", Some(&batch)).label(),
            "batch"
        );
    }
}
