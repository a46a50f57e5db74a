//! `serve` while the EHR does not answer yet: the process is alive and says so, and
//! says what it waits for and why (a refused connection, not "error sending request").

use std::io::Read;
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn get(url: &str) -> Option<(u16, String)> {
    let agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut answer = agent.get(url).call().ok()?;
    let status = answer.status().as_u16();
    let text = answer.body_mut().read_to_string().ok()?;
    Some((status, text))
}

#[test]
fn a_service_waiting_for_its_ehr_answers_its_probes_and_says_why() {
    // A port nothing listens on: the EHR refuses connections.
    let closed = TcpListener::bind("127.0.0.1:0").expect("port");
    let ehr = format!("http://{}/fhir", closed.local_addr().expect("addr"));
    drop(closed);
    let free = TcpListener::bind("127.0.0.1:0").expect("port");
    let addr = free.local_addr().expect("addr");
    drop(free);
    let mut child = Command::new(env!("CARGO_BIN_EXE_trd-sentinel"))
        .arg("serve")
        .env_clear()
        .env("TRD_FHIR_BASE_URL", &ehr)
        .env("TRD_HTTP_ADDR", addr.to_string())
        .env("TRD_NOTIFY_TOKEN", "start-up-test-token")
        .env("TRD_RECONCILE_ENABLED", "false")
        .env("TRD_SUBSCRIPTIONS_ENSURE_ON_START", "false")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("serve");
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut health = None;
    while Instant::now() < deadline {
        health = get(&format!("http://{addr}/healthz"));
        if health.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // Long enough for a first refused attempt to be logged and shown.
    std::thread::sleep(Duration::from_secs(2));
    let ready = get(&format!("http://{addr}/readyz"));
    let _ = child.kill();
    let _ = child.wait();
    let mut log = String::new();
    if let Some(mut stderr) = child.stderr.take() {
        let _ = stderr.read_to_string(&mut log);
    }
    assert_eq!(
        health.map(|h| h.0),
        Some(200),
        "alive while starting: {log}"
    );
    let (status, body) = ready.expect("readyz answers");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("waiting for the EHR"), "{body}");
    assert!(body.contains("Connection refused"), "the cause: {body}");
    assert!(
        log.contains("Connection refused"),
        "the log names the cause: {log}"
    );
}
