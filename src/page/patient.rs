//! The patient page: status, staging and episode at the top; the timeline; the trials
//! with every verdict's numbers and reasons; findings and suggestions with their
//! evidence; the policy. Self-contained (no script, font or image from elsewhere),
//! readable in an EHR iframe and on paper. Record text is escaped by maud.

use maud::{html, Markup, DOCTYPE};

use super::labels::{response_label, verdict_label};
use super::timeline::svg;
use super::STYLE;
use crate::clinical::adequacy::Adequacy;
use crate::clinical::assessment::Assessment;
use crate::clinical::finding::Severity;
use crate::clinical::knowledge::Knowledge;
use crate::clinical::numbers::{count, fmt, percent, weeks};
use crate::clinical::summary::status_words;

fn severity(s: Severity) -> &'static str {
    match s {
        Severity::Safety => "safety",
        Severity::High => "high",
        Severity::Warning => "warning",
        Severity::Info => "info",
    }
}

/// The page for one patient's assessment.
/// The resources behind a line: up to three named inline; more fold into a
/// disclosure ("12 resources"), so a suggestion is read in one line and its evidence
/// is one click away (no script: `details`).
fn evidence(sources: &[String]) -> maud::Markup {
    const INLINE: usize = 3;
    maud::html! {
        @if sources.len() <= INLINE {
            span.ev { (sources.join(", ")) }
        } @else {
            details.ev { summary { (sources.len()) " resources" } (sources.join(", ")) }
        }
    }
}

pub fn page(a: &Assessment, knowledge: &Knowledge) -> String {
    let safety: Vec<_> = a
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Safety)
        .collect();
    let others: Vec<_> = a
        .findings
        .iter()
        .filter(|f| f.severity != Severity::Safety)
        .collect();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="Content-Security-Policy" content=(super::META_CSP);
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                // No favicon request: the page loads nothing but itself.
                link rel="icon" href="data:,";
                title { "Treatment timeline · " (a.patient) }
                style { (maud::PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { (status_words(a)) }
                    p.lead { (a.status.explanation) }
                    p.meta {
                        (a.patient) " · as of " (a.as_of) " · rule: " (a.status.rule)
                    }
                    p.meta {
                        "Staging: Thase-Rush " (a.thase_rush_stage.roman)
                        @if let Some(msm) = &a.msm { " · Maudsley " (msm.score) " (" (msm.band) ")" }
                        " · MGH-S " (fmt(a.mgh_s.score))
                        @if let Some(start) = a.episode.start {
                            " · episode since " (start) " (" (count(a.episode.months.unwrap_or(0), "month"))
                            @if a.episode.chronic { ", chronic" }
                            ")"
                        }
                    }
                }
                @if !safety.is_empty() {
                    section.safety {
                        h2 { "Safety" }
                        ul { @for f in &safety { li { (f.text) " " (evidence(&f.evidence)) } } }
                    }
                }
                section.picture {
                    (svg(a, knowledge))
                    (legend())
                }
                section {
                    h2 { "Trials" }
                    @if a.trials.is_empty() {
                        p { "No antidepressant trial recorded." }
                    } @else {
                        table.trials {
                            thead { tr {
                                th { "Trial" } th { "Drug" } th { "Period" } th { "Daily dose (minimum)" }
                                th { "Weeks (at or above minimum)" } th { "Adherence" } th { "Verdict" } th { "Response" } th { "Counts towards TRD" }
                            } }
                            tbody {
                                @for (t, counted) in a.trials.iter().zip(&a.status.trials) {
                                    tr class=(if t.adequacy == Adequacy::Adequate { "adequate" } else { "not-adequate" }) {
                                        td { (t.id) }
                                        td { (t.ingredient) " (" (t.class) ")"
                                            @for aug in &t.augmented_by { br; "+ " (aug.agent) " " (aug.start) " to " (aug.end) } }
                                        td { (t.start) " to " (t.end) @if t.ongoing { " (ongoing)" } }
                                        td { (t.daily_dose_mg.map(|d| format!("{} mg", fmt(d))).unwrap_or_else(|| "unknown".into())) " (" (fmt(t.verdict.min_daily_mg)) ")" }
                                        td { (weeks(t.verdict.weeks_total)) " (" (weeks(t.verdict.weeks_at_adequate_dose)) ")" }
                                        td { (t.verdict.pdc.map(percent).unwrap_or_else(|| "unknown".into())) br; span.ev { (t.verdict.adherence_basis) } }
                                        td { (verdict_label(t))
                                            @for r in &t.verdict.reasons { br; span.ev { (r.text) } } }
                                        td { (response_label(t.response.class)) br; span.ev { (t.response.explanation) } }
                                        td { (if counted.counted { "yes" } else { "no" }) br; span.ev { (counted.why) } }
                                    }
                                }
                            }
                        }
                    }
                    @if !a.non_trials.is_empty() {
                        h3 { "Not antidepressant trials" }
                        ul { @for n in &a.non_trials { li { (n.ingredient) " " (n.start) " to " (n.end) ": " (n.text) } } }
                    }
                    @if !a.psychotherapy.is_empty() {
                        h3 { "Psychotherapy" }
                        ul { @for c in &a.psychotherapy {
                            li { (c.name) " " (c.start) " to " (c.end) ": " (c.sessions) " sessions over " (weeks(c.weeks)) " weeks"
                                (if c.adequate { " (adequate length)" } else { " (shorter than an adequate course)" }) }
                        } }
                    }
                }
                @if !others.is_empty() {
                    section {
                        h2 { "Findings" }
                        ul.findings { @for f in &others {
                            li class=(severity(f.severity)) { strong { (severity(f.severity)) } " " (f.text)
                                @if !f.evidence.is_empty() { " " (evidence(&f.evidence)) } }
                        } }
                    }
                }
                @if !a.suggestions.is_empty() {
                    section {
                        h2 { "Suggestions" }
                        ul { @for s in &a.suggestions {
                            li { (s.text) " " span.ev { "because " (s.because.join(", ")) }
                                @if !s.evidence.is_empty() { " " (evidence(&s.evidence)) } }
                        } }
                    }
                }
                @if !a.problems.is_empty() || !a.ignored_medications.is_empty() {
                    section {
                        h2 { "Also on record" }
                        ul {
                            @for p in &a.problems { li { (p.kind) @if let Some(d) = &p.display { ": " (d) } @let when = p.when(); @if !when.is_empty() { ", " (when) } } }
                            @for m in &a.ignored_medications { li { "Not tracked: " (m.readable) " " span.ev { (m.source) } } }
                        }
                    }
                }
                footer {
                    "Policy " (a.policy) ". trd-sentinel " (env!("CARGO_PKG_VERSION")) ": decision support, not a diagnosis; the evidence is named by resource."
                }
            }
        }
    }
    .into_string()
}

/// What each mark in the picture means.
pub fn legend() -> Markup {
    html! {
        dl.legend {
            dt { "Bar" } dd { "one supply (a fill, an order's estimate, a statement); height = daily dose against the drug's minimum adequate dose (dashed line in the lane)" }
            dt { "Hatched bar" } dd { "below the minimum adequate dose" }
            dt { "Cross-hatched bar" } dd { "an order only: no dispense or statement, use estimated" }
            dt { "Green row" } dd { "augmentation of the drug above it" }
            dt { "Red line" } dd { "symptom scores; rings: each trial's start and end score" }
            dt { "Dashed blue line" } dd { "response: half the episode's baseline score" }
            dt { "Dotted green line" } dd { "remission threshold" }
            dt { "Grey band" } dd { "before the current episode (time compressed)" }
            dt { "Diamond" } dd { "ECT, TMS or esketamine session" }
        }
    }
}
