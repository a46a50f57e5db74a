//! Property: whatever a FHIR record holds, reading it and assessing it returns an
//! assessment; nothing panics. Real exports carry values no fixture has (a daysSupply
//! of 10,000,000, a dispense dated 9999-12-20, a dose of 1e300, a number where a string
//! belongs), and one such record must not take down `evaluate`, the pipeline or a
//! shard consumer.
//!
//! Two sources of records: bundles generated from the resource types the engine reads
//! (MedicationRequest, MedicationDispense, MedicationStatement, PHQ-9 Observation,
//! Condition) with type-correct-ish random values including extremes, and the committed
//! fixture bundles with random mutations (fields dropped, numbers and strings replaced
//! with extremes or wrong JSON types). Each goes through `ResourcePool::add_json`,
//! `records()`, `clinical::assess` and the `evaluate` renderings.
//!
//! `cargo test --test proptest_engine` runs 256 cases per property (PROPTEST_CASES
//! overrides); `scripts/fuzz` runs the coverage-guided fuzzer over the same path.

#[path = "support/fhir_strategies.rs"]
mod fhir_strategies;

use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::Value;
use time::macros::date;
use time::Date;

use trd_sentinel::clinical::{self, Knowledge, Policy};
use trd_sentinel::fhir::read::{Relevance, ResourcePool};
use trd_sentinel::report;

use fhir_strategies::{bundle_of, date_value, extreme_number, resource, wrong_type};

fn knowledge() -> &'static Knowledge {
    static K: OnceLock<Knowledge> = OnceLock::new();
    K.get_or_init(|| Knowledge::embedded().expect("embedded knowledge"))
}

fn policy() -> &'static Policy {
    static P: OnceLock<Policy> = OnceLock::new();
    P.get_or_init(|| {
        clinical::policy::PolicyBook::embedded()
            .expect("policies")
            .get("default")
            .expect("default policy")
            .clone()
    })
}

/// The committed fixture bundles, read once.
fn fixtures() -> &'static [(String, Value)] {
    static F: OnceLock<Vec<(String, Value)>> = OnceLock::new();
    F.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/patients");
        let mut out: Vec<(String, Value)> = fs::read_dir(&dir)
            .expect("fixtures")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .map(|p| {
                let text = fs::read_to_string(&p).expect("read");
                let name = p.file_name().expect("name").to_string_lossy().into_owned();
                (name, serde_json::from_str(&text).expect("fixture json"))
            })
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    })
}

/// The pipeline under test: read the bundle, map, assess every patient, render it as
/// `evaluate` would. Returns the number of assessments.
fn read_and_assess(bundle: &str, as_of: Date) -> usize {
    let mut pool = ResourcePool::new(Relevance::from_knowledge(knowledge()));
    // A document that is not FHIR is a clean error, which is fine: only panics fail.
    if pool.add_json(bundle, "proptest").is_err() {
        return 0;
    }
    let records = pool.records();
    for record in &records {
        let assessment = clinical::assess(record, policy(), knowledge(), as_of);
        assert_eq!(assessment.patient, record.patient);
        let _ = report::Table::default().row(&assessment);
        let _ = report::jsonl_row(&assessment);
        let _ = trd_sentinel::outputs::writeback_transaction(&assessment, &Default::default());
    }
    records.len()
}

/// Every patient's `evaluate --format jsonl` line.
fn rows(bundle: &str, as_of: Date) -> Vec<String> {
    let mut pool = ResourcePool::new(Relevance::from_knowledge(knowledge()));
    if pool.add_json(bundle, "proptest").is_err() {
        return Vec::new();
    }
    pool.records()
        .iter()
        .map(|record| {
            let assessment = clinical::assess(record, policy(), knowledge(), as_of);
            report::jsonl_row(&assessment).unwrap_or_default()
        })
        .collect()
}

// ---- values -------------------------------------------------------------------

// ---- mutations ----------------------------------------------------------------

/// One change to a JSON tree, applied at the n-th node (depth first, modulo the count).
#[derive(Debug, Clone)]
enum Mutation {
    /// Drop the node from its object or array.
    Remove(usize),
    /// Replace the node with another value (an extreme number, a wrong type, a date).
    Replace(usize, Value),
    /// Replace every number in the tree with this one.
    AllNumbers(Value),
    /// Replace every string that looks like a date with this one.
    AllDates(Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        3 => any::<usize>().prop_map(Mutation::Remove),
        3 => (any::<usize>(), prop_oneof![extreme_number(), wrong_type(), date_value()])
            .prop_map(|(n, v)| Mutation::Replace(n, v)),
        1 => extreme_number().prop_map(Mutation::AllNumbers),
        1 => date_value().prop_map(Mutation::AllDates),
    ]
}

fn count_nodes(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count_nodes).sum(),
        Value::Object(o) => o.values().map(count_nodes).sum(),
        _ => 0,
    }
}

/// Applies `f` to the n-th descendant (pre-order, the root is 0 and is never
/// touched) together with its parent; returns whether it was found.
fn at_node(
    v: &mut Value,
    target: usize,
    seen: &mut usize,
    f: &mut dyn FnMut(&mut Value, NodeKey),
) -> bool {
    let keys: Vec<NodeKey> = match v {
        Value::Array(a) => (0..a.len()).map(NodeKey::Index).collect(),
        Value::Object(o) => o.keys().cloned().map(NodeKey::Key).collect(),
        _ => return false,
    };
    for key in keys {
        *seen += 1;
        if *seen == target {
            f(v, key);
            return true;
        }
        let child = match (&mut *v, &key) {
            (Value::Array(a), NodeKey::Index(i)) => &mut a[*i],
            (Value::Object(o), NodeKey::Key(k)) => match o.get_mut(k) {
                Some(c) => c,
                None => continue,
            },
            _ => continue,
        };
        if at_node(child, target, seen, f) {
            return true;
        }
    }
    false
}

#[derive(Debug, Clone)]
enum NodeKey {
    Index(usize),
    Key(String),
}

fn map_leaves(v: &mut Value, f: &dyn Fn(&Value) -> Option<Value>) {
    match v {
        Value::Array(a) => a.iter_mut().for_each(|c| map_leaves(c, f)),
        Value::Object(o) => o.values_mut().for_each(|c| map_leaves(c, f)),
        leaf => {
            if let Some(new) = f(leaf) {
                *leaf = new;
            }
        }
    }
}

fn looks_like_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 4 && b[..4].iter().all(u8::is_ascii_digit) && (b.len() == 4 || b[4] == b'-')
}

fn apply(bundle: &mut Value, mutations: &[Mutation]) {
    for m in mutations {
        match m {
            Mutation::Remove(n) | Mutation::Replace(n, _) => {
                let count = count_nodes(bundle);
                if count < 2 {
                    continue;
                }
                let target = 1 + n % (count - 1);
                let mut seen = 0;
                at_node(
                    bundle,
                    target,
                    &mut seen,
                    &mut |parent, key| match (parent, key, m) {
                        (Value::Array(a), NodeKey::Index(i), Mutation::Remove(_)) => {
                            a.remove(i);
                        }
                        (Value::Object(o), NodeKey::Key(k), Mutation::Remove(_)) => {
                            o.remove(&k);
                        }
                        (Value::Array(a), NodeKey::Index(i), Mutation::Replace(_, v)) => {
                            a[i] = v.clone();
                        }
                        (Value::Object(o), NodeKey::Key(k), Mutation::Replace(_, v)) => {
                            o.insert(k, v.clone());
                        }
                        _ => {}
                    },
                );
            }
            Mutation::AllNumbers(new) => {
                map_leaves(bundle, &|leaf| leaf.is_number().then(|| new.clone()))
            }
            Mutation::AllDates(new) => map_leaves(bundle, &|leaf| {
                leaf.as_str()
                    .filter(|s| looks_like_date(s))
                    .map(|_| new.clone())
            }),
        }
    }
}

/// Mostly a plausible as-of date; sometimes the calendar's ends (a user may type
/// `--as-of 9999-12-31`, and records dated near it then count).
fn as_of() -> impl Strategy<Value = Date> {
    prop_oneof![
        8 => Just(date!(2024 - 10 - 20)),
        1 => prop_oneof![Just(date!(9999 - 12 - 31)), Just(date!(0001 - 01 - 01))],
        2 => (2015i32..=2026, 1u8..=12, 1u8..=28).prop_map(|(y, m, d)| {
            Date::from_calendar_date(y, time::Month::try_from(m).expect("month"), d)
                .expect("valid date")
        }),
    ]
}

fn generated_case() -> impl Strategy<Value = (Value, Date)> {
    (
        prop::collection::vec(resource(), 1..8),
        prop::collection::vec(mutation(), 0..4),
        as_of(),
    )
        .prop_map(|(resources, mutations, as_of)| {
            let mut bundle = bundle_of(resources);
            apply(&mut bundle, &mutations);
            (bundle, as_of)
        })
}

fn fixture_case() -> impl Strategy<Value = (String, Value, Date)> {
    (
        0..fixtures().len(),
        prop::collection::vec(mutation(), 1..6),
        as_of(),
    )
        .prop_map(|(index, mutations, as_of)| {
            let (name, bundle) = &fixtures()[index];
            let mut bundle = bundle.clone();
            apply(&mut bundle, &mutations);
            (name.clone(), bundle, as_of)
        })
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // 256 cases each keep this file under a minute in a debug build.
        cases: std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|c| c.parse().ok())
            .unwrap_or(256),
        // The crashing inputs found are kept, minimal and named, in tests/bad_input.rs
        // rather than as opaque seeds.
        failure_persistence: None,
        max_shrink_iters: 2048,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn generated_records_are_assessed_without_panic((bundle, as_of) in generated_case()) {
        let text = bundle.to_string();
        read_and_assess(&text, as_of);
    }

    /// A record's resources come in any order (a Bundle as written, an export's
    /// files by type, an EHR's pages): the assessment, its findings and their
    /// evidence are the same, in the same order, whatever the order.
    #[test]
    fn the_order_of_a_records_resources_never_changes_its_assessment(
        (index, order, as_of) in (0..fixtures().len())
            .prop_flat_map(|index| {
                let entries = fixtures()[index].1["entry"].as_array().map(Vec::len).unwrap_or(0);
                (Just(index), Just((0..entries).collect::<Vec<usize>>()).prop_shuffle(), as_of())
            })
    ) {
        let (name, bundle) = &fixtures()[index];
        let entries = bundle["entry"].as_array().cloned().unwrap_or_default();
        let mut shuffled = bundle.clone();
        shuffled["entry"] = Value::Array(order.iter().filter_map(|&n| entries.get(n).cloned()).collect());
        prop_assert_eq!(rows(&bundle.to_string(), as_of), rows(&shuffled.to_string(), as_of), "{}", name);
    }

    #[test]
    fn mutated_fixtures_are_assessed_without_panic((name, bundle, as_of) in fixture_case()) {
        let text = bundle.to_string();
        let _ = name;
        read_and_assess(&text, as_of);
    }
}
