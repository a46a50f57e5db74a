//! Searching: one search page by page (following `next` links on the EHR's origin
//! only, never in a loop, at most `fhir.max_pages`), or all pages at once for small
//! answers.

use std::collections::HashSet;

use reqwest::Method;
use serde_json::Value;

use super::{FhirClient, FhirError, Idempotency};

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

    /// A search, each page handed to `on_page` as it arrives (so one page at a time
    /// is held, not the whole answer); follows `next` links (which must not repeat).
    /// Returns the number of pages fetched.
    pub async fn search_pages(
        &self,
        resource_type: &str,
        params: &[(&str, String)],
        mut on_page: impl FnMut(Value) -> Result<(), FhirError>,
    ) -> Result<usize, FhirError> {
        let mut query: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        query.push(("_count".into(), self.page_size.to_string()));
        let first =
            reqwest::Url::parse_with_params(&self.url(resource_type)?, &query).map_err(|e| {
                FhirError::Malformed {
                    url: resource_type.into(),
                    detail: e.to_string(),
                }
            })?;
        let mut next = Some(first.to_string());
        let mut seen = HashSet::new();
        let mut pages: usize = 0;
        while let Some(url) = next.take() {
            if !seen.insert(url.clone()) {
                return Err(FhirError::PagingLoop { url });
            }
            if pages as u64 >= u64::from(self.max_pages) {
                return Err(FhirError::TooManyPages {
                    url,
                    pages: self.max_pages,
                });
            }
            let page = self
                .send(Method::GET, &url, None, Idempotency::Idempotent)
                .await?;
            if page.get("resourceType").and_then(Value::as_str) != Some("Bundle") {
                return Err(FhirError::Malformed {
                    url,
                    detail: "a search answered with something other than a Bundle".into(),
                });
            }
            next = page
                .get("link")
                .and_then(Value::as_array)
                .and_then(|links| {
                    links
                        .iter()
                        .find(|l| l.get("relation").and_then(Value::as_str) == Some("next"))
                })
                .and_then(|l| l.get("url").and_then(Value::as_str))
                .map(str::to_string);
            pages += 1;
            on_page(page)?;
        }
        Ok(pages)
    }
}
