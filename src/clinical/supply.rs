//! Supplies: "drug D was on hand from day S for N days at dose X", from dispenses
//! (preferred: they show what was collected), orders, and medication statements.

use std::collections::BTreeSet;

use serde::Serialize;
use time::Date;

use super::dose::{daily_dose, fmt, units_per_day, DailyDose};
use super::finding::Finding;
use super::knowledge::{DrugRef, Knowledge, Strength, StrengthUnit};
use super::product::{identify, IdentifiedProduct, ProductIdentity};
use super::record::{
    DosageInstruction, MedicationDispensed, MedicationOrder, MedicationProduct, PatientRecord,
    SourceRef,
};
use super::units::{classify, duration_in_days, UnitKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SupplyOrigin {
    Dispense,
    Order,
    Statement,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Supply {
    #[serde(skip)]
    pub drug: DrugRef,
    pub start: Date,
    pub days: u32,
    pub daily_dose: DailyDose,
    pub origin: SupplyOrigin,
    pub source: SourceRef,
    pub extended_release: bool,
}

impl Supply {
    /// Last day covered (inclusive).
    pub fn last_day(&self) -> Date {
        self.start + time::Duration::days(i64::from(self.days.max(1)) - 1)
    }
}

/// A medication resource the engine read but does not track (not an antidepressant
/// or augmentation agent): listed, so nothing is silently dropped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IgnoredMedication {
    pub source: SourceRef,
    pub medication: String,
}

#[derive(Debug, Default)]
pub struct SupplyLedger {
    pub supplies: Vec<Supply>,
    /// MedicationStatements saying the drug was not taken.
    pub not_taken: Vec<(DrugRef, SourceRef)>,
    pub ignored: Vec<IgnoredMedication>,
    pub findings: Vec<Finding>,
}

const DISPENSE_USED: &[&str] = &["completed", "in-progress"];
const ORDER_STATUS_USED: &[&str] = &["active", "completed", "stopped", "on-hold"];
const ORDER_INTENT_USED: &[&str] = &[
    "order",
    "original-order",
    "reflex-order",
    "filler-order",
    "instance-order",
];
const STATEMENT_USED: &[&str] = &["active", "completed", "stopped"];

pub fn collect_supplies(
    record: &PatientRecord,
    knowledge: &Knowledge,
    as_of: Date,
) -> SupplyLedger {
    let mut ledger = SupplyLedger::default();
    let mut dispensed_drugs = BTreeSet::new();
    let mut ordered_drugs = BTreeSet::new();

    for dispense in &record.dispenses {
        let Some(product) = recognise(
            &dispense.source,
            &dispense.medication,
            knowledge,
            &mut ledger,
        ) else {
            continue;
        };
        if !DISPENSE_USED.contains(&dispense.status.as_str()) {
            ledger.findings.push(Finding::not_used(
                &dispense.source,
                format!("status {}", dispense.status),
            ));
            continue;
        }
        let Some(start) = dispense.handed_over else {
            ledger.findings.push(Finding::not_used(
                &dispense.source,
                "no whenHandedOver date",
            ));
            continue;
        };
        for component in &product.components {
            let dosage = dispense_dosage(dispense, &record.orders, component.drug, knowledge);
            let days = dispense.days_supply.or_else(|| {
                let quantity = dispense.quantity.as_ref()?;
                (classify(&quantity.unit) == UnitKind::Count).then_some(())?;
                Some(quantity.value / units_per_day(dosage)?)
            });
            let Some(days) = days.filter(|d| *d >= 1.0) else {
                ledger.findings.push(Finding::not_used(
                    &dispense.source,
                    "days supply unknown (no daysSupply, and no quantity with a countable dose)",
                ));
                continue;
            };
            let mut dose = daily_dose(dosage, component.strength);
            if dose.mg.is_none() {
                if let Some(from_quantity) = dose_from_quantity(dispense, component.strength, days)
                {
                    dose = from_quantity;
                }
            }
            dispensed_drugs.insert(component.drug);
            ledger.supplies.push(Supply {
                drug: component.drug,
                start,
                days: days.round() as u32,
                daily_dose: dose,
                origin: SupplyOrigin::Dispense,
                source: dispense.source.clone(),
                extended_release: product.extended_release,
            });
        }
    }

    for order in &record.orders {
        let Some(product) = recognise(&order.source, &order.medication, knowledge, &mut ledger)
        else {
            continue;
        };
        if !ORDER_STATUS_USED.contains(&order.status.as_str())
            || !ORDER_INTENT_USED.contains(&order.intent.as_str())
        {
            let why = format!("status {}, intent {}", order.status, order.intent);
            ledger.findings.push(Finding::not_used(&order.source, why));
            continue;
        }
        let Some(start) = order.validity_start.or(order.authored_on) else {
            ledger.findings.push(Finding::not_used(
                &order.source,
                "no authoredOn or validity start",
            ));
            continue;
        };
        for component in &product.components {
            ordered_drugs.insert(component.drug);
            if dispensed_drugs.contains(&component.drug) {
                continue; // dispenses show what was collected; the order only adds dose
            }
            let Some(days) = order_days_from(order, Some((start, as_of))) else {
                let why = "supply duration unknown (no expectedSupplyDuration, countable quantity or validity end)";
                ledger.findings.push(Finding::not_used(&order.source, why));
                continue;
            };
            ledger.supplies.push(Supply {
                drug: component.drug,
                start,
                days,
                daily_dose: daily_dose(&order.dosage, component.strength),
                origin: SupplyOrigin::Order,
                source: order.source.clone(),
                extended_release: product.extended_release,
            });
        }
    }

    for statement in &record.statements {
        let Some(product) = recognise(
            &statement.source,
            &statement.medication,
            knowledge,
            &mut ledger,
        ) else {
            continue;
        };
        if statement.status == "not-taken" {
            for component in &product.components {
                ledger
                    .not_taken
                    .push((component.drug, statement.source.clone()));
            }
            continue;
        }
        if !STATEMENT_USED.contains(&statement.status.as_str()) {
            ledger.findings.push(Finding::not_used(
                &statement.source,
                format!("status {}", statement.status),
            ));
            continue;
        }
        let Some(start) = statement.start else {
            ledger
                .findings
                .push(Finding::not_used(&statement.source, "no effective date"));
            continue;
        };
        let end = match (statement.end, statement.status.as_str()) {
            (Some(end), _) => end,
            (None, "active") => as_of,
            _ => {
                ledger.findings.push(Finding::not_used(
                    &statement.source,
                    "no effective end for a finished statement",
                ));
                continue;
            }
        };
        for component in &product.components {
            if dispensed_drugs.contains(&component.drug) || ordered_drugs.contains(&component.drug)
            {
                continue;
            }
            let days = ((end - start).whole_days() + 1).max(1) as u32;
            ledger.supplies.push(Supply {
                drug: component.drug,
                start,
                days,
                daily_dose: daily_dose(&statement.dosage, component.strength),
                origin: SupplyOrigin::Statement,
                source: statement.source.clone(),
                extended_release: product.extended_release,
            });
        }
    }
    ledger
        .supplies
        .sort_by(|a, b| (a.drug, a.start, &a.source).cmp(&(b.drug, b.start, &b.source)));
    ledger
}

fn recognise(
    source: &SourceRef,
    product: &MedicationProduct,
    knowledge: &Knowledge,
    ledger: &mut SupplyLedger,
) -> Option<IdentifiedProduct> {
    match identify(product, knowledge) {
        ProductIdentity::Known(product) => Some(product),
        ProductIdentity::NotInCatalogue { label } => {
            ledger.ignored.push(IgnoredMedication {
                source: source.clone(),
                medication: label,
            });
            None
        }
        ProductIdentity::Unidentifiable { reason } => {
            ledger
                .findings
                .push(Finding::unidentified_medication(source, reason));
            None
        }
    }
}

/// A dispense's own dosage, else its authorising order's, else the latest order for
/// the same drug written on or before the dispense.
fn dispense_dosage<'a>(
    dispense: &'a MedicationDispensed,
    orders: &'a [MedicationOrder],
    drug: DrugRef,
    knowledge: &Knowledge,
) -> &'a [DosageInstruction] {
    if !dispense.dosage.is_empty() {
        return &dispense.dosage;
    }
    if let Some(order) = orders
        .iter()
        .find(|o| dispense.authorizing.contains(&o.source) && !o.dosage.is_empty())
    {
        return &order.dosage;
    }
    orders
        .iter()
        .filter(|o| !o.dosage.is_empty() && o.authored_on.is_some() && o.authored_on <= dispense.handed_over)
        .filter(|o| matches!(identify(&o.medication, knowledge), ProductIdentity::Known(p) if p.components.iter().any(|c| c.drug == drug)))
        .max_by_key(|o| o.authored_on)
        .map(|o| o.dosage.as_slice())
        .unwrap_or(&[])
}

/// With no usable dosage: tablets dispensed x strength / days supply.
fn dose_from_quantity(
    dispense: &MedicationDispensed,
    strength: Option<Strength>,
    days: f64,
) -> Option<DailyDose> {
    let quantity = dispense.quantity.as_ref()?;
    let Strength {
        value: per_unit,
        unit: StrengthUnit::Mg,
    } = strength?
    else {
        return None;
    };
    if classify(&quantity.unit) != UnitKind::Count {
        return None;
    }
    let mg = quantity.value * per_unit / days;
    Some(DailyDose {
        mg: Some(mg),
        as_needed: false,
        basis: format!(
            "{} units x {} mg over {} days supply",
            fmt(quantity.value),
            fmt(per_unit),
            fmt(days)
        ),
    })
}

/// An order's supply in days (CMD's request period): expected supply x (1 + repeats),
/// or countable quantity / daily use x (1 + repeats); else, given `(start, as_of)`,
/// its validity period, or for an active order the days up to the as-of date.
pub(crate) fn order_days_from(
    order: &MedicationOrder,
    open_ended: Option<(Date, Date)>,
) -> Option<u32> {
    let fills = 1.0 + f64::from(order.repeats_allowed.unwrap_or(0));
    let per_fill = order.expected_supply_days.or_else(|| {
        let quantity = order.quantity.as_ref()?;
        if let Some(days) =
            duration_in_days(quantity).filter(|_| classify(&quantity.unit) != UnitKind::Count)
        {
            return Some(days);
        }
        (classify(&quantity.unit) == UnitKind::Count).then_some(())?;
        Some(quantity.value / units_per_day(&order.dosage)?)
    });
    let days = match (per_fill, order.validity_end, open_ended) {
        (Some(per_fill), _, _) => per_fill * fills,
        (None, Some(end), Some((start, _))) => ((end - start).whole_days() + 1) as f64,
        (None, None, Some((start, as_of))) if order.status == "active" => {
            ((as_of - start).whole_days() + 1) as f64
        }
        _ => return None,
    };
    (days >= 1.0).then(|| days.round() as u32)
}
