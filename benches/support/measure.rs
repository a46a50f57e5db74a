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
