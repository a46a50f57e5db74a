//! Helios FHIR Server for tests: started on a free loopback port with the R4 search
//! parameters, stopped when dropped. Two backends: in-memory SQLite ([`Hfs::start`],
//! one request at a time: it answers overlapping requests with lock errors) for
//! tests that need nothing else, and PostgreSQL ([`Hfs::start_postgres`], a fresh
//! database on 127.0.0.1:5432 for every server, dropped with it) wherever concurrent
//! requests or several replicas matter. The binary and data come from
//! scripts/provision (HFS_TEST_BIN, HFS_TEST_DATA).

#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub struct Hfs {
    child: Child,
    pub base: String,
    pub log: PathBuf,
    /// The PostgreSQL database it owns (dropped with it).
    database: Option<String>,
}

/// The PostgreSQL these machines run (trust auth; scripts/provision starts it).
pub const POSTGRES: &str = "postgresql://postgres@127.0.0.1:5432";

fn psql(sql: &str) -> bool {
    psql_in("postgres", sql)
}

fn psql_in(database: &str, sql: &str) -> bool {
    Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            database,
            "-q",
            "-c",
            sql,
        ])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn cache() -> String {
    format!(
        "{}/.cache/trd-sentinel",
        std::env::var("HOME").unwrap_or_default()
    )
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Hfs {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Helios on a fresh PostgreSQL database: concurrent requests are served.
    pub fn start_postgres() -> Self {
        let database = format!("trd_hfs_{}_{}", std::process::id(), free_port());
        assert!(
            psql(&format!("CREATE DATABASE {database}")),
            "cannot create a PostgreSQL database at 127.0.0.1:5432 (scripts/provision starts PostgreSQL)"
        );
        let url = format!("{POSTGRES}/{database}");
        let mut server = Self::launch(&url, &[("HFS_STORAGE_BACKEND", "postgres")]);
        server.database = Some(database);
        server
    }

    pub fn start_with(env: &[(&str, &str)]) -> Self {
        Self::launch(":memory:", env)
    }

    fn launch(database_url: &str, env: &[(&str, &str)]) -> Self {
        let bin =
            std::env::var("HFS_TEST_BIN").unwrap_or_else(|_| format!("{}/hfs/bin/hfs", cache()));
        let data =
            std::env::var("HFS_TEST_DATA").unwrap_or_else(|_| format!("{}/hfs-data", cache()));
        assert!(
            PathBuf::from(&bin).is_file(),
            "Helios FHIR Server not found at {bin}: run scripts/provision (scripts/test does)"
        );
        assert!(
            PathBuf::from(&data)
                .join("search-parameters-r4.json")
                .is_file(),
            "search parameters missing in {data}: run scripts/provision"
        );
        let port = free_port();
        let log = std::env::temp_dir().join(format!("hfs-{port}.log"));
        let log_file = std::fs::File::create(&log).expect("log file");
        let mut command = Command::new(&bin);
        command
            .args([
                "--port",
                &port.to_string(),
                "--database-url",
                database_url,
                "--data-dir",
                &data,
                "--seed-conformance",
            ])
            // Its links (`next` pages, fullUrls) name the address it really listens
            // on, as a real EHR's do; the default (localhost:8080) is another origin.
            .env("HFS_BASE_URL", format!("http://127.0.0.1:{port}"))
            .env("HFS_SUBSCRIPTIONS_ENABLED", "true")
            .env("HFS_SUBSCRIPTION_ALLOW_PRIVATE_ENDPOINTS", "true")
            // Bulk export files in a directory of its own (by default they would go
            // into the shared search-parameter directory).
            .env(
                "HFS_BULK_EXPORT_OUTPUT_DIR",
                std::env::temp_dir().join(format!("hfs-export-{port}")),
            )
            .stdout(Stdio::from(log_file.try_clone().expect("log")))
            .stderr(Stdio::from(log_file));
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command.spawn().expect("start hfs");
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            log,
            database: None,
        };
        server.wait_ready();
        server
    }

    /// Loads copies `0..count` of the fixture patients (taken in turn, see
    /// [`copy_of`]), 50 per transaction; returns the copies' patient references.
    pub async fn load_copies(&self, fixtures: &[&str], count: usize) -> Vec<String> {
        let http = reqwest::Client::new();
        let mut patients = Vec::with_capacity(count);
        for chunk in (0..count).collect::<Vec<_>>().chunks(50) {
            let mut entries = Vec::new();
            for &n in chunk {
                let (patient, bundle) = copy_of(fixtures[n % fixtures.len()], n);
                patients.push(patient);
                entries.extend(
                    as_transaction(&bundle)["entry"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default(),
                );
            }
            let tx = json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries });
            let response = http
                .post(&self.base)
                .header("Content-Type", "application/fhir+json")
                .json(&tx)
                .send()
                .await
                .expect("load");
            assert!(
                response.status().is_success(),
                "loading copies failed: {}",
                response.status()
            );
        }
        // A bulk load leaves PostgreSQL's statistics behind (autovacuum analyses
        // later): Helios's searches then get plans for empty tables and take seconds
        // each. A hospital's database has current statistics; so do the tests.
        if let Some(database) = &self.database {
            assert!(psql_in(database, "ANALYZE"), "ANALYZE {database}");
        }
        patients
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if http_status(&format!("{}/metadata", self.base))
                .is_some_and(|s| (200..300).contains(&s))
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "hfs did not answer /metadata within 120 s; log: {}",
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }
}

impl Drop for Hfs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(port) = self.base.rsplit(':').next() {
            let _ =
                std::fs::remove_dir_all(std::env::temp_dir().join(format!("hfs-export-{port}")));
        }
        if let Some(database) = &self.database {
            psql(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"));
        }
    }
}

/// The status of a plain HTTP GET over std (readiness checks need no runtime).
fn http_status(url: &str) -> Option<u16> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}")))?;
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nAccept: application/fhir+json\r\nConnection: close\r\n\r\n").ok()?;
    let mut head = [0u8; 32];
    let n = stream.read(&mut head).ok()?;
    String::from_utf8_lossy(&head[..n])
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// A fixture bundle as a transaction of `PUT Type/id` entries, with urn:uuid
/// references rewritten to `Type/id` (as an EHR would store them).
pub fn as_transaction(bundle: &Value) -> Value {
    let mut names: HashMap<String, String> = HashMap::new();
    for entry in bundle["entry"].as_array().into_iter().flatten() {
        let r = &entry["resource"];
        if let (Some(url), Some(kind), Some(id)) = (
            entry["fullUrl"].as_str(),
            r["resourceType"].as_str(),
            r["id"].as_str(),
        ) {
            names.insert(url.to_string(), format!("{kind}/{id}"));
        }
    }
    let entries: Vec<Value> = bundle["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|entry| {
            let mut resource = entry["resource"].clone();
            rewrite(&mut resource, &names);
            let url = format!(
                "{}/{}",
                resource["resourceType"].as_str().unwrap_or(""),
                resource["id"].as_str().unwrap_or("")
            );
            json!({ "resource": resource, "request": { "method": "PUT", "url": url } })
        })
        .collect();
    json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries })
}

fn rewrite(value: &mut Value, names: &HashMap<String, String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get_mut("reference") {
                if let Some(name) = names.get(reference.as_str()) {
                    *reference = name.clone();
                }
            }
            map.values_mut().for_each(|v| rewrite(v, names));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite(v, names)),
        _ => {}
    }
}

/// Copy `n` of a fixture patient, as `{fixture}-{n}`: resource ids, references and
/// full URLs renamed, so many copies can live in one server. Returns the copy's
/// patient reference and bundle.
pub fn copy_of(fixture_name: &str, n: usize) -> (String, Value) {
    let text = serde_json::to_string(&fixture(fixture_name)).expect("json");
    let id = format!("{fixture_name}-{n}");
    let renamed = text
        .replace(&format!("\"{fixture_name}"), &format!("\"{id}"))
        .replace(&format!("/{fixture_name}"), &format!("/{id}"))
        .replace(&format!("patient-{fixture_name}"), &format!("patient-{id}"));
    (
        format!("Patient/{id}"),
        serde_json::from_str(&renamed).expect("json"),
    )
}

pub fn fixture(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/patients")
        .join(format!("{name}.json"));
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("json")
}
