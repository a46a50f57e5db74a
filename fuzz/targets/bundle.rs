//! Targets `bundle` and `ndjson`: a FHIR JSON document (Bundle or single resource) or
//! Bulk Data NDJSON through the reader, the mapping and the engine, and every output
//! `evaluate` and write-back make of an assessment (table, jsonl, FHIR, the treatment
//! summary document, the patient page, the write-back resources).

use trd_sentinel::clinical::{self, summary};
use trd_sentinel::config::WritebackSettings;
use trd_sentinel::fhir::read::ResourcePool;
use trd_sentinel::{outputs, page, report};

use super::{knowledge, policy, relevance, AS_OF};

pub fn json(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut pool = ResourcePool::new(relevance());
    if pool.add_json(text, "fuzz").is_ok() {
        assess_all(&pool);
    }
}

pub fn ndjson(data: &[u8]) {
    let mut pool = ResourcePool::new(relevance());
    // NDJSON is read line by line from a reader, as an export file is.
    if pool.add_ndjson_reader(data, "fuzz").is_ok() {
        assess_all(&pool);
    }
}

fn assess_all(pool: &ResourcePool) {
    let settings = WritebackSettings::default();
    for record in pool.records() {
        let assessment = clinical::assess(&record, policy(), knowledge(), AS_OF);
        let _ = report::Table::default().row(&assessment);
        let _ = report::jsonl_row(&assessment);
        let _ = outputs::writeback_transaction(&assessment, &settings);
        let _ = outputs::summary_document(&assessment);
        let _ = summary::summarise(&assessment).text();
        let _ = page::patient::page(&assessment, knowledge());
    }
}
