//! Gather + assess + write-back per patient against a local Helios FHIR Server:
//! latency (median, p99) and requests per patient over N patients (default 1000),
//! first run (everything written) and second run (nothing to write).
//!
//!     cargo bench --bench ehr_roundtrip            # 1000 patients
//!     PATIENTS=200 cargo bench --bench ehr_roundtrip
//!
//! Under `cargo test` it runs 12 patients as a smoke test.

#[path = "../tests/support/hfs.rs"]
mod hfs;

use std::time::Instant;

use serde_json::{json, Value};
use time::macros::date;
use trd_sentinel::config::Config;
use trd_sentinel::ehr::Ehr;

const TEMPLATES: &[&str] = &[
    "trd-two-ssris",
    "one-failure-at-risk",
    "thase-rush-iii",
    "partial-response",
    "remission-after-second",
    "dose-too-low",
];

/// A fixture patient copied under a new id (every resource id and reference renamed).
fn copy_of(template: &str, n: usize) -> (String, Value) {
    let text = serde_json::to_string(&hfs::fixture(template)).expect("json");
    let id = format!("{template}-{n}");
    let renamed = text
        .replace(&format!("\"{template}"), &format!("\"{id}"))
        .replace(&format!("/{template}"), &format!("/{id}"))
        .replace(&format!("patient-{template}"), &format!("patient-{id}"));
    (
        format!("Patient/{id}"),
        serde_json::from_str(&renamed).expect("json"),
    )
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let count: usize = if benchmarking {
        std::env::var("PATIENTS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000)
    } else {
        12
    };
    let server = hfs::Hfs::start();
    let http = reqwest::Client::new();

    let load_started = Instant::now();
    let mut patients = Vec::with_capacity(count);
    for chunk in (0..count).collect::<Vec<_>>().chunks(50) {
        let mut entries = Vec::new();
        for &n in chunk {
            let (patient, bundle) = copy_of(TEMPLATES[n % TEMPLATES.len()], n);
            patients.push(patient);
            entries.extend(
                hfs::as_transaction(&bundle)["entry"]
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
        assert!(
            response.status().is_success(),
            "load failed: {}",
            response.status()
        );
    }
    eprintln!(
        "loaded {count} patients in {:.1} s",
        load_started.elapsed().as_secs_f64()
    );

    let config = Config::load_from(
        None,
        vec![("TRD_FHIR_BASE_URL".to_string(), server.base.clone())],
    )
    .expect("config");
    let ehr = Ehr::from_config(&config).expect("ehr");
    for round in ["first run (writes)", "second run (unchanged)"] {
        let mut latencies = Vec::with_capacity(count);
        let mut requests = 0usize;
        let mut written = 0usize;
        let started = Instant::now();
        for patient in &patients {
            let t = Instant::now();
            let run = ehr
                .run_patient(patient, date!(2024 - 10 - 20))
                .await
                .expect("run");
            latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            requests += run.requests;
            written += run.write.plan.written.len();
        }
        let total = started.elapsed().as_secs_f64();
        latencies.sort_by(|a, b| a.total_cmp(b));
        println!(
            "{round}: {count} patients in {total:.1} s = {:.1} patients/s; latency median {:.1} ms, p99 {:.1} ms; {:.1} requests/patient; {written} resources written",
            count as f64 / total,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            requests as f64 / count as f64
        );
    }
}
