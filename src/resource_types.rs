//! Every FHIR resource type the service touches, and what it does with each: the
//! types the engine reads (each read, prefetched, and most watched), the types
//! write-back writes, and the few the service keeps for itself. The reader, the EHR
//! gather, the CDS Hooks prefetch, the subscriptions, the reconciliation poll, the
//! start-up capability check, `writeback.resources` and the default SMART scope all
//! derive their lists from here, so a type added (MedicationAdministration,
//! QuestionnaireResponse) is read, fetched, prefetched, watched and asked for
//! everywhere at once. Depends on nothing: the configuration reads it too.

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
    // Hospice referrals, which exclude a patient from the quality measures: narrowed
    // to those codes, and not watched (a referral alone changes no assessment, and
    // the service writes ServiceRequests of its own).
    ReadType {
        watched: false,
        date_param: Some("authored"),
        code_param: Some("code"),
        ..read("ServiceRequest", "serviceRequests")
    },
];

/// Every resource type write-back can write (`writeback.resources` picks from
/// these). All but Provenance are kept in step with the latest assessment (updated,
/// retired); a Provenance is only ever added.
pub const WRITTEN_TYPES: &[&str] = &[
    "Flag",
    "Observation",
    "DetectedIssue",
    "ServiceRequest",
    "Provenance",
];

/// Read by `_include` with the orders, dispenses, statements and administrations
/// that name them, never searched alone or watched.
pub const INCLUDED_TYPES: &[&str] = &["Medication"];

/// Written when `writeback.document` asks for the summary (off by default).
pub const DOCUMENT_TYPES: &[&str] = &["DocumentReference", "Composition"];

/// The service's own bookkeeping on the EHR: its Subscriptions and, on R4 Backport
/// servers, the topic (a `Basic`).
pub const SUBSCRIPTION_TYPES: &[&str] = &["Subscription", "Basic"];

/// The SMART Backend Services scope asked for when none is configured: exactly the
/// types above (SMART v1 syntax, which v2 servers accept), read for what is read and
/// for what is written (write-back compares with what it wrote before), write for
/// what is written; never `system/*`.
pub fn default_smart_scope() -> String {
    let read = READ_TYPES
        .iter()
        .map(|t| t.name)
        .chain(INCLUDED_TYPES.iter().copied())
        .chain(WRITTEN_TYPES.iter().copied())
        .chain(DOCUMENT_TYPES.iter().copied())
        .chain(SUBSCRIPTION_TYPES.iter().copied());
    let write = WRITTEN_TYPES
        .iter()
        .chain(DOCUMENT_TYPES)
        .chain(SUBSCRIPTION_TYPES);
    let mut scopes: Vec<String> = Vec::new();
    for kind in read {
        let scope = format!("system/{kind}.read");
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    scopes.extend(write.map(|kind| format!("system/{kind}.write")));
    scopes.join(" ")
}

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
    fn the_default_scope_names_each_type_and_no_wildcard() {
        let scope = default_smart_scope();
        assert!(!scope.contains('*'), "{scope}");
        for kind in [
            "Patient",
            "Medication",
            "Encounter",
            "QuestionnaireResponse",
        ] {
            assert!(scope.contains(&format!("system/{kind}.read")), "{scope}");
            assert!(!scope.contains(&format!("system/{kind}.write")), "{scope}");
        }
        for kind in ["Flag", "Provenance", "DocumentReference", "Subscription"] {
            assert!(scope.contains(&format!("system/{kind}.read")), "{scope}");
            assert!(scope.contains(&format!("system/{kind}.write")), "{scope}");
        }
        let scopes: Vec<&str> = scope.split(' ').collect();
        let mut unique = scopes.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), scopes.len(), "{scope}");
    }

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
