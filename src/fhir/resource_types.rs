//! Every FHIR resource type the engine reads, in one table. The reader, the EHR
//! gather, the CDS Hooks prefetch, the subscriptions, the reconciliation poll and the
//! start-up capability check all derive their lists from it, so a type added here
//! (MedicationAdministration, QuestionnaireResponse) is read, fetched, prefetched and
//! watched everywhere at once.

/// One resource type the engine reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadType {
    pub name: &'static str,
    /// The CDS Hooks prefetch key standing for this type's gather search.
    pub prefetch_key: &'static str,
    /// A change to one should trigger an assessment (subscriptions, reconciliation).
    pub watched: bool,
    /// The search parameter limiting the gather to the look-back window; `None`
    /// reads the whole history (diagnoses: a bipolar history is lifelong).
    pub date_param: Option<&'static str>,
    /// Names a medication: its search `_include`s the Medications it refers to.
    pub names_medication: bool,
    /// The search parameter that narrows it to the codes the engine reads (`code`;
    /// an Encounter's `type`), where it has one.
    pub code_param: Option<&'static str>,
}

const fn read(name: &'static str, prefetch_key: &'static str) -> ReadType {
    ReadType {
        name,
        prefetch_key,
        watched: true,
        date_param: None,
        names_medication: false,
        code_param: None,
    }
}

/// The types, in the order the gather searches them.
pub const READ_TYPES: &[ReadType] = &[
    ReadType {
        watched: false,
        ..read("Patient", "patient")
    },
    ReadType {
        date_param: Some("authoredon"),
        names_medication: true,
        ..read("MedicationRequest", "medicationRequests")
    },
    ReadType {
        date_param: Some("whenhandedover"),
        names_medication: true,
        ..read("MedicationDispense", "medicationDispenses")
    },
    ReadType {
        date_param: Some("effective"),
        names_medication: true,
        ..read("MedicationStatement", "medicationStatements")
    },
    // Inpatient doses: the first weeks of a trial begun on the ward.
    ReadType {
        date_param: Some("effective-time"),
        names_medication: true,
        ..read("MedicationAdministration", "medicationAdministrations")
    },
    ReadType {
        date_param: Some("date"),
        code_param: Some("code"),
        ..read("Observation", "observations")
    },
    // Scores kept as the form the patient filled in (PHQ-9, GAD-7...).
    ReadType {
        date_param: Some("authored"),
        ..read("QuestionnaireResponse", "questionnaireResponses")
    },
    ReadType {
        code_param: Some("code"),
        ..read("Condition", "conditions")
    },
    ReadType {
        date_param: Some("date"),
        code_param: Some("code"),
        ..read("Procedure", "procedures")
    },
    // Psychotherapy coded as the visit type: watched, narrowed to those types (any
    // other visit never triggers anything).
    ReadType {
        date_param: Some("date"),
        code_param: Some("type"),
        ..read("Encounter", "encounters")
    },
];

/// The types whose changes trigger an assessment.
pub fn watched() -> impl Iterator<Item = &'static str> {
    READ_TYPES.iter().filter(|t| t.watched).map(|t| t.name)
}

/// The table's entry for a type name.
pub fn read_type(name: &str) -> Option<&'static ReadType> {
    READ_TYPES.iter().find(|t| t.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_prefetch_keys_are_unique() {
        let mut names: Vec<_> = READ_TYPES.iter().map(|t| t.name).collect();
        let mut keys: Vec<_> = READ_TYPES.iter().map(|t| t.prefetch_key).collect();
        names.sort_unstable();
        names.dedup();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(
            (names.len(), keys.len()),
            (READ_TYPES.len(), READ_TYPES.len())
        );
        assert_eq!(
            watched().collect::<Vec<_>>(),
            [
                "MedicationRequest",
                "MedicationDispense",
                "MedicationStatement",
                "MedicationAdministration",
                "Observation",
                "QuestionnaireResponse",
                "Condition",
                "Procedure",
                "Encounter"
            ]
        );
    }
}
