//! Reading FHIR input: Bundles (collection, searchset, transaction, batch; urn:uuid
//! references), single resources, and Bulk Data NDJSON files or directories.
//!
//! Speed comes from typing only what the engine needs: each bundle entry is kept as
//! raw JSON until its resourceType says it matters, and Observations are typed only
//! when their code is one the engine reads. A resource that does not parse becomes a
//! note on its patient's record, never a crash and never a silent drop.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use fhir_sdk::r4b::resources::{
    Condition, Encounter, Medication, MedicationAdministration, MedicationDispense,
    MedicationRequest, MedicationStatement, Observation, Procedure, QuestionnaireResponse,
    ServiceRequest,
};
use serde::Deserialize;
use serde_json::value::RawValue;

mod heads;
mod ndjson;
mod relevance;
mod resource;
mod scan;

pub use relevance::Relevance;
pub(crate) use scan::resource_type;
use scan::{is_read_type, Origin};

use super::mapping::{self, MedicationLookup, OBSERVATION_STATUSES_USED};
use crate::clinical::record::{
    Deceased, NoteKind, ObservationFact, ObservedComponent, PatientRecord, RecordNote,
};
use heads::{BundleBody, Head};

/// Why an input file could not be read at all (a bad resource inside a good file is
/// not an error: it becomes a note on the record).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not valid JSON: {source}")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{path}: not a FHIR resource or Bundle: {message}")]
    NotFhir { path: String, message: String },
}

/// The clinical resources the engine reads, typed.
#[derive(Debug)]
enum Clinical {
    Request(MedicationRequest),
    Dispense(MedicationDispense),
    Statement(MedicationStatement),
    Administration(MedicationAdministration),
    Observation(Observation),
    Questionnaire(QuestionnaireResponse),
    Condition(Condition),
    Procedure(Procedure),
    Encounter(Encounter),
    ServiceRequest(ServiceRequest),
}

#[derive(Debug, Default)]
struct PatientBucket {
    resources: Vec<(String, Clinical)>,
    notes: Vec<RecordNote>,
    /// From the Patient resource itself (age-dependent safety rules).
    birth_date: Option<time::Date>,
    /// From the Patient resource itself (quality measures' exclusions).
    deceased: Option<Deceased>,
}

/// The Patient elements the engine reads.
#[derive(Deserialize)]
struct PatientHead<'a> {
    #[serde(rename = "birthDate", borrow, default)]
    birth_date: Option<Cow<'a, str>>,
    #[serde(rename = "deceasedBoolean", default)]
    deceased_boolean: Option<bool>,
    #[serde(rename = "deceasedDateTime", borrow, default)]
    deceased_date_time: Option<Cow<'a, str>>,
}

impl PatientHead<'_> {
    /// deceasedDateTime as a day, else deceasedBoolean true; an unreadable date of
    /// death still says the patient died.
    fn deceased(&self) -> Option<Deceased> {
        match (&self.deceased_date_time, self.deceased_boolean) {
            (Some(when), _) => {
                Some(mapping::instant_date_of(when).map_or(Deceased::Yes, Deceased::On))
            }
            (None, Some(true)) => Some(Deceased::Yes),
            _ => None,
        }
    }
}

/// Counts of what was read, for progress and benchmarks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReadStats {
    pub files: usize,
    pub bytes: usize,
    pub resources: usize,
    pub typed: usize,
}

/// Resources from any number of inputs, grouped by patient.
#[derive(Debug, Default)]
pub struct ResourcePool {
    patients: BTreeMap<String, PatientBucket>,
    medications: HashMap<String, Medication>,
    /// fullUrl (urn:uuid:...) -> "Type/id"
    aliases: HashMap<String, String>,
    relevance: Relevance,
    /// Problems that belong to no patient (a resource with no readable subject).
    pub unattributed: Vec<String>,
    pub stats: ReadStats,
}

impl MedicationLookup for ResourcePool {
    fn medication(&self, reference: &str) -> Option<&Medication> {
        self.medications
            .get(reference)
            .or_else(|| self.medications.get(self.aliases.get(reference)?))
    }
}

impl ResourcePool {
    pub fn new(relevance: Relevance) -> Self {
        Self {
            relevance,
            ..Self::default()
        }
    }

    /// Whether this reader would keep a resource's text: most of an export is what
    /// the engine never reads (claims, vital signs, immunizations), known from the
    /// leading resourceType and the codes in the text without parsing it at all. A
    /// text that does not start with its resourceType is kept (the reader parses it).
    pub fn would_keep(&self, text: &str) -> bool {
        match resource_type(text).as_deref() {
            Some("Observation" | "Encounter") => self.relevance.may_want(text),
            Some(kind) => is_read_type(kind),
            None => true,
        }
    }

    /// An empty pool reading with the same codes (one per file read in parallel).
    pub fn sibling(&self) -> Self {
        Self::new(self.relevance.clone())
    }

    /// Takes in everything another pool read (files read in parallel, merged in
    /// file order so the records come out as if read one after another).
    pub fn merge(&mut self, other: ResourcePool) {
        for (patient, bucket) in other.patients {
            let mine = self.patients.entry(patient).or_default();
            mine.resources.extend(bucket.resources);
            mine.notes.extend(bucket.notes);
            if bucket.birth_date.is_some() {
                mine.birth_date = bucket.birth_date;
            }
            if bucket.deceased.is_some() {
                mine.deceased = bucket.deceased;
            }
        }
        self.medications.extend(other.medications);
        self.aliases.extend(other.aliases);
        self.unattributed.extend(other.unattributed);
        self.stats.files += other.stats.files;
        self.stats.bytes += other.stats.bytes;
        self.stats.resources += other.stats.resources;
        self.stats.typed += other.stats.typed;
    }

    /// A file or a directory (recursively: *.json, *.ndjson, *.jsonl).
    pub fn add_path(&mut self, path: &Path) -> Result<(), ReadError> {
        let io = |source| ReadError::Io {
            path: path.to_path_buf(),
            source,
        };
        if path.is_dir() {
            let mut entries: Vec<PathBuf> = fs::read_dir(path)
                .map_err(io)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for entry in entries {
                if entry.is_dir() || is_fhir_file_name(&entry) {
                    self.add_path(&entry)?;
                }
            }
            return Ok(());
        }
        self.add_file(path)
    }

    /// One file, whatever its name: NDJSON when it ends in .ndjson or .jsonl, else
    /// one JSON document. Callers that choose files themselves (the `evaluate`
    /// batch) use this; [`Self::add_path`] adds the directory walk.
    pub fn add_file(&mut self, path: &Path) -> Result<(), ReadError> {
        let io = |source| ReadError::Io {
            path: path.to_path_buf(),
            source,
        };
        let origin = path.display().to_string();
        self.stats.files += 1;
        if is_ndjson(path) {
            // Line by line: a Bulk export's file can be larger than memory.
            let file = fs::File::open(path).map_err(io)?;
            return self.add_ndjson_reader(std::io::BufReader::new(file), &origin);
        }
        let text = fs::read_to_string(path).map_err(io)?;
        self.stats.bytes += text.len();
        self.add_json(&text, &origin)
    }

    /// One JSON document: a Bundle or a single resource.
    pub fn add_json(&mut self, text: &str, origin: &str) -> Result<(), ReadError> {
        // A Bundle (its resourceType first, as writers put it): entries split by the
        // scanner, so what is skipped is never parsed. Anything else, or a Bundle the
        // scanner cannot follow, is parsed (and its errors reported) by serde.
        if resource_type(text).as_deref() == Some("Bundle") {
            if let Some(entries) = scan::bundle_entries(text) {
                for (n, (full_url, resource)) in entries.iter().enumerate() {
                    self.add_resource(*resource, full_url.as_deref(), &Origin::entry(origin, n));
                }
                return Ok(());
            }
        }
        let raw: &RawValue = serde_json::from_str(text).map_err(|source| ReadError::Json {
            path: origin.into(),
            source,
        })?;
        self.add_document(raw, origin)
    }

    fn add_document(&mut self, raw: &RawValue, origin: &str) -> Result<(), ReadError> {
        let is_bundle = match resource_type(raw.get()) {
            Some(kind) => kind == "Bundle",
            None => {
                let head: Head<'_> =
                    serde_json::from_str(raw.get()).map_err(|e| ReadError::NotFhir {
                        path: origin.into(),
                        message: e.to_string(),
                    })?;
                head.resource_type == "Bundle"
            }
        };
        if !is_bundle {
            self.add_resource(raw.get(), None, &Origin::whole(origin));
            return Ok(());
        }
        let body: BundleBody<'_> =
            serde_json::from_str(raw.get()).map_err(|e| ReadError::NotFhir {
                path: origin.into(),
                message: format!("Bundle.entry: {e}"),
            })?;
        for (n, entry) in body.entry.iter().enumerate() {
            if let Some(resource) = entry.resource {
                self.add_resource(
                    resource.get(),
                    entry.full_url.as_deref(),
                    &Origin::entry(origin, n),
                );
            }
        }
        Ok(())
    }

    /// Patients in reference order.
    pub fn patient_count(&self) -> usize {
        self.resolved_patients().len()
    }

    fn resolved_patients(&self) -> BTreeMap<String, Vec<&PatientBucket>> {
        let mut out: BTreeMap<String, Vec<&PatientBucket>> = BTreeMap::new();
        for (reference, bucket) in &self.patients {
            let patient = self
                .aliases
                .get(reference)
                .cloned()
                .unwrap_or_else(|| reference.clone());
            out.entry(patient).or_default().push(bucket);
        }
        out
    }

    /// One PatientRecord per patient, in reference order.
    pub fn records(&self) -> Vec<PatientRecord> {
        self.resolved_patients()
            .into_iter()
            .map(|(patient, buckets)| self.record_of(patient, &buckets))
            .collect()
    }

    /// The record of one patient (empty when nothing was found about them).
    pub fn record_for(&self, patient: &str) -> PatientRecord {
        let resolved = self.resolved_patients();
        match resolved.get(patient) {
            Some(buckets) => self.record_of(patient.to_string(), buckets),
            None => PatientRecord::new(patient),
        }
    }

    fn record_of(&self, patient: String, buckets: &[&PatientBucket]) -> PatientRecord {
        let mut record = PatientRecord::new(patient);
        for bucket in buckets {
            if bucket.birth_date.is_some() {
                record.birth_date = bucket.birth_date;
            }
            if bucket.deceased.is_some() {
                record.deceased = bucket.deceased;
            }
            record.notes.extend(bucket.notes.iter().cloned());
            for (source, resource) in &bucket.resources {
                let source = source.clone();
                match resource {
                    Clinical::Request(r) => {
                        let mut order = mapping::order_of(source, r, self);
                        self.resolve_reasons(&mut order.reasons);
                        record.orders.push(order);
                    }
                    Clinical::Dispense(d) => {
                        let mut dispense = mapping::dispense_of(source, d, self);
                        for reference in &mut dispense.authorizing {
                            if let Some(alias) = self.aliases.get(reference.as_str()) {
                                *reference = alias.clone();
                            }
                        }
                        record.dispenses.push(dispense);
                    }
                    Clinical::Statement(s) => {
                        let mut statement = mapping::statement_of(source, s, self);
                        self.resolve_reasons(&mut statement.reasons);
                        record.statements.push(statement);
                    }
                    Clinical::Administration(a) => {
                        let mut given = mapping::administration_of(source, a, self);
                        if let Some(request) = &mut given.request {
                            if let Some(alias) = self.aliases.get(request.as_str()) {
                                *request = alias.clone();
                            }
                        }
                        record.administrations.push(given);
                    }
                    Clinical::Questionnaire(q) => {
                        let status = mapping::questionnaire_status(q);
                        if mapping::QUESTIONNAIRE_STATUSES_USED.contains(&status) {
                            record
                                .observations
                                .push(mapping::questionnaire_response_of(source, q));
                        } else {
                            record.notes.push(RecordNote {
                                source,
                                kind: NoteKind::NotUsed,
                                message: format!("status {status}"),
                            });
                        }
                    }
                    Clinical::Observation(o) => {
                        let status = mapping::observation_status(o);
                        if OBSERVATION_STATUSES_USED.contains(&status) {
                            record.observations.push(mapping::observation_of(source, o));
                        } else {
                            record.notes.push(RecordNote {
                                source,
                                kind: NoteKind::NotUsed,
                                message: format!("status {status}"),
                            });
                        }
                    }
                    Clinical::Condition(c) => {
                        record.conditions.push(mapping::condition_of(source, c))
                    }
                    Clinical::Procedure(p) => {
                        record.procedures.push(mapping::procedure_of(source, p))
                    }
                    Clinical::Encounter(e) => {
                        record.encounters.push(mapping::encounter_of(source, e))
                    }
                    Clinical::ServiceRequest(r) => record
                        .service_requests
                        .push(mapping::service_request_of(source, r)),
                }
            }
        }
        self.resolve_members(&mut record.observations);
        record.into_canonical_order()
    }

    /// A panel whose items are Observations of their own (`hasMember`) reads as a
    /// panel with those items as components; the members stay observations too.
    fn resolve_members(&self, observations: &mut [ObservationFact]) {
        let found: Vec<Vec<ObservedComponent>> = observations
            .iter()
            .map(|panel| {
                panel
                    .members
                    .iter()
                    .filter_map(|member| {
                        let member = self.aliases.get(member).unwrap_or(member);
                        observations.iter().find(|o| &o.source == member)
                    })
                    .map(|item| ObservedComponent {
                        codes: item.codes.clone(),
                        value: item.value.clone(),
                    })
                    .collect()
            })
            .collect();
        for (panel, components) in observations.iter_mut().zip(found) {
            panel.components.extend(components);
        }
    }
}

impl ResourcePool {
    /// A reasonReference written as a bundle's urn:uuid names its Condition by id.
    fn resolve_reasons(&self, reasons: &mut [crate::clinical::record::Code]) {
        for reason in reasons
            .iter_mut()
            .filter(|r| r.system == crate::clinical::record::REASON_REFERENCE)
        {
            if let Some(alias) = self.aliases.get(reason.code.as_str()) {
                reason.code = alias.clone();
            }
        }
    }
}

/// Whether a file is read as NDJSON (one resource per line) rather than one document.
pub fn is_ndjson(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("ndjson" | "jsonl")
    )
}

/// Whether a file's name says it may be FHIR JSON or NDJSON (what a directory walk
/// reads).
pub fn is_fhir_file_name(path: &Path) -> bool {
    is_ndjson(path) || path.extension().and_then(|e| e.to_str()) == Some("json")
}

fn subject_of(resource: &Clinical) -> Option<String> {
    let reference = match resource {
        Clinical::Request(r) => Some(&r.subject),
        Clinical::Dispense(d) => d.subject.as_ref(),
        Clinical::Statement(s) => Some(&s.subject),
        Clinical::Administration(a) => Some(&a.subject),
        Clinical::Questionnaire(q) => q.subject.as_ref(),
        Clinical::Observation(o) => o.subject.as_ref(),
        Clinical::Condition(c) => Some(&c.subject),
        Clinical::Procedure(p) => Some(&p.subject),
        Clinical::Encounter(e) => e.subject.as_ref(),
        Clinical::ServiceRequest(r) => Some(&r.subject),
    }?;
    mapping::reference_of(reference)
}
