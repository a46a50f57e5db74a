//! The fuzz targets in the test command (issue 30): their bodies (fuzz/targets/) are
//! compiled here, so a target that stops compiling fails `cargo test`; each runs over
//! its seeds (fuzz/seeds/<target>/, the fixtures for the JSON readers) and every input
//! that once crashed it (tests/data/fuzz-crashes/<target>/), and over a bounded number
//! of random mutations of its seeds (proptest: bytes flipped, inserted, deleted, parts
//! spliced), so the property "no input panics" is checked on every run.
//!
//! Coverage-guided fuzzing itself (`scripts/fuzz`) needs an instrumented optimised
//! build of the whole crate (tens of minutes on 2 cores), which the test command's
//! time budget does not leave room for; run it before changing a parser.

#[path = "../fuzz/targets/mod.rs"]
mod targets;

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Mutated inputs per target and run.
const MUTATIONS: u32 = 48;

type Body = fn(&[u8]);

/// Every target: its name and body.
const TARGETS: &[(&str, Body)] = &[
    ("bundle", targets::bundle::json),
    ("ndjson", targets::bundle::ndjson),
    ("notify", targets::notify::run),
    ("cds_hook", targets::cds_hook::run),
    ("config", targets::config::run),
];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// A target's seeds: its own, and for the JSON reader the fixtures.
fn seeds(target: &str) -> Vec<PathBuf> {
    let mut all = files_in(&root().join("fuzz/seeds").join(target));
    if target == "bundle" {
        all.extend(files_in(&root().join("fixtures/patients")));
    }
    all
}

/// The inputs that once crashed a target (a regression test each).
fn crashes(target: &str) -> Vec<PathBuf> {
    let mut all = files_in(&root().join("tests/data/fuzz-crashes").join(target));
    if target == "bundle" {
        // Saved before the targets had folders of their own.
        all.extend(
            files_in(&root().join("tests/data/fuzz-crashes"))
                .into_iter()
                .filter(|p| p.extension().is_some_and(|e| e == "json")),
        );
    }
    all
}

#[test]
fn every_target_has_seeds() {
    for (name, _) in TARGETS {
        assert!(
            seeds(name).len() >= 3,
            "fuzz target {name}: at least 3 seeds under fuzz/seeds/{name}/ (fuzz/seeds/make_seeds.py)"
        );
        assert!(
            root()
                .join(format!("fuzz/fuzz_targets/{name}.rs"))
                .is_file(),
            "fuzz target {name}: its libFuzzer binary fuzz/fuzz_targets/{name}.rs"
        );
    }
}

#[test]
fn every_seed_and_every_saved_crash_runs_without_panicking() {
    let mut ran = 0;
    for (name, body) in TARGETS {
        for path in seeds(name).into_iter().chain(crashes(name)) {
            let data = std::fs::read(&path).expect("readable input");
            let outcome = std::panic::catch_unwind(|| body(&data));
            assert!(
                outcome.is_ok(),
                "fuzz target {name} panicked on {}",
                path.display()
            );
            ran += 1;
        }
    }
    assert!(ran >= 5 * 3, "ran {ran} inputs");
}

/// One of the mutations libFuzzer also makes.
#[derive(Debug, Clone)]
enum Mutation {
    Flip {
        at: usize,
        bit: u8,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Delete {
        at: usize,
        len: usize,
    },
    /// The input cut at `at`, followed by another seed's tail from `from`.
    Splice {
        at: usize,
        other: usize,
        from: usize,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (
            any::<usize>(),
            prop::collection::vec(
                prop_oneof![
                    any::<u8>(),
                    prop::sample::select(b"{}[]\",:0-9.e\\\n".to_vec())
                ],
                1..16
            )
        )
            .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Mutation::Delete { at, len }),
        (any::<usize>(), any::<usize>(), any::<usize>())
            .prop_map(|(at, other, from)| Mutation::Splice { at, other, from }),
    ]
}

fn apply(seeds: &[Vec<u8>], seed: usize, mutations: &[Mutation]) -> Vec<u8> {
    let pick = |n: usize| &seeds[n % seeds.len()];
    let mut data = pick(seed).clone();
    for m in mutations {
        let within = |at: usize| if data.is_empty() { 0 } else { at % data.len() };
        match m {
            Mutation::Flip { at, bit } => {
                let at = within(*at);
                if let Some(b) = data.get_mut(at) {
                    *b ^= 1 << bit;
                }
            }
            Mutation::Insert { at, bytes } => {
                let at = within(*at);
                data.splice(at..at, bytes.iter().copied());
            }
            Mutation::Delete { at, len } => {
                let at = within(*at);
                let end = at.saturating_add(*len).min(data.len());
                data.drain(at..end);
            }
            Mutation::Splice { at, other, from } => {
                let at = within(*at);
                let other = pick(*other);
                let from = if other.is_empty() {
                    0
                } else {
                    from % other.len()
                };
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
        }
    }
    data
}

#[test]
fn mutated_seeds_never_panic() {
    for (name, body) in TARGETS {
        let inputs: Vec<Vec<u8>> = seeds(name)
            .iter()
            .map(|p| std::fs::read(p).expect("readable seed"))
            .collect();
        let mut runner = TestRunner::new(Config {
            cases: MUTATIONS,
            failure_persistence: None,
            ..Config::default()
        });
        let result = runner.run(
            &(any::<usize>(), prop::collection::vec(mutation(), 1..6)),
            |(seed, mutations)| {
                let data = apply(&inputs, seed, &mutations);
                let outcome = std::panic::catch_unwind(|| body(&data));
                prop_assert!(
                    outcome.is_ok(),
                    "fuzz target {} panicked on a mutated seed ({} bytes): {:?}",
                    name,
                    data.len(),
                    String::from_utf8_lossy(&data[..data.len().min(2000)])
                );
                Ok(())
            },
        );
        if let Err(e) = result {
            panic!("{e}");
        }
    }
}
