//! Knowledge files are validated at start: a bad file fails with the file and the
//! entry named; a hospital's own files replace the shipped ones.

use std::fs;

use trd_sentinel::clinical::knowledge::{Knowledge, ProfileFiles};

const CATALOGUE: &str = "knowledge/antidepressants.toml";

fn with_catalogue(edit: impl Fn(&str) -> String) -> String {
    let mut files = ProfileFiles::embedded();
    let text = edit(files.get(CATALOGUE).expect("shipped catalogue"));
    files.set(CATALOGUE, text);
    Knowledge::from_files(&files)
        .expect_err("must be rejected")
        .to_string()
}

#[test]
fn shipped_knowledge_loads() {
    let knowledge = Knowledge::embedded().expect("shipped knowledge is valid");
    assert_eq!(knowledge.drugs.antidepressants.len(), 31);
    assert!(knowledge.drugs.by_name("sertraline").is_some());
    assert!(
        knowledge.drugs.by_rxnorm("89013").is_some(),
        "aripiprazole is an augmentation agent"
    );
}

#[test]
fn a_bad_dose_names_file_and_entry() {
    let error = with_catalogue(|t| {
        t.replace(
            "min_daily_mg = 50\nusual_range_mg = [50, 200]",
            "min_daily_mg = 0\nusual_range_mg = [50, 200]",
        )
    });
    assert!(
        error.starts_with("knowledge/antidepressants.toml: antidepressant `sertraline`"),
        "{error}"
    );
    assert!(error.contains("min_daily_mg must be > 0"), "{error}");
}

#[test]
fn an_uncited_value_is_rejected() {
    let error = with_catalogue(|t| t.replacen(", min_daily_mg = \"atrq\"", "", 1));
    assert!(
        error.contains("antidepressant `citalopram`: no source cited for `min_daily_mg`"),
        "{error}"
    );
}

#[test]
fn an_undeclared_source_is_rejected() {
    let error =
        with_catalogue(|t| t.replacen("min_daily_mg = \"atrq\"", "min_daily_mg = \"hearsay\"", 1));
    assert!(error.contains("source `hearsay`"), "{error}");
}

#[test]
fn a_duplicate_or_unknown_field_is_rejected() {
    let error = with_catalogue(|t| {
        t.replacen(
            "ingredient = \"escitalopram\"",
            "ingredient = \"citalopram\"",
            1,
        )
    });
    assert!(error.contains("`citalopram` is listed twice"), "{error}");
    let error = with_catalogue(|t| t.replacen("class = \"SSRI\"", "klass = \"SSRI\"", 1));
    assert!(
        error.contains("knowledge/antidepressants.toml") && error.contains("klass"),
        "{error}"
    );
}

#[test]
fn an_unreadable_drug_display_names_the_code() {
    let mut files = ProfileFiles::embedded();
    files.set(
        "vsac/ValueSet-Local.json",
        r#"{"resourceType":"ValueSet","url":"http://local/vs","expansion":{"contains":[
            {"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"123","display":"mystery pill"}]}}"#,
    );
    let error = Knowledge::from_files(&files)
        .expect_err("bad display")
        .to_string();
    assert!(
        error.starts_with("vsac/ValueSet-Local.json: RxNorm 123 'mystery pill'"),
        "{error}"
    );
}

#[test]
fn a_hospital_directory_replaces_files_by_relative_path() {
    let dir = std::env::temp_dir().join(format!("trd-knowledge-{}", std::process::id()));
    fs::create_dir_all(dir.join("knowledge")).expect("mkdir");
    let shipped = ProfileFiles::embedded()
        .get(CATALOGUE)
        .expect("catalogue")
        .to_string();
    fs::write(
        dir.join(CATALOGUE),
        shipped.replace(
            "min_daily_mg = 50\nusual_range_mg = [50, 200]",
            "min_daily_mg = 75\nusual_range_mg = [50, 200]",
        ),
    )
    .expect("write");
    let knowledge = Knowledge::with_overrides(&dir).expect("valid override");
    let sertraline = knowledge
        .drugs
        .by_name("sertraline")
        .and_then(|d| knowledge.drugs.antidepressant(d))
        .expect("sertraline");
    assert_eq!(sertraline.min_daily_mg, 75.0);
    fs::remove_dir_all(&dir).ok();
}

const SAFETY: &str = "knowledge/safety.toml";

fn with_safety(edit: impl Fn(&str) -> String) -> String {
    let mut files = ProfileFiles::embedded();
    let text = edit(files.get(SAFETY).expect("shipped safety rules"));
    files.set(SAFETY, text);
    Knowledge::from_files(&files)
        .expect_err("must be rejected")
        .to_string()
}

#[test]
fn safety_rules_load_with_their_thresholds() {
    let knowledge = Knowledge::embedded().expect("shipped knowledge is valid");
    let safety = &knowledge.safety;
    assert_eq!(safety.suicide_risk.window_days, 30);
    assert_eq!(safety.young_adult.under_age, 25);
    assert_eq!(safety.serotonin.washout_after("fluoxetine"), 35);
    assert_eq!(safety.serotonin.washout_after("sertraline"), 14);
    let citalopram = &safety.dose_limit[0];
    assert_eq!(
        (
            citalopram.ingredient.as_str(),
            citalopram.max_daily_mg,
            citalopram.older_than_years,
            citalopram.older_max_daily_mg
        ),
        ("citalopram", 40.0, Some(60), Some(20.0))
    );
    assert_eq!(
        safety.finding_codes(),
        ["cssrs-positive", "phq9-item9-positive", "suicide-risk-high"]
    );
}

#[test]
fn a_safety_signal_needs_a_suicide_risk_instrument() {
    let error =
        with_safety(|t| t.replacen("instrument = \"phq9-item9\"", "instrument = \"phq9\"", 1));
    assert!(
        error.contains(
            "suicide_risk signal `phq9`: no instrument `phq9` with measures = \"suicide-risk\""
        ),
        "{error}"
    );
}

#[test]
fn an_unknown_serotonergic_class_is_rejected() {
    let error = with_safety(|t| t.replacen("\"SPARI\"", "\"SPARX\"", 1));
    assert!(error.contains("class `SPARX`"), "{error}");
}

#[test]
fn an_uncited_safety_threshold_is_rejected() {
    let error =
        with_safety(|t| t.replacen("older_max_daily_mg = \"fda-citalopram-2011-2012\", ", "", 1));
    assert!(
        error.contains("dose_limit `citalopram`: no source cited for `older_max_daily_mg`"),
        "{error}"
    );
}

#[test]
fn an_answer_outside_the_instrument_range_is_rejected() {
    let mut files = ProfileFiles::embedded();
    let path = "knowledge/instruments.toml";
    let text = files.get(path).expect("instruments");
    // The item-9 instrument's own answer list (the PHQ-9 item scoring above it has one
    // too).
    let item9 = text.find("id = \"phq9-item9\"").expect("item 9");
    let (head, tail) = text.split_at(item9);
    let text = format!(
        "{head}{}",
        tail.replacen("\"LA6571-9\" = 3", "\"LA6571-9\" = 4", 1)
    );
    files.set(path, text);
    let error = Knowledge::from_files(&files)
        .expect_err("must be rejected")
        .to_string();
    assert!(
        error.contains("instrument `phq9-item9`: answer LA6571-9 = 4 is outside the range"),
        "{error}"
    );
}

#[test]
fn psychotherapy_rules_load_and_are_checked() {
    let knowledge = Knowledge::embedded().expect("shipped knowledge is valid");
    let rules = &knowledge.psychotherapy;
    assert_eq!(
        (rules.course.adequate_sessions, rules.course.adequate_weeks),
        (8, 8)
    );
    assert!(rules.modality("emdr").is_some_and(|m| m.trauma_focused));
    assert!(rules.modality("cbt").is_some_and(|m| !m.trauma_focused));
    // Time-based CPT codes come last: a coded modality wins.
    assert_eq!(
        rules.modality.last().map(|m| m.id.as_str()),
        Some("unspecified")
    );

    let mut files = ProfileFiles::embedded();
    let path = "knowledge/psychotherapy.toml";
    let text = files.get(path).expect("psychotherapy").replacen(
        "dbt_modality = \"dbt\"",
        "dbt_modality = \"dbt-x\"",
        1,
    );
    files.set(path, text);
    let error = Knowledge::from_files(&files)
        .expect_err("must be rejected")
        .to_string();
    assert!(
        error.contains("[fit]: modality `dbt-x` is not defined"),
        "{error}"
    );
}

/// A pharmacy feed coding each dispense by NDC alone (no label, no order): without
/// a map the engine cannot say what was dispensed; with the hospital's NDC -> RxNorm
/// map in its knowledge directory, each NDC reads as its clinical drug and strength,
/// whichever way the NDC is written.
#[test]
fn a_hospital_ndc_map_names_what_a_pharmacy_feed_dispensed() {
    use trd_sentinel::clinical::{assess, policy::Policy};
    use trd_sentinel::fhir::read::{Relevance, ResourcePool};

    let dispense = |n: usize, ndc: &str, day: &str| {
        serde_json::json!({ "fullUrl": format!("urn:uuid:d{n}"), "resource": {
            "resourceType": "MedicationDispense", "id": format!("d{n}"), "status": "completed",
            "subject": { "reference": "Patient/p" },
            "medicationCodeableConcept": { "coding": [{ "system": "http://hl7.org/fhir/sid/ndc", "code": ndc }] },
            "whenHandedOver": day, "quantity": { "value": 30, "unit": "TAB" },
            "daysSupply": { "value": 30, "unit": "d", "system": "http://unitsofmeasure.org", "code": "d" } } })
    };
    let bundle = serde_json::json!({ "resourceType": "Bundle", "type": "collection", "entry": [
        dispense(1, "99999-0100-30", "2024-01-08"),
        dispense(2, "99999010030", "2024-02-07"),
        dispense(3, "9999910030", "2024-03-08"),
    ]});
    let trials_with = |knowledge: &Knowledge| {
        let mut pool = ResourcePool::new(Relevance::from_knowledge(knowledge));
        pool.add_json(&bundle.to_string(), "feed").expect("bundle");
        let record = pool.record_for("Patient/p");
        let policy = Policy::default_preset().expect("policy");
        let as_of = time::macros::date!(2024 - 10 - 20);
        let assessment =
            serde_json::to_value(assess(&record, &policy, knowledge, as_of)).expect("json");
        let trials: Vec<_> = assessment["trials"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    t["ingredient"].clone(),
                    t["start"].clone(),
                    t["end"].clone(),
                    t["daily_dose_mg"].clone(),
                )
            })
            .collect();
        (
            trials,
            assessment["ignored_medications"]
                .as_array()
                .map_or(0, Vec::len),
        )
    };

    let shipped = Knowledge::embedded().expect("knowledge");
    assert!(shipped.ndc.is_empty(), "the shipped map is empty");
    assert_eq!(
        trials_with(&shipped),
        (vec![], 3),
        "unmapped NDCs: listed, no trial"
    );

    let mut files = ProfileFiles::embedded();
    files.set(
        "knowledge/ndc-rxnorm.csv",
        "# the hospital's map\nndc,rxcui\n99999-0100-30,312938\n",
    );
    let mapped = Knowledge::from_files(&files).expect("knowledge with a map");
    assert_eq!(mapped.ndc.len(), 1);
    use serde_json::json;
    assert_eq!(
        trials_with(&mapped),
        (
            vec![(
                json!("sertraline"),
                json!("2024-01-08"),
                json!("2024-03-07"),
                json!(100.0)
            )],
            1
        ),
        "11-digit and 5-4-2 forms map; the bare 10-digit form cannot be placed and is listed"
    );
}
