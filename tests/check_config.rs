//! `check-config` as an operator runs it: every problem listed, effective settings
//! printed without secrets.

#[path = "support/cli.rs"]
mod cli;

use std::fs;
use std::process::{Command, Output};

use serde_json::Value;

use cli::{stdout, temp_dir};

/// `check-config` with only the given environment (no inherited TRD_* variables).
fn check_config(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_trd-sentinel"))
        .arg("check-config")
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run trd-sentinel")
}

#[test]
fn check_config_lists_every_problem_and_fails() {
    let output = check_config(
        &[],
        &[
            ("TRD_FHIR_BASE_URL", "ftp://ehr"),
            ("TRD_AMQP_URL", "http://rabbit"),
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stderr);
    for problem in [
        "fhir.base_url `ftp://ehr` is not an http(s) URL",
        "notifications need authentication",
        "amqp.url must start with amqp://",
    ] {
        assert!(text.contains(problem), "missing `{problem}` in: {text}");
    }
}

#[test]
fn check_config_prints_the_effective_settings_without_secrets() {
    let dir = temp_dir("check-config");
    let file = dir.join("config.toml");
    fs::write(
        &file,
        "[pipeline]\ndrain_secs = 42\n[writeback]\nresources = [\"Flag\"]\n",
    )
    .expect("write");
    let output = check_config(
        &["--print", "--config", file.to_str().expect("path")],
        &[
            ("TRD_FHIR_BASE_URL", "https://ehr.example.org/fhir"),
            ("TRD_NOTIFY_TOKEN", "notify-s3cret"),
            ("TRD_AMQP_URL", "amqp://trd:amqp-s3cret@rabbit:5672/%2f"),
            ("TRD_PIPELINE_CONCURRENCY", "7"),
        ],
    );
    let text = stdout(&output);
    assert!(!text.contains("s3cret"), "a secret was printed: {text}");
    let settings: Value = serde_json::from_str(&text).expect("json");
    assert_eq!(settings["pipeline"]["drain_secs"], 42, "from the file");
    assert_eq!(
        settings["pipeline"]["concurrency"], 7,
        "from the environment"
    );
    assert_eq!(
        settings["writeback"]["resources"],
        serde_json::json!(["Flag"])
    );
    assert_eq!(settings["notify"]["token"], "***");
    assert_eq!(settings["amqp"]["url"], "***");
    assert_eq!(settings["fhir"]["token"], Value::Null, "unset stays null");
    assert!(String::from_utf8_lossy(&output.stderr).contains("queue: RabbitMQ"));
}

/// A broken file in one run: a type error, two unknown keys, an unknown section and a
/// rule error are all named together (serde alone stops at the first).
#[test]
fn check_config_names_every_problem_of_a_broken_file_at_once() {
    let dir = temp_dir("broken-config");
    let file = dir.join("trd.toml");
    fs::write(
        &file,
        "[fhir]\nbase_url = \"ftp://ehr\"\npage_size = \"many\"\nbase_ur = \"x\"\n\n[pipeline]\nconcurency = 4\n\n[mystery]\nx = 1\n",
    )
    .expect("write");
    let output = check_config(&["--config", file.to_str().expect("path")], &[]);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8_lossy(&output.stderr);
    for problem in [
        "fhir.page_size:",
        "fhir.base_ur: unknown field `base_ur`",
        "pipeline.concurency: unknown field `concurency`",
        "unknown section `[mystery]`",
        "fhir.base_url `ftp://ehr` is not an http(s) URL",
    ] {
        assert!(text.contains(problem), "missing `{problem}` in: {text}");
    }
}

/// Valid but probably not meant: an EHR called without credentials is a warning.
#[test]
fn an_ehr_without_credentials_is_a_warning() {
    let output = check_config(
        &[],
        &[
            ("TRD_FHIR_BASE_URL", "https://ehr.example.org/fhir"),
            ("TRD_NOTIFY_TOKEN", "notify-s3cret"),
        ],
    );
    let text = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{text}");
    assert!(
        text.contains("warning: fhir.auth is none: the EHR is called without credentials"),
        "{text}"
    );
}
