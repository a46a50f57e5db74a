//! What a quality team opens in the population report: each quality measure's rate
//! (numerator / denominator after exclusions, by stratum), every count a link to
//! the list of its patients, and the worklist: one row per patient who needs
//! something done, most urgent first (safety signals, treatment-resistant
//! depression to refer, remission missed at twelve months, pseudo-resistance worth
//! acting on, a current trial that is not adequate), each with the reason in words
//! and a link to the patient's page.

use maud::{html, Markup};

use super::labels;
use crate::clinical::adequacy::Adequacy;
use crate::clinical::assessment::Assessment;
use crate::clinical::finding::Severity;
use crate::clinical::measures::{MeasureId, MeasureResult, Population};
use crate::clinical::numbers::percent;
use crate::clinical::status::TrdStatus;
use crate::outputs::measure_report::{MeasureSummary, Tally};

/// Why a patient is on the worklist, in the order they are acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Safety,
    ReferTrd,
    MissedRemission,
    PseudoResistance,
    InadequateTrial,
}

impl Action {
    fn heading(self) -> &'static str {
        match self {
            Self::Safety => "Safety signal",
            Self::ReferTrd => "Treatment-resistant depression: refer",
            Self::MissedRemission => "Remission missed at twelve months",
            Self::PseudoResistance => "Pseudo-resistance to act on",
            Self::InadequateTrial => "Current trial not adequate",
        }
    }
}

struct WorkItem {
    action: Action,
    patient: String,
    reason: String,
    /// The patient's other needs, after the most urgent.
    also: Vec<Action>,
    file: String,
}

/// The measures' tallies and the worklist, built one assessment at a time.
#[derive(Default)]
pub struct QualityReport {
    measures: Vec<MeasureSummary>,
    work: Vec<WorkItem>,
    /// The page of each patient (for the population lists' links).
    files: std::collections::HashMap<String, String>,
    /// Why each excluded patient was excluded, by measure.
    exclusions: std::collections::HashMap<(MeasureId, String), String>,
}

impl QualityReport {
    pub fn add(&mut self, a: &Assessment, file: &str) {
        self.files.insert(a.patient.clone(), file.to_string());
        for result in &a.quality_measures {
            match self
                .measures
                .iter_mut()
                .find(|m| m.measure == result.measure)
            {
                Some(summary) => summary.add(result),
                None => {
                    let mut summary = MeasureSummary::new(result.measure, result.period);
                    summary.add(result);
                    self.measures.push(summary);
                }
            }
        }
        let mut needs = needs(a);
        if !needs.is_empty() {
            let (action, reason) = needs.remove(0);
            self.work.push(WorkItem {
                action,
                patient: a.patient.clone(),
                reason,
                also: needs.into_iter().map(|(action, _)| action).collect(),
                file: file.to_string(),
            });
        }
        for result in &a.quality_measures {
            if result.first().is_some_and(|m| m.denominator_exclusion) {
                let why: Vec<&str> = result
                    .reasons
                    .iter()
                    .filter_map(|r| r.strip_prefix("Excluded: "))
                    .collect();
                self.exclusions
                    .insert((result.measure, a.patient.clone()), why.join("; "));
            }
        }
    }

    /// Each measure's rates and member lists.
    pub fn render_measures(&self) -> Markup {
        html! { @for summary in &self.measures { (self.measure(summary)) } }
    }

    /// The worklist.
    pub fn render_worklist(&self) -> Markup {
        let mut work: Vec<&WorkItem> = self.work.iter().collect();
        work.sort_by(|a, b| {
            a.action
                .cmp(&b.action)
                .then_with(|| a.patient.cmp(&b.patient))
        });
        html! {
            h2 id="worklist" { "Worklist" }
            @if work.is_empty() {
                p { "Nobody in this population needs action." }
            } @else {
                p.meta { "Most urgent first: safety signals, treatment-resistant depression to refer, remission missed at twelve months, pseudo-resistance worth acting on, a current trial that is not adequate." }
                table.worklist {
                    thead { tr { th style="width:13rem" { "Needs first" } th { "Patient" } th { "Why" } th { "Also" } } }
                    tbody { @for item in work {
                        tr class=(if item.action == Action::Safety { "safety" } else { "" }) {
                            td { (item.action.heading()) }
                            td { a href=(item.file) { (item.patient) } }
                            td { (item.reason) }
                            td { (item.also.iter().map(|a| a.heading()).collect::<Vec<_>>().join("; ")) }
                        }
                    } }
                }
            }
        }
    }

    fn measure(&self, summary: &MeasureSummary) -> Markup {
        let key = summary.measure.key();
        let labels = summary.measure.stratifiers();
        let mut rows: Vec<(String, String, &Tally)> = summary
            .groups
            .iter()
            .map(|(id, tally)| {
                let meaning = summary
                    .measure
                    .groups()
                    .iter()
                    .find(|(g, _)| g == id)
                    .map_or(*id, |(_, m)| m);
                (format!("{key}-{id}"), meaning.to_string(), tally)
            })
            .collect();
        rows.extend(summary.strata.iter().map(|(id, tally)| {
            let label = labels.iter().find(|(s, _)| s == id).map_or(*id, |(_, l)| l);
            (
                format!("{key}-{}", id.replace(' ', "-")),
                label.to_string(),
                tally,
            )
        }));
        html! {
            h2 id=(key) { (summary.measure.title()) " (" (summary.period.year) ")" }
            table.measure {
                thead { tr {
                    th { "Group" } th { "Rate" }
                    th { "Numerator" } th { "Eligible (denominator after exclusions)" } th { "Denominator" } th { "Excluded" } th { "Initial population" }
                } }
                tbody { @for (anchor, label, tally) in &rows {
                    tr {
                        th { (label) }
                        td { strong { (rate(tally)) } }
                        td { (count_link(anchor, Population::Numerator, tally)) }
                        td { (tally.count(Population::Denominator).saturating_sub(tally.count(Population::DenominatorExclusion))) }
                        @for population in [Population::Denominator, Population::DenominatorExclusion, Population::InitialPopulation] {
                            td { (count_link(anchor, population, tally)) }
                        }
                    }
                } }
            }
            p.meta { (summary.measure.scope(summary.period.year)) }
            p.meta { "Rate = numerator / (denominator - excluded). " (summary.measure.canonical()) " version " (summary.measure.version()) "." }
            @for (anchor, label, tally) in &rows {
                @for population in [Population::Numerator, Population::Denominator, Population::DenominatorExclusion, Population::InitialPopulation] {
                    @let members = tally.members(population);
                    @if !members.is_empty() {
                        details id=(format!("{anchor}-{}", population.code())) {
                            summary { (label) ": " (population.display()) " (" (members.len()) ")" }
                            ul { @for patient in members {
                                li {
                                    a href=(self.files.get(patient).map_or("#", String::as_str)) { (patient) }
                                    @if population == Population::DenominatorExclusion {
                                        @if let Some(why) = self.exclusions.get(&(summary.measure, patient.clone())) {
                                            " · " (why)
                                        }
                                    }
                                }
                            } }
                        }
                    }
                }
            }
        }
    }
}

fn rate(tally: &Tally) -> String {
    let eligible = tally
        .count(Population::Denominator)
        .saturating_sub(tally.count(Population::DenominatorExclusion));
    match tally.score() {
        Some(score) => format!(
            "{} ({} / {eligible})",
            percent(score),
            tally.count(Population::Numerator)
        ),
        None => "– (no one eligible)".to_string(),
    }
}

fn count_link(anchor: &str, population: Population, tally: &Tally) -> Markup {
    let count = tally.count(population);
    html! {
        @if count == 0 { "0" } @else {
            a href=(format!("#{anchor}-{}", population.code())) { (count) }
        }
    }
}

/// Every reason to act on the patient, most urgent first, each in words.
fn needs(a: &Assessment) -> Vec<(Action, String)> {
    let mut out = Vec::new();
    let safety: Vec<&str> = a
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Safety)
        .map(|f| f.text.as_str())
        .collect();
    if !safety.is_empty() {
        out.push((Action::Safety, safety.join("; ")));
    }
    if a.trd_status == TrdStatus::Trd {
        out.push((
            Action::ReferTrd,
            format!("refer to psychiatry: {}", a.status.explanation),
        ));
    }
    if let Some(reason) = a.quality_measures.iter().find_map(missed_remission) {
        out.push((Action::MissedRemission, reason));
    }
    let pseudo: Vec<&str> = a
        .findings
        .iter()
        .filter(|f| f.is_clinical() && matches!(f.severity, Severity::High | Severity::Warning))
        .map(|f| f.text.as_str())
        .collect();
    if !pseudo.is_empty() {
        out.push((Action::PseudoResistance, pseudo.join("; ")));
    }
    let inadequate: Vec<String> = a
        .trials
        .iter()
        .filter(|t| t.ongoing && t.adequacy != Adequacy::Adequate)
        .map(|t| format!("{}: {}", t.ingredient, labels::verdict_label(t)))
        .collect();
    if !inadequate.is_empty() {
        out.push((Action::InadequateTrial, inadequate.join("; ")));
    }
    out
}

/// CMS159's denominator, not excluded, not in remission: the reasons it gave.
fn missed_remission(result: &MeasureResult) -> Option<String> {
    if result.measure != MeasureId::Cms159 || result.missed().is_empty() {
        return None;
    }
    let last = result.reasons.last().map_or("", String::as_str);
    Some(format!("CMS159 denominator, not in remission: {last}"))
}
