//! The CDS Hooks HTTP surface: `GET /cds-services` (discovery), `POST
//! /cds-services/{id}` (a hook call), `POST /cds-services/{id}/feedback`, and `GET
//! /cds-services/rules` (what each card's rule is, linked from the cards).
//!
//! Every call but the rules page carries a JWT ([`super::trust`]): 401 with no
//! detail otherwise. CORS on every route, preflight and errors included (browser
//! clients such as the public sandbox need it). A hook call past the deadline answers
//! `{"cards": []}`. Errors are OperationOutcomes, never quoting the record.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_cors::Cors;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::{Cds, CdsError};
use crate::config::CdsClient;

/// Feedback already counted: (service, card, outcome, time) -> when seen.
#[derive(Default)]
pub struct FeedbackSeen(Mutex<HashMap<String, Instant>>);

pub struct CdsState {
    pub cds: Arc<Cds>,
    pub feedback_seen: FeedbackSeen,
}

/// Registers the routes under `/cds-services`, with CORS.
pub fn configure(config: &mut web::ServiceConfig) {
    let cors = Cors::default()
        .allow_any_origin()
        .allowed_methods(vec!["GET", "POST", "OPTIONS"])
        .allowed_headers(vec![
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
        ])
        .max_age(86_400);
    config.service(
        web::scope("/cds-services")
            .wrap(cors)
            .route("", web::get().to(discovery))
            .route("/rules", web::get().to(rules))
            .route("/{id}", web::post().to(call))
            .route("/{id}/feedback", web::post().to(feedback)),
    );
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The exact URL called: the configured public base URL (behind an ingress the
/// request's own host is the pod's), else the request's scheme and host.
fn endpoint(request: &HttpRequest, cds: &Cds) -> String {
    let base = cds.public_base_url.clone().unwrap_or_else(|| {
        let info = request.connection_info();
        format!("{}://{}", info.scheme(), info.host())
    });
    format!("{}{}", base.trim_end_matches('/'), request.path())
}

fn outcome(status: actix_web::http::StatusCode, code: &str, text: &str) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "resourceType": "OperationOutcome",
        "issue": [{ "severity": "error", "code": code, "diagnostics": text }],
    }))
}

/// The caller's client, or the 401 to answer (counted by rule, never logged with
/// the token).
async fn trusted<'a>(
    request: &HttpRequest,
    cds: &'a Cds,
    service: &str,
) -> Result<&'a CdsClient, HttpResponse> {
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match cds
        .trust
        .verify(authorization, &endpoint(request, cds), now_secs())
        .await
    {
        Ok(client) => Ok(client),
        Err(refusal) => {
            cds.metrics
                .cds_requests
                .with_label_values(&[service, &format!("unauthorized-{}", refusal.label())])
                .inc();
            tracing::warn!(service, reason = refusal.label(), "CDS call refused");
            Err(HttpResponse::Unauthorized().finish())
        }
    }
}

async fn discovery(request: HttpRequest, state: web::Data<CdsState>) -> HttpResponse {
    let cds = &state.cds;
    if let Err(refused) = trusted(&request, cds, "discovery").await {
        return refused;
    }
    cds.metrics
        .cds_requests
        .with_label_values(&["discovery", "ok"])
        .inc();
    HttpResponse::Ok().json(super::discovery(&cds.ehr))
}

async fn call(
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<CdsState>,
) -> HttpResponse {
    let cds = &state.cds;
    let service = path.into_inner();
    let label = match service.as_str() {
        super::PATIENT_VIEW | super::PRESCRIBING => service.as_str(),
        _ => "unknown",
    };
    let client = match trusted(&request, cds, label).await {
        Ok(client) => client,
        Err(refused) => return refused,
    };
    let started = Instant::now();
    let as_of = time::OffsetDateTime::now_utc().date();
    let deadline = Duration::from_millis(cds.settings.deadline_ms);
    let parsed = super::request::parse(&body);
    let hook_instance = parsed
        .as_ref()
        .map(|r| r.hook_instance.clone())
        .unwrap_or_default();
    let answer = tokio::time::timeout(deadline, cds.answer(&service, parsed, client, as_of)).await;
    cds.metrics
        .cds_seconds
        .with_label_values(&[label])
        .observe(started.elapsed().as_secs_f64());
    let count = |outcome: &str| {
        cds.metrics
            .cds_requests
            .with_label_values(&[label, outcome])
            .inc()
    };
    match answer {
        Err(_) => {
            count("deadline");
            tracing::warn!(
                service = label,
                hook_instance,
                deadline_ms = cds.settings.deadline_ms,
                "CDS deadline passed: no cards"
            );
            HttpResponse::Ok().json(json!({ "cards": [] }))
        }
        Ok(Ok(response)) => {
            count("ok");
            let cards = response["cards"].as_array().map_or(0, Vec::len);
            tracing::info!(
                service = label,
                hook_instance,
                cards,
                ms = started.elapsed().as_millis() as u64,
                "CDS call"
            );
            HttpResponse::Ok().json(response)
        }
        Ok(Err(e)) => {
            count(e.label());
            tracing::warn!(service = label, hook_instance, error = %e, "CDS call not answered");
            let (status, code) = match e {
                CdsError::UnknownService(_) => {
                    (actix_web::http::StatusCode::NOT_FOUND, "not-found")
                }
                CdsError::BadRequest(_) => (actix_web::http::StatusCode::BAD_REQUEST, "invalid"),
                CdsError::Unobtainable(_) => (
                    actix_web::http::StatusCode::PRECONDITION_FAILED,
                    "incomplete",
                ),
            };
            outcome(status, code, &e.to_string())
        }
    }
}

/// Clinicians' answers to the cards: counted once each (feedback may be sent again),
/// and published as `cds.feedback.{outcome}` events.
async fn feedback(
    request: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<CdsState>,
) -> HttpResponse {
    let cds = &state.cds;
    let service = path.into_inner();
    let label = match service.as_str() {
        super::PATIENT_VIEW | super::PRESCRIBING => service.as_str(),
        _ => "unknown",
    };
    if let Err(refused) = trusted(&request, cds, "feedback").await {
        return refused;
    }
    if label == "unknown" {
        return outcome(
            actix_web::http::StatusCode::NOT_FOUND,
            "not-found",
            "no such service",
        );
    }
    let Ok(parsed) = serde_json::from_slice::<Value>(&body) else {
        return outcome(
            actix_web::http::StatusCode::BAD_REQUEST,
            "invalid",
            "feedback is not JSON",
        );
    };
    let items = match parsed.get("feedback") {
        Some(Value::Array(items)) => items.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => {
            return outcome(
                actix_web::http::StatusCode::BAD_REQUEST,
                "invalid",
                "missing `feedback`",
            )
        }
    };
    for item in &items {
        let text = |p: &str| item.pointer(p).and_then(Value::as_str).unwrap_or("");
        let (card, result) = (text("/card"), text("/outcome"));
        if card.is_empty() || !matches!(result, "accepted" | "overridden") {
            return outcome(
                actix_web::http::StatusCode::BAD_REQUEST,
                "invalid",
                "each feedback needs `card` and `outcome` (accepted or overridden)",
            );
        }
        // Reasons of our own CodeSystem by code; a client's own codes as "other"
        // (a metric label must not take any value a client sends).
        let reason = match (
            text("/overrideReason/reason/system"),
            text("/overrideReason/reason/code"),
        ) {
            (_, "") if result == "overridden" => "none",
            (_, "") => "-",
            (super::cards::OVERRIDE_SYSTEM, code) => super::cards::OVERRIDES
                .iter()
                .map(|(known, _)| *known)
                .find(|known| *known == code)
                .unwrap_or("other"),
            _ => "other",
        };
        let key = format!("{label}|{card}|{result}|{}", text("/outcomeTimestamp"));
        if !state.feedback_seen.first_time(&key).await {
            continue;
        }
        cds.metrics
            .cds_feedback
            .with_label_values(&[label, result, reason])
            .inc();
        if let Some(queue) = &cds.queue {
            let event = json!({
                "type": "cds.feedback",
                "service": label,
                "card": card,
                "outcome": result,
                "overrideReason": reason,
                "acceptedSuggestions": item.get("acceptedSuggestions").cloned().unwrap_or(json!([])),
                "outcomeTimestamp": text("/outcomeTimestamp"),
            });
            let id = crate::cds::cards::stable_uuid(&[&key]);
            if let Err(e) = queue
                .publish_event(
                    &format!("cds.feedback.{result}"),
                    event.to_string().as_bytes(),
                    &id,
                )
                .await
            {
                tracing::warn!(error = %e, "feedback event not published");
            }
        }
    }
    HttpResponse::Ok().finish()
}

impl FeedbackSeen {
    /// True the first time a key is seen within a day.
    async fn first_time(&self, key: &str) -> bool {
        let mut seen = self.0.lock().await;
        let day = Duration::from_secs(86_400);
        if seen.len() > 50_000 {
            seen.retain(|_, at| at.elapsed() < day);
        }
        match seen.get(key) {
            Some(at) if at.elapsed() < day => false,
            _ => {
                seen.insert(key.to_string(), Instant::now());
                true
            }
        }
    }
}

/// What each card's concern means, from the project's CodeSystem (no PHI: no JWT
/// needed; the cards' `source.url` points here).
async fn rules() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'",
        ))
        .body(super::cards::rules_page())
}
