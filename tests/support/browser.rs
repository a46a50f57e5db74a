//! The real browser the page tests drive: Debian's headless Chromium (scripts/provision
//! installs it; `CHROMIUM_BIN` points elsewhere), and where screenshots are left.

use std::path::PathBuf;

pub fn chromium() -> String {
    std::env::var("CHROMIUM_BIN").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// target/test-artifacts/: screenshots a person can look at after the run.
pub fn artifacts() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}
