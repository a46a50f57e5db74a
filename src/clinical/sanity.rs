//! Screening the record for impossible values before anything is computed from it:
//! a date outside the policy's plausible years, a days supply beyond the cited
//! maximum, a quantity no pharmacy hands over. Such a resource becomes a finding
//! naming it and is left out; the rest of the patient is assessed as usual.

use std::borrow::Cow;
use std::collections::BTreeMap;

use time::Date;

use super::finding::{codes, Finding, Severity};
use super::policy::Policy;
use super::record::{Amount, DosageInstruction, DoseQuantity, PatientRecord, SourceRef};

/// More units than any single order or dispense of an oral antidepressant holds.
const MAX_UNITS: f64 = 100_000.0;
/// More refills than any prescription allows (US: at most 11 for a year's supply).
const MAX_REPEATS: u32 = 100;

/// The record without its implausible resources, and a finding for each.
pub fn screen<'r>(
    record: &'r PatientRecord,
    policy: &Policy,
) -> (Cow<'r, PatientRecord>, Vec<Finding>) {
    let check = Check { policy };
    let mut problems: BTreeMap<SourceRef, String> = BTreeMap::new();
    let mut note = |source: &SourceRef, problem: Option<String>| {
        if let Some(problem) = problem {
            problems.entry(source.clone()).or_insert(problem);
        }
    };
    for d in &record.dispenses {
        note(&d.source, check.date("whenHandedOver", d.handed_over));
        note(&d.source, check.days_supply(d.days_supply));
        note(&d.source, check.amount("quantity", d.quantity.as_ref()));
        note(&d.source, check.dosage(&d.dosage));
    }
    for o in &record.orders {
        note(&o.source, check.date("authoredOn", o.authored_on));
        note(
            &o.source,
            check.date("validityPeriod.start", o.validity_start),
        );
        note(&o.source, check.date("validityPeriod.end", o.validity_end));
        note(&o.source, check.days_supply(o.expected_supply_days));
        note(
            &o.source,
            check.amount("dispenseRequest.quantity", o.quantity.as_ref()),
        );
        note(&o.source, check.dosage(&o.dosage));
        if o.repeats_allowed.is_some_and(|r| r > MAX_REPEATS) {
            note(
                &o.source,
                Some(format!("numberOfRepeatsAllowed above {MAX_REPEATS}")),
            );
        }
    }
    for s in &record.statements {
        note(&s.source, check.date("effective start", s.start));
        note(&s.source, check.date("effective end", s.end));
        note(&s.source, check.dosage(&s.dosage));
    }
    for a in &record.administrations {
        note(&a.source, check.date("effective", a.given));
        note(&a.source, check.date("effective end", a.given_until));
        note(&a.source, check.dosage(std::slice::from_ref(&a.dosage)));
    }
    for o in &record.observations {
        note(&o.source, check.date("effective", o.effective));
    }
    for c in &record.conditions {
        note(&c.source, check.date("onset", c.onset));
        note(&c.source, check.date("abatement", c.abatement));
        note(&c.source, check.date("recordedDate", c.recorded));
    }
    for p in &record.procedures {
        note(&p.source, check.date("performed", p.performed));
    }
    if problems.is_empty() {
        return (Cow::Borrowed(record), Vec::new());
    }
    let mut kept = record.clone();
    let keep = |source: &SourceRef| !problems.contains_key(source);
    kept.dispenses.retain(|x| keep(&x.source));
    kept.orders.retain(|x| keep(&x.source));
    kept.statements.retain(|x| keep(&x.source));
    kept.administrations.retain(|x| keep(&x.source));
    kept.observations.retain(|x| keep(&x.source));
    kept.conditions.retain(|x| keep(&x.source));
    kept.procedures.retain(|x| keep(&x.source));
    let findings = problems
        .into_iter()
        .map(|(source, problem)| {
            Finding::new(
                codes::IMPLAUSIBLE_VALUE,
                Severity::Warning,
                format!("{source}: not used, implausible value ({problem})"),
                vec![source],
            )
        })
        .collect();
    (Cow::Owned(kept), findings)
}

struct Check<'p> {
    policy: &'p Policy,
}

impl Check<'_> {
    fn date(&self, field: &str, date: Option<Date>) -> Option<String> {
        let [first, last] = self.policy.plausible_years;
        let year = date?.year();
        (year < first || year > last)
            .then(|| format!("{field} in year {year}, outside {first}-{last}"))
    }

    fn days_supply(&self, days: Option<f64>) -> Option<String> {
        let days = days?;
        let max = f64::from(self.policy.max_days_supply);
        (!days.is_finite() || days < 0.0 || days > max)
            .then(|| format!("days supply {} outside 0-{max}", super::numbers::fmt(days)))
    }

    fn amount(&self, field: &str, amount: Option<&Amount>) -> Option<String> {
        let value = amount?.value;
        (!value.is_finite() || !(0.0..=MAX_UNITS).contains(&value)).then(|| {
            format!(
                "{field} {} outside 0-{MAX_UNITS}",
                super::numbers::fmt(value)
            )
        })
    }

    fn dosage(&self, dosage: &[DosageInstruction]) -> Option<String> {
        dosage.iter().find_map(|d| {
            let amounts: Vec<&Amount> = match &d.dose {
                Some(DoseQuantity::Quantity(a)) => vec![a],
                Some(DoseQuantity::Range { low, high }) => {
                    std::iter::once(low).chain(high.as_ref()).collect()
                }
                None => vec![],
            };
            let dose = amounts
                .into_iter()
                .find_map(|a| self.amount("dose", Some(a)));
            let bounds = d
                .bounds_days
                .filter(|b| {
                    !b.is_finite() || *b < 0.0 || *b > f64::from(self.policy.max_order_days)
                })
                .map(|b| format!("boundsDuration {} days", super::numbers::fmt(b)));
            dose.or(bounds)
                .or_else(|| self.date("boundsPeriod.start", d.bounds_start))
                .or_else(|| self.date("boundsPeriod.end", d.bounds_end))
        })
    }
}
