//! Date arithmetic that cannot panic. Input dates are screened (`sanity`), but the
//! as-of date and policy windows are not: every `date + days` in the engine goes
//! through here and saturates at the calendar's ends instead of overflowing.

use time::{Date, Duration};

/// `date + days`, saturating at the first / last representable date.
pub fn plus_days(date: Date, days: i64) -> Date {
    date.checked_add(Duration::days(days))
        .unwrap_or(if days >= 0 { Date::MAX } else { Date::MIN })
}

/// The last day of a span of `days` days starting on `first` (a span of 0 or 1 day
/// ends where it starts).
pub fn last_of_span(first: Date, days: u32) -> Date {
    plus_days(first, i64::from(days.max(1)) - 1)
}

/// Days from `from` to `to`, both included (0 when `to` is before `from`).
pub fn days_inclusive(from: Date, to: Date) -> i64 {
    ((to - from).whole_days() + 1).max(0)
}

/// Average days in a month, for "months since" and month-based windows.
pub const DAYS_PER_MONTH: f64 = 30.4375;

/// `date + months` (average month length), saturating.
pub fn plus_months(date: Date, months: u32) -> Date {
    plus_days(date, (f64::from(months) * DAYS_PER_MONTH).round() as i64)
}

/// `date - months` (average month length), saturating.
pub fn minus_months(date: Date, months: u32) -> Date {
    plus_days(date, -((f64::from(months) * DAYS_PER_MONTH).round() as i64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn saturates_instead_of_overflowing() {
        assert_eq!(plus_days(date!(9999 - 12 - 20), 10_000_000), Date::MAX);
        assert_eq!(plus_days(Date::MIN, -1), Date::MIN);
        assert_eq!(
            last_of_span(date!(2024 - 01 - 01), 30),
            date!(2024 - 01 - 30)
        );
        assert_eq!(
            last_of_span(date!(2024 - 01 - 01), 0),
            date!(2024 - 01 - 01)
        );
        assert_eq!(
            days_inclusive(date!(2024 - 01 - 02), date!(2024 - 01 - 01)),
            0
        );
    }
}
