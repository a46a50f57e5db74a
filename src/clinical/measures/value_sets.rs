//! The VSAC value sets and direct codes the two measures retrieve with, as their CQL
//! declares them. Expansions live in `profiles/vsac/` (sources in
//! `profiles/vsac/SOURCES-measures.md`: cqframework/ecqm-content-qicore-2025,
//! `input/vocabulary/valueset/external/`).

macro_rules! value_set {
    ($name:ident, $oid:literal, $title:literal) => {
        #[doc = $title]
        pub const $name: &str = concat!("http://cts.nlm.nih.gov/fhir/ValueSet/", $oid);
    };
}

// CMS159
value_set!(
    PHQ9_TOOLS,
    "2.16.840.1.113883.3.67.1.101.1.263",
    "PHQ 9 and PHQ 9M Tools"
);
// The OID as CMS159 declares it (missing ".1", in every edition): the URL it retrieves with.
value_set!(
    MAJOR_DEPRESSION_INCLUDING_REMISSION,
    "2.16.840.113883.3.67.1.101.3.2444",
    "Major Depression Including Remission"
);
value_set!(DYSTHYMIA, "2.16.840.1.113883.3.67.1.101.1.254", "Dysthymia");
value_set!(
    CONTACT_OR_OFFICE_VISIT,
    "2.16.840.1.113762.1.4.1080.5",
    "Contact or Office Visit"
);
value_set!(
    BIPOLAR_DISORDER,
    "2.16.840.1.113883.3.67.1.101.1.128",
    "Bipolar Disorder"
);
value_set!(
    PERSONALITY_DISORDER_EMOTIONALLY_LABILE,
    "2.16.840.1.113883.3.67.1.101.1.246",
    "Personality Disorder Emotionally Labile"
);
value_set!(
    SCHIZOPHRENIA_OR_PSYCHOTIC_DISORDER,
    "2.16.840.1.113883.3.464.1003.105.12.1104",
    "Schizophrenia or Psychotic Disorder"
);
value_set!(
    PERVASIVE_DEVELOPMENTAL_DISORDER,
    "2.16.840.1.113883.3.464.1003.105.12.1152",
    "Pervasive Developmental Disorder"
);
value_set!(
    PALLIATIVE_CARE_DIAGNOSIS,
    "2.16.840.1.113883.3.464.1003.1167",
    "Palliative Care Diagnosis"
);
value_set!(
    PALLIATIVE_CARE_ENCOUNTER,
    "2.16.840.1.113883.3.464.1003.101.12.1090",
    "Palliative Care Encounter"
);
value_set!(
    PALLIATIVE_CARE_INTERVENTION,
    "2.16.840.1.113883.3.464.1003.198.12.1135",
    "Palliative Care Intervention"
);

// Hospice (CMS159 inline, CMS128 through library Hospice 6.15.000)
value_set!(
    ENCOUNTER_INPATIENT,
    "2.16.840.1.113883.3.666.5.307",
    "Encounter Inpatient"
);
value_set!(
    HOSPICE_CARE_AMBULATORY,
    "2.16.840.1.113883.3.526.3.1584",
    "Hospice Care Ambulatory"
);
value_set!(
    HOSPICE_DIAGNOSIS,
    "2.16.840.1.113883.3.464.1003.1165",
    "Hospice Diagnosis"
);
value_set!(
    HOSPICE_ENCOUNTER,
    "2.16.840.1.113883.3.464.1003.1003",
    "Hospice Encounter"
);

// CMS128
value_set!(
    MAJOR_DEPRESSION,
    "2.16.840.1.113883.3.464.1003.105.12.1007",
    "Major Depression"
);
value_set!(
    OFFICE_VISIT,
    "2.16.840.1.113883.3.464.1003.101.12.1001",
    "Office Visit"
);
value_set!(
    PREVENTIVE_ESTABLISHED_18_UP,
    "2.16.840.1.113883.3.464.1003.101.12.1025",
    "Preventive Care Services Established Office Visit, 18 and Up"
);
value_set!(
    PREVENTIVE_INITIAL_18_UP,
    "2.16.840.1.113883.3.464.1003.101.12.1023",
    "Preventive Care Services Initial Office Visit, 18 and Up"
);
value_set!(
    HOME_HEALTHCARE,
    "2.16.840.1.113883.3.464.1003.101.12.1016",
    "Home Healthcare Services"
);
value_set!(
    ANNUAL_WELLNESS_VISIT,
    "2.16.840.1.113883.3.526.3.1240",
    "Annual Wellness Visit"
);
value_set!(
    NURSING_FACILITY_VISIT,
    "2.16.840.1.113883.3.464.1003.101.12.1012",
    "Nursing Facility Visit"
);
value_set!(
    PSYCH_VISIT_DIAGNOSTIC_EVALUATION,
    "2.16.840.1.113883.3.526.3.1492",
    "Psych Visit Diagnostic Evaluation"
);
value_set!(
    PSYCH_VISIT_PSYCHOTHERAPY,
    "2.16.840.1.113883.3.526.3.1496",
    "Psych Visit Psychotherapy"
);
value_set!(
    TELEPHONE_VISITS,
    "2.16.840.1.113883.3.464.1003.101.12.1080",
    "Telephone Visits"
);
value_set!(
    VIRTUAL_ENCOUNTER,
    "2.16.840.1.113883.3.464.1003.101.12.1089",
    "Virtual Encounter"
);

pub const SNOMED: &str = "http://snomed.info/sct";
pub const LOINC: &str = "http://loinc.org";

/// "Discharge to home for hospice care (procedure)" and "Discharge to healthcare
/// facility for hospice care (procedure)".
pub const HOSPICE_DISCHARGES: [&str; 2] = ["428361000124107", "428371000124100"];
/// "Hospice care [Minimum Data Set]", answered "Yes (qualifier value)".
pub const HOSPICE_MDS: &str = "45755-6";
pub const YES: &str = "373066001";
/// "Functional Assessment of Chronic Illness Therapy - Palliative Care Questionnaire
/// (FACIT-Pal)".
pub const FACIT_PAL: &str = "71007-9";

/// CMS128 "Qualifying Encounters".
pub const CMS128_ENCOUNTERS: &[&str] = &[
    OFFICE_VISIT,
    PREVENTIVE_ESTABLISHED_18_UP,
    PREVENTIVE_INITIAL_18_UP,
    HOME_HEALTHCARE,
    ANNUAL_WELLNESS_VISIT,
    NURSING_FACILITY_VISIT,
    PSYCH_VISIT_DIAGNOSTIC_EVALUATION,
    PSYCH_VISIT_PSYCHOTHERAPY,
    TELEPHONE_VISITS,
    VIRTUAL_ENCOUNTER,
];

/// CMS159 "Has Mental Health Disorder Diagnoses".
pub const MENTAL_HEALTH_DISORDERS: &[&str] = &[
    BIPOLAR_DISORDER,
    PERSONALITY_DISORDER_EMOTIONALLY_LABILE,
    SCHIZOPHRENIA_OR_PSYCHOTIC_DISORDER,
    PERVASIVE_DEVELOPMENTAL_DISORDER,
];

/// What the measures read, by resource type: the reader keeps these resources
/// (`fhir::read::Relevance`) beside what the assessment reads.
pub struct MeasureReads;

impl MeasureReads {
    /// With [`CMS128_ENCOUNTERS`]: every visit type either measure reads.
    pub const ENCOUNTERS: &'static [&'static str] = &[
        CONTACT_OR_OFFICE_VISIT,
        ENCOUNTER_INPATIENT,
        HOSPICE_ENCOUNTER,
        PALLIATIVE_CARE_ENCOUNTER,
    ];
    pub const CONDITIONS: &'static [&'static str] = &[
        MAJOR_DEPRESSION_INCLUDING_REMISSION,
        MAJOR_DEPRESSION,
        DYSTHYMIA,
        BIPOLAR_DISORDER,
        PERSONALITY_DISORDER_EMOTIONALLY_LABILE,
        SCHIZOPHRENIA_OR_PSYCHOTIC_DISORDER,
        PERVASIVE_DEVELOPMENTAL_DISORDER,
        PALLIATIVE_CARE_DIAGNOSIS,
        HOSPICE_DIAGNOSIS,
    ];
    pub const PROCEDURES: &'static [&'static str] =
        &[HOSPICE_CARE_AMBULATORY, PALLIATIVE_CARE_INTERVENTION];
    pub const SERVICE_REQUESTS: &'static [&'static str] = &[HOSPICE_CARE_AMBULATORY];
    pub const OBSERVATION_SETS: &'static [&'static str] = &[PHQ9_TOOLS];
    /// (system, code) read directly.
    pub const OBSERVATION_CODES: &'static [(&'static str, &'static str)] =
        &[(LOINC, HOSPICE_MDS), (LOINC, FACIT_PAL)];
}
