//! A second look at what the supply ledger read, before eras and trials are built:
//! strengths that came from display text (the code was not in the clinical-drug map)
//! are named, and a daily dose far above the drug's labelled maximum is not used as a
//! dose (knowledge/antidepressants.toml `dose_plausibility`): a unit-less "10" read as
//! ten tablets is far likelier a misread 10 mg than 1000 mg of sertraline.

use super::dose::DailyDose;
use super::finding::{codes, Finding, Severity};
use super::knowledge::{Knowledge, StrengthUnit};
use super::numbers::fmt;
use super::product::{identify, ProductIdentity, RXNORM};
use super::record::{MedicationProduct, PatientRecord, SourceRef};
use super::supply::Supply;

/// One finding per medication resource whose strength was read from its display or
/// text, in record order (orders, dispenses, statements, administrations).
pub fn display_strengths(record: &PatientRecord, knowledge: &Knowledge) -> Vec<Finding> {
    let products = record
        .orders
        .iter()
        .map(|o| (&o.source, &o.medication))
        .chain(record.dispenses.iter().map(|d| (&d.source, &d.medication)))
        .chain(record.statements.iter().map(|s| (&s.source, &s.medication)))
        .chain(
            record
                .administrations
                .iter()
                .map(|a| (&a.source, &a.medication)),
        );
    products
        .filter_map(|(source, product)| display_strength(source, product, knowledge))
        .collect()
}

fn display_strength(
    source: &SourceRef,
    product: &MedicationProduct,
    knowledge: &Knowledge,
) -> Option<Finding> {
    let ProductIdentity::Known(found) = identify(product, knowledge) else {
        return None;
    };
    let label = found.strength_from_display?;
    let strengths: Vec<String> = found
        .components
        .iter()
        .filter_map(|c| {
            let strength = c.strength?;
            let unit = match strength.unit {
                StrengthUnit::Mg => "mg",
                StrengthUnit::MgPerMl => "mg/mL",
                StrengthUnit::MgPerHour => "mg/h",
            };
            Some(format!(
                "{} {} {unit}",
                knowledge.drugs.name(c.drug),
                fmt(strength.value)
            ))
        })
        .collect();
    let codes: Vec<&str> = product
        .codes
        .iter()
        .filter(|c| c.system == RXNORM)
        .map(|c| c.code.as_str())
        .collect();
    let why = match codes.as_slice() {
        [] => "no RxNorm code".to_string(),
        codes => format!(
            "RxNorm {} not a clinical drug in the knowledge",
            codes.join(", ")
        ),
    };
    let text = format!(
        "{source}: strength read from the display text '{label}' ({}; {why})",
        strengths.join(", ")
    );
    Some(Finding::new(
        codes::STRENGTH_FROM_DISPLAY,
        Severity::Info,
        text,
        vec![source.clone()],
    ))
}

/// Leaves unknown (with the reason) every supply's daily dose above the plausibility
/// factor x the drug's labelled maximum, and returns one finding per such supply.
pub fn implausible_doses(supplies: &mut [Supply], knowledge: &Knowledge) -> Vec<Finding> {
    let Some(plausibility) = &knowledge.drugs.dose_plausibility else {
        return Vec::new();
    };
    let factor = plausibility.max_factor;
    let mut findings = Vec::new();
    for supply in supplies.iter_mut() {
        let (Some(mg), Some(max)) = (
            supply.daily_dose.mg,
            knowledge.drugs.max_daily_mg(supply.drug),
        ) else {
            continue;
        };
        let ceiling = max * factor;
        if mg <= ceiling {
            continue;
        }
        let name = knowledge.drugs.name(supply.drug);
        let reason = format!(
            "dose implausible: {} = {} mg/day of {name} is above {} x the labelled maximum {} mg/day ({} mg/day); not used as a dose",
            supply.daily_dose.basis,
            fmt(mg),
            fmt(factor),
            fmt(max),
            fmt(ceiling)
        );
        findings.push(Finding::new(
            codes::DOSE_IMPLAUSIBLE,
            Severity::Warning,
            format!("{}: {reason}", supply.source),
            vec![supply.source.clone()],
        ));
        supply.daily_dose = DailyDose {
            mg: None,
            as_needed: supply.daily_dose.as_needed,
            basis: reason,
        };
    }
    findings
}
