//! An export's files regrouped by patient, without holding the population in memory:
//! each patient's complete record as one Bundle (`export --queue`), or the patients a
//! delta touches (`--since`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use super::ExportError;
use crate::batch::bulk::{shard_count, Shards};
use crate::batch::{Inputs, Progress};
use crate::fhir::bulk::BulkError;
use crate::fhir::mapping::{normalise_reference, patient_of};
use crate::fhir::read::{Relevance, ResourcePool};
use crate::fhir::writeback::OWN_TAG_SYSTEM;
use crate::intake::message::COMPLETE_RECORD_TAG;

/// Every patient a set of NDJSON files names through a resource the engine reads
/// (a changed vital sign or claim triggers nothing, as with notifications).
pub fn touched_patients(
    output: &Path,
    relevance: &Relevance,
) -> Result<BTreeSet<String>, ExportError> {
    let filter = ResourcePool::new(relevance.clone());
    let inputs = Inputs::collect(&[output.to_path_buf()]).map_err(ExportError::Batch)?;
    let mut patients = BTreeSet::new();
    for file in &inputs.files {
        let reader = BufReader::new(File::open(&file.path).map_err(BulkError::io(&file.path))?);
        for line in reader.lines() {
            let line = line.map_err(BulkError::io(&file.path))?;
            if line.trim().is_empty() || !filter.would_keep(&line) {
                continue;
            }
            let Ok(resource) = serde_json::from_str::<Value>(&line) else {
                continue;
            };
            if relevance.matters(&resource) {
                if let Some(patient) = patient_of(&resource) {
                    patients.insert(patient);
                }
            }
        }
    }
    Ok(patients)
}

/// The patients' complete records as Bundles, a shard at a time (about
/// `budget_bytes` of NDJSON each): every resource the engine reads about the patient,
/// and the Medications they refer to, tagged complete-record.
pub struct CompleteRecords {
    shards: Shards,
    next: usize,
    medications: HashMap<String, Value>,
    ready: std::vec::IntoIter<(String, Value)>,
}

impl CompleteRecords {
    pub fn new(
        output: &Path,
        relevance: &Relevance,
        budget_bytes: u64,
        spill: &Path,
    ) -> Result<Self, ExportError> {
        let inputs = Inputs::collect(&[output.to_path_buf()]).map_err(ExportError::Batch)?;
        let progress = Progress::new(&inputs, false);
        let count = shard_count(inputs.total_bytes(), budget_bytes.max(1));
        let shards = Shards::partition(&inputs, relevance, count, spill, &progress)
            .map_err(ExportError::Batch)?;
        // `shard_count` is at least 1, and every shard shares the Medications file.
        let mut medications = HashMap::new();
        if let Some((_, file)) = shards.raw(0) {
            for resource in resources(file)? {
                if let Some(id) = resource.get("id").and_then(Value::as_str) {
                    medications.insert(format!("Medication/{id}"), resource);
                }
            }
        }
        Ok(Self {
            shards,
            next: 0,
            medications,
            ready: Vec::new().into_iter(),
        })
    }

    /// The next shard's patients, grouped.
    fn load_next(&mut self) -> Result<bool, ExportError> {
        let Some((shard, _)) = self.shards.raw(self.next) else {
            return Ok(false);
        };
        self.next += 1;
        let mut by_patient: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        for resource in resources(shard)? {
            if let Some(patient) = patient_of(&resource) {
                by_patient.entry(patient).or_default().push(resource);
            }
        }
        let bundles: Vec<(String, Value)> = by_patient
            .into_iter()
            .map(|(patient, resources)| {
                let bundle = self.bundle(resources);
                (patient, bundle)
            })
            .collect();
        self.ready = bundles.into_iter();
        Ok(true)
    }

    fn bundle(&self, resources: Vec<Value>) -> Value {
        let mut referenced: BTreeSet<String> = BTreeSet::new();
        for resource in &resources {
            if let Some(reference) = resource
                .pointer("/medicationReference/reference")
                .and_then(Value::as_str)
            {
                referenced.insert(normalise_reference(reference));
            }
        }
        let entries: Vec<Value> = referenced
            .iter()
            .filter_map(|r| self.medications.get(r).cloned())
            .chain(resources)
            .map(|resource| json!({ "resource": resource }))
            .collect();
        json!({
            "resourceType": "Bundle",
            "type": "collection",
            "meta": { "tag": [{ "system": OWN_TAG_SYSTEM, "code": COMPLETE_RECORD_TAG }] },
            "entry": entries,
        })
    }
}

impl Iterator for CompleteRecords {
    type Item = Result<(String, Value), ExportError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(item) = self.ready.next() {
                return Some(Ok(item));
            }
            match self.load_next() {
                Ok(true) => continue,
                Ok(false) => return None,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// The resources of an NDJSON file (lines that are not JSON are skipped: the reader
/// reports them when the same files are evaluated).
fn resources(path: &Path) -> Result<Vec<Value>, ExportError> {
    let reader = BufReader::new(File::open(path).map_err(BulkError::io(path))?);
    let mut out = Vec::new();
    for line in reader.lines() {
        let line = line.map_err(BulkError::io(path))?;
        if let Ok(value) = serde_json::from_str::<Value>(&line) {
            out.push(value);
        }
    }
    Ok(out)
}

/// The spill directory for one run's shards.
pub fn spill_dir(dir: &Path) -> PathBuf {
    dir.join("by-patient")
}
