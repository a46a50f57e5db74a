//! Running `trd-sentinel export` as an operator would: against an EHR URL, with the
//! configuration in the environment, its output and log captured.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

/// Quick polls (Helios asks for 120 s whatever the job), quick retries.
pub const QUICK: &[(&str, &str)] = &[
    ("TRD_EXPORT_MAX_POLL_INTERVAL_SECS", "1"),
    ("TRD_EXPORT_POLL_INTERVAL_SECS", "1"),
    ("TRD_FHIR_RETRY_BASE_MS", "50"),
    ("RUST_LOG", "info"),
];

pub fn command(fhir: &str, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_trd-sentinel"));
    command
        .arg("export")
        .args(args)
        .env_remove("TRD_CONFIG")
        .env("TRD_FHIR_BASE_URL", fhir)
        .env("RUST_BACKTRACE", "0")
        // Never the default (state/ under the working directory, the repository).
        .env(
            "TRD_EXPORT_STATE_FILE",
            std::env::temp_dir().join(format!("trd-export-since-{}", std::process::id())),
        );
    for (k, v) in QUICK.iter().chain(env) {
        command.env(k, v);
    }
    command
}

pub fn run(fhir: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    command(fhir, args, env)
        .output()
        .expect("run trd-sentinel export")
}

/// Started in the background (to be killed or interrupted), its stderr into `log`.
pub fn spawn(fhir: &str, args: &[&str], env: &[(&str, &str)], log: &Path) -> Child {
    let file = std::fs::File::create(log).expect("log");
    command(fhir, args, env)
        .stdout(Stdio::null())
        .stderr(Stdio::from(file))
        .spawn()
        .expect("spawn trd-sentinel export")
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "export failed:\n{}",
        stderr(output)
    );
    String::from_utf8(output.stdout.clone()).expect("utf8")
}
