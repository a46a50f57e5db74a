//! Fuzz target: any bytes as a FHIR JSON document (Bundle or single resource) through
//! the bundle reader, the mapping and the engine, as `evaluate` runs them. The
//! property is the one in tests/proptest_engine.rs: no input panics. Reading errors
//! (not JSON, not FHIR) are fine; they are clean `Err`s.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use time::macros::date;
use trd_sentinel::clinical::{self, policy::PolicyBook, Knowledge, Policy};
use trd_sentinel::fhir::read::{ObservationCodes, ResourcePool};
use trd_sentinel::report;

fn knowledge() -> &'static Knowledge {
    static K: OnceLock<Knowledge> = OnceLock::new();
    K.get_or_init(|| Knowledge::embedded().expect("embedded knowledge loads"))
}

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        PolicyBook::embedded()
            .expect("embedded policies load")
            .get("default")
            .expect("default policy")
            .clone()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut pool = ResourcePool::new(ObservationCodes::from_knowledge(knowledge()));
    if pool.add_json(text, "fuzz").is_err() {
        return;
    }
    for record in pool.records() {
        let assessment = clinical::assess(&record, policy(), knowledge(), date!(2024 - 10 - 20));
        let _ = report::table_row(&assessment);
        let _ = report::jsonl_row(&assessment);
        let _ = report::fhir_observation(&assessment);
    }
});
