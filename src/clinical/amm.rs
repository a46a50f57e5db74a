//! HEDIS Antidepressant Medication Management (CMS128FHIR), computed as the public
//! measure logic does:
//! - intake period: 1 May of the prior year to 30 April of the measurement year;
//! - IPSD: earliest antidepressant dispense (whenHandedOver) in the intake period;
//! - negative medication history: an active antidepressant order (intent order) whose
//!   CMD request period overlaps [IPSD - 105 d, IPSD - 1 d] excludes the patient;
//! - acute / continuation: dispense periods [start, start + days - 1] of all
//!   antidepressants, collapsed (overlaps counted once, as CMS128 does) and clipped
//!   to [IPSD, IPSD + 114] / [IPSD, IPSD + 231]; met at >= 84 / >= 180 days.

use serde::Serialize;
use time::{Date, Duration, Month};

use super::knowledge::{DrugKind, Knowledge};
use super::product::{identify, ProductIdentity};
use super::record::PatientRecord;
use super::supply::{order_days_from, Supply, SupplyOrigin};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AmmResult {
    pub measurement_period: i32,
    pub ipsd: Date,
    /// The 105-day negative medication history rule excludes this patient.
    pub prior_use_excluded: bool,
    pub acute_phase_days: i64,
    pub acute_phase_met: bool,
    pub continuation_phase_days: i64,
    pub continuation_phase_met: bool,
}

pub const ACUTE_WINDOW_DAYS: i64 = 114;
pub const ACUTE_REQUIRED_DAYS: i64 = 84;
pub const CONTINUATION_WINDOW_DAYS: i64 = 231;
pub const CONTINUATION_REQUIRED_DAYS: i64 = 180;
pub const NEGATIVE_HISTORY_DAYS: i64 = 105;

/// None when the patient has no antidepressant dispense in the intake period.
pub fn evaluate(
    record: &PatientRecord,
    supplies: &[Supply],
    knowledge: &Knowledge,
    year: i32,
) -> Option<AmmResult> {
    let intake_start = Date::from_calendar_date(year - 1, Month::May, 1).ok()?;
    let intake_end = Date::from_calendar_date(year, Month::April, 30).ok()?;
    let mut periods: Vec<(Date, Date)> = supplies
        .iter()
        .filter(|s| s.origin == SupplyOrigin::Dispense && s.drug.kind == DrugKind::Antidepressant)
        .map(|s| (s.start, s.last_day()))
        .collect();
    periods.sort();
    periods.dedup();
    let ipsd = periods
        .iter()
        .map(|p| p.0)
        .find(|d| *d >= intake_start && *d <= intake_end)?;

    let history = (
        ipsd - Duration::days(NEGATIVE_HISTORY_DAYS),
        ipsd - Duration::days(1),
    );
    let prior_use_excluded = record.orders.iter().any(|order| {
        if order.status != "active" || order.intent != "order" {
            return false;
        }
        let is_antidepressant = matches!(identify(&order.medication, knowledge),
            ProductIdentity::Known(p) if p.components.iter().any(|c| c.drug.kind == DrugKind::Antidepressant));
        let Some(start) = order.authored_on.or(order.validity_start) else { return false };
        let Some(days) = order_days_from(order, None) else { return false };
        let end = start + Duration::days(i64::from(days) - 1);
        is_antidepressant && start <= history.1 && end >= history.0
    });

    let collapsed = collapse(&periods);
    let covered = |window_days: i64| -> i64 {
        let (from, to) = (ipsd, ipsd + Duration::days(window_days));
        collapsed
            .iter()
            .map(|(a, b)| ((*b.min(&to) - *a.max(&from)).whole_days() + 1).max(0))
            .sum()
    };
    let acute = covered(ACUTE_WINDOW_DAYS);
    let continuation = covered(CONTINUATION_WINDOW_DAYS);
    Some(AmmResult {
        measurement_period: year,
        ipsd,
        prior_use_excluded,
        acute_phase_days: acute,
        acute_phase_met: acute >= ACUTE_REQUIRED_DAYS,
        continuation_phase_days: continuation,
        continuation_phase_met: continuation >= CONTINUATION_REQUIRED_DAYS,
    })
}

/// Merges overlapping or adjacent closed intervals (CQL `collapse`).
fn collapse(sorted: &[(Date, Date)]) -> Vec<(Date, Date)> {
    let mut out: Vec<(Date, Date)> = Vec::new();
    for &(start, end) in sorted {
        match out.last_mut() {
            Some(last) if start <= last.1 + Duration::days(1) => last.1 = last.1.max(end),
            _ => out.push((start, end)),
        }
    }
    out
}
