//! Daily dose from dosage instructions: amount per administration (mass, or count x
//! strength, or a dose range's low end) times administrations per day (timing.repeat,
//! timing.when, or a timing code). An unknown dose stays unknown, with the reason.

use serde::Serialize;

use super::knowledge::{Strength, StrengthUnit};
use super::numbers::{fmt, is_positive};
use super::record::{DosageInstruction, DoseQuantity};
use super::units::{classify, count_label, period_unit_days, unit_label, UnitKind};

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
            "{} x {} mg",
            count_label(value, unit),
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

/// Presentation units taken per day, when the dose is a count (tablets): turns a
/// dispensed quantity into days of supply.
pub fn units_per_day(dosages: &[DosageInstruction]) -> Option<f64> {
    per_day(dosages, |kind| (kind == UnitKind::Count).then_some(1.0))
}

/// mL a day of a liquid taken by volume ("5 mL once daily"): what a dispensed volume
/// with no days supply lasts.
pub fn ml_per_day(dosages: &[DosageInstruction]) -> Option<f64> {
    per_day(dosages, |kind| match kind {
        UnitKind::Volume { ml_per_unit } => Some(ml_per_unit),
        _ => None,
    })
}

/// The day's total of the instructions that run together, each dose converted by
/// `factor` (None: not that kind of unit).
fn per_day(dosages: &[DosageInstruction], factor: fn(UnitKind) -> Option<f64>) -> Option<f64> {
    let first = dosages.first()?;
    let mut total = 0.0;
    for dosage in dosages.iter().filter(|d| d.sequence == first.sequence) {
        let amount = match &dosage.dose {
            Some(DoseQuantity::Quantity(a)) => a,
            Some(DoseQuantity::Range { low, .. }) => low,
            None => return None,
        };
        total += amount.value
            * factor(classify(&amount.unit))?
            * administrations_per_day(dosage).ok()?.0;
    }
    (total > 0.0).then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clinical::record::Amount;

    fn amount(value: f64, unit: &str) -> Amount {
        Amount {
            value,
            unit: unit.into(),
        }
    }

    fn daily(
        dose: f64,
        unit: &str,
        frequency: u32,
        period: f64,
        period_unit: &str,
    ) -> DosageInstruction {
        DosageInstruction {
            dose: Some(DoseQuantity::Quantity(amount(dose, unit))),
            frequency: Some(frequency),
            period: Some(period),
            period_unit: Some(period_unit.into()),
            ..Default::default()
        }
    }

    const TABLET_50: Option<Strength> = Some(Strength {
        value: 50.0,
        unit: StrengthUnit::Mg,
    });

    #[test]
    fn mass_units_convert_through_ucum() {
        assert_eq!(
            daily_dose(&[daily(100.0, "mg", 1, 1.0, "d")], None).mg,
            Some(100.0)
        );
        assert_eq!(
            daily_dose(&[daily(0.1, "g", 1, 1.0, "d")], None).mg,
            Some(100.0)
        );
        assert_eq!(
            daily_dose(&[daily(25.0, "ug", 2, 1.0, "d")], None).mg,
            Some(0.05)
        );
        assert_eq!(
            daily_dose(&[daily(25.0, "mcg", 2, 1.0, "d")], None).mg,
            Some(0.05)
        );
    }

    #[test]
    fn count_units_multiply_by_strength() {
        for unit in ["{tbl}", "tablet", "TAB", "{capsule}", "1", ""] {
            assert_eq!(
                daily_dose(&[daily(2.0, unit, 1, 1.0, "d")], TABLET_50).mg,
                Some(100.0),
                "unit {unit}"
            );
        }
        let unknown = daily_dose(&[daily(2.0, "{tbl}", 1, 1.0, "d")], None);
        assert_eq!(unknown.mg, None);
        assert!(
            unknown.basis.contains("strength per unit is not known"),
            "{}",
            unknown.basis
        );
    }

    #[test]
    fn frequency_and_period_give_administrations_per_day() {
        assert_eq!(
            daily_dose(&[daily(50.0, "mg", 3, 1.0, "d")], None).mg,
            Some(150.0)
        );
        assert_eq!(
            daily_dose(&[daily(50.0, "mg", 1, 12.0, "h")], None).mg,
            Some(100.0)
        );
        assert_eq!(
            daily_dose(&[daily(70.0, "mg", 1, 1.0, "wk")], None).mg,
            Some(10.0)
        );
        let bad = daily_dose(&[daily(50.0, "mg", 1, 1.0, "fortnight")], None);
        assert_eq!(bad.mg, None);
        assert!(bad.basis.contains("periodUnit"));
    }

    #[test]
    fn timing_codes_and_when_lists() {
        let coded = |code: &str| DosageInstruction {
            dose: Some(DoseQuantity::Quantity(amount(1.0, "{tbl}"))),
            timing_code: Some(code.into()),
            ..Default::default()
        };
        let cases = [
            ("QD", 50.0),
            ("BID", 100.0),
            ("TID", 150.0),
            ("QID", 200.0),
            ("QHS", 50.0),
            ("Q12H", 100.0),
            ("Q8H", 150.0),
            ("QOD", 25.0),
        ];
        for (code, mg) in cases {
            assert_eq!(daily_dose(&[coded(code)], TABLET_50).mg, Some(mg), "{code}");
        }
        assert_eq!(daily_dose(&[coded("WHENEVER")], TABLET_50).mg, None);
        let when = DosageInstruction {
            dose: Some(DoseQuantity::Quantity(amount(1.0, "{tbl}"))),
            when_count: 2,
            ..Default::default()
        };
        assert_eq!(daily_dose(&[when], TABLET_50).mg, Some(100.0));
    }

    #[test]
    fn dose_range_uses_the_low_end_and_says_so() {
        let ranged = DosageInstruction {
            dose: Some(DoseQuantity::Range {
                low: amount(1.0, "{tbl}"),
                high: Some(amount(3.0, "{tbl}")),
            }),
            frequency: Some(1),
            period: Some(1.0),
            period_unit: Some("d".into()),
            ..Default::default()
        };
        let dose = daily_dose(&[ranged], TABLET_50);
        assert_eq!(dose.mg, Some(50.0));
        assert!(dose.basis.contains("low end"));
    }

    #[test]
    fn as_needed_is_marked() {
        let mut prn = daily(50.0, "mg", 1, 1.0, "d");
        prn.as_needed = true;
        let dose = daily_dose(&[prn], None);
        assert!(dose.as_needed);
        assert!(dose.basis.contains("PRN"));
    }

    #[test]
    fn transdermal_rates_become_mg_per_24h() {
        let patch = Some(Strength {
            value: 0.25,
            unit: StrengthUnit::MgPerHour,
        });
        assert_eq!(
            daily_dose(&[daily(1.0, "{patch}", 1, 1.0, "d")], patch).mg,
            Some(6.0)
        );
        let ordered_per_day = DosageInstruction {
            dose: Some(DoseQuantity::Quantity(amount(6.0, "mg/(24.h)"))),
            ..Default::default()
        };
        assert_eq!(daily_dose(&[ordered_per_day], None).mg, Some(6.0));
        let per_hour = DosageInstruction {
            dose: Some(DoseQuantity::Quantity(amount(0.375, "mg/h"))),
            ..Default::default()
        };
        assert_eq!(daily_dose(&[per_hour], None).mg, Some(9.0));
    }

    #[test]
    fn solutions_need_a_per_ml_strength() {
        let solution = Some(Strength {
            value: 20.0,
            unit: StrengthUnit::MgPerMl,
        });
        assert_eq!(
            daily_dose(&[daily(2.5, "mL", 1, 1.0, "d")], solution).mg,
            Some(50.0)
        );
        assert_eq!(
            daily_dose(&[daily(2.5, "mL", 1, 1.0, "d")], TABLET_50).mg,
            None
        );
        assert_eq!(
            daily_dose(&[daily(1.0, "{tbl}", 1, 1.0, "d")], solution).mg,
            None
        );
    }

    #[test]
    fn unknown_dose_says_why() {
        assert_eq!(daily_dose(&[], None).basis, "no dosage instruction");
        let no_timing = DosageInstruction {
            dose: Some(DoseQuantity::Quantity(amount(50.0, "mg"))),
            ..Default::default()
        };
        assert_eq!(
            daily_dose(&[no_timing], None).basis,
            "no frequency: the dosage has no timing"
        );
        let odd = daily(1.0, "spoonful", 1, 1.0, "d");
        assert!(daily_dose(&[odd], None).basis.contains("'spoonful'"));
        let zero = daily(0.0, "mg", 1, 1.0, "d");
        assert_eq!(daily_dose(&[zero], None).mg, None);
        let nan = daily(f64::NAN, "mg", 1, 1.0, "d");
        assert_eq!(daily_dose(&[nan], None).mg, None);
    }

    #[test]
    fn split_doses_add_and_later_sequences_are_not_used() {
        let mut morning = daily(50.0, "mg", 1, 1.0, "d");
        morning.sequence = Some(1);
        let mut evening = daily(100.0, "mg", 1, 1.0, "d");
        evening.sequence = Some(1);
        let mut taper = daily(25.0, "mg", 1, 1.0, "d");
        taper.sequence = Some(2);
        let dose = daily_dose(&[morning, evening, taper], None);
        assert_eq!(dose.mg, Some(150.0));
        assert!(dose.basis.contains("later dosage steps not used"));
    }

    #[test]
    fn units_per_day_only_for_countable_doses() {
        assert_eq!(
            units_per_day(&[daily(2.0, "{tbl}", 1, 1.0, "d")]),
            Some(2.0)
        );
        assert_eq!(units_per_day(&[daily(100.0, "mg", 1, 1.0, "d")]), None);
    }
}
