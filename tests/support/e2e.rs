//! What the end-to-end tests share: the service tuned to run in seconds, the broker,
//! the EHR's contents, waiting, and the no-PHI check of a log.

#![allow(dead_code)]

use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection};
use serde_json::Value;

use super::hfs::{as_transaction, fixture, Hfs};
use std::sync::Arc;

use super::broker::TestBroker;
use super::service::Service;

/// Quick retries and a short coalescing window, so the tests run in seconds.
pub fn start(name: &str, fhir: &str, extra: &[(&str, &str)]) -> Service {
    let tuning = [
        ("TRD_AMQP_SHARDS", "4"),
        ("TRD_AMQP_RETRY_DELAY_MS", "1000"),
        ("TRD_PIPELINE_COALESCE_MS", "50"),
        ("TRD_PIPELINE_CONCURRENCY", "2"),
        ("TRD_FHIR_RETRY_BASE_MS", "100"),
    ];
    Service::start(name, fhir, &[&tuning[..], extra].concat())
}

/// Production concurrency against the concurrent EHR; quick retries and coalescing.
pub fn start_concurrent(name: &str, fhir: &str, extra: &[(&str, &str)]) -> Service {
    let tuning = [
        ("TRD_FHIR_MAX_CONCURRENCY", "4"),
        ("TRD_AMQP_SHARDS", "4"),
        ("TRD_AMQP_RETRY_DELAY_MS", "500"),
        ("TRD_PIPELINE_COALESCE_MS", "50"),
        ("TRD_FHIR_RETRY_BASE_MS", "100"),
    ];
    Service::start(name, fhir, &[&tuning[..], extra].concat())
}

/// The vhost of the test `name` and a connection to it. Hold the vhost for the test's
/// whole length where messages must outlive a service (a restart, a kill).
pub async fn broker(name: &str) -> (Arc<TestBroker>, Connection) {
    let broker = TestBroker::named(name);
    let connection = broker.connect().await;
    (broker, connection)
}

pub async fn publish_intake(connection: &Connection, queue: &str, bodies: &[Vec<u8>]) {
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(Default::default())
        .await
        .expect("confirms");
    let mut quorum = FieldTable::default();
    quorum.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    channel
        .queue_declare(
            queue,
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            quorum,
        )
        .await
        .expect("declare");
    for body in bodies {
        channel
            .basic_publish(
                "",
                queue,
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
    }
}

pub async fn load(server: &Hfs, names: &[&str]) {
    let http = reqwest::Client::new();
    for name in names {
        let response = http
            .post(&server.base)
            .header("Content-Type", "application/fhir+json")
            .json(&as_transaction(&fixture(name)))
            .send()
            .await
            .expect("load");
        assert!(response.status().is_success());
    }
}

pub async fn search(base: &str, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut url = Some(format!("{base}/{query}"));
    while let Some(u) = url.take() {
        let bundle: Value = reqwest::Client::new()
            .get(&u)
            .header("Accept", "application/fhir+json")
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        out.extend(
            bundle["entry"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|e| e["resource"].clone()),
        );
        url = bundle["link"]
            .as_array()
            .and_then(|l| l.iter().find(|l| l["relation"] == "next"))
            .and_then(|l| l["url"].as_str())
            .map(str::to_string);
    }
    out
}

pub async fn wait_for<F: std::future::Future<Output = bool>>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("timed out waiting for {what}");
}

pub async fn flags(base: &str, patient: &str) -> Vec<Value> {
    search(base, &format!("Flag?patient={patient}")).await
}

/// Ready messages left in a test's queues (up to 16 shards; a shard queue that does
/// not exist closes the channel, and only higher ones, which do not exist either,
/// follow it).
pub async fn backlog(connection: &Connection, name: &str) -> u32 {
    let channel = connection.create_channel().await.expect("channel");
    let mut total = 0;
    let mut queues = vec![format!("{name}.intake")];
    for shard in 0..16 {
        queues.push(format!("{name}.work.{shard}"));
        queues.push(format!("{name}.work.{shard}.retry"));
    }
    for queue in queues {
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        if let Ok(q) = channel
            .queue_declare(&queue, passive, FieldTable::default())
            .await
        {
            total += q.message_count();
        }
    }
    total
}

pub fn no_phi_in(log: &std::path::Path) {
    let text = std::fs::read_to_string(log).expect("log");
    assert!(!text.is_empty());
    for phi in ["Fixture", "1980-02-29"] {
        assert!(
            !text.contains(phi),
            "the log contains `{phi}` (a fixture name or birth date)"
        );
    }
}
