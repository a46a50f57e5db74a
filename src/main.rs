//! The `trd-sentinel` command line: a thin shell over the library.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use time::Date;

use trd_sentinel::batch::{self, Inputs, Progress};
use trd_sentinel::clinical::policy::PolicyBook;
use trd_sentinel::clinical::{self, AssessOptions, Knowledge, Policy};
use trd_sentinel::config::Config;
use trd_sentinel::ehr::Ehr;
use trd_sentinel::engine::Engine;
use trd_sentinel::fhir::read::{is_ndjson, ResourcePool};
use trd_sentinel::outputs;
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
    /// Assess as of this date (YYYY-MM-DD). Default: Dec 31 of --measurement-period
    /// if given, else today (UTC). The engine reads no clock; this command does.
    #[arg(long, value_parser = parse_date)]
    as_of: Option<Date>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// The directory `--format html` writes into (a page per patient, index.html).
    #[arg(long, required_if_eq("format", "html"))]
    out: Option<PathBuf>,
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
    /// HEDIS AMM measurement year (default: the as-of year).
    #[arg(long)]
    measurement_period: Option<i32>,
    /// A directory of knowledge files replacing the shipped ones (same relative paths).
    #[arg(long)]
    knowledge: Option<PathBuf>,
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

/// The patients of a run: in memory, or in shards on disk (a Bulk export larger than
/// the memory budget).
enum Grouped {
    Records(Vec<clinical::PatientRecord>),
    Shards(batch::bulk::Shards),
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

fn load_policy(args: &EvaluateArgs) -> Result<Policy> {
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
    let policy = load_policy(&args)?;
    let options = AssessOptions {
        measurement_year: args.measurement_period,
    };
    let engine = Engine::new(knowledge, policy, options);

    let inputs = Inputs::collect(&args.paths)?;
    let progress = Progress::new(&inputs, io::stderr().is_terminal());
    let codes = engine.relevance.clone();
    let budget = (args.memory_budget_mb.max(0.01) * 1e6) as u64;
    // A Bulk export larger than the memory budget is grouped by patient on disk.
    let sharded = inputs.files.iter().all(|f| is_ndjson(&f.path)) && inputs.total_bytes() > budget;

    // Read (or partition) everything first. A file that cannot be read is reported and
    // fails the run at the end (`--strict`: at once, before anything is printed).
    let mut unreadable = 0usize;
    let grouped = if sharded {
        let spill = std::env::temp_dir().join(format!("trd-sentinel-spill-{}", std::process::id()));
        let count = batch::bulk::shard_count(inputs.total_bytes(), budget);
        let shards = batch::bulk::Shards::partition(&inputs, &codes, count, &spill, &progress);
        progress.finish();
        Grouped::Shards(shards?)
    } else {
        let mut pool = ResourcePool::new(codes);
        let read = batch::read_inputs(&mut pool, &inputs, &progress, args.strict);
        progress.finish();
        unreadable = read?.unreadable.len();
        for problem in &pool.unattributed {
            eprintln!("warning: {problem}");
        }
        Grouped::Records(pool.records())
    };

    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut html = match (&args.format, &args.out) {
        (Format::Html, Some(dir)) => Some(report::HtmlWriter::new(
            dir,
            inputs.files.len(),
            io::stderr().is_terminal(),
        )?),
        _ => None,
    };
    // `--format fhir` writes what write-back would, with its default settings.
    let writeback = trd_sentinel::config::WritebackSettings::default();
    let (mut failed, mut patients) = (0usize, 0usize);
    let table = match &grouped {
        Grouped::Records(records) => {
            report::Table::for_patients(records.iter().map(|r| r.patient.as_str()))
        }
        Grouped::Shards(_) => report::Table::default(),
    };
    if args.format == Format::Table {
        writeln!(out, "{}", table.header())?;
    }
    let mut emit = |result: Result<clinical::Assessment, batch::Failed>| {
        patients += 1;
        let assessment = match result {
            Ok(assessment) => assessment,
            Err(failure) => {
                eprintln!("error: {failure}");
                failed += 1;
                return Ok(());
            }
        };
        match args.format {
            Format::Table => writeln!(out, "{}", table.row(&assessment))?,
            Format::Jsonl => writeln!(out, "{}", report::jsonl_row(&assessment)?)?,
            Format::Fhir => {
                if let Some(transaction) = outputs::writeback_transaction(&assessment, &writeback) {
                    writeln!(out, "{transaction}")?;
                }
            }
            Format::Document => {
                if let Some(document) = outputs::summary_document(&assessment) {
                    writeln!(out, "{document}")?;
                }
            }
            Format::Html => {
                if let Some(html) = html.as_mut() {
                    html.write(&assessment, &engine.knowledge)?;
                }
            }
        }
        anyhow::Ok(())
    };
    match grouped {
        Grouped::Shards(shards) => {
            for n in 0..shards.len() {
                let pool = shards.pool(n)?;
                for problem in &pool.unattributed {
                    eprintln!("warning: {problem}");
                }
                let records = pool.records();
                drop(pool);
                batch::assess_all(&records, &engine, as_of, &mut emit)?;
            }
        }
        Grouped::Records(records) => {
            batch::assess_all(&records, &engine, as_of, &mut emit)?;
        }
    }
    if let Some(html) = html {
        let index = html.finish()?;
        eprintln!("wrote {}", index.display());
    }
    out.flush()?;
    if failed > 0 {
        bail!("{failed} of {patients} patients could not be assessed (the others were printed)");
    }
    if unreadable > 0 {
        bail!(
            "{unreadable} of {} files could not be read (named above); the rest was assessed, and a patient with data in an unreadable file may be incomplete",
            inputs.files.len()
        );
    }
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
