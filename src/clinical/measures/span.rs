//! CQL `Interval<Date>` with open-ended bounds, at day precision: a closed null
//! boundary means the beginning or the end of time (CQL 1.5, "Interval Values"),
//! which is how QICoreCommon's `prevalenceInterval()` writes an ongoing diagnosis
//! and FHIRHelpers an Encounter still in progress.

use time::{Date, Duration};

use crate::clinical::record::{ConditionFact, EncounterFact, ProcedureFact};

/// Days from `start` to `end`, both included; `None` is unbounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: Option<Date>,
    pub end: Option<Date>,
}

impl Span {
    pub fn closed(start: Date, end: Date) -> Self {
        Self {
            start: Some(start),
            end: Some(end),
        }
    }

    pub fn day(day: Date) -> Self {
        Self::closed(day, day)
    }

    /// CQL `overlaps` (day of): at least one shared day.
    pub fn overlaps(&self, other: &Span) -> bool {
        let starts_before_other_ends = match (self.start, other.end) {
            (Some(start), Some(end)) => start <= end,
            _ => true,
        };
        let ends_after_other_starts = match (self.end, other.start) {
            (Some(end), Some(start)) => end >= start,
            _ => true,
        };
        starts_before_other_ends && ends_after_other_starts
    }

    /// CQL `in` / `during` for a day.
    pub fn contains(&self, day: Date) -> bool {
        self.start.is_none_or(|s| s <= day) && self.end.is_none_or(|e| day <= e)
    }

    /// CQL `ends during`: the end is known and inside `other`.
    pub fn ends_during(&self, other: &Span) -> bool {
        self.end.is_some_and(|end| other.contains(end))
    }

    /// `Interval[day - before, day + after]`, None on overflow.
    pub fn around(day: Date, before_days: i64, after_days: i64) -> Option<Self> {
        Some(Self::closed(
            day.checked_sub(Duration::days(before_days))?,
            day.checked_add(Duration::days(after_days))?,
        ))
    }
}

/// QICoreCommon 4.0.000 `prevalenceInterval()`: for an active (or recurring,
/// relapsed) diagnosis `Interval[onset, abatement]`, open-ended when it has not
/// abated; for another, `Interval[onset, abatement]` when it abated, else its end is
/// unknown (`abatementDate)` open and null), and `None` here: no comparison with it
/// is true. A missing onset is the beginning of time (a closed null low bound).
pub fn prevalence(condition: &ConditionFact) -> Option<Span> {
    if is_active(condition) || condition.abatement.is_some() {
        Some(Span {
            start: condition.onset,
            end: condition.abatement,
        })
    } else {
        None
    }
}

/// QICoreCommon `isActive()`: clinicalStatus active, recurrence or relapse.
pub fn is_active(condition: &ConditionFact) -> bool {
    matches!(
        condition.clinical_status.as_deref(),
        Some("active" | "recurrence" | "relapse")
    )
}

/// CMS159 `isConfirmedActiveDiagnosis()`: active and verificationStatus confirmed.
pub fn is_confirmed_active(condition: &ConditionFact) -> bool {
    is_active(condition) && condition.verification_status.as_deref() == Some("confirmed")
}

/// FHIRHelpers `ToInterval(Encounter.period)`: `Interval[start, end]`, a missing end
/// being an encounter still open (a closed null bound: the end of time). None when
/// the encounter has no period at all.
pub fn encounter_period(encounter: &EncounterFact) -> Option<Span> {
    let start = encounter.start?;
    Some(Span {
        start: Some(start),
        end: encounter.end,
    })
}

/// `Procedure.performed.toInterval()`: the day it was performed, or its period.
pub fn procedure_period(procedure: &ProcedureFact) -> Option<Span> {
    let start = procedure.performed?;
    Some(Span {
        start: Some(start),
        end: Some(procedure.performed_end.unwrap_or(start)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn unbounded_ends_overlap_everything_after_or_before() {
        let ongoing = Span {
            start: Some(date!(2024 - 01 - 10)),
            end: None,
        };
        assert!(ongoing.overlaps(&Span::day(date!(2030 - 01 - 01))));
        assert!(!ongoing.overlaps(&Span::day(date!(2024 - 01 - 09))));
        assert!(ongoing.overlaps(&Span::day(date!(2024 - 01 - 10))));
        assert!(!ongoing.ends_during(&Span::day(date!(2024 - 01 - 10))));
        let closed = Span::closed(date!(2024 - 01 - 01), date!(2024 - 01 - 31));
        assert!(closed.ends_during(&Span::closed(date!(2024 - 01 - 31), date!(2024 - 02 - 01))));
        assert!(!closed.ends_during(&Span::closed(date!(2024 - 02 - 01), date!(2024 - 02 - 02))));
    }
}
