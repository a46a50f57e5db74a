//! The fixture patients with their expectations (fixtures/patients/NAME.json and
//! fixtures/expected/NAME.json), as the fixture and shape tests read them.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::Value;
use time::Date;
use trd_sentinel::clinical::policy::{Policy, PolicyBook};

pub struct Fixture {
    pub name: String,
    /// The patient's Bundle file.
    pub bundle_path: PathBuf,
    /// The whole expectation file (`description`, `as_of`, `why`, `expect`, ...).
    pub expected: Value,
    pub as_of: Date,
    pub policy: Policy,
}

impl Fixture {
    /// The patient's Bundle, parsed.
    pub fn bundle(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(&self.bundle_path).expect("fixture"))
            .expect("fixture JSON")
    }
}

/// Every fixture that has an expectation, by name.
pub fn all() -> Vec<Fixture> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let policies = PolicyBook::embedded().expect("policies");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(root.join("expected"))
        .expect("fixtures/expected")
        .map(|e| e.expect("entry").path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|expected_path| {
            let name = expected_path
                .file_stem()
                .and_then(|s| s.to_str())
                .expect("name")
                .to_string();
            let expected: Value =
                serde_json::from_str(&std::fs::read_to_string(expected_path).expect("read"))
                    .expect("json");
            let as_of = Date::parse(
                expected["as_of"].as_str().expect("as_of"),
                time::macros::format_description!("[year]-[month]-[day]"),
            )
            .expect("date");
            let policy = policies
                .get(expected["policy"].as_str().unwrap_or("default"))
                .expect("policy")
                .clone();
            Fixture {
                bundle_path: root.join("patients").join(format!("{name}.json")),
                name,
                expected,
                as_of,
                policy,
            }
        })
        .collect()
}
