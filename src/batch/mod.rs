//! `evaluate` over many files: which files to read, reading them with progress, and
//! assessing every patient so that one patient the engine cannot assess does not cost
//! the others their verdicts.
//!
//! The command line is a thin shell over this module: it reads the clock and the
//! arguments, this module does the rest (and stays testable without a terminal).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::fs;
use std::io;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use time::{Date, Month};

use crate::clinical::{Assessment, PatientRecord};
use crate::engine::Engine;
use crate::fhir::read::{is_fhir_file_name, ReadError, ResourcePool};

pub mod bulk;

/// Why a batch could not start or read its inputs.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("{0}: no such file or directory")]
    Missing(PathBuf),
    #[error("{path}: cannot list: {source}")]
    List {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("measurement period {0} is not a year the calendar can hold")]
    Year(i32),
}

/// The as-of date of a run: the one given; else, with only a measurement year, the
/// last day of that year (so the whole AMM year counts); else `today`. The caller
/// reads the clock, so the engine and this function never do.
pub fn as_of_date(
    as_of: Option<Date>,
    measurement_year: Option<i32>,
    today: Date,
) -> Result<Date, BatchError> {
    match (as_of, measurement_year) {
        (Some(date), _) => Ok(date),
        (None, Some(year)) => {
            Date::from_calendar_date(year, Month::December, 31).map_err(|_| BatchError::Year(year))
        }
        (None, None) => Ok(today),
    }
}

/// One file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    pub path: PathBuf,
    /// Size from the file's metadata, known before anything is read (progress total).
    pub bytes: u64,
    /// Named on the command line (a problem with it is an error), not found in a
    /// directory (a file that is not FHIR is skipped with a warning).
    pub named: bool,
}

/// A file in a directory that was not read, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: skipped: {}", self.path.display(), self.reason)
    }
}

/// The files a run reads, in order (each directory sorted, recursively), and the
/// directory entries skipped by their name.
#[derive(Debug, Default)]
pub struct Inputs {
    pub files: Vec<InputFile>,
    pub skipped: Vec<Skipped>,
}

impl Inputs {
    /// Lists the files behind the given paths. A path that does not exist is an error;
    /// in a directory, only *.json, *.ndjson and *.jsonl are read (a README or a
    /// .DS_Store beside an export is a warning, not a failure).
    pub fn collect(paths: &[PathBuf]) -> Result<Self, BatchError> {
        let mut inputs = Self::default();
        for path in paths {
            let metadata = fs::metadata(path).map_err(|source| match source.kind() {
                io::ErrorKind::NotFound => BatchError::Missing(path.clone()),
                _ => BatchError::List {
                    path: path.clone(),
                    source,
                },
            })?;
            if metadata.is_dir() {
                inputs.walk(path)?;
            } else {
                inputs.files.push(InputFile {
                    path: path.clone(),
                    bytes: metadata.len(),
                    named: true,
                });
            }
        }
        Ok(inputs)
    }

    fn walk(&mut self, dir: &Path) -> Result<(), BatchError> {
        let list = |source| BatchError::List {
            path: dir.to_path_buf(),
            source,
        };
        let mut entries: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(list)?
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(list)?;
        entries.sort();
        for path in entries {
            // Follows symbolic links, as reading the file would.
            let metadata = match fs::metadata(&path) {
                Ok(m) => m,
                Err(e) => {
                    self.skipped.push(Skipped {
                        path,
                        reason: format!("cannot read: {e}"),
                    });
                    continue;
                }
            };
            if metadata.is_dir() {
                self.walk(&path)?;
            } else if is_fhir_file_name(&path) {
                self.files.push(InputFile {
                    path,
                    bytes: metadata.len(),
                    named: false,
                });
            } else {
                self.skipped.push(Skipped {
                    path,
                    reason: "not a .json, .ndjson or .jsonl file".into(),
                });
            }
        }
        Ok(())
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }
}

/// A progress bar on stderr counting files and bytes, with rate and ETA; hidden (and
/// free) when stderr is not a terminal, so logs and pipes get no control characters.
/// Files are read on several threads: the counts are atomic.
pub struct Progress {
    bar: ProgressBar,
    files_total: usize,
    files_done: AtomicUsize,
    resources: AtomicUsize,
}

impl Progress {
    pub fn new(inputs: &Inputs, visible: bool) -> Self {
        let bar = if visible {
            let bar = ProgressBar::new(inputs.total_bytes());
            // The template is a constant: a bad one is a programming error caught by
            // the unit test below, and falls back to the default style.
            if let Ok(style) = ProgressStyle::with_template(PROGRESS_TEMPLATE) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        } else {
            ProgressBar::hidden()
        };
        let progress = Self {
            bar,
            files_total: inputs.files.len(),
            files_done: AtomicUsize::new(0),
            resources: AtomicUsize::new(0),
        };
        progress.set_message();
        progress
    }

    fn set_message(&self) {
        self.bar.set_message(format!(
            "{}/{} files, {} resources",
            self.files_done.load(Ordering::Relaxed),
            self.files_total,
            self.resources.load(Ordering::Relaxed)
        ));
    }

    fn file_done(&self, file: &InputFile, resources: usize) {
        self.files_done.fetch_add(1, Ordering::Relaxed);
        self.resources.fetch_add(resources, Ordering::Relaxed);
        self.bar.inc(file.bytes);
        self.set_message();
    }

    /// An error on stderr that does not tear the bar (the run goes on, and fails at
    /// the end).
    pub fn error(&self, message: impl fmt::Display) {
        self.bar.suspend(|| eprintln!("error: {message}"));
    }

    /// A warning on stderr that does not tear the bar (printed above it).
    pub fn warn(&self, message: impl fmt::Display) {
        self.bar.suspend(|| eprintln!("warning: {message}"));
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

const PROGRESS_TEMPLATE: &str =
    "[{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta} {msg}";

/// What reading the inputs left out: directory files that are not FHIR (skipped: an
/// export manifest, a package.json) and files that could not be read at all (a
/// truncated export file, an unreadable disk block).
#[derive(Debug, Default)]
pub struct ReadReport {
    pub skipped: Vec<Skipped>,
    pub unreadable: Vec<Skipped>,
}

/// Reads every input into the pool, files in parallel (each into a pool of its own,
/// merged in file order, so the result is the same as reading them in turn). A file
/// found in a directory that is valid JSON but not FHIR is skipped with a warning. A
/// file that cannot be read (not JSON, truncated, not FHIR when named) is reported
/// with its reason and the rest is read: the caller assesses what was read and fails
/// at the end, so one broken file neither hides the others nor passes unnoticed.
/// With `strict` the first such file is the error, before anything is assessed.
pub fn read_inputs(
    pool: &mut ResourcePool,
    inputs: &Inputs,
    progress: &Progress,
    strict: bool,
) -> Result<ReadReport, BatchError> {
    use rayon::prelude::*;
    let mut report = ReadReport::default();
    for skip in &inputs.skipped {
        progress.warn(skip);
    }
    let parts: Vec<(Result<(), ReadError>, ResourcePool)> = inputs
        .files
        .par_iter()
        .map(|file| {
            let mut part = pool.sibling();
            let read = part.add_file(&file.path);
            progress.file_done(file, part.stats.resources);
            (read, part)
        })
        .collect();
    for (file, (read, part)) in inputs.files.iter().zip(parts) {
        match read {
            Ok(()) => pool.merge(part),
            Err(ReadError::NotFhir { message, .. }) if !file.named => {
                let skip = Skipped {
                    path: file.path.clone(),
                    reason: format!("not a FHIR resource or Bundle: {message}"),
                };
                progress.warn(&skip);
                report.skipped.push(skip);
            }
            Err(e) if strict => return Err(e.into()),
            Err(e) => {
                let unreadable = Skipped {
                    path: file.path.clone(),
                    reason: e.to_string(),
                };
                progress.error(&e);
                report.unreadable.push(unreadable);
            }
        }
    }
    Ok(report)
}

/// A patient whose assessment panicked: the engine could not assess this record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub patient: String,
    /// Where in the code it panicked (file:line:column), if known. Never the panic
    /// message: that can quote values from the record.
    pub location: Option<String>,
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: could not be assessed (internal error", self.patient)?;
        if let Some(location) = &self.location {
            write!(f, " at {location}")?;
        }
        write!(f, ")")
    }
}

thread_local! {
    /// Set while this thread runs guarded code: its panics are recorded, not printed.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    static PANIC_LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

static QUIET_HOOK: Once = Once::new();

/// Runs `f`, turning a panic into `Err(location)`. The default panic hook would print
/// the panic message, which can quote record values (dates, doses): on a thread inside
/// `guarded` only the code location is kept, and other threads' panics print as
/// before.
pub fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, Option<String>> {
    QUIET_HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) {
                let location = info.location().map(|l| l.to_string());
                PANIC_LOCATION.with(|l| *l.borrow_mut() = location);
            } else {
                previous(info);
            }
        }));
    });
    let was_guarded = GUARDED.with(|g| g.replace(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(was_guarded));
    result.map_err(|_| PANIC_LOCATION.with(|l| l.borrow_mut().take()))
}

/// Assesses one patient; a panic in the engine becomes [`Failed`] for this patient
/// only. The engine is pure (no shared state is left half-changed by a panic), so the
/// next patient is assessed as if nothing happened.
pub fn assess_guarded(
    record: &PatientRecord,
    engine: &Engine,
    as_of: Date,
) -> Result<Assessment, Failed> {
    guarded(|| engine.assess(record, as_of)).map_err(|location| Failed {
        patient: record.patient.clone(),
        location,
    })
}

/// Patients assessed at once on all cores; their results are handed on in record
/// order before the next chunk starts (only a chunk's assessments are held).
const CHUNK: usize = 256;

/// Assesses every record on all cores, handing each result to `each` in record order.
pub fn assess_all<E>(
    records: &[PatientRecord],
    engine: &Engine,
    as_of: Date,
    mut each: impl FnMut(Result<Assessment, Failed>) -> Result<(), E>,
) -> Result<(), E> {
    use rayon::prelude::*;
    for chunk in records.chunks(CHUNK) {
        let results: Vec<Result<Assessment, Failed>> = chunk
            .par_iter()
            .map(|record| assess_guarded(record, engine, as_of))
            .collect();
        for result in results {
            each(result)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn as_of_defaults() {
        let today = date!(2025 - 03 - 04);
        assert_eq!(
            as_of_date(Some(date!(2024 - 10 - 20)), Some(2023), today).ok(),
            Some(date!(2024 - 10 - 20))
        );
        assert_eq!(
            as_of_date(None, Some(2023), today).ok(),
            Some(date!(2023 - 12 - 31))
        );
        assert_eq!(as_of_date(None, None, today).ok(), Some(today));
        assert!(as_of_date(None, Some(100_000), today).is_err());
    }

    #[test]
    fn a_panic_is_caught_with_its_location_and_the_next_call_runs() {
        let caught = guarded(|| -> u32 { panic!("record value 1980-02-29") });
        let location = caught.expect_err("panicked");
        assert!(
            location.is_some_and(|l| l.contains("batch/mod.rs")),
            "location of the panic"
        );
        assert_eq!(guarded(|| 7).ok(), Some(7));
        assert!(!GUARDED.with(Cell::get), "guard released");
    }

    #[test]
    fn progress_template_is_valid() {
        assert!(ProgressStyle::with_template(PROGRESS_TEMPLATE).is_ok());
    }

    #[test]
    fn directories_list_fhir_names_and_skip_others() {
        let dir = std::env::temp_dir().join(format!("trd-batch-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sub")).expect("mkdir");
        fs::write(dir.join("b.json"), "{}").expect("write");
        fs::write(dir.join("README.txt"), "hello").expect("write");
        fs::write(dir.join("sub/a.ndjson"), "").expect("write");
        let inputs = Inputs::collect(std::slice::from_ref(&dir)).expect("list");
        let names: Vec<_> = inputs
            .files
            .iter()
            .map(|f| f.path.strip_prefix(&dir).expect("inside").to_owned())
            .collect();
        assert_eq!(
            names,
            [PathBuf::from("b.json"), PathBuf::from("sub/a.ndjson")]
        );
        assert!(inputs.files.iter().all(|f| !f.named));
        assert_eq!(inputs.total_bytes(), 2);
        assert_eq!(inputs.skipped.len(), 1);
        assert!(inputs.skipped[0].to_string().contains("README.txt"));
        assert!(matches!(
            Inputs::collect(&[dir.join("missing.json")]),
            Err(BatchError::Missing(_))
        ));
        let _ = fs::remove_dir_all(&dir);
    }
}
