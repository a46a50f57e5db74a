//! The notification endpoint in-process (actix test service, in-process queue):
//! authentication, every notification shape, size limit, malformed bodies, an
//! unavailable queue, event counts, health and metrics.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{test, web, App};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use trd_sentinel::config::Secret;
use trd_sentinel::http::{configure, AppState, NotifyAuth};
use trd_sentinel::metrics::Metrics;
use trd_sentinel::queue::{LocalQueue, QueueSettings, Rabbit, WorkQueue};
use trd_sentinel::work::WorkItem;

const TOKEN: &str = "s3cret-token";
const LIMIT: usize = 1024 * 1024;

fn state(queue: WorkQueue, hmac: Option<&str>) -> web::Data<AppState> {
    state_with(queue, TOKEN, hmac)
}

fn state_with(queue: WorkQueue, token: &str, hmac: Option<&str>) -> web::Data<AppState> {
    web::Data::new(AppState {
        queue: Arc::new(queue),
        metrics: Arc::new(Metrics::new()),
        auth: NotifyAuth {
            token: Some(Secret::new(token)),
            header: "authorization".into(),
            hmac_secret: hmac.map(Secret::new),
            hmac_header: "x-signature".into(),
            allow_unauthenticated: false,
        },
        ehr: None,
        relevance: None,
    })
}

/// The `x-signature` header value for a body signed with `key`.
fn signature(key: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("key");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn local() -> WorkQueue {
    WorkQueue::Local(Arc::new(LocalQueue::new(Duration::from_millis(10))))
}

async fn queued(state: &web::Data<AppState>) -> Vec<WorkItem> {
    let mut receiver = state.queue.take_local_receiver().await.expect("receiver");
    let mut items = Vec::new();
    while let Ok(job) = receiver.try_recv() {
        items.push(job.item);
    }
    items
}

fn order(patient: &str) -> serde_json::Value {
    json!({ "resourceType": "MedicationRequest", "id": "m1", "status": "active", "intent": "order", "subject": { "reference": patient } })
}

fn notification(kind: &str, events: u64, entries: Vec<serde_json::Value>) -> serde_json::Value {
    let status = json!({ "resourceType": "Parameters", "parameter": [
        { "name": "subscription", "valueReference": { "reference": "Subscription/s1" } },
        { "name": "type", "valueCode": kind },
        { "name": "events-since-subscription-start", "valueString": events.to_string() } ] });
    let mut all = vec![json!({ "resource": status })];
    all.extend(entries);
    json!({ "resourceType": "Bundle", "type": "history", "entry": all })
}

macro_rules! app {
    ($state:expr) => {
        test::init_service(
            App::new()
                .app_data($state.clone())
                .configure(|c| configure(c, LIMIT)),
        )
        .await
    };
}

#[actix_web::test]
async fn a_wrong_or_missing_token_gets_401_without_detail() {
    let state = state(local(), None);
    let app = app!(state);
    for header in [None, Some("Bearer nope")] {
        let mut request = test::TestRequest::post()
            .uri("/notify")
            .set_json(order("Patient/1"));
        if let Some(h) = header {
            request = request.insert_header(("authorization", h));
        }
        let response = test::call_service(&app, request.to_request()).await;
        assert_eq!(response.status(), 401);
        assert!(test::read_body(response).await.is_empty(), "no detail");
    }
    assert!(queued(&state).await.is_empty(), "nothing queued");
}

#[actix_web::test]
async fn an_empty_configured_token_or_secret_lets_no_one_in() {
    let state = state_with(local(), "", Some(""));
    let app = app!(state);
    let body = serde_json::to_vec(&order("Patient/1")).expect("json");
    let signature = signature("", &body);
    for request in [
        test::TestRequest::post().uri("/notify?token="),
        test::TestRequest::post()
            .uri("/notify")
            .insert_header(("authorization", "Bearer ")),
        test::TestRequest::post()
            .uri("/notify")
            .insert_header(("x-signature", signature.as_str())),
    ] {
        let response =
            test::call_service(&app, request.set_payload(body.clone()).to_request()).await;
        assert_eq!(response.status(), 401);
    }
    assert!(queued(&state).await.is_empty());
}

#[actix_web::test]
async fn tokens_in_the_header_or_the_endpoint_url_are_accepted() {
    let state = state(local(), None);
    let app = app!(state);
    let by_header = test::TestRequest::post()
        .uri("/notify")
        .insert_header(("authorization", format!("Bearer {TOKEN}")))
        .set_json(order("Patient/1"));
    assert_eq!(
        test::call_service(&app, by_header.to_request())
            .await
            .status(),
        200
    );
    let by_url = test::TestRequest::post()
        .uri(&format!("/notify?token={TOKEN}"))
        .set_json(order("Patient/2"));
    assert_eq!(
        test::call_service(&app, by_url.to_request()).await.status(),
        200
    );
    let items = queued(&state).await;
    assert_eq!(
        items,
        vec![
            WorkItem::Patient {
                patient: "Patient/1".into()
            },
            WorkItem::Patient {
                patient: "Patient/2".into()
            }
        ]
    );
}

#[actix_web::test]
async fn hmac_signed_notifications() {
    let state = state(local(), Some("hmac-key"));
    let app = app!(state);
    let body = serde_json::to_vec(&order("Patient/3")).expect("json");
    let signed = test::TestRequest::post()
        .uri("/notify")
        .insert_header(("x-signature", signature("hmac-key", &body)))
        .set_payload(body.clone());
    assert_eq!(
        test::call_service(&app, signed.to_request()).await.status(),
        200
    );
    let forged = test::TestRequest::post()
        .uri("/notify")
        .insert_header(("x-signature", "sha256=00ff"))
        .set_payload(body);
    assert_eq!(
        test::call_service(&app, forged.to_request()).await.status(),
        401
    );
}

#[actix_web::test]
async fn every_shape_becomes_work() {
    let state = state(local(), None);
    let app = app!(state);
    let auth = ("authorization", TOKEN);
    let requests = vec![
        // Backport event with a full resource, id-only entry, and a handshake (nothing).
        test::TestRequest::post()
            .uri("/notify")
            .insert_header(auth)
            .set_json(notification(
                "event-notification",
                1,
                vec![json!({ "resource": order("Patient/a") })],
            )),
        test::TestRequest::post()
            .uri("/notify")
            .insert_header(auth)
            .set_json(notification(
                "event-notification",
                2,
                vec![json!({ "fullUrl": "http://ehr/MedicationDispense/9" })],
            )),
        test::TestRequest::post()
            .uri("/notify")
            .insert_header(auth)
            .set_json(notification("handshake", 0, vec![])),
        // HAPI classic: PUT with a body, and with none; text/plain and no content type.
        test::TestRequest::put()
            .uri("/notify/MedicationRequest/m1")
            .insert_header(auth)
            .insert_header(("content-type", "text/plain"))
            .set_payload(serde_json::to_vec(&order("Patient/b")).expect("json")),
        test::TestRequest::put()
            .uri("/notify/Observation/o1")
            .insert_header(auth),
        // Body-less POST: something changed.
        test::TestRequest::post().uri("/notify").insert_header(auth),
    ];
    for request in requests {
        assert_eq!(
            test::call_service(&app, request.to_request())
                .await
                .status(),
            200
        );
    }
    assert_eq!(
        queued(&state).await,
        vec![
            WorkItem::Patient {
                patient: "Patient/a".into()
            },
            WorkItem::EventCount {
                subscription: "Subscription/s1".into(),
                events_since_start: Some(1),
                event_numbers: vec![],
            },
            WorkItem::Resource {
                reference: "MedicationDispense/9".into()
            },
            WorkItem::EventCount {
                subscription: "Subscription/s1".into(),
                events_since_start: Some(2),
                event_numbers: vec![],
            },
            WorkItem::Patient {
                patient: "Patient/b".into()
            },
            WorkItem::Resource {
                reference: "Observation/o1".into()
            },
            WorkItem::Requery { subscription: None },
        ]
    );
}

#[actix_web::test]
async fn event_numbers_go_to_the_subscriptions_shard() {
    let state = state(local(), None);
    let app = app!(state);
    for events in [1, 2, 5] {
        let request = test::TestRequest::post()
            .uri("/notify")
            .insert_header(("authorization", TOKEN))
            .set_json(notification(
                "event-notification",
                events,
                vec![json!({ "resource": order("Patient/g") })],
            ));
        assert_eq!(
            test::call_service(&app, request.to_request())
                .await
                .status(),
            200
        );
    }
    // The counts go to the subscription's shard, where one consumer for all
    // replicas judges gaps (tests/delivery.rs); the endpoint judges nothing itself.
    let counts: Vec<u64> = queued(&state)
        .await
        .into_iter()
        .filter_map(|i| match i {
            WorkItem::EventCount {
                subscription,
                events_since_start,
                ..
            } if subscription == "Subscription/s1" => events_since_start,
            _ => None,
        })
        .collect();
    assert_eq!(counts, [1, 2, 5]);
}

#[actix_web::test]
async fn a_50_mb_body_gets_413_and_a_malformed_one_400() {
    let state = state(local(), None);
    let app = app!(state);
    let huge = vec![b' '; 50 * 1024 * 1024];
    let response = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/notify")
            .insert_header(("authorization", TOKEN))
            .set_payload(huge)
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), 413);
    let response = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/notify")
            .insert_header(("authorization", TOKEN))
            .set_payload("{oops")
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), 400);
    assert!(queued(&state).await.is_empty());
}

#[actix_web::test]
async fn an_unavailable_queue_gets_503_so_the_ehr_retries() {
    let broker = Rabbit::lazy(
        "amqp://guest:guest@127.0.0.1:1/%2f",
        QueueSettings::default(),
    );
    let state = state(WorkQueue::Rabbit(Box::new(broker)), None);
    let app = app!(state);
    let response = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/notify")
            .insert_header(("authorization", TOKEN))
            .set_json(order("Patient/1"))
            .to_request(),
    )
    .await;
    assert_eq!(response.status(), 503);
    let ready =
        test::call_service(&app, test::TestRequest::get().uri("/readyz").to_request()).await;
    assert_eq!(ready.status(), 503);
}

#[actix_web::test]
async fn health_and_metrics() {
    let state = state(local(), None);
    let app = app!(state);
    assert_eq!(
        test::call_service(&app, test::TestRequest::get().uri("/healthz").to_request())
            .await
            .status(),
        200
    );
    assert_eq!(
        test::call_service(&app, test::TestRequest::get().uri("/readyz").to_request())
            .await
            .status(),
        200
    );
    let _ = test::call_service(
        &app,
        test::TestRequest::post()
            .uri("/notify")
            .insert_header(("authorization", TOKEN))
            .set_json(order("Patient/1"))
            .to_request(),
    )
    .await;
    let body = test::read_body(
        test::call_service(&app, test::TestRequest::get().uri("/metrics").to_request()).await,
    )
    .await;
    let text = String::from_utf8_lossy(&body);
    assert!(
        text.contains("trd_notifications_total{outcome=\"queued\",shape=\"bare-resource\"} 1"),
        "{text}"
    );
}
