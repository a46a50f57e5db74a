//! Load harness (not a test) for `trd-sentinel export` against Helios on PostgreSQL:
//! a generated population (benches/support/population.rs, loaded as the EHR's data),
//! then
//!   1. `export --out`: kick-off to last byte, MB/s, EHR requests, peak RSS;
//!   2. `export --evaluate`: patients/s assessed here, peak RSS;
//!   3. `export --queue` to one replica and to two (each on a fresh Helios holding
//!      QUEUE_POPULATION patients, so neither finds the other's write-back):
//!      patients/s from the kick-off to the last patient assessed.
//!
//!     cargo bench --bench export_load                          # 10,000 and 2,000 patients
//!     POPULATION=2000 QUEUE_POPULATION=500 cargo bench --bench export_load
//!
//! Under `cargo test` it runs the same steps on 12 patients as a smoke test.

#[path = "../tests/support/broker.rs"]
mod broker;
#[path = "../tests/support/hfs.rs"]
mod hfs;
#[path = "support/measure.rs"]
mod measure;
#[path = "support/population.rs"]
mod population;
#[path = "../tests/support/service.rs"]
mod service;

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use hfs::{as_transaction, Hfs};
use service::Service;

const BIN: &str = env!("CARGO_BIN_EXE_trd-sentinel");

/// One generated patient as the EHR holds it: the types the engine reads (the rest
/// of a real chart is not exported: `_type`), vitals and check-up visits included as
/// the noise `_typeFilter` and the reader skip.
fn patient_entries(index: usize, bytes: usize) -> Vec<Value> {
    let bundle: Value =
        serde_json::from_str(&population::patient_bundle(index, bytes)).expect("bundle");
    let exported = [
        "Patient",
        "MedicationRequest",
        "MedicationDispense",
        "Observation",
        "Condition",
        "Encounter",
    ];
    as_transaction(&bundle)["entry"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|e| exported.contains(&e["resource"]["resourceType"].as_str().unwrap_or("")))
        .map(|mut e| {
            // Conditional references to practitioners and organisations this EHR lacks.
            if let Some(resource) = e["resource"].as_object_mut() {
                resource.remove("participant");
                resource.remove("serviceProvider");
            }
            e
        })
        .collect()
}

async fn load(server: &Hfs, count: usize, bytes: usize) {
    let http = reqwest::Client::new();
    let started = Instant::now();
    for chunk in (0..count).collect::<Vec<_>>().chunks(25) {
        let entries: Vec<Value> = chunk
            .iter()
            .flat_map(|&i| patient_entries(i, bytes))
            .collect();
        let response = http
            .post(&server.base)
            .header("Content-Type", "application/fhir+json")
            .json(&json!({"resourceType": "Bundle", "type": "transaction", "entry": entries}))
            .send()
            .await
            .expect("load");
        assert!(
            response.status().is_success(),
            "load: {}",
            response.status()
        );
    }
    eprintln!(
        "loaded {count} patients in {:.0} s",
        started.elapsed().as_secs_f64()
    );
}

/// `export ARGS` under /usr/bin/time: (output, wall seconds, peak RSS in MB).
fn export(fhir: &str, args: &[&str], env: &[(&str, &str)]) -> (Output, f64, f64) {
    let mut command = Command::new("/usr/bin/time");
    command
        .args(["-f", "peak-rss-kb %M", BIN, "export"])
        .args(args)
        .env("TRD_FHIR_BASE_URL", fhir)
        .env("TRD_EXPORT_MAX_POLL_INTERVAL_SECS", "1")
        .env("TRD_EXPORT_POLL_INTERVAL_SECS", "1")
        .env(
            "TRD_EXPORT_STATE_FILE",
            std::env::temp_dir().join("trd-export-load-since"),
        )
        .env("TRD_FHIR_MAX_CONCURRENCY", "4");
    for (k, v) in env {
        command.env(k, v);
    }
    let started = Instant::now();
    let output = command.output().expect("run export");
    let wall = started.elapsed().as_secs_f64();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "export {args:?} failed:\n{stderr}");
    let rss = stderr
        .lines()
        .find_map(|l| l.strip_prefix("peak-rss-kb "))
        .and_then(|kb| kb.trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0);
    (output, wall, rss)
}

/// The summary line `export` prints: (bytes, seconds from kick-off to the last byte,
/// requests); the download's own seconds are `downloads`.
fn summary(output: &Output) -> (f64, f64, u64) {
    let text = String::from_utf8_lossy(&output.stderr);
    let line = text
        .lines()
        .find(|l| l.starts_with("export: "))
        .expect("the export summary line");
    let number_before = |marker: &str| -> f64 {
        let head = line.split(marker).next().unwrap_or("");
        head.rsplit(' ')
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(f64::NAN)
    };
    let requests = line
        .split("; ")
        .find(|p| p.contains("EHR requests"))
        .and_then(|p| p.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    (
        number_before(" bytes in"),
        number_before(" s (downloads"),
        requests,
    )
}

fn dir_mb(dir: &Path) -> f64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len() as f64)
                .sum::<f64>()
        })
        .unwrap_or(0.0)
        / 1e6
}

/// `export --queue` to `replicas` fresh replicas, against a fresh Helios holding
/// `members` patients: patients/s from the kick-off until every one is assessed.
async fn queued(members: usize, bytes: usize, replicas: usize) -> f64 {
    let server = Hfs::start_postgres();
    load(&server, members, bytes).await;
    let name = format!("exportload{}-{replicas}", std::process::id());
    let broker = broker::TestBroker::named(&name);
    let names = [
        ("TRD_AMQP_URL", broker.url.clone()),
        ("TRD_AMQP_SHARDS", "16".to_string()),
        ("TRD_AMQP_INTAKE_QUEUE", format!("{name}.intake")),
        ("TRD_AMQP_WORK_QUEUE", format!("{name}.work")),
        ("TRD_AMQP_DEAD_LETTER", format!("{name}.dead")),
        ("TRD_AMQP_EVENTS_EXCHANGE", format!("{name}.events")),
    ];
    let work = std::env::temp_dir()
        .join(format!(
            "trd-export-load-work-{}-{replicas}",
            std::process::id()
        ))
        .display()
        .to_string();
    let mut env: Vec<(&str, &str)> = names.iter().map(|(k, v)| (*k, v.as_str())).collect();
    env.push(("TRD_EXPORT_WORK_DIR", work.as_str()));
    // The export first (its records wait, durable, in the intake queue), then the
    // replicas: Helios's export worker and the replicas' gathers do not compete.
    let exporting = Instant::now();
    let (_, export_wall, rss) = export(&server.base, &["--system", "--queue"], &env);
    println!(
        "  export --queue of {members} patients: {export_wall:.1} s ({:.1} s to queue after the kick-off), peak RSS {rss:.0} MB",
        exporting.elapsed().as_secs_f64()
    );
    let shards = [("TRD_AMQP_SHARDS", "16"), ("TRD_FHIR_MAX_CONCURRENCY", "4")];
    let started = Instant::now();
    let pods: Vec<Service> = (0..replicas)
        .map(|_| Service::start(&name, &server.base, &shards))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let mut done = 0.0;
        for pod in &pods {
            done += pod.metric("trd_assessments_total").await;
        }
        if done >= members as f64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{done} of {members} assessed after an hour"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "export --queue, {replicas} replica(s): {members} patients assessed and written back in {seconds:.1} s from the replicas' start = {:.1} patients/s",
        members as f64 / seconds
    );
    members as f64 / seconds
}

#[tokio::main]
async fn main() {
    let count = measure::sample_size("POPULATION", 10_000, 12);
    let bytes = measure::sample_size("BUNDLE_BYTES", 12_000, 4_000);
    let server = Hfs::start_postgres();
    load(&server, count, bytes).await;

    let dir = std::env::temp_dir().join(format!("trd-export-load-{}", std::process::id()));
    let out = dir.join("kept");
    let out_arg = out.display().to_string();
    let (output, wall, rss) = export(&server.base, &["--out", &out_arg], &[]);
    let (bytes_down, seconds, requests) = summary(&output);
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    let downloads: f64 = text
        .split("(downloads ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(f64::NAN);
    println!(
        "export --out: {count} patients, {:.1} MB in {seconds:.1} s kick-off to last byte ({:.1} MB/s; {wall:.1} s wall), {requests} EHR requests, peak RSS {rss:.0} MB",
        bytes_down / 1e6,
        bytes_down / 1e6 / seconds.max(0.001)
    );
    println!(
        "  downloads alone: {downloads:.1} s = {:.1} MB/s",
        bytes_down / 1e6 / downloads.max(0.001)
    );
    println!("  on disk: {:.1} MB of NDJSON", dir_mb(&out.join("output")));

    let work = dir.join("work").display().to_string();
    let (output, wall, rss) = export(
        &server.base,
        &["--evaluate", "--format", "jsonl", "--as-of", "2026-12-01"],
        &[("TRD_EXPORT_WORK_DIR", work.as_str())],
    );
    let rows = output.stdout.iter().filter(|b| **b == b'\n').count();
    println!(
        "export --evaluate: {rows} patients in {wall:.1} s = {:.1} patients/s (export and assessment), peak RSS {rss:.0} MB",
        rows as f64 / wall
    );

    drop(server);
    let queue_count = measure::sample_size("QUEUE_POPULATION", 2_000, 6);
    let one = queued(queue_count, bytes, 1).await;
    let two = queued(queue_count, bytes, 2).await;
    println!("two replicas / one: {:.2}x", two / one);
    let _ = std::fs::remove_dir_all(&dir);
}
