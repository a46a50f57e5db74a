//! Findings: what the assessment wants a reader to notice, each with a code from the
//! project's CodeSystem, a severity, one line of text and the evidence.

use serde::Serialize;

use super::record::{NoteKind, RecordNote, SourceRef};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    High,
}

/// Finding codes (CodeSystem `trd-finding` in profiles/).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingCode {
    /// A resource could not be read at all.
    ResourceUnreadable,
    /// A resource was read but deliberately not used (status, missing dates).
    ResourceNotUsed,
    /// A medication could not be identified (no code/text, unresolvable reference).
    MedicationUnidentified,
    /// A patient statement says the antidepressant was not taken.
    MedicationNotTaken,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Finding {
    pub code: FindingCode,
    pub severity: Severity,
    pub text: String,
    pub evidence: Vec<SourceRef>,
}

impl Finding {
    pub fn new(
        code: FindingCode,
        severity: Severity,
        text: impl Into<String>,
        evidence: Vec<SourceRef>,
    ) -> Self {
        Self {
            code,
            severity,
            text: text.into(),
            evidence,
        }
    }

    pub fn not_used(source: &SourceRef, why: impl AsRef<str>) -> Self {
        let text = format!("{source}: not used ({})", why.as_ref());
        Self::new(
            FindingCode::ResourceNotUsed,
            Severity::Info,
            text,
            vec![source.clone()],
        )
    }

    pub fn unidentified_medication(source: &SourceRef, reason: impl AsRef<str>) -> Self {
        let text = format!("{source}: medication not identified ({})", reason.as_ref());
        Self::new(
            FindingCode::MedicationUnidentified,
            Severity::Warning,
            text,
            vec![source.clone()],
        )
    }

    pub fn from_note(note: &RecordNote) -> Self {
        let (code, severity) = match note.kind {
            NoteKind::Unreadable => (FindingCode::ResourceUnreadable, Severity::Warning),
            NoteKind::NotUsed => (FindingCode::ResourceNotUsed, Severity::Info),
        };
        Self::new(
            code,
            severity,
            format!("{}: {}", note.source, note.message),
            vec![note.source.clone()],
        )
    }
}
