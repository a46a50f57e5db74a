//! What an export asks for: the kick-off URL with `_type`, `_typeFilter` and `_since`.

use crate::fhir::read::Relevance;
use crate::resource_types::{INCLUDED_TYPES, READ_TYPES};

/// Whose data: the whole system, every patient, or the members of one Group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportLevel {
    System,
    Patients,
    Group(String),
}

/// One kick-off, as the URL relative to the EHR's base.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportRequest {
    pub level: ExportLevel,
    /// `_type`: what the engine reads (and the Medications orders refer to).
    pub types: Vec<String>,
    /// `_typeFilter`: `Type?param=system|code,...`, one per narrowed type.
    pub type_filters: Vec<String>,
    /// `_since` (a FHIR instant): only resources changed since.
    pub since: Option<String>,
}

impl ExportRequest {
    /// The types the engine reads, narrowed (`with_filters`) by the codes it reads
    /// exactly as the gather narrows its searches: Observations by score and lab
    /// code, Encounters by psychotherapy type, Procedures by code. Medications of every
    /// kind are asked for whole: interactions and safety read them all, and an
    /// antidepressant arrives as an ingredient, a brand, an NDC, a Medication reference
    /// or text, which no code filter on the EHR covers. Conditions too (the ICD-10-CM
    /// prefixes cannot be listed as codes).
    pub fn for_engine(
        level: ExportLevel,
        relevance: &Relevance,
        since: Option<String>,
        with_filters: bool,
    ) -> Self {
        let types: Vec<String> = READ_TYPES
            .iter()
            .map(|t| t.name)
            .chain(INCLUDED_TYPES.iter().copied())
            .map(str::to_string)
            .collect();
        let type_filters = if with_filters {
            READ_TYPES
                .iter()
                .filter_map(|t| {
                    let (param, codes) = relevance.code_search(t.name)?;
                    Some(format!("{}?{param}={codes}", t.name))
                })
                .collect()
        } else {
            Vec::new()
        };
        Self {
            level,
            types,
            type_filters,
            since,
        }
    }

    /// The same request without `_typeFilter` (for an EHR that refuses it).
    pub fn unfiltered(&self) -> Self {
        Self {
            type_filters: Vec::new(),
            ..self.clone()
        }
    }

    /// The kick-off path and query, relative to the base (`$export?_type=...`).
    pub fn path(&self) -> String {
        let operation = match &self.level {
            ExportLevel::System => "$export".to_string(),
            ExportLevel::Patients => "Patient/$export".to_string(),
            ExportLevel::Group(id) => format!("Group/{}/$export", encode(id)),
        };
        let mut query = vec![("_type", self.types.join(","))];
        if let Some(since) = &self.since {
            query.push(("_since", since.clone()));
        }
        for filter in &self.type_filters {
            query.push(("_typeFilter", filter.clone()));
        }
        let query: Vec<String> = query
            .into_iter()
            .map(|(k, v)| format!("{k}={}", encode(&v)))
            .collect();
        format!("{operation}?{}", query.join("&"))
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters stay).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b',' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clinical::Knowledge;

    #[test]
    fn the_kick_off_asks_for_the_types_the_engine_reads_narrowed_by_its_codes() {
        let knowledge = Knowledge::embedded().expect("knowledge");
        let relevance = Relevance::from_knowledge(&knowledge);
        let request = ExportRequest::for_engine(
            ExportLevel::Group("depression cohort".into()),
            &relevance,
            Some("2026-12-01T00:00:00+01:00".into()),
            true,
        );
        let path = request.path();
        assert!(path.starts_with("Group/depression%20cohort/$export?_type=Patient,MedicationRequest,MedicationDispense,MedicationStatement,MedicationAdministration,Observation,QuestionnaireResponse,Condition,Procedure,Encounter,ServiceRequest,Medication&_since=2026-12-01T00%3A00%3A00%2B01%3A00&_typeFilter=Observation%3Fcode%3Dhttp%3A%2F%2Floinc.org%7C"), "{path}");
        let filtered: Vec<&str> = request
            .type_filters
            .iter()
            .map(|f| f.split('?').next().unwrap_or(""))
            .collect();
        assert_eq!(filtered, ["Observation", "Procedure", "Encounter"]);
        assert!(request.type_filters[0].contains("44261-6"), "PHQ-9 total");
        assert_eq!(
            request.unfiltered().path(),
            "Group/depression%20cohort/$export?_type=Patient,MedicationRequest,MedicationDispense,MedicationStatement,MedicationAdministration,Observation,QuestionnaireResponse,Condition,Procedure,Encounter,ServiceRequest,Medication&_since=2026-12-01T00%3A00%3A00%2B01%3A00"
        );
        let system = ExportRequest::for_engine(ExportLevel::System, &relevance, None, false);
        assert!(system.path().starts_with("$export?_type=Patient,"));
        assert!(!system.path().contains("_since"));
        let patients = ExportRequest::for_engine(ExportLevel::Patients, &relevance, None, false);
        assert!(patients.path().starts_with("Patient/$export?_type="));
    }
}
