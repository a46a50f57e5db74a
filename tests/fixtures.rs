//! Every fixture patient's assessment matches its hand-written expectation.
//!
//! `fixtures/expected/NAME.json` holds a partial jsonl line: objects must match key by
//! key (extra keys in the output are fine), arrays element by element with equal
//! length, numbers within 0.01.
//!
//! Every fixture has a `why` (the rule it shows, with its source) and pins the whole answer:
//! `trd_status`, every trial's ingredient, period, dose, adequacy, reasons and
//! response class, the non-trials, and the complete sorted lists `finding_codes` and
//! `suggestion_codes`, so an unexpected extra finding or suggestion fails it.

#[path = "support/fixture_set.rs"]
mod fixture_set;

use serde_json::Value;
use trd_sentinel::clinical::{assess, Knowledge};
use trd_sentinel::fhir::read::{Relevance, ResourcePool};

fn matches(expected: &Value, actual: &Value, path: &str, problems: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (key, value) in e {
                match a.get(key) {
                    Some(actual) => matches(value, actual, &format!("{path}.{key}"), problems),
                    None => problems.push(format!("{path}.{key}: missing in output")),
                }
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            if e.len() != a.len() {
                problems.push(format!(
                    "{path}: expected {} elements, got {}: {actual}",
                    e.len(),
                    a.len()
                ));
                return;
            }
            for (i, (e, a)) in e.iter().zip(a).enumerate() {
                matches(e, a, &format!("{path}[{i}]"), problems);
            }
        }
        (Value::Number(e), Value::Number(a)) => {
            let (e, a) = (
                e.as_f64().unwrap_or(f64::NAN),
                a.as_f64().unwrap_or(f64::NAN),
            );
            if (e - a).abs() > 0.01 {
                problems.push(format!("{path}: expected {e}, got {a}"));
            }
        }
        (e, a) if e == a => {}
        (e, a) => problems.push(format!("{path}: expected {e}, got {a}")),
    }
}

/// A complete expectation names everything a reader of the verdict relies on.
fn pins_everything(expect: &Value, name: &str, problems: &mut Vec<String>) {
    for key in [
        "trd_status",
        "trials",
        "non_trials",
        "finding_codes",
        "suggestion_codes",
    ] {
        if expect.get(key).is_none() {
            problems.push(format!("{name}: a complete expectation needs `{key}`"));
        }
    }
    for (i, trial) in expect["trials"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        for key in [
            "ingredient",
            "start",
            "end",
            "daily_dose_mg",
            "adequacy",
            "reasons",
            "response",
        ] {
            if trial.get(key).is_none() {
                problems.push(format!(
                    "{name}.trials[{i}]: a complete expectation needs `{key}`"
                ));
            }
        }
        if trial["response"].get("class").is_none() {
            problems.push(format!("{name}.trials[{i}].response: needs `class`"));
        }
    }
}

#[test]
fn every_fixture_matches_its_expectation() {
    let knowledge = Knowledge::embedded().expect("knowledge");
    let fixtures = fixture_set::all();
    assert!(
        fixtures.len() >= 25,
        "at least 25 fixtures, found {}",
        fixtures.len()
    );

    let mut failures = Vec::new();
    for fixture in &fixtures {
        let (name, expected, as_of) = (fixture.name.as_str(), &fixture.expected, fixture.as_of);
        let policy = &fixture.policy;
        let mut pool = ResourcePool::new(Relevance::from_knowledge(&knowledge));
        pool.add_path(&fixture.bundle_path).expect("bundle reads");
        let records = pool.records();
        assert_eq!(records.len(), 1, "{name}: one patient per fixture");
        let assessment = serde_json::to_value(assess(&records[0], policy, &knowledge, as_of))
            .expect("serialise");

        let mut problems = Vec::new();
        if expected.get("why").and_then(Value::as_str).is_none() {
            problems.push(format!(
                "{name}: no `why` (the rule it shows, with its source)"
            ));
        }
        {
            pins_everything(&expected["expect"], name, &mut problems);
            let codes = |list: &str| -> Value {
                let mut codes: Vec<String> = assessment[list]
                    .as_array()
                    .map(|items| {
                        items
                            .iter()
                            .filter_map(|i| {
                                let code = &i["code"];
                                code.as_str().or(code["code"].as_str()).map(str::to_string)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                codes.sort();
                Value::from(codes)
            };
            let actual_codes = serde_json::json!({
                "finding_codes": codes("findings"),
                "suggestion_codes": codes("suggestions"),
            });
            for key in ["finding_codes", "suggestion_codes"] {
                matches(
                    &expected["expect"][key],
                    &actual_codes[key],
                    &format!("{name}.{key}"),
                    &mut problems,
                );
            }
        }
        let mut expect = expected["expect"].clone();
        if let Some(object) = expect.as_object_mut() {
            object.remove("finding_codes");
            object.remove("suggestion_codes");
        }
        matches(&expect, &assessment, name, &mut problems);
        if !problems.is_empty() {
            failures.push(format!(
                "{name} ({}):\n  {}",
                expected["description"].as_str().unwrap_or(""),
                problems.join("\n  ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
