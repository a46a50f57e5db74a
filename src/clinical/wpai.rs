//! WPAI percent scores from the items when only the items are recorded (Reilly
//! Associates scoring, cited in instruments.toml): absenteeism = Q2/(Q2+Q4);
//! presenteeism = Q5/10; overall work impairment = absenteeism + (1 - absenteeism) x
//! Q5/10; activity impairment = Q6/10; each x 100. Items of one day make one set of
//! scores; a score already recorded that day is kept as it is.

use time::Date;

use super::adequacy::round2;
use super::knowledge::Knowledge;
use super::score::{ScorePoint, ScoreSeries};

/// The instrument ids the formulas read and write (instruments.toml).
const Q1: &str = "wpai-q1";
const Q2: &str = "wpai-q2";
const Q4: &str = "wpai-q4";
const Q5: &str = "wpai-q5";
const Q6: &str = "wpai-q6";
const ABSENTEEISM: &str = "wpai-absenteeism";
const PRESENTEEISM: &str = "wpai-presenteeism";
const OVERALL: &str = "wpai-overall";
const ACTIVITY: &str = "wpai-activity";

pub fn derive(series: &mut ScoreSeries, knowledge: &Knowledge) {
    let index = |id: &str| knowledge.instruments.iter().position(|i| i.id == id);
    let item = |series: &ScoreSeries, id: &str, date: Date| -> Option<ScorePoint> {
        series
            .by_instrument
            .get(index(id)?)?
            .iter()
            .rev()
            .find(|p| p.date == date)
            .cloned()
    };
    let mut dates: Vec<Date> = [Q2, Q4, Q5, Q6]
        .iter()
        .filter_map(|id| series.by_instrument.get(index(id)?))
        .flatten()
        .map(|p| p.date)
        .collect();
    dates.sort();
    dates.dedup();
    for date in dates {
        let employed = item(series, Q1, date).is_none_or(|q1| q1.value > 0.0);
        let (q2, q4, q5, q6) = (
            item(series, Q2, date),
            item(series, Q4, date),
            item(series, Q5, date),
            item(series, Q6, date),
        );
        let mut computed: Vec<(&str, f64, ScorePoint)> = Vec::new();
        if employed {
            let absenteeism = match (&q2, &q4) {
                (Some(missed), Some(worked)) if missed.value + worked.value > 0.0 => {
                    Some(missed.value / (missed.value + worked.value))
                }
                _ => None,
            };
            if let (Some(a), Some(missed)) = (absenteeism, &q2) {
                computed.push((ABSENTEEISM, a * 100.0, missed.clone()));
            }
            // Impairment while working needs hours worked.
            if let (Some(at_work), true) = (&q5, q4.as_ref().is_some_and(|w| w.value > 0.0)) {
                computed.push((PRESENTEEISM, at_work.value * 10.0, at_work.clone()));
                if let Some(a) = absenteeism {
                    let overall = a + (1.0 - a) * at_work.value / 10.0;
                    computed.push((OVERALL, overall * 100.0, at_work.clone()));
                }
            }
        }
        if let Some(activity) = &q6 {
            computed.push((ACTIVITY, activity.value * 10.0, activity.clone()));
        }
        for (id, value, from) in computed {
            let Some(target) = index(id) else { continue };
            let Some(points) = series.by_instrument.get_mut(target) else {
                continue;
            };
            if points.iter().any(|p| p.date == date) {
                continue;
            }
            points.push(ScorePoint {
                value: round2(value),
                date,
                source: from.source,
            });
            points.sort_by(|a, b| (a.date, &a.source).cmp(&(b.date, &b.source)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn series_with(items: &[(&str, f64)], knowledge: &Knowledge) -> ScoreSeries {
        let mut series = ScoreSeries {
            by_instrument: vec![Vec::new(); knowledge.instruments.len()],
        };
        for (id, value) in items {
            let index = knowledge
                .instruments
                .iter()
                .position(|i| i.id == *id)
                .expect("instrument");
            series.by_instrument[index].push(ScorePoint {
                value: *value,
                date: date!(2024 - 01 - 10),
                source: format!("Observation/{id}"),
            });
        }
        derive(&mut series, knowledge);
        series
    }

    fn value(series: &ScoreSeries, id: &str, knowledge: &Knowledge) -> Option<f64> {
        let index = knowledge.instruments.iter().position(|i| i.id == id)?;
        series.by_instrument[index].first().map(|p| p.value)
    }

    #[test]
    fn the_official_formulas() {
        let knowledge = Knowledge::embedded().expect("knowledge");
        let s = series_with(
            &[
                ("wpai-q2", 8.0),
                ("wpai-q4", 32.0),
                ("wpai-q5", 6.0),
                ("wpai-q6", 7.0),
            ],
            &knowledge,
        );
        assert_eq!(value(&s, ABSENTEEISM, &knowledge), Some(20.0));
        assert_eq!(value(&s, PRESENTEEISM, &knowledge), Some(60.0));
        assert_eq!(value(&s, OVERALL, &knowledge), Some(68.0));
        assert_eq!(value(&s, ACTIVITY, &knowledge), Some(70.0));
    }

    #[test]
    fn not_employed_or_no_hours_gives_activity_only() {
        let knowledge = Knowledge::embedded().expect("knowledge");
        let unemployed = series_with(
            &[
                ("wpai-q1", 0.0),
                ("wpai-q2", 0.0),
                ("wpai-q4", 0.0),
                ("wpai-q6", 4.0),
            ],
            &knowledge,
        );
        assert_eq!(value(&unemployed, OVERALL, &knowledge), None);
        assert_eq!(value(&unemployed, ABSENTEEISM, &knowledge), None);
        assert_eq!(value(&unemployed, ACTIVITY, &knowledge), Some(40.0));
        // Employed but no hours at all: no ratio (no division by zero), no presenteeism.
        let no_hours = series_with(
            &[("wpai-q2", 0.0), ("wpai-q4", 0.0), ("wpai-q5", 5.0)],
            &knowledge,
        );
        assert_eq!(value(&no_hours, ABSENTEEISM, &knowledge), None);
        assert_eq!(value(&no_hours, PRESENTEEISM, &knowledge), None);
    }

    #[test]
    fn a_recorded_score_is_kept() {
        let knowledge = Knowledge::embedded().expect("knowledge");
        let s = series_with(&[("wpai-activity", 55.0), ("wpai-q6", 7.0)], &knowledge);
        assert_eq!(value(&s, ACTIVITY, &knowledge), Some(55.0));
    }
}
