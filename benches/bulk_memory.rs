//! Peak memory of `evaluate` (the real binary, as a child process) on a Bulk Data
//! export larger than its memory budget, grouped by patient on disk, against the same
//! export read in memory; and on the real Synthea bundles. Also checks that both
//! ways give the same answers (the same JSON lines).
//!
//! ```text
//! cargo bench --bench bulk_memory                              # ~2 GB export (2,000 patients)
//! BULK_PATIENTS=500 cargo bench --bench bulk_memory
//! ```
//!
//! The export is cached in $TMPDIR/trd-sentinel-bulk-COUNT-BYTES. Under `cargo test`
//! it runs on a 2 MB export with a 0.5 MB budget as a smoke test.

#[path = "support/measure.rs"]
mod measure;
#[path = "support/population.rs"]
mod population;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `evaluate` on `input`; (peak RSS MB, wall seconds, sorted output lines).
fn evaluate(input: &Path, budget_mb: f64) -> (f64, f64, Vec<String>) {
    let out = std::env::temp_dir().join(format!("trd-bulk-out-{}.jsonl", std::process::id()));
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_trd-sentinel"))
        .arg("evaluate")
        .arg(input)
        .args(["--as-of", "2025-06-30", "--format", "jsonl"])
        .arg(format!("--memory-budget-mb={budget_mb}"))
        .stdout(std::fs::File::create(&out).expect("out"))
        .stderr(Stdio::null())
        .spawn()
        .expect("evaluate");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kb = 0.0f64;
    loop {
        if let Ok(status) = std::fs::read_to_string(&status_file) {
            if let Some(kb) = status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            {
                peak_kb = peak_kb.max(kb);
            }
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let wall = started.elapsed().as_secs_f64();
    let mut lines: Vec<String> = std::fs::read_to_string(&out)
        .expect("output")
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    let _ = std::fs::remove_file(&out);
    (peak_kb / 1024.0, wall, lines)
}

fn size_mb(paths: &[PathBuf]) -> f64 {
    paths
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum::<u64>() as f64
        / 1e6
}

fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let count = measure::sample_size("BULK_PATIENTS", 2000, 20);
    let bytes = if benchmarking { 1_000_000 } else { 100_000 };
    let dir = std::env::temp_dir().join(format!("trd-sentinel-bulk-{count}-{bytes}"));
    let paths = population::ensure_bulk_export(&dir, count, bytes);
    let mb = size_mb(&paths);
    let budget = if benchmarking { 256.0 } else { 0.5 };
    println!(
        "Bulk export: {count} patients, {} NDJSON files, {mb:.0} MB",
        paths.len()
    );
    let (sharded_rss, sharded_wall, sharded) = evaluate(&dir, budget);
    println!(
        "  grouped on disk (budget {budget} MB, {} shards): peak RSS {sharded_rss:.0} MB, wall {sharded_wall:.1} s",
        (mb / budget).ceil()
    );
    let (memory_rss, memory_wall, in_memory) = evaluate(&dir, 1_000_000.0);
    println!("  grouped in memory: peak RSS {memory_rss:.0} MB, wall {memory_wall:.1} s");
    assert_eq!(sharded.len(), count, "one line per patient");
    assert!(sharded == in_memory, "both ways give the same answers");
    println!("  the same {} answers both ways", sharded.len());

    if benchmarking {
        let synthea =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/synthea-r4-sample");
        if synthea.is_dir() {
            let (rss, wall, lines) = evaluate(&synthea, 1024.0);
            println!(
                "Synthea R4 sample (bundles): {} patients, peak RSS {rss:.0} MB, wall {wall:.2} s",
                lines.len()
            );
        }
    }
}
