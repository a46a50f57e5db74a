//! One `trd-sentinel export` run, from the kick-off to the hand-over: what the command
//! line asks for, as a value, and the run that carries it out.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

use time::Date;

use super::download::{self, Downloaded};
use super::mark::MarkStore;
use super::{patients, ExportError};
use crate::batch;
use crate::config::{Config, TypeFilterMode};
use crate::ehr::Ehr;
use crate::engine::Engine;
use crate::fhir::bulk::{BulkClient, ExportLevel, ExportRequest};
use crate::queue::Rabbit;
use crate::report::run::{Emitter, RunOptions};
use crate::report::{Format, Table};

/// `--since`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Since {
    /// A FHIR instant given on the command line.
    Instant(String),
    /// The previous export's transactionTime.
    Last,
}

/// `--evaluate`: how to assess and print here.
pub struct LocalAssessment {
    pub engine: Engine,
    pub as_of: Date,
    pub format: Format,
    /// `--format html`'s directory.
    pub report_dir: Option<PathBuf>,
}

/// What `trd-sentinel export` was asked to do.
pub struct ExportCommand {
    pub level: ExportLevel,
    pub since: Option<Since>,
    /// `--out`: keep the export here; else `export.work_dir`, removed when done.
    pub out: Option<PathBuf>,
    pub restart: bool,
    pub evaluate: Option<LocalAssessment>,
    pub queue: bool,
    pub write: bool,
    pub memory_budget_bytes: u64,
    /// Progress bars on stderr.
    pub terminal: bool,
}

/// Runs the export and hands it on; assessments (`--evaluate`) go to `out`, what
/// happened to stderr (counts and ids, never record contents).
pub async fn run(
    command: ExportCommand,
    config: &Config,
    out: &mut dyn Write,
) -> Result<(), ExportError> {
    let ehr = Ehr::from_config(config)?;
    let rabbit = match (
        command.queue,
        config.amqp.resolved_url().map_err(ExportError::Mark)?,
    ) {
        (true, Some(url)) => {
            Some(Rabbit::connect_intake_publisher(url.expose(), (&config.amqp).into()).await?)
        }
        (true, None) => return Err(ExportError::NoBroker),
        (false, _) => None,
    };
    let marks = match &rabbit {
        Some(rabbit) => MarkStore::Broker(rabbit),
        None => MarkStore::File(&config.export.state_file),
    };
    let since = match &command.since {
        Some(Since::Last) => Some(marks.load().await?),
        Some(Since::Instant(instant)) => Some(instant.clone()),
        None => None,
    };
    let filtered = config.export.type_filter != TypeFilterMode::Never;
    let request = ExportRequest::for_engine(
        command.level.clone(),
        &ehr.engine.relevance,
        since.clone(),
        filtered,
    );
    let dir = command
        .out
        .clone()
        .unwrap_or_else(|| config.export.work_dir.clone());
    let bulk = BulkClient::new(&ehr.client, &config.export);

    let started = std::time::Instant::now();
    let downloaded = tokio::select! {
        // Without --out the directory is scratch: another unfinished export there
        // (a run killed with other arguments) is cancelled and replaced.
        result = download::run(&bulk, &config.export, &request, &dir, command.restart || command.out.is_none(), command.terminal) => result?,
        _ = tokio::signal::ctrl_c() => {
            eprintln!("cancelled: asking the EHR to delete the export job");
            download::cancel(&bulk, &dir).await?;
            return Err(ExportError::Cancelled);
        }
    };
    report_download(&downloaded, &bulk, started.elapsed().as_secs_f64(), &dir);

    // A delta names patients; each is then gathered whole (with deletions' patients).
    let touched = match since {
        Some(since) => {
            let mut touched =
                patients::touched_patients(&downloaded.output, &ehr.engine.relevance)?;
            let (deleted, unknown) = super::patients_of_deleted(&ehr, &downloaded.deleted).await;
            if unknown > 0 {
                eprintln!("warning: {unknown} deleted resources named no patient the EHR still knows; the reconciliation poll or the next full export catches them");
            }
            touched.extend(deleted);
            eprintln!("since {since}: {} patients changed", touched.len());
            Some(touched)
        }
        None => None,
    };
    let budget = command.memory_budget_bytes;
    let spill = patients::spill_dir(&dir);
    let records = || {
        patients::CompleteRecords::new(&downloaded.output, &ehr.engine.relevance, budget, &spill)
    };

    if let Some(local) = &command.evaluate {
        match &touched {
            None => {
                let paths = [downloaded.output.clone()];
                let options = RunOptions {
                    paths: &paths,
                    format: local.format,
                    out_dir: local.report_dir.as_deref(),
                    memory_budget_bytes: budget,
                    strict: false,
                    terminal: command.terminal,
                    spill_dir: spill.clone(),
                };
                crate::report::run::evaluate(&options, &local.engine, local.as_of, out)?;
            }
            Some(touched) => {
                evaluate_gathered(&ehr, config, local, touched, command.terminal, out).await?
            }
        }
    }
    if let Some(rabbit) = &rabbit {
        let published = match &touched {
            None => super::queue_complete_records(rabbit, records()?).await?,
            Some(touched) => super::queue_patients(rabbit, touched).await?,
        };
        eprintln!("queued {published} patients on {}", rabbit.settings.intake);
    }
    if command.write {
        let as_of = time::OffsetDateTime::now_utc().date();
        let written = match &touched {
            None => super::write_complete_records(&ehr, records()?, as_of).await?,
            Some(touched) => super::write_patients(&ehr, touched, as_of).await,
        };
        eprintln!(
            "wrote back {} patients: {} resources written, {} retired, {} failed",
            written.patients, written.written, written.retired, written.failed
        );
        if written.failed > 0 {
            return Err(ExportError::NotWritten {
                failed: written.failed,
                patients: written.patients,
            });
        }
    }

    // Handed on: the next `--since last` starts from this export's transactionTime.
    marks.save(&downloaded.manifest.transaction_time).await?;
    download::finish(&dir)?;
    if command.out.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if let Some(rabbit) = rabbit {
        rabbit.close().await;
    }
    Ok(())
}

fn report_download(
    downloaded: &Downloaded,
    bulk: &BulkClient<'_>,
    seconds: f64,
    dir: &std::path::Path,
) {
    eprintln!(
        "export: {} files ({} fetched, {} already there), {} bytes in {seconds:.1} s (downloads {:.1} s); transactionTime {}; {} EHR requests ({} polls)",
        downloaded.files.len(),
        downloaded.fetched,
        downloaded.reused,
        downloaded.bytes(),
        downloaded.download_seconds,
        downloaded.manifest.transaction_time,
        bulk.stats.requests(),
        bulk.stats.polls.load(Ordering::Relaxed),
    );
    if !downloaded.errors.is_empty() {
        let codes: Vec<String> = downloaded
            .errors
            .iter()
            .map(|(code, n)| format!("{code} x{n}"))
            .collect();
        eprintln!(
            "warning: the EHR reported errors it could not export (OperationOutcome issues: {}); see {}",
            codes.join(", "),
            dir.join("error").display()
        );
    }
}

/// `--since ... --evaluate`: each changed patient gathered whole from the EHR, assessed
/// here and printed as `evaluate` prints.
async fn evaluate_gathered(
    ehr: &Ehr,
    config: &Config,
    local: &LocalAssessment,
    touched: &BTreeSet<String>,
    terminal: bool,
    out: &mut dyn Write,
) -> Result<(), ExportError> {
    let table = Table::for_patients(touched.iter().map(String::as_str));
    let mut emitter = Emitter::new(
        local.format,
        local.report_dir.as_deref(),
        table,
        touched.len(),
        terminal,
    )?;
    emitter.start(out)?;
    for patient in touched {
        let gathered = crate::fhir::gather::gather(
            &ehr.client,
            patient,
            &local.engine.relevance,
            config.fhir.look_back_months,
            local.as_of,
            None,
        )
        .await;
        match gathered {
            Ok(gathered) => emitter.emit(
                batch::assess_guarded(&gathered.record, &local.engine, local.as_of),
                &local.engine,
                out,
            )?,
            Err(e) => emitter.not_assessed(&format!("{patient}: could not be gathered: {e}")),
        }
    }
    let (failed, patients) = emitter.finish(out)?;
    if failed > 0 {
        return Err(crate::report::run::RunError::PatientsFailed { failed, patients }.into());
    }
    Ok(())
}
