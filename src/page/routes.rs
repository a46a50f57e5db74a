//! `GET /page/{token}`: a patient's page, behind a signed short-lived link. The page
//! gathers the record with the service's own EHR credentials and is never cached
//! (`no-store`); an expired, altered or foreign link gets 401.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use super::link::PageLinks;
use crate::ehr::Ehr;

pub struct PageState {
    pub links: Arc<PageLinks>,
    pub ehr: Arc<Ehr>,
    /// The Content-Security-Policy header value.
    pub csp: String,
    pub metrics: Arc<crate::metrics::Metrics>,
}

pub fn configure(config: &mut web::ServiceConfig) {
    config.route("/page/{token}", web::get().to(patient_page));
}

/// Headers every answer of this route carries: nothing cached anywhere.
fn private(
    mut response: actix_web::HttpResponseBuilder,
    csp: &str,
) -> actix_web::HttpResponseBuilder {
    response
        .insert_header((header::CACHE_CONTROL, "no-store, private, max-age=0"))
        .insert_header((header::PRAGMA, "no-cache"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::CONTENT_SECURITY_POLICY, csp.to_string()));
    response
}

async fn patient_page(token: web::Path<String>, state: web::Data<PageState>) -> HttpResponse {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let count = |outcome: &str| state.metrics.pages.with_label_values(&[outcome]).inc();
    let Ok(patient) = state.links.patient(&token, now) else {
        count("unauthorized");
        return private(HttpResponse::Unauthorized(), &state.csp).finish();
    };
    let as_of = time::OffsetDateTime::now_utc().date();
    match state.ehr.assess_only(&patient, as_of).await {
        Ok(assessment) => {
            count("ok");
            tracing::info!(%patient, "page served");
            private(HttpResponse::Ok(), &state.csp)
                .content_type("text/html; charset=utf-8")
                .body(super::patient::page(
                    &assessment,
                    &state.ehr.engine.knowledge,
                ))
        }
        Err(e) => {
            count("ehr-error");
            tracing::warn!(%patient, error = %e, "page: the record could not be gathered");
            private(HttpResponse::BadGateway(), &state.csp)
                .content_type("text/plain; charset=utf-8")
                .body("the record could not be read from the EHR; try again")
        }
    }
}
