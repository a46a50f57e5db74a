//! Target `config`: a configuration file's text (TOML) with the environment a
//! deployment sets, loaded and checked as `serve` and `check-config` do. Every problem
//! must be a message, never a panic.

use trd_sentinel::config::Config;

pub fn run(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = [
        ("TRD_FHIR_BASE_URL", "http://127.0.0.1:9/fhir"),
        ("TRD_NOTIFY_TOKEN", "test-notify-token"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()));
    if let Ok(config) = Config::from_text(text, "fuzz.toml", env) {
        let _ = config.problems();
        let _ = config.serve_problems();
        let _ = config.auth_mode();
        let _ = toml::to_string(&config);
    }
}
