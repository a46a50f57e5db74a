use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn environment_alone_is_enough() {
    let config = Config::load_from(
        None,
        env(&[
            ("TRD_FHIR_BASE_URL", "http://127.0.0.1:8080"),
            ("TRD_FHIR_TOKEN", "s3cret"),
            ("TRD_WRITEBACK_DRY_RUN", "true"),
            ("PATH", "/bin"),
        ]),
    )
    .expect("valid");
    assert_eq!(
        config.fhir.base_url.as_deref(),
        Some("http://127.0.0.1:8080")
    );
    assert!(config.writeback.dry_run);
    assert_eq!(config.auth_mode(), AuthMode::Bearer);
    assert_eq!(
        format!("{:?}", config.fhir.token),
        "Some(Secret(***))",
        "secrets never print"
    );
}

#[test]
fn lists_come_comma_separated_from_the_environment() {
    let config = Config::load_from(
        None,
        env(&[("TRD_WRITEBACK_RESOURCES", "Flag, Observation")]),
    )
    .expect("valid");
    assert_eq!(config.writeback.resources, vec!["Flag", "Observation"]);
}

#[test]
fn every_problem_is_reported_at_once() {
    let error = Config::load_from(
        None,
        env(&[
            ("TRD_FHIR_BASE_URL", "ftp://x"),
            ("TRD_WRITEBACK_RESOURCES", "Flag,Patient"),
            ("TRD_FHIR_AUTH", "bearer"),
        ]),
    )
    .expect_err("invalid");
    let text = error.to_string();
    assert!(
        text.contains("fhir.base_url `ftp://x` is not an http(s) URL"),
        "{text}"
    );
    assert!(text.contains("`Patient` is not one of"), "{text}");
    assert!(text.contains("needs TRD_FHIR_TOKEN"), "{text}");
}

#[test]
fn empty_secrets_are_refused() {
    let text = Config::load_from(
        None,
        env(&[("TRD_NOTIFY_TOKEN", " "), ("TRD_AMQP_URL", "")]),
    )
    .expect_err("empty secrets")
    .to_string();
    assert!(text.contains("notify.token is set but empty"), "{text}");
    assert!(text.contains("amqp.url is set but empty"), "{text}");
}

#[test]
fn unknown_keys_and_secrets_in_the_file_are_refused() {
    let dir = std::env::temp_dir().join(format!("trd-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("config.toml");
    std::fs::write(
        &file,
        "[fhir]\nbase_url = \"http://ehr\"\ntoken = \"plain\"\n",
    )
    .expect("write");
    let text = Config::load_from(Some(&file), env(&[]))
        .expect_err("secret in file")
        .to_string();
    assert!(text.contains("`fhir.token` is a secret"), "{text}");
    std::fs::write(&file, "[fhir]\nbase_urll = \"http://ehr\"\n").expect("write");
    let text = Config::load_from(Some(&file), env(&[]))
        .expect_err("typo")
        .to_string();
    assert!(text.contains("base_urll"), "{text}");
    let text = Config::load_from(None, env(&[("TRD_ENGINE_POLICYY", "x")]))
        .expect_err("typo")
        .to_string();
    assert!(text.contains("policyy"), "{text}");
}

#[test]
fn a_secret_file_that_is_a_device_or_huge_is_refused_not_read_whole() {
    let dir = tempfile::tempdir().expect("dir");
    let huge = dir.path().join("token");
    std::fs::write(&huge, "x".repeat(200_000)).expect("write");
    let huge_path = huge.display().to_string();
    for path in [huge_path.as_str(), "/dev/zero"] {
        let text = Config::from_text(
            "",
            "empty.toml",
            env(&[
                ("TRD_FHIR_BASE_URL", "http://ehr"),
                ("TRD_NOTIFY_TOKEN_FILE", path),
            ]),
        )
        .expect_err("unusable token file")
        .to_string();
        assert!(
            text.contains(&format!("notify.token_file {path} is empty or unreadable")),
            "{text}"
        );
    }
    assert_eq!(
        Secret::from_file(&huge).expect_err("too large"),
        "larger than 65536 bytes"
    );
}

#[test]
fn a_file_text_loads_as_the_file_would() {
    let text = "[fhir]\nbase_url = \"http://ehr\"\nlook_back_months = 12\n";
    let config =
        Config::from_text(text, "inline.toml", env(&[("TRD_NOTIFY_TOKEN", "t")])).expect("valid");
    assert_eq!(config.fhir.look_back_months, 12);
    let problems = Config::from_text("[fhir\n", "inline.toml", env(&[]))
        .expect_err("not TOML")
        .to_string();
    assert!(
        problems.contains("- inline.toml: TOML parse error"),
        "{problems}"
    );
}
