//! CDS Hooks 2.0: the engine's conclusions inside the EHR, while a chart opens
//! (`patient-view`) and while an order is drafted and signed (`order-select`,
//! `order-sign`, one service id so the sign-time answer replaces the select-time one).
//!
//! The arrows, one module each:
//! - [`trust`]: the caller's JWT (who may call, with which keys);
//! - [`request`]: the hook call, read leniently;
//! - [`prefetch`]: the record, from prefetch or the call's FHIR server;
//! - the engine: [`crate::engine::Engine::assess`] (patient-view) or
//!   [`crate::engine::Engine::review_drafts`] (draft orders as hypothetical trials
//!   from today);
//! - [`cards`]: the conclusions as cards;
//! - [`routes`]: HTTP (discovery, the services, feedback, CORS, the deadline).

use std::sync::Arc;

use serde_json::{json, Value};
use time::Date;

use crate::config::{CdsClient, CdsSettings};
use crate::ehr::Ehr;
use crate::fhir::read::ResourcePool;
use crate::metrics::Metrics;
use crate::queue::WorkQueue;
use cards::{CardLinks, DraftOrder};
use request::{HookRequest, RequestError};

pub mod cards;
pub mod prefetch;
pub mod request;
pub mod routes;
pub mod trust;

/// Makes the link to a patient's page (`Patient/id` in, a URL out).
pub type PageLink = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// The service ids.
pub const PATIENT_VIEW: &str = "trd-patient-view";
pub const PRESCRIBING: &str = "trd-prescribing";

/// Everything the CDS routes share.
pub struct Cds {
    pub settings: CdsSettings,
    pub trust: trust::Trust,
    /// Knowledge, policy and options (and the client whose connection pool the
    /// fallback fetches share).
    pub ehr: Arc<Ehr>,
    pub metrics: Arc<Metrics>,
    /// Feedback events go to the events exchange.
    pub queue: Option<Arc<WorkQueue>>,
    /// The service's public URL (`http.public_base_url`), for `aud` and links.
    pub public_base_url: Option<String>,
    /// Makes a signed link to the patient's page, when pages are served.
    pub page_link: Option<PageLink>,
}

/// Why a hook call has no cards to give.
#[derive(Debug, thiserror::Error)]
pub enum CdsError {
    #[error("no service `{0}`")]
    UnknownService(String),
    #[error("{0}")]
    BadRequest(String),
    /// 412: the data cannot be had.
    #[error("{0}")]
    Unobtainable(String),
}

impl CdsError {
    pub fn label(&self) -> &'static str {
        match self {
            CdsError::UnknownService(_) => "unknown-service",
            CdsError::BadRequest(_) => "bad-request",
            CdsError::Unobtainable(_) => "precondition-failed",
        }
    }
}

/// The discovery document.
pub fn discovery(ehr: &Ehr) -> Value {
    let prefetch = Value::Object(prefetch::templates(&ehr.engine.relevance));
    let usage = "Send a JWT (ES384 or RS384) on every call; prefetch what you can, else fhirServer with fhirAuthorization (the server must be on this client's allow-list).";
    let service = |hook: &str, id: &str, title: &str, description: &str| {
        json!({
            "hook": hook,
            "id": id,
            "title": title,
            "description": description,
            "prefetch": prefetch,
            "usageRequirements": usage,
        })
    };
    json!({ "services": [
        service("patient-view", PATIENT_VIEW, "Treatment-resistant depression review",
            "When a chart opens: TRD or at-risk status with the trials behind it, a current trial that is not adequate, pseudo-resistance findings and missing work-up, and safety signals. No card when nothing is actionable."),
        service("order-select", PRESCRIBING, "Antidepressant prescribing check",
            "While an antidepressant or augmentation order is drafted: an agent that already failed, a further agent after TRD, a dose below the minimum adequate dose, earlier trials that were not adequate, bipolar disorder without a mood stabiliser, and safety signals."),
        service("order-sign", PRESCRIBING, "Antidepressant prescribing check",
            "At signing, the same checks as order-select (the same service id, so this answer replaces the earlier one)."),
    ]})
}

impl Cds {
    /// Answers one hook call for `service` at `as_of`, from the body as sent.
    pub async fn call(
        &self,
        service: &str,
        body: &[u8],
        client: &CdsClient,
        as_of: Date,
    ) -> Result<Value, CdsError> {
        self.answer(service, request::parse(body), client, as_of)
            .await
    }

    /// Answers a hook call whose body the caller has parsed (the route, which also
    /// logs its hookInstance): an unknown service is refused before a bad body.
    pub async fn answer(
        &self,
        service: &str,
        request: Result<HookRequest, RequestError>,
        client: &CdsClient,
        as_of: Date,
    ) -> Result<Value, CdsError> {
        let hooks: &[&str] = match service {
            PATIENT_VIEW => &["patient-view"],
            PRESCRIBING => &["order-select", "order-sign"],
            other => return Err(CdsError::UnknownService(other.to_string())),
        };
        let request = request.map_err(|e| CdsError::BadRequest(e.to_string()))?;
        if !hooks.contains(&request.hook.as_str()) {
            return Err(CdsError::BadRequest(format!(
                "service {service} answers {}, not {}",
                hooks.join(", "),
                request.hook
            )));
        }
        if request.user_is_patient {
            return Ok(json!({ "cards": [] })); // patient portals: no clinician cards
        }
        let drafts = self.drafts_of(&request);
        let fetched = prefetch::gather(
            &request,
            &drafts
                .iter()
                .map(|d| d.resource.clone())
                .collect::<Vec<_>>(),
            client,
            &self.ehr.client,
            &self.ehr.engine.relevance,
            self.ehr.look_back_months,
            as_of,
            &self.metrics,
        )
        .await
        .map_err(|e| CdsError::Unobtainable(e.to_string()))?;
        let cards = self.cards(&request, &drafts, &fetched.pool, as_of);
        for card in &cards {
            if let Some(concern) = card.pointer("/source/topic/code").and_then(Value::as_str) {
                self.metrics.cds_cards.with_label_values(&[concern]).inc();
            }
        }
        Ok(json!({ "cards": cards }))
    }

    /// The draft orders to review: order-select's selections when it names them,
    /// else every draft; each read under an id of its own (`cds-draft-N`), its
    /// subject set to the patient.
    fn drafts_of(&self, request: &HookRequest) -> Vec<DraftOrder> {
        if request.hook == "patient-view" {
            return Vec::new();
        }
        let selected = |d: &Value| {
            request.hook != "order-select"
                || request.selections.is_empty()
                || d.get("id").and_then(Value::as_str).is_some_and(|id| {
                    request
                        .selections
                        .iter()
                        .any(|s| s.rsplit('/').next() == Some(id))
                })
        };
        request
            .draft_orders
            .iter()
            .filter(|d| selected(d))
            .enumerate()
            .map(|(n, d)| {
                let mut read = d.clone();
                read["id"] = json!(format!("cds-draft-{n}"));
                read["subject"] = json!({ "reference": request.patient });
                DraftOrder {
                    source: format!("MedicationRequest/cds-draft-{n}"),
                    resource: read,
                    sent: d.clone(),
                }
            })
            .collect()
    }

    /// The pure part: the record, the engine, the cards.
    fn cards(
        &self,
        request: &HookRequest,
        drafts: &[DraftOrder],
        pool: &ResourcePool,
        as_of: Date,
    ) -> Vec<Value> {
        let ehr = &self.ehr;
        let mut record = pool.record_for(&request.patient);
        let draft_sources: Vec<&str> = drafts.iter().map(|d| d.source.as_str()).collect();
        let (draft_orders, orders) = record
            .orders
            .drain(..)
            .partition(|o| draft_sources.contains(&o.source.as_str()));
        record.orders = orders;
        let links = CardLinks {
            patient_page: self.page_link.as_ref().and_then(|f| f(&request.patient)),
            rules: self
                .public_base_url
                .as_ref()
                .map(|base| format!("{}/cds-services/rules", base.trim_end_matches('/'))),
        };
        if request.hook == "patient-view" {
            let assessment = ehr.engine.assess(&record, as_of);
            return cards::patient_view_cards(
                &assessment,
                &ehr.engine.knowledge,
                self.settings.max_cards,
                &links,
            );
        }
        let review = ehr.engine.review_drafts(&record, &draft_orders, as_of);
        cards::order_cards(&review, drafts, self.settings.max_cards, &links)
    }
}
