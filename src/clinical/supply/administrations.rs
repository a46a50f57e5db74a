//! Supplies from ward administrations (MedicationAdministration): each day a dose was
//! given is a covered day at the day's summed dose, so a trial begun on the ward and
//! continued with outpatient fills is one trial from its first inpatient dose, with
//! adherence known for the days given. Runs of days at one dose become one supply.

use std::collections::BTreeMap;

use time::Date;

use super::orders::UsableOrder;
use super::{
    authorising_order, identify_or_ordered, strength_mg, Supply, SupplyLedger, SupplyOrigin,
};
use crate::clinical::dates::plus_days;
use crate::clinical::dose::{daily_dose, DailyDose};
use crate::clinical::finding::Finding;
use crate::clinical::indication::indication_of;
use crate::clinical::knowledge::{DrugRef, Knowledge};
use crate::clinical::numbers::fmt;
use crate::clinical::record::{PatientRecord, SourceRef};

/// Administrations that say a dose was given.
const ADMINISTRATION_USED: &[&str] = &["completed", "in-progress"];

/// One drug's doses on one day.
#[derive(Default)]
struct GivenDay {
    mg: Option<f64>,
    unknown: bool,
    count: usize,
    sources: Vec<SourceRef>,
    extended_release: bool,
    strength_mg: Option<f64>,
}

pub(super) fn administration_supplies(
    record: &PatientRecord,
    orders: &[UsableOrder<'_>],
    knowledge: &Knowledge,
    ledger: &mut SupplyLedger,
) {
    let mut days: BTreeMap<(DrugRef, Date), GivenDay> = BTreeMap::new();
    let mut reasons_of: BTreeMap<DrugRef, &[crate::clinical::record::Code]> = BTreeMap::new();
    for given in &record.administrations {
        if !ADMINISTRATION_USED.contains(&given.status.as_str()) {
            ledger.findings.push(Finding::not_used(
                &given.source,
                format!("status {}", given.status),
            ));
            continue;
        }
        let requests: Vec<SourceRef> = given.request.iter().cloned().collect();
        let Some(product) = identify_or_ordered(
            &given.source,
            &given.medication,
            &requests,
            orders,
            knowledge,
            ledger,
        ) else {
            continue;
        };
        let Some(first) = given.given else {
            ledger
                .findings
                .push(Finding::not_used(&given.source, "no effective date"));
            continue;
        };
        let last = given.given_until.unwrap_or(first).max(first);
        for component in &product.components {
            let dose = daily_dose(std::slice::from_ref(&given.dosage), component.strength);
            if let Some(order) = authorising_order(&requests, Some(first), orders, component.drug) {
                reasons_of.insert(component.drug, order.order.reasons.as_slice());
            }
            let mut day = first;
            while day <= last {
                let entry = days.entry((component.drug, day)).or_default();
                match dose.mg {
                    Some(mg) if day == first => entry.mg = Some(entry.mg.unwrap_or(0.0) + mg),
                    Some(_) => {}
                    None => entry.unknown = true,
                }
                entry.count += 1;
                if !entry.sources.contains(&given.source) {
                    entry.sources.push(given.source.clone());
                }
                entry.extended_release |= product.extended_release;
                entry.strength_mg = strength_mg(component.strength);
                day = plus_days(day, 1);
            }
        }
    }
    // Consecutive days at one dose: one supply.
    let mut runs: Vec<(DrugRef, Date, u32, GivenDay)> = Vec::new();
    for ((drug, day), given) in days {
        let mg = (!given.unknown).then_some(given.mg).flatten();
        match runs.last_mut() {
            Some((d, start, n, run))
                if *d == drug
                    && plus_days(*start, i64::from(*n)) == day
                    && (!run.unknown).then_some(run.mg).flatten() == mg =>
            {
                *n += 1;
                run.count += given.count;
                for source in given.sources {
                    if !run.sources.contains(&source) {
                        run.sources.push(source);
                    }
                }
            }
            _ => runs.push((drug, day, 1, given)),
        }
    }
    for (drug, start, days, run) in runs {
        let reasons = reasons_of.get(&drug).copied().unwrap_or(&[]);
        let daily_dose = match (run.mg, run.unknown) {
            (Some(mg), false) => DailyDose {
                mg: Some(mg),
                as_needed: false,
                basis: format!(
                    "{} mg/day given on the ward ({} administrations over {days} days)",
                    fmt(mg),
                    run.count
                ),
            },
            _ => DailyDose::unknown(format!(
                "given on the ward ({} administrations over {days} days), dose not recorded",
                run.count
            )),
        };
        let mut sources = run.sources.into_iter();
        let Some(source) = sources.next() else {
            continue;
        };
        ledger.supplies.push(Supply {
            drug,
            start,
            days,
            daily_dose,
            origin: SupplyOrigin::Administration,
            source,
            merged: sources.collect(),
            extended_release: run.extended_release,
            strength_mg: run.strength_mg,
            dose_stated_in_mg: false,
            indication: indication_of(reasons, record, knowledge),
        });
    }
}
