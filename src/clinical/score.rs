//! Scores: observations recognised as an instrument's total or item, with a number
//! (a coded answer read through the instrument's answer map); WPAI percent scores
//! computed from their items.

use serde::Serialize;
use time::Date;

use super::finding::Finding;
use super::knowledge::{Instrument, Knowledge};
use super::record::{ObservedValue, PatientRecord, SourceRef};

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ScorePoint {
    pub value: f64,
    pub date: Date,
    pub source: SourceRef,
}

/// Scores by instrument (index into `knowledge.instruments`), each series by date.
#[derive(Debug, Default)]
pub struct ScoreSeries {
    pub by_instrument: Vec<Vec<ScorePoint>>,
}

impl ScoreSeries {
    pub fn collect(
        record: &PatientRecord,
        knowledge: &Knowledge,
        as_of: Date,
        findings: &mut Vec<Finding>,
    ) -> Self {
        let mut by_instrument = vec![Vec::new(); knowledge.instruments.len()];
        for observation in &record.observations {
            // The observation itself, then its components (a panel's items).
            let parts = std::iter::once((&observation.codes, &observation.value))
                .chain(observation.components.iter().map(|c| (&c.codes, &c.value)));
            for (codes, observed) in parts {
                let Some(index) = knowledge
                    .instruments
                    .iter()
                    .position(|i| is_instrument(i, codes, knowledge))
                else {
                    continue;
                };
                let instrument = &knowledge.instruments[index];
                let Some(date) = observation.effective else {
                    findings.push(Finding::not_used(
                        &observation.source,
                        format!("{} score without a date", instrument.name),
                    ));
                    continue;
                };
                if date > as_of {
                    continue;
                }
                let value = match observed {
                    Some(ObservedValue::Number { value, .. }) => Some(*value),
                    Some(ObservedValue::Text(text)) => text.trim().parse::<f64>().ok(),
                    Some(ObservedValue::Coded(codes)) => codes
                        .iter()
                        .find_map(|c| instrument.answers.get(&c.code).copied()),
                    Some(ObservedValue::Boolean(yes)) => Some(if *yes { 1.0 } else { 0.0 }),
                    None => None,
                };
                match value {
                    Some(v) if v >= instrument.range[0] && v <= instrument.range[1] => {
                        by_instrument[index].push(ScorePoint {
                            value: v,
                            date,
                            source: observation.source.clone(),
                        })
                    }
                    Some(v) => findings.push(Finding::not_used(
                        &observation.source,
                        format!(
                            "{} value {v} outside {}-{}",
                            instrument.name, instrument.range[0], instrument.range[1]
                        ),
                    )),
                    None => findings.push(Finding::not_used(
                        &observation.source,
                        format!(
                            "{} has no numeric value or known answer code",
                            instrument.name
                        ),
                    )),
                }
            }
        }
        for series in &mut by_instrument {
            series.sort_by(|a, b| (a.date, &a.source).cmp(&(b.date, &b.source)));
        }
        let mut series = Self { by_instrument };
        super::wpai::derive(&mut series, knowledge);
        series
    }

    /// How many depression-scale scores the record holds (any instrument).
    pub fn depression_points(&self, knowledge: &super::Knowledge) -> usize {
        knowledge
            .instruments
            .iter()
            .zip(&self.by_instrument)
            .filter(|(i, _)| i.measures == super::knowledge::InstrumentPurpose::Depression)
            .map(|(_, points)| points.len())
            .sum()
    }

    /// The last score of an instrument within [from, to].
    pub fn last_between(&self, instrument: usize, from: Date, to: Date) -> Option<&ScorePoint> {
        self.by_instrument[instrument]
            .iter()
            .rev()
            .find(|p| p.date >= from && p.date <= to)
    }
}

fn is_instrument(
    instrument: &Instrument,
    codes: &[super::record::Code],
    knowledge: &Knowledge,
) -> bool {
    codes.iter().any(|c| {
        knowledge
            .value_sets
            .contains(&instrument.value_set, &c.system, &c.code)
    })
}

/// One instrument's scores, as the assessment reports them (the treatment summary's
/// measurement series and the timeline's score line).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeasureSeries {
    /// The instrument's id in the knowledge (`phq9`, `wsas`...).
    pub instrument: String,
    pub name: String,
    pub measures: super::knowledge::InstrumentPurpose,
    /// By date, oldest first.
    pub points: Vec<ScorePoint>,
}

impl ScoreSeries {
    /// Every instrument that has scores, in the knowledge's order.
    pub fn measures(&self, knowledge: &Knowledge) -> Vec<MeasureSeries> {
        knowledge
            .instruments
            .iter()
            .zip(&self.by_instrument)
            .filter(|(_, points)| !points.is_empty())
            .map(|(instrument, points)| MeasureSeries {
                instrument: instrument.id.clone(),
                name: instrument.name.clone(),
                measures: instrument.measures,
                points: points.clone(),
            })
            .collect()
    }
}
