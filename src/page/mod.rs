//! Pages a person reads: the patient's treatment timeline (linked from the CDS cards,
//! served by `serve`) and the population index `evaluate --format html` writes.
//! Renderers take an Assessment and know nothing of HTTP or of how the record was
//! obtained.
//!
//! - [`timeline`]: the SVG picture;
//! - [`patient`]: the patient page around it;
//! - [`index`]: the population report;
//! - [`quality`]: its quality measures' rates and the worklist;
//! - [`link`]: signed, short-lived links to a patient's page;
//! - [`routes`]: `GET /page/{token}`.

pub mod index;
pub mod labels;
pub mod link;
pub mod patient;
pub mod quality;
pub mod routes;
pub mod timeline;

/// The pages' one stylesheet (inline: the pages load nothing else). Below 800 px (an
/// EHR's side panel) the timeline keeps its size and scrolls inside its own box (its
/// lane labels and the episode's start first), and wide tables scroll in theirs: text
/// stays legible and the page itself never scrolls sideways.
pub const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#111;margin:1rem 1.5rem;max-width:1040px}
h1{font-size:1.5rem;margin:.2rem 0}h2{font-size:1.15rem;margin:1.2rem 0 .4rem;border-bottom:1px solid #ddd}h3{font-size:1rem}
.lead{font-size:1.05rem;margin:.2rem 0}.meta{color:#444;margin:.1rem 0}
.safety{border:2px solid #D55E00;padding:.4rem .8rem;background:#fff4ee}
.safety h2{border:0;color:#a33;margin-top:.2rem}
.picture svg{max-width:100%;height:auto;border:1px solid #eee}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{border:1px solid #ccc;padding:.25rem .4rem;vertical-align:top;text-align:left}
th{background:#f4f4f4}tr.not-adequate td:first-child{border-left:4px solid #E69F00}tr.adequate td:first-child{border-left:4px solid #0072B2}
.ev{color:#555;font-size:12px}.findings .high strong,.findings .warning strong{color:#8a4b00}
.legend{display:grid;grid-template-columns:max-content auto;gap:.1rem .8rem;font-size:12px;color:#333}
.legend dt{font-weight:600}.legend dd{margin:0}
footer{margin-top:1.5rem;color:#555;font-size:12px}
.bars td.bar{width:60%}.bars span.fill{display:inline-block;height:.8rem;background:#0072B2;vertical-align:middle}
@media (max-width:800px){body{margin:.5rem .75rem}.picture{overflow-x:auto}.picture svg{max-width:none;width:1000px}table{display:block;overflow-x:auto}td{overflow-wrap:break-word}}
@media print{body{margin:0;max-width:none;font-size:11px}.picture svg{border:0}a{color:#000;text-decoration:none}section{break-inside:avoid}}
"#;

/// The policy a page carries itself (a `<meta>`: pages written to files have no
/// headers): nothing loads but the page and its inline style.
pub const META_CSP: &str =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'";

/// The Content-Security-Policy the pages are served with: nothing but the page itself
/// and its inline style; framing only by `frame_ancestors`.
pub fn content_security_policy(frame_ancestors: &[String]) -> String {
    let ancestors = if frame_ancestors.is_empty() {
        "'none'".to_string()
    } else {
        frame_ancestors.join(" ")
    };
    format!("{META_CSP}; frame-ancestors {ancestors}")
}
