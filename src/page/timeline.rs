//! The treatment timeline as SVG, drawn on the server (no script): how a psychiatrist
//! draws a treatment history on paper.
//!
//! - A time axis over the current episode; earlier history is compressed into a
//!   faded band on the left.
//! - One lane per antidepressant: a bar per supply, its height the daily dose against
//!   the drug's minimum adequate dose (the dashed line in the lane is the minimum;
//!   below it the bar is hatched), dose labels where the dose changes, gaps as gaps,
//!   re-trials in the same lane, "orders only" supplies cross-hatched; augmentation in
//!   a thin row under the drug it augments; each trial labelled with its verdict.
//! - Psychotherapy courses and ECT / TMS / esketamine sessions in their own rows.
//! - The symptom scores below as a line through every score, with the response line
//!   (half the episode's baseline) and the remission line, each trial's baseline and
//!   outcome ringed; functional scores on a line of their own.
//!
//! Colours from the Okabe-Ito palette (safe for colour-blindness); meaning never rests
//! on colour alone (hatching, dashes, labels), so greyscale prints read too. A
//! `<title>` and `<desc>` carry the facts in words. Elements carry classes and data
//! attributes (lane, supply, score) that the tests read. maud escapes every string.

use maud::{html, Markup};
use time::Date;

use crate::clinical::assessment::{Assessment, TrialAssessment};
use crate::clinical::knowledge::{InstrumentPurpose, Knowledge};
use crate::clinical::numbers::fmt;
use crate::clinical::score::MeasureSeries;
use crate::clinical::supply::SupplyOrigin;

use super::labels::verdict_label;

const WIDTH: f64 = 1000.0;
const LEFT: f64 = 170.0;
const RIGHT: f64 = 985.0;
const LANE: f64 = 46.0;
const ROW: f64 = 22.0;
const BAR_MAX: f64 = 30.0;
const SCORES: f64 = 170.0;
const FUNCTION: f64 = 110.0;
/// The share of the width the time before the episode gets.
const HISTORY_SHARE: f64 = 0.14;
/// Less time than this before the episode is drawn to scale, not compressed.
const HISTORY_MIN_DAYS: i64 = 90;

/// Okabe-Ito.
const BLUE: &str = "#0072B2";
const ORANGE: &str = "#E69F00";
const GREEN: &str = "#009E73";
const VERMILLION: &str = "#D55E00";
const PURPLE: &str = "#CC79A7";
const SKY: &str = "#56B4E9";

/// Dates to x: the episode gets most of the width, earlier history the rest.
struct Scale {
    first: Date,
    /// Where the compressed history ends (the episode's start, or `first`).
    episode: Date,
    last: Date,
    /// The episode's start as the engine dated it (the axis names it).
    episode_start: Option<Date>,
}

impl Scale {
    fn of(a: &Assessment) -> Self {
        let last = a.as_of;
        let mut dates: Vec<Date> = a.trials.iter().map(|t| t.start).collect();
        dates.extend(a.non_trials.iter().map(|n| n.start));
        dates.extend(
            a.measures
                .iter()
                .flat_map(|m| m.points.iter().map(|p| p.date)),
        );
        dates.extend(a.psychotherapy.iter().map(|c| c.start));
        dates.extend(a.treatments.iter().map(|t| t.date));
        let earliest = dates.iter().copied().min().unwrap_or(last);
        let episode = a.episode.start.unwrap_or(earliest).min(last).max(earliest);
        // A few weeks before the episode (a baseline score) are not "history": only
        // a longer past gets the compressed band.
        let first = if (episode - earliest).whole_days() < HISTORY_MIN_DAYS {
            earliest.min(episode)
        } else {
            earliest
        };
        let episode = if (episode - first).whole_days() < HISTORY_MIN_DAYS {
            first
        } else {
            episode
        };
        Self {
            first,
            episode,
            last: last.max(episode),
            episode_start: a.episode.start,
        }
    }

    fn has_history(&self) -> bool {
        self.first < self.episode
    }

    fn split(&self) -> f64 {
        if self.has_history() {
            LEFT + (RIGHT - LEFT) * HISTORY_SHARE
        } else {
            LEFT
        }
    }

    fn x(&self, date: Date) -> f64 {
        let date = date.clamp(self.first, self.last);
        let days = |a: Date, b: Date| (b - a).whole_days().max(1) as f64;
        if date < self.episode {
            LEFT + (self.split() - LEFT) * (date - self.first).whole_days() as f64
                / days(self.first, self.episode)
        } else {
            self.split()
                + (RIGHT - self.split()) * (date - self.episode).whole_days() as f64
                    / days(self.episode, self.last)
        }
    }

    /// The x span of [start, end] (inclusive days), at least a sliver.
    fn span(&self, start: Date, end: Date) -> (f64, f64) {
        let x0 = self.x(start);
        let x1 = self.x(end.max(start)) + 1.0;
        (x0, (x1 - x0).max(2.0))
    }
}

/// The agents in order of first use, each with its trials.
fn lanes(a: &Assessment) -> Vec<(&str, Vec<&TrialAssessment>)> {
    let mut out: Vec<(&str, Vec<&TrialAssessment>)> = Vec::new();
    for t in &a.trials {
        match out.iter_mut().find(|(name, _)| *name == t.ingredient) {
            Some((_, trials)) => trials.push(t),
            None => out.push((&t.ingredient, vec![t])),
        }
    }
    out
}

/// The depression instrument with the most scores, and the function instrument with
/// the most scores.
fn primary(a: &Assessment, purpose: InstrumentPurpose) -> Option<&MeasureSeries> {
    a.measures
        .iter()
        .filter(|m| m.measures == purpose)
        .max_by_key(|m| m.points.len())
}

/// The whole picture.
pub fn svg(a: &Assessment, knowledge: &Knowledge) -> Markup {
    let scale = Scale::of(a);
    let lanes = lanes(a);
    let augmented = |trials: &[&TrialAssessment]| trials.iter().any(|t| !t.augmented_by.is_empty());
    let mut y = 40.0;
    let mut lane_tops = Vec::new();
    for (_, trials) in &lanes {
        lane_tops.push(y);
        y += LANE + if augmented(trials) { ROW } else { 0.0 };
    }
    let non_trials_top = y + 6.0;
    if !a.non_trials.is_empty() {
        y += ROW + 10.0;
    }
    let therapy_top = y + 6.0;
    if !a.psychotherapy.is_empty() {
        y += ROW + 10.0;
    }
    let treatments_top = y + 6.0;
    if !a.treatments.is_empty() {
        y += ROW + 10.0;
    }
    let depression = primary(a, InstrumentPurpose::Depression);
    let function = primary(a, InstrumentPurpose::Function);
    let scores_top = y + 14.0;
    if depression.is_some() {
        y = scores_top + SCORES + 10.0;
    }
    let function_top = y + 14.0;
    if function.is_some() {
        y = function_top + FUNCTION + 10.0;
    }
    let height = y + 30.0;
    let description = describe(a, depression);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" class="timeline" viewBox=(format!("0 0 {WIDTH} {height}"))
            width=(WIDTH) height=(height) role="img" aria-labelledby="tl-title tl-desc" font-family="system-ui, sans-serif" font-size="11" {
            title id="tl-title" { "Treatment timeline, " (a.patient) ", as of " (a.as_of) }
            desc id="tl-desc" { (description) }
            defs {
                pattern id="below-min" patternUnits="userSpaceOnUse" width="6" height="6" patternTransform="rotate(45)" {
                    rect width="6" height="6" fill="#fff" {}
                    line x1="0" y1="0" x2="0" y2="6" stroke=(ORANGE) stroke-width="3" {}
                }
                pattern id="orders-only" patternUnits="userSpaceOnUse" width="6" height="6" {
                    rect width="6" height="6" fill="#fff" {}
                    path d="M0,0 L6,6 M6,0 L0,6" stroke=(BLUE) stroke-width="1" {}
                }
            }
            (axis(&scale, height))
            @for ((name, trials), top) in lanes.iter().zip(&lane_tops) {
                (lane(&scale, name, trials, *top))
            }
            @if !a.non_trials.is_empty() {
                g class="row non-trials" {
                    text x="8" y=(non_trials_top + 15.0) font-weight="600" { "Not trials" }
                    @for n in &a.non_trials {
                        @let (x, w) = scale.span(n.start, n.end);
                        rect class="non-trial" x=(x) y=(non_trials_top + 6.0) width=(w) height="10" fill="#bbb" stroke="#666" stroke-dasharray="2,2" {
                            title { (n.ingredient) ": " (n.text) }
                        }
                        text x=(x + 2.0) y=(non_trials_top + 4.0) fill="#444" { (n.ingredient) " (not a trial)" }
                    }
                }
            }
            @if !a.psychotherapy.is_empty() {
                g class="row psychotherapy" {
                    text x="8" y=(therapy_top + 15.0) font-weight="600" { "Psychotherapy" }
                    @for c in &a.psychotherapy {
                        @let (x, w) = scale.span(c.start, c.end);
                        rect class="course" x=(x) y=(therapy_top + 6.0) width=(w) height="10" fill=(PURPLE) stroke="#333"
                            stroke-dasharray=(if c.adequate { "none" } else { "3,2" }) {
                            title { (c.name) ": " (c.sessions) " sessions" }
                        }
                        text x=(x + 2.0) y=(therapy_top + 4.0) { (c.name) " · " (c.sessions) " sessions" }
                    }
                }
            }
            @if !a.treatments.is_empty() {
                g class="row treatments" {
                    text x="8" y=(treatments_top + 15.0) font-weight="600" { "Procedures" }
                    @for t in &a.treatments {
                        @let x = scale.x(t.date);
                        path class="treatment" data-kind=(t.kind) d=(format!("M{x},{} l5,6 l-5,6 l-5,-6 z", treatments_top + 4.0)) fill=(VERMILLION) {
                            title { (t.kind) " " (t.date) }
                        }
                    }
                    @for (kind, first) in first_of_each_kind(a) {
                        text x=(scale.x(first) + 7.0) y=(treatments_top + 14.0) { (kind) }
                    }
                }
            }
            @if let Some(series) = depression {
                (score_panel(&scale, a, series, knowledge, scores_top))
            }
            @if let Some(series) = function {
                (function_panel(&scale, series, knowledge, function_top))
            }
        }
    }
}

fn first_of_each_kind(a: &Assessment) -> Vec<(&str, Date)> {
    let mut out: Vec<(&str, Date)> = Vec::new();
    for t in &a.treatments {
        if !out.iter().any(|(k, _)| *k == t.kind) {
            out.push((&t.kind, t.date));
        }
    }
    out
}

/// The facts of the picture in words (its `<desc>`).
fn describe(a: &Assessment, depression: Option<&MeasureSeries>) -> String {
    let mut parts: Vec<String> = a
        .trials
        .iter()
        .map(|t| {
            format!(
                "{} {} {} from {} to {}: {}",
                t.id,
                t.ingredient,
                t.daily_dose_mg
                    .map(|d| format!(
                        "{} mg/day (minimum {})",
                        fmt(d),
                        fmt(t.verdict.min_daily_mg)
                    ))
                    .unwrap_or_else(|| "dose unknown".into()),
                t.start,
                t.end,
                verdict_label(t)
            )
        })
        .collect();
    if let Some(series) = depression {
        let values: Vec<String> = series.points.iter().map(|p| fmt(p.value)).collect();
        parts.push(format!("{} scores: {}", series.name, values.join(", ")));
    }
    if parts.is_empty() {
        "No antidepressant trial and no scores recorded.".into()
    } else {
        parts.join(". ")
    }
}

fn axis(scale: &Scale, height: f64) -> Markup {
    let months = month_ticks(scale);
    // A label needs about 60 px: label every `step`-th month.
    let room = ((RIGHT - scale.split()) / 60.0).max(1.0);
    let step = ((months.len() as f64 / room).ceil() as usize).max(1);
    html! {
        g class="axis" {
            @if scale.has_history() {
                rect class="history" x=(LEFT) y="20" width=(scale.split() - LEFT) height=(height - 40.0) fill="#f2f2f2" {}
                text x=(LEFT + 3.0) y="16" fill="#555" { "earlier: " (scale.first.year()) "–" (scale.episode.year()) }
            }
            @if let Some(start) = scale.episode_start {
                @let x = scale.x(start);
                line class="episode-start" x1=(x) y1="20" x2=(x) y2=(height - 20.0) stroke="#333" stroke-dasharray="4,3" {}
                text x=(x + 3.0) y="16" font-weight="600" { "episode from " (start) }
            }
            @for (i, month) in months.iter().enumerate() {
                @let x = scale.x(*month);
                line x1=(x) y1=(height - 26.0) x2=(x) y2=(height - 20.0) stroke="#999" {}
                @if i % step == 0 && x < RIGHT - 110.0 {
                    text x=(x) y=(height - 8.0) text-anchor="middle" fill="#555" { (format!("{}-{:02}", month.year(), month.month() as u8)) }
                }
            }
            line x1=(RIGHT) y1="20" x2=(RIGHT) y2=(height - 20.0) stroke="#999" {}
            text x=(RIGHT) y=(height - 8.0) text-anchor="end" font-weight="600" { "today " (scale.last) }
        }
    }
}

/// First days of the months inside the episode.
fn month_ticks(scale: &Scale) -> Vec<Date> {
    let mut out = Vec::new();
    let mut month = Date::from_calendar_date(scale.episode.year(), scale.episode.month(), 1).ok();
    while let Some(m) = month.filter(|m| *m <= scale.last) {
        if m >= scale.episode {
            out.push(m);
        }
        month = m
            .replace_day(28)
            .ok()
            .and_then(|d| d.checked_add(time::Duration::days(7)))
            .and_then(|d| d.replace_day(1).ok());
    }
    out
}

fn lane(scale: &Scale, name: &str, trials: &[&TrialAssessment], top: f64) -> Markup {
    let base = top + LANE - 6.0;
    let min = trials
        .first()
        .map(|t| t.verdict.min_daily_mg)
        .unwrap_or(0.0);
    let height = |mg: f64| (mg / min.max(1e-9)).min(2.0) / 2.0 * BAR_MAX;
    html! {
        g class="lane" data-agent=(name) {
            text x="8" y=(base - 8.0) font-weight="600" { (name) }
            text x="8" y=(base + 4.0) fill="#555" { "min " (fmt(min)) " mg/day" }
            line class="minimum" x1=(scale.split().min(LEFT)) y1=(base - BAR_MAX / 2.0) x2=(RIGHT) y2=(base - BAR_MAX / 2.0) stroke="#555" stroke-dasharray="2,3" {}
            @for t in trials {
                @let label_x = scale.x(t.start);
                text class="verdict" data-trial=(t.id) x=(label_x) y=(top + 8.0) {
                    (t.id) " · " (verdict_label(t))
                    @if t.orders_only { " · orders only" }
                }
                @for s in &t.supplies {
                    @let (x, w) = scale.span(s.start, s.end);
                    @let mg = s.daily_dose_mg;
                    @let h = mg.map(&height).unwrap_or(BAR_MAX / 2.0).max(3.0);
                    @let below = mg.is_some_and(|d| d + 1e-9 < min);
                    @let fill = match (mg, below, s.origin) {
                        (None, _, _) => "none".to_string(),
                        (_, true, _) => "url(#below-min)".to_string(),
                        (_, false, SupplyOrigin::Order) => "url(#orders-only)".to_string(),
                        _ => BLUE.to_string(),
                    };
                    rect class="supply" data-trial=(t.id) data-dose=(mg.map(fmt).unwrap_or_default())
                        data-below-min=(below) data-origin=(format!("{:?}", s.origin).to_lowercase())
                        x=(x) y=(base - h) width=(w) height=(h) fill=(fill) stroke=(if below { ORANGE } else { BLUE }) stroke-width="1" {
                        title { (name) " " (mg.map(|d| format!("{} mg/day", fmt(d))).unwrap_or_else(|| "dose unknown".into())) ", " (s.start) " to " (s.end) }
                    }
                }
            }
            // Dose labels over all bars (a later bar would cover them).
            @for t in trials {
                @for (s, changed) in t.supplies.iter().zip(dose_changes(t)) {
                    @if changed {
                        text class="dose" x=(scale.x(s.start) + 3.0) y=(base - 3.0) fill="#000" stroke="#fff" stroke-width="3" paint-order="stroke" {
                            (s.daily_dose_mg.map(fmt).unwrap_or_else(|| "?".into())) " mg"
                        }
                    }
                }
            }
            @for t in trials.iter().filter(|t| !t.augmented_by.is_empty()) {
                @for aug in &t.augmented_by {
                    @let (x, w) = scale.span(aug.start, aug.end);
                    rect class="augmentation" data-trial=(t.id) x=(x) y=(base + 6.0) width=(w) height="8" fill=(GREEN) {}
                    text x=(x + 2.0) y=(base + 22.0) fill="#222" { "+ " (aug.agent) }
                }
            }
        }
    }
}

/// Which of a trial's supplies start a new dose (their bars get a dose label).
fn dose_changes(t: &TrialAssessment) -> Vec<bool> {
    let mut last = None;
    t.supplies
        .iter()
        .map(|s| {
            let changed = last != Some(s.daily_dose_mg);
            last = Some(s.daily_dose_mg);
            changed
        })
        .collect()
}

fn score_panel(
    scale: &Scale,
    a: &Assessment,
    series: &MeasureSeries,
    knowledge: &Knowledge,
    top: f64,
) -> Markup {
    let instrument = knowledge
        .instruments
        .iter()
        .find(|i| i.id == series.instrument);
    let max = instrument
        .map(|i| i.range[1])
        .unwrap_or_else(|| series.points.iter().map(|p| p.value).fold(1.0, f64::max));
    let y = |v: f64| top + SCORES - (v / max.max(1e-9)).clamp(0.0, 1.0) * SCORES;
    let points: Vec<String> = series
        .points
        .iter()
        .map(|p| format!("{:.1},{:.1}", scale.x(p.date), y(p.value)))
        .collect();
    let baseline = a
        .episode
        .severity
        .as_ref()
        .filter(|s| s.instrument == series.name)
        .map(|s| s.score)
        .or_else(|| series.points.first().map(|p| p.value));
    let remission = instrument.and_then(|i| i.remission_at_or_below);
    html! {
        g class="scores" data-instrument=(series.instrument) {
            rect x=(LEFT) y=(top) width=(RIGHT - LEFT) height=(SCORES) fill="none" stroke="#ccc" {}
            text x="8" y=(top + 14.0) font-weight="600" { (series.name) }
            text x="8" y=(top + 28.0) fill="#555" { "0–" (fmt(max)) ", lower is better" }
            @if let Some(b) = baseline {
                line class="threshold response" x1=(LEFT) x2=(RIGHT) y1=(y(b / 2.0)) y2=(y(b / 2.0)) stroke=(SKY) stroke-width="1.5" stroke-dasharray="6,3" {}
                text x=(RIGHT - 4.0) y=(y(b / 2.0) - 3.0) text-anchor="end" fill="#333" { "response: 50% of baseline " (fmt(b)) " = " (fmt(b / 2.0)) }
            }
            @if let Some(r) = remission {
                line class="threshold remission" x1=(LEFT) x2=(RIGHT) y1=(y(r)) y2=(y(r)) stroke=(GREEN) stroke-width="1.5" stroke-dasharray="1,3" {}
                text x=(RIGHT - 4.0) y=(y(r) - 3.0) text-anchor="end" fill="#333" { "remission ≤ " (fmt(r)) }
            }
            polyline class="score-line" points=(points.join(" ")) fill="none" stroke=(VERMILLION) stroke-width="2" {}
            @for p in &series.points {
                circle class="score" data-date=(p.date) data-value=(fmt(p.value)) cx=(scale.x(p.date)) cy=(y(p.value)) r="3" fill=(VERMILLION) {
                    title { (series.name) " " (fmt(p.value)) " on " (p.date) }
                }
            }
            @for t in a.trials.iter().filter(|t| t.response.instrument.as_deref() == Some(series.name.as_str())) {
                @for (kind, point) in [("baseline", &t.response.baseline), ("outcome", &t.response.outcome)] {
                    @if let Some(p) = point {
                        circle class=(format!("trial-point {kind}")) data-trial=(t.id) cx=(scale.x(p.date)) cy=(y(p.value)) r="7" fill="none" stroke="#000" stroke-width="1.5" {}
                        text x=(scale.x(p.date) + 8.0) y=(y(p.value) + (if kind == "baseline" { -8.0 } else { 14.0 })) fill="#000" {
                            (t.id) " " (if kind == "baseline" { "start" } else { "end" }) " " (fmt(p.value))
                        }
                    }
                }
            }
        }
    }
}

fn function_panel(
    scale: &Scale,
    series: &MeasureSeries,
    knowledge: &Knowledge,
    top: f64,
) -> Markup {
    let instrument = knowledge
        .instruments
        .iter()
        .find(|i| i.id == series.instrument);
    let max = instrument.map(|i| i.range[1]).unwrap_or(100.0);
    let y = |v: f64| top + FUNCTION - (v / max.max(1e-9)).clamp(0.0, 1.0) * FUNCTION;
    let points: Vec<String> = series
        .points
        .iter()
        .map(|p| format!("{:.1},{:.1}", scale.x(p.date), y(p.value)))
        .collect();
    let impaired = instrument.and_then(|i| i.impaired_at_or_above.or(i.impaired_below));
    let better = if instrument.is_some_and(|i| i.higher_is_better) {
        "higher is better"
    } else {
        "lower is better"
    };
    html! {
        g class="function" data-instrument=(series.instrument) {
            rect x=(LEFT) y=(top) width=(RIGHT - LEFT) height=(FUNCTION) fill="none" stroke="#ccc" {}
            text x="8" y=(top + 14.0) font-weight="600" { (series.name) }
            text x="8" y=(top + 28.0) fill="#555" { "0–" (fmt(max)) ", " (better) }
            @if let Some(limit) = impaired {
                line class="threshold impaired" x1=(LEFT) x2=(RIGHT) y1=(y(limit)) y2=(y(limit)) stroke="#555" stroke-dasharray="4,4" {}
                text x=(RIGHT - 4.0) y=(y(limit) - 3.0) text-anchor="end" fill="#333" { "impaired at " (fmt(limit)) }
            }
            polyline class="function-line" points=(points.join(" ")) fill="none" stroke=(BLUE) stroke-width="2" stroke-dasharray="5,2" {}
            @for p in &series.points {
                rect class="function-score" x=(scale.x(p.date) - 3.0) y=(y(p.value) - 3.0) width="6" height="6" fill=(BLUE) {
                    title { (series.name) " " (fmt(p.value)) " on " (p.date) }
                }
            }
        }
    }
}
