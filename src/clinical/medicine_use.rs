//! Uses of medicines the catalogue does not track as trials (linezolid, methylene
//! blue, mood stabilisers, antipsychotics), named in a knowledge file by part of a
//! name and RxNorm codes: each order, dispense, statement or ward administration with the period it covers.

use time::Date;

use super::dates::last_of_span;
use super::knowledge::NamedDrug;
use super::product::{labels_of, RXNORM};
use super::record::{MedicationProduct, PatientRecord, SourceRef};

/// One order, dispense or statement of a named drug, with its period.
#[derive(Debug, Clone, PartialEq)]
pub struct MedicineUse<'a> {
    /// The knowledge's name of the drug.
    pub name: &'a str,
    pub start: Date,
    pub end: Date,
    pub source: &'a SourceRef,
}

/// Whether a product is this drug: an RxNorm code on the list, or the name in one of
/// its labels.
pub fn names(product: &MedicationProduct, drug: &NamedDrug) -> bool {
    let code_match = product
        .codes
        .iter()
        .chain(product.ingredients.iter().flat_map(|i| &i.codes))
        .any(|c| c.system == RXNORM && drug.rxnorm.contains(&c.code));
    let label_match = labels_of(product)
        .chain(product.ingredients.iter().filter_map(|i| i.text.as_deref()))
        .any(|label| label.to_lowercase().contains(&drug.name));
    code_match || label_match
}

/// Every use of the named drugs that started on or before `as_of`. An order covers
/// its expected supply (else one day), a dispense its days supply (else one day), a
/// statement its effective period; at most a year each.
pub fn uses_of<'a>(
    record: &'a PatientRecord,
    drugs: &'a [NamedDrug],
    as_of: Date,
) -> Vec<MedicineUse<'a>> {
    const NOT_USED: &[&str] = &[
        "entered-in-error",
        "cancelled",
        "draft",
        "not-taken",
        "not-done",
    ];
    let days = |d: Option<f64>| {
        d.filter(|d| d.is_finite() && *d >= 1.0)
            .map_or(1, |d| d.min(365.0) as u32)
    };
    let mut uses = Vec::new();
    for drug in drugs {
        let orders = record.orders.iter().filter_map(|o| {
            let start = o.authored_on.or(o.validity_start)?;
            Some((
                &o.status,
                &o.medication,
                start,
                days(o.expected_supply_days),
                &o.source,
            ))
        });
        let dispenses = record.dispenses.iter().filter_map(|d| {
            let start = d.handed_over?;
            Some((
                &d.status,
                &d.medication,
                start,
                days(d.days_supply),
                &d.source,
            ))
        });
        let statements = record.statements.iter().filter_map(|s| {
            let start = s.start?;
            let span = s
                .end
                .map_or(1, |end| (end - start).whole_days().clamp(0, 365) as u32 + 1);
            Some((&s.status, &s.medication, start, span, &s.source))
        });
        let administrations = record.administrations.iter().filter_map(|a| {
            let start = a.given?;
            let span = a
                .given_until
                .map_or(1, |end| (end - start).whole_days().clamp(0, 365) as u32 + 1);
            Some((&a.status, &a.medication, start, span, &a.source))
        });
        for (status, product, start, span, source) in orders
            .chain(dispenses)
            .chain(statements)
            .chain(administrations)
        {
            if NOT_USED.contains(&status.as_str()) || start > as_of || !names(product, drug) {
                continue;
            }
            uses.push(MedicineUse {
                name: &drug.name,
                start,
                end: last_of_span(start, span),
                source,
            });
        }
    }
    uses
}
