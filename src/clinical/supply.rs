//! Supplies: "drug D was on hand from day S for N days at dose X", from dispenses
//! (preferred: they show what was collected), orders, and medication statements.
//!
//! Pharmacy data as it is (docs/clinical-rules.md section 8): several strengths handed over the
//! same day make one day's dose; dispenses win over orders only for the period they
//! cover, so outside-pharmacy history still counts; an order never dispensed gives
//! an estimated, "orders only" supply bounded by the order that replaced it.

use std::collections::BTreeMap;

use serde::Serialize;
use time::Date;

use super::dates::{last_of_span, plus_days};
use super::dose::{ml_per_day, units_per_day, DailyDose};
use super::finding::Finding;
use super::indication::{indication_of, Indication};
use super::knowledge::{DrugRef, Knowledge, Strength, StrengthUnit};
use super::numbers::fmt;
use super::policy::Policy;
use super::product::{identify, IdentifiedProduct, ProductIdentity};
use super::record::{
    DosageInstruction, MedicationDispensed, MedicationProduct, PatientRecord, SourceRef,
};
use super::schedule::{pieces, schedule};
use super::units::{classify, UnitKind};

mod administrations;
mod orders;
use administrations::administration_supplies;
use orders::{order_supplies, usable_orders, UsableOrder};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SupplyOrigin {
    /// Given on the ward (MedicationAdministration): the strongest evidence.
    Administration,
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
    /// Other dispenses merged into this one (same-day fills of other strengths).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub merged: Vec<SourceRef>,
    pub extended_release: bool,
    /// mg per presentation unit, when known: tells same-day fills of two strengths
    /// (one dose) from two fills of one strength (stock).
    #[serde(skip)]
    pub strength_mg: Option<f64>,
    /// The dose was written in mg (an order's "150 mg daily"), not as units of the
    /// product: same-day fills of two strengths under it make that dose, not a sum.
    #[serde(skip)]
    pub dose_stated_in_mg: bool,
    pub indication: Indication,
}

impl SupplyOrigin {
    /// Whether the supply shows the drug was in the patient's hands (collected from a
    /// pharmacy or given on the ward): adherence is measurable.
    pub fn is_observed(self) -> bool {
        matches!(self, Self::Administration | Self::Dispense)
    }
}

impl Supply {
    /// Last day covered (inclusive).
    pub fn last_day(&self) -> Date {
        last_of_span(self.start, self.days)
    }

    /// Every resource behind this supply.
    pub fn sources(&self) -> impl Iterator<Item = &SourceRef> {
        std::iter::once(&self.source).chain(&self.merged)
    }
}

/// A medication resource the engine read but does not track (not an antidepressant
/// or augmentation agent): listed, so nothing is silently dropped.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct IgnoredMedication {
    pub source: SourceRef,
    /// The medication as coded (`system|code (display)`), for tracing.
    pub medication: String,
    /// What a person reads: the code's display or the text.
    #[serde(skip)]
    pub readable: String,
}

/// A MedicationStatement saying the drug was not taken, over its effective period.
#[derive(Debug, Clone, PartialEq)]
pub struct NotTaken {
    pub drug: DrugRef,
    pub from: Date,
    pub to: Date,
    pub source: SourceRef,
}

#[derive(Debug, Default)]
pub struct SupplyLedger {
    pub supplies: Vec<Supply>,
    pub not_taken: Vec<NotTaken>,
    pub ignored: Vec<IgnoredMedication>,
    pub findings: Vec<Finding>,
}

const DISPENSE_USED: &[&str] = &["completed", "in-progress"];
const STATEMENT_USED: &[&str] = &["active", "completed", "stopped"];

pub fn collect_supplies(
    record: &PatientRecord,
    knowledge: &Knowledge,
    policy: &Policy,
    as_of: Date,
) -> SupplyLedger {
    let mut ledger = SupplyLedger::default();
    let usable_orders = usable_orders(record, knowledge, &mut ledger);
    dispense_supplies(record, &usable_orders, knowledge, &mut ledger);
    merge_same_day_strengths(&mut ledger.supplies);
    administration_supplies(record, &usable_orders, knowledge, &mut ledger);
    let dispensed = dispensed_spans(&ledger.supplies, policy.era_gap_days);
    order_supplies(
        record,
        &usable_orders,
        &dispensed,
        knowledge,
        policy,
        &mut ledger,
    );
    statement_supplies(record, knowledge, as_of, &mut ledger);
    ledger
        .supplies
        .sort_by(|a, b| (a.drug, a.start, &a.source).cmp(&(b.drug, b.start, &b.source)));
    ledger
}

fn dispense_supplies(
    record: &PatientRecord,
    orders: &[UsableOrder<'_>],
    knowledge: &Knowledge,
    ledger: &mut SupplyLedger,
) {
    for dispense in &record.dispenses {
        let Some(product) = identify_or_ordered(
            &dispense.source,
            &dispense.medication,
            &dispense.authorizing,
            orders,
            knowledge,
            ledger,
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
            let order = authorising_order(
                &dispense.authorizing,
                dispense.handed_over,
                orders,
                component.drug,
            );
            let dosage: &[DosageInstruction] = if dispense.dosage.is_empty() {
                order.map(|o| o.order.dosage.as_slice()).unwrap_or(&[])
            } else {
                &dispense.dosage
            };
            let days = dispense.days_supply.or_else(|| {
                let quantity = dispense.quantity.as_ref()?;
                match classify(&quantity.unit) {
                    UnitKind::Count => Some(quantity.value / units_per_day(dosage)?),
                    UnitKind::Volume { ml_per_unit } => {
                        Some(quantity.value * ml_per_unit / ml_per_day(dosage)?)
                    }
                    _ => None,
                }
            });
            let Some(days) = days.filter(|d| *d >= 1.0) else {
                ledger.findings.push(Finding::not_used(
                    &dispense.source,
                    "days supply unknown (no daysSupply, and no quantity with a countable or liquid dose)",
                ));
                continue;
            };
            let days = days.round() as u32;
            let anchor = order.map(|o| o.start).filter(|a| *a <= start);
            let steps = schedule(dosage, component.strength, anchor);
            let dose_stated_in_mg = super::dose::daily_dose(dosage, None).mg.is_some();
            let reasons = order.map(|o| o.order.reasons.as_slice()).unwrap_or(&[]);
            let indication = indication_of(reasons, record, knowledge);
            for piece in pieces(&steps, anchor.unwrap_or(start), start, days) {
                let mut dose = piece.dose;
                if dose.mg.is_none() && steps.len() == 1 {
                    if let Some(from_quantity) =
                        dose_from_quantity(dispense, component.strength, f64::from(days))
                    {
                        dose = from_quantity;
                    }
                }
                ledger.supplies.push(Supply {
                    drug: component.drug,
                    start: piece.start,
                    days: piece.days,
                    daily_dose: dose,
                    origin: SupplyOrigin::Dispense,
                    source: dispense.source.clone(),
                    merged: Vec::new(),
                    extended_release: product.extended_release,
                    strength_mg: strength_mg(component.strength),
                    dose_stated_in_mg,
                    indication: indication.clone(),
                });
            }
        }
    }
}

fn strength_mg(strength: Option<Strength>) -> Option<f64> {
    match strength? {
        Strength {
            value,
            unit: StrengthUnit::Mg,
        } => Some(value),
        _ => None,
    }
}

/// The order a dispense or administration names (`authorizingPrescription`,
/// `request`), else the latest order for the same drug with a dosage written on or
/// before it.
fn authorising_order<'o, 'r>(
    named: &[SourceRef],
    on: Option<Date>,
    orders: &'o [UsableOrder<'r>],
    drug: DrugRef,
) -> Option<&'o UsableOrder<'r>> {
    orders
        .iter()
        .find(|o| named.contains(&o.order.source) && o.names(drug))
        .or_else(|| {
            orders
                .iter()
                .filter(|o| o.names(drug) && !o.order.dosage.is_empty())
                .filter(|o| on.is_some_and(|day| o.start <= day))
                .max_by_key(|o| o.start)
        })
}

/// Same-day dispenses of one ingredient in different strengths (100 mg + 50 mg
/// tablets) are one supply at the summed dose, not an early refill (PQA; docs/clinical-rules.md
/// section 8). Two fills of the same strength stay separate: that is stock.
fn merge_same_day_strengths(supplies: &mut Vec<Supply>) {
    let mut groups: BTreeMap<(DrugRef, Date), Vec<Supply>> = BTreeMap::new();
    for supply in supplies.drain(..) {
        groups
            .entry((supply.drug, supply.start))
            .or_default()
            .push(supply);
    }
    for (_, mut group) in groups {
        let mut strengths: Vec<f64> = group.iter().filter_map(|s| s.strength_mg).collect();
        strengths.sort_by(f64::total_cmp);
        strengths.dedup();
        let mergeable = group.len() > 1
            && strengths.len() == group.len()
            && group.iter().all(|s| s.origin == SupplyOrigin::Dispense);
        if !mergeable {
            supplies.append(&mut group);
            continue;
        }
        group.sort_by(|a, b| a.source.cmp(&b.source));
        let mut iter = group.into_iter();
        let Some(mut merged) = iter.next() else {
            continue;
        };
        for other in iter {
            merged.days = merged.days.max(other.days);
            let one_stated_dose = merged.dose_stated_in_mg
                && other.dose_stated_in_mg
                && merged.daily_dose.mg == other.daily_dose.mg;
            merged.daily_dose = match (merged.daily_dose.mg, other.daily_dose.mg) {
                // "150 mg daily" handed over as 100 mg and 50 mg tablets: 150, not 300.
                (Some(a), Some(_)) if one_stated_dose => DailyDose {
                    mg: Some(a),
                    as_needed: merged.daily_dose.as_needed,
                    basis: format!(
                        "{} (made up of same-day fills of two strengths)",
                        merged.daily_dose.basis
                    ),
                },
                (Some(a), Some(b)) => DailyDose {
                    mg: Some(a + b),
                    as_needed: merged.daily_dose.as_needed || other.daily_dose.as_needed,
                    basis: format!(
                        "{} + {} (same-day fills of two strengths)",
                        merged.daily_dose.basis, other.daily_dose.basis
                    ),
                },
                _ => DailyDose::unknown(format!(
                    "same-day fills of two strengths, one dose unknown: {}; {}",
                    merged.daily_dose.basis, other.daily_dose.basis
                )),
            };
            merged.strength_mg = None;
            merged.merged.push(other.source);
            merged.merged.extend(other.merged);
        }
        supplies.push(merged);
    }
}

/// Per drug, the periods dispenses and ward administrations cover: their supplies joined while the gap is
/// within the era gap, widened by the gap before the first fill (the order that led
/// to it) and after the last.
fn dispensed_spans(supplies: &[Supply], gap_days: u32) -> BTreeMap<DrugRef, Vec<(Date, Date)>> {
    let gap = i64::from(gap_days);
    let mut by_drug: BTreeMap<DrugRef, Vec<(Date, Date)>> = BTreeMap::new();
    let mut ordered: Vec<&Supply> = supplies.iter().collect();
    ordered.sort_by_key(|s| (s.drug, s.start));
    for supply in ordered {
        let spans = by_drug.entry(supply.drug).or_default();
        let (from, to) = (
            plus_days(supply.start, -gap),
            plus_days(supply.last_day(), gap),
        );
        match spans.last_mut() {
            Some(last) if from <= last.1 => last.1 = last.1.max(to),
            _ => spans.push((from, to)),
        }
    }
    by_drug
}

fn covered(spans: Option<&Vec<(Date, Date)>>, day: Date) -> bool {
    spans.is_some_and(|spans| spans.iter().any(|(from, to)| *from <= day && day <= *to))
}

fn statement_supplies(
    record: &PatientRecord,
    knowledge: &Knowledge,
    as_of: Date,
    ledger: &mut SupplyLedger,
) {
    for statement in &record.statements {
        let Some(product) = recognise(&statement.source, &statement.medication, knowledge, ledger)
        else {
            continue;
        };
        if statement.status == "not-taken" {
            let Some(from) = statement.start.or(statement.end) else {
                ledger.findings.push(Finding::not_used(
                    &statement.source,
                    "not-taken statement without an effective date",
                ));
                continue;
            };
            let to = statement.end.unwrap_or(from).max(from);
            for component in &product.components {
                ledger.not_taken.push(NotTaken {
                    drug: component.drug,
                    from,
                    to,
                    source: statement.source.clone(),
                });
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
            (Some(end), _) => end.max(start),
            (None, "active") => as_of.max(start),
            _ => {
                ledger.findings.push(Finding::not_used(
                    &statement.source,
                    "no effective end for a finished statement",
                ));
                continue;
            }
        };
        let indication = indication_of(&statement.reasons, record, knowledge);
        for component in &product.components {
            // Statements fill in only where neither dispenses nor orders say anything.
            let overlaps = ledger
                .supplies
                .iter()
                .any(|s| s.drug == component.drug && s.start <= end && start <= s.last_day());
            if overlaps {
                continue;
            }
            let days = u32::try_from((end - start).whole_days() + 1).unwrap_or(u32::MAX);
            ledger.supplies.push(Supply {
                drug: component.drug,
                start,
                days,
                daily_dose: super::dose::daily_dose(&statement.dosage, component.strength),
                origin: SupplyOrigin::Statement,
                source: statement.source.clone(),
                merged: Vec::new(),
                extended_release: product.extended_release,
                strength_mg: strength_mg(component.strength),
                dose_stated_in_mg: false,
                indication: indication.clone(),
            });
        }
    }
}

/// What a dispense or administration gave: its own medication, else (when it carries
/// no usable code of its own: an NDC alone, a local code) the drug of the order it
/// names (`authorizingPrescription`, `request`), said so in the identification.
fn identify_or_ordered(
    source: &SourceRef,
    product: &MedicationProduct,
    orders_named: &[SourceRef],
    orders: &[UsableOrder<'_>],
    knowledge: &Knowledge,
    ledger: &mut SupplyLedger,
) -> Option<IdentifiedProduct> {
    let identity = identify(product, knowledge);
    if let ProductIdentity::Known(found) = identity {
        return Some(found);
    }
    let named = orders
        .iter()
        .find(|o| orders_named.contains(&o.order.source));
    let blank = |text: &Option<String>| text.as_deref().is_none_or(|t| t.trim().is_empty());
    let no_usable_code = matches!(identity, ProductIdentity::Unidentifiable { .. })
        || (blank(&product.text)
            && product
                .codes
                .iter()
                .all(|c| blank(&c.display) && c.system != super::product::RXNORM)
            && product.ingredients.is_empty());
    if let Some(order) = named.filter(|_| no_usable_code) {
        let mut found = order.product.clone();
        found.identified_by = format!("the drug of {}", order.order.source);
        return Some(found);
    }
    report_unrecognised(source, product, identity, ledger);
    None
}

fn recognise(
    source: &SourceRef,
    product: &MedicationProduct,
    knowledge: &Knowledge,
    ledger: &mut SupplyLedger,
) -> Option<IdentifiedProduct> {
    match identify(product, knowledge) {
        ProductIdentity::Known(product) => Some(product),
        unknown => {
            report_unrecognised(source, product, unknown, ledger);
            None
        }
    }
}

/// A medication the engine does not track is listed; one it cannot identify is a
/// finding.
fn report_unrecognised(
    source: &SourceRef,
    product: &MedicationProduct,
    identity: ProductIdentity,
    ledger: &mut SupplyLedger,
) {
    match identity {
        ProductIdentity::Known(_) => {}
        ProductIdentity::NotInCatalogue { label } => {
            let readable = super::product::labels_of(product)
                .next()
                .map(str::to_string)
                .unwrap_or_else(|| label.clone());
            ledger.ignored.push(IgnoredMedication {
                source: source.clone(),
                medication: label,
                readable,
            });
        }
        ProductIdentity::Unidentifiable { reason } => {
            ledger
                .findings
                .push(Finding::unidentified_medication(source, reason));
        }
    }
}

/// With no usable dosage: tablets dispensed x strength / days supply.
fn dose_from_quantity(
    dispense: &MedicationDispensed,
    strength: Option<Strength>,
    days: f64,
) -> Option<DailyDose> {
    let quantity = dispense.quantity.as_ref()?;
    let per_unit = strength_mg(strength)?;
    if classify(&quantity.unit) != UnitKind::Count || days <= 0.0 {
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
