//! Suicide-risk answers: PHQ-9 item 9 at or above 1 within the window ("nearly every
//! day" ranked first), C-SSRS positive answers and risk level (high risk first). An
//! item-9 finding always says that item 9 alone misses many at-risk patients; an
//! answer of 0 is never read as clearance (nothing is said about it).

use super::{Rank, SafetyInput};
use crate::clinical::dates::plus_days;
use crate::clinical::finding::{Finding, Severity};
use crate::clinical::knowledge::{InstrumentPurpose, Knowledge};
use crate::clinical::numbers::fmt;
use crate::clinical::score::ScorePoint;

pub(super) fn check(input: &SafetyInput<'_>, knowledge: &Knowledge) -> Vec<(Rank, Finding)> {
    let rules = &knowledge.safety.suicide_risk;
    let from = plus_days(input.as_of, -i64::from(rules.window_days));
    let recent = |index: usize| -> Vec<&ScorePoint> {
        input
            .scores
            .by_instrument
            .get(index)
            .map(|points| {
                points
                    .iter()
                    .filter(|p| p.date >= from && p.date <= input.as_of)
                    .collect()
            })
            .unwrap_or_default()
    };
    let mut out = Vec::new();
    for signal in &rules.signal {
        let Some(index) = knowledge
            .instruments
            .iter()
            .position(|i| i.id == signal.instrument)
        else {
            continue;
        };
        let instrument = &knowledge.instruments[index];
        // The highest answer in the window (the latest of equals): a positive answer
        // three weeks ago is not undone by a negative one since.
        let Some(worst) = recent(index).into_iter().max_by(|a, b| {
            a.value
                .total_cmp(&b.value)
                .then_with(|| a.date.cmp(&b.date))
        }) else {
            continue;
        };
        if worst.value < signal.positive_at_or_above {
            continue;
        }
        let high = signal.high_at_or_above.is_some_and(|h| worst.value >= h);
        let code = match (&signal.high_code, high) {
            (Some(high_code), true) => high_code.as_str(),
            _ => signal.code.as_str(),
        };
        let answer = match instrument.severity(worst.value) {
            Some(band) => format!("{band} ({})", fmt(worst.value)),
            None if instrument.range == [0.0, 1.0] => "yes".to_string(),
            None => fmt(worst.value),
        };
        let mut text = format!("{}: {answer} on {}", signal.what, worst.date);
        match (high, signal.high_code.is_some()) {
            (true, true) => text.push_str(": high risk, assess today"),
            (true, false) => text.push_str(": the highest answer, assess today"),
            _ => {}
        }
        // Item 9 alone is not enough: say so, and whether any other screen was done.
        let other_screen = knowledge
            .instruments
            .iter()
            .enumerate()
            .filter(|(i, other)| *i != index && other.measures == InstrumentPurpose::SuicideRisk)
            .any(|(i, _)| !recent(i).is_empty());
        if signal.with_note {
            text.push_str(&format!("; {}", rules.note));
            if !other_screen {
                text.push_str(&format!(" (none in the last {} days)", rules.window_days));
            }
        }
        let rank = if high {
            Rank::Urgent
        } else {
            Rank::SuicideRisk
        };
        out.push((
            rank,
            Finding::new(code, Severity::Safety, text, vec![worst.source.clone()]),
        ));
    }
    merge(out, knowledge)
}

/// One finding per code (several C-SSRS answers make one C-SSRS finding); a high-risk
/// finding replaces the plain positive one of the same screen.
fn merge(findings: Vec<(Rank, Finding)>, knowledge: &Knowledge) -> Vec<(Rank, Finding)> {
    let mut merged: Vec<(Rank, Finding)> = Vec::new();
    for (rank, finding) in findings {
        match merged.iter_mut().find(|(_, f)| f.code == finding.code) {
            Some((kept_rank, kept)) => {
                *kept_rank = (*kept_rank).min(rank);
                kept.text = format!("{}; {}", kept.text, finding.text);
                kept.evidence.extend(finding.evidence);
            }
            None => merged.push((rank, finding)),
        }
    }
    let replaced: Vec<&str> = knowledge
        .safety
        .suicide_risk
        .signal
        .iter()
        .filter(|s| {
            s.high_code
                .as_deref()
                .is_some_and(|high| merged.iter().any(|(_, f)| f.code == high))
        })
        .map(|s| s.code.as_str())
        .collect();
    merged
        .into_iter()
        .filter(|(_, f)| !replaced.contains(&f.code.as_str()))
        .collect()
}
