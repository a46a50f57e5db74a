//! Units as they arrive in real orders: UCUM codes, UCUM annotations ({tbl}), and
//! plain words ("tablet", "mcg"). One place decides what a unit means.

use super::record::Amount;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum UnitKind {
    /// A mass; the factor converts to mg.
    Mass {
        mg_per_unit: f64,
    },
    /// A count of presentation units (tablet, capsule, patch, "1").
    Count,
    /// A volume; the factor converts to mL.
    Volume {
        ml_per_unit: f64,
    },
    /// Mass per day (mg/d, mg/24.h): already a daily dose.
    MassPerDay {
        mg_per_unit: f64,
    },
    /// Mass per hour (transdermal release rate).
    MassPerHour {
        mg_per_unit: f64,
    },
    /// The hour itself (denominator of a transdermal strength).
    Hour,
    /// A duration; the factor converts to days.
    Duration {
        days_per_unit: f64,
    },
    Unknown,
}

pub fn classify(unit: &str) -> UnitKind {
    let u = unit.trim().to_lowercase();
    let u = u.as_str();
    let mass = |s: &str| -> Option<f64> {
        match s {
            "mg" | "milligram" | "milligrams" => Some(1.0),
            "g" | "gram" | "grams" => Some(1000.0),
            "ug" | "mcg" | "µg" | "microgram" | "micrograms" => Some(0.001),
            _ => None,
        }
    };
    if let Some(f) = mass(u) {
        return UnitKind::Mass { mg_per_unit: f };
    }
    if let Some((num, den)) = u.split_once('/') {
        if let Some(f) = mass(num) {
            let den = den.trim_matches(|c| c == '(' || c == ')');
            return match den {
                "d" | "day" | "24.h" | "24h" | "24 h" | "24 hours" => {
                    UnitKind::MassPerDay { mg_per_unit: f }
                }
                "h" | "hr" | "hour" => UnitKind::MassPerHour { mg_per_unit: f },
                _ => UnitKind::Unknown,
            };
        }
    }
    match u {
        "" | "1" | "{tbl}" | "{tablet}" | "{tablets}" | "tablet" | "tablets" | "tab" | "tabs"
        | "{cap}" | "{capsule}" | "{capsules}" | "capsule" | "capsules" | "cap" | "caps"
        | "{patch}" | "patch" | "patches" | "{each}" | "each" | "ea" | "{unit}" | "unit"
        | "{dose}" | "dose" | "{spray}" | "spray" => UnitKind::Count,
        "ml" | "milliliter" | "millilitre" => UnitKind::Volume { ml_per_unit: 1.0 },
        "l" => UnitKind::Volume {
            ml_per_unit: 1000.0,
        },
        "h" | "hr" | "hour" | "hours" => UnitKind::Hour,
        "d" | "day" | "days" => UnitKind::Duration { days_per_unit: 1.0 },
        "wk" | "week" | "weeks" => UnitKind::Duration { days_per_unit: 7.0 },
        "mo" | "month" | "months" => UnitKind::Duration {
            days_per_unit: 30.0,
        },
        _ => UnitKind::Unknown,
    }
}

pub fn mass_in_mg(amount: &Amount) -> Option<f64> {
    match classify(&amount.unit) {
        UnitKind::Mass { mg_per_unit } => Some(amount.value * mg_per_unit),
        _ => None,
    }
}

/// A Duration (daysSupply, expectedSupplyDuration) in days.
pub fn duration_in_days(amount: &Amount) -> Option<f64> {
    match classify(&amount.unit) {
        UnitKind::Duration { days_per_unit } => Some(amount.value * days_per_unit),
        // A bare number of days is common in daysSupply.
        UnitKind::Count => Some(amount.value),
        _ => None,
    }
}

/// timing.repeat.periodUnit (UCUM units of time) in days.
pub fn period_unit_days(unit: &str) -> Option<f64> {
    Some(match unit {
        "s" => 1.0 / 86_400.0,
        "min" => 1.0 / 1_440.0,
        "h" => 1.0 / 24.0,
        "d" => 1.0,
        "wk" => 7.0,
        "mo" => 30.0,
        "a" => 365.0,
        _ => return None,
    })
}

/// "2 {tbl}", "1 unit (no unit given, read as a count)", "1 unit ('1', read as a count)".
pub(crate) fn count_label(value: f64, unit: &str) -> String {
    let units = if (value - 1.0).abs() < 1e-9 {
        "unit"
    } else {
        "units"
    };
    match unit.trim() {
        "" => format!(
            "{} {units} (no unit given, read as a count)",
            super::numbers::fmt(value)
        ),
        "1" => format!(
            "{} {units} (unit '1', read as a count)",
            super::numbers::fmt(value)
        ),
        other => format!("{} {other}", super::numbers::fmt(value)),
    }
}

pub(crate) fn unit_label(unit: &str) -> &str {
    if unit.is_empty() {
        "unit"
    } else {
        unit
    }
}
