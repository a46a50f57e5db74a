//! Cards: the assessment (and a draft review) as CDS Hooks 2.0 cards a clinician
//! acts on. Few and ranked; none when nothing is actionable; each with the evidence
//! in its markdown detail, a source, a stable uuid, suggestions that create
//! ServiceRequests (or update the draft) and override reasons.
//!
//! Strict output: every card passes through [`prune`], so no `null`, empty string,
//! array or object reaches the EHR.

use serde_json::{json, Value};

use crate::clinical::adequacy::Adequacy;
use crate::clinical::assessment::{Assessment, TrialAssessment};
use crate::clinical::finding::Severity;
use crate::clinical::numbers::{fmt, percent, weeks};
use crate::clinical::suggestion::{kinds, Suggestion, SuggestionCode};
use crate::fhir::urn::urn_for;

mod orders;
mod patient_view;

pub use orders::{order_cards, DraftOrder};
pub use patient_view::patient_view_cards;

/// The CodeSystem of the cards' topics (what each card is about).
pub const CONCERN_SYSTEM: &str = "https://fhir.trd-sentinel.org/CodeSystem/trd-cds-concern";
/// The CodeSystem of the override reasons the cards offer.
pub const OVERRIDE_SYSTEM: &str = "https://fhir.trd-sentinel.org/CodeSystem/trd-cds-override";
/// The spec's limit on a card's summary (characters, exclusive).
pub const SUMMARY_LIMIT: usize = 140;

/// What the cards link to, when the service knows its public address.
#[derive(Debug, Clone, Default)]
pub struct CardLinks {
    /// The patient's timeline page (signed, short-lived link).
    pub patient_page: Option<String>,
    /// The page describing the rules and their sources (`#concern` anchors).
    pub rules: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Indicator {
    Info,
    Warning,
    Critical,
}

impl Indicator {
    fn as_str(self) -> &'static str {
        match self {
            Indicator::Info => "info",
            Indicator::Warning => "warning",
            Indicator::Critical => "critical",
        }
    }

    /// A finding's severity as an indicator: critical only for safety.
    pub fn of(severity: Severity) -> Self {
        match severity {
            Severity::Safety => Indicator::Critical,
            Severity::High | Severity::Warning => Indicator::Warning,
            Severity::Info => Indicator::Info,
        }
    }
}

/// One card before rendering.
#[derive(Debug, Clone)]
pub struct Card {
    /// The topic code (CONCERN_SYSTEM): what the card is about.
    pub concern: &'static str,
    pub concern_display: &'static str,
    pub indicator: Indicator,
    pub summary: String,
    /// Markdown.
    pub detail: String,
    pub suggestions: Vec<Value>,
    /// at-most-one when the suggestions are alternatives (a dose), any otherwise.
    pub alternatives: bool,
    /// What the card's content rests on (uuid input besides the text).
    pub key: String,
}

/// Escapes text for markdown: record-derived labels can carry `|` (a table cell's
/// end), `*`, `_`, `[`, `` ` `` or `<` (HTML). Escaped text is never put at the
/// start of a line (where `#` and `>` would matter): details start lines with their
/// own words, list markers or table pipes.
pub fn md(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '|') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A summary within the spec's limit (cut at a word, with an ellipsis).
pub fn summary(text: String) -> String {
    if text.chars().count() < SUMMARY_LIMIT {
        return text;
    }
    let mut cut: String = text.chars().take(SUMMARY_LIMIT - 2).collect();
    if let Some(space) = cut.rfind(' ') {
        cut.truncate(space);
    }
    cut.push('…');
    cut
}

fn dose(mg: Option<f64>) -> String {
    mg.map(|d| format!("{} mg", fmt(d)))
        .unwrap_or_else(|| "unknown".into())
}

/// The trials behind a verdict, as a markdown table.
pub fn trials_table(trials: &[&TrialAssessment]) -> String {
    let mut out = String::from(
        "| Trial | Drug | Daily dose (minimum) | Weeks (at or above minimum) | Adherence | Verdict | Response |\n|---|---|---|---|---|---|---|\n",
    );
    for t in trials {
        let adherence = t
            .verdict
            .pdc
            .map(|p| format!("{} of days", percent(p)))
            .unwrap_or_else(|| "unknown".into());
        let verdict = match t.adequacy {
            Adequacy::Adequate => "adequate".to_string(),
            Adequacy::Inadequate | Adequacy::Indeterminate => t
                .verdict
                .reasons
                .iter()
                .map(|r| r.text.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        };
        out.push_str(&format!(
            "| {} | {}{} | {} ({}) | {} ({}) | {} | {} | {} |\n",
            t.id,
            md(&t.ingredient),
            if t.ongoing { " (current)" } else { "" },
            dose(t.daily_dose_mg),
            fmt(t.verdict.min_daily_mg),
            weeks(t.verdict.weeks_total),
            weeks(t.verdict.weeks_at_adequate_dose),
            adherence,
            md(&verdict),
            md(&response(t))
        ));
    }
    out
}

/// The response class and the scores behind it.
fn response(t: &TrialAssessment) -> String {
    use crate::clinical::response::ResponseClass;
    let class = match t.response.class {
        ResponseClass::NonResponse => "non-response",
        ResponseClass::Partial => "partial response",
        ResponseClass::Response => "response",
        ResponseClass::Remission => "remission",
        ResponseClass::Unknown => "response unknown",
    };
    format!("{class}: {}", t.response.explanation)
}

/// Staging in one line.
pub fn staging_line(a: &Assessment) -> String {
    let mut line = format!("Thase-Rush {}", a.thase_rush_stage.roman);
    if let Some(msm) = &a.msm {
        line.push_str(&format!(" · Maudsley {} ({})", msm.score, msm.band));
    }
    line.push_str(&format!(" · MGH-S {}", fmt(a.mgh_s.score)));
    line
}

/// Suggestions that are services to order: each becomes a suggestion whose action
/// creates a ServiceRequest (draft, proposal) for the clinician to accept.
const ORDERABLE: &[SuggestionCode] = &[
    kinds::PSYCHIATRY_REFERRAL,
    kinds::NEUROMODULATION_EVALUATION,
    kinds::PHARMACOGENETIC_TESTING,
    kinds::PSYCHOTHERAPY_REVIEW,
    kinds::THYROID_WORK_UP,
    kinds::VITAMIN_D_WORK_UP,
    kinds::SLEEP_STUDY,
    kinds::DBT,
    kinds::ACT_OR_DBT,
    kinds::SUICIDE_RISK_ASSESSMENT,
    kinds::LITHIUM_LEVEL,
];

pub fn is_orderable(s: &Suggestion) -> bool {
    ORDERABLE.contains(&s.code)
}

/// A suggestion creating a ServiceRequest for this patient.
pub fn service_request_suggestion(patient: &str, s: &Suggestion) -> Value {
    let mut request = json!({
        "resourceType": "ServiceRequest",
        "status": "draft",
        "intent": "proposal",
        "subject": { "reference": patient },
        "code": { "coding": [{ "system": s.code.system, "code": s.code.code, "display": s.code.display }], "text": s.text },
    });
    if !s.evidence.is_empty() {
        request["supportingInfo"] = s
            .evidence
            .iter()
            .filter(|r| r.contains('/') && !r.starts_with("urn:"))
            .map(|r| json!({ "reference": r }))
            .collect();
    }
    json!({
        "label": summary(capitalise(&s.text)),
        "uuid": stable_uuid(&[patient, "suggestion", s.code.code]),
        "actions": [{
            "type": "create",
            "description": format!("Propose: {}", s.code.display),
            "resource": request,
        }],
    })
}

pub fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A uuid from stable parts: the same guidance keeps the same id.
pub fn stable_uuid(parts: &[&str]) -> String {
    urn_for(&parts.join("|"))
        .trim_start_matches("urn:uuid:")
        .to_string()
}

/// Why a clinician may set a card aside (the OVERRIDE_SYSTEM CodeSystem).
pub const OVERRIDES: &[(&str, &str)] = &[
    ("already-addressed", "Already addressed"),
    ("not-applicable", "Not applicable to this patient"),
    (
        "clinical-judgement",
        "Clinical judgement: benefit outweighs the concern",
    ),
    ("patient-preference", "Patient preference"),
];

fn override_reasons() -> Value {
    OVERRIDES
        .iter()
        .map(|(code, display)| json!({ "system": OVERRIDE_SYSTEM, "code": code, "display": display }))
        .collect()
}

/// The card as CDS Hooks JSON (pruned of empty optionals).
pub fn render(card: Card, patient: &str, links: &CardLinks) -> Value {
    let mut source = json!({
        "label": "trd-sentinel",
        "topic": { "system": CONCERN_SYSTEM, "code": card.concern, "display": card.concern_display },
    });
    if let Some(rules) = &links.rules {
        source["url"] = json!(format!("{rules}#{}", card.concern));
    }
    let summary = summary(card.summary);
    let uuid = stable_uuid(&[patient, card.concern, &card.key, &summary]);
    let mut value = json!({
        "uuid": uuid,
        "summary": summary,
        "detail": card.detail,
        "indicator": card.indicator.as_str(),
        "source": source,
        "overrideReasons": override_reasons(),
    });
    if !card.suggestions.is_empty() {
        value["selectionBehavior"] = json!(if card.alternatives {
            "at-most-one"
        } else {
            "any"
        });
        value["suggestions"] = Value::Array(card.suggestions);
    }
    if let Some(page) = &links.patient_page {
        value["links"] =
            json!([{ "label": "Treatment timeline", "url": page, "type": "absolute" }]);
    }
    prune(&mut value);
    value
}

/// Removes `null`s and empty strings, arrays and objects, recursively.
pub fn prune(value: &mut Value) {
    fn empty(v: &Value) -> bool {
        match v {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        }
    }
    match value {
        Value::Object(map) => {
            for v in map.values_mut() {
                prune(v);
            }
            map.retain(|_, v| !empty(v));
        }
        Value::Array(items) => {
            for v in items.iter_mut() {
                prune(v);
            }
            items.retain(|v| !empty(v));
        }
        _ => {}
    }
}

/// The concern codes the cards use (each defined in the CONCERN_SYSTEM CodeSystem).
pub const CONCERNS: &[&str] = &[
    "safety",
    "trd",
    "at-risk",
    "bipolar-on-antidepressant",
    "inadequate-current-trial",
    "pseudo-resistance",
    "work-up",
    "already-failed",
    "further-agent-after-trd",
    "dose-below-minimum",
    "earlier-trials-not-adequate",
    "bipolar-without-cover",
];

/// The rules page: each concern's definition from the project's CodeSystem, with an
/// anchor per concern (the cards' `source.url`). maud escapes every string.
pub fn rules_page() -> String {
    use maud::{html, DOCTYPE};
    let files = crate::clinical::knowledge::ProfileFiles::embedded();
    let concepts: Vec<Value> = files
        .get("codesystems/CodeSystem-trd-cds-concern.json")
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(text).ok())
        .and_then(|cs| cs.get("concept").and_then(Value::as_array).cloned())
        .unwrap_or_default();
    let text = |c: &Value, key: &str| c.get(key).and_then(Value::as_str).unwrap_or("").to_string();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "trd-sentinel: the rules behind the cards" }
                style { "body{font:15px/1.5 system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem}dt{font-weight:600;margin-top:1rem}" }
            }
            body {
                h1 { "The rules behind trd-sentinel's cards" }
                dl {
                    @for c in &concepts {
                        dt id=(text(c, "code")) { (text(c, "display")) }
                        dd { (text(c, "definition")) }
                    }
                }
            }
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_stay_under_the_limit_and_markdown_is_escaped() {
        let long = "word ".repeat(60);
        let s = summary(long);
        assert!(s.chars().count() < SUMMARY_LIMIT, "{}", s.chars().count());
        assert!(s.ends_with('…'));
        assert_eq!(md("a|b*c<script>"), "a\\|b\\*c\\<script>");
        assert_eq!(md("# x -> y"), "# x -> y");
    }

    #[test]
    fn pruning_leaves_no_empty_optionals() {
        let mut v = json!({ "a": null, "b": "", "c": [], "d": {}, "e": [{ "f": null }], "g": 1, "h": [""] });
        prune(&mut v);
        assert_eq!(v, json!({ "g": 1 }));
    }
}
