//! Quality measure results as FHIR R4 MeasureReports (DEQM shapes): one `individual`
//! report per patient and measure, and for a population the `summary` report (each
//! population's count, the proportion as `measureScore`, the strata) and the
//! `subject-list` report, whose populations reference Lists of the patients in them
//! (contained, so the report stands alone).

use std::collections::BTreeMap;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::clinical::measures::{MeasureId, MeasureResult, MeasurementPeriod, Population};

const POPULATION_SYSTEM: &str = "http://terminology.hl7.org/CodeSystem/measure-population";
const IMPROVEMENT: &str = "http://terminology.hl7.org/CodeSystem/measure-improvement-notation";

/// `Measure|version`, as MeasureReport.measure names it.
fn measure_reference(measure: MeasureId) -> String {
    format!("{}|{}", measure.canonical(), measure.version())
}

fn period_of(period: &MeasurementPeriod) -> Value {
    json!({ "start": period.start.to_string(), "end": period.end.to_string() })
}

/// A FHIR id (64 characters at most, [A-Za-z0-9-.]) standing for `parts`: readable
/// when it fits, a digest when it does not.
fn id_for(parts: &[&str]) -> String {
    let readable: String = parts
        .join("-")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if readable.len() <= 64 {
        return readable;
    }
    let digest = Sha256::digest(parts.join("\u{1f}").as_bytes());
    digest.iter().take(24).map(|b| format!("{b:02x}")).collect()
}

fn population_entry(population: Population, count: usize) -> Value {
    json!({
        "code": { "coding": [{
            "system": POPULATION_SYSTEM,
            "code": population.code(),
            "display": population.display(),
        }]},
        "count": count,
    })
}

fn improvement_notation() -> Value {
    json!({ "coding": [{ "system": IMPROVEMENT, "code": "increase", "display": "Increased score indicates improvement" }] })
}

/// The individual MeasureReport of one patient for one measure.
pub fn individual(result: &MeasureResult) -> Value {
    let stratifiers: Vec<Value> = result
        .measure
        .stratifiers()
        .iter()
        .filter(|(id, _)| result.strata.contains(id))
        .map(|(id, label)| {
            let membership = result.first();
            json!({
                "code": [{ "text": id }],
                "stratum": [{
                    "value": { "text": label },
                    "population": Population::ALL.iter().map(|p| population_entry(
                        *p,
                        usize::from(membership.is_some_and(|m| m.is_in(*p))),
                    )).collect::<Vec<_>>(),
                }],
            })
        })
        .collect();
    let groups: Vec<Value> = result
        .groups
        .iter()
        .enumerate()
        .map(|(n, group)| {
            let mut value = json!({
                "id": group.id,
                "population": Population::ALL.iter()
                    .map(|p| population_entry(*p, usize::from(group.membership.is_in(*p))))
                    .collect::<Vec<_>>(),
            });
            // The strata belong to the measure's first (only) group.
            if n == 0 && !stratifiers.is_empty() {
                value["stratifier"] = Value::Array(stratifiers.clone());
            }
            value
        })
        .collect();
    let mut report = json!({
        "resourceType": "MeasureReport",
        "id": id_for(&[result.measure.key(), &result.period.year.to_string(), result.subject.trim_start_matches("Patient/")]),
        "status": "complete",
        "type": "individual",
        "measure": measure_reference(result.measure),
        "subject": { "reference": result.subject },
        "period": period_of(&result.period),
        "improvementNotation": improvement_notation(),
        "group": groups,
    });
    if !result.evaluated.is_empty() {
        report["evaluatedResource"] = result
            .evaluated
            .iter()
            .map(|r| json!({ "reference": r }))
            .collect();
    }
    report
}

/// Counts and members of one population group (or one stratum of it).
#[derive(Debug, Default, Clone)]
pub struct Tally {
    pub members: BTreeMap<Population, Vec<String>>,
}

impl Tally {
    fn add(&mut self, subject: &str, in_population: impl Fn(Population) -> bool) {
        for population in Population::ALL {
            if in_population(population) {
                self.members
                    .entry(population)
                    .or_default()
                    .push(subject.to_string());
            }
        }
    }

    pub fn count(&self, population: Population) -> usize {
        self.members.get(&population).map_or(0, Vec::len)
    }

    pub fn members(&self, population: Population) -> &[String] {
        self.members.get(&population).map_or(&[], Vec::as_slice)
    }

    /// numerator / (denominator - exclusions); None with nobody to score.
    pub fn score(&self) -> Option<f64> {
        let eligible = self
            .count(Population::Denominator)
            .checked_sub(self.count(Population::DenominatorExclusion))?;
        (eligible > 0).then(|| self.count(Population::Numerator) as f64 / eligible as f64)
    }
}

/// A measure's results over a population, built patient by patient.
#[derive(Debug, Clone)]
pub struct MeasureSummary {
    pub measure: MeasureId,
    pub period: MeasurementPeriod,
    /// By group id, in the measure's order.
    pub groups: Vec<(&'static str, Tally)>,
    /// By stratifier id (the first group's strata).
    pub strata: Vec<(&'static str, Tally)>,
}

impl MeasureSummary {
    pub fn new(measure: MeasureId, period: MeasurementPeriod) -> Self {
        Self {
            measure,
            period,
            groups: measure
                .groups()
                .iter()
                .map(|(id, _)| (*id, Tally::default()))
                .collect(),
            strata: measure
                .stratifiers()
                .iter()
                .map(|(id, _)| (*id, Tally::default()))
                .collect(),
        }
    }

    pub fn add(&mut self, result: &MeasureResult) {
        for group in &result.groups {
            if let Some((_, tally)) = self.groups.iter_mut().find(|(id, _)| *id == group.id) {
                tally.add(&result.subject, |p| group.membership.is_in(p));
            }
        }
        if let Some(first) = result.first() {
            for (id, tally) in &mut self.strata {
                if result.strata.contains(id) {
                    tally.add(&result.subject, |p| first.is_in(p));
                }
            }
        }
    }

    fn report(&self, kind: &str, lists: Option<&mut Vec<Value>>) -> Value {
        let mut lists = lists;
        let mut population_values = |tally: &Tally, scope: &str| -> Vec<Value> {
            Population::ALL
                .iter()
                .map(|p| {
                    let mut entry = population_entry(*p, tally.count(*p));
                    if let Some(lists) = lists.as_deref_mut() {
                        let members = tally.members(*p);
                        if !members.is_empty() {
                            let id = id_for(&[scope, p.code()]);
                            lists.push(json!({
                                "resourceType": "List",
                                "id": id,
                                "status": "current",
                                "mode": "snapshot",
                                "title": format!("{} {}: {}", self.measure.title(), scope, p.display()),
                                "entry": members.iter().map(|m| json!({ "item": { "reference": m } })).collect::<Vec<_>>(),
                            }));
                            entry["subjectResults"] = json!({ "reference": format!("#{id}") });
                        }
                    }
                    entry
                })
                .collect()
        };
        let score = |tally: &Tally| {
            tally
                .score()
                .map(|s| json!({ "value": (s * 10_000.0).round() / 10_000.0 }))
        };
        let mut groups = Vec::new();
        for (n, (id, tally)) in self.groups.iter().enumerate() {
            let mut group = json!({ "id": id, "population": population_values(tally, id) });
            if let Some(score) = score(tally) {
                group["measureScore"] = score;
            }
            if n == 0 && !self.strata.is_empty() {
                let labels = self.measure.stratifiers();
                let stratifiers: Vec<Value> = self
                    .strata
                    .iter()
                    .map(|(sid, tally)| {
                        let label = labels
                            .iter()
                            .find(|(l, _)| l == sid)
                            .map_or(*sid, |(_, t)| t);
                        let mut stratum = json!({
                            "value": { "text": label },
                            "population": population_values(tally, sid),
                        });
                        if let Some(score) = score(tally) {
                            stratum["measureScore"] = score;
                        }
                        json!({ "code": [{ "text": sid }], "stratum": [stratum] })
                    })
                    .collect();
                group["stratifier"] = Value::Array(stratifiers);
            }
            groups.push(group);
        }
        json!({
            "resourceType": "MeasureReport",
            "id": id_for(&[self.measure.key(), &self.period.year.to_string(), kind]),
            "status": "complete",
            "type": kind,
            "measure": measure_reference(self.measure),
            "period": period_of(&self.period),
            "improvementNotation": improvement_notation(),
            "group": groups,
        })
    }

    /// The `summary` MeasureReport.
    pub fn summary(&self) -> Value {
        self.report("summary", None)
    }

    /// The `subject-list` MeasureReport: each population's patients in a contained
    /// List it references.
    pub fn subject_list(&self) -> Value {
        let mut lists = Vec::new();
        let mut report = self.report("subject-list", Some(&mut lists));
        if !lists.is_empty() {
            report["contained"] = Value::Array(lists);
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::id_for;

    #[test]
    fn ids_are_valid_fhir_ids_whatever_the_patient_id() {
        assert_eq!(id_for(&["cms159", "2026", "abc_1"]), "cms159-2026-abc-1");
        let long = "x".repeat(80);
        let id = id_for(&["cms159", "2026", &long]);
        assert_eq!(id.len(), 48);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
