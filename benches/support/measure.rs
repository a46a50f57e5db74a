//! What the load benches share: how many patients, and percentiles.

#![allow(dead_code)]

/// `default` patients under `cargo bench` (or the number in the environment variable
/// `var`); `smoke` under `cargo test`, where the bench runs as a quick smoke test.
pub fn sample_size(var: &str, default: usize, smoke: usize) -> usize {
    if std::env::args().any(|a| a == "--bench") {
        std::env::var(var)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    } else {
        smoke
    }
}

/// The `fraction` percentile (0.5 = median) of sorted values.
pub fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * fraction).round() as usize]
}

/// User + system CPU seconds of a process so far (Linux /proc; clock ticks of 1/100 s).
pub fn cpu_seconds(pid: u32) -> f64 {
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
