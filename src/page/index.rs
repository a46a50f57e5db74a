//! The population report `evaluate --format html` writes as `index.html`: first the
//! patients with safety findings, by name of record; then, with `--measure`, each
//! quality measure's rate and the worklist ([`super::quality`]); then counts by TRD
//! status (most serious first), the most frequent pseudo-resistance findings and
//! adequacy reasons, HEDIS AMM rates, each with a small chart and in words, and a row
//! per patient linking to the patient's page. Built one assessment at a time (a row
//! per patient and the measures' member lists are kept).

use std::collections::BTreeMap;

use maud::{html, Markup, DOCTYPE};

use super::labels::{adequacy_reason_label, finding_label, status_label};
use super::quality::QualityReport;
use super::STYLE;
use crate::clinical::assessment::Assessment;
use crate::clinical::finding::Severity;
use crate::clinical::numbers::percent;

struct Row {
    patient: String,
    status: &'static str,
    /// The patient's safety findings, most urgent first (the index leads with them).
    safety: Vec<String>,
    failed: u32,
    trials: String,
    file: String,
}

#[derive(Default)]
pub struct PopulationIndex {
    rows: Vec<Row>,
    statuses: BTreeMap<&'static str, usize>,
    findings: BTreeMap<String, usize>,
    safety: BTreeMap<String, usize>,
    reasons: BTreeMap<String, usize>,
    amm_denominator: usize,
    amm_acute: usize,
    amm_continuation: usize,
    as_of: Option<time::Date>,
    quality: QualityReport,
}

/// The file name of a patient's page: the reference with every character that is not
/// a letter, digit, `-` or `.` replaced (no path can be formed from a record's id).
pub fn file_name(patient: &str) -> String {
    let safe: String = patient
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}.html", safe.trim_start_matches('.'))
}

impl PopulationIndex {
    pub fn add(&mut self, a: &Assessment, file: &str) {
        self.as_of = Some(a.as_of);
        self.quality.add(a, file);
        *self.statuses.entry(a.trd_status.code()).or_default() += 1;
        for f in a.findings.iter().filter(|f| f.is_clinical()) {
            let counts = match f.severity {
                Severity::Safety => &mut self.safety,
                Severity::High | Severity::Warning => &mut self.findings,
                Severity::Info => continue,
            };
            *counts.entry(f.code.clone()).or_default() += 1;
        }
        for t in &a.trials {
            for r in &t.verdict.reasons {
                let code = serde_json::to_value(r.code)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                *self.reasons.entry(code).or_default() += 1;
            }
        }
        if let Some(amm) = a.amm.as_ref().filter(|m| !m.prior_use_excluded) {
            self.amm_denominator += 1;
            self.amm_acute += usize::from(amm.acute_phase_met);
            self.amm_continuation += usize::from(amm.continuation_phase_met);
        }
        let trials: Vec<String> = a
            .trials
            .iter()
            .map(|t| format!("{} {}", t.ingredient, super::labels::verdict_label(t)))
            .collect();
        self.rows.push(Row {
            patient: a.patient.clone(),
            status: a.trd_status.code(),
            safety: a
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Safety)
                .map(|f| f.code.clone())
                .collect(),
            failed: a.failed_adequate_trials,
            trials: trials.join("; "),
            file: file.to_string(),
        });
    }

    pub fn render(&self) -> String {
        let total = self.rows.len();
        let findings = labelled(most_frequent(&self.findings, 12), finding_label);
        let safety = labelled(most_frequent(&self.safety, 12), finding_label);
        let reasons = labelled(most_frequent(&self.reasons, 12), adequacy_reason_label);
        // Most serious first: the order a clinical lead reads them in.
        let statuses: Vec<(String, usize)> = STATUS_ORDER
            .iter()
            .filter_map(|s| Some((status_label(s.code()), *self.statuses.get(s.code())?)))
            .collect();
        let rate = |n: usize| {
            if self.amm_denominator == 0 {
                "–".to_string()
            } else {
                percent(n as f64 / self.amm_denominator as f64)
            }
        };
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                meta http-equiv="Content-Security-Policy" content=(super::META_CSP);
                    meta name="referrer" content="no-referrer";
                    link rel="icon" href="data:,";
                    title { "trd-sentinel: population report" }
                    style { (maud::PreEscaped(STYLE)) }
                }
                body {
                    h1 { "Population report" }
                    p.meta { (total) " patients" @if let Some(d) = self.as_of { ", assessed as of " (d) } }
                    // Safety first: who, by name of record, before any count.
                    h2 { "Safety signals" }
                    @if self.rows.iter().all(|r| r.safety.is_empty()) {
                        p { "None in this population." }
                    } @else {
                        table.safety {
                            thead { tr { th { "Patient" } th { "Safety findings" } th { "Status" } } }
                            tbody { @for r in self.rows.iter().filter(|r| !r.safety.is_empty()) {
                                tr { td { a href=(r.file) { (r.patient) } } td { (labels_of(&r.safety)) } td { (status_label(r.status)) } }
                            } }
                        }
                        (bars(&safety, total))
                    }
                    (self.quality.render_worklist())
                    (self.quality.render_measures())
                    h2 { "By TRD status" }
                    (bars(&statuses, total))
                    h2 { "Most frequent pseudo-resistance findings" }
                    (bars(&findings, total))
                    h2 { "Why trials were not adequate" }
                    (bars(&reasons, self.reasons.values().sum()))
                    h2 { "Antidepressant Medication Management: the HEDIS core" }
                    p.meta { "Every patient with an index prescription start date (IPSD: the first antidepressant dispense from May 1 of the year before to April 30) and no antidepressant order in the 105 days before it; without the age, diagnosis, visit and hospice criteria CMS128 adds (above, with --measure cms128). Not a certified measure result." }
                    table.amm {
                        tr { th { "Denominator (IPSD, no prior use)" } td { (self.amm_denominator) } }
                        tr { th { "Effective acute phase (84 days)" } td { (self.amm_acute) " · " (rate(self.amm_acute)) } }
                        tr { th { "Effective continuation phase (180 days)" } td { (self.amm_continuation) " · " (rate(self.amm_continuation)) } }
                    }
                    h2 { "Patients" }
                    table.patients {
                        thead { tr { th { "Patient" } th { "Safety" } th { "Status" } th { "Failed adequate trials" } th { "Trials" } } }
                        tbody { @for r in &self.rows {
                            tr { td { a href=(r.file) { (r.patient) } } td { @if r.safety.is_empty() { "–" } @else { strong { (labels_of(&r.safety)) } } } td { (status_label(r.status)) } td { (r.failed) } td { (r.trials) } }
                        } }
                    }
                }
            }
        }
        .into_string()
    }
}

use crate::clinical::status::TrdStatus;

/// The statuses as a clinical lead reads them: the most serious first.
const STATUS_ORDER: [TrdStatus; 10] = [
    TrdStatus::Trd,
    TrdStatus::PartialResponseDepression,
    TrdStatus::OneFailedTrial,
    TrdStatus::InadequatelyTreated,
    TrdStatus::InsufficientData,
    TrdStatus::NotTreated,
    TrdStatus::Responding,
    TrdStatus::Remission,
    TrdStatus::ExcludedBipolarSpectrum,
    TrdStatus::NoDepressionEvidence,
];

fn labelled(items: Vec<(String, usize)>, label: fn(&str) -> String) -> Vec<(String, usize)> {
    items
        .into_iter()
        .map(|(code, n)| (label(&code), n))
        .collect()
}

fn labels_of(codes: &[String]) -> String {
    codes
        .iter()
        .map(|c| finding_label(c))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `n` largest counts, largest first (ties by name).
fn most_frequent(counts: &BTreeMap<String, usize>, n: usize) -> Vec<(String, usize)> {
    let mut items: Vec<(String, usize)> = counts.iter().map(|(k, v)| (k.clone(), *v)).collect();
    items.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    items.truncate(n);
    items
}

/// A small horizontal bar chart as a table (counts and the share of `total`).
fn bars(items: &[(String, usize)], total: usize) -> Markup {
    let max = items.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    html! {
        @if items.is_empty() { p { "none" } } @else {
            table.bars { @for (label, n) in items {
                tr {
                    th { (label) }
                    td { (n) @if total > 0 { " (" (percent(*n as f64 / total as f64)) ")" } }
                    td.bar { svg width="300" height="12" role="img" aria-label=(format!("{label}: {n}")) {
                        rect width=(format!("{:.1}", 300.0 * *n as f64 / max as f64)) height="12" fill="#0072B2" {}
                    } }
                }
            } }
        }
    }
}
