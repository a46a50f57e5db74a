//! `evaluate`'s formats: a table a person reads, JSON lines a program reads, and the
//! population's HTML pages; the FHIR formats (the write-back transaction, the summary
//! document) come from [`crate::outputs`], as every channel's do.

pub mod run;

use std::fmt::Write as _;

use crate::clinical::adequacy::Adequacy;
use crate::clinical::finding::{codes, Severity};
use crate::clinical::numbers::fmt;
use crate::clinical::response::ResponseClass;
use crate::clinical::Assessment;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Jsonl,
    /// One FHIR transaction Bundle per line, for every patient with something to
    /// report: exactly what write-back would send to an EHR holding none of the
    /// service's resources yet (the Flag, the assessment Observation, a DetectedIssue
    /// per finding, a ServiceRequest per suggestion, the Provenance; profiled, with
    /// the default identifier system).
    Fhir,
    /// One FHIR document Bundle (the treatment summary) per line, for every patient
    /// with something to report.
    Document,
    /// A page per patient and the population's `index.html`, into `--out DIR`.
    Html,
    /// One individual FHIR MeasureReport per patient and `--measure`, one per line;
    /// with `--out DIR`, each measure's summary and subject-list reports too.
    Measurereport,
}

/// `evaluate --format html`: each patient's page written as it is assessed, the
/// population index at the end, a progress bar on a terminal.
pub struct HtmlWriter {
    dir: std::path::PathBuf,
    index: crate::page::index::PopulationIndex,
    bar: indicatif::ProgressBar,
}

impl HtmlWriter {
    pub fn new(dir: &std::path::Path, patients: usize, terminal: bool) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let bar = if terminal {
            let bar = indicatif::ProgressBar::new(patients as u64);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "writing pages {bar:30} {pos}/{len} patients ({per_sec}, eta {eta})",
            ) {
                bar.set_style(style);
            }
            bar
        } else {
            indicatif::ProgressBar::hidden()
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            index: Default::default(),
            bar,
        })
    }

    pub fn write(
        &mut self,
        assessment: &Assessment,
        knowledge: &crate::clinical::Knowledge,
    ) -> std::io::Result<()> {
        let file = crate::page::index::file_name(&assessment.patient);
        std::fs::write(
            self.dir.join(&file),
            crate::page::patient::page(assessment, knowledge),
        )?;
        self.index.add(assessment, &file);
        self.bar.inc(1);
        Ok(())
    }

    /// Writes `index.html`; returns its path.
    pub fn finish(self) -> std::io::Result<std::path::PathBuf> {
        self.bar.finish_and_clear();
        let path = self.dir.join("index.html");
        std::fs::write(&path, self.index.render())?;
        Ok(path)
    }
}

/// The table `evaluate` prints: one line per patient, the columns aligned for the
/// longest patient reference the table will hold (rows are printed as patients are
/// assessed, so the width is chosen before the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    patient_width: usize,
}

/// `Patient/` and a UUID, as Synthea and most EHRs write ids: the width when the
/// patients are not known in advance (a Bulk export grouped on disk).
const UUID_REFERENCE: usize = 44;

impl Default for Table {
    fn default() -> Self {
        Self {
            patient_width: UUID_REFERENCE,
        }
    }
}

impl Table {
    /// A table wide enough for each of `patients`.
    pub fn for_patients<'a>(patients: impl IntoIterator<Item = &'a str>) -> Self {
        let longest = patients.into_iter().map(|p| p.chars().count()).max();
        Self {
            patient_width: longest.unwrap_or(0).max("PATIENT".len()),
        }
    }

    pub fn header(&self) -> String {
        table_header(self.patient_width)
    }

    pub fn row(&self, assessment: &Assessment) -> String {
        table_row(assessment, self.patient_width)
    }
}

fn table_header(width: usize) -> String {
    format!(
        "{:<width$} {:<27} {:>6} {:>6} {:>3} {:>9} {:>5}  {}",
        "PATIENT",
        "STATUS",
        "SAFETY",
        "FAILED",
        "TR",
        "MSM",
        "MGH-S",
        "TRIALS (drug dose weeks adequacy response; * ongoing) | SAFETY: ... | NOT READ: ..."
    )
}

/// One line per patient: status, stages, then each trial in brief.
fn table_row(assessment: &Assessment, width: usize) -> String {
    let mut trials = String::new();
    for trial in &assessment.trials {
        let dose = trial
            .daily_dose_mg
            .map(|d| format!("{}mg", fmt(d)))
            .unwrap_or_else(|| "?mg".into());
        let response = match trial.response.class {
            ResponseClass::NonResponse => "non-response",
            ResponseClass::Partial => "partial",
            ResponseClass::Response => "response",
            ResponseClass::Remission => "remission",
            ResponseClass::Unknown => "response?",
        };
        let adequacy = match trial.adequacy {
            Adequacy::Adequate => "adequate",
            Adequacy::Inadequate => "INADEQUATE",
            Adequacy::Indeterminate => "indeterminate",
        };
        let ongoing = if trial.ongoing { "*" } else { "" };
        let weeks = fmt(trial.verdict.weeks_total.floor());
        let _ = write!(
            trials,
            "{}{ongoing} {dose} {weeks}w {adequacy} {response}; ",
            trial.ingredient
        );
    }
    let trials = trials.trim_end_matches("; ");
    let msm = assessment
        .msm
        .as_ref()
        .map(|m| format!("{} {}", m.score, m.band))
        .unwrap_or_else(|| "-".into());
    // Safety first: how many safety findings (and, at the end of the line, which); and
    // what could not be read, which may have changed the status.
    let safety: Vec<&str> = assessment
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Safety)
        .map(|f| f.code.as_str())
        .collect();
    let not_read = assessment
        .findings
        .iter()
        .filter(|f| NOT_READ.contains(&f.code.as_str()))
        .count();
    let mut row = format!(
        "{:<width$} {:<27} {:>6} {:>6} {:>3} {:>9} {:>5}  {}",
        assessment.patient,
        assessment.trd_status.code(),
        if safety.is_empty() {
            "-".to_string()
        } else {
            format!("!{}", safety.len())
        },
        assessment.failed_adequate_trials,
        assessment.thase_rush_stage.roman,
        msm,
        fmt(assessment.mgh_s.score),
        if trials.is_empty() { "-" } else { trials }
    );
    if !safety.is_empty() {
        let _ = write!(row, " | SAFETY: {}", safety.join(", "));
    }
    if not_read > 0 {
        let _ = write!(
            row,
            " | NOT READ: {not_read} resource(s) unreadable, not used or unidentified (see jsonl findings)"
        );
    }
    row
}

/// Findings saying a resource was not read: the status may rest on less than the
/// record holds.
const NOT_READ: &[&str] = &[
    codes::RESOURCE_UNREADABLE,
    codes::RESOURCE_NOT_USED,
    codes::MEDICATION_UNIDENTIFIED,
    codes::IMPLAUSIBLE_VALUE,
];

pub fn jsonl_row(assessment: &Assessment) -> Result<String, serde_json::Error> {
    serde_json::to_string(assessment)
}
