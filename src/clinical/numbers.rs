//! Numbers as the engine judges and writes them: one rule for every explanation,
//! card, page and table, so the same value reads the same everywhere.

/// True for a positive number; false for zero, negatives and NaN (which real input
/// can carry), so one test rejects all three.
pub fn is_positive(value: f64) -> bool {
    value > 0.0
}

/// Numbers in explanations: integers without ".0", others with up to 2 decimals.
/// Beyond what an i64 holds (a 1e308 from a broken feed) the number is written in
/// scientific notation, never clamped to a wrong figure.
pub fn fmt(value: f64) -> String {
    if !value.is_finite() || value.abs() >= 1e15 {
        format!("{value:e}")
    } else if (value - value.round()).abs() < 1e-9 {
        format!("{}", value.round() as i64)
    } else {
        let s = format!("{value:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Weeks and shares in prose: one decimal, rounded down, so a value just short of a
/// threshold never reads as reaching it (5.96 weeks of the 6 required is "5.9", not
/// "6"; 79.96% of days is "79.9%", not "80%").
pub fn tenths(value: f64) -> String {
    if !value.is_finite() || value.abs() >= 1e15 {
        return fmt(value);
    }
    // The small nudge keeps 0.57 x 100 (56.99999...) at 57.
    fmt(((value * 10.0) + 1e-6).floor() / 10.0)
}

/// Weeks as every view writes them: [`tenths`].
pub fn weeks(value: f64) -> String {
    tenths(value)
}

/// A fraction (0.8333) as a percentage ("83.3%"), by [`tenths`].
pub fn percent(fraction: f64) -> String {
    format!("{}%", tenths(fraction * 100.0))
}

/// A count with its unit, singular for one: "1 month", "14 months".
pub fn count(n: impl Into<i64>, unit: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {unit}")
    } else {
        format!("{n} {unit}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_and_odd_numbers_are_written_as_they_are() {
        assert_eq!(fmt(1e308), "1e308");
        assert_eq!(fmt(-2.5e20), "-2.5e20");
        assert_eq!(fmt(f64::NAN), "NaN");
        assert_eq!(fmt(150.0), "150");
        assert_eq!(fmt(12.857), "12.86");
    }

    #[test]
    fn weeks_and_shares_are_rounded_down_to_tenths() {
        assert_eq!(weeks(12.857), "12.8");
        assert_eq!(weeks(5.96), "5.9");
        assert_eq!(weeks(6.0), "6");
        assert_eq!(percent(0.8333), "83.3%");
        assert_eq!(percent(0.7996), "79.9%");
        assert_eq!(percent(0.57), "57%");
        assert_eq!(percent(0.8), "80%");
        assert_eq!(tenths(1e308), "1e308");
        assert_eq!(count(1u32, "month"), "1 month");
        assert_eq!(count(14u32, "month"), "14 months");
    }
}
