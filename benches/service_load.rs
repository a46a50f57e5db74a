//! Load harness (not a test): N notifications through the real path — HTTP intake,
//! RabbitMQ, pipeline, Helios FHIR Server — reporting throughput, end-to-end latency
//! (p50/p99 from the service's own histograms), the service's peak RSS and CPU time,
//! and where the time goes (service CPU vs. Helios CPU vs. waiting).
//!
//!     cargo bench --bench service_load             # 500 patients, one notification each
//!     LOAD_PATIENTS=2000 cargo bench --bench service_load
//!
//! The service runs with its production defaults except `fhir.max_concurrency = 1`
//! (Helios on SQLite refuses overlapping requests). Under `cargo test` it sends 10
//! notifications as a smoke test.

#[path = "../tests/support/hfs.rs"]
mod hfs;
#[path = "../tests/support/service.rs"]
mod service;

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use service::{histogram_quantile, metric_sum, Service, TOKEN};

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

/// Loads `count` copies of a fixture patient (`l0` ..) into the FHIR server.
async fn load_patients(server: &hfs::Hfs, count: usize) {
    let http = reqwest::Client::new();
    let template = serde_json::to_string(&hfs::fixture("one-failure-at-risk")).expect("json");
    for chunk in (0..count).collect::<Vec<_>>().chunks(100) {
        let mut entries = Vec::new();
        for n in chunk {
            let copy: Value =
                serde_json::from_str(&template.replace("one-failure-at-risk", &format!("l{n}")))
                    .expect("json");
            entries.extend(
                hfs::as_transaction(&copy)["entry"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            );
        }
        let tx = json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries });
        let response = http
            .post(&server.base)
            .header("Content-Type", "application/fhir+json")
            .json(&tx)
            .send()
            .await
            .expect("load");
        assert!(response.status().is_success(), "loading patients failed");
    }
}

fn percentile(sorted: &[f64], p: usize) -> f64 {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let count: usize = if benchmarking {
        std::env::var("LOAD_PATIENTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(500)
    } else {
        10
    };
    let server = hfs::Hfs::start();
    load_patients(&server, count).await;

    let name = format!("load{}", std::process::id());
    let service = Service::start(&name, &server.base, &[("RUST_LOG", "warn")]);
    let http = reqwest::Client::new();
    let (service_cpu_start, fhir_cpu_start) =
        (cpu_seconds(service.pid()), cpu_seconds(server.pid()));

    let started = Instant::now();
    let mut accept = Vec::with_capacity(count);
    for n in 0..count {
        let order = json!({ "resourceType": "MedicationRequest", "id": format!("l{n}-new"), "status": "active", "intent": "order", "subject": { "reference": format!("Patient/l{n}") } });
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
    }
    let sent = started.elapsed().as_secs_f64();
    loop {
        if service.metric("trd_processing_seconds_count").await >= count as f64 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(3600), "not done");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let total = started.elapsed().as_secs_f64();
    let text = service.metrics().await;
    let service_cpu = cpu_seconds(service.pid()) - service_cpu_start;
    let fhir_cpu = cpu_seconds(server.pid()) - fhir_cpu_start;
    accept.sort_by(|a, b| a.total_cmp(b));

    println!(
        "{count} notifications accepted in {sent:.1} s (HTTP 200 after the broker's confirm: median {:.1} ms, p99 {:.1} ms)",
        percentile(&accept, 50),
        percentile(&accept, 99)
    );
    println!(
        "all assessed and written back in {total:.1} s = {:.1} patients/s",
        count as f64 / total
    );
    println!(
        "end-to-end (queued -> written back): p50 <= {} s, p99 <= {} s; processing one item: p50 <= {} s, p99 <= {} s (histogram bucket bounds)",
        histogram_quantile(&text, "trd_end_to_end_seconds", 0.5),
        histogram_quantile(&text, "trd_end_to_end_seconds", 0.99),
        histogram_quantile(&text, "trd_processing_seconds", 0.5),
        histogram_quantile(&text, "trd_processing_seconds", 0.99)
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
