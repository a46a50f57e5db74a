//! Exposure eras: one drug's supplies joined while the gap between one supply's end
//! and the next start is within the policy gap. Early refills of dispenses shift
//! forward (PQA: no double counting), with the carried-over stock capped (policy
//! `stockpile_cap_days`); orders and statements are joined as a union.

use serde::Serialize;
use time::Date;

use super::dates::{days_inclusive, last_of_span, plus_days};

use super::knowledge::DrugRef;
use super::supply::{Supply, SupplyOrigin};

/// One supply's days after shifting, inside an era.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CoveredSpan {
    pub first: Date,
    pub last: Date,
    /// Index into the ledger's supplies.
    pub supply: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExposureEra {
    #[serde(skip)]
    pub drug: DrugRef,
    pub start: Date,
    /// Last covered day (inclusive).
    pub end: Date,
    pub spans: Vec<CoveredSpan>,
    /// Every supply in the era (indices into the ledger), including ones wholly
    /// overlapped by earlier supplies: their dose still counts.
    pub supplies: Vec<usize>,
    /// Whether any supply in the era was dispensed or given on the ward (adherence is
    /// measurable).
    pub dispensed: bool,
}

impl ExposureEra {
    /// Days covered in [from, to] (both inclusive).
    pub fn covered_days_between(&self, from: Date, to: Date) -> i64 {
        self.spans
            .iter()
            .map(|s| days_inclusive(s.first.max(from), s.last.min(to)))
            .sum()
    }
}

/// Builds eras from supplies sorted by (drug, start).
pub fn build_eras(supplies: &[Supply], gap_days: u32, stockpile_cap_days: u32) -> Vec<ExposureEra> {
    let mut eras: Vec<ExposureEra> = Vec::new();
    for (index, supply) in supplies.iter().enumerate() {
        let current = eras.last_mut().filter(|era| {
            era.drug == supply.drug
                && (supply.start - era.end).whole_days() - 1 <= i64::from(gap_days)
        });
        match current {
            Some(era) => {
                let (first, last) =
                    if supply.origin == SupplyOrigin::Dispense && supply.start <= era.end {
                        // An early refill starts the day after the stock on hand runs out,
                        // but no more than the cap after its own start.
                        let cap = plus_days(supply.start, i64::from(stockpile_cap_days));
                        let first = plus_days(era.end, 1).min(cap).max(supply.start);
                        (first, last_of_span(first, supply.days))
                    } else if supply.start <= era.end {
                        // union: only the days past the era's end are new
                        (plus_days(era.end, 1), supply.last_day())
                    } else {
                        (supply.start, supply.last_day())
                    };
                if last >= first && last > era.end {
                    let first = first.max(plus_days(era.end, 1));
                    era.spans.push(CoveredSpan {
                        first,
                        last,
                        supply: index,
                    });
                    era.end = last;
                }
                era.supplies.push(index);
                era.dispensed |= supply.origin.is_observed();
            }
            None => eras.push(ExposureEra {
                drug: supply.drug,
                start: supply.start,
                end: supply.last_day(),
                spans: vec![CoveredSpan {
                    first: supply.start,
                    last: supply.last_day(),
                    supply: index,
                }],
                supplies: vec![index],
                dispensed: supply.origin.is_observed(),
            }),
        }
    }
    eras
}
