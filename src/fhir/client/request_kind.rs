//! Requests counted by kind (read, search, batch, transaction, write, capabilities):
//! the load a hospital's EHR team asks about.

use std::sync::Arc;

use reqwest::Method;
use serde_json::Value;

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
    pub(super) fn of(method: &Method, relative: &str, body: Option<&Value>) -> Self {
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
