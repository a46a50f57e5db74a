//! The patient page in an EHR's side panel (600 px wide), measured in a real browser:
//! the page itself never scrolls sideways, and the timeline's smallest text is drawn
//! at a legible size (the chart keeps its size and scrolls inside its own box).
//!
//! The page is rendered by the library, then given a script that measures it (the
//! page as served allows none: its Content-Security-Policy is dropped for the copy
//! measured here), and Chromium writes what it measured into the DOM it dumps.

#[path = "support/browser.rs"]
mod browser;

use std::path::Path;
use std::process::Command;

use time::macros::date;
use trd_sentinel::clinical::policy::PolicyBook;
use trd_sentinel::clinical::{assess, Knowledge};
use trd_sentinel::fhir::read::{Relevance, ResourcePool};
use trd_sentinel::page::patient::page;

/// Writes, into `<pre id="measured">`: the page's scroll width, the window's width,
/// and the smallest on-screen size (px) of any text in the timeline.
const MEASURE: &str = r#"<script>
addEventListener('load', () => {
  const svg = document.querySelector('svg.timeline');
  const base = parseFloat(svg.getAttribute('font-size'));
  let smallest = Infinity;
  for (const t of svg.querySelectorAll('text')) {
    const own = parseFloat(t.getAttribute('font-size') || base);
    smallest = Math.min(smallest, own * t.getScreenCTM().a);
  }
  const out = document.createElement('pre');
  out.id = 'measured';
  out.textContent = JSON.stringify({
    scroll_width: document.documentElement.scrollWidth,
    window_width: innerWidth,
    smallest_text_px: smallest,
  });
  document.body.appendChild(out);
});
</script>"#;

fn page_of(fixture: &str) -> String {
    let knowledge = Knowledge::embedded().expect("knowledge");
    let mut pool = ResourcePool::new(Relevance::from_knowledge(&knowledge));
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/patients")
        .join(format!("{fixture}.json"));
    pool.add_path(&path).expect("fixture");
    let record = pool.records().pop().expect("patient");
    let policy = PolicyBook::embedded()
        .expect("policies")
        .get("default")
        .expect("policy")
        .clone();
    page(
        &assess(&record, &policy, &knowledge, date!(2024 - 10 - 20)),
        &knowledge,
    )
}

fn measure(fixture: &str, width: u32) -> serde_json::Value {
    let html = page_of(fixture);
    let start = html
        .find("<meta http-equiv")
        .expect("the page carries its policy");
    let end = start + html[start..].find('>').expect("meta ends") + 1;
    let measured = format!("{}{}", &html[..start], &html[end..])
        .replace("</body>", &format!("{MEASURE}</body>"));
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join(format!("{fixture}.html"));
    std::fs::write(&file, measured).expect("write page");
    // One headless browser at `width`, doing one thing with the page.
    let browse = |height: u32, what: String| {
        Command::new(browser::chromium())
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
            ])
            .arg(format!("--window-size={width},{height}"))
            .arg(format!(
                "--user-data-dir={}",
                dir.path().join("profile").display()
            ))
            .arg(what)
            .arg(format!("file://{}", file.display()))
            .output()
            .expect("run chromium (scripts/provision installs it)")
    };
    let output = browse(900, "--dump-dom".into());
    // The same page as a person sees it at that width, left to look at.
    let shot = browser::artifacts().join(format!("page-{fixture}-{width}px.png"));
    browse(1400, format!("--screenshot={}", shot.display()));
    let dom = String::from_utf8_lossy(&output.stdout);
    let json = dom
        .split("<pre id=\"measured\">")
        .nth(1)
        .and_then(|rest| rest.split("</pre>").next())
        .unwrap_or_else(|| {
            panic!(
                "no measurement in the dumped page: {}",
                String::from_utf8_lossy(&output.stderr)
            )
        });
    serde_json::from_str(&json.replace("&quot;", "\"")).expect("measurement JSON")
}

#[test]
fn in_a_600px_side_panel_the_page_does_not_scroll_sideways_and_the_chart_stays_legible() {
    for fixture in [
        "trd-two-ssris",
        "augmentation-counted",
        "psychotherapy-as-encounter",
    ] {
        let m = measure(fixture, 600);
        let (scroll, window) = (m["scroll_width"].as_f64(), m["window_width"].as_f64());
        assert!(
            scroll.is_some() && scroll <= window,
            "{fixture}: the page scrolls sideways: {m}"
        );
        let smallest = m["smallest_text_px"].as_f64().unwrap_or(0.0);
        assert!(
            smallest >= 10.0,
            "{fixture}: chart text drawn at {smallest:.1} px: {m}"
        );
    }
}

#[test]
fn on_a_desktop_the_chart_fits_the_page() {
    let m = measure("trd-two-ssris", 1100);
    assert!(
        m["scroll_width"].as_f64() <= m["window_width"].as_f64(),
        "{m}"
    );
    assert!(m["smallest_text_px"].as_f64().unwrap_or(0.0) >= 10.0, "{m}");
}
