//! The patient page served by `serve`, reached from a CDS card's link: the signed link
//! (valid, expired, tampered, another key's, another patient's), the headers (no-store,
//! a strict Content-Security-Policy), and a real browser (headless Chromium) that
//! loads the page, requests nothing else, and leaves a screenshot as a test artifact
//! (target/test-artifacts/).

#[path = "support/broker.rs"]
mod broker;
#[path = "support/browser.rs"]
mod browser;
#[path = "support/cds.rs"]
mod cds;
#[path = "support/hfs.rs"]
mod hfs;
#[path = "support/service.rs"]
mod service;

use std::process::Command;

use serde_json::Value;
use trd_sentinel::config::Secret;
use trd_sentinel::page::link::PageLinks;

use browser::{artifacts, chromium};
use cds::*;
use hfs::{as_transaction, free_port, Hfs};
use service::Service;

const KEY: &str = "page-signing-key-for-tests-0123456789abcdef";
const EHR: &str = "https://ehr.test";

/// The URLs of the requests made in the page's context, from the browser's network
/// log: every request job whose network isolation key names the page's site (its
/// own load and anything it would load, from any origin); the browser's own update
/// and account checks carry another key.
fn page_requests(netlog: &str, site: &str) -> Vec<String> {
    let log: Value = serde_json::from_str(netlog).expect("netlog JSON");
    let start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
        .as_i64()
        .expect("event type");
    let mut urls: Vec<String> = log["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"].as_i64() == Some(start_job))
        .filter(|e| {
            e["params"]["network_isolation_key"]
                .as_str()
                .is_some_and(|k| k.starts_with(site))
        })
        .filter_map(|e| e["params"]["url"].as_str().map(str::to_string))
        .collect();
    urls.sort();
    urls.dedup();
    urls
}

#[tokio::test]
async fn a_card_links_to_the_timeline_page_which_a_browser_shows_alone() {
    let hfs = Hfs::start();
    let bundle = patient_today("trd-two-ssris");
    reqwest::Client::new()
        .post(&hfs.base)
        .header("Content-Type", "application/fhir+json")
        .json(&as_transaction(&bundle))
        .send()
        .await
        .expect("load")
        .error_for_status()
        .expect("loaded");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[cds]\nenabled = true\n\n[[cds.clients]]\niss = \"{EHR}\"\njwks_file = \"{}\"\n",
            data("jwks-a.json").display()
        ),
    )
    .expect("config");
    let addr = format!("127.0.0.1:{port}");
    let config_path = config.display().to_string();
    let service = Service::start(
        "page",
        &hfs.base,
        &[
            ("TRD_CONFIG", config_path.as_str()),
            ("TRD_HTTP_ADDR", addr.as_str()),
            ("TRD_HTTP_PUBLIC_BASE_URL", base.as_str()),
            ("TRD_PAGE_ENABLED", "true"),
            ("TRD_PAGE_SIGNING_KEY", KEY),
            (
                "TRD_PAGE_FRAME_ANCESTORS",
                "https://ehr.hospital.example.org",
            ),
        ],
    );

    // The card carries the link (absolute), with no patient in it.
    let url = format!("{base}/cds-services/trd-patient-view");
    let body = hook_request(
        "patient-view",
        "Patient/trd-two-ssris",
        None,
        None,
        Some(full_prefetch(&bundle)),
        &[],
    );
    let response: Value = reqwest::Client::new()
        .post(&url)
        .bearer_auth(jwt("es384-a", "key-a", &claims(EHR, &url), None))
        .json(&body)
        .send()
        .await
        .expect("hook")
        .json()
        .await
        .expect("json");
    let link = &response["cards"][0]["links"][0];
    assert_eq!(link["type"], "absolute");
    assert_eq!(link["label"], "Treatment timeline");
    let page_url = link["url"].as_str().expect("url").to_string();
    assert!(page_url.starts_with(&format!("{base}/page/")), "{page_url}");
    assert!(!page_url.contains("trd-two-ssris"), "no patient in the URL");

    // The page: the record gathered by the service, never cached, nothing loaded.
    let page = reqwest::get(&page_url).await.expect("page");
    assert_eq!(page.status(), 200);
    let header = |name: &str| {
        page.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    assert!(header("cache-control").contains("no-store"));
    assert_eq!(
        header("content-security-policy"),
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors https://ehr.hospital.example.org"
    );
    let html = page.text().await.expect("html");
    assert!(html.contains("<h1>Treatment-resistant depression</h1>"));
    assert!(
        html.contains("data-agent=\"sertraline\"") && html.contains("data-agent=\"escitalopram\"")
    );
    assert!(html.len() < 200 * 1024);

    // Links that are not good: expired, altered, another key's, another patient's.
    let ours = PageLinks::new(Secret::new(KEY), 900, &base);
    let token = |link: &str| link.rsplit('/').next().expect("token").to_string();
    let expired = ours
        .link("Patient/trd-two-ssris", now() - 3600)
        .expect("link");
    let mut altered = page_url.clone();
    let last = altered.pop().expect("char");
    altered.push(if last == 'A' { 'B' } else { 'A' });
    let theirs = PageLinks::new(
        Secret::new("another-key-0123456789abcdef0123456789"),
        900,
        &base,
    )
    .link("Patient/trd-two-ssris", now())
    .expect("link");
    let forged = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let t = token(&page_url);
        let parts: Vec<&str> = t.split('.').collect();
        let payload = String::from_utf8(b64.decode(parts[1]).expect("b64")).expect("utf8");
        let other = b64.encode(payload.replace("trd-two-ssris", "someone-else"));
        format!("{base}/page/{}.{other}.{}", parts[0], parts[2])
    };
    for (what, url) in [
        ("expired", expired),
        ("altered", altered),
        ("another key", theirs),
        ("another patient", forged),
    ] {
        let response = reqwest::get(&url).await.expect("page");
        assert_eq!(response.status(), 401, "{what}");
        assert!(response
            .headers()
            .get("cache-control")
            .is_some_and(|v| v.to_str().unwrap_or("").contains("no-store")));
    }

    // A real browser: the page alone, and a screenshot to look at.
    let shot = artifacts().join("timeline-trd-two-ssris.png");
    let netlog = dir.path().join("netlog.json");
    let profile = dir.path().join("chrome-profile");
    let fresh = ours.link("Patient/trd-two-ssris", now()).expect("link");
    let status = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            "--window-size=1100,1400",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--log-net-log={}", netlog.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg(&fresh)
        .output()
        .expect("run chromium (scripts/provision installs it)");
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let png = std::fs::read(&shot).expect("screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    let log = std::fs::read_to_string(&netlog).expect("netlog");
    assert_eq!(
        page_requests(&log, "http://127.0.0.1"),
        [fresh],
        "the page loads nothing else"
    );
    eprintln!("screenshot: {}", shot.display());
    drop(service);
}
