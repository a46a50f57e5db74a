//! Throughput of `evaluate` over a generated population, against a parse-only pass
//! (every file into serde_json::Value) over the same files in the same run.
//!
//!     cargo bench --bench throughput              # 300 bundles of ~1 MB
//!     POPULATION=600 BUNDLE_BYTES=500000 cargo bench --bench throughput
//!
//! Under `cargo test` (no --bench flag) it runs on 3 small bundles as a smoke test.
//! The population is cached in $TMPDIR/trd-sentinel-population-COUNT-BYTES.

use std::fs;
use std::time::Instant;

use time::macros::date;
use trd_sentinel::clinical::{assess, Knowledge, Policy};
use trd_sentinel::fhir::read::{ObservationCodes, ResourcePool};

#[path = "support/population.rs"]
mod population;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let (count, bytes) = if benchmarking {
        (env_or("POPULATION", 300), env_or("BUNDLE_BYTES", 1_000_000))
    } else {
        (3, 50_000)
    };
    let dir = std::env::temp_dir().join(format!("trd-sentinel-population-{count}-{bytes}"));
    let started = Instant::now();
    let paths = population::ensure_population(&dir, count, bytes);
    let total_bytes: u64 = paths
        .iter()
        .map(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let mb = total_bytes as f64 / 1e6;
    eprintln!(
        "population: {count} bundles, {mb:.1} MB in {} (ready in {:.1}s)",
        dir.display(),
        started.elapsed().as_secs_f64()
    );

    // Warm the page cache so both passes read from memory.
    for path in &paths {
        let _ = fs::read(path);
    }

    let knowledge = Knowledge::embedded().expect("knowledge");
    let policy = Policy::default_preset().expect("policy");
    let as_of = date!(2025 - 06 - 30);

    let parse_started = Instant::now();
    let mut values = 0usize;
    for path in &paths {
        let text = fs::read_to_string(path).expect("read");
        let value: serde_json::Value = serde_json::from_str(&text).expect("json");
        values += value["entry"].as_array().map(Vec::len).unwrap_or(0);
    }
    let parse_secs = parse_started.elapsed().as_secs_f64();

    let evaluate_started = Instant::now();
    let mut pool = ResourcePool::new(ObservationCodes::from_knowledge(&knowledge));
    for path in &paths {
        pool.add_path(path).expect("read");
    }
    let records = pool.records();
    let mut trials = 0usize;
    for record in &records {
        trials += assess(record, &policy, &knowledge, as_of).trials.len();
    }
    let evaluate_secs = evaluate_started.elapsed().as_secs_f64();

    assert_eq!(records.len(), count, "one record per bundle");
    assert!(
        trials >= count,
        "every generated patient has at least one trial"
    );
    println!(
        "resources: {values} ({} typed by evaluate), patients: {}, trials: {trials}",
        pool.stats.typed,
        records.len()
    );
    println!(
        "parse-only (serde_json::Value): {parse_secs:.3} s = {:.1} MB/s",
        mb / parse_secs
    );
    println!(
        "evaluate (read + map + assess): {evaluate_secs:.3} s = {:.1} MB/s, {:.0} patients/s",
        mb / evaluate_secs,
        records.len() as f64 / evaluate_secs
    );
    println!(
        "ratio evaluate/parse-only time: {:.2} (aim: <= 1.0)",
        evaluate_secs / parse_secs
    );
}
