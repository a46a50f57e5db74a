//! Medicine safety: an MAOI overlapping or within the washout of a serotonergic
//! antidepressant; linezolid or methylene blue ordered while one is taken or within
//! its washout; a daily dose above a labelled limit (citalopram); an antidepressant
//! started or changed in a patient under 25 (boxed warning).

use time::Date;

use super::{Rank, SafetyInput};
use crate::clinical::dates::plus_days;
use crate::clinical::finding::{codes, Finding, Severity};
use crate::clinical::knowledge::{DrugKind, Knowledge};
use crate::clinical::medicine_use::uses_of;
use crate::clinical::numbers::fmt;
use crate::clinical::record::SourceRef;

/// One antidepressant's period of use (a trial or a non-trial era).
struct Period<'a> {
    ingredient: &'a str,
    class: &'a str,
    start: Date,
    end: Date,
    evidence: &'a [SourceRef],
}

fn periods<'a>(input: &'a SafetyInput<'_>, knowledge: &'a Knowledge) -> Vec<Period<'a>> {
    let trials = input.trials.iter().filter_map(|t| {
        let drug = knowledge.drugs.antidepressant(t.drug)?;
        Some(Period {
            ingredient: &drug.ingredient,
            class: &drug.class,
            start: t.start,
            end: t.end,
            evidence: &t.evidence,
        })
    });
    let non_trials = input.non_trials.iter().filter_map(|n| {
        let drug = knowledge
            .drugs
            .by_name(&n.ingredient)
            .and_then(|d| knowledge.drugs.antidepressant(d))?;
        Some(Period {
            ingredient: &drug.ingredient,
            class: &drug.class,
            start: n.start,
            end: n.end,
            evidence: &n.evidence,
        })
    });
    trials
        .chain(non_trials)
        .filter(|p| p.start <= input.as_of)
        .collect()
}

fn days_between(earlier: Date, later: Date) -> i64 {
    (later - earlier).whole_days()
}

pub(super) fn serotonin(input: &SafetyInput<'_>, knowledge: &Knowledge) -> Vec<(Rank, Finding)> {
    let rules = &knowledge.safety.serotonin;
    let periods = periods(input, knowledge);
    let is = |p: &Period<'_>, classes: &[String]| classes.iter().any(|c| c == p.class);
    let mut out = Vec::new();
    for maoi in periods.iter().filter(|p| is(p, &rules.maoi_classes)) {
        for other in periods
            .iter()
            .filter(|p| is(p, &rules.serotonergic_classes) && p.ingredient != maoi.ingredient)
        {
            let what = if other.start <= maoi.end && maoi.start <= other.end {
                format!(
                    "{} ({} to {}) overlaps {} ({} to {})",
                    maoi.ingredient, maoi.start, maoi.end, other.ingredient, other.start, other.end
                )
            } else if other.end < maoi.start {
                let gap = days_between(other.end, maoi.start);
                let washout = rules.washout_after(other.ingredient);
                if gap >= i64::from(washout) {
                    continue;
                }
                format!(
                    "{} started {} {gap} days after the last day of {} ({}): {washout} days needed after {}",
                    maoi.ingredient, maoi.start, other.ingredient, other.end, other.ingredient
                )
            } else {
                let gap = days_between(maoi.end, other.start);
                if gap >= i64::from(rules.washout_days) {
                    continue;
                }
                format!(
                    "{} started {} {gap} days after the last day of {} ({}): {} days needed after an MAOI",
                    other.ingredient, other.start, maoi.ingredient, maoi.end, rules.washout_days
                )
            };
            let text =
                format!("MAOI and serotonergic antidepressant: {what}; serotonin syndrome risk");
            let evidence = maoi
                .evidence
                .iter()
                .chain(other.evidence)
                .cloned()
                .collect();
            out.push((
                Rank::Medicine,
                Finding::new(codes::MAOI_WASHOUT, Severity::Safety, text, evidence),
            ));
        }
    }
    for event in uses_of(input.record, &rules.interacting, input.as_of) {
        for other in periods
            .iter()
            .filter(|p| is(p, &rules.serotonergic_classes))
        {
            let washout = rules.washout_after(other.ingredient);
            let gap = days_between(other.end, event.start);
            let what = if other.start <= event.end && other.end >= event.start {
                format!(
                    "while {} is taken ({} to {})",
                    other.ingredient, other.start, other.end
                )
            } else if other.end < event.start && gap < i64::from(washout) {
                format!(
                    "{gap} days after the last day of {} ({}): {washout} days needed",
                    other.ingredient, other.end
                )
            } else {
                continue;
            };
            let text = format!(
                "{} on {} {what}; serotonin syndrome risk",
                event.name, event.start
            );
            let evidence = std::iter::once(event.source.clone())
                .chain(other.evidence.iter().cloned())
                .collect();
            out.push((
                Rank::Medicine,
                Finding::new(
                    codes::SEROTONERGIC_INTERACTION,
                    Severity::Safety,
                    text,
                    evidence,
                ),
            ));
        }
    }
    out
}

pub(super) fn dose_limits(input: &SafetyInput<'_>, knowledge: &Knowledge) -> Vec<(Rank, Finding)> {
    let mut out = Vec::new();
    for limit in &knowledge.safety.dose_limit {
        let Some(drug) = knowledge.drugs.by_name(&limit.ingredient) else {
            continue;
        };
        let from = plus_days(input.as_of, -i64::from(limit.look_back_days));
        for trial in input.trials.iter().filter(|t| t.drug == drug) {
            let mut worst: Option<(f64, String, &SourceRef)> = None;
            for (i, step) in trial.dose_steps.iter().enumerate() {
                let step_end = trial
                    .dose_steps
                    .get(i + 1)
                    .map(|next| plus_days(next.from, -1))
                    .unwrap_or(trial.end);
                let Some(mg) = step.daily_dose.mg else {
                    continue;
                };
                if step_end < from || step.from > input.as_of {
                    continue;
                }
                let age = input.record.age_on(step_end.min(input.as_of));
                // The limit that applies to this patient is the lowest one: above 60
                // that is the older patients' maximum (20 mg/day for citalopram), and a
                // dose above both is reported against it, not against 40 mg/day.
                let older = match (limit.older_than_years, limit.older_max_daily_mg, age) {
                    (Some(years), Some(max), Some(age)) if age > years => Some((max, years, age)),
                    _ => None,
                };
                let why = match older {
                    Some((max, years, age)) if mg > max && max <= limit.max_daily_mg => format!(
                        "above {} mg/day, the maximum over {years} (age {age})",
                        fmt(max)
                    ),
                    _ if mg > limit.max_daily_mg => {
                        format!("above the {} mg/day maximum", fmt(limit.max_daily_mg))
                    }
                    _ => continue,
                };
                if worst.as_ref().is_none_or(|(w, _, _)| mg > *w) {
                    worst = Some((mg, format!("{why} from {}", step.from), &step.source));
                }
            }
            if let Some((mg, why, source)) = worst {
                let text = format!(
                    "{} {} mg/day {why}: {}",
                    limit.ingredient,
                    fmt(mg),
                    limit.reason
                );
                let mut evidence = vec![source.clone()];
                evidence.extend(trial.evidence.iter().filter(|e| *e != source).cloned());
                out.push((
                    Rank::Medicine,
                    Finding::new(
                        codes::DOSE_ABOVE_SAFETY_LIMIT,
                        Severity::Safety,
                        text,
                        evidence,
                    ),
                ));
            }
        }
    }
    out
}

pub(super) fn young_adult(input: &SafetyInput<'_>, knowledge: &Knowledge) -> Vec<(Rank, Finding)> {
    let rules = &knowledge.safety.young_adult;
    let from = plus_days(input.as_of, -i64::from(rules.monitor_days));
    let young_on = |date: Date| {
        input
            .record
            .age_on(date)
            .is_some_and(|age| age < rules.under_age)
    };
    let mut out = Vec::new();
    let mut push = |ingredient: &str, events: Vec<String>, evidence: &[SourceRef]| {
        if events.is_empty() {
            return;
        }
        let age = input
            .record
            .age_on(input.as_of)
            .map(|a| format!("age {a}"))
            .unwrap_or_default();
        let text = format!(
            "{age}: {ingredient} {}: boxed warning under {}: monitor closely for worsening and suicidal thoughts in the first months and after dose changes",
            events.join(", "),
            rules.under_age
        );
        out.push((
            Rank::Monitoring,
            Finding::new(
                codes::YOUNG_ADULT_MONITORING,
                Severity::Safety,
                text,
                evidence.to_vec(),
            ),
        ));
    };
    let recent = |date: Date| date >= from && date <= input.as_of && young_on(date);
    for trial in input.trials {
        let mut events = Vec::new();
        if recent(trial.start) {
            events.push(format!("started {}", trial.start));
        }
        for step in trial.dose_steps.iter().skip(1).filter(|s| recent(s.from)) {
            let dose = step
                .daily_dose
                .mg
                .map(|mg| format!(" to {} mg/day", fmt(mg)))
                .unwrap_or_default();
            events.push(format!("dose changed{dose} {}", step.from));
        }
        push(knowledge.drugs.name(trial.drug), events, &trial.evidence);
    }
    for non_trial in input.non_trials {
        let antidepressant = knowledge
            .drugs
            .by_name(&non_trial.ingredient)
            .is_some_and(|d| d.kind == DrugKind::Antidepressant);
        if antidepressant && recent(non_trial.start) {
            let events = vec![format!("started {}", non_trial.start)];
            push(&non_trial.ingredient, events, &non_trial.evidence);
        }
    }
    out
}
