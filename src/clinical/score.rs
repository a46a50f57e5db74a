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
            let totals_before: Vec<usize> = by_instrument.iter().map(Vec::len).collect();
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
            // A form or panel with the items but no total: scored from the items.
            let scored: Vec<bool> = by_instrument
                .iter()
                .zip(&totals_before)
                .map(|(series, before)| series.len() > *before)
                .collect();
            if let Some(date) = observation.effective.filter(|d| *d <= as_of) {
                for (index, value) in item_totals(observation, knowledge, &scored, findings) {
                    if let Some(series) = by_instrument.get_mut(index) {
                        series.push(ScorePoint {
                            value,
                            date,
                            source: observation.source.clone(),
                        });
                    }
                }
            }
        }
        for series in &mut by_instrument {
            series.sort_by(|a, b| (a.date, &a.source).cmp(&(b.date, &b.source)));
        }
        Self { by_instrument }
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

/// The totals an observation's items give, for instruments it carried no total of:
/// each answered item read through the instrument's answer codes; a form with more
/// unanswered items than the instrument's rule allows is reported, not scored; one
/// within it is scored by mean substitution. Items are read by one instrument only
/// (a PHQ-9 form is not also a PHQ-2).
fn item_totals(
    observation: &super::record::ObservationFact,
    knowledge: &Knowledge,
    scored: &[bool],
    findings: &mut Vec<Finding>,
) -> Vec<(usize, f64)> {
    let mut totals = Vec::new();
    let mut used: Vec<&str> = Vec::new();
    for (index, instrument) in knowledge.instruments.iter().enumerate() {
        let Some(items) = &instrument.items else {
            continue;
        };
        if scored.get(index).copied().unwrap_or(true) {
            used.extend(items.codes.iter().map(String::as_str));
            continue;
        }
        let answer_of = |code: &str| {
            observation.components.iter().find_map(|c| {
                c.codes
                    .iter()
                    .any(|k| k.system == super::record::LOINC && k.code == code)
                    .then(|| item_value(c.value.as_ref(), &items.answers))
            })
        };
        let answers: Vec<Option<f64>> =
            items.codes.iter().map(|c| answer_of(c).flatten()).collect();
        let answered: Vec<f64> = answers.iter().flatten().copied().collect();
        let present = items.codes.iter().any(|c| answer_of(c).is_some());
        if !present || items.codes.iter().all(|c| used.contains(&c.as_str())) {
            continue;
        }
        used.extend(items.codes.iter().map(String::as_str));
        let missing = items.codes.len().saturating_sub(answered.len());
        if missing > items.missing_allowed || answered.is_empty() {
            findings.push(Finding::not_used(
                &observation.source,
                format!(
                    "{} form not scored: {missing} of {} items unanswered (at most {} allowed)",
                    instrument.name,
                    items.codes.len(),
                    items.missing_allowed
                ),
            ));
            continue;
        }
        let sum: f64 = answered.iter().sum();
        #[allow(clippy::cast_precision_loss)] // item counts are single digits
        let total = sum * items.codes.len() as f64 / answered.len() as f64;
        if total >= instrument.range[0] && total <= instrument.range[1] {
            totals.push((index, (total * 10.0).round() / 10.0));
        } else {
            findings.push(Finding::not_used(
                &observation.source,
                format!(
                    "{} items sum to {total}, outside the range",
                    instrument.name
                ),
            ));
        }
    }
    totals
}

/// One item's score: a number, or an answer code read through the answer list.
fn item_value(
    value: Option<&ObservedValue>,
    answers: &std::collections::BTreeMap<String, f64>,
) -> Option<f64> {
    match value? {
        ObservedValue::Number { value, .. } => Some(*value),
        ObservedValue::Text(text) => text.trim().parse().ok(),
        ObservedValue::Coded(codes) => codes.iter().find_map(|c| answers.get(&c.code).copied()),
        ObservedValue::Boolean(yes) => Some(if *yes { 1.0 } else { 0.0 }),
    }
}
