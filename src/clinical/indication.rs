//! Why a medication was ordered: an antidepressant whose order names a non-depression
//! indication (neuropathic pain, migraine, smoking cessation, enuresis, hot flashes...)
//! is not a depression trial (docs/clinical-rules.md section 7; FDA labels' indications).

use serde::Serialize;

use super::conditions::{VS_MAJOR_DEPRESSION, VS_NON_DEPRESSION_INDICATION};
use super::knowledge::Knowledge;
use super::record::{Code, PatientRecord, REASON_REFERENCE};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Indication {
    /// No reason given, or none the engine knows: assumed to be depression.
    Unstated,
    Depression,
    /// A non-depression indication, in words (the code's display or code).
    Other {
        reason: String,
    },
}

/// Reads an order's reasons: reasonCode codes, and reasonReference targets through
/// the record's Conditions. A depression reason wins over any other.
pub fn indication_of(
    reasons: &[Code],
    record: &PatientRecord,
    knowledge: &Knowledge,
) -> Indication {
    if reasons.is_empty() {
        return Indication::Unstated;
    }
    let mut codes: Vec<&Code> = Vec::new();
    for reason in reasons {
        if reason.system == REASON_REFERENCE {
            codes.extend(
                record
                    .conditions
                    .iter()
                    .filter(|c| c.source == reason.code)
                    .flat_map(|c| c.codes.iter()),
            );
        } else {
            codes.push(reason);
        }
    }
    let in_set =
        |url: &str, code: &Code| knowledge.value_sets.contains(url, &code.system, &code.code);
    if codes.iter().any(|c| in_set(VS_MAJOR_DEPRESSION, c)) {
        return Indication::Depression;
    }
    match codes
        .iter()
        .find(|c| in_set(VS_NON_DEPRESSION_INDICATION, c))
    {
        Some(code) => Indication::Other {
            reason: code
                .display
                .clone()
                .unwrap_or_else(|| format!("{} {}", code.system, code.code)),
        },
        None => Indication::Unstated,
    }
}
