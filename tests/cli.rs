//! The command line as a user runs it: `evaluate` (formats, input kinds, exit codes).
//! `check-config` is in tests/check_config.rs.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/validator.rs"]
mod validator;

use std::fs;
use std::path::Path;

use serde_json::Value;

use cli::{evaluate, jsonl, root, stdout, temp_dir};

#[test]
fn table_has_one_line_per_fixture_patient() {
    let out = stdout(&evaluate(&["fixtures/patients", "--as-of", "2024-10-20"]));
    let fixtures = fs::read_dir(root().join("fixtures/patients"))
        .expect("dir")
        .count();
    assert_eq!(
        out.lines().count(),
        fixtures + 1,
        "header + one row each:\n{out}"
    );
    assert!(out.lines().next().expect("header").starts_with("PATIENT"));
    let row = out
        .lines()
        .find(|l| l.starts_with("Patient/dose-too-low "))
        .expect("row");
    assert!(
        row.contains("sertraline 25mg") && row.contains("INADEQUATE"),
        "{row}"
    );
    // Safety leads: the count beside the status, the codes at the end of the line.
    let row = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(&format!("Patient/{name} ")))
            .unwrap_or_else(|| panic!("{name}"))
            .to_string()
    };
    let citalopram = row("citalopram-60-at-70");
    assert!(
        citalopram.contains(" !1 ") && citalopram.ends_with("| SAFETY: dose-above-safety-limit"),
        "{citalopram}"
    );
    assert!(
        row("trd-two-ssris").split_whitespace().nth(2) == Some("-"),
        "no safety finding"
    );
    let unread = row("malformed-resource");
    assert!(unread.contains("| NOT READ: "), "{unread}");
}

#[test]
fn jsonl_has_the_documented_fields() {
    let lines = jsonl(&evaluate(&[
        "fixtures/patients/adequate-ssri.json",
        "--as-of",
        "2024-10-20",
        "--format",
        "jsonl",
    ]));
    assert_eq!(lines.len(), 1);
    let line = &lines[0];
    for key in [
        "patient",
        "policy",
        "trials",
        "amm",
        "findings",
        "ignored_medications",
    ] {
        assert!(line.get(key).is_some(), "missing {key}");
    }
    let trial = &line["trials"][0];
    for key in [
        "ingredient",
        "rxnorm",
        "start",
        "end",
        "daily_dose_mg",
        "adequacy",
        "reasons",
        "response",
    ] {
        assert!(trial.get(key).is_some(), "trial missing {key}");
    }
    for key in [
        "ipsd",
        "prior_use_excluded",
        "acute_phase_days",
        "acute_phase_met",
        "continuation_phase_days",
        "continuation_phase_met",
    ] {
        assert!(line["amm"].get(key).is_some(), "amm missing {key}");
    }
}

/// `--format fhir` is what write-back would send: one transaction per patient with
/// something to report, each resource profiled and passing the independent validator.
#[test]
fn fhir_format_is_the_write_back_transaction() {
    let out = stdout(&evaluate(&[
        "fixtures/patients/trd-two-ssris.json",
        "fixtures/patients/adequate-ssri.json",
        "fixtures/patients/not-treated.json",
        "--as-of",
        "2024-10-20",
        "--format",
        "fhir",
    ]));
    let transactions: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON Bundle per line"))
        .collect();
    let kinds = |t: &Value| -> Vec<String> {
        t["entry"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|e| {
                e["resource"]["resourceType"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            })
            .collect()
    };
    // Each has its assessment Observation; only a flagged status has a Flag.
    assert_eq!(transactions.len(), 3, "{out}");
    for t in &transactions {
        assert_eq!(
            (t["resourceType"].as_str(), t["type"].as_str()),
            (Some("Bundle"), Some("transaction"))
        );
        assert!(!t.to_string().contains("[]"), "no empty arrays: {t}");
        for entry in t["entry"].as_array().into_iter().flatten() {
            assert!(
                entry["resource"]["meta"]["profile"][0].is_string(),
                "{entry}"
            );
            assert!(entry["request"]["method"].is_string(), "{entry}");
        }
    }
    let trd = transactions
        .iter()
        .find(|t| t.to_string().contains("Patient/trd-two-ssris"))
        .expect("trd-two-ssris");
    let trd_kinds = kinds(trd);
    for kind in [
        "Flag",
        "Observation",
        "DetectedIssue",
        "ServiceRequest",
        "Provenance",
    ] {
        assert!(
            trd_kinds.iter().any(|k| k == kind),
            "{kind} in {trd_kinds:?}"
        );
    }
    let flag = trd["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["resource"]["resourceType"] == "Flag")
        .expect("flag");
    assert_eq!(flag["resource"]["status"], "active");
    assert_eq!(
        flag["resource"]["subject"]["reference"],
        "Patient/trd-two-ssris"
    );
    let dir = temp_dir("fhir-format");
    let files: Vec<_> = transactions
        .iter()
        .enumerate()
        .map(|(n, t)| {
            let path = dir.join(format!("transaction-{n}.json"));
            fs::write(&path, t.to_string()).expect("write");
            path
        })
        .collect();
    validator::validate_with_fhir_resources(&files);
}

#[test]
fn unreadable_input_files_fail_with_the_file_named() {
    let missing = evaluate(&["no/such/file.json", "--as-of", "2024-10-20"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no/such/file.json"));

    let dir = temp_dir("bad-json");
    let bad = dir.join("broken.json");
    fs::write(&bad, "{\"resourceType\": \"Bundle\", \"entry\": [").expect("write");
    let output = evaluate(&[bad.to_str().expect("path"), "--as-of", "2024-10-20"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("broken.json") && stderr.contains("not valid JSON"),
        "{stderr}"
    );

    let not_fhir = dir.join("not-fhir.json");
    fs::write(&not_fhir, "{\"hello\": 1}").expect("write");
    let output = evaluate(&[not_fhir.to_str().expect("path"), "--as-of", "2024-10-20"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not a FHIR resource or Bundle"));
}

/// A truncated file in a directory is named, the other files' patients are assessed
/// and printed, and the run fails at the end; `--strict` stops before anything.
#[test]
fn a_broken_file_in_a_directory_fails_the_run_but_not_the_other_patients() {
    let dir = temp_dir("one-broken");
    fs::copy("fixtures/patients/trd-two-ssris.json", dir.join("a.json")).expect("copy");
    fs::write(
        dir.join("b.json"),
        "{\"resourceType\": \"Bundle\", \"entry\": [",
    )
    .expect("write");
    let path = dir.to_str().expect("path");
    let output = evaluate(&[path, "--as-of", "2024-10-20", "--format", "jsonl"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("b.json") && stderr.contains("not valid JSON"),
        "{stderr}"
    );
    assert!(
        stderr.contains("1 of 2 files could not be read"),
        "{stderr}"
    );
    let printed: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("jsonl"))
        .collect();
    assert_eq!(printed.len(), 1);
    assert_eq!(printed[0]["patient"], "Patient/trd-two-ssris");
    assert_eq!(printed[0]["trd_status"], "trd");

    let strict = evaluate(&[
        path,
        "--as-of",
        "2024-10-20",
        "--format",
        "jsonl",
        "--strict",
    ]);
    assert!(!strict.status.success());
    assert!(strict.stdout.is_empty(), "nothing assessed");
    assert!(String::from_utf8_lossy(&strict.stderr).contains("b.json"));
}

#[test]
fn bad_arguments_are_explained() {
    let output = evaluate(&[
        "fixtures/patients",
        "--as-of",
        "2024-10-20",
        "--policy",
        "lenient",
    ]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown policy `lenient`") && stderr.contains("atrq-8w"),
        "{stderr}"
    );
    let output = evaluate(&["fixtures/patients", "--as-of", "20/10/2024"]);
    assert!(!output.status.success());
    let output = evaluate(&["fixtures/patients", "--as-of", "2024-10-20", "--pdc", "80"]);
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("pdc_threshold must be between 0 and 1")
    );
}

/// Splits a fixture bundle into Bulk Data NDJSON files, one per resource type.
fn as_bulk_export(fixture: &str, dir: &Path) {
    let bundle: Value = serde_json::from_str(
        &fs::read_to_string(root().join("fixtures/patients").join(fixture)).expect("read"),
    )
    .expect("json");
    let mut by_type: std::collections::BTreeMap<String, String> = Default::default();
    for entry in bundle["entry"].as_array().expect("entries") {
        let mut resource = entry["resource"].clone();
        // Bulk exports use relative references, never urn:uuid.
        if let Some(subject) = resource.get_mut("subject") {
            if subject["reference"]
                .as_str()
                .is_some_and(|r| r.starts_with("urn:uuid:patient-"))
            {
                let id = subject["reference"]
                    .as_str()
                    .unwrap_or_default()
                    .trim_start_matches("urn:uuid:patient-")
                    .to_string();
                subject["reference"] = Value::String(format!("Patient/{id}"));
            }
        }
        let kind = resource["resourceType"].as_str().expect("type").to_string();
        let line = by_type.entry(kind).or_default();
        line.push_str(&serde_json::to_string(&resource).expect("json"));
        line.push('\n');
    }
    for (kind, text) in by_type {
        fs::write(dir.join(format!("{kind}.ndjson")), text).expect("write");
    }
}

#[test]
fn bulk_ndjson_gives_the_same_trials_as_the_bundle() {
    let dir = temp_dir("bulk");
    as_bulk_export("adequate-ssri.json", &dir);
    let bulk = jsonl(&evaluate(&[
        dir.to_str().expect("path"),
        "--as-of",
        "2024-10-20",
        "--format",
        "jsonl",
    ]));
    let bundle = jsonl(&evaluate(&[
        "fixtures/patients/adequate-ssri.json",
        "--as-of",
        "2024-10-20",
        "--format",
        "jsonl",
    ]));
    assert_eq!(bulk.len(), 1);
    assert_eq!(bulk[0]["trials"], bundle[0]["trials"]);
    assert_eq!(bulk[0]["amm"], bundle[0]["amm"]);
}

#[test]
fn a_transaction_bundle_reads_like_a_collection() {
    let dir = temp_dir("transaction");
    let mut bundle: Value = serde_json::from_str(
        &fs::read_to_string(root().join("fixtures/patients/switch.json")).expect("read"),
    )
    .expect("json");
    bundle["type"] = Value::String("transaction".into());
    for entry in bundle["entry"].as_array_mut().expect("entries") {
        let kind = entry["resource"]["resourceType"]
            .as_str()
            .expect("type")
            .to_string();
        entry["request"] = serde_json::json!({ "method": "POST", "url": kind });
        entry["resource"]
            .as_object_mut()
            .expect("object")
            .remove("id");
        if entry["resource"]["subject"]["reference"] == "Patient/switch" {
            entry["resource"]["subject"]["reference"] =
                Value::String("urn:uuid:patient-switch".into());
        }
    }
    let path = dir.join("transaction.json");
    fs::write(&path, serde_json::to_string(&bundle).expect("json")).expect("write");
    let lines = jsonl(&evaluate(&[
        path.to_str().expect("path"),
        "--as-of",
        "2024-10-20",
        "--format",
        "jsonl",
    ]));
    assert_eq!(
        lines.len(),
        1,
        "resources without ids still group under the urn:uuid patient"
    );
    assert_eq!(lines[0]["patient"], "urn:uuid:patient-switch");
    assert_eq!(lines[0]["trials"].as_array().map(Vec::len), Some(2));
}

#[test]
fn measurement_period_moves_the_amm_intake_window() {
    let args = [
        "fixtures/patients/adequate-ssri.json",
        "--as-of",
        "2024-10-20",
        "--format",
        "jsonl",
    ];
    let default = jsonl(&evaluate(&args));
    assert_eq!(default[0]["amm"]["measurement_period"], 2024);
    let mut with_year = args.to_vec();
    with_year.extend(["--measurement-period", "2025"]);
    let later = jsonl(&evaluate(&with_year));
    assert_eq!(
        later[0]["amm"],
        Value::Null,
        "IPSD 2024-01-08 is outside the 2025 intake period"
    );
}

/// `evaluate` without `--as-of`: the command line reads the clock (UTC) and the
/// assessment is as of today.
#[test]
fn as_of_defaults_to_today() {
    let before = time::OffsetDateTime::now_utc().date();
    let lines = jsonl(&evaluate(&[
        "fixtures/patients/adequate-ssri.json",
        "--format",
        "jsonl",
    ]));
    let after = time::OffsetDateTime::now_utc().date();
    assert_eq!(lines.len(), 1);
    let as_of = lines[0]["as_of"].as_str().expect("as_of").to_string();
    assert!(
        as_of == before.to_string() || as_of == after.to_string(),
        "as_of {as_of}, today {before}"
    );
}

#[test]
fn measurement_period_alone_assesses_as_of_its_last_day() {
    let lines = jsonl(&evaluate(&[
        "fixtures/patients/adequate-ssri.json",
        "--measurement-period",
        "2024",
        "--format",
        "jsonl",
    ]));
    assert_eq!(lines[0]["as_of"], "2024-12-31");
    assert_eq!(lines[0]["amm"]["measurement_period"], 2024);
}

/// An export directory holds more than FHIR: a README and a JSON file that is not a
/// FHIR resource (a manifest) are skipped with one warning each, the patients read.
#[test]
fn a_directory_skips_files_that_are_not_fhir_with_a_warning_each() {
    let dir = temp_dir("mixed-dir");
    fs::copy(
        root().join("fixtures/patients/adequate-ssri.json"),
        dir.join("adequate-ssri.json"),
    )
    .expect("copy");
    fs::write(dir.join("README.txt"), "exported 2024-10-20\n").expect("write");
    fs::write(
        dir.join("manifest.json"),
        "{\"transactionTime\": \"2024-10-20T00:00:00Z\", \"output\": []}",
    )
    .expect("write");
    fs::write(
        dir.join("log.ndjson"),
        "{\"level\": \"info\"}\n{\"level\": \"warn\"}\n",
    )
    .expect("write");
    let output = evaluate(&[dir.to_str().expect("path"), "--as-of", "2024-10-20"]);
    let out = stdout(&output);
    assert_eq!(out.lines().count(), 2, "header + the one patient:\n{out}");
    assert!(out.contains("Patient/adequate-ssri"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    for name in ["README.txt", "manifest.json", "log.ndjson"] {
        let warnings = stderr
            .lines()
            .filter(|l| l.starts_with("warning:") && l.contains(name))
            .count();
        assert_eq!(warnings, 1, "one warning for {name}: {stderr}");
    }
    assert!(!stderr.contains("adequate-ssri.json"), "{stderr}");
}

/// A file named on the command line is meant to be read: not FHIR is an error naming
/// it (the run fails; the other files are still assessed, or nothing with --strict).
#[test]
fn an_explicit_file_that_is_not_fhir_is_an_error() {
    let dir = temp_dir("explicit-not-fhir");
    let manifest = dir.join("manifest.json");
    fs::write(&manifest, "{\"output\": []}").expect("write");
    let readme = dir.join("README.txt");
    fs::write(&readme, "not json").expect("write");
    for path in [&manifest, &readme] {
        let output = evaluate(&[
            "fixtures/patients/adequate-ssri.json",
            path.to_str().expect("path"),
            "--as-of",
            "2024-10-20",
        ]);
        assert_eq!(output.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(path.to_str().expect("path")),
            "names the file: {stderr}"
        );
        let printed = String::from_utf8_lossy(&output.stdout);
        assert!(
            printed.contains("Patient/adequate-ssri "),
            "the readable file is still assessed: {printed}"
        );
        let strict = evaluate(&[
            "fixtures/patients/adequate-ssri.json",
            path.to_str().expect("path"),
            "--as-of",
            "2024-10-20",
            "--strict",
        ]);
        assert_eq!(strict.status.code(), Some(1));
        assert!(strict.stdout.is_empty(), "--strict: nothing assessed");
    }
}

/// A patient the engine cannot assess (today a dispense with 10,000,000 days of supply
/// overflows the calendar) does not stop the others; the exit code says one failed and
/// stderr names the patient by id only. Once the engine copes with such a record the
/// run simply succeeds: both outcomes keep the other patient's row.
#[test]
fn a_patient_that_cannot_be_assessed_does_not_stop_the_others() {
    let dir = temp_dir("one-bad-patient");
    fs::copy(
        root().join("fixtures/patients/adequate-ssri.json"),
        dir.join("adequate-ssri.json"),
    )
    .expect("copy");
    let bad = serde_json::json!({
        "resourceType": "MedicationDispense",
        "id": "huge-supply",
        "status": "completed",
        "subject": {"reference": "Patient/huge-supply"},
        "medicationCodeableConcept": {"coding": [{
            "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
            "code": "312938",
            "display": "sertraline 100 MG Oral Tablet"
        }]},
        "whenHandedOver": "2024-01-08",
        "quantity": {"value": 30, "unit": "tablet"},
        "daysSupply": {"value": 10000000, "unit": "day", "system": "http://unitsofmeasure.org", "code": "d"}
    });
    fs::write(dir.join("huge-supply.json"), bad.to_string()).expect("write");
    let output = evaluate(&[dir.to_str().expect("path"), "--as-of", "2024-10-20"]);
    let out = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(out.contains("Patient/adequate-ssri"), "{out}\n{stderr}");
    if output.status.success() {
        assert!(out.contains("Patient/huge-supply"), "{out}");
    } else {
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("Patient/huge-supply: could not be assessed"),
            "{stderr}"
        );
        assert!(stderr.contains("1 of 2 patients"), "{stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("10000000"),
            "no panic message (it can quote record values): {stderr}"
        );
    }
}

#[test]
fn html_writes_a_page_per_patient_and_the_population_index() {
    let out = temp_dir("html");
    let out_arg = out.display().to_string();
    let output = evaluate(&[
        "fixtures/patients",
        "--as-of",
        "2024-10-20",
        "--format",
        "html",
        "--out",
        &out_arg,
    ]);
    stdout(&output);
    let patients = fs::read_dir(root().join("fixtures/patients"))
        .expect("fixtures")
        .count();
    let pages: Vec<String> = fs::read_dir(&out)
        .expect("out")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with("Patient_"))
        .collect();
    assert_eq!(pages.len(), patients, "a page per fixture patient");
    let index = fs::read_to_string(out.join("index.html")).expect("index");
    assert!(index.contains(&format!("{patients} patients, assessed as of 2024-10-20")));
    for page in &pages {
        assert!(index.contains(&format!("href=\"{page}\"")), "{page} linked");
    }
    // Safety leads the index, naming the patients.
    let safety_at = index
        .find("<h2>Safety signals</h2>")
        .expect("safety section");
    let status_at = index
        .find("<h2>By TRD status</h2>")
        .expect("status section");
    assert!(safety_at < status_at, "safety first");
    let safety_table = &index[safety_at..status_at];
    for patient in ["cssrs-high-risk-not-treated", "citalopram-60-at-70"] {
        assert!(
            safety_table.contains(&format!("Patient/{patient}")),
            "{patient} named"
        );
    }
    let trd = fs::read_to_string(out.join("Patient_trd-two-ssris.html")).expect("page");
    assert!(trd.contains("<h1>Treatment-resistant depression</h1>"));
    // Without --out the html format is refused.
    let refused = evaluate(&["fixtures/patients", "--format", "html"]);
    assert!(!refused.status.success());
}

#[test]
fn document_prints_one_fhir_document_per_patient() {
    let output = evaluate(&[
        "fixtures/patients/trd-two-ssris.json",
        "fixtures/patients/not-treated.json",
        "--as-of",
        "2024-10-20",
        "--format",
        "document",
    ]);
    let documents = jsonl(&output);
    let subjects: Vec<&str> = documents
        .iter()
        .map(|d| {
            d["entry"][0]["resource"]["subject"]["reference"]
                .as_str()
                .unwrap_or("")
        })
        .collect();
    assert_eq!(subjects, ["Patient/not-treated", "Patient/trd-two-ssris"]);
    let documents: Vec<&Value> = documents
        .iter()
        .filter(|d| d["entry"][0]["resource"]["subject"]["reference"] == "Patient/trd-two-ssris")
        .collect();
    assert_eq!(documents[0]["type"], "document");
    let composition = &documents[0]["entry"][0]["resource"];
    assert_eq!(composition["resourceType"], "Composition");
    assert_eq!(composition["subject"]["reference"], "Patient/trd-two-ssris");
    assert_eq!(composition["section"].as_array().map(Vec::len), Some(8));
}
