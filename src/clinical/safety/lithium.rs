//! Lithium without a serum level: a trough level is due about 5 days after a start
//! or dose change, then periodically (lithium boxed warning: toxicity follows the
//! serum concentration). Only current lithium use is judged.

use time::Date;

use super::{Rank, SafetyInput};
use crate::clinical::dates::{last_of_span, plus_days};
use crate::clinical::finding::{codes, Finding, Severity};
use crate::clinical::knowledge::Knowledge;
use crate::clinical::numbers::fmt;

pub(super) fn check(input: &SafetyInput<'_>, knowledge: &Knowledge) -> Vec<(Rank, Finding)> {
    let rules = &knowledge.safety.lithium;
    let Some(drug) = knowledge.drugs.by_name(&rules.ingredient) else {
        return Vec::new();
    };
    let mut supplies: Vec<_> = input
        .supplies
        .iter()
        .filter(|s| s.drug == drug && s.start <= input.as_of)
        .collect();
    supplies.sort_by_key(|s| s.start);
    let Some(first) = supplies.first() else {
        return Vec::new();
    };
    let gap = i64::from(rules.current_within_days);
    // The latest start (after a break) or dose change: a level is due after it.
    let mut since: (Date, String) = (first.start, "started".to_string());
    let mut covered_to = last_of_span(first.start, first.days);
    let mut dose = first.daily_dose.mg;
    for supply in supplies.iter().skip(1) {
        if supply.start > plus_days(covered_to, gap) {
            since = (supply.start, "restarted".to_string());
        } else if let (Some(before), Some(now)) = (dose, supply.daily_dose.mg) {
            if (before - now).abs() > 1e-6 {
                since = (supply.start, format!("dose changed to {} mg/day", fmt(now)));
            }
        }
        covered_to = covered_to.max(last_of_span(supply.start, supply.days));
        dose = supply.daily_dose.mg.or(dose);
    }
    if covered_to < plus_days(input.as_of, -gap) {
        return Vec::new();
    }
    let levels: Vec<Date> = input
        .record
        .observations
        .iter()
        .filter(|o| {
            o.codes.iter().any(|c| {
                knowledge
                    .value_sets
                    .contains(&rules.value_set, &c.system, &c.code)
            })
        })
        .filter_map(|o| o.effective)
        .filter(|d| *d <= input.as_of)
        .collect();
    let latest = levels.iter().max().copied();
    let (since_date, event) = &since;
    let text = if plus_days(*since_date, i64::from(rules.level_after_change_days)) <= input.as_of
        && latest.is_none_or(|l| l < *since_date)
    {
        format!(
            "lithium {event} {since_date}: no serum lithium since (a trough level is due within {} days of a start or dose change)",
            rules.level_after_change_days
        )
    } else if latest.is_none_or(|l| l < plus_days(input.as_of, -i64::from(rules.level_every_days)))
    {
        let last = latest
            .map(|l| format!("last {l}"))
            .unwrap_or_else(|| "none on record".to_string());
        format!(
            "lithium taken, no serum lithium in the last {} days ({last}): toxicity follows the serum level",
            rules.level_every_days
        )
    } else {
        return Vec::new();
    };
    let evidence = supplies
        .iter()
        .rev()
        .take(1)
        .map(|s| s.source.clone())
        .collect();
    vec![(
        Rank::Monitoring,
        Finding::new(
            codes::LITHIUM_LEVEL_MISSING,
            Severity::Safety,
            text,
            evidence,
        ),
    )]
}
