//! Display names as RxNorm and the value sets write them, and the ones that must be refused.

use super::*;
use crate::clinical::knowledge::Knowledge;

fn parse(display: &str) -> ClinicalDrug {
    let knowledge = Knowledge::embedded().expect("knowledge");
    parse_rxnorm_display(display, &knowledge.drugs).expect(display)
}

fn names(drug: &ClinicalDrug) -> Vec<(&str, f64, StrengthUnit, bool)> {
    drug.components
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                c.strength.value,
                c.strength.unit,
                c.drug.is_some(),
            )
        })
        .collect()
}

#[test]
fn plain_tablet_with_salt() {
    let drug = parse("sertraline 50 MG Oral Tablet");
    assert_eq!(
        names(&drug),
        vec![("sertraline", 50.0, StrengthUnit::Mg, true)]
    );
    assert_eq!(drug.form, "Oral Tablet");
    assert!(!drug.extended_release && !drug.pack);
    let salt = parse("paroxetine hydrochloride 20 MG Oral Tablet");
    assert_eq!(
        names(&salt),
        vec![("paroxetine", 20.0, StrengthUnit::Mg, true)]
    );
}

#[test]
fn extended_release_and_qualifier_prefixes() {
    let er = parse("24 HR venlafaxine 150 MG Extended Release Oral Capsule");
    assert_eq!(
        names(&er),
        vec![("venlafaxine", 150.0, StrengthUnit::Mg, true)]
    );
    assert!(er.extended_release);
    let cessation = parse(
        "Smoking Cessation 12 HR bupropion hydrochloride 150 MG Extended Release Oral Tablet",
    );
    assert_eq!(
        names(&cessation),
        vec![("bupropion", 150.0, StrengthUnit::Mg, true)]
    );
    let pmdd = parse("PMDD fluoxetine 10 MG Oral Tablet");
    assert_eq!(
        names(&pmdd),
        vec![("fluoxetine", 10.0, StrengthUnit::Mg, true)]
    );
    let sprinkle = parse("Sprinkle duloxetine 20 MG Delayed Release Oral Capsule");
    assert_eq!(names(&sprinkle)[0].0, "duloxetine");
}

/// Retail pharmacy feeds write their own product names: upper case, salt
/// abbreviations, release words before the strength, no "Oral".
#[test]
fn pharmacy_product_names() {
    for (display, name, mg, extended) in [
        ("SERTRALINE HCL 100 MG TABLET", "sertraline", 100.0, false),
        (
            "ESCITALOPRAM OXALATE 20 MG TABLET",
            "escitalopram",
            20.0,
            false,
        ),
        (
            "VENLAFAXINE HCL ER 150 MG CAPSULE",
            "venlafaxine",
            150.0,
            true,
        ),
        ("BUPROPION XL 300MG TAB", "bupropion", 300.0, true),
        ("BUPROPION HCL SR 150 MG TABLET", "bupropion", 150.0, true),
        ("DULOXETINE HCL DR 60 MG CAPSULE", "duloxetine", 60.0, false),
        ("MIRTAZAPINE ODT 15 MG TABLET", "mirtazapine", 15.0, false),
        (
            "DESVENLAFAXINE SUCCINATE ER 50 MG TAB",
            "desvenlafaxine",
            50.0,
            true,
        ),
    ] {
        let drug = parse(display);
        assert_eq!(
            names(&drug),
            vec![(name, mg, StrengthUnit::Mg, true)],
            "{display}"
        );
        assert_eq!(drug.extended_release, extended, "{display}");
    }
}

#[test]
fn combinations_keep_every_component() {
    let fluoxetine_olanzapine = parse("fluoxetine 25 MG / olanzapine 6 MG Oral Capsule");
    assert_eq!(
        names(&fluoxetine_olanzapine),
        vec![
            ("fluoxetine", 25.0, StrengthUnit::Mg, true),
            ("olanzapine", 6.0, StrengthUnit::Mg, true)
        ]
    );
    let with_unknown = parse("amitriptyline hydrochloride 10 MG / perphenazine 2 MG Oral Tablet");
    assert_eq!(
        names(&with_unknown),
        vec![
            ("amitriptyline", 10.0, StrengthUnit::Mg, true),
            ("perphenazine", 2.0, StrengthUnit::Mg, false)
        ]
    );
}

#[test]
fn solutions_and_transdermal_systems() {
    assert_eq!(
        names(&parse("sertraline 20 MG/ML Oral Solution")),
        vec![("sertraline", 20.0, StrengthUnit::MgPerMl, true)]
    );
    let patch = parse("24 HR selegiline 0.25 MG/HR Transdermal System");
    assert_eq!(
        names(&patch),
        vec![("selegiline", 0.25, StrengthUnit::MgPerHour, true)]
    );
    assert!(patch.is_transdermal());
}

#[test]
fn packs_list_their_parts() {
    let pack = parse("{7 (vilazodone hydrochloride 10 MG Oral Tablet) / 23 (vilazodone hydrochloride 20 MG Oral Tablet) } Pack");
    assert!(pack.pack);
    assert_eq!(pack.components.len(), 2);
    assert!(pack.components.iter().all(|c| c.name == "vilazodone"));
}

#[test]
fn unreadable_displays_are_errors() {
    let knowledge = Knowledge::embedded().expect("knowledge");
    assert!(parse_rxnorm_display("sertraline Oral Tablet", &knowledge.drugs).is_err());
    assert!(parse_rxnorm_display("", &knowledge.drugs).is_err());
    assert!(parse_rxnorm_display("{7 (sertraline 50 MG Oral Tablet)", &knowledge.drugs).is_err());
    assert!(parse_rxnorm_display("{7 sertraline 50 MG } Pack", &knowledge.drugs).is_err());
    assert!(parse_rxnorm_display("Sertraline 0MG", &knowledge.drugs).is_err());
}

#[test]
fn component_shapes_without_a_dose_form() {
    for display in [
        "sertraline 100 MG",
        "Sertraline 100MG",
        "Sertraline 100mg",
        "sertraline 100 MG [Zoloft]",
        "sertraline hydrochloride 100 MG",
    ] {
        let drug = parse(display);
        assert_eq!(
            names(&drug),
            vec![("sertraline", 100.0, StrengthUnit::Mg, true)],
            "{display}"
        );
        assert!(drug.is_component(), "{display}");
        assert_eq!(drug.form, "");
    }
    assert_eq!(
        parse("sertraline 100 MG [Zoloft]").brand.as_deref(),
        Some("Zoloft")
    );
    assert_eq!(
        names(&parse("Fluoxetine 25MG")),
        vec![("fluoxetine", 25.0, StrengthUnit::Mg, true)]
    );
    assert_eq!(
        names(&parse("sertraline 20MG/ML")),
        vec![("sertraline", 20.0, StrengthUnit::MgPerMl, true)]
    );
    for label in [
        "FLUOXETINE 20 MG/5 ML SOLUTION",
        "fluoxetine 20MG/5ML oral solution",
        "fluoxetine 20 MG/5ML Oral Solution",
    ] {
        assert_eq!(
            names(&parse(label)),
            vec![("fluoxetine", 4.0, StrengthUnit::MgPerMl, true)],
            "{label}"
        );
    }
    assert_eq!(
        names(&parse("fluoxetine 4 MG/ML Oral Solution")),
        vec![("fluoxetine", 4.0, StrengthUnit::MgPerMl, true)]
    );
}

#[test]
fn branded_drugs_keep_form_and_brand() {
    let sbd = parse("sertraline 100 MG Oral Tablet [Zoloft]");
    assert_eq!(sbd.form, "Oral Tablet");
    assert_eq!(sbd.brand.as_deref(), Some("Zoloft"));
    assert!(!sbd.is_component());
    let xl =
        parse("24 HR bupropion hydrochloride 300 MG Extended Release Oral Tablet [Wellbutrin]");
    assert!(xl.extended_release);
    assert_eq!(names(&xl)[0].1, 300.0);
}

#[test]
fn generic_and_branded_packs() {
    let gpck = parse("{30 (sertraline 50 MG Oral Tablet) } Pack");
    assert!(gpck.pack && gpck.brand.is_none());
    let bpck = parse("{7 (vilazodone hydrochloride 10 MG Oral Tablet [Viibryd]) / 23 (vilazodone hydrochloride 20 MG Oral Tablet [Viibryd]) } Pack [Viibryd Starter Kit]");
    assert!(bpck.pack);
    assert_eq!(bpck.brand.as_deref(), Some("Viibryd Starter Kit"));
    assert_eq!(bpck.components.len(), 2);
    let combination_pack = parse("{28 (fluoxetine 25 MG / olanzapine 6 MG Oral Capsule) } Pack");
    assert_eq!(
        names(&combination_pack),
        vec![
            ("fluoxetine", 25.0, StrengthUnit::Mg, true),
            ("olanzapine", 6.0, StrengthUnit::Mg, true)
        ]
    );
}
