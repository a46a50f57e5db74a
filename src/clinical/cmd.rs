//! CumulativeMedicationDuration, as the CQFramework library writes it: library
//! `CumulativeMedicationDuration` version '5.0.000' (ecqm-content-qicore-2025; the
//! function bodies are the same in '4.1.000' and '6.0.000' as used by
//! CMS128FHIRAntidepressantMedManagement '0.3.000'). Only what HEDIS AMM calls:
//! `ToDaily`, `medicationRequestPeriod`, `medicationDispensePeriod`,
//! `cumulativeDuration`; `RolloutIntervals` is not used by AMM.
//!
//! Intervals are CQL `Interval<Date>`, closed at both ends (`Interval[a, b]`): a day
//! is in [a, b] when a <= day <= b. Where the CQL would raise a run-time error
//! (`singleton from` over two dosage instructions, `ToDaily`'s `Message` on an unknown
//! unit, an interval whose end precedes its start) the period here is `None`: the
//! resource neither excludes nor counts, as if the engine had skipped it. The `let`
//! clauses are taken lazily: the dosage is only read when the supply must come from
//! quantity / dose (an engine that evaluates every `let` eagerly would fail on two
//! dosage instructions even when daysSupply is given).

use time::{Date, Duration};

use super::record::{DosageInstruction, DoseQuantity, MedicationDispensed, MedicationOrder};

/// A CQL `Interval<Date>` closed at both ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DateInterval {
    pub start: Date,
    pub end: Date,
}

impl DateInterval {
    /// `Interval[start, end]`; None when end < start (invalid in CQL).
    pub fn closed(start: Date, end: Date) -> Option<Self> {
        (start <= end).then_some(Self { start, end })
    }

    /// `Interval[start, end)` at day precision = [start, end - 1 day].
    pub fn closed_open(start: Date, end: Date) -> Option<Self> {
        Self::closed(start, end.checked_sub(Duration::days(1))?)
    }

    /// CQL `overlaps` for closed intervals: they share at least one day.
    pub fn overlaps(&self, other: &Self) -> bool {
        self.start <= other.end && self.end >= other.start
    }

    /// CQL `intersect`: the shared days, or null when there are none.
    pub fn intersect(&self, other: &Self) -> Option<Self> {
        Self::closed(self.start.max(other.start), self.end.min(other.end))
    }

    /// CQL `in` for a point at day precision.
    pub fn contains(&self, day: Date) -> bool {
        self.start <= day && day <= self.end
    }

    /// `difference in days between start and end + 1`.
    pub fn days(&self) -> i64 {
        (self.end - self.start).whole_days() + 1
    }
}

/// `Date + Quantity(days, 'day')`: CQL drops the decimal part of a day quantity.
/// None on overflow or a non-finite figure.
fn add_days(start: Date, days: f64) -> Option<Date> {
    if !days.is_finite() || days.abs() > 3_650_000.0 {
        return None;
    }
    start.checked_add(Duration::days(days.trunc() as i64))
}

/// `[start, start + (total - 1) days]`: the closing step of both period functions.
fn period_from(start: Date, total_days: f64) -> Option<DateInterval> {
    DateInterval::closed(start, add_days(start, total_days - 1.0)?)
}

/// CMD `ToDaily(frequency, period)`: administrations per day for a frequency per
/// period of a UCUM (or word) time unit; None for an unknown unit (the CQL raises
/// `CMDLogic.ToDaily.UnknownUnit`) or a missing operand.
pub fn to_daily(frequency: Option<u32>, period: Option<f64>, unit: Option<&str>) -> Option<f64> {
    let frequency = f64::from(frequency?);
    let period = period?;
    let hours_per_unit = match unit? {
        "h" | "hour" | "hours" => 1.0,
        "min" | "minute" | "minutes" => 1.0 / 60.0,
        "s" | "second" | "seconds" => 1.0 / 3600.0,
        "d" | "day" | "days" => 24.0,
        "wk" | "week" | "weeks" => 24.0 * 7.0,
        "mo" | "month" | "months" => 24.0 * 30.0,
        "a" | "year" | "years" => 24.0 * 365.0,
        _ => return None,
    };
    let per_day = frequency * (24.0 / period) / hours_per_unit;
    per_day.is_finite().then_some(per_day)
}

/// `Coalesce(ToDaily(Coalesce(frequencyMax, frequency), period), Count(timeOfDay), 1.0)`.
/// `Count` of an absent list is 0, never null, so the 1.0 is unreachable: without a
/// frequency and period, a dosage without timeOfDay has 0 doses a day (and the
/// quantity division below gives null).
fn doses_per_day(dosage: &DosageInstruction) -> f64 {
    let frequency = dosage.frequency_max.or(dosage.frequency);
    to_daily(frequency, dosage.period, dosage.period_unit.as_deref())
        .unwrap_or(dosage.time_of_day_count as f64)
}

/// `Coalesce(end of doseRange, doseQuantity).value`: a range's HIGH end, units ignored.
fn dose_value(dosage: &DosageInstruction) -> Option<f64> {
    match &dosage.dose {
        Some(DoseQuantity::Quantity(amount)) => Some(amount.value),
        Some(DoseQuantity::Range { high, .. }) => high.as_ref().map(|h| h.value),
        None => None,
    }
}

/// `singleton from dosageInstruction`: None for none, Err for more than one (a CQL
/// run-time error).
fn singleton(dosages: &[DosageInstruction]) -> Result<Option<&DosageInstruction>, ()> {
    match dosages {
        [] => Ok(None),
        [one] => Ok(Some(one)),
        _ => Err(()),
    }
}

/// `quantity.value / (dose.value * dosesPerDay)`: null when any operand is null or
/// the divisor is 0 (CQL division by zero is null). Units are not compared.
fn days_from_quantity(quantity: Option<f64>, dosages: &[DosageInstruction]) -> Option<f64> {
    let quantity = quantity?;
    let dosage = singleton(dosages).ok()??;
    let divisor = dose_value(dosage)? * doses_per_day(dosage);
    let days = quantity / divisor;
    (divisor != 0.0 && days.is_finite()).then_some(days)
}

/// CMD `medicationRequestPeriod(Request)`:
/// - startDate = `Coalesce(date from start of boundsPeriod, date from authoredOn,
///   date from start of dispenseRequest.validityPeriod)`;
/// - totalDaysSupplied = `Coalesce(daysSupply, quantity.value / (dose.value *
///   dosesPerDay)) * (1 + refills)` with daysSupply = expectedSupplyDuration in days
///   and refills = `Coalesce(numberOfRepeatsAllowed, 0)`;
/// - `Interval[startDate, startDate + Quantity(totalDaysSupplied - 1, 'day')]`, else
///   `Interval[startDate, date from end of boundsPeriod]`, else null.
///
/// Only a boundsPeriod is read (`bounds as Interval<DateTime>`): boundsDuration and
/// boundsRange are not; nor is validityPeriod's end. The status is the caller's test.
pub fn medication_request_period(order: &MedicationOrder) -> Option<DateInterval> {
    let dosage = singleton(&order.dosage).ok()?;
    let bounds_start = dosage.and_then(|d| d.bounds_start);
    let bounds_end = dosage.and_then(|d| d.bounds_end);
    let start = bounds_start
        .or(order.authored_on)
        .or(order.validity_start)?;
    let per_fill = order
        .expected_supply_days
        .or_else(|| days_from_quantity(order.quantity.as_ref().map(|q| q.value), &order.dosage));
    let refills = f64::from(order.repeats_allowed.unwrap_or(0));
    match per_fill {
        Some(per_fill) => period_from(start, per_fill * (1.0 + refills)),
        None => DateInterval::closed(start, bounds_end?),
    }
}

/// CMD `medicationDispensePeriod(Dispense)`: startDate = `Coalesce(date from
/// whenHandedOver, date from whenPrepared)` (the record's `handed_over`);
/// totalDaysSupplied = `Coalesce(daysSupply, quantity.value / (dose.value *
/// dosesPerDay))` from the dispense's own dosage; `Interval[startDate, startDate +
/// Quantity(totalDaysSupplied - 1, 'day')]`, else null. No refills, no bounds.
pub fn medication_dispense_period(dispense: &MedicationDispensed) -> Option<DateInterval> {
    let start = dispense.handed_over?;
    let days = dispense.days_supply.or_else(|| {
        days_from_quantity(
            dispense.quantity.as_ref().map(|q| q.value),
            &dispense.dosage,
        )
    })?;
    period_from(start, days)
}

/// CQL `collapse Intervals per day`: overlapping or meeting intervals (the next starts
/// on or before the day after the last ends) become one.
pub fn collapse(intervals: &[DateInterval]) -> Vec<DateInterval> {
    let mut sorted = intervals.to_vec();
    sorted.sort();
    let mut out: Vec<DateInterval> = Vec::new();
    for interval in sorted {
        match out.last_mut() {
            Some(last)
                if last
                    .end
                    .checked_add(Duration::days(1))
                    .is_none_or(|next| interval.start <= next) =>
            {
                last.end = last.end.max(interval.end);
            }
            _ => out.push(interval),
        }
    }
    out
}

/// CMD `cumulativeDuration(Intervals)`: `Sum((collapse Intervals per day) X return
/// all (difference in days between start of X and end of X) + 1)`.
pub fn cumulative_duration(intervals: &[DateInterval]) -> i64 {
    collapse(intervals).iter().map(DateInterval::days).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clinical::record::{Amount, MedicationProduct};
    use time::macros::date;

    fn tablets(value: f64, frequency: u32) -> DosageInstruction {
        DosageInstruction {
            dose: Some(DoseQuantity::Quantity(Amount {
                value,
                unit: "{tbl}".into(),
            })),
            frequency: Some(frequency),
            period: Some(1.0),
            period_unit: Some("d".into()),
            ..Default::default()
        }
    }

    fn order(authored: Date) -> MedicationOrder {
        MedicationOrder {
            source: "MedicationRequest/1".into(),
            status: "active".into(),
            intent: "order".into(),
            authored_on: Some(authored),
            medication: MedicationProduct::default(),
            dosage: vec![tablets(1.0, 1)],
            validity_start: None,
            validity_end: None,
            expected_supply_days: None,
            repeats_allowed: None,
            quantity: None,
            reasons: vec![],
        }
    }

    fn interval(start: Date, end: Date) -> Option<DateInterval> {
        DateInterval::closed(start, end)
    }

    #[test]
    fn to_daily_follows_the_units() {
        assert_eq!(to_daily(Some(2), Some(1.0), Some("d")), Some(2.0));
        assert_eq!(to_daily(Some(1), Some(12.0), Some("h")), Some(2.0));
        assert_eq!(to_daily(Some(1), Some(1.0), Some("wk")), Some(1.0 / 7.0));
        assert_eq!(to_daily(Some(1), Some(1.0), Some("fortnight")), None);
        assert_eq!(to_daily(None, Some(1.0), Some("d")), None);
    }

    #[test]
    fn expected_supply_times_fills_from_authored_on() {
        let mut o = order(date!(2024 - 01 - 01));
        o.expected_supply_days = Some(30.0);
        o.repeats_allowed = Some(2);
        // 30 x (1 + 2) = 90 days: [Jan 1, Mar 30].
        assert_eq!(
            medication_request_period(&o),
            interval(date!(2024 - 01 - 01), date!(2024 - 03 - 30))
        );
    }

    #[test]
    fn quantity_over_dose_truncates_part_days() {
        let mut o = order(date!(2024 - 01 - 01));
        o.quantity = Some(Amount {
            value: 45.0,
            unit: "{tbl}".into(),
        });
        o.dosage = vec![tablets(1.0, 2)];
        // 45 / (1 x 2) = 22.5 days: Jan 1 + 21.5 -> 21 days later.
        assert_eq!(
            medication_request_period(&o),
            interval(date!(2024 - 01 - 01), date!(2024 - 01 - 22))
        );
        // frequencyMax is preferred over frequency.
        o.dosage[0].frequency = Some(1);
        o.dosage[0].frequency_max = Some(3);
        assert_eq!(
            medication_request_period(&o),
            interval(date!(2024 - 01 - 01), date!(2024 - 01 - 15))
        );
    }

    #[test]
    fn bounds_period_gives_the_start_and_the_fallback_end() {
        let mut o = order(date!(2024 - 01 - 01));
        o.dosage[0].bounds_start = Some(date!(2024 - 02 - 01));
        o.dosage[0].bounds_end = Some(date!(2024 - 02 - 20));
        // No supply figure: [bounds start, bounds end].
        assert_eq!(
            medication_request_period(&o),
            interval(date!(2024 - 02 - 01), date!(2024 - 02 - 20))
        );
        // With a supply figure the bounds give only the start.
        o.expected_supply_days = Some(10.0);
        assert_eq!(
            medication_request_period(&o),
            interval(date!(2024 - 02 - 01), date!(2024 - 02 - 10))
        );
        // boundsDuration is not read by CMD.
        let mut d = order(date!(2024 - 01 - 01));
        d.dosage[0].bounds_days = Some(14.0);
        assert_eq!(medication_request_period(&d), None);
    }

    #[test]
    fn no_figure_or_two_dosages_give_no_period() {
        let o = order(date!(2024 - 01 - 01));
        assert_eq!(
            medication_request_period(&o),
            None,
            "validity end is not read"
        );
        let mut two = order(date!(2024 - 01 - 01));
        two.expected_supply_days = Some(30.0);
        two.dosage.push(tablets(1.0, 1));
        assert_eq!(
            medication_request_period(&two),
            None,
            "singleton from fails"
        );
        let mut none = order(date!(2024 - 01 - 01));
        none.dosage.clear();
        none.expected_supply_days = Some(30.0);
        assert!(medication_request_period(&none).is_some());
        let mut no_timing = order(date!(2024 - 01 - 01));
        no_timing.dosage[0].frequency = None;
        no_timing.quantity = Some(Amount {
            value: 30.0,
            unit: "{tbl}".into(),
        });
        assert_eq!(medication_request_period(&no_timing), None, "0 doses a day");
        no_timing.dosage[0].time_of_day_count = 1;
        assert_eq!(
            medication_request_period(&no_timing),
            interval(date!(2024 - 01 - 01), date!(2024 - 01 - 30))
        );
    }

    #[test]
    fn a_dose_range_uses_its_high_end() {
        let mut o = order(date!(2024 - 01 - 01));
        o.dosage[0].dose = Some(DoseQuantity::Range {
            low: Amount {
                value: 1.0,
                unit: "{tbl}".into(),
            },
            high: Some(Amount {
                value: 2.0,
                unit: "{tbl}".into(),
            }),
        });
        o.quantity = Some(Amount {
            value: 60.0,
            unit: "{tbl}".into(),
        });
        assert_eq!(
            medication_request_period(&o),
            interval(date!(2024 - 01 - 01), date!(2024 - 01 - 30))
        );
    }

    #[test]
    fn a_part_day_supply_is_one_day_and_zero_is_none() {
        let mut o = order(date!(2024 - 01 - 01));
        o.expected_supply_days = Some(0.5);
        assert_eq!(
            medication_request_period(&o),
            interval(date!(2024 - 01 - 01), date!(2024 - 01 - 01))
        );
        o.expected_supply_days = Some(0.0);
        assert_eq!(medication_request_period(&o), None);
        o.expected_supply_days = Some(f64::NAN);
        assert_eq!(medication_request_period(&o), None);
        o.expected_supply_days = Some(1e300);
        assert_eq!(medication_request_period(&o), None);
    }

    #[test]
    fn collapse_merges_overlapping_and_meeting_intervals() {
        let a = DateInterval::closed(date!(2024 - 01 - 01), date!(2024 - 01 - 10)).expect("a");
        let meets = DateInterval::closed(date!(2024 - 01 - 11), date!(2024 - 01 - 20)).expect("b");
        let gap = DateInterval::closed(date!(2024 - 01 - 22), date!(2024 - 01 - 22)).expect("c");
        let inside = DateInterval::closed(date!(2024 - 01 - 05), date!(2024 - 01 - 06)).expect("d");
        assert_eq!(collapse(&[gap, meets, a, inside]).len(), 2);
        assert_eq!(cumulative_duration(&[gap, meets, a, inside]), 21);
    }

    #[test]
    fn closed_open_and_overlaps() {
        let history =
            DateInterval::closed_open(date!(2023 - 09 - 27), date!(2024 - 01 - 10)).expect("h");
        assert_eq!(history.end, date!(2024 - 01 - 09));
        let touching =
            DateInterval::closed(date!(2024 - 01 - 09), date!(2024 - 02 - 01)).expect("t");
        assert!(history.overlaps(&touching));
        let after = DateInterval::closed(date!(2024 - 01 - 10), date!(2024 - 02 - 01)).expect("a");
        assert!(!history.overlaps(&after));
        assert_eq!(
            history.intersect(&after),
            None,
            "no shared day: intersect is null"
        );
    }
}
