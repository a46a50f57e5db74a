//! `evaluate`'s speed against a bare parse of the same files, in one process: for each
//! corpus, paired runs of (1) every file into `serde_json::Value`, one thread, and (2)
//! what `evaluate` does (read on all cores, group by patient, assess on all cores),
//! each timed by the wall clock and by the whole process's CPU time, and (3) the same
//! `evaluate` with both quality measures (`--measure cms159 --measure cms128`).
//! Reports the medians of three runs each and the ratios to the bare parse.
//!
//! ```text
//! cargo bench --bench throughput                                  # both corpora
//! THROUGHPUT_DIR=/data/synthea cargo bench --bench throughput     # another real corpus
//! POPULATION=600 BUNDLE_BYTES=500000 cargo bench --bench throughput
//! ```
//!
//! Corpora: the real Synthea R4 bundles in ../shared/data/synthea-r4-sample (or
//! THROUGHPUT_DIR), and the project's generated population (cached in
//! $TMPDIR/trd-sentinel-population-COUNT-BYTES), as Bundles and as a Bulk Data export
//! (one NDJSON file per resource type, $TMPDIR/trd-sentinel-bulk-COUNT-BYTES). Under `cargo test` (no --bench flag)
//! it runs once on 3 small generated bundles as a smoke test.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use time::macros::date;
use trd_sentinel::batch::{self, Inputs, Progress};
use trd_sentinel::clinical::{AssessOptions, Knowledge, Policy, QualityMeasures};
use trd_sentinel::engine::Engine;
use trd_sentinel::fhir::read::ResourcePool;

#[path = "support/measure.rs"]
mod measure;
#[path = "support/population.rs"]
mod population;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (wall seconds, CPU seconds of the whole process) of `f`.
fn timed<T>(f: impl FnOnce() -> T) -> (f64, f64, T) {
    let pid = std::process::id();
    let cpu = measure::cpu_seconds(pid);
    let started = Instant::now();
    let out = f();
    (
        started.elapsed().as_secs_f64(),
        measure::cpu_seconds(pid) - cpu,
        out,
    )
}

fn parse_all(paths: &[PathBuf]) -> usize {
    let mut entries = 0usize;
    for path in paths {
        let text = fs::read_to_string(path).expect("read");
        if path.extension().is_some_and(|x| x == "ndjson") {
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let _: serde_json::Value = serde_json::from_str(line).expect("json line");
                entries += 1;
            }
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&text).expect("json");
        entries += value["entry"].as_array().map(Vec::len).unwrap_or(0);
    }
    entries
}

/// What `evaluate` does between reading the arguments and printing: (patients,
/// trials).
fn evaluate_all(inputs: &Inputs, engine: &Engine) -> (usize, usize) {
    let mut pool = ResourcePool::new(engine.relevance.clone());
    let progress = Progress::new(inputs, false);
    batch::read_inputs(&mut pool, inputs, &progress, true).expect("read");
    let records = pool.records();
    let mut trials = 0usize;
    batch::assess_all(&records, engine, date!(2025 - 06 - 30), |result| {
        trials += result.map(|a| a.trials.len()).unwrap_or(0);
        Ok::<(), ()>(())
    })
    .expect("assess");
    (records.len(), trials)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    measure::percentile(&values, 0.5)
}

fn run(name: &str, dir: &Path, paths: Vec<PathBuf>, pairs: usize) {
    let bytes: u64 = paths
        .iter()
        .map(|p| fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let mb = bytes as f64 / 1e6;
    // Warm the page cache so both passes read from memory.
    for path in &paths {
        let _ = fs::read(path);
    }
    let engine = Engine::new(
        Knowledge::embedded().expect("knowledge"),
        Policy::default_preset().expect("policy"),
        AssessOptions::default(),
    );
    let measuring = Engine::new(
        Knowledge::embedded().expect("knowledge"),
        Policy::default_preset().expect("policy"),
        AssessOptions {
            quality_measures: QualityMeasures {
                cms159: true,
                cms128: true,
            },
            ..AssessOptions::default()
        },
    );
    let inputs = Inputs::collect(&[dir.to_path_buf()]).expect("inputs");
    let (mut parse_wall, mut parse_cpu, mut eval_wall, mut eval_cpu) =
        (vec![], vec![], vec![], vec![]);
    let (mut measure_wall, mut measure_cpu) = (vec![], vec![]);
    let (mut entries, mut patients, mut trials) = (0, 0, 0);
    for _ in 0..pairs {
        let (wall, cpu, n) = timed(|| parse_all(&paths));
        parse_wall.push(wall);
        parse_cpu.push(cpu);
        entries = n;
        let (wall, cpu, (p, t)) = timed(|| evaluate_all(&inputs, &engine));
        eval_wall.push(wall);
        eval_cpu.push(cpu);
        (patients, trials) = (p, t);
        let (wall, cpu, _) = timed(|| evaluate_all(&inputs, &measuring));
        measure_wall.push(wall);
        measure_cpu.push(cpu);
    }
    let (mw, mc) = (median(measure_wall), median(measure_cpu));
    let (pw, pc, ew, ec) = (
        median(parse_wall),
        median(parse_cpu),
        median(eval_wall),
        median(eval_cpu),
    );
    println!(
        "{name}: {} files, {mb:.1} MB, {entries} entries, {patients} patients, {trials} trials",
        paths.len()
    );
    println!(
        "  parse-only (serde_json::Value, 1 thread): wall {pw:.3} s ({:.0} MB/s), CPU {pc:.2} s",
        mb / pw
    );
    println!(
        "  evaluate ({} threads): wall {ew:.3} s ({:.0} MB/s), CPU {ec:.2} s",
        rayon::current_num_threads(),
        mb / ew
    );
    println!(
        "  ratios evaluate / parse: CPU {:.2} (aim <= 0.40), wall {:.2} (aim <= 0.25)  [median of {pairs} pairs]",
        ec / pc,
        ew / pw
    );
    println!(
        "  evaluate --measure cms159 --measure cms128: wall {mw:.3} s, CPU {mc:.2} s; ratios to parse: CPU {:.2}, wall {:.2}; to plain evaluate: CPU {:.2}, wall {:.2}",
        mc / pc,
        mw / pw,
        mc / ec,
        mw / ew
    );
}

fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let pairs = if benchmarking { 3 } else { 1 };
    if benchmarking {
        let real = std::env::var("THROUGHPUT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/synthea-r4-sample")
            });
        if real.is_dir() {
            let mut paths: Vec<PathBuf> = fs::read_dir(&real)
                .expect("corpus")
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect();
            paths.sort();
            run("Synthea R4 sample", &real, paths, pairs);
        } else {
            eprintln!("no real corpus at {} (set THROUGHPUT_DIR)", real.display());
        }
    }
    let (count, bytes) = if benchmarking {
        (env_or("POPULATION", 300), env_or("BUNDLE_BYTES", 1_000_000))
    } else {
        (3, 50_000)
    };
    let dir = std::env::temp_dir().join(format!("trd-sentinel-population-{count}-{bytes}"));
    let paths = population::ensure_population(&dir, count, bytes);
    run("generated population", &dir, paths, pairs);
    // The same population as a Bulk Data export: one NDJSON file per resource type.
    let dir = std::env::temp_dir().join(format!("trd-sentinel-bulk-{count}-{bytes}"));
    let paths = population::ensure_bulk_export(&dir, count, bytes);
    run("generated population as Bulk NDJSON", &dir, paths, pairs);
}
