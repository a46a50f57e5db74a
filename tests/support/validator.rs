//! The independent FHIR validator (fhir.resources R4B models, provisioned by
//! scripts/provision) over files of written resources.

use std::path::{Path, PathBuf};
use std::process::Command;

fn python() -> String {
    std::env::var("FHIR_VALIDATOR_PYTHON").unwrap_or_else(|_| {
        format!(
            "{}/.cache/trd-sentinel/venv/bin/python",
            std::env::var("HOME").unwrap_or_default()
        )
    })
}

/// Runs the independent validator over written transactions.
pub fn validate_with_fhir_resources(files: &[PathBuf]) {
    let python = python();
    assert!(
        Path::new(&python).exists(),
        "independent FHIR validator missing at {python}: run scripts/provision (or scripts/test)"
    );
    let output = Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/support/validate_fhir.py"
        ))
        .args(files)
        .output()
        .expect("run validator");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "validator rejected written resources:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
