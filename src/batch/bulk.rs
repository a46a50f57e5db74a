//! Bulk Data exports larger than memory: grouped by patient on disk, not in memory.
//!
//! A Bulk $export is one NDJSON file per resource type, and a patient's resources are
//! spread over all of them: grouping by patient in memory would hold every needed
//! resource of the population at once. Instead, pass one streams every file, keeps
//! only the lines the engine reads (the same skipping as the in-memory reader), and
//! appends each to one of N shard files chosen by a hash of its patient; Medications
//! (referenced across patients) go to a file every shard reads. Pass two reads the
//! shards one at a time: each is an ordinary pool of 1/N of the patients, assessed and
//! dropped before the next. Peak memory is about one shard's pool.

use std::collections::hash_map::DefaultHasher;
use std::fs::{self, File};
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{BatchError, Inputs, Progress};
use crate::fhir::read::{ReadError, Relevance, ResourcePool};

/// The spilled export: shard files and the Medications every shard needs.
pub struct Shards {
    dir: PathBuf,
    files: Vec<PathBuf>,
    medications: PathBuf,
    codes: Relevance,
}

/// How many shards for `bytes` of input within `budget` bytes of memory per shard.
pub fn shard_count(bytes: u64, budget: u64) -> usize {
    (bytes.div_ceil(budget.max(1))).clamp(1, 4096) as usize
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> ReadError + '_ {
    move |source| ReadError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Where a kept line goes.
enum Destination {
    /// A Medication: every shard reads it (orders refer to it across patients).
    Medications,
    /// The shard of this patient.
    Patient(String),
    /// Not JSON, or about no patient: the first shard, whose reader reports it as
    /// the in-memory reader would.
    Unattributed,
}

fn destination(line: &str) -> Destination {
    let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
        return Destination::Unattributed;
    };
    if value.get("resourceType").and_then(|t| t.as_str()) == Some("Medication") {
        return Destination::Medications;
    }
    match crate::fhir::mapping::patient_of(&value) {
        Some(patient) => Destination::Patient(patient),
        None => Destination::Unattributed,
    }
}

impl Shards {
    /// Pass one: every NDJSON input streamed into `count` shard files under `dir`.
    pub fn partition(
        inputs: &Inputs,
        codes: &Relevance,
        count: usize,
        dir: &Path,
        progress: &Progress,
    ) -> Result<Self, BatchError> {
        use rayon::prelude::*;
        fs::create_dir_all(dir).map_err(|e| ReadError::Io {
            path: dir.to_path_buf(),
            source: e,
        })?;
        let files: Vec<PathBuf> = (0..count)
            .map(|n| dir.join(format!("shard-{n}.ndjson")))
            .collect();
        let medications = dir.join("medications.ndjson");
        let open = |path: &PathBuf| -> Result<Mutex<BufWriter<File>>, ReadError> {
            Ok(Mutex::new(BufWriter::new(
                File::create(path).map_err(io(path))?,
            )))
        };
        let writers: Vec<Mutex<BufWriter<File>>> =
            files.iter().map(open).collect::<Result<_, _>>()?;
        let medication_writer = open(&medications)?;
        let filter = ResourcePool::new(codes.clone());
        inputs
            .files
            .par_iter()
            .map(|file| -> Result<(), ReadError> {
                let reader = BufReader::new(File::open(&file.path).map_err(io(&file.path))?);
                let mut kept = 0usize;
                for line in reader.lines() {
                    let line = line.map_err(io(&file.path))?;
                    if !filter.would_keep(&line) {
                        continue;
                    }
                    let writer = match destination(&line) {
                        Destination::Medications => &medication_writer,
                        Destination::Unattributed => writers.first().unwrap_or(&medication_writer),
                        Destination::Patient(patient) => {
                            let mut hasher = DefaultHasher::new();
                            patient.hash(&mut hasher);
                            let shard = (hasher.finish() % count as u64) as usize;
                            writers.get(shard).unwrap_or(&medication_writer)
                        }
                    };
                    let mut w = writer.lock().map_err(|_| ReadError::Io {
                        path: file.path.clone(),
                        source: std::io::Error::other("shard writer poisoned"),
                    })?;
                    w.write_all(line.as_bytes())
                        .and_then(|()| w.write_all(b"\n"))
                        .map_err(io(&file.path))?;
                    kept += 1;
                }
                progress.file_done(file, kept);
                Ok(())
            })
            .collect::<Result<Vec<()>, ReadError>>()?;
        for writer in writers.iter().chain(std::iter::once(&medication_writer)) {
            if let Ok(mut w) = writer.lock() {
                w.flush().map_err(io(dir))?;
            }
        }
        Ok(Self {
            dir: dir.to_path_buf(),
            files,
            medications,
            codes: codes.clone(),
        })
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Shard `n`'s file (its patients' kept lines, as exported) and the Medications
    /// file every shard shares: for callers that forward resources rather than assess
    /// them (`export --queue`).
    pub fn raw(&self, n: usize) -> Option<(&Path, &Path)> {
        Some((self.files.get(n)?.as_path(), self.medications.as_path()))
    }

    /// Pass two: shard `n` read into a pool of its own (with every Medication).
    pub fn pool(&self, n: usize) -> Result<ResourcePool, BatchError> {
        let mut pool = ResourcePool::new(self.codes.clone());
        let shard = self.files.get(n).ok_or_else(|| ReadError::Io {
            path: self.dir.clone(),
            source: std::io::Error::other(format!("no shard {n}")),
        })?;
        for path in [&self.medications, shard] {
            let file = File::open(path).map_err(io(path))?;
            match pool.add_ndjson_reader(BufReader::new(file), &path.display().to_string()) {
                Ok(()) | Err(ReadError::NotFhir { .. }) => {} // an empty shard
                Err(e) => return Err(e.into()),
            }
        }
        Ok(pool)
    }
}

impl Drop for Shards {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}
