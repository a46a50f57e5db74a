//! `evaluate` outputs: a table a person reads, JSON lines a program reads, FHIR, and
//! the treatment summary as FHIR documents.

use std::fmt::Write as _;

use serde_json::json;

use crate::clinical::adequacy::Adequacy;
use crate::clinical::dose::fmt;
use crate::clinical::response::ResponseClass;
use crate::clinical::Assessment;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Jsonl,
    Fhir,
    /// One FHIR document Bundle (the treatment summary) per line, for every patient
    /// with something to report.
    Document,
    /// A page per patient and the population's `index.html`, into `--out DIR`.
    Html,
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

/// The identifier system `evaluate` names its documents with (the service's default).
pub const DOCUMENT_IDENTIFIER_SYSTEM: &str = "https://fhir.trd-sentinel.org/id";

/// The treatment summary as a FHIR document (a `document` Bundle), or nothing for a
/// patient with nothing to report.
pub fn document(assessment: &Assessment) -> Option<serde_json::Value> {
    if assessment.has_nothing_to_report() {
        return None;
    }
    let summary = crate::clinical::summary::summarise(assessment);
    Some(crate::fhir::document::document_bundle(
        &summary,
        assessment,
        DOCUMENT_IDENTIFIER_SYSTEM,
    ))
}

pub fn table_header() -> String {
    format!(
        "{:<36} {:<27} {:>6} {:>3} {:>9} {:>5}  {}",
        "PATIENT",
        "STATUS",
        "FAILED",
        "TR",
        "MSM",
        "MGH-S",
        "TRIALS (drug dose weeks adequacy response; * ongoing)"
    )
}

/// One line per patient: status, stages, then each trial in brief.
pub fn table_row(assessment: &Assessment) -> String {
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
    format!(
        "{:<36} {:<27} {:>6} {:>3} {:>9} {:>5}  {}",
        assessment.patient,
        assessment.trd_status.code(),
        assessment.failed_adequate_trials,
        assessment.thase_rush_stage.roman,
        msm,
        fmt(assessment.mgh_s.score),
        if trials.is_empty() { "-" } else { trials }
    )
}

pub fn jsonl_row(assessment: &Assessment) -> Result<String, serde_json::Error> {
    serde_json::to_string(assessment)
}

/// The assessment as a FHIR Observation (one per patient) carrying the trial
/// verdicts as components; the write-back resources come with the EHR adapter.
pub fn fhir_observation(assessment: &Assessment) -> serde_json::Value {
    let components: Vec<_> = assessment
        .trials
        .iter()
        .map(|t| {
            json!({
                "code": { "coding": [{ "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": t.rxnorm, "display": t.ingredient }] },
                "valueCodeableConcept": { "coding": [{ "system": "https://fhir.trd-sentinel.org/CodeSystem/trd-trial-adequacy", "code": serde_json::to_value(t.adequacy).unwrap_or_default() }],
                    "text": format!("{} {} to {}: {}", t.ingredient, t.start, t.end, t.verdict.reasons.iter().map(|r| r.text.as_str()).collect::<Vec<_>>().join("; ")) }
            })
        })
        .collect();
    json!({
        "resourceType": "Observation",
        "status": "final",
        "code": { "coding": [{ "system": crate::fhir::writeback::ASSESSMENT_SYSTEM, "code": "trd-assessment" }] },
        "subject": { "reference": assessment.patient },
        "effectiveDateTime": assessment.as_of.to_string(),
        "note": [{ "text": format!("policy {}", assessment.policy) }],
        "component": components,
    })
}

pub fn fhir_bundle(entries: Vec<serde_json::Value>) -> serde_json::Value {
    json!({
        "resourceType": "Bundle",
        "type": "collection",
        "entry": entries.into_iter().map(|r| json!({ "resource": r })).collect::<Vec<_>>(),
    })
}
