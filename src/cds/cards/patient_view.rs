//! patient-view: when the chart opens, at most a few cards, ranked, and none when
//! nothing is actionable (no "all clear" card):
//!
//! 1. each safety finding (critical; never cut);
//! 2. the status: TRD, at risk, partial response, or bipolar disorder on an
//!    antidepressant, with the counted trials and the pathway's orders;
//! 3. a current trial that is not adequate (dose, duration, adherence);
//! 4. pseudo-resistance findings worth acting on (warning and above);
//! 5. missing work-up, when TRD or at risk.

use serde_json::Value;

use super::{
    capitalise, is_orderable, md, render, service_request_suggestion, staging_line, trials_table,
    Card, CardLinks, Indicator,
};
use crate::clinical::adequacy::Adequacy;
use crate::clinical::assessment::{Assessment, TrialAssessment};
use crate::clinical::finding::{codes, Finding, Severity};
use crate::clinical::knowledge::Knowledge;
use crate::clinical::status::TrdStatus;
use crate::clinical::suggestion::Suggestion;

/// Findings that belong to the work-up card (a lab not checked recently).
fn work_up_codes(knowledge: &Knowledge) -> Vec<&str> {
    knowledge
        .checklist
        .lab
        .iter()
        .filter_map(|l| l.missing_code.as_deref())
        .collect()
}

/// Findings a clinician does not act on from a card: data quality notes.
const NOT_FOR_CARDS: &[&str] = &[
    codes::RESOURCE_UNREADABLE,
    codes::RESOURCE_NOT_USED,
    codes::MEDICATION_UNIDENTIFIED,
    codes::LAB_UNIT_NOT_COMPARABLE,
    codes::IMPLAUSIBLE_VALUE,
    codes::STRENGTH_FROM_DISPLAY,
    codes::DOSE_IMPLAUSIBLE,
    // A remission or response label's age is shown with the status on the page and in
    // the summary; it is not a reason the depression may look resistant.
    codes::REMEASURE_SYMPTOMS,
];

fn suggestions_for<'a>(a: &'a Assessment, because: &[&str]) -> Vec<&'a Suggestion> {
    a.suggestions
        .iter()
        .filter(|s| s.because.iter().any(|b| because.contains(&b.as_str())))
        .collect()
}

/// The suggestions as text lines, and the orderable ones as actions.
fn plan(a: &Assessment, suggestions: &[&Suggestion]) -> (String, Vec<Value>) {
    let mut text = String::new();
    let mut actions = Vec::new();
    for s in suggestions {
        text.push_str(&format!("- {}\n", md(&capitalise(&s.text))));
        if is_orderable(s) {
            actions.push(service_request_suggestion(&a.patient, s));
        }
    }
    (text, actions)
}

fn in_episode(a: &Assessment) -> Vec<&TrialAssessment> {
    a.trials
        .iter()
        .filter(|t| a.episode.trials.contains(&t.id))
        .collect()
}

pub fn patient_view_cards(
    a: &Assessment,
    knowledge: &Knowledge,
    max_cards: usize,
    links: &CardLinks,
) -> Vec<Value> {
    let mut safety: Vec<Card> = a
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Safety)
        .map(|f| safety_card(a, f))
        .collect();
    let mut others: Vec<Card> = Vec::new();
    others.extend(status_card(a));
    others.extend(current_trial_card(a));
    others.extend(pseudo_resistance_card(a, knowledge));
    if a.trd_status.at_risk_or_trd() {
        others.extend(work_up_card(a, knowledge));
    }
    others.truncate(max_cards);
    safety.append(&mut others);
    safety
        .into_iter()
        .map(|card| render(card, &a.patient, links))
        .collect()
}

/// One safety finding, critical, with what it asks for.
pub fn safety_card(a: &Assessment, f: &Finding) -> Card {
    let suggestions = suggestions_for(a, &[f.code.as_str()]);
    let (todo, actions) = plan(a, &suggestions);
    let mut detail = format!(
        "{}\n\nEvidence: {}\n",
        md(&f.text),
        md(&f.evidence.join(", "))
    );
    if !todo.is_empty() {
        detail.push_str(&format!("\n**Do now**\n\n{todo}"));
    }
    Card {
        concern: "safety",
        concern_display: "Safety signal",
        indicator: Indicator::Critical,
        // The finding's first statement (the rest is in the detail).
        summary: format!("Safety: {}", f.text.split("; ").next().unwrap_or(&f.text)),
        detail,
        suggestions: actions,
        alternatives: false,
        key: format!("{}|{}", f.code, f.evidence.join(",")),
    }
}

fn status_card(a: &Assessment) -> Option<Card> {
    let counted: Vec<&TrialAssessment> = a
        .trials
        .iter()
        .filter(|t| a.status.trials.iter().any(|c| c.counted && c.trial == t.id))
        .collect();
    let names: Vec<String> = counted
        .iter()
        .map(|t| {
            format!(
                "{} {}",
                t.ingredient,
                t.daily_dose_mg
                    .map(|d| format!("{} mg", crate::clinical::numbers::fmt(d)))
                    .unwrap_or_default()
            )
            .trim()
            .to_string()
        })
        .collect();
    let (concern, display, indicator, summary) = match a.trd_status {
        TrdStatus::Trd => (
            "trd",
            "Treatment-resistant depression",
            Indicator::Warning,
            format!(
                "Treatment-resistant depression: {} adequate trials failed ({})",
                a.failed_adequate_trials,
                names.join(", ")
            ),
        ),
        TrdStatus::OneFailedTrial => (
            "at-risk",
            "At risk of treatment resistance",
            Indicator::Info,
            format!(
                "At risk of TRD: 1 adequate trial failed ({}); optimise before a second",
                names.join(", ")
            ),
        ),
        TrdStatus::PartialResponseDepression => (
            "at-risk",
            "At risk of treatment resistance",
            Indicator::Info,
            format!(
                "Partial response only: {} adequate trial(s) ({})",
                a.failed_adequate_trials,
                names.join(", ")
            ),
        ),
        TrdStatus::ExcludedBipolarSpectrum => (
            "bipolar-on-antidepressant",
            "Bipolar disorder on an antidepressant",
            Indicator::Warning,
            "Bipolar disorder recorded, on an antidepressant: TRD criteria do not apply; review"
                .to_string(),
        ),
        _ => return None,
    };
    let mut because = vec![a.trd_status.code()];
    if a.trd_status == TrdStatus::ExcludedBipolarSpectrum {
        because.push(codes::MOOD_STABILISER);
    }
    let suggestions = suggestions_for(a, &because);
    let (todo, actions) = plan(a, &suggestions);
    let trials = in_episode(a);
    let mut detail = format!(
        "**{}** ({})\n\nRule: {}. Episode since {}.\n\nStaging: {}\n\n{}",
        md(&a.status.explanation),
        a.trd_status.code(),
        md(&a.status.rule),
        a.episode
            .start
            .map(|d| d.to_string())
            .unwrap_or_else(|| "unknown".into()),
        staging_line(a),
        trials_table(&trials)
    );
    if !todo.is_empty() {
        detail.push_str(&format!("\n**Consider**\n\n{todo}"));
    }
    let key = a
        .status
        .trials
        .iter()
        .filter(|c| c.counted)
        .map(|c| c.trial.clone())
        .collect::<Vec<_>>()
        .join(",");
    Some(Card {
        concern,
        concern_display: display,
        indicator,
        summary,
        detail,
        suggestions: actions,
        alternatives: false,
        key,
    })
}

/// The ongoing trial, when it is not adequate: the first thing to fix.
fn current_trial_card(a: &Assessment) -> Option<Card> {
    let t = a
        .trials
        .iter()
        .filter(|t| t.ongoing && t.adequacy == Adequacy::Inadequate)
        .max_by_key(|t| t.start)?;
    let reason = t.verdict.reasons.first()?;
    let suggestions: Vec<&Suggestion> = a
        .suggestions
        .iter()
        .filter(|s| s.evidence.iter().any(|e| t.evidence.contains(e)))
        .filter(|s| {
            s.because.iter().any(|b| {
                b == codes::SUBTHERAPEUTIC_DOSE
                    || b == codes::TOO_SHORT_TRIAL
                    || b == codes::NON_ADHERENCE
            })
        })
        .collect();
    let (todo, actions) = plan(a, &suggestions);
    let mut detail = format!(
        "The current trial is not adequate yet: {}\n\n{}",
        t.verdict
            .reasons
            .iter()
            .map(|r| md(&r.text))
            .collect::<Vec<_>>()
            .join("; "),
        trials_table(&[t])
    );
    if !todo.is_empty() {
        detail.push_str(&format!("\n**Consider**\n\n{todo}"));
    }
    Some(Card {
        concern: "inadequate-current-trial",
        concern_display: "Current trial not adequate",
        indicator: Indicator::Warning,
        summary: format!("Current trial not adequate: {}", reason.text),
        detail,
        suggestions: actions,
        alternatives: false,
        key: format!("{}|{:?}", t.id, t.reasons),
    })
}

/// Pseudo-resistance findings worth acting on (warning and above), besides the
/// current trial's own and the missing work-up.
fn pseudo_resistance_card(a: &Assessment, knowledge: &Knowledge) -> Option<Card> {
    let work_up = work_up_codes(knowledge);
    let current: Vec<&String> = a
        .trials
        .iter()
        .filter(|t| t.ongoing && t.adequacy == Adequacy::Inadequate)
        .flat_map(|t| &t.evidence)
        .collect();
    let mut findings: Vec<&Finding> = a
        .findings
        .iter()
        .filter(|f| f.is_clinical() && f.severity >= Severity::Warning)
        .filter(|f| f.severity != Severity::Safety)
        .filter(|f| !NOT_FOR_CARDS.contains(&f.code.as_str()))
        .filter(|f| !work_up.contains(&f.code.as_str()))
        .filter(|f| !f.evidence.iter().any(|e| current.contains(&e)))
        .collect();
    if findings.is_empty() || a.trd_status == TrdStatus::NoDepressionEvidence {
        return None;
    }
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let top = findings.first()?;
    let codes: Vec<&str> = findings.iter().map(|f| f.code.as_str()).collect();
    let suggestions = suggestions_for(a, &codes);
    let (todo, actions) = plan(a, &suggestions);
    let mut detail =
        String::from("What may make this depression look resistant, or change the plan:\n\n");
    for f in &findings {
        detail.push_str(&format!("- {} ({})\n", md(&f.text), f.code));
    }
    if !todo.is_empty() {
        detail.push_str(&format!("\n**Consider**\n\n{todo}"));
    }
    let more = if findings.len() > 1 {
        format!(" (+{} more)", findings.len() - 1)
    } else {
        String::new()
    };
    Some(Card {
        concern: "pseudo-resistance",
        concern_display: "Pseudo-resistance checklist",
        indicator: Indicator::of(top.severity),
        summary: format!("Check before calling it resistant: {}{more}", top.text),
        detail,
        suggestions: actions,
        alternatives: false,
        key: codes.join(","),
    })
}

fn work_up_card(a: &Assessment, knowledge: &Knowledge) -> Option<Card> {
    let work_up = work_up_codes(knowledge);
    let missing: Vec<&Finding> = a
        .findings
        .iter()
        .filter(|f| work_up.contains(&f.code.as_str()))
        .collect();
    if missing.is_empty() {
        return None;
    }
    let codes: Vec<&str> = missing.iter().map(|f| f.code.as_str()).collect();
    let suggestions = suggestions_for(a, &codes);
    let (todo, actions) = plan(a, &suggestions);
    let what: Vec<String> = missing.iter().map(|f| f.text.clone()).collect();
    let detail = format!(
        "Medical causes to rule out before more antidepressant trials:\n\n{}\n**Order**\n\n{todo}",
        what.iter()
            .map(|w| format!("- {}\n", md(w)))
            .collect::<String>()
    );
    Some(Card {
        concern: "work-up",
        concern_display: "Missing work-up",
        indicator: Indicator::Info,
        summary: format!("Work-up missing: {}", what.join("; ")),
        detail,
        suggestions: actions,
        alternatives: false,
        key: codes.join(","),
    })
}
