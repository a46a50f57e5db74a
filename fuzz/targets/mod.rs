//! The fuzz targets' bodies: one function over bytes per parser of outside input.
//! Each is run by its libFuzzer binary (fuzz/fuzz_targets/<name>.rs) and, on its seeds
//! and saved crashes, by tests/fuzz_targets.rs, so every target compiles in the test
//! command. The property everywhere: no input panics; bad input is a clean error.

#![allow(dead_code)]

pub mod bundle;
pub mod cds_hook;
pub mod config;
pub mod notify;

use std::sync::OnceLock;

use time::macros::date;
use time::Date;
use trd_sentinel::clinical::policy::PolicyBook;
use trd_sentinel::clinical::{Knowledge, Policy};
use trd_sentinel::fhir::read::Relevance;

/// The fixtures' as-of date.
pub const AS_OF: Date = date!(2024 - 10 - 20);

/// The embedded knowledge, loaded once per process.
pub fn knowledge() -> &'static Knowledge {
    static K: OnceLock<Knowledge> = OnceLock::new();
    K.get_or_init(|| Knowledge::embedded().expect("embedded knowledge loads"))
}

/// What the reader keeps, built once per process (its code automaton is costly to
/// build; clones share it).
pub fn relevance() -> Relevance {
    static R: OnceLock<Relevance> = OnceLock::new();
    R.get_or_init(|| Relevance::from_knowledge(knowledge()))
        .clone()
}

/// The default policy, loaded once per process.
pub fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        PolicyBook::embedded()
            .expect("embedded policies load")
            .get("default")
            .expect("default policy")
            .clone()
    })
}

/// A file of the repository: the fuzz crate's manifest is in fuzz/, the tests' in the
/// root, and both include these bodies.
pub fn repository_file(relative: &str) -> std::path::PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = if here.ends_with("fuzz") {
        here.parent().unwrap_or(here)
    } else {
        here
    };
    root.join(relative)
}

/// Splits `data` at its first `n` newlines: `n` header lines, then the rest. The
/// targets whose input has several parts (a notification's method, query and headers
/// before its body) frame it so, which keeps seeds readable and lets the fuzzer mutate
/// each part. Missing lines, and lines that are not UTF-8, are empty.
pub fn frame(data: &[u8], n: usize) -> (Vec<&str>, &[u8]) {
    let mut lines = Vec::with_capacity(n);
    let mut rest = data;
    for _ in 0..n {
        let (line, after) = match rest.iter().position(|b| *b == b'\n') {
            Some(at) => (&rest[..at], &rest[at + 1..]),
            None => (rest, &[][..]),
        };
        lines.push(std::str::from_utf8(line).unwrap_or(""));
        rest = after;
    }
    (lines, rest)
}
