//! The `trd-sentinel` command line: a thin shell over the library.

use std::io::{self, BufWriter, IsTerminal};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use time::Date;

use trd_sentinel::batch;
use trd_sentinel::clinical::measures::MeasureId;
use trd_sentinel::clinical::policy::PolicyBook;
use trd_sentinel::clinical::{self, AssessOptions, Knowledge, Policy, QualityMeasures};
use trd_sentinel::config::Config;
use trd_sentinel::ehr::Ehr;
use trd_sentinel::engine::Engine;
use trd_sentinel::report::run::RunOptions;
use trd_sentinel::report::{self, Format};

#[derive(Parser)]
#[command(
    name = "trd-sentinel",
    version,
    about = "Antidepressant trial adequacy and treatment-resistant depression from FHIR data"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Assess every patient in FHIR Bundles, resources or Bulk NDJSON files/directories.
    Evaluate(EvaluateArgs),
    /// Gather one patient's record from the EHR, assess it and write the result back.
    Assess(AssessArgs),
    /// Gather one patient's record from the EHR and print the treatment summary for
    /// primary care and referral (nothing is written).
    Summary(SummaryArgs),
    /// Export the EHR's data with FHIR Bulk Data ($export) and assess it here (--evaluate),
    /// write back here (--write), queue each patient for the service's replicas
    /// (--queue), or keep the NDJSON (--out).
    Export(ExportArgs),
    /// Run the service: notification endpoint, intake queue, pipeline, health, metrics.
    Serve {
        #[arg(long, env = "TRD_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Manage the Subscriptions the service needs on the EHR.
    Subscriptions {
        #[command(subcommand)]
        action: SubscriptionAction,
        #[arg(long, env = "TRD_CONFIG", global = true)]
        config: Option<PathBuf>,
    },
    /// Load and validate the configuration `serve` would use (file + TRD_* environment), then exit.
    CheckConfig {
        #[arg(long, env = "TRD_CONFIG")]
        config: Option<PathBuf>,
        /// Also print the effective settings as JSON (secrets as "***"): what the
        /// file and the environment add up to, e.g. to check a Helm chart's rendering.
        #[arg(long)]
        print: bool,
    },
    /// List the policy presets and their thresholds.
    Policies,
}

#[derive(Subcommand)]
enum SubscriptionAction {
    /// Create or update the Subscriptions (idempotent).
    Ensure,
    /// List the service's Subscriptions on the EHR and their status.
    Status,
}

#[derive(clap::Args)]
struct AssessArgs {
    /// The patient, e.g. Patient/123.
    #[arg(long)]
    patient: String,
    /// Assess as of this date (default: today, UTC).
    #[arg(long, value_parser = parse_date)]
    as_of: Option<Date>,
    /// Configuration file (TOML); TRD_* environment variables override it.
    #[arg(long, env = "TRD_CONFIG")]
    config: Option<PathBuf>,
    /// Print the transaction instead of sending it.
    #[arg(long)]
    dry_run: bool,
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("level").args(["system", "patients", "group"])))]
#[command(group(clap::ArgGroup::new("then").args(["evaluate", "queue", "write"])))]
struct ExportArgs {
    /// Every patient's data on the EHR (`$export`; the default).
    #[arg(long)]
    system: bool,
    /// Patient-level export (`Patient/$export`).
    #[arg(long)]
    patients: bool,
    /// The members of one Group (`Group/ID/$export`).
    #[arg(long, value_name = "ID")]
    group: Option<String>,
    /// Only what changed since this FHIR instant, or `last` (the previous run's
    /// transactionTime). Changed patients are then gathered whole from the EHR.
    #[arg(long, value_name = "INSTANT|last")]
    since: Option<String>,
    /// Keep the export here (`DIR/output/*.ndjson` for `evaluate`; `DIR/job.json`
    /// lets a killed run continue). Default: export.work_dir, removed when done.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Cancel an unfinished export in the directory and start this one.
    #[arg(long)]
    restart: bool,
    /// Assess here and print as `evaluate` does.
    #[arg(long)]
    evaluate: bool,
    /// Publish each patient to the intake queue for the service's replicas (a complete
    /// record; with --since, the patient to gather).
    #[arg(long)]
    queue: bool,
    /// Assess here and write back to the EHR (idempotent, as the service does).
    #[arg(long)]
    write: bool,
    #[command(flatten)]
    engine: LocalEngineArgs,
    /// `--evaluate --format html`'s directory.
    #[arg(long)]
    report_dir: Option<PathBuf>,
    /// Records are regrouped by patient on disk in shards of about this many MB of
    /// NDJSON (an export holds mostly what the engine reads, about ten times its
    /// size in memory: the default keeps a shard near 200 MB).
    #[arg(long, default_value_t = 16.0)]
    memory_budget_mb: f64,
    /// Configuration file (TOML); TRD_* environment variables override it.
    #[arg(long, env = "TRD_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(clap::Args)]
struct SummaryArgs {
    /// The patient, e.g. Patient/123.
    #[arg(long)]
    patient: String,
    /// Assess as of this date (default: today, UTC).
    #[arg(long, value_parser = parse_date)]
    as_of: Option<Date>,
    /// Configuration file (TOML); TRD_* environment variables override it.
    #[arg(long, env = "TRD_CONFIG")]
    config: Option<PathBuf>,
    /// `text` (what a text-only clinical note holds) or `document` (the FHIR
    /// document Bundle with its Composition).
    #[arg(long, value_enum, default_value = "text")]
    format: SummaryFormat,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SummaryFormat {
    Text,
    Document,
}

#[derive(clap::Args)]
struct EvaluateArgs {
    /// Files or directories (*.json, *.ndjson).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    engine: LocalEngineArgs,
    /// The directory `--format html` writes into (a page per patient, index.html);
    /// with `--format measurereport`, where each measure's summary and subject-list
    /// MeasureReports are written.
    #[arg(long, required_if_eq("format", "html"))]
    out: Option<PathBuf>,
    /// Bulk NDJSON inputs larger than this many MB are grouped by patient on disk
    /// (in shards of about this size) rather than in memory.
    #[arg(long, default_value_t = 1024.0)]
    memory_budget_mb: f64,
    /// Stop at the first file that cannot be read, before assessing anything (by
    /// default each such file is reported, the rest assessed, and the run fails at
    /// the end).
    #[arg(long)]
    strict: bool,
}

/// How `evaluate` and `export --evaluate` assess and print: the policy, the date, the
/// format.
#[derive(clap::Args)]
struct LocalEngineArgs {
    /// Assess as of this date (YYYY-MM-DD). Default: Dec 31 of --measurement-period
    /// if given, else today (UTC). The engine reads no clock; this command does.
    #[arg(long, value_parser = parse_date)]
    as_of: Option<Date>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Policy preset (see `trd-sentinel policies`).
    #[arg(long, default_value = "default")]
    policy: String,
    /// Override: weeks at adequate dose required.
    #[arg(long)]
    min_weeks: Option<u32>,
    /// Override: days allowed between supplies within one exposure era.
    #[arg(long)]
    gap_days: Option<u32>,
    /// Override: proportion of days covered required (0-1).
    #[arg(long)]
    pdc: Option<f64>,
    /// The quality measures' measurement year (HEDIS AMM, --measure; default: the
    /// as-of year).
    #[arg(long)]
    measurement_period: Option<i32>,
    /// A quality measure to compute with each assessment: cms159 (depression
    /// remission at twelve months) or cms128 (antidepressant medication management).
    /// Repeat for both. `--format measurereport` prints its MeasureReports; the HTML
    /// report shows its rates and a worklist.
    #[arg(long = "measure", value_parser = parse_measure)]
    measures: Vec<MeasureId>,
    /// A directory of knowledge files replacing the shipped ones (same relative paths).
    #[arg(long)]
    knowledge: Option<PathBuf>,
}

fn parse_measure(s: &str) -> Result<MeasureId, String> {
    MeasureId::parse(s).ok_or_else(|| format!("unknown measure `{s}`; known: cms159, cms128"))
}

fn parse_date(s: &str) -> Result<Date, String> {
    Date::parse(s, time::macros::format_description!("[year]-[month]-[day]"))
        .map_err(|e| format!("expected YYYY-MM-DD: {e}"))
}

fn main() -> Result<()> {
    init_logging();
    match Cli::parse().command {
        Command::Evaluate(args) => evaluate(args),
        Command::Assess(args) => assess(args),
        Command::Export(args) => export_command(args),
        Command::Summary(args) => summary(args),
        Command::Serve { config } => {
            let config = Config::load_for_serve(config.as_deref())?;
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            runtime.block_on(trd_sentinel::service::serve(config))?;
            Ok(())
        }
        Command::Subscriptions { action, config } => subscriptions(action, config),
        Command::CheckConfig { config, print } => {
            let config = Config::load_for_serve(config.as_deref())?;
            if print {
                println!("{}", serde_json::to_string_pretty(&config)?);
            }
            let queue = if config.amqp.resolved_url().ok().flatten().is_some() {
                "RabbitMQ"
            } else {
                "in-process (no broker)"
            };
            for warning in config.warnings() {
                eprintln!("warning: {warning}");
            }
            eprintln!(
                "configuration is valid (EHR: {}, queue: {queue})",
                config.fhir.base_url.as_deref().unwrap_or("not set")
            );
            Ok(())
        }
        Command::Policies => {
            let book = PolicyBook::embedded()?;
            for name in book.names() {
                let policy = book.get(name).context("preset vanished")?;
                println!("{name}: {}", policy.description);
            }
            Ok(())
        }
    }
}

fn load_policy(args: &LocalEngineArgs) -> Result<Policy> {
    let files = match &args.knowledge {
        Some(dir) => clinical::knowledge::ProfileFiles::embedded_with_overrides(dir)?,
        None => clinical::knowledge::ProfileFiles::embedded(),
    };
    let book = PolicyBook::from_files(&files)?;
    let Some(mut policy) = book.get(&args.policy).cloned() else {
        bail!(
            "unknown policy `{}`; known: {}",
            args.policy,
            book.names().collect::<Vec<_>>().join(", ")
        );
    };
    if let Some(weeks) = args.min_weeks {
        policy = policy.with_override("min_adequate_weeks", weeks);
        policy.min_adequate_weeks = weeks;
    }
    if let Some(days) = args.gap_days {
        policy = policy.with_override("era_gap_days", days);
        policy.era_gap_days = days;
    }
    if let Some(pdc) = args.pdc {
        policy = policy.with_override("pdc_threshold", pdc);
        policy.pdc_threshold = pdc;
    }
    policy
        .validate()
        .map_err(|m| anyhow::anyhow!("policy {}: {m}", policy.name))?;
    Ok(policy)
}

fn evaluate(args: EvaluateArgs) -> Result<()> {
    let (engine, as_of) = local_engine(&args.engine)?;
    let options = RunOptions {
        paths: &args.paths,
        format: args.engine.format,
        out_dir: args.out.as_deref(),
        memory_budget_bytes: (args.memory_budget_mb.max(0.01) * 1e6) as u64,
        strict: args.strict,
        terminal: io::stderr().is_terminal(),
        spill_dir: std::env::temp_dir().join(format!("trd-sentinel-spill-{}", std::process::id())),
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    report::run::evaluate(&options, &engine, as_of, &mut out)?;
    Ok(())
}

/// The engine `evaluate` (and `export --evaluate`) assess with: the shipped knowledge
/// (or `--knowledge`), the policy preset and its overrides; and the as-of date.
fn local_engine(args: &LocalEngineArgs) -> Result<(Engine, Date)> {
    let as_of = batch::as_of_date(
        args.as_of,
        args.measurement_period,
        time::OffsetDateTime::now_utc().date(),
    )?;
    let knowledge = match &args.knowledge {
        Some(dir) => Knowledge::with_overrides(dir),
        None => Knowledge::embedded(),
    }
    .context("loading clinical knowledge")?;
    let policy = load_policy(args)?;
    if args.format == Format::Measurereport && args.measures.is_empty() {
        bail!("--format measurereport needs the measures to report: --measure cms159 and/or --measure cms128");
    }
    let options = AssessOptions {
        measurement_year: args.measurement_period,
        quality_measures: QualityMeasures::of(&args.measures),
    };
    Ok((Engine::new(knowledge, policy, options), as_of))
}

fn export_command(args: ExportArgs) -> Result<()> {
    if !(args.evaluate || args.queue || args.write || args.out.is_some()) {
        bail!("nothing to do with the export: give --out DIR to keep it, or --evaluate, --write or --queue");
    }
    if args.engine.format == Format::Html && args.evaluate && args.report_dir.is_none() {
        bail!("--format html needs --report-dir DIR");
    }
    let config = Config::load(args.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(export_run(args, config))
}

async fn export_run(args: ExportArgs, config: Config) -> Result<()> {
    use trd_sentinel::export::command::{self, ExportCommand, LocalAssessment, Since};
    use trd_sentinel::fhir::bulk::ExportLevel;
    let since = match args.since.as_deref() {
        Some("last") => Some(Since::Last),
        Some(instant) => {
            time::OffsetDateTime::parse(instant, &time::format_description::well_known::Rfc3339)
                .with_context(|| format!("--since {instant}: expected a FHIR instant (2026-12-01T00:00:00Z) or `last`"))?;
            Some(Since::Instant(instant.to_string()))
        }
        None => None,
    };
    let level = match (&args.group, args.patients) {
        (Some(group), _) => ExportLevel::Group(group.clone()),
        (None, true) => ExportLevel::Patients,
        (None, false) => ExportLevel::System,
    };
    let evaluate = if args.evaluate {
        let (engine, as_of) = local_engine(&args.engine)?;
        Some(LocalAssessment {
            engine,
            as_of,
            format: args.engine.format,
            report_dir: args.report_dir.clone(),
        })
    } else {
        None
    };
    let export = ExportCommand {
        level,
        since,
        out: args.out,
        restart: args.restart,
        evaluate,
        queue: args.queue,
        write: args.write,
        memory_budget_bytes: (args.memory_budget_mb.max(0.01) * 1e6) as u64,
        terminal: io::stderr().is_terminal(),
    };
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    command::run(export, &config, &mut out).await?;
    Ok(())
}

/// Structured JSON logs on stderr; level from RUST_LOG (default info). Logs carry ids
/// and counts, never names, notes or values.
fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .try_init();
}

fn assess(args: AssessArgs) -> Result<()> {
    let mut config = Config::load(args.config.as_deref())?;
    config.writeback.dry_run |= args.dry_run;
    let as_of = args
        .as_of
        .unwrap_or_else(|| time::OffsetDateTime::now_utc().date());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let ehr = Ehr::from_config(&config)?;
        ehr.check_capabilities().await?;
        let run = ehr.run_patient(&args.patient, as_of).await?;
        let table = report::Table::for_patients([run.assessment.patient.as_str()]);
        println!("{}", table.header());
        println!("{}", table.row(&run.assessment));
        let plan = &run.write.plan;
        match (&run.write.transaction, run.write.dry_run) {
            (Some(transaction), true) => {
                println!(
                    "dry run: would write {} and retire {} resources:",
                    plan.written.len(),
                    plan.retired.len()
                );
                println!("{}", serde_json::to_string_pretty(transaction)?);
            }
            (Some(_), false) => {
                for line in plan.written.iter().chain(&plan.retired) {
                    println!("wrote {line}");
                }
                println!(
                    "{} written, {} retired, {} unchanged, {} requests",
                    plan.written.len(),
                    plan.retired.len(),
                    plan.unchanged,
                    run.requests
                );
            }
            (None, _) => println!(
                "nothing to write: {} unchanged, {} requests",
                plan.unchanged, run.requests
            ),
        }
        Ok(())
    })
}

fn summary(args: SummaryArgs) -> Result<()> {
    let config = Config::load(args.config.as_deref())?;
    let as_of = args
        .as_of
        .unwrap_or_else(|| time::OffsetDateTime::now_utc().date());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let assessment = runtime.block_on(async {
        let ehr = Ehr::from_config(&config)?;
        anyhow::Ok(ehr.assess_only(&args.patient, as_of).await?)
    })?;
    let summary = clinical::summary::summarise(&assessment);
    match args.format {
        SummaryFormat::Text => print!("{}", summary.text()),
        SummaryFormat::Document => println!(
            "{}",
            serde_json::to_string_pretty(&trd_sentinel::fhir::document::document_bundle(
                &summary,
                &assessment,
                &config.writeback.identifier_system,
            ))?
        ),
    }
    Ok(())
}

fn subscriptions(action: SubscriptionAction, config: Option<PathBuf>) -> Result<()> {
    let config = Config::load(config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let ehr = Ehr::from_config(&config)?;
        match action {
            SubscriptionAction::Ensure => {
                let report =
                    trd_sentinel::intake::subscriptions::ensure(
                        &ehr.client,
                        &config,
                        &ehr.engine.relevance,
                    )
                    .await?;
                println!(
                    "subscriptions ({}): {} created, {} updated, {} unchanged, {} of the other kind turned off; active: {}",
                    report.mode,
                    report.created,
                    report.updated,
                    report.unchanged,
                    report.retired,
                    report.active.join(", ")
                );
            }
            SubscriptionAction::Status => {
                for s in trd_sentinel::intake::subscriptions::current(&ehr.client).await? {
                    let field = |p: &str| {
                        s.pointer(p)
                            .and_then(|v| v.as_str())
                            .unwrap_or("-")
                            .to_string()
                    };
                    println!(
                        "Subscription/{}  {}  {}  {}  error: {}",
                        field("/id"),
                        field("/status"),
                        field("/criteria"),
                        field("/channel/type"),
                        field("/error")
                    );
                }
            }
        }
        Ok(())
    })
}
