//! Findings: what the assessment wants a reader to notice, each with a code from the
//! project's CodeSystem, a severity, one line of text and the evidence.

use serde::Serialize;

use super::record::{NoteKind, RecordNote, SourceRef};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    High,
    /// A patient-safety signal (suicide risk, a dangerous combination or dose, a
    /// missing toxicity level): ranked above everything and shown first.
    Safety,
}

/// Finding codes the engine itself emits; the pseudo-resistance checklist adds the
/// codes named in `knowledge/checklist.toml`. All are defined in the CodeSystem
/// `profiles/codesystems/CodeSystem-trd-finding.json`.
pub mod codes {
    /// A resource could not be read at all.
    pub const RESOURCE_UNREADABLE: &str = "resource-unreadable";
    /// A resource was read but deliberately not used (status, missing dates).
    pub const RESOURCE_NOT_USED: &str = "resource-not-used";
    /// A medication could not be identified (no code/text, unresolvable reference).
    pub const MEDICATION_UNIDENTIFIED: &str = "medication-unidentified";
    pub const SUBTHERAPEUTIC_DOSE: &str = "subtherapeutic-dose";
    pub const TOO_SHORT_TRIAL: &str = "too-short-trial";
    pub const NON_ADHERENCE: &str = "non-adherence";
    pub const MOOD_STABILISER: &str = "possible-bipolar";
    pub const LAB_UNIT_NOT_COMPARABLE: &str = "lab-unit-not-comparable";
    /// A value outside sane bounds (a date in year 9999, a days supply of 10^7): the
    /// resource is left out.
    pub const IMPLAUSIBLE_VALUE: &str = "implausible-value";
    /// Symptoms returned after response or remission while still on the drug.
    pub const RELAPSE_ON_TREATMENT: &str = "relapse-on-treatment";
    /// A remission or response label resting on an old score or a stopped drug.
    pub const REMEASURE_SYMPTOMS: &str = "remeasure-symptoms";
    /// A medication's strength was read from its display text (code not in the map).
    pub const STRENGTH_FROM_DISPLAY: &str = "strength-from-display";
    /// A daily dose far above the drug's labelled maximum: not used as a dose.
    pub const DOSE_IMPLAUSIBLE: &str = "dose-implausible";

    /// An antidepressant started or its dose changed recently in a patient under 25
    /// (boxed warning: monitor for suicidal thoughts).
    pub const YOUNG_ADULT_MONITORING: &str = "young-adult-antidepressant-monitoring";
    /// An MAOI overlapping, or within the washout of, a serotonergic antidepressant.
    pub const MAOI_WASHOUT: &str = "maoi-serotonergic-washout";
    /// Linezolid or methylene blue ordered during or within the washout of a
    /// serotonergic antidepressant.
    pub const SEROTONERGIC_INTERACTION: &str = "serotonergic-interaction";
    /// A daily dose above a labelled safety limit (citalopram and QT).
    pub const DOSE_ABOVE_SAFETY_LIMIT: &str = "dose-above-safety-limit";
    /// Lithium taken without a serum level in the monitoring window.
    pub const LITHIUM_LEVEL_MISSING: &str = "lithium-level-missing";

    /// A trial with symptom response or remission whose functional score is still in
    /// the impaired range.
    pub const FUNCTION_STILL_IMPAIRED: &str = "symptoms-improved-function-impaired";
    /// TRD or at risk, and no functional measure recorded in the episode.
    pub const NO_FUNCTIONAL_MEASURE: &str = "no-functional-measure";

    /// TRD or at risk, and no psychotherapy course in the episode.
    pub const NO_PSYCHOTHERAPY: &str = "no-psychotherapy";
    /// PTSD or trauma recorded, no trauma-focused therapy in the episode.
    pub const PTSD_WITHOUT_TRAUMA_FOCUSED: &str = "ptsd-without-trauma-focused-therapy";
    /// Borderline personality disorder recorded, no DBT course.
    pub const BORDERLINE_WITHOUT_DBT: &str = "borderline-without-dbt";
    /// An adequate CBT course without symptom response.
    pub const CBT_WITHOUT_RESPONSE: &str = "cbt-adequate-no-response";

    /// Every code above, for the CodeSystem consistency test (the suicide-risk codes
    /// come from knowledge/safety.toml).
    pub const ALL: &[&str] = &[
        RESOURCE_UNREADABLE,
        RESOURCE_NOT_USED,
        MEDICATION_UNIDENTIFIED,
        SUBTHERAPEUTIC_DOSE,
        TOO_SHORT_TRIAL,
        NON_ADHERENCE,
        MOOD_STABILISER,
        LAB_UNIT_NOT_COMPARABLE,
        IMPLAUSIBLE_VALUE,
        RELAPSE_ON_TREATMENT,
        REMEASURE_SYMPTOMS,
        STRENGTH_FROM_DISPLAY,
        DOSE_IMPLAUSIBLE,
        YOUNG_ADULT_MONITORING,
        MAOI_WASHOUT,
        SEROTONERGIC_INTERACTION,
        DOSE_ABOVE_SAFETY_LIMIT,
        LITHIUM_LEVEL_MISSING,
        FUNCTION_STILL_IMPAIRED,
        NO_FUNCTIONAL_MEASURE,
        NO_PSYCHOTHERAPY,
        PTSD_WITHOUT_TRAUMA_FOCUSED,
        BORDERLINE_WITHOUT_DBT,
        CBT_WITHOUT_RESPONSE,
    ];
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub code: String,
    pub severity: Severity,
    pub text: String,
    pub evidence: Vec<SourceRef>,
}

impl Finding {
    pub fn new(
        code: impl Into<String>,
        severity: Severity,
        text: impl Into<String>,
        evidence: Vec<SourceRef>,
    ) -> Self {
        Self {
            code: code.into(),
            severity,
            text: text.into(),
            evidence,
        }
    }

    pub fn not_used(source: &SourceRef, why: impl AsRef<str>) -> Self {
        let text = format!("{source}: not used ({})", why.as_ref());
        Self::new(
            codes::RESOURCE_NOT_USED,
            Severity::Info,
            text,
            vec![source.clone()],
        )
    }

    pub fn unidentified_medication(source: &SourceRef, reason: impl AsRef<str>) -> Self {
        let text = format!("{source}: medication not identified ({})", reason.as_ref());
        Self::new(
            codes::MEDICATION_UNIDENTIFIED,
            Severity::Warning,
            text,
            vec![source.clone()],
        )
    }

    /// Findings about the patient (as opposed to notes on data handling, which are
    /// for integration staff).
    pub fn is_clinical(&self) -> bool {
        ![
            codes::RESOURCE_NOT_USED,
            codes::RESOURCE_UNREADABLE,
            codes::MEDICATION_UNIDENTIFIED,
            codes::LAB_UNIT_NOT_COMPARABLE,
            codes::IMPLAUSIBLE_VALUE,
            codes::STRENGTH_FROM_DISPLAY,
            codes::DOSE_IMPLAUSIBLE,
        ]
        .contains(&self.code.as_str())
    }

    pub fn from_note(note: &RecordNote) -> Self {
        let (code, severity) = match note.kind {
            NoteKind::Unreadable => (codes::RESOURCE_UNREADABLE, Severity::Warning),
            NoteKind::NotUsed => (codes::RESOURCE_NOT_USED, Severity::Info),
        };
        Self::new(
            code,
            severity,
            format!("{}: {}", note.source, note.message),
            vec![note.source.clone()],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safety_ranks_above_every_other_severity() {
        let mut all = [
            Severity::Info,
            Severity::Safety,
            Severity::Warning,
            Severity::High,
        ];
        all.sort_by_key(|s| std::cmp::Reverse(*s));
        assert_eq!(all[0], Severity::Safety);
        assert_eq!(
            serde_json::to_value(Severity::Safety).ok(),
            Some(serde_json::json!("safety"))
        );
    }
}
