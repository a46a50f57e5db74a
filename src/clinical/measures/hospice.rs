//! The hospice exclusion both measures share, in its two published wordings:
//! CMS159 0.3.000 writes it inline ("Has Hospice Services in the Measure Assessment
//! Period"), CMS128 0.3.000 includes library `Hospice` 6.15.000 ("Has Hospice
//! Services"). The branches are the same six; the statuses differ, as noted.

use time::Date;

use super::span::{encounter_period, is_confirmed_active, prevalence, procedure_period, Span};
use super::value_sets::{
    ENCOUNTER_INPATIENT, HOSPICE_CARE_AMBULATORY, HOSPICE_DIAGNOSIS, HOSPICE_DISCHARGES,
    HOSPICE_ENCOUNTER, HOSPICE_MDS, LOINC, SNOMED, YES,
};
use super::{coded_in, Evidence};
use crate::clinical::knowledge::Knowledge;
use crate::clinical::record::{ObservedValue, PatientRecord};

/// Which wording of the exclusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wording {
    /// CMS159 inline: finished inpatient stays; hospice encounters not cancelled,
    /// entered-in-error or unknown; orders of intent order, original-order,
    /// reflex-order, filler-order or instance-order and not `doNotPerform`;
    /// procedures not not-done, entered-in-error or unknown; confirmed active
    /// diagnoses.
    Cms159,
    /// Hospice 6.15.000 with Status 1.13.000: `isEncounterPerformed()` (finished,
    /// arrived, triaged, in-progress, onleave), `isInterventionOrder()` (active or
    /// completed, intent order), `isInterventionPerformed()` (completed); any
    /// diagnosis whose prevalence overlaps.
    Hospice615,
}

const PERFORMED: &[&str] = &["finished", "arrived", "triaged", "in-progress", "onleave"];
const ORDER_INTENTS: &[&str] = &[
    "order",
    "original-order",
    "reflex-order",
    "filler-order",
    "instance-order",
];

/// Whether hospice care is recorded in `window` (compared `day of`), citing what
/// shows it.
pub(super) fn has_hospice(
    record: &PatientRecord,
    knowledge: &Knowledge,
    window: &Span,
    wording: Wording,
    as_of: Date,
    evidence: &mut Evidence,
) -> bool {
    let mut found = Vec::new();
    for encounter in &record.encounters {
        if encounter.start.is_some_and(|d| d > as_of) {
            continue;
        }
        let Some(period) = encounter_period(encounter) else {
            continue;
        };
        let status = encounter.status.as_str();
        let performed = match wording {
            Wording::Cms159 => status == "finished",
            Wording::Hospice615 => PERFORMED.contains(&status),
        };
        let discharged_to_hospice = encounter
            .discharge_disposition
            .iter()
            .any(|c| c.system == SNOMED && HOSPICE_DISCHARGES.contains(&c.code.as_str()));
        if coded_in(knowledge, ENCOUNTER_INPATIENT, &encounter.types)
            && discharged_to_hospice
            && performed
            && period.ends_during(window)
        {
            found.push((encounter.source.as_str(), "discharge to hospice care"));
        }
        let hospice_status = match wording {
            Wording::Cms159 => !matches!(status, "cancelled" | "entered-in-error" | "unknown"),
            Wording::Hospice615 => PERFORMED.contains(&status),
        };
        if coded_in(knowledge, HOSPICE_ENCOUNTER, &encounter.types)
            && hospice_status
            && period.overlaps(window)
        {
            found.push((encounter.source.as_str(), "hospice encounter"));
        }
    }
    for observation in &record.observations {
        let answered_yes = matches!(&observation.value, Some(ObservedValue::Coded(codes))
            if codes.iter().any(|c| c.system == SNOMED && c.code == YES));
        let is_mds = observation
            .codes
            .iter()
            .any(|c| c.system == LOINC && c.code == HOSPICE_MDS);
        if is_mds
            && answered_yes
            && observation
                .effective
                .is_some_and(|d| d <= as_of && window.contains(d))
        {
            found.push((
                observation.source.as_str(),
                "hospice care (MDS) answered yes",
            ));
        }
    }
    for order in &record.service_requests {
        let ordered = match wording {
            Wording::Cms159 => {
                matches!(order.status.as_str(), "active" | "completed")
                    && ORDER_INTENTS.contains(&order.intent.as_str())
                    && !order.do_not_perform
            }
            Wording::Hospice615 => {
                matches!(order.status.as_str(), "active" | "completed") && order.intent == "order"
            }
        };
        if ordered
            && coded_in(knowledge, HOSPICE_CARE_AMBULATORY, &order.codes)
            && order
                .authored_on
                .is_some_and(|d| d <= as_of && window.contains(d))
        {
            found.push((order.source.as_str(), "hospice care ordered"));
        }
    }
    for procedure in &record.procedures {
        let done = match wording {
            Wording::Cms159 => !matches!(
                procedure.status.as_str(),
                "not-done" | "entered-in-error" | "unknown"
            ),
            Wording::Hospice615 => procedure.status == "completed",
        };
        if done
            && coded_in(knowledge, HOSPICE_CARE_AMBULATORY, &procedure.codes)
            && procedure.performed.is_some_and(|d| d <= as_of)
            && procedure_period(procedure).is_some_and(|p| p.overlaps(window))
        {
            found.push((procedure.source.as_str(), "hospice care given"));
        }
    }
    for condition in &record.conditions {
        let counts = match wording {
            Wording::Cms159 => is_confirmed_active(condition),
            Wording::Hospice615 => true,
        };
        if counts
            && coded_in(knowledge, HOSPICE_DIAGNOSIS, &condition.codes)
            && condition.onset.is_none_or(|d| d <= as_of)
            && prevalence(condition).is_some_and(|p| p.overlaps(window))
        {
            found.push((condition.source.as_str(), "hospice diagnosis"));
        }
    }
    for (source, what) in &found {
        evidence.cite(source);
        evidence.say(format!("Excluded: {what} ({source})"));
    }
    !found.is_empty()
}
