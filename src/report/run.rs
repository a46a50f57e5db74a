//! One `evaluate` run: files in, every patient assessed, one format out. `evaluate`
//! and `export --evaluate` both run this, so an export assessed locally prints
//! exactly what `evaluate` prints for the same files.

use std::io::Write;
use std::path::{Path, PathBuf};

use time::Date;

use super::{jsonl_row, Format, HtmlWriter, Table};
use crate::batch::{self, bulk::Shards, BatchError, Inputs, Progress};
use crate::clinical::{Assessment, PatientRecord};
use crate::config::WritebackSettings;
use crate::engine::Engine;
use crate::fhir::read::{is_ndjson, ResourcePool};
use crate::outputs::{self, measure_report, measure_report::MeasureSummary};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Batch(#[from] BatchError),
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),
    #[error("{failed} of {patients} patients could not be assessed (the others were printed)")]
    PatientsFailed { failed: usize, patients: usize },
    #[error("{unreadable} of {files} files could not be read (named above); the rest was assessed, and a patient with data in an unreadable file may be incomplete")]
    FilesUnreadable { unreadable: usize, files: usize },
}

/// What to read and how to write it.
pub struct RunOptions<'a> {
    pub paths: &'a [PathBuf],
    pub format: Format,
    /// `--out`: `--format html`'s pages, `--format measurereport`'s population
    /// reports.
    pub out_dir: Option<&'a Path>,
    /// Bulk NDJSON inputs larger than this are grouped by patient on disk.
    pub memory_budget_bytes: u64,
    /// Stop at the first unreadable file.
    pub strict: bool,
    /// Progress bars (a terminal on stderr).
    pub terminal: bool,
    /// Where a Bulk export past the memory budget is spilled.
    pub spill_dir: PathBuf,
}

/// The patients of a run: in memory, or in shards on disk.
enum Grouped {
    Records(Vec<PatientRecord>),
    Shards(Shards),
}

/// Reads every input, assesses every patient and writes each in `format` to `out`;
/// problems go to stderr as they happen (a patient that cannot be assessed, an
/// unreadable file) and fail the run at the end.
pub fn evaluate(
    options: &RunOptions<'_>,
    engine: &Engine,
    as_of: Date,
    out: &mut dyn Write,
) -> Result<usize, RunError> {
    let inputs = Inputs::collect(options.paths)?;
    let progress = Progress::new(&inputs, options.terminal);
    let codes = engine.relevance.clone();
    let budget = options.memory_budget_bytes.max(1);
    let sharded = inputs.files.iter().all(|f| is_ndjson(&f.path)) && inputs.total_bytes() > budget;

    // Read (or partition) everything first. A file that cannot be read is reported and
    // fails the run at the end (strict: at once, before anything is printed).
    let mut unreadable = 0usize;
    let grouped = if sharded {
        let count = batch::bulk::shard_count(inputs.total_bytes(), budget);
        let shards = Shards::partition(&inputs, &codes, count, &options.spill_dir, &progress);
        progress.finish();
        Grouped::Shards(shards?)
    } else {
        let mut pool = ResourcePool::new(codes);
        let read = batch::read_inputs(&mut pool, &inputs, &progress, options.strict);
        progress.finish();
        unreadable = read?.unreadable.len();
        for problem in &pool.unattributed {
            eprintln!("warning: {problem}");
        }
        Grouped::Records(pool.records())
    };

    let table = match &grouped {
        Grouped::Records(records) => {
            Table::for_patients(records.iter().map(|r| r.patient.as_str()))
        }
        Grouped::Shards(_) => Table::default(),
    };
    let mut emitter = Emitter::new(
        options.format,
        options.out_dir,
        table,
        inputs.files.len(),
        options.terminal,
    )?;
    emitter.start(out)?;
    let mut emit = |result: Result<Assessment, batch::Failed>| emitter.emit(result, engine, out);
    match grouped {
        Grouped::Shards(shards) => {
            for n in 0..shards.len() {
                let pool = shards.pool(n)?;
                for problem in &pool.unattributed {
                    eprintln!("warning: {problem}");
                }
                let records = pool.records();
                drop(pool);
                batch::assess_all(&records, engine, as_of, &mut emit)?;
            }
        }
        Grouped::Records(records) => batch::assess_all(&records, engine, as_of, &mut emit)?,
    }
    let (failed, patients) = emitter.finish(out)?;
    if failed > 0 {
        return Err(RunError::PatientsFailed { failed, patients });
    }
    if unreadable > 0 {
        return Err(RunError::FilesUnreadable {
            unreadable,
            files: inputs.files.len(),
        });
    }
    Ok(patients)
}

/// Writes assessments one by one in a format: the table's header first, the HTML
/// index last; a patient that could not be assessed is named on stderr and counted.
pub struct Emitter {
    format: Format,
    table: Table,
    html: Option<HtmlWriter>,
    /// `--format measurereport`: each measure's population so far, and where its
    /// summary goes.
    measures: Vec<MeasureSummary>,
    out_dir: Option<PathBuf>,
    /// `--format fhir` writes what write-back would, with its default settings.
    writeback: WritebackSettings,
    failed: usize,
    patients: usize,
}

impl Emitter {
    pub fn new(
        format: Format,
        out_dir: Option<&Path>,
        table: Table,
        expected: usize,
        terminal: bool,
    ) -> std::io::Result<Self> {
        let html = match (format, out_dir) {
            (Format::Html, Some(dir)) => Some(HtmlWriter::new(dir, expected, terminal)?),
            _ => None,
        };
        Ok(Self {
            format,
            table,
            html,
            measures: Vec::new(),
            out_dir: out_dir.map(Path::to_path_buf),
            writeback: WritebackSettings::default(),
            failed: 0,
            patients: 0,
        })
    }

    pub fn start(&mut self, out: &mut dyn Write) -> std::io::Result<()> {
        if self.format == Format::Table {
            writeln!(out, "{}", self.table.header())?;
        }
        Ok(())
    }

    pub fn emit(
        &mut self,
        result: Result<Assessment, batch::Failed>,
        engine: &Engine,
        out: &mut dyn Write,
    ) -> std::io::Result<()> {
        self.patients += 1;
        let assessment = match result {
            Ok(assessment) => assessment,
            Err(failure) => {
                eprintln!("error: {failure}");
                self.failed += 1;
                return Ok(());
            }
        };
        match self.format {
            Format::Table => writeln!(out, "{}", self.table.row(&assessment))?,
            Format::Jsonl => writeln!(out, "{}", jsonl_row(&assessment)?)?,
            Format::Fhir => {
                if let Some(transaction) =
                    outputs::writeback_transaction(&assessment, &self.writeback)
                {
                    writeln!(out, "{transaction}")?;
                }
            }
            Format::Document => {
                if let Some(document) = outputs::summary_document(&assessment) {
                    writeln!(out, "{document}")?;
                }
            }
            Format::Html => {
                if let Some(html) = self.html.as_mut() {
                    html.write(&assessment, &engine.knowledge)?;
                }
            }
            Format::Measurereport => {
                for result in &assessment.quality_measures {
                    writeln!(out, "{}", measure_report::individual(result))?;
                    let at = match self
                        .measures
                        .iter()
                        .position(|m| m.measure == result.measure)
                    {
                        Some(at) => at,
                        None => {
                            self.measures
                                .push(MeasureSummary::new(result.measure, result.period));
                            self.measures.len() - 1
                        }
                    };
                    if let Some(summary) = self.measures.get_mut(at) {
                        summary.add(result);
                    }
                }
            }
        }
        Ok(())
    }

    /// A patient that could not even be read (named on stderr, counted as failed).
    pub fn not_assessed(&mut self, message: &str) {
        eprintln!("error: {message}");
        self.patients += 1;
        self.failed += 1;
    }

    /// Writes the HTML index; returns (failed, patients).
    pub fn finish(self, out: &mut dyn Write) -> std::io::Result<(usize, usize)> {
        if let Some(html) = self.html {
            let index = html.finish()?;
            eprintln!("wrote {}", index.display());
        }
        if let Some(dir) = self
            .out_dir
            .as_deref()
            .filter(|_| self.format == Format::Measurereport)
        {
            std::fs::create_dir_all(dir)?;
            for summary in &self.measures {
                for (kind, report) in [
                    ("summary", summary.summary()),
                    ("subject-list", summary.subject_list()),
                ] {
                    let path = dir.join(format!(
                        "{}-{}-{kind}.json",
                        summary.measure, summary.period.year
                    ));
                    std::fs::write(&path, serde_json::to_vec_pretty(&report)?)?;
                    eprintln!("wrote {}", path.display());
                }
            }
        }
        out.flush()?;
        Ok((self.failed, self.patients))
    }
}
