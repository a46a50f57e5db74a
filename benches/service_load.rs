//! Load harness (not a test): N notifications through the real path — HTTP intake,
//! RabbitMQ, pipeline, Helios FHIR Server — reporting throughput, end-to-end latency,
//! the service's peak RSS and CPU time, and where the time goes (service CPU vs.
//! Helios CPU vs. waiting). End to end is measured from outside: from sending a
//! patient's notification to receiving the service's `assessment.*` event for that
//! patient on the events exchange (published after the write-back committed).
//!
//!     cargo bench --bench service_load                       # 500 patients, all at once
//!     LOAD_PATIENTS=2000 LOAD_RATE=40 cargo bench --bench service_load   # paced, 40/s
//!     LOAD_REPLICAS=2 cargo bench --bench service_load        # two replicas sharing the queues
//!     LOAD_BACKEND=sqlite cargo bench --bench service_load    # Helios on SQLite (one request at a time)
//!
//! Helios runs on PostgreSQL and the service with its production defaults (four
//! concurrent EHR requests per replica); notifications go to the replicas in turn.
//! With `LOAD_BACKEND=sqlite` the service sends one request at a time (Helios on
//! SQLite refuses overlapping ones). Under `cargo test` it sends 10 notifications
//! as a smoke test.

#[path = "../tests/support/broker.rs"]
mod broker;
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
use lapin::Connection;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use broker::TestBroker;
use service::{metric_sum, Service, TOKEN};

/// Every event the service publishes, as (patient, when it arrived).
async fn watch_events(
    broker: &TestBroker,
    exchange: &str,
) -> (Connection, mpsc::UnboundedReceiver<(String, Instant)>) {
    let connection = broker.connect().await;
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

/// Sums a metric over the replicas.
fn summed(texts: &[String], name: &str) -> f64 {
    // From 0.0: an empty f64 sum is -0.0.
    texts
        .iter()
        .map(|t| metric_sum(t, name))
        .fold(0.0, |a, b| a + b)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let count = measure::sample_size("LOAD_PATIENTS", 500, 10);
    let replicas: usize = std::env::var("LOAD_REPLICAS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1);
    let sqlite = std::env::var("LOAD_BACKEND").as_deref() == Ok("sqlite");
    let server = if sqlite {
        hfs::Hfs::start()
    } else {
        hfs::Hfs::start_postgres()
    };
    let patients = server.load_copies(&["one-failure-at-risk"], count).await;

    let name = format!("load{}", std::process::id());
    let broker = TestBroker::named(&name);
    let concurrency = if sqlite { "1" } else { "4" };
    let services: Vec<Service> = (0..replicas)
        .map(|_| {
            Service::start(
                &name,
                &server.base,
                &[
                    ("RUST_LOG", "warn"),
                    ("TRD_FHIR_MAX_CONCURRENCY", concurrency),
                ],
            )
        })
        .collect();
    // Steady state: the replicas have heard of each other and split the shards.
    tokio::time::sleep(2 * trd_sentinel::queue::shards::HEARTBEAT + Duration::from_secs(1)).await;
    let (_events_connection, mut events) = watch_events(&broker, &broker.queue("events")).await;
    let http = reqwest::Client::new();
    let service_cpu_now = || {
        services
            .iter()
            .map(|s| measure::cpu_seconds(s.pid()))
            .sum::<f64>()
    };
    let (service_cpu_start, fhir_cpu_start) =
        (service_cpu_now(), measure::cpu_seconds(server.pid()));
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
        let replica = services.get(n % replicas).expect("a replica");
        let t = Instant::now();
        let response = http
            .post(format!("{}/notify", replica.http))
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
    loop {
        let mut done = 0.0;
        for service in &services {
            done += service.metric("trd_processing_seconds_count").await;
        }
        if done >= count as f64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut texts = Vec::with_capacity(replicas);
    for service in &services {
        texts.push(service.metrics().await);
    }
    let service_cpu = service_cpu_now() - service_cpu_start;
    let fhir_cpu = measure::cpu_seconds(server.pid()) - fhir_cpu_start;
    accept.sort_by(|a, b| a.total_cmp(b));
    end_to_end.sort_by(|a, b| a.total_cmp(b));

    let pacing = rate.map_or("all at once".to_string(), |r| format!("paced at {r}/s"));
    let backend = if sqlite {
        "Helios on SQLite, 1 EHR request at a time"
    } else {
        "Helios on PostgreSQL, 4 concurrent EHR requests per replica"
    };
    println!("{replicas} replica(s); {backend}");
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
    let processing_total = summed(&texts, "trd_processing_seconds_sum");
    println!(
        "where the time goes: processing {processing_total:.1} s in all ({:.1} ms per item); CPU over the run: service {service_cpu:.1} s ({:.1} ms per patient), Helios {fhir_cpu:.1} s ({:.1} ms per patient), of {:.1} s wall x 2 cores",
        processing_total * 1000.0 / count as f64,
        service_cpu * 1000.0 / count as f64,
        fhir_cpu * 1000.0 / count as f64,
        total
    );
    let kinds = [
        "batch",
        "read",
        "search",
        "transaction",
        "write",
        "capabilities",
    ];
    let by_kind: Vec<String> = kinds
        .iter()
        .map(|k| {
            let n = summed(&texts, &format!("trd_fhir_requests_total{{kind=\"{k}\"}}"));
            format!("{k} {:.2}", n / count as f64)
        })
        .collect();
    println!(
        "EHR requests per patient: {:.2} ({})",
        summed(&texts, "trd_fhir_requests_total") / count as f64,
        by_kind.join(", ")
    );
    let rss: Vec<String> = services
        .iter()
        .map(|s| format!("{:.1}", s.peak_rss_mb()))
        .collect();
    println!(
        "service peak RSS {} MB; dead letters {}; retries {}; written {}",
        rss.join(" / "),
        summed(&texts, "trd_dead_letters_total"),
        summed(&texts, "trd_retries_total"),
        summed(&texts, "trd_writebacks_total")
    );
}
