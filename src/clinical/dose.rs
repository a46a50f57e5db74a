//! Daily dose from dosage instructions: amount per administration (mass, or count x
//! strength, or a dose range's low end) times administrations per day (timing.repeat,
//! timing.when, or a timing code). An unknown dose stays unknown, with the reason.

use serde::Serialize;

use super::knowledge::{Strength, StrengthUnit};
use super::record::{DosageInstruction, DoseQuantity};
use super::units::{classify, is_positive, period_unit_days, UnitKind};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DailyDose {
    /// mg per day (mg/24 h for transdermal systems); None when unknown.
    pub mg: Option<f64>,
    /// Ordered as needed (PRN): the figure is a ceiling, not what was taken.
    pub as_needed: bool,
    /// How the figure was reached, or why it is unknown.
    pub basis: String,
}

impl DailyDose {
    pub fn unknown(reason: impl Into<String>) -> Self {
        Self {
            mg: None,
            as_needed: false,
            basis: reason.into(),
        }
    }
}

/// Administrations per day for the GTS timing abbreviations
/// (http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation) and common extras.
const TIMING_CODES: &[(&str, f64)] = &[
    ("QD", 1.0),
    ("AM", 1.0),
    ("PM", 1.0),
    ("QAM", 1.0),
    ("QPM", 1.0),
    ("QHS", 1.0),
    ("HS", 1.0),
    ("BED", 1.0),
    ("QOD", 0.5),
    ("BID", 2.0),
    ("TID", 3.0),
    ("QID", 4.0),
    ("Q1H", 24.0),
    ("Q2H", 12.0),
    ("Q3H", 8.0),
    ("Q4H", 6.0),
    ("Q6H", 4.0),
    ("Q8H", 3.0),
    ("Q12H", 2.0),
    ("Q24H", 1.0),
    ("WK", 1.0 / 7.0),
    ("MO", 1.0 / 30.0),
];

/// The daily dose of one drug given its dosage instructions and the strength of one
/// presentation unit (tablet, mL, patch) of that drug in the product.
pub fn daily_dose(dosages: &[DosageInstruction], strength: Option<Strength>) -> DailyDose {
    let Some(first) = dosages.first() else {
        return DailyDose::unknown("no dosage instruction");
    };
    // Instructions sharing the first sequence number run together (split doses);
    // later sequence numbers are later steps (tapers), not used for this supply.
    let concurrent: Vec<&DosageInstruction> = dosages
        .iter()
        .filter(|d| d.sequence == first.sequence)
        .collect();
    let later_steps = concurrent.len() < dosages.len();
    let mut total = 0.0;
    let mut bases = Vec::new();
    let mut as_needed = false;
    for dosage in concurrent {
        as_needed |= dosage.as_needed;
        match one_instruction(dosage, strength) {
            Ok((mg, basis)) => {
                total += mg;
                bases.push(basis);
            }
            Err(reason) => {
                return DailyDose {
                    mg: None,
                    as_needed,
                    basis: reason,
                }
            }
        }
    }
    let mut basis = bases.join(" + ");
    if later_steps {
        basis.push_str("; later dosage steps not used");
    }
    if as_needed {
        basis.push_str("; as needed (PRN)");
    }
    DailyDose {
        mg: Some(total),
        as_needed,
        basis,
    }
}

fn one_instruction(
    dosage: &DosageInstruction,
    strength: Option<Strength>,
) -> Result<(f64, String), String> {
    let (amount, range_note) = match &dosage.dose {
        Some(DoseQuantity::Quantity(amount)) => (amount, ""),
        Some(DoseQuantity::Range { low, .. }) => (low, " (low end of dose range)"),
        None => return Err("no dose quantity in the dosage instruction".into()),
    };
    let value = amount.value;
    if !is_positive(value) {
        return Err(format!("dose {value} is not positive"));
    }
    let unit = amount.unit.as_str();
    let per_administration_mg = match classify(unit) {
        UnitKind::Mass { mg_per_unit } => value * mg_per_unit,
        UnitKind::MassPerDay { mg_per_unit } => {
            let mg = value * mg_per_unit;
            return Ok((mg, format!("{} mg/day as ordered{range_note}", fmt(mg))));
        }
        UnitKind::MassPerHour { mg_per_unit } => {
            let mg = value * mg_per_unit * 24.0;
            return Ok((
                mg,
                format!("{} mg/h x 24 h{range_note}", fmt(value * mg_per_unit)),
            ));
        }
        UnitKind::Count => match strength {
            Some(Strength {
                value: s,
                unit: StrengthUnit::Mg,
            }) => value * s,
            Some(Strength {
                value: s,
                unit: StrengthUnit::MgPerHour,
            }) => {
                // A transdermal system: one worn per day releases s mg/h for 24 h.
                let mg = value * s * 24.0;
                return Ok((
                    mg,
                    format!("{} patch x {} mg/h x 24 h{range_note}", fmt(value), fmt(s)),
                ));
            }
            Some(Strength {
                unit: StrengthUnit::MgPerMl,
                ..
            }) => {
                return Err(format!(
                    "dose in '{}' units but the product's strength is per mL",
                    unit_label(unit)
                ))
            }
            None => {
                return Err(format!(
                    "dose of {} {} but the strength per unit is not known",
                    fmt(value),
                    unit_label(unit)
                ))
            }
        },
        UnitKind::Volume { ml_per_unit } => match strength {
            Some(Strength {
                value: s,
                unit: StrengthUnit::MgPerMl,
            }) => value * ml_per_unit * s,
            _ => {
                return Err(format!(
                    "dose of {} mL but no strength per mL is known",
                    fmt(value * ml_per_unit)
                ))
            }
        },
        _ => {
            return Err(format!(
                "dose unit '{unit}' is neither a mass nor a countable unit"
            ))
        }
    };
    let (per_day, timing) = administrations_per_day(dosage)?;
    let daily = per_administration_mg * per_day;
    let amount_text = match classify(unit) {
        UnitKind::Mass { .. } => format!("{} mg", fmt(per_administration_mg)),
        UnitKind::Volume { .. } => format!("{} mL = {} mg", fmt(value), fmt(per_administration_mg)),
        _ => format!(
            "{} {} x {} mg",
            fmt(value),
            unit_label(unit),
            fmt(per_administration_mg / value)
        ),
    };
    Ok((daily, format!("{amount_text}{range_note} x {timing}")))
}

fn administrations_per_day(dosage: &DosageInstruction) -> Result<(f64, String), String> {
    if dosage.frequency.is_some() || dosage.period.is_some() {
        let frequency = dosage.frequency.unwrap_or(1) as f64;
        let period = dosage.period.unwrap_or(1.0);
        let unit = dosage.period_unit.as_deref().unwrap_or("d");
        let days = period_unit_days(unit)
            .ok_or_else(|| format!("timing periodUnit '{unit}' is not a UCUM time unit"))?;
        if !is_positive(period) {
            return Err("timing period is not positive".into());
        }
        let per_day = frequency / (period * days);
        let mut text = format!("{} per {} {unit}", fmt(frequency), fmt(period));
        if let Some(max) = dosage.frequency_max {
            text.push_str(&format!(" (up to {max}; lower figure used)"));
        }
        return Ok((per_day, text));
    }
    if dosage.when_count > 0 {
        return Ok((
            dosage.when_count as f64,
            format!("{} timed doses a day", dosage.when_count),
        ));
    }
    if let Some(code) = &dosage.timing_code {
        let upper = code.to_uppercase();
        return TIMING_CODES
            .iter()
            .find(|(c, _)| *c == upper)
            .map(|(c, per_day)| (*per_day, (*c).to_string()))
            .ok_or_else(|| format!("timing code '{code}' is not known"));
    }
    Err("no frequency: the dosage has no timing".into())
}

fn unit_label(unit: &str) -> &str {
    if unit.is_empty() {
        "unit"
    } else {
        unit
    }
}

/// Numbers in explanations: integers without ".0", others with up to 2 decimals.
pub fn fmt(value: f64) -> String {
    if (value - value.round()).abs() < 1e-9 {
        format!("{}", value.round() as i64)
    } else {
        let s = format!("{value:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Presentation units taken per day, when the dose is a count (tablets): turns a
/// dispensed quantity into days of supply.
pub fn units_per_day(dosages: &[DosageInstruction]) -> Option<f64> {
    let first = dosages.first()?;
    let mut total = 0.0;
    for dosage in dosages.iter().filter(|d| d.sequence == first.sequence) {
        let amount = match &dosage.dose {
            Some(DoseQuantity::Quantity(a)) => a,
            Some(DoseQuantity::Range { low, .. }) => low,
            None => return None,
        };
        if classify(&amount.unit) != UnitKind::Count {
            return None;
        }
        total += amount.value * administrations_per_day(dosage).ok()?.0;
    }
    (total > 0.0).then_some(total)
}
