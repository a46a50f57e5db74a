//! Load harness (not a test): N notifications through the real path — HTTP intake,
//! RabbitMQ, pipeline, Helios FHIR Server — reporting throughput, end-to-end latency
//! (p50/p99 from the service's own histogram) and the service's peak RSS.
//!
//!     cargo bench --bench service_load             # 500 patients, one notification each
//!     LOAD_PATIENTS=2000 cargo bench --bench service_load
//!
//! Under `cargo test` it sends 10 notifications as a smoke test.

#[path = "../tests/support/hfs.rs"]
mod hfs;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

async fn metrics(base: &str) -> String {
    match reqwest::get(format!("{base}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A quantile from a Prometheus histogram's cumulative buckets (upper bound).
fn quantile(text: &str, name: &str, q: f64) -> f64 {
    let buckets: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| l.starts_with(&format!("{name}_bucket{{")))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, l.rsplit(' ').next()?.parse().ok()?))
        })
        .collect();
    let total = buckets.last().map(|b| b.1).unwrap_or(0.0);
    buckets
        .iter()
        .find(|(_, count)| *count >= q * total)
        .map(|b| b.0)
        .unwrap_or(f64::NAN)
}

fn rss_peak_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
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
        assert!(http
            .post(&server.base)
            .header("Content-Type", "application/fhir+json")
            .json(&tx)
            .send()
            .await
            .expect("load")
            .status()
            .is_success());
    }

    let port = hfs::free_port();
    let name = format!("load{}", std::process::id());
    let base = format!("http://127.0.0.1:{port}");
    let mut service = Command::new(env!("CARGO_BIN_EXE_trd-sentinel"))
        .arg("serve")
        .env("TRD_FHIR_BASE_URL", &server.base)
        .env("TRD_FHIR_MAX_CONCURRENCY", "1")
        .env("TRD_AMQP_URL", AMQP)
        .env("TRD_AMQP_INTAKE_QUEUE", format!("{name}.intake"))
        .env("TRD_AMQP_WORK_QUEUE", format!("{name}.work"))
        .env("TRD_AMQP_DEAD_LETTER", format!("{name}.dead"))
        .env("TRD_AMQP_EVENTS_EXCHANGE", format!("{name}.events"))
        .env("TRD_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("TRD_NOTIFY_TOKEN", "load")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let deadline = Instant::now() + Duration::from_secs(60);
    while metrics(&base).await.is_empty() {
        assert!(Instant::now() < deadline, "service did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let started = Instant::now();
    let mut accept = Vec::with_capacity(count);
    for n in 0..count {
        let order = json!({ "resourceType": "MedicationRequest", "id": format!("l{n}-new"), "status": "active", "intent": "order", "subject": { "reference": format!("Patient/l{n}") } });
        let t = Instant::now();
        let response = http
            .post(format!("{base}/notify"))
            .header("Authorization", "Bearer load")
            .json(&order)
            .send()
            .await
            .expect("notify");
        assert_eq!(response.status(), 200);
        accept.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    let sent = started.elapsed().as_secs_f64();
    loop {
        let text = metrics(&base).await;
        if sample(&text, "trd_processing_seconds_count") >= count as f64 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1800), "not done");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let total = started.elapsed().as_secs_f64();
    let text = metrics(&base).await;
    accept.sort_by(|a, b| a.total_cmp(b));
    println!("{count} notifications accepted in {sent:.1} s (HTTP 200 after broker confirm: median {:.1} ms, p99 {:.1} ms)", accept[count / 2], accept[(count * 99 / 100).min(count - 1)]);
    println!(
        "all assessed and written back in {total:.1} s = {:.1} patients/s",
        count as f64 / total
    );
    println!(
        "end-to-end (queued -> written back): p50 <= {} s, p99 <= {} s; processing one item: p50 <= {} s, p99 <= {} s",
        quantile(&text, "trd_end_to_end_seconds", 0.5),
        quantile(&text, "trd_end_to_end_seconds", 0.99),
        quantile(&text, "trd_processing_seconds", 0.5),
        quantile(&text, "trd_processing_seconds", 0.99)
    );
    println!(
        "service peak RSS {:.1} MB; dead letters {}",
        rss_peak_mb(service.id()),
        sample(&text, "trd_dead_letters_total")
    );
    let _ = Command::new("kill")
        .args(["-TERM", &service.id().to_string()])
        .status();
    let _ = service.wait();
}
