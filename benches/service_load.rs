//! Load harness (not a test): N notifications through the real path — HTTP intake,
//! RabbitMQ, pipeline, Helios FHIR Server — reporting throughput, end-to-end latency,
//! the service's peak RSS and CPU time, and where the time goes (service CPU vs.
//! Helios CPU vs. waiting). End to end is measured from outside: from sending a
//! patient's notification to receiving the service's `assessment.*` event for that
//! patient on the events exchange (published after the write-back committed).
//!
//!     cargo bench --bench service_load                       # 500 patients, all at once
//!     LOAD_PATIENTS=2000 LOAD_RATE=40 cargo bench --bench service_load   # paced, 40/s
//!
//! The service runs with its production defaults except `fhir.max_concurrency = 1`
//! (Helios on SQLite refuses overlapping requests). Under `cargo test` it sends 10
//! notifications as a smoke test.

#[path = "../tests/support/hfs.rs"]
mod hfs;
#[path = "support/measure.rs"]
mod measure;
#[path = "../tests/support/service.rs"]
mod service;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use service::{metric_sum, Service, AMQP, TOKEN};

/// User + system CPU seconds of a process so far (Linux /proc; clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let fields: Vec<&str> = s.rsplit(')').next()?.split_whitespace().collect();
            let ticks =
                fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
            Some(ticks / 100.0)
        })
        .unwrap_or(f64::NAN)
}

/// Every event the service publishes, as (patient, when it arrived).
async fn watch_events(exchange: &str) -> (Connection, mpsc::UnboundedReceiver<(String, Instant)>) {
    let connection = Connection::connect(AMQP, ConnectionProperties::default())
        .await
        .expect("broker");
    let channel = connection.create_channel().await.expect("channel");
    let queue = channel
        .queue_declare(
            "",
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("queue");
    channel
        .queue_bind(
            queue.name().as_str(),
            exchange,
            "#",
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    let mut consumer = channel
        .basic_consume(
            queue.name().as_str(),
            "load",
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(delivery)) = consumer.next().await {
            let at = Instant::now();
            let patient = serde_json::from_slice::<Value>(&delivery.data)
                .ok()
                .and_then(|v| v["patient"].as_str().map(str::to_string))
                .unwrap_or_default();
            if tx.send((patient, at)).is_err() {
                break;
            }
        }
    });
    (connection, rx)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let count = measure::sample_size("LOAD_PATIENTS", 500, 10);
    let server = hfs::Hfs::start();
    let patients = server.load_copies(&["one-failure-at-risk"], count).await;

    let name = format!("load{}", std::process::id());
    let service = Service::start(&name, &server.base, &[("RUST_LOG", "warn")]);
    // Steady state: the service has heard for other replicas and claimed its shards.
    tokio::time::sleep(2 * trd_sentinel::queue::shards::HEARTBEAT + Duration::from_secs(1)).await;
    let (_events_connection, mut events) = watch_events(&format!("{name}.events")).await;
    let http = reqwest::Client::new();
    let (service_cpu_start, fhir_cpu_start) =
        (cpu_seconds(service.pid()), cpu_seconds(server.pid()));
    let rate: Option<f64> = std::env::var("LOAD_RATE").ok().and_then(|v| v.parse().ok());

    let started = Instant::now();
    let mut accept = Vec::with_capacity(count);
    let mut sent_at = HashMap::with_capacity(count);
    for (n, patient) in patients.iter().enumerate() {
        if let Some(rate) = rate {
            let due = started + Duration::from_secs_f64(n as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let order = json!({ "resourceType": "MedicationRequest", "id": format!("load-{n}"), "status": "active", "intent": "order", "subject": { "reference": patient } });
        let t = Instant::now();
        let response = http
            .post(format!("{}/notify", service.http))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .json(&order)
            .send()
            .await
            .expect("notify");
        assert_eq!(response.status(), 200);
        accept.push(t.elapsed().as_secs_f64() * 1000.0);
        sent_at.insert(patient, t);
    }
    let sent = started.elapsed().as_secs_f64();
    let mut end_to_end = Vec::with_capacity(count);
    while end_to_end.len() < count {
        let (patient, at) = tokio::time::timeout(Duration::from_secs(600), events.recv())
            .await
            .expect("an event within 10 minutes")
            .expect("events stream");
        if let Some(t) = sent_at.remove(&patient) {
            end_to_end.push(at.duration_since(t).as_secs_f64() * 1000.0);
        }
    }
    let total = started.elapsed().as_secs_f64();
    // The last items' metrics are recorded just after their events.
    while service.metric("trd_processing_seconds_count").await < count as f64 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let text = service.metrics().await;
    let service_cpu = cpu_seconds(service.pid()) - service_cpu_start;
    let fhir_cpu = cpu_seconds(server.pid()) - fhir_cpu_start;
    accept.sort_by(|a, b| a.total_cmp(b));
    end_to_end.sort_by(|a, b| a.total_cmp(b));

    let pacing = rate.map_or("all at once".to_string(), |r| format!("paced at {r}/s"));
    println!(
        "{count} notifications ({pacing}) accepted in {sent:.1} s (HTTP 200 after the broker's confirm: median {:.1} ms, p99 {:.1} ms)",
        measure::percentile(&accept, 0.5),
        measure::percentile(&accept, 0.99)
    );
    println!(
        "all assessed and written back in {total:.1} s = {:.1} patients/s",
        count as f64 / total
    );
    println!(
        "end to end (notification sent -> written back, event received): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        measure::percentile(&end_to_end, 0.5),
        measure::percentile(&end_to_end, 0.99),
        end_to_end.last().copied().unwrap_or(f64::NAN)
    );
    let processing_total = metric_sum(&text, "trd_processing_seconds_sum");
    println!(
        "where the time goes: processing {processing_total:.1} s in all ({:.1} ms per item); CPU over the run: service {service_cpu:.1} s ({:.1} ms per patient), Helios {fhir_cpu:.1} s ({:.1} ms per patient), of {:.1} s wall x 2 cores",
        processing_total * 1000.0 / count as f64,
        service_cpu * 1000.0 / count as f64,
        fhir_cpu * 1000.0 / count as f64,
        total
    );
    println!(
        "service peak RSS {:.1} MB; dead letters {}; retries {}; written {}",
        service.peak_rss_mb(),
        metric_sum(&text, "trd_dead_letters_total"),
        metric_sum(&text, "trd_retries_total"),
        metric_sum(&text, "trd_writebacks_total")
    );
}
