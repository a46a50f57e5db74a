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
#[path = "support/measure.rs"]
mod measure;

use std::time::Instant;

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

#[tokio::main]
async fn main() {
    let count = measure::sample_size("PATIENTS", 1000, 12);
    let server = hfs::Hfs::start();

    let load_started = Instant::now();
    let patients = server.load_copies(TEMPLATES, count).await;
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
            measure::percentile(&latencies, 0.5),
            measure::percentile(&latencies, 0.99),
            requests as f64 / count as f64
        );
    }
}
