//! CDS Hooks load harness (not a test): requests per second and latency (p50, p99,
//! measured by the client) at 1, 8 and 32 concurrent clients, against the real
//! `serve` process:
//!
//! - patient-view with full prefetch (no I/O beyond the call);
//! - order-select with full prefetch and a draft antidepressant order;
//! - order-select with nothing prefetched: the service fetches the record from the
//!   call's fhirServer (Helios on PostgreSQL) with the client's token.
//!
//! ```text
//! cargo bench --bench cds_load                  # 400 calls per level (100 with fallback)
//! CDS_CALLS=2000 cargo bench --bench cds_load
//! ```
//!
//! Every call carries its own JWT (ES384, a fresh jti), minted before the clock
//! starts. Under `cargo test` it makes a few calls of each kind as a smoke test.

#[path = "../tests/support/broker.rs"]
mod broker;
#[path = "../tests/support/cds.rs"]
mod cds;
#[path = "../tests/support/hfs.rs"]
mod hfs;
#[path = "support/measure.rs"]
mod measure;
#[path = "../tests/support/service.rs"]
mod service;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Mutex;

const EHR: &str = "https://ehr.bench";

struct Scenario {
    name: &'static str,
    service: &'static str,
    body: Value,
    calls: usize,
}

/// Runs `calls` calls at `concurrency`; (calls per second, p50 ms, p99 ms).
async fn run(base: &str, scenario: &Scenario, concurrency: usize) -> (f64, f64, f64) {
    let url = format!("{base}/cds-services/{}", scenario.service);
    let tokens: Vec<String> = (0..scenario.calls)
        .map(|_| cds::jwt("es384-a", "key-a", &cds::claims(EHR, &url), None))
        .collect();
    let body = Arc::new(scenario.body.to_string());
    let queue = Arc::new(Mutex::new(tokens));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(scenario.calls)));
    let client = reqwest::Client::new();
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (queue, latencies, client, url, body) = (
                queue.clone(),
                latencies.clone(),
                client.clone(),
                url.clone(),
                body.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let Some(token) = queue.lock().await.pop() else {
                        return;
                    };
                    let sent = Instant::now();
                    let response = client
                        .post(&url)
                        .bearer_auth(token)
                        .header("Content-Type", "application/json")
                        .body(body.as_ref().clone())
                        .send()
                        .await
                        .expect("call");
                    assert_eq!(response.status(), 200, "{url}");
                    let answer: Value = response.json().await.expect("json");
                    assert!(answer["cards"].as_array().is_some_and(|c| !c.is_empty()));
                    latencies
                        .lock()
                        .await
                        .push(sent.elapsed().as_secs_f64() * 1000.0);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.expect("worker");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut latencies = latencies.lock().await.clone();
    latencies.sort_by(f64::total_cmp);
    (
        scenario.calls as f64 / elapsed,
        measure::percentile(&latencies, 0.5),
        measure::percentile(&latencies, 0.99),
    )
}

#[tokio::main]
async fn main() {
    let calls = measure::sample_size("CDS_CALLS", 400, 4);
    let server = hfs::Hfs::start_postgres();
    let bundle = cds::patient_today("trd-two-ssris");
    reqwest::Client::new()
        .post(&server.base)
        .header("Content-Type", "application/fhir+json")
        .json(&hfs::as_transaction(&bundle))
        .send()
        .await
        .expect("load")
        .error_for_status()
        .expect("loaded");
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[cds]\nenabled = true\n\n[[cds.clients]]\niss = \"{EHR}\"\njwks_file = \"{}\"\nfhir_servers = [\"{}\"]\n",
            cds::data("jwks-a.json").display(),
            server.base
        ),
    )
    .expect("config");
    let config = config.display().to_string();
    let service = service::Service::start(
        "cds-load",
        &server.base,
        &[
            ("TRD_CONFIG", config.as_str()),
            ("TRD_FHIR_MAX_CONCURRENCY", "4"),
            ("RUST_LOG", "warn"),
        ],
    );

    let patient = "Patient/trd-two-ssris";
    let prefetch = cds::full_prefetch(&bundle);
    let draft = cds::draft(
        "draft-1",
        patient,
        "310385",
        "fluoxetine 20 MG Oral Capsule",
        1.0,
        1,
    );
    let scenarios = [
        Scenario {
            name: "patient-view, full prefetch",
            service: "trd-patient-view",
            body: cds::hook_request(
                "patient-view",
                patient,
                None,
                None,
                Some(prefetch.clone()),
                &[],
            ),
            calls,
        },
        Scenario {
            name: "order-select, full prefetch",
            service: "trd-prescribing",
            body: cds::hook_request(
                "order-select",
                patient,
                None,
                None,
                Some(prefetch.clone()),
                std::slice::from_ref(&draft),
            ),
            calls,
        },
        Scenario {
            name: "order-select, fetched from Helios",
            service: "trd-prescribing",
            body: cds::hook_request(
                "order-select",
                patient,
                Some(&server.base),
                Some("bench-token"),
                None,
                std::slice::from_ref(&draft),
            ),
            calls: (calls / 4).max(2),
        },
    ];
    let body_kb = scenarios[0].body.to_string().len() as f64 / 1024.0;
    println!("CDS Hooks load: trd-two-ssris (prefetch {body_kb:.0} KB), deadline 1500 ms");
    println!(
        "{:<36} {:>5} {:>7} {:>9} {:>9} {:>9}",
        "scenario", "conc", "calls", "calls/s", "p50 ms", "p99 ms"
    );
    let cpu_before = measure::cpu_seconds(service.pid());
    let mut total = 0;
    for scenario in &scenarios {
        // Warm the connection pool and caches (JWKS) once.
        run(
            &service.http,
            &Scenario {
                calls: 2,
                ..clone_of(scenario)
            },
            1,
        )
        .await;
        for concurrency in [1, 8, 32] {
            let (rate, p50, p99) = run(&service.http, scenario, concurrency).await;
            total += scenario.calls;
            println!(
                "{:<36} {:>5} {:>7} {:>9.1} {:>9.2} {:>9.2}",
                scenario.name, concurrency, scenario.calls, rate, p50, p99
            );
        }
    }
    let cpu = measure::cpu_seconds(service.pid()) - cpu_before;
    println!(
        "service CPU: {:.2} ms per call (all scenarios), peak RSS {:.1} MB",
        cpu * 1000.0 / total as f64,
        service.peak_rss_mb()
    );
    let metrics = service.metrics().await;
    let late: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("trd_cds_requests_total") && l.contains("outcome=\"deadline\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    println!("calls past the deadline: {}", late as u64);
    tokio::time::sleep(Duration::from_millis(10)).await;
}

fn clone_of(s: &Scenario) -> Scenario {
    Scenario {
        name: s.name,
        service: s.service,
        body: s.body.clone(),
        calls: s.calls,
    }
}
