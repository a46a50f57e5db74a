//! Supplies from orders: which orders are usable, and the estimated supply of an
//! order that was never dispensed ("orders only"), bounded by the order's own dates
//! and status and by the order that replaced it (docs/clinical-rules.md section 8).

use std::collections::BTreeMap;

use time::Date;

use super::{covered, recognise, strength_mg, Supply, SupplyLedger, SupplyOrigin};
use crate::clinical::dates::{last_of_span, plus_days};
use crate::clinical::dose::units_per_day;
use crate::clinical::finding::{codes, Finding, Severity};
use crate::clinical::indication::indication_of;
use crate::clinical::knowledge::{DrugKind, DrugRef, Knowledge};
use crate::clinical::policy::Policy;
use crate::clinical::product::IdentifiedProduct;
use crate::clinical::record::{MedicationOrder, PatientRecord};
use crate::clinical::schedule::{pieces, schedule};
use crate::clinical::units::{classify, duration_in_days, UnitKind};

const ORDER_STATUS_USED: &[&str] = &["active", "completed", "stopped", "on-hold"];
/// Order statuses that say the order ended; its estimated supply then ends where
/// another antidepressant order replaced it.
const ORDER_ENDED: &[&str] = &["completed", "stopped"];
const ORDER_INTENT_USED: &[&str] = &[
    "order",
    "original-order",
    "reflex-order",
    "filler-order",
    "instance-order",
];

/// An order the engine uses, with what it is and when it starts.
pub(super) struct UsableOrder<'r> {
    pub(super) order: &'r MedicationOrder,
    pub(super) product: IdentifiedProduct,
    pub(super) start: Date,
}

impl UsableOrder<'_> {
    pub(super) fn names(&self, drug: DrugRef) -> bool {
        self.product.components.iter().any(|c| c.drug == drug)
    }

    fn is_antidepressant(&self) -> bool {
        self.product
            .components
            .iter()
            .any(|c| c.drug.kind == DrugKind::Antidepressant)
    }
}

pub(super) fn usable_orders<'r>(
    record: &'r PatientRecord,
    knowledge: &Knowledge,
    ledger: &mut SupplyLedger,
) -> Vec<UsableOrder<'r>> {
    let mut usable = Vec::new();
    for order in &record.orders {
        let Some(product) = recognise(&order.source, &order.medication, knowledge, ledger) else {
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
        usable.push(UsableOrder {
            order,
            product,
            start,
        });
    }
    usable.sort_by_key(|o| (o.start, o.order.source.clone()));
    usable
}

#[allow(clippy::too_many_arguments)]
pub(super) fn order_supplies(
    record: &PatientRecord,
    orders: &[UsableOrder<'_>],
    dispensed: &BTreeMap<DrugRef, Vec<(Date, Date)>>,
    knowledge: &Knowledge,
    policy: &Policy,
    ledger: &mut SupplyLedger,
) {
    for (index, usable) in orders.iter().enumerate() {
        let order = usable.order;
        let later = orders.get(index + 1..).unwrap_or(&[]);
        for component in &usable.product.components {
            if covered(dispensed.get(&component.drug), usable.start) {
                continue; // the dispenses show what was collected; the order adds dose
            }
            let Some(days) = order_days_from(order, usable.start, policy) else {
                let why = "supply not usable (a stated supply under one day)";
                ledger.findings.push(Finding::not_used(&order.source, why));
                continue;
            };
            // Only a supply the order states (days x fills, quantity) can be absurd; an
            // order with no supply information gets the policy's default fill.
            let stated = order.expected_supply_days.is_some() || order.quantity.is_some();
            if stated && days > policy.max_order_days {
                ledger.findings.push(Finding::new(
                    codes::IMPLAUSIBLE_VALUE,
                    Severity::Warning,
                    format!(
                        "{}: not used, implausible value (estimated supply {days} days, above {})",
                        order.source, policy.max_order_days
                    ),
                    vec![order.source.clone()],
                ));
                continue;
            }
            // The order's estimate ends where its validity ends, where a later order
            // of the same drug takes over, and, once the order has ended, where another
            // antidepressant was ordered in its place.
            let mut last = last_of_span(usable.start, days);
            if let Some(end) = order.validity_end.filter(|e| *e >= usable.start) {
                last = last.min(end);
            }
            let ended = ORDER_ENDED.contains(&order.status.as_str());
            let replaced_by = later.iter().find(|next| {
                next.start > usable.start
                    && (next.names(component.drug)
                        || (ended
                            && component.drug.kind == DrugKind::Antidepressant
                            && next.is_antidepressant()))
            });
            if let Some(next) = replaced_by {
                last = last.min(plus_days(next.start, -1));
            }
            let days = u32::try_from((last - usable.start).whole_days() + 1).unwrap_or(0);
            if days == 0 {
                continue;
            }
            let steps = schedule(&order.dosage, component.strength, Some(usable.start));
            let indication = indication_of(&order.reasons, record, knowledge);
            for piece in pieces(&steps, usable.start, usable.start, days) {
                ledger.supplies.push(Supply {
                    drug: component.drug,
                    start: piece.start,
                    days: piece.days,
                    daily_dose: piece.dose,
                    origin: SupplyOrigin::Order,
                    source: order.source.clone(),
                    merged: Vec::new(),
                    extended_release: usable.product.extended_release,
                    strength_mg: strength_mg(component.strength),
                    dose_stated_in_mg: false,
                    indication: indication.clone(),
                });
            }
        }
    }
}

/// An order's supply in days (CMD's request period): expected supply x (1 + repeats),
/// or countable quantity / daily use x (1 + repeats); else, given its `start`, its
/// validity period; else the policy's default supply x (1 + repeats). An order's
/// status never makes its supply run on: an `active` order written years ago and
/// never dispensed is one prescription, not years of treatment.
pub(crate) fn order_days_from(
    order: &MedicationOrder,
    start: Date,
    policy: &Policy,
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
    let days = match (per_fill, order.validity_end) {
        (Some(per_fill), _) => per_fill * fills,
        (None, Some(end)) if end >= start => ((end - start).whole_days() + 1) as f64,
        (None, _) => f64::from(policy.order_default_supply_days) * fills,
    };
    (days.is_finite() && days >= 1.0).then(|| days.round().min(f64::from(u32::MAX)) as u32)
}
