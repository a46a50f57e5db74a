//! Dose over time within one order: multi-step dosage instructions (titrations,
//! tapers) ordered by `sequence`, each step lasting its `timing.repeat.boundsDuration`
//! or `boundsPeriod` (FHIR R4 Dosage; docs/clinical-rules.md section 8). A supply that spans
//! several steps is cut into dated pieces, one per step, so "weeks at adequate dose"
//! sees the titration as it was ordered.

use time::Date;

use super::dates::{days_inclusive, plus_days};
use super::dose::{daily_dose, DailyDose};
use super::knowledge::Strength;
use super::record::DosageInstruction;

/// One step of a schedule, in days from the order's start (`anchor`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleStep {
    pub from_day: i64,
    /// First day after the step; None for the last, open-ended step.
    pub until_day: Option<i64>,
    pub dose: DailyDose,
}

/// A dated piece of a supply at one dose.
#[derive(Debug, Clone, PartialEq)]
pub struct SupplyPiece {
    pub start: Date,
    pub days: u32,
    pub dose: DailyDose,
}

/// The steps of a dosage. One step when every instruction shares a sequence number
/// (split doses taken together) or when a step other than the last has no bounds
/// (then only the first step is known, as `daily_dose` says).
pub fn schedule(
    dosages: &[DosageInstruction],
    strength: Option<Strength>,
    anchor: Option<Date>,
) -> Vec<ScheduleStep> {
    let mut sequences: Vec<Option<i32>> = dosages.iter().map(|d| d.sequence).collect();
    sequences.sort();
    sequences.dedup();
    let single = || {
        vec![ScheduleStep {
            from_day: 0,
            until_day: None,
            dose: daily_dose(dosages, strength),
        }]
    };
    if sequences.len() < 2 {
        return single();
    }
    let mut steps = Vec::with_capacity(sequences.len());
    let mut cursor = 0i64;
    for (n, sequence) in sequences.iter().enumerate() {
        let group: Vec<DosageInstruction> = dosages
            .iter()
            .filter(|d| d.sequence == *sequence)
            .cloned()
            .collect();
        let last = n + 1 == sequences.len();
        let Some(first) = group.first() else {
            return single();
        };
        let (from, until) = match (first.bounds_start, first.bounds_end, first.bounds_days) {
            (Some(start), end, _) if anchor.is_some() => {
                let anchor = anchor.unwrap_or(start);
                let from = (start - anchor).whole_days().max(cursor);
                let until = end.map(|e| (e - anchor).whole_days() + 1);
                (from, until)
            }
            (_, _, Some(days)) if days >= 1.0 => (cursor, Some(cursor + days.round() as i64)),
            _ if last => (cursor, None),
            _ => return single(),
        };
        let until = if last { None } else { until };
        if let Some(until) = until {
            cursor = until.max(from);
        }
        steps.push(ScheduleStep {
            from_day: from,
            until_day: until,
            dose: daily_dose(&group, strength),
        });
    }
    steps
}

/// Cuts the supply `[start, start + days)` into pieces by the schedule's steps, the
/// schedule running from `anchor` (the order's start; the supply's own start when
/// unknown). A refill after the titration is over is one piece at the final dose.
pub fn pieces(steps: &[ScheduleStep], anchor: Date, start: Date, days: u32) -> Vec<SupplyPiece> {
    let days = days.max(1);
    let supply_from = (start - anchor).whole_days();
    let supply_until = supply_from.saturating_add(i64::from(days));
    let mut out = Vec::new();
    for step in steps {
        let from = step.from_day.max(supply_from);
        let until = step.until_day.unwrap_or(i64::MAX).min(supply_until);
        if until <= from {
            continue;
        }
        let piece_start = plus_days(anchor, from);
        let piece_last = plus_days(anchor, until - 1);
        out.push(SupplyPiece {
            start: piece_start,
            days: u32::try_from(days_inclusive(piece_start, piece_last)).unwrap_or(u32::MAX),
            dose: step.dose.clone(),
        });
    }
    if out.is_empty() {
        let dose = steps
            .last()
            .map(|s| s.dose.clone())
            .unwrap_or_else(|| DailyDose::unknown("no dosage instruction"));
        out.push(SupplyPiece { start, days, dose });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clinical::knowledge::StrengthUnit;
    use crate::clinical::record::{Amount, DoseQuantity};
    use time::macros::date;

    fn step(sequence: i32, tablets: f64, bounds_days: Option<f64>) -> DosageInstruction {
        DosageInstruction {
            sequence: Some(sequence),
            dose: Some(DoseQuantity::Quantity(Amount {
                value: tablets,
                unit: "{tbl}".into(),
            })),
            frequency: Some(1),
            period: Some(1.0),
            period_unit: Some("d".into()),
            bounds_days,
            ..Default::default()
        }
    }

    const TABLET_25: Option<Strength> = Some(Strength {
        value: 25.0,
        unit: StrengthUnit::Mg,
    });

    #[test]
    fn a_two_step_titration_cuts_the_first_fill_and_not_the_refill() {
        let dosage = [step(1, 1.0, Some(7.0)), step(2, 2.0, None)];
        let start = date!(2024 - 01 - 01);
        let steps = schedule(&dosage, TABLET_25, Some(start));
        assert_eq!(steps.len(), 2);
        let first = pieces(&steps, start, start, 30);
        let got: Vec<_> = first.iter().map(|p| (p.start, p.days, p.dose.mg)).collect();
        assert_eq!(
            got,
            vec![
                (date!(2024 - 01 - 01), 7, Some(25.0)),
                (date!(2024 - 01 - 08), 23, Some(50.0))
            ]
        );
        let refill = pieces(&steps, start, date!(2024 - 01 - 31), 30);
        let got: Vec<_> = refill
            .iter()
            .map(|p| (p.start, p.days, p.dose.mg))
            .collect();
        assert_eq!(got, vec![(date!(2024 - 01 - 31), 30, Some(50.0))]);
    }

    #[test]
    fn a_middle_step_without_bounds_leaves_only_the_first_step() {
        let dosage = [step(1, 1.0, None), step(2, 2.0, None)];
        let steps = schedule(&dosage, TABLET_25, None);
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].dose.mg, Some(25.0));
    }
}
