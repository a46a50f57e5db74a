//! Electronic clinical quality measures, computed from the same `PatientRecord` the
//! assessment reads, as their published CQL defines them:
//!
//! - [`cms159`]: CMS159FHIR "Depression Remission at Twelve Months",
//!   `CMS159FHIRDepressionRemissionatTwelveMonths` version '0.3.000' (QI-Core 6.0.0;
//!   cqframework/ecqm-content-qicore-2025, `input/cql`).
//! - [`cms128`]: CMS128FHIR "Antidepressant Medication Management",
//!   `CMS128FHIRAntidepressantMedManagement` version '0.3.000' (same repository), over
//!   [`super::amm`] (IPSD, negative medication history, cumulative duration).
//!
//! Both are patient-based proportion measures: each population is a yes or no per
//! patient. As every CQL engine reports them, the numerator is only counted for a
//! patient in the denominator and not excluded from it.
//!
//! Times: the record keeps calendar days, so every CQL comparison here is made at
//! day precision. The CQL compares most of them `day of` already; where it compares
//! DateTimes (an Encounter's period overlapping a diagnosis, the first and last
//! assessment of a day) two facts of one day are ordered by their source reference.
//! Facts dated after the as-of date are not used, as in the assessment.

use serde::Serialize;
use time::{Date, Month};

use super::knowledge::Knowledge;
use super::record::{Code, PatientRecord, SourceRef};

pub mod cms128;
pub mod cms159;
mod hospice;
mod span;
pub mod value_sets;

pub use span::Span;

/// The measures this service computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MeasureId {
    Cms159,
    Cms128,
}

impl MeasureId {
    pub const ALL: [MeasureId; 2] = [MeasureId::Cms159, MeasureId::Cms128];

    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "cms159" | "cms159fhir" => Some(Self::Cms159),
            "cms128" | "cms128fhir" => Some(Self::Cms128),
            _ => None,
        }
    }

    /// "cms159"
    pub fn key(self) -> &'static str {
        match self {
            Self::Cms159 => "cms159",
            Self::Cms128 => "cms128",
        }
    }

    /// The Measure's canonical URL (MADiE, the CMS measure authoring tool).
    pub fn canonical(self) -> &'static str {
        match self {
            Self::Cms159 => {
                "https://madie.cms.gov/Measure/CMS159FHIRDepressionRemissionatTwelveMonths"
            }
            Self::Cms128 => "https://madie.cms.gov/Measure/CMS128FHIRAntidepressantMedManagement",
        }
    }

    pub fn version(self) -> &'static str {
        "0.3.000"
    }

    pub fn title(self) -> &'static str {
        match self {
            Self::Cms159 => "CMS159 Depression Remission at Twelve Months",
            Self::Cms128 => "CMS128 Antidepressant Medication Management",
        }
    }

    /// The measure's groups: (id, what its numerator means).
    pub fn groups(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Cms159 => &[(
                "Group_1",
                "Remission (last PHQ-9 below 5) twelve months (+/- 60 days) after an index PHQ-9 above 9",
            )],
            Self::Cms128 => &[
                (
                    "Group_1",
                    "Effective acute phase: 84 days of antidepressant within 114 days of the first dispense",
                ),
                (
                    "Group_2",
                    "Effective continuation phase: 180 days of antidepressant within 231 days of the first dispense",
                ),
            ],
        }
    }

    /// Whom the measure year's report is about, in words.
    pub fn scope(self, year: i32) -> String {
        match self {
            Self::Cms159 => format!(
                "Patients aged 12 and older with an index PHQ-9 or PHQ-9M (adolescent version) above 9 at a depression visit from November 1, {} to October 31, {}; remission is the last PHQ-9 / PHQ-9M below 5 twelve months (+/- 60 days) later, within {year}.",
                year - 2,
                year - 1
            ),
            Self::Cms128 => format!(
                "Adults with major depression whose first antidepressant dispense (the index prescription start date, IPSD) falls from May 1, {} to April 30, {year}, with a visit within 60 days of it.",
                year - 1
            ),
        }
    }

    /// The stratifiers reported: (id, stratum label). CMS159's age strata are the
    /// measure's published stratification (12-17, 18 and older at the index
    /// assessment); edition 0.3.000 comments them out of its CQL only for a tooling
    /// defect (BONNIEMAT-1489), so they are computed here as edition 0.0.001 defines
    /// them.
    pub fn stratifiers(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Self::Cms159 => &[
                ("Stratification 1", "Age 12-17 at the index assessment"),
                (
                    "Stratification 2",
                    "Age 18 and older at the index assessment",
                ),
            ],
            Self::Cms128 => &[],
        }
    }
}

impl std::fmt::Display for MeasureId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key())
    }
}

/// A calendar-year measurement period: `Interval[@YEAR-01-01, @YEAR+1-01-01)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct MeasurementPeriod {
    pub year: i32,
    pub start: Date,
    pub end: Date,
}

impl MeasurementPeriod {
    pub fn year(year: i32) -> Option<Self> {
        Some(Self {
            year,
            start: Date::from_calendar_date(year, Month::January, 1).ok()?,
            end: Date::from_calendar_date(year, Month::December, 31).ok()?,
        })
    }

    pub fn span(&self) -> Span {
        Span::closed(self.start, self.end)
    }
}

/// The populations of a proportion measure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Population {
    InitialPopulation,
    Denominator,
    DenominatorExclusion,
    Numerator,
}

impl Population {
    pub const ALL: [Population; 4] = [
        Population::InitialPopulation,
        Population::Denominator,
        Population::DenominatorExclusion,
        Population::Numerator,
    ];

    /// The code of http://terminology.hl7.org/CodeSystem/measure-population.
    pub fn code(self) -> &'static str {
        match self {
            Self::InitialPopulation => "initial-population",
            Self::Denominator => "denominator",
            Self::DenominatorExclusion => "denominator-exclusion",
            Self::Numerator => "numerator",
        }
    }

    pub fn display(self) -> &'static str {
        match self {
            Self::InitialPopulation => "Initial Population",
            Self::Denominator => "Denominator",
            Self::DenominatorExclusion => "Denominator Exclusion",
            Self::Numerator => "Numerator",
        }
    }
}

/// One group's populations for one patient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Membership {
    pub initial_population: bool,
    pub denominator: bool,
    pub denominator_exclusion: bool,
    /// Only for a patient in the denominator and not excluded.
    pub numerator: bool,
}

impl Membership {
    /// From the CQL definitions' values, applying the proportion rules: the
    /// denominator within the initial population, the exclusion and the numerator
    /// within the denominator, the numerator only when not excluded.
    pub fn proportion(initial: bool, excluded: bool, numerator: bool) -> Self {
        Self {
            initial_population: initial,
            denominator: initial,
            denominator_exclusion: initial && excluded,
            numerator: initial && !excluded && numerator,
        }
    }

    pub fn is_in(&self, population: Population) -> bool {
        match population {
            Population::InitialPopulation => self.initial_population,
            Population::Denominator => self.denominator,
            Population::DenominatorExclusion => self.denominator_exclusion,
            Population::Numerator => self.numerator,
        }
    }
}

/// One patient's result for one group of a measure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupResult {
    pub id: &'static str,
    pub membership: Membership,
}

/// One patient's result for one measure: the individual MeasureReport's content,
/// and the reasons in words.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeasureResult {
    pub measure: MeasureId,
    pub subject: String,
    pub period: MeasurementPeriod,
    pub groups: Vec<GroupResult>,
    /// The stratifiers (by id) the patient falls in.
    pub strata: Vec<&'static str>,
    /// The resources that decided it (the Patient first), each once.
    pub evaluated: Vec<SourceRef>,
    /// What decided each population, in words (codes and dates, no names or notes).
    pub reasons: Vec<String>,
}

impl MeasureResult {
    /// The first group's populations (the one group of CMS159; CMS128's groups share
    /// their initial population, denominator and exclusion).
    pub fn first(&self) -> Option<&Membership> {
        self.groups.first().map(|g| &g.membership)
    }

    /// Whether the patient is in the measure's denominator and not excluded, yet
    /// not in a group's numerator: the patients a quality team acts on.
    pub fn missed(&self) -> Vec<&'static str> {
        self.groups
            .iter()
            .filter(|g| {
                g.membership.denominator
                    && !g.membership.denominator_exclusion
                    && !g.membership.numerator
            })
            .map(|g| g.id)
            .collect()
    }
}

/// One measure for one patient.
pub fn evaluate(
    measure: MeasureId,
    record: &PatientRecord,
    knowledge: &Knowledge,
    period: MeasurementPeriod,
    as_of: Date,
) -> MeasureResult {
    match measure {
        MeasureId::Cms159 => cms159::evaluate(record, knowledge, period, as_of),
        MeasureId::Cms128 => cms128::evaluate(record, knowledge, period, as_of),
    }
}

/// Collects evaluated resources once each, in the order they decided.
#[derive(Debug, Default)]
struct Evidence {
    sources: Vec<SourceRef>,
    reasons: Vec<String>,
}

impl Evidence {
    /// The measure result for a patient: the measure's groups (in its order) with
    /// their populations, the Patient cited first when it is in the population.
    fn into_result(
        mut self,
        measure: MeasureId,
        record: &PatientRecord,
        period: MeasurementPeriod,
        memberships: &[Membership],
        strata: Vec<&'static str>,
    ) -> MeasureResult {
        if memberships.iter().any(|m| m.initial_population) {
            self.sources.insert(0, record.patient.clone());
        }
        MeasureResult {
            measure,
            subject: record.patient.clone(),
            period,
            groups: measure
                .groups()
                .iter()
                .zip(memberships)
                .map(|((id, _), membership)| GroupResult {
                    id,
                    membership: *membership,
                })
                .collect(),
            strata,
            evaluated: self.sources,
            reasons: self.reasons,
        }
    }

    fn cite(&mut self, source: &str) {
        if !self.sources.iter().any(|s| s == source) {
            self.sources.push(source.to_string());
        }
    }

    fn say(&mut self, reason: impl Into<String>) {
        self.reasons.push(reason.into());
    }
}

/// Whether one of the codes is in the value set (a CQL retrieve by value set).
fn coded_in(knowledge: &Knowledge, value_set: &str, codes: &[Code]) -> bool {
    codes
        .iter()
        .any(|c| knowledge.value_sets.contains(value_set, &c.system, &c.code))
}
