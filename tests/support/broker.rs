//! The tests' RabbitMQ: every test (or service) works in a vhost of its own, made
//! when it is first asked for and deleted, with every queue and exchange in it, when
//! the last handle to it drops, pass or fail. A test run leaves the broker as it found
//! it: hundreds of leftover queues once exhausted the broker's file descriptors and
//! hung later tests (issue 28).
//!
//! Vhosts are made and deleted through RabbitMQ's management HTTP API (the plugin
//! `scripts/provision` enables), synchronously, so `Drop` can delete one.
//!
//! A `TestBroker` is shared by name: `TestBroker::named(name)` returns the live one
//! when a service or the test already holds it. A test that must keep queued messages
//! across a service's restart holds its own handle for the test's whole length.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use base64::Engine as _;
use lapin::{Connection, ConnectionProperties};

/// The management API of the broker on 127.0.0.1 (guest may use it from loopback).
const MANAGEMENT: &str = "http://127.0.0.1:15672/api";
/// Prefix of every test vhost; `scripts/provision` deletes any a killed run left.
pub const VHOST_PREFIX: &str = "trd-test.";

pub struct TestBroker {
    /// The name the queues are named after (`{name}.intake`, `{name}.work`, ...).
    pub name: String,
    pub vhost: String,
    /// The AMQP URL of this vhost, for `TRD_AMQP_URL`.
    pub url: String,
}

static LIVE: Mutex<BTreeMap<String, Weak<TestBroker>>> = Mutex::new(BTreeMap::new());

impl TestBroker {
    /// The broker of `name`: the live one if any holder has it, else a new vhost.
    pub fn named(name: &str) -> Arc<Self> {
        let mut live = LIVE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(broker) = live.get(name).and_then(Weak::upgrade) {
            return broker;
        }
        let broker = Arc::new(Self::create(name));
        live.insert(name.to_owned(), Arc::downgrade(&broker));
        broker
    }

    fn create(name: &str) -> Self {
        let safe: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let vhost = format!("{VHOST_PREFIX}{safe}.{}", std::process::id());
        management("PUT", &format!("vhosts/{vhost}"), "{}");
        management(
            "PUT",
            &format!("permissions/{vhost}/guest"),
            r#"{"configure": ".*", "write": ".*", "read": ".*"}"#,
        );
        Self {
            name: name.to_owned(),
            url: format!("amqp://guest:guest@127.0.0.1:5672/{vhost}"),
            vhost,
        }
    }

    /// A connection to this vhost (retried for a few seconds: the broker may be
    /// coming back from a restart).
    pub async fn connect(&self) -> Connection {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match Connection::connect(&self.url, ConnectionProperties::default()).await {
                Ok(connection) => return connection,
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(500)).await
                }
                Err(e) => panic!(
                    "RabbitMQ at 127.0.0.1:5672, vhost {} (scripts/provision starts it): {e}",
                    self.vhost
                ),
            }
        }
    }

    /// A queue or exchange of this test: `{name}.{suffix}`.
    pub fn queue(&self, suffix: &str) -> String {
        format!("{}.{suffix}", self.name)
    }

    /// How many queues this vhost holds now.
    pub fn queue_count(&self) -> usize {
        queue_count(Some(&self.vhost))
    }
}

impl Drop for TestBroker {
    fn drop(&mut self) {
        // Best effort: a broker stopped by a test is restarted by the next provision,
        // which also deletes what is left here.
        let _ = request("DELETE", &format!("vhosts/{}", self.vhost), "");
    }
}

/// Queues on the whole broker (`None`) or in one vhost.
pub fn queue_count(vhost: Option<&str>) -> usize {
    let path = match vhost {
        Some(v) => format!("queues/{v}?columns=name"),
        None => "queues?columns=name".to_owned(),
    };
    let body = request("GET", &path, "").unwrap_or_else(|e| panic!("GET {path}: {e}"));
    serde_json::from_str::<Vec<serde_json::Value>>(&body)
        .map(|queues| queues.len())
        .unwrap_or_else(|e| panic!("GET {path}: not a list: {e}"))
}

fn management(method: &str, path: &str, body: &str) {
    if let Err(e) = request(method, path, body) {
        panic!(
            "RabbitMQ management API ({MANAGEMENT}; scripts/provision enables it): {method} {path}: {e}"
        );
    }
}

fn request(method: &str, path: &str, body: &str) -> Result<String, String> {
    let url = format!("{MANAGEMENT}/{path}");
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("guest:guest")
    );
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let answer = match method {
        "PUT" => agent
            .put(&url)
            .header("Authorization", &auth)
            .content_type("application/json")
            .send(body),
        "DELETE" => agent.delete(&url).header("Authorization", &auth).call(),
        _ => agent.get(&url).header("Authorization", &auth).call(),
    };
    let mut answer = answer.map_err(|e| e.to_string())?;
    let status = answer.status();
    let text = answer
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(text)
    } else {
        Err(format!("HTTP {status}: {text}"))
    }
}
