//! The record of a hook call: from prefetch where the EHR gave it, else fetched from
//! the call's `fhirServer` (allow-listed for the client) with its access token.
//!
//! Each prefetch key is one of the gather's searches (`fhir::gather::searches`), so
//! a hook sees the record the service assesses. A key can be present (a Bundle, also
//! paged, or a bare resource), `null` (nothing found), an OperationOutcome or
//! anything else unusable (the prefetch failed), or missing (not honoured). Present
//! and `null` keys cost nothing; the others are fetched, `next` links followed on the
//! same server only. With full prefetch there is no network I/O at all.

use serde_json::{json, Map, Value};
use time::Date;

use super::request::HookRequest;
use crate::clinical::record::PatientRecord;
use crate::config::CdsClient;
use crate::fhir::client::Auth;
use crate::fhir::client::{FhirClient, FhirError};
use crate::fhir::gather::searches;
use crate::fhir::read::{Relevance, ResourcePool};
use crate::metrics::Metrics;
use crate::resource_types::{ReadType, READ_TYPES};

/// The prefetch templates the discovery document offers: reads and searches by
/// patient and token only (the spec's recommended subset); `_include` of the
/// Medications is a bonus an EHR may ignore (the service then reads them itself).
pub fn templates(relevance: &Relevance) -> Map<String, Value> {
    let p = "patient={{context.patientId}}";
    READ_TYPES
        .iter()
        .map(|kind| {
            let name = kind.name;
            let template = match name {
                "Patient" => "Patient/{{context.patientId}}".to_string(),
                "Observation" => {
                    format!("Observation?{p}&code={}", relevance.observation_search())
                }
                _ if kind.names_medication => format!("{name}?{p}&_include={name}:medication"),
                _ => format!("{name}?{p}"),
            };
            (kind.prefetch_key.to_string(), Value::String(template))
        })
        .collect()
}

#[derive(Debug, thiserror::Error)]
pub enum PrefetchError {
    /// 412: what is needed is neither prefetched nor fetchable.
    #[error("{0}")]
    Unobtainable(String),
}

/// What one key's prefetch amounts to.
enum KeyState<'a> {
    /// Complete: read it.
    Complete(&'a Value),
    /// Paged: read it, then follow its `next` links on the server.
    Paged(&'a Value),
    /// Nothing found.
    Empty,
    /// Missing or failed: fetch the search.
    Fetch(&'static str),
}

fn state_of<'a>(value: Option<&'a Value>, kind: &'static str) -> (KeyState<'a>, &'static str) {
    match value {
        None => (KeyState::Fetch(kind), "missing"),
        Some(Value::Null) => (KeyState::Empty, "null"),
        Some(v) => match v.get("resourceType").and_then(Value::as_str) {
            Some("OperationOutcome") => (KeyState::Fetch(kind), "error"),
            Some("Bundle") if has_next(v) => (KeyState::Paged(v), "paged"),
            Some(_) => (KeyState::Complete(v), "hit"),
            // An HTML error page, a string: the prefetch failed.
            None => (KeyState::Fetch(kind), "error"),
        },
    }
}

/// A prefetched or fetched value into the pool as it is, never turned back into
/// text: a Bundle, a bare resource, or an array of either (lenient, as EHRs send
/// them). An unreadable resource becomes a note on its patient.
fn add_prefetched(pool: &mut ResourcePool, value: &Value, origin: &str) {
    match value {
        Value::Array(items) => {
            for item in items {
                add_prefetched(pool, item, origin);
            }
        }
        Value::Object(_) => pool.add_value(value, origin),
        _ => {}
    }
}

fn has_next(bundle: &Value) -> bool {
    bundle
        .get("link")
        .and_then(Value::as_array)
        .is_some_and(|links| {
            links
                .iter()
                .any(|l| l.get("relation") == Some(&json!("next")))
        })
}

/// The call's FHIR server, if the client may send it; the client's token with it.
fn server_client(
    request: &HookRequest,
    client: &CdsClient,
    template: &FhirClient,
) -> Result<FhirClient, PrefetchError> {
    let Some(server) = &request.fhir_server else {
        return Err(PrefetchError::Unobtainable(
            "prefetch incomplete and no fhirServer to fetch from".into(),
        ));
    };
    let allowed = client
        .fhir_servers
        .iter()
        .any(|s| s.trim_end_matches('/') == server);
    if !allowed {
        return Err(PrefetchError::Unobtainable(
            "prefetch incomplete and the fhirServer is not on this client's allow-list".into(),
        ));
    }
    let auth = match &request.access_token {
        Some(token) => Auth::Bearer(token.clone()),
        None => Auth::None, // an open server, as the public sandbox's
    };
    Ok(template.for_server(server, auth))
}

/// The hook's resources in a pool (the record, and the draft orders beside it).
pub struct Fetched {
    pub pool: ResourcePool,
    /// Requests sent to the fhirServer.
    pub requests: usize,
}

/// `drafts`: the draft orders, read into the same pool (their Medications resolve
/// like the record's).
#[allow(clippy::too_many_arguments)]
pub async fn gather(
    request: &HookRequest,
    drafts: &[Value],
    client: &CdsClient,
    template: &FhirClient,
    codes: &Relevance,
    look_back_months: u32,
    as_of: Date,
    metrics: &Metrics,
) -> Result<Fetched, PrefetchError> {
    let mut pool = ResourcePool::new(codes.clone());
    for draft in drafts {
        add_prefetched(&mut pool, draft, "draftOrders");
    }
    let mut to_fetch: Vec<&'static str> = Vec::new();
    let mut paged: Vec<Value> = Vec::new();
    for ReadType {
        name: kind,
        prefetch_key: key,
        ..
    } in READ_TYPES
    {
        let (state, label) = state_of(request.prefetch.get(*key), kind);
        metrics.cds_prefetch.with_label_values(&[key, label]).inc();
        match state {
            KeyState::Complete(value) => add_prefetched(&mut pool, value, key),
            KeyState::Paged(first) => paged.push(first.clone()),
            KeyState::Empty => {}
            KeyState::Fetch(kind) => to_fetch.push(kind),
        }
    }

    let mut requests = 0;
    if !to_fetch.is_empty() || !paged.is_empty() {
        let server = server_client(request, client, template)?;
        let wanted = searches(&request.patient, codes, look_back_months, as_of);
        let fetches = wanted
            .iter()
            .filter(|(kind, _)| to_fetch.contains(kind))
            .map(|(kind, params)| {
                let server = &server;
                async move {
                    let mut pages = Vec::new();
                    let n = server
                        .search_pages(kind, params, |page| {
                            pages.push(page);
                            Ok(())
                        })
                        .await?;
                    Ok::<_, FhirError>((n, pages))
                }
            });
        let follows = paged.into_iter().map(|first| {
            let server = &server;
            async move {
                let mut pages = Vec::new();
                let n = server
                    .follow_pages(first, |page| {
                        pages.push(page);
                        Ok(())
                    })
                    .await?;
                Ok::<_, FhirError>((n, pages))
            }
        });
        let (fetched, followed) = futures_util::future::join(
            futures_util::future::join_all(fetches),
            futures_util::future::join_all(follows),
        )
        .await;
        for result in fetched.into_iter().chain(followed) {
            let (n, pages) = result.map_err(unobtainable)?;
            requests += n;
            for page in &pages {
                add_prefetched(&mut pool, page, "fhirServer");
            }
        }
        metrics.cds_fallback_fetches.inc_by(requests as u64);
    }

    // Medications the orders name but neither prefetch nor the searches carried.
    let unresolved = unresolved_medications(&pool.record_for(&request.patient));
    if !unresolved.is_empty() {
        if let Ok(server) = server_client(request, client, template) {
            let ids: Vec<&str> = unresolved
                .iter()
                .filter_map(|r| r.strip_prefix("Medication/"))
                .collect();
            if !ids.is_empty() {
                let mut pages = Vec::new();
                requests += server
                    .search_pages("Medication", &[("_id", ids.join(","))], |page| {
                        pages.push(page);
                        Ok(())
                    })
                    .await
                    .map_err(unobtainable)?;
                metrics.cds_fallback_fetches.inc();
                for page in &pages {
                    add_prefetched(&mut pool, page, "fhirServer");
                }
            }
        }
    }
    Ok(Fetched { pool, requests })
}

/// `Medication/{id}` references of the record's medications that nothing resolved.
fn unresolved_medications(record: &PatientRecord) -> Vec<String> {
    let mut out: Vec<String> = record
        .orders
        .iter()
        .map(|o| &o.medication)
        .chain(record.dispenses.iter().map(|d| &d.medication))
        .chain(record.statements.iter().map(|s| &s.medication))
        .chain(record.administrations.iter().map(|a| &a.medication))
        .filter_map(|m| m.unresolved_reference.clone())
        .filter(|r| r.starts_with("Medication/"))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// The server did not give what was needed: 412, naming the failure without the
/// server's text.
fn unobtainable(e: FhirError) -> PrefetchError {
    PrefetchError::Unobtainable(format!("fetching from the fhirServer failed: {e}"))
}
