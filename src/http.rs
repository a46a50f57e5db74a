//! The HTTP surface (actix-web): the Subscription notification endpoint, health,
//! readiness and metrics. Thin: authenticate, reduce, enqueue, answer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::Mutex;

use crate::config::Secret;
use crate::fhir::client::Idempotency;
use crate::intake::notification::reduce;
use crate::metrics::Metrics;
use crate::queue::WorkQueue;
use crate::work::WorkItem;

/// How a notification proves it comes from the EHR.
#[derive(Clone, Default)]
pub struct NotifyAuth {
    pub token: Option<Secret>,
    pub header: String,
    pub hmac_secret: Option<Secret>,
    pub hmac_header: String,
    pub allow_unauthenticated: bool,
}

/// Compares without leaking where the first difference is.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl NotifyAuth {
    fn accepts(&self, request: &HttpRequest, body: &[u8]) -> bool {
        let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok());
        self.accepts_parts(
            header(self.header.as_str()),
            request.query_string(),
            header(self.hmac_header.as_str()),
            body,
        )
    }

    /// The decision on what arrived: the token header's value, the query string, the
    /// signature header's value and the body (pure, so it can be fuzzed).
    pub fn accepts_parts(
        &self,
        token_header: Option<&str>,
        query: &str,
        signature: Option<&str>,
        body: &[u8],
    ) -> bool {
        // An empty token would let anyone in (`?token=`): it authenticates nothing.
        if let Some(token) = self.token.as_ref().filter(|t| !t.expose().is_empty()) {
            let from_header =
                token_header.map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim().to_string());
            // EHRs that cannot send a header put it in the endpoint URL.
            let from_query = web::Query::<HashMap<String, String>>::from_query(query)
                .ok()
                .and_then(|q| q.get("token").cloned());
            if from_header
                .into_iter()
                .chain(from_query)
                .any(|given| same(given.as_bytes(), token.expose().as_bytes()))
            {
                return true;
            }
        }
        if let Some(secret) = self.hmac_secret.as_ref().filter(|s| !s.expose().is_empty()) {
            if let Some(hex) = signature.map(|s| s.trim_start_matches("sha256=")) {
                if let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) {
                    mac.update(body);
                    let expected: String = mac
                        .finalize()
                        .into_bytes()
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    if same(expected.as_bytes(), hex.to_ascii_lowercase().as_bytes()) {
                        return true;
                    }
                }
            }
        }
        self.token.is_none() && self.hmac_secret.is_none() && self.allow_unauthenticated
    }
}

/// Is the EHR reachable? Cached briefly so probes do not hammer it.
pub struct EhrProbe {
    ehr: Arc<crate::ehr::Ehr>,
    last: Mutex<Option<(Instant, bool)>>,
    /// Whether `/readyz` also lists the service's Subscriptions that are not active.
    watch_subscriptions: bool,
    /// The last look at them: when, and each one not active (`Subscription/id: status`),
    /// or `None` when the EHR did not answer (cached too, so a slow EHR costs one
    /// short wait a minute, not one per probe).
    subscriptions: Mutex<Option<(Instant, Option<Vec<String>>)>>,
}

impl EhrProbe {
    pub fn new(ehr: Arc<crate::ehr::Ehr>, watch_subscriptions: bool) -> Self {
        Self {
            ehr,
            last: Mutex::new(None),
            watch_subscriptions,
            subscriptions: Mutex::new(None),
        }
    }

    /// The service's Subscriptions on the EHR that are not `active` (looked at most
    /// once a minute); `None` when not watched or the EHR did not answer.
    async fn inactive_subscriptions(&self) -> Option<Vec<String>> {
        if !self.watch_subscriptions {
            return None;
        }
        let mut cached = self.subscriptions.lock().await;
        if let Some((at, inactive)) = cached.as_ref() {
            if at.elapsed() < Duration::from_secs(60) {
                return inactive.clone();
            }
        }
        // Short: with the reachability check (3 s) it stays within the probe's 5 s.
        let found = tokio::time::timeout(
            Duration::from_millis(1500),
            crate::intake::subscriptions::current(&self.ehr.client),
        )
        .await
        .ok()
        .and_then(Result::ok);
        let inactive: Option<Vec<String>> = found.map(|found| {
            found
                .iter()
                .filter(|s| {
                    !matches!(
                        s.get("status").and_then(serde_json::Value::as_str),
                        Some("active" | "off")
                    )
                })
                .map(|s| {
                    let field = |name: &str| {
                        s.get(name)
                            .and_then(serde_json::Value::as_str)
                            .unwrap_or("?")
                            .to_string()
                    };
                    format!("Subscription/{}: {}", field("id"), field("status"))
                })
                .collect()
        });
        *cached = Some((Instant::now(), inactive.clone()));
        inactive
    }

    async fn reachable(&self) -> bool {
        let mut last = self.last.lock().await;
        if let Some((at, ok)) = *last {
            if at.elapsed() < Duration::from_secs(10) {
                return ok;
            }
        }
        // Answer within the readiness probe's timeout even when the EHR hangs.
        let ok = tokio::time::timeout(
            Duration::from_secs(3),
            self.ehr
                .client
                .send(reqwest::Method::GET, "metadata", None, Idempotency::Once),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        *last = Some((Instant::now(), ok));
        ok
    }
}

pub struct AppState {
    pub queue: Arc<WorkQueue>,
    pub metrics: Arc<Metrics>,
    pub auth: NotifyAuth,
    pub ehr: Option<EhrProbe>,
    /// The codes the engine reads: a notification's full resource outside them (a
    /// vital sign) is dropped at intake. `None` keeps everything.
    pub relevance: Option<crate::fhir::read::Relevance>,
}

pub fn configure(config: &mut web::ServiceConfig, body_limit: usize) {
    config
        .app_data(web::PayloadConfig::new(body_limit))
        .route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz))
        .route("/metrics", web::get().to(metrics))
        .route("/notify", web::post().to(notify))
        .route("/notify/{resource_type}/{id}", web::put().to(notify_put))
        .route("/notify/{resource_type}/{id}", web::post().to(notify_put));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok")
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let broker = state.queue.is_ready();
    let ehr = match &state.ehr {
        Some(probe) => probe.reachable().await,
        None => true,
    };
    let status = if broker && ehr {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let mut body = serde_json::json!({ "broker": broker, "ehr": ehr });
    // Reported, not a condition of readiness: the EHR's handshake must reach a
    // ready pod before a Subscription can turn active.
    if let Some(inactive) = match &state.ehr {
        Some(probe) if ehr => probe.inactive_subscriptions().await,
        _ => None,
    } {
        body["subscriptions_not_active"] = serde_json::json!(inactive);
    }
    HttpResponse::build(status).json(body)
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.metrics.render())
}

async fn notify(
    request: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    handle(&request, &body, None, &state).await
}

async fn notify_put(
    request: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> HttpResponse {
    let (kind, id) = path.into_inner();
    handle(&request, &body, Some((&kind, &id)), &state).await
}

async fn handle(
    request: &HttpRequest,
    body: &[u8],
    path: Option<(&str, &str)>,
    state: &AppState,
) -> HttpResponse {
    let count = |shape: &str, outcome: &str| {
        state
            .metrics
            .notifications
            .with_label_values(&[shape, outcome])
            .inc()
    };
    if !state.auth.accepts(request, body) {
        count("unknown", "unauthorized");
        return HttpResponse::Unauthorized().finish();
    }
    let reduced = match reduce(body, path, state.relevance.as_ref()) {
        Ok(r) => r,
        Err(e) => {
            count("unknown", "rejected");
            tracing::warn!(error = %e, "notification rejected");
            return HttpResponse::BadRequest()
                .content_type("text/plain")
                .body(e.to_string());
        }
    };
    let shape = reduced.shape.label();
    let mut items: Vec<WorkItem> = reduced
        .targets
        .iter()
        .cloned()
        .map(WorkItem::from)
        .collect();
    // Gaps in the event counter are judged in one place for all replicas: the
    // count goes to the subscription's shard (see `WorkItem::EventCount`).
    // Both the count since the subscription started and the events' own numbers are
    // read: either alone finds a lost notification (the count is optional in the
    // Backport IG; a notification may carry several events).
    let counted = reduced.events_since_start.is_some() || !reduced.event_numbers.is_empty();
    if let (Some(subscription), true) = (&reduced.subscription, counted) {
        if reduced.notification_type.as_deref() != Some("handshake") {
            items.push(WorkItem::EventCount {
                subscription: subscription.clone(),
                events_since_start: reduced.events_since_start,
                event_numbers: reduced.event_numbers.clone(),
            });
        }
    }
    for item in &items {
        if let Err(e) = state.queue.enqueue(item).await {
            count(shape, "unavailable");
            tracing::error!(error = %e, "could not queue a notification: answering 503 so the EHR retries");
            return HttpResponse::ServiceUnavailable().finish();
        }
    }
    count(
        shape,
        if !reduced.targets.is_empty() {
            "queued"
        } else if reduced.ignored_irrelevant > 0 {
            "irrelevant"
        } else {
            "ignored"
        },
    );
    tracing::info!(
        shape,
        queued = reduced.targets.len(),
        ignored_own = reduced.ignored_own,
        ignored_irrelevant = reduced.ignored_irrelevant,
        kind = reduced.notification_type.as_deref().unwrap_or("-"),
        "notification"
    );
    HttpResponse::Ok().json(serde_json::json!({ "queued": reduced.targets.len() }))
}
