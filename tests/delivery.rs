//! Delivery you can trust, end to end with real parts: RabbitMQ, Helios FHIR Server on
//! PostgreSQL (it serves concurrent requests, so concurrency bugs show), and `serve`
//! as real processes with production concurrency. Each test names the promise it
//! checks: one patient at a time across replicas, Bundles as hints, events at least
//! once across a crash, poison input contained, duplicates repaired.

#[path = "support/broker.rs"]
mod broker;
#[path = "support/e2e.rs"]
mod e2e;
#[path = "support/hfs.rs"]
mod hfs;
#[path = "support/service.rs"]
mod service;

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ExchangeKind};
use serde_json::{json, Value};

use e2e::{broker, search, start_concurrent as start, wait_for};
use hfs::{copy_of, Hfs};
use service::{Service, TOKEN};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const IDENTIFIER_SYSTEM: &str = "https://fhir.trd-sentinel.org/id";

fn quorum() -> FieldTable {
    let mut table = FieldTable::default();
    table.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    table
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

/// A queue bound to the service's events exchange (declared here too: same arguments).
async fn events_queue(connection: &Connection, name: &str) -> lapin::Consumer {
    let channel = connection.create_channel().await.expect("channel");
    let exchange = format!("{name}.events");
    channel
        .exchange_declare(
            &exchange,
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("events exchange");
    let queue = format!("{name}.test-events");
    channel
        .queue_declare(&queue, durable(), quorum())
        .await
        .expect("queue");
    channel
        .queue_bind(
            &queue,
            &exchange,
            "assessment.#",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    channel
        .basic_consume(
            &queue,
            "test",
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume")
}

async fn publish(connection: &Connection, queue: &str, body: &[u8], headers: FieldTable) {
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(Default::default())
        .await
        .expect("confirms");
    channel
        .queue_declare(queue, durable(), quorum())
        .await
        .expect("declare");
    channel
        .basic_publish(
            "",
            queue,
            BasicPublishOptions::default(),
            body,
            BasicProperties::default()
                .with_delivery_mode(2)
                .with_headers(headers),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
}

/// The next event, or None within the time.
async fn next_event(consumer: &mut lapin::Consumer, within: Duration) -> Option<(String, Value)> {
    let delivery = tokio::time::timeout(within, consumer.next())
        .await
        .ok()??
        .ok()?;
    let id = delivery
        .properties
        .message_id()
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_default();
    Some((id, serde_json::from_slice(&delivery.data).ok()?))
}

/// An R4 Backport id-only notification naming one resource, with the subscription's
/// event number.
fn id_only(fhir: &str, reference: &str, event: usize) -> Value {
    json!({ "resourceType": "Bundle", "type": "history", "entry": [
        { "resource": { "resourceType": "Parameters", "parameter": [
            { "name": "subscription", "valueReference": { "reference": "Subscription/test" } },
            { "name": "type", "valueCode": "event-notification" },
            { "name": "events-since-subscription-start", "valueString": event.to_string() } ] } },
        { "fullUrl": format!("{fhir}/{reference}") } ] })
}

async fn notify(service: &Service, body: Value) {
    let answer = reqwest::Client::new()
        .post(format!("{}/notify", service.http))
        .header("authorization", format!("Bearer {TOKEN}"))
        .json(&body)
        .send()
        .await
        .expect("notify");
    assert_eq!(answer.status(), 200, "notification refused");
}

/// The service's live Flags and assessment Observations for a patient.
async fn written(base: &str, patient: &str) -> (Vec<Value>, Vec<Value>) {
    let tag = "_tag=https://fhir.trd-sentinel.org/CodeSystem/trd-meta|trd-sentinel";
    (
        search(base, &format!("Flag?patient={patient}&{tag}")).await,
        search(base, &format!("Observation?patient={patient}&{tag}")).await,
    )
}

/// id-only notifications of different resource types of one patient, sent at once to
/// two replicas: each patient is assessed on its own shard, so exactly one Flag and
/// one assessment Observation each, no 412, no dead letter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn id_only_notifications_of_one_patient_on_two_replicas_give_one_of_each() {
    let _serial = SERIAL.lock().await;
    let server = Hfs::start_postgres();
    const PATIENTS: usize = 12;
    let patients = server.load_copies(&["trd-two-ssris"], PATIENTS).await;
    let name = format!("dlv{}-replicas", std::process::id());
    let a = start(&name, &server.base, &[]);
    let b = start(&name, &server.base, &[]);
    let mut sends = Vec::new();
    for n in 0..PATIENTS {
        let (_, bundle) = copy_of("trd-two-ssris", n);
        let references: Vec<String> = bundle["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| &e["resource"])
            .filter(|r| r["resourceType"] != "Patient")
            .map(|r| {
                format!(
                    "{}/{}",
                    r["resourceType"].as_str().unwrap_or(""),
                    r["id"].as_str().unwrap_or("")
                )
            })
            .take(4)
            .collect();
        for (i, reference) in references.iter().enumerate() {
            // Events numbered 1, 2, 3 ... alternate between the replicas: no gap.
            let event = sends.len() + 1;
            let service = if i % 2 == 0 { &a } else { &b };
            sends.push(notify(service, id_only(&server.base, reference, event)));
        }
    }
    futures_util::future::join_all(sends).await;
    for patient in &patients {
        wait_for(
            &format!("{patient}'s Flag"),
            Duration::from_secs(120),
            || async { written(&server.base, patient).await.0.len() == 1 },
        )
        .await;
    }
    // Let any overlapping assessment that would duplicate finish before counting.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for patient in &patients {
        let (flags, observations) = written(&server.base, patient).await;
        assert_eq!(flags.len(), 1, "{patient}: {flags:?}");
        assert_eq!(flags[0]["status"], "active", "{patient}");
        assert_eq!(
            observations.len(),
            1,
            "{patient}: one assessment Observation"
        );
    }
    for service in [&a, &b] {
        let metrics = service.metrics().await;
        assert_eq!(
            service::metric_sum(&metrics, "trd_dead_letters_total"),
            0.0,
            "{metrics}"
        );
        assert_eq!(
            service::metric_sum(&metrics, "trd_transient_failures_total"),
            0.0,
            "no 412 or other failure: {metrics}"
        );
    }
    let routed = a.metric("trd_routed_total").await + b.metric("trd_routed_total").await;
    assert_eq!(
        routed,
        (PATIENTS * 4) as f64,
        "every id-only notification was routed to its patient"
    );
    let gaps = a.metric("trd_notification_gaps_total").await
        + b.metric("trd_notification_gaps_total").await;
    assert_eq!(gaps, 0.0, "events split over two replicas are no gap");

    // A real jump (events lost on the way) is seen once, whichever replica gets it.
    let (_, bundle) = copy_of("trd-two-ssris", 0);
    let reference = format!(
        "Observation/{}",
        bundle["entry"][7]["resource"]["id"].as_str().unwrap_or("")
    );
    notify(&b, id_only(&server.base, &reference, PATIENTS * 4 + 10)).await;
    // Overtaken notifications get a grace; past it, the next count reports the gap.
    tokio::time::sleep(trd_sentinel::intake::gaps::GRACE + Duration::from_secs(1)).await;
    notify(&a, id_only(&server.base, &reference, PATIENTS * 4 + 11)).await;
    wait_for("the gap", Duration::from_secs(30), || async {
        a.metric("trd_notification_gaps_total").await
            + b.metric("trd_notification_gaps_total").await
            == 1.0
    })
    .await;
}

/// "The Patient and one new order" from an integration engine is a hint: the whole
/// record is gathered, so the TRD Flag stays. Declared complete, it is assessed as is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_bundle_is_a_hint_and_does_not_retire_the_flag() {
    let _serial = SERIAL.lock().await;
    let server = Hfs::start_postgres();
    let patient = server.load_copies(&["trd-two-ssris"], 1).await.remove(0);
    let name = format!("dlv{}-hint", std::process::id());
    let service = start(&name, &server.base, &[]);
    let (_broker, connection) = broker(&name).await;
    let mut events = events_queue(&connection, &name).await;
    let id = patient.trim_start_matches("Patient/");
    let partial = json!({ "resourceType": "Bundle", "type": "collection", "entry": [
        { "fullUrl": "urn:uuid:9d3b1d4e-5c61-4f0e-a7a4-1f0c2a6b7e01", "resource": { "resourceType": "Patient", "id": id } },
        { "resource": { "resourceType": "MedicationRequest", "id": "new-order", "status": "active", "intent": "order",
          "subject": { "reference": "urn:uuid:9d3b1d4e-5c61-4f0e-a7a4-1f0c2a6b7e01" },
          "medicationCodeableConcept": { "text": "sertraline 50 mg tablet" }, "authoredOn": "2026-11-30" } } ] });
    let body = serde_json::to_vec(&partial).expect("json");
    publish(
        &connection,
        &format!("{name}.intake"),
        &body,
        FieldTable::default(),
    )
    .await;
    let (_, event) = next_event(&mut events, Duration::from_secs(60))
        .await
        .expect("an event");
    assert_eq!(event["patient"], patient.as_str());
    assert_eq!(
        event["status"], "trd",
        "assessed on the whole record: {event}"
    );
    let (flags, _) = written(&server.base, &patient).await;
    assert_eq!(flags.len(), 1);
    assert_eq!(flags[0]["status"], "active");

    // Declared complete (header): assessed as it is, and it holds no trial.
    let mut headers = FieldTable::default();
    headers.insert("x-trd-complete-record".into(), AMQPValue::Boolean(true));
    publish(&connection, &format!("{name}.intake"), &body, headers).await;
    let (_, event) = next_event(&mut events, Duration::from_secs(60))
        .await
        .expect("an event");
    assert_ne!(
        event["status"], "trd",
        "the declared record has no failed trial: {event}"
    );
    let (flags, _) = written(&server.base, &patient).await;
    assert_eq!(
        flags[0]["status"], "inactive",
        "the sender said this is the whole record"
    );
    drop(service);
}

/// The process dies between the committed write and its event; restarted, the
/// redelivered item finds the write in the EHR and sends the event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_between_commit_and_publish_the_event_still_arrives() {
    let _serial = SERIAL.lock().await;
    let server = Hfs::start_postgres();
    let patient = server.load_copies(&["trd-two-ssris"], 1).await.remove(0);
    let name = format!("dlv{}-crash", std::process::id());
    let (_broker, connection) = broker(&name).await;
    let mut events = events_queue(&connection, &name).await;
    let mut crashing = start(
        &name,
        &server.base,
        &[("TRDSENTINEL_FAULT", "crash-after-commit")],
    );
    let body = serde_json::to_vec(&json!({ "patient": patient })).expect("json");
    publish(
        &connection,
        &format!("{name}.intake"),
        &body,
        FieldTable::default(),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while crashing.exited().is_none() {
        assert!(Instant::now() < deadline, "the fault did not fire");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (flags, _) = written(&server.base, &patient).await;
    assert_eq!(flags.len(), 1, "the write committed before the crash");
    assert!(
        next_event(&mut events, Duration::from_secs(2))
            .await
            .is_none(),
        "no event yet"
    );

    let restarted = start(&name, &server.base, &[]);
    let (message_id, event) = next_event(&mut events, Duration::from_secs(60))
        .await
        .expect("the event after the restart");
    assert_eq!(event["patient"], patient.as_str());
    assert_eq!(event["status"], "trd");
    assert_eq!(event["content_hash"], message_id.as_str());
    assert!(message_id.starts_with("sha256:"), "{message_id}");
    let (flags, _) = written(&server.base, &patient).await;
    assert_eq!(flags.len(), 1, "nothing doubled");
    drop(restarted);
}

/// A patient whose assessment panics is retried up to the limit, then dead-lettered
/// with the reason; the others are assessed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_patient_is_dead_lettered_and_the_rest_proceed() {
    let _serial = SERIAL.lock().await;
    let server = Hfs::start_postgres();
    let patients = server.load_copies(&["trd-two-ssris"], 2).await;
    let (poison, healthy) = (&patients[0], &patients[1]);
    let name = format!("dlv{}-poison", std::process::id());
    let (_broker, connection) = broker(&name).await;
    let service = start(
        &name,
        &server.base,
        &[
            ("TRDSENTINEL_FAULT", &format!("panic-for:{poison}")),
            ("TRD_AMQP_MAX_ATTEMPTS", "3"),
        ],
    );
    for patient in &patients {
        let body = serde_json::to_vec(&json!({ "patient": patient })).expect("json");
        publish(
            &connection,
            &format!("{name}.intake"),
            &body,
            FieldTable::default(),
        )
        .await;
    }
    wait_for(
        "the healthy patient's Flag",
        Duration::from_secs(60),
        || async { written(&server.base, healthy).await.0.len() == 1 },
    )
    .await;
    let channel = connection.create_channel().await.expect("channel");
    let dead = format!("{name}.dead");
    let mut letter = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while letter.is_none() && Instant::now() < deadline {
        letter = channel
            .basic_get(&dead, Default::default())
            .await
            .expect("get");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let letter = letter.expect("a dead letter");
    let headers = letter
        .delivery
        .properties
        .headers()
        .clone()
        .expect("headers");
    let reason = match headers.inner().get("x-trd-reason") {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("no reason: {other:?}"),
    };
    assert!(reason.starts_with("gave up after 3 attempts"), "{reason}");
    assert!(
        reason.contains(&format!("the assessment of {poison} panicked")),
        "{reason}"
    );
    let item: Value = serde_json::from_slice(&letter.delivery.data).expect("json");
    assert_eq!(item, json!({ "kind": "patient", "patient": poison }));
    assert!(written(&server.base, poison).await.0.is_empty());
    assert_eq!(service.metric("trd_panics_total").await, 3.0);
    assert_eq!(service.metric("trd_dead_letters_total").await, 1.0);
}

/// Two Flags with the service's identifier (from an earlier fault, or another
/// writer) made every conditional update fail with 412; the service now keeps one,
/// retires the other as entered-in-error, and writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_flags_are_repaired_not_dead_lettered() {
    let _serial = SERIAL.lock().await;
    let server = Hfs::start_postgres();
    let patient = server.load_copies(&["trd-two-ssris"], 1).await.remove(0);
    let http = reqwest::Client::new();
    for status in ["active", "active"] {
        let flag = json!({ "resourceType": "Flag", "status": status,
            "meta": { "tag": [{ "system": "https://fhir.trd-sentinel.org/CodeSystem/trd-meta", "code": "trd-sentinel" }] },
            "identifier": [{ "system": IDENTIFIER_SYSTEM, "value": format!("{patient}/trd") }],
            "code": { "text": "TRD" }, "subject": { "reference": patient } });
        let answer = http
            .post(format!("{}/Flag", server.base))
            .header("Content-Type", "application/fhir+json")
            .json(&flag)
            .send()
            .await
            .expect("post");
        assert!(answer.status().is_success());
    }
    let name = format!("dlv{}-repair", std::process::id());
    let service = start(&name, &server.base, &[]);
    let (_broker, connection) = broker(&name).await;
    let mut events = events_queue(&connection, &name).await;
    let body = serde_json::to_vec(&json!({ "patient": patient })).expect("json");
    publish(
        &connection,
        &format!("{name}.intake"),
        &body,
        FieldTable::default(),
    )
    .await;
    let (_, event) = next_event(&mut events, Duration::from_secs(60))
        .await
        .expect("an event");
    assert_eq!(event["status"], "trd");
    let flags = search(&server.base, &format!("Flag?patient={patient}")).await;
    assert_eq!(flags.len(), 2, "nothing deleted: {flags:?}");
    let identifier = |f: &Value| {
        f["identifier"][0]["value"]
            .as_str()
            .unwrap_or("")
            .to_string()
    };
    let kept: Vec<&Value> = flags
        .iter()
        .filter(|f| identifier(f) == format!("{patient}/trd"))
        .collect();
    assert_eq!(kept.len(), 1, "one Flag keeps the identifier");
    assert_eq!(kept[0]["status"], "active");
    let retired: Vec<&Value> = flags
        .iter()
        .filter(|f| identifier(f) != format!("{patient}/trd"))
        .collect();
    assert_eq!(retired[0]["status"], "entered-in-error");
    assert_eq!(
        identifier(retired[0]),
        format!(
            "{patient}/trd#duplicate-{}",
            retired[0]["id"].as_str().unwrap_or("")
        )
    );
    assert_eq!(service.metric("trd_dead_letters_total").await, 0.0);
}
