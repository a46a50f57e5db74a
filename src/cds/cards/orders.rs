//! order-select and order-sign: what the prescriber should know before signing a
//! draft antidepressant or augmentation order, each card only when it applies (the
//! concerns of `clinical::draft`), safety first.

use serde_json::{json, Value};

use super::patient_view::safety_card;
use super::{
    capitalise, is_orderable, md, render, service_request_suggestion, stable_uuid, staging_line,
    trials_table, Card, CardLinks, Indicator,
};
use crate::clinical::assessment::TrialAssessment;
use crate::clinical::draft::{DraftAgent, DraftConcern, DraftReview};
use crate::clinical::numbers::{fmt, weeks};
use crate::clinical::status::TrdStatus;

/// A draft order, as the engine read it and as the EHR sent it.
#[derive(Debug, Clone)]
pub struct DraftOrder {
    /// `MedicationRequest/cds-draft-N`: the id the engine read it under.
    pub source: String,
    /// What the engine read (its own id, the patient as subject).
    pub resource: Value,
    /// The resource as sent (normalised to R4 shape, its own id): the base of an
    /// `update` action.
    pub sent: Value,
}

pub fn order_cards(
    review: &DraftReview,
    drafts: &[DraftOrder],
    max_cards: usize,
    links: &CardLinks,
) -> Vec<Value> {
    let a = &review.assessment;
    let mut safety: Vec<Card> = review
        .safety
        .iter()
        .map(|f| {
            let mut card = safety_card(a, f);
            card.summary = format!(
                "Before signing: {}",
                f.text.split("; ").next().unwrap_or(&f.text)
            );
            card
        })
        .collect();
    let mut others: Vec<Card> = Vec::new();
    for agent in &review.agents {
        let draft = drafts.iter().find(|d| d.source == agent.source);
        for concern in &agent.concerns {
            others.push(card_for(review, agent, concern, draft));
        }
    }
    others.truncate(max_cards);
    safety.append(&mut others);
    safety
        .into_iter()
        .map(|card| render(card, &a.patient, links))
        .collect()
}

fn trials<'a>(review: &'a DraftReview, ids: &[String]) -> Vec<&'a TrialAssessment> {
    review
        .assessment
        .trials
        .iter()
        .filter(|t| ids.contains(&t.id))
        .collect()
}

fn dose(agent: &DraftAgent) -> String {
    agent
        .daily_dose_mg
        .map(|d| format!("{} mg/day", fmt(d)))
        .unwrap_or_else(|| "dose unknown".into())
}

fn card_for(
    review: &DraftReview,
    agent: &DraftAgent,
    concern: &DraftConcern,
    draft: Option<&DraftOrder>,
) -> Card {
    let a = &review.assessment;
    let drug = &agent.ingredient;
    let key = format!(
        "{}|{}|{:?}",
        agent.source, agent.ingredient, agent.daily_dose_mg
    );
    match concern {
        DraftConcern::AlreadyFailed { trials: ids } => {
            let failed = trials(review, ids);
            let facts: Vec<String> = failed
                .iter()
                .map(|t| {
                    format!(
                        "{} {} for {} wk",
                        t.id,
                        t.daily_dose_mg
                            .map(|d| format!("{} mg/day", fmt(d)))
                            .unwrap_or_default(),
                        weeks(t.verdict.weeks_at_adequate_dose)
                    )
                })
                .collect();
            Card {
                concern: concern.code(),
                concern_display: "Agent already failed",
                indicator: Indicator::Warning,
                summary: format!(
                    "{} already failed an adequate trial this episode ({})",
                    capitalise(drug),
                    facts.join("; ")
                ),
                detail: format!(
                    "{} was taken at an adequate dose for long enough in the current episode, without response:\n\n{}",
                    md(&capitalise(drug)),
                    trials_table(&failed)
                ),
                suggestions: vec![],
                alternatives: false,
                key,
            }
        }
        DraftConcern::FurtherAgentAfterTrd {
            failed_adequate_trials,
        } => {
            let pathway: Vec<_> = a
                .suggestions
                .iter()
                .filter(|s| s.because.iter().any(|b| b == TrdStatus::Trd.code()))
                .collect();
            let mut todo = String::new();
            let mut actions = Vec::new();
            for s in &pathway {
                todo.push_str(&format!("- {}\n", md(&capitalise(&s.text))));
                if is_orderable(s) {
                    actions.push(service_request_suggestion(&a.patient, s));
                }
            }
            let counted: Vec<String> = a
                .status
                .trials
                .iter()
                .filter(|c| c.counted)
                .map(|c| c.trial.clone())
                .collect();
            Card {
                concern: concern.code(),
                concern_display: "Further antidepressant in TRD",
                indicator: Indicator::Warning,
                summary: format!(
                    "TRD: {failed_adequate_trials} adequate trials failed; consider augmentation, referral or ECT/esketamine/TMS over another switch"
                ),
                detail: format!(
                    "**{}** ({})\n\nStaging: {}\n\n{}\n**Rather than another monotherapy trial, consider**\n\n{todo}",
                    md(&a.status.explanation),
                    md(&a.status.rule),
                    staging_line(a),
                    trials_table(&trials(review, &counted)),
                ),
                suggestions: actions,
                alternatives: false,
                key,
            }
        }
        DraftConcern::DoseBelowMinimum {
            first_started,
            earlier,
        } => {
            let min = agent.min_daily_mg.unwrap_or_default();
            let spells: Vec<String> = earlier
                .iter()
                .map(|s| {
                    format!(
                        "- {}: {} mg/day from {} to {} ({} weeks)\n",
                        s.trial,
                        fmt(s.daily_dose_mg),
                        s.from,
                        s.to,
                        weeks(s.weeks)
                    )
                })
                .collect();
            let weeks_low: f64 = earlier.iter().map(|s| s.weeks).sum();
            let suggestion = draft
                .and_then(|d| at_minimum(d, agent, min))
                .into_iter()
                .collect();
            Card {
                concern: concern.code(),
                concern_display: "Dose below the minimum adequate dose",
                indicator: Indicator::Warning,
                summary: format!(
                    "{} {} is below the minimum adequate {} mg/day ({} wk below it already)",
                    capitalise(drug),
                    dose(agent),
                    fmt(min),
                    weeks(weeks_low)
                ),
                detail: format!(
                    "{} was first taken in this episode on {first_started}: past the titration weeks, a dose below {} mg/day is not an adequate trial, and a later \"failure\" at it would not count.\n\nEarlier time below the minimum:\n\n{}",
                    md(&capitalise(drug)),
                    fmt(min),
                    spells.concat()
                ),
                suggestions: suggestion,
                alternatives: true,
                key,
            }
        }
        DraftConcern::EarlierTrialsNotAdequate { trials: ids } => {
            let inadequate = trials(review, ids);
            let what: Vec<String> = inadequate
                .iter()
                .map(|t| {
                    format!(
                        "{} {}: {}",
                        t.id,
                        t.ingredient,
                        t.verdict
                            .reasons
                            .first()
                            .map(|r| r.text.as_str())
                            .unwrap_or("not adequate")
                    )
                })
                .collect();
            Card {
                concern: concern.code(),
                concern_display: "Earlier trials not adequate",
                indicator: Indicator::Info,
                summary: format!(
                    "Earlier trials were not adequate ({}): optimise before switching",
                    what.join("; ")
                ),
                detail: format!(
                    "A switch after a trial that was too low, too short or not taken does not show resistance. Consider optimising dose, duration or adherence first.\n\n{}",
                    trials_table(&inadequate)
                ),
                suggestions: vec![],
                alternatives: false,
                key,
            }
        }
        DraftConcern::BipolarWithoutCover { diagnoses } => Card {
            concern: concern.code(),
            concern_display: "Antidepressant in bipolar disorder without cover",
            indicator: Indicator::Warning,
            summary: format!(
                "Bipolar disorder recorded: {} without a mood stabiliser or antipsychotic",
                drug
            ),
            detail: format!(
                "Bipolar disorder is recorded ({}) and no mood stabiliser or antipsychotic is taken now or ordered with it. Antidepressant monotherapy risks a switch to mania (CANMAT/ISBD 2018); the TRD pathway does not apply.",
                md(&diagnoses.join(", "))
            ),
            suggestions: vec![],
            alternatives: false,
            key,
        },
    }
}

/// A suggestion updating the draft to the minimum adequate dose: each dose quantity
/// scaled by minimum / current, so a tablet count stays a tablet count.
fn at_minimum(draft: &DraftOrder, agent: &DraftAgent, min: f64) -> Option<Value> {
    let current = agent.daily_dose_mg.filter(|d| *d > 0.0)?;
    let factor = min / current;
    let mut resource = draft.sent.clone();
    let dosages = resource.get_mut("dosageInstruction")?.as_array_mut()?;
    let mut scaled = false;
    for dosage in dosages.iter_mut() {
        for rate in dosage
            .get_mut("doseAndRate")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            for field in [
                "/doseQuantity/value",
                "/doseRange/low/value",
                "/doseRange/high/value",
            ] {
                if let Some(value) = rate.pointer_mut(field) {
                    if let Some(v) = value.as_f64() {
                        *value = json!((v * factor * 1000.0).round() / 1000.0);
                        scaled = true;
                    }
                }
            }
        }
        if dosage.get("text").is_some() {
            dosage["text"] = json!(format!("{} {} mg per day", agent.ingredient, fmt(min)));
        }
    }
    if !scaled {
        return None;
    }
    let id = resource.get("id").and_then(Value::as_str).unwrap_or("");
    Some(json!({
        "label": format!("Change to {} {} mg/day", agent.ingredient, fmt(min)),
        "uuid": stable_uuid(&[&agent.source, "dose", &fmt(min)]),
        "isRecommended": true,
        "actions": [{
            "type": "update",
            "description": format!("Update the draft order {id} to the minimum adequate dose ({} mg/day)", fmt(min)),
            "resource": resource,
        }],
    }))
}
