//! `trd-sentinel serve` as a real process for end-to-end tests and the load harness:
//! its own RabbitMQ vhost (support/broker.rs: deleted with its queues when the last
//! holder drops), a free port, the log in a file, killed when dropped. When it does not
//! start, the panic says why: its exit status and the end of its log. Also reads its
//! Prometheus metrics.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::broker::TestBroker;
use super::hfs::free_port;

pub const TOKEN: &str = "test-notify-token";

/// How many lines of the log a failed start shows.
const LOG_TAIL_LINES: usize = 40;

pub struct Service {
    child: Child,
    pub http: String,
    pub log: PathBuf,
    /// Dropped after the process is killed (fields drop after `Drop::drop`).
    pub broker: Arc<TestBroker>,
}

impl Service {
    /// Starts `serve` against `fhir` with queues named `{name}.*` in the vhost of
    /// `name` (shared with every other holder of that name: replicas, restarts, the
    /// test's own connection); `env` adds or overrides settings (`TRD_HTTP_ADDR` there
    /// fixes the port, e.g. for a restart).
    pub fn start(name: &str, fhir: &str, env: &[(&str, &str)]) -> Self {
        let broker = TestBroker::named(name);
        let port = env
            .iter()
            .find(|(k, _)| *k == "TRD_HTTP_ADDR")
            .and_then(|(_, v)| v.rsplit(':').next()?.parse().ok())
            .unwrap_or_else(free_port);
        let log = std::env::temp_dir().join(format!("trd-{name}-{}.log", std::process::id()));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log");
        let mut command = Command::new(env!("CARGO_BIN_EXE_trd-sentinel"));
        command
            .arg("serve")
            .env("TRD_FHIR_BASE_URL", fhir)
            .env("TRD_AMQP_URL", &broker.url)
            .env("TRD_AMQP_INTAKE_QUEUE", format!("{name}.intake"))
            .env("TRD_AMQP_WORK_QUEUE", format!("{name}.work"))
            .env("TRD_AMQP_DEAD_LETTER", format!("{name}.dead"))
            .env("TRD_AMQP_EVENTS_EXCHANGE", format!("{name}.events"))
            .env("TRD_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("TRD_NOTIFY_TOKEN", TOKEN)
            // Helios on SQLite answers overlapping reads and writes with lock errors
            // (as HTTP 400): one request at a time.
            .env("TRD_FHIR_MAX_CONCURRENCY", "1")
            .env("RUST_LOG", "info")
            .stdout(Stdio::from(file.try_clone().expect("log")))
            .stderr(Stdio::from(file));
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().expect("serve");
        let mut service = Self {
            child,
            http: format!("http://127.0.0.1:{port}"),
            log,
            broker,
        };
        service.wait_listening();
        service
    }

    /// serve listens once the EHR answered (it waits up to two minutes for it) and the
    /// broker is connected. A process that ended fails the wait at once.
    /// Until the service itself listens: while it starts (waiting for the EHR and the
    /// broker) a start-up listener answers `/healthz` with "starting" and everything
    /// else 503; the service's own `/healthz` says "ok".
    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(180);
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(2)))
            .http_status_as_error(false)
            .build()
            .new_agent();
        let health = format!("{}/healthz", self.http);
        while Instant::now() < deadline {
            let serving = agent
                .get(&health)
                .call()
                .ok()
                .and_then(|mut answer| answer.body_mut().read_to_string().ok())
                .is_some_and(|body| body == "ok");
            if serving {
                return;
            }
            if let Some(status) = self.exited() {
                panic!(
                    "service exited before listening ({status}); last lines of its log {}:\n{}",
                    self.log.display(),
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "service still running but not listening on {} after 180 s; last lines of its log {}:\n{}",
            self.http,
            self.log.display(),
            self.log_tail()
        );
    }

    /// The last lines of the log, or why there are none.
    pub fn log_tail(&self) -> String {
        match std::fs::read_to_string(&self.log) {
            Ok(text) if text.trim().is_empty() => "(the log is empty)".to_owned(),
            Ok(text) => {
                let lines: Vec<&str> = text.lines().collect();
                lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
            }
            Err(e) => format!("(the log cannot be read: {e})"),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status, once the process has ended by itself.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn kill9(&mut self) {
        let _ = self.child.kill(); // SIGKILL
        let _ = self.child.wait();
    }

    pub fn terminate(&mut self) -> ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        self.child.wait().expect("exit")
    }

    /// The service's /metrics text (empty when it does not answer).
    pub async fn metrics(&self) -> String {
        match reqwest::get(format!("{}/metrics", self.http)).await {
            Ok(r) => r.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// The sum of a metric's series.
    pub async fn metric(&self, name: &str) -> f64 {
        metric_sum(&self.metrics().await, name)
    }

    /// Peak resident memory so far, in MB (Linux).
    pub fn peak_rss_mb(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmHWM:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            })
            .map(|kb| kb / 1024.0)
            .unwrap_or(f64::NAN)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The sum of a Prometheus metric's series in a /metrics text.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A quantile from a Prometheus histogram's cumulative buckets: the upper bound of
/// the bucket it falls in.
pub fn histogram_quantile(text: &str, name: &str, q: f64) -> f64 {
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
