//! What can go wrong talking to the EHR, said without the EHR's words: errors carry
//! the status, method, URL and an OperationOutcome's issue codes, never a body's text
//! (diagnostics can quote the patient's record, and errors reach logs and dead-letter
//! headers).

use reqwest::StatusCode;
use serde_json::Value;

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

/// What an error body was, without its text: an OperationOutcome's issue codes (a
/// fixed vocabulary), another resource's type, or the status's reason phrase.
/// Diagnostics and bodies can quote the record, so they never reach an error.
pub(crate) fn body_kind(bytes: &[u8], status: StatusCode) -> String {
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
                .filter_map(issue_code)
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

/// An OperationOutcome issue's `code` when it is one of FHIR's issue-type codes in
/// shape (lower-case words and hyphens, short): never free text, which can quote the
/// record.
pub(crate) fn issue_code(issue: &Value) -> Option<&str> {
    issue.get("code").and_then(Value::as_str).filter(|code| {
        code.len() <= 32 && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
    })
}

/// A transport error with every cause under it ("error sending request: client error
/// (Connect): tcp connect error: Connection refused (os error 111)"): reqwest's own
/// message names none of them, and "connection refused", a DNS failure and a TLS
/// failure call for different fixes. The causes are the transport's (no body text).
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let message = cause.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::with_causes;

    #[derive(Debug, thiserror::Error)]
    #[error("error sending request")]
    struct Sending(#[source] std::io::Error);

    #[test]
    fn a_transport_error_says_its_cause() {
        let refused =
            std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused");
        assert_eq!(
            with_causes(&Sending(refused)),
            "error sending request: Connection refused"
        );
    }
}
