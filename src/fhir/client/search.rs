//! Searching: one search page by page (following `next` links on the EHR's origin
//! only, never in a loop, at most `fhir.max_pages`), all pages at once for small
//! answers, or several searches in one batch Bundle (one round trip; only the
//! searches whose answer is paged cost more).

use std::borrow::Cow;
use std::collections::HashSet;

use reqwest::Method;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{json, Value};

use super::{FhirClient, FhirError, Idempotency};
use crate::fhir::read::resource_type;

/// One search: the resource type and its parameters (`_count` is added).
pub type Search = (&'static str, Vec<(&'static str, String)>);

/// Where a walk over a search's pages starts.
enum Start {
    /// Fetch this URL first.
    Url(String),
    /// The first page is already here (from a batch).
    Page(Value),
    /// The first page was read already (as text, from a batch); its `next` link.
    After(Option<String>),
}

/// A page's links, read from its text without building the page.
#[derive(Deserialize)]
struct PageLinks<'a> {
    #[serde(borrow, default)]
    link: Vec<LinkHead<'a>>,
}

#[derive(Deserialize)]
struct LinkHead<'a> {
    #[serde(borrow, default)]
    relation: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    url: Option<Cow<'a, str>>,
}

/// The `next` link of a page given as text.
fn next_link_in_text(page: &str) -> Result<Option<String>, serde_json::Error> {
    let links: PageLinks = serde_json::from_str(page)?;
    Ok(links
        .link
        .into_iter()
        .find(|l| l.relation.as_deref() == Some("next"))
        .and_then(|l| l.url)
        .map(Cow::into_owned))
}

/// A batch-response read without building its pages: each entry's status and its
/// resource's text.
#[derive(Deserialize)]
struct BatchAnswer<'a> {
    #[serde(rename = "resourceType", borrow, default)]
    resource_type: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    entry: Option<Vec<BatchEntry<'a>>>,
}

#[derive(Deserialize)]
struct BatchEntry<'a> {
    #[serde(borrow, default)]
    response: Option<BatchResponse<'a>>,
    #[serde(borrow, default)]
    resource: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct BatchResponse<'a> {
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
}

/// Whether a document's text is a Bundle, from its resourceType alone (the reader's
/// scan: no parse).
pub(super) fn is_bundle_text(text: &str) -> bool {
    resource_type(text).as_deref() == Some("Bundle")
}

fn next_link(page: &Value) -> Option<String> {
    page.get("link")
        .and_then(Value::as_array)
        .and_then(|links| {
            links
                .iter()
                .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))
        })
        .and_then(|l| l.get("url").and_then(Value::as_str))
        .map(str::to_string)
}

fn is_bundle(value: &Value) -> bool {
    value.get("resourceType").and_then(Value::as_str) == Some("Bundle")
}

impl FhirClient {
    /// All pages of a search, as Bundles (for small answers: the service's own
    /// resources; records go page by page through [`FhirClient::search_pages`]).
    pub async fn search(
        &self,
        resource_type: &str,
        params: &[(&str, String)],
    ) -> Result<Vec<Value>, FhirError> {
        let mut pages = Vec::new();
        self.search_pages(resource_type, params, |page| {
            pages.push(page);
            Ok(())
        })
        .await?;
        Ok(pages)
    }

    /// The URL of a search's first page, `_count` included.
    fn search_url(
        &self,
        resource_type: &str,
        params: &[(&str, String)],
    ) -> Result<reqwest::Url, FhirError> {
        let mut query: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        query.push(("_count".into(), self.page_size.to_string()));
        reqwest::Url::parse_with_params(&self.url(resource_type)?, &query).map_err(|e| {
            FhirError::Malformed {
                url: resource_type.into(),
                detail: e.to_string(),
            }
        })
    }

    /// A search, each page handed to `on_page` as it arrives (so one page at a time
    /// is held, not the whole answer); follows `next` links (which must not repeat).
    /// Returns the number of pages fetched.
    pub async fn search_pages(
        &self,
        resource_type: &str,
        params: &[(&str, String)],
        on_page: impl FnMut(Value) -> Result<(), FhirError>,
    ) -> Result<usize, FhirError> {
        let first = self.search_url(resource_type, params)?;
        self.walk(Start::Url(first.to_string()), on_page).await
    }

    /// The rest of a search whose first page was read as text (from
    /// [`FhirClient::search_batch`]): `on_page` gets each page the `next` links lead
    /// to. Returns the number of pages fetched (0 when not paged).
    pub async fn follow_text_pages(
        &self,
        first: &str,
        on_page: impl FnMut(Value) -> Result<(), FhirError>,
    ) -> Result<usize, FhirError> {
        let next = next_link_in_text(first).map_err(|e| FhirError::Malformed {
            url: self.base.clone(),
            detail: e.to_string(),
        })?;
        self.walk(Start::After(next), on_page).await
    }

    /// The rest of a search whose first page is in hand (from
    /// [`FhirClient::search_batch`]): `on_page` gets the first page, then each one the
    /// `next` links lead to. Returns the number of pages fetched (0 when not paged).
    pub async fn follow_pages(
        &self,
        first: Value,
        on_page: impl FnMut(Value) -> Result<(), FhirError>,
    ) -> Result<usize, FhirError> {
        self.walk(Start::Page(first), on_page).await
    }

    async fn walk(
        &self,
        start: Start,
        mut on_page: impl FnMut(Value) -> Result<(), FhirError>,
    ) -> Result<usize, FhirError> {
        let mut seen = HashSet::new();
        let mut fetched: usize = 0;
        let mut held: usize = 0;
        let mut next = match start {
            Start::Url(url) => Some(url),
            Start::Page(page) => {
                held += 1;
                let next = next_link(&page);
                on_page(page)?;
                next
            }
            Start::After(next) => {
                held += 1;
                next
            }
        };
        while let Some(url) = next.take() {
            if !seen.insert(url.clone()) {
                return Err(FhirError::PagingLoop { url });
            }
            if held as u64 >= u64::from(self.max_pages) {
                return Err(FhirError::TooManyPages {
                    url,
                    pages: self.max_pages,
                });
            }
            let page = self
                .send(Method::GET, &url, None, Idempotency::Idempotent)
                .await?;
            if !is_bundle(&page) {
                return Err(FhirError::Malformed {
                    url,
                    detail: "a search answered with something other than a Bundle".into(),
                });
            }
            next = next_link(&page);
            fetched += 1;
            held += 1;
            on_page(page)?;
        }
        Ok(fetched)
    }

    /// Several searches in one batch Bundle (one request): the first page of each, in
    /// order, as JSON text (the pages go to the reader, which skips what the engine
    /// never reads without parsing it: building them here would be wasted). A search
    /// the EHR refused fails the whole gather (with its status, never its text), as
    /// a separate search would.
    pub async fn search_batch(&self, searches: &[Search]) -> Result<Vec<String>, FhirError> {
        let mut entries = Vec::with_capacity(searches.len());
        for (resource_type, params) in searches {
            let url = self.search_url(resource_type, params)?;
            let relative = format!("{resource_type}?{}", url.query().unwrap_or_default());
            entries.push(json!({ "request": { "method": "GET", "url": relative } }));
        }
        let bundle = json!({ "resourceType": "Bundle", "type": "batch", "entry": entries });
        // Only reads inside: safe to send again.
        let answer = self
            .send_for_bytes(
                Method::POST,
                "",
                Some(&bundle),
                Idempotency::Idempotent,
                None,
            )
            .await?;
        let malformed = |detail: String| FhirError::Malformed {
            url: self.base.clone(),
            detail,
        };
        let answer: BatchAnswer =
            serde_json::from_slice(&answer).map_err(|e| malformed(e.to_string()))?;
        if answer.resource_type.as_deref() != Some("Bundle") {
            return Err(malformed(
                "a batch answered with something other than a Bundle".into(),
            ));
        }
        let Some(answered) = answer.entry else {
            return Err(malformed("the batch-response has no entries".into()));
        };
        if answered.len() != searches.len() {
            return Err(malformed(
                "the batch-response has not one entry per search".into(),
            ));
        }
        let mut pages = Vec::with_capacity(searches.len());
        for ((resource_type, _), entry) in searches.iter().zip(answered) {
            let status = entry
                .response
                .as_ref()
                .and_then(|r| r.status.as_deref())
                .and_then(|s| s.split_whitespace().next())
                .and_then(|code| code.parse::<u16>().ok())
                .unwrap_or(0);
            let page = entry
                .resource
                .map(RawValue::get)
                .filter(|page| is_bundle_text(page));
            match page {
                Some(page) if (200..300).contains(&status) => pages.push(page.to_string()),
                _ => {
                    return Err(FhirError::Status {
                        method: "GET (in a batch)".into(),
                        url: format!("{}/{resource_type}", self.base),
                        status,
                        detail: "a search in the batch failed".into(),
                    })
                }
            }
        }
        Ok(pages)
    }
}
