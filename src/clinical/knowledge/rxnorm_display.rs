//! The RxNorm display-name parser: ingredient(s), strength, dose form, brand and pack
//! structure from a normalised name. Used on the value sets' displays at load and, at
//! run time, on the display or text of codes the clinical-drug map does not know.

use super::catalogue::DrugCatalogue;
use super::drug_product::{ClinicalDrug, DrugComponent, Strength, StrengthUnit};

/// Salt and ester words that RxNorm puts after the ingredient name.
const SALT_WORDS: &[&str] = &[
    "hydrochloride",
    "hydrobromide",
    "maleate",
    "succinate",
    "pamoate",
    "mesylate",
    "oxalate",
    "fumarate",
    "sulfate",
    "citrate",
    "carbonate",
    "sodium",
    "besylate",
    // Pharmacy systems' abbreviations ("SERTRALINE HCL 100 MG TABLET").
    "hcl",
    "hbr",
    "dihydrochloride",
];

/// Release abbreviations that mean extended or controlled release (FDA Structured
/// Product Labeling dosage-form terms: ER, XR, XL, SR, CR, LA, 12 / 24 HR).
const EXTENDED_RELEASE_WORDS: &[&str] = &["er", "xr", "xl", "sr", "cr", "la", "24hr", "12hr"];

/// Other release and dose-form abbreviations (DR delayed release, EC enteric coated,
/// IR immediate release, ODT orally disintegrating).
const OTHER_RELEASE_WORDS: &[&str] = &["dr", "ec", "ir", "odt"];

/// Pharmacy and EHR product names write release words between the ingredient and the
/// strength ("VENLAFAXINE HCL ER 150 MG CAPSULE", "BUPROPION XL 300MG"); they are not
/// part of the ingredient's name. RxNorm's own names spell them out after the strength
/// ("Extended Release Oral Capsule").
fn is_release_word(lower: &str) -> bool {
    EXTENDED_RELEASE_WORDS.contains(&lower) || OTHER_RELEASE_WORDS.contains(&lower)
}

/// Reads one RxNorm normalised display name. Also used at run time on the display or
/// text of medication codes the map does not know.
pub fn parse_rxnorm_display(
    display: &str,
    catalogue: &DrugCatalogue,
) -> Result<ClinicalDrug, String> {
    let display = display.trim();
    if display.is_empty() {
        return Err("empty display".into());
    }
    let (body, brand) = split_brand(display);
    if let Some(inner) = body.strip_prefix('{') {
        return parse_pack(display, inner, brand, catalogue);
    }
    let parts = split_top_level(body, " / ");
    let mut components = Vec::with_capacity(parts.len());
    let mut form = String::new();
    for (i, part) in parts.iter().enumerate() {
        let (component, rest) = parse_component(part, catalogue)?;
        components.push(component);
        if i + 1 == parts.len() {
            form = rest;
        } else if !rest.is_empty() {
            return Err(format!(
                "unexpected words '{rest}' after a combination component"
            ));
        }
    }
    let extended_release = form.contains("Extended Release")
        || body.contains(" HR ")
        || body.starts_with("12 HR")
        || body.starts_with("24 HR")
        || body
            .split(|c: char| c.is_whitespace() || c == '-')
            .any(|w| EXTENDED_RELEASE_WORDS.contains(&w.to_lowercase().as_str()));
    Ok(ClinicalDrug {
        display: display.to_string(),
        components,
        form,
        brand,
        extended_release,
        pack: false,
    })
}

/// "sertraline 100 MG [Zoloft]" -> ("sertraline 100 MG", Some("Zoloft")). Only a
/// bracket group that ends the name is a brand.
fn split_brand(display: &str) -> (&str, Option<String>) {
    let Some(without_close) = display.strip_suffix(']') else {
        return (display, None);
    };
    match without_close.rfind('[') {
        Some(open) => {
            let brand = without_close.get(open + 1..).unwrap_or("").trim();
            let body = display.get(..open).unwrap_or("").trim_end();
            if brand.is_empty() || body.is_empty() {
                (display, None)
            } else {
                (body, Some(brand.to_string()))
            }
        }
        None => (display, None),
    }
}

/// Splits on `separator` outside parentheses and braces, so a pack part holding a
/// combination ("(fluoxetine 25 MG / olanzapine 6 MG Oral Capsule)") stays whole.
fn split_top_level<'a>(text: &'a str, separator: &str) -> Vec<&'a str> {
    let mut parts = Vec::new();
    let mut depth: i32 = 0;
    let mut start = 0;
    let mut i = 0;
    let bytes = text.as_bytes();
    while i < bytes.len() {
        match bytes.get(i) {
            Some(b'(' | b'{' | b'[') => depth += 1,
            Some(b')' | b'}' | b']') => depth -= 1,
            _ => {}
        }
        if depth == 0
            && text
                .get(i..)
                .is_some_and(|rest| rest.starts_with(separator))
        {
            parts.push(text.get(start..i).unwrap_or(""));
            i += separator.len();
            start = i;
            continue;
        }
        i += 1;
    }
    parts.push(text.get(start..).unwrap_or(""));
    parts
}

fn parse_pack(
    display: &str,
    inner: &str,
    brand: Option<String>,
    catalogue: &DrugCatalogue,
) -> Result<ClinicalDrug, String> {
    let Some(close) = inner.rfind('}') else {
        return Err("pack without closing brace".into());
    };
    let after = inner.get(close + 1..).unwrap_or("").trim();
    if !after.eq_ignore_ascii_case("pack") && !after.is_empty() {
        return Err(format!("unexpected words '{after}' after a pack's braces"));
    }
    let mut components = Vec::new();
    let mut extended_release = false;
    let mut form = String::new();
    for part in split_top_level(inner.get(..close).unwrap_or(""), " / ") {
        let part = part.trim();
        let Some(open) = part.find('(') else {
            return Err(format!("pack part '{part}' has no '(drug)'"));
        };
        let drug_text = part
            .get(open + 1..)
            .unwrap_or("")
            .trim()
            .strip_suffix(')')
            .ok_or_else(|| format!("pack part '{part}' has no closing parenthesis"))?
            .trim();
        let drug = parse_rxnorm_display(drug_text, catalogue)?;
        if drug.pack {
            return Err(format!("pack part '{part}' is itself a pack"));
        }
        extended_release |= drug.extended_release;
        form = drug.form.clone();
        components.extend(drug.components);
    }
    Ok(ClinicalDrug {
        display: display.to_string(),
        components,
        form,
        brand,
        extended_release,
        pack: true,
    })
}

/// "24 HR venlafaxine 150 MG Extended Release Oral Capsule" -> (venlafaxine 150 mg,
/// "Extended Release Oral Capsule").
fn parse_component(
    text: &str,
    catalogue: &DrugCatalogue,
) -> Result<(DrugComponent, String), String> {
    let tokens = tokens_of(text);
    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let strength_at = tokens
        .windows(2)
        .position(|pair| match pair {
            [number, unit] => strength_number(number).is_some() && strength_unit(unit).is_some(),
            _ => false,
        })
        .ok_or_else(|| format!("no strength (number and MG, MG/ML or MG/HR) in '{text}'"))?;
    let (Some(value), Some(unit)) = (
        tokens.get(strength_at).and_then(|t| strength_number(t)),
        tokens.get(strength_at + 1).and_then(|t| strength_unit(t)),
    ) else {
        return Err(format!("bad strength in '{text}'"));
    };
    let (value, unit) = match unit {
        // Micrograms are kept in mg so every strength compares with mg doses.
        UnitWord::Mcg => (value / 1000.0, StrengthUnit::Mg),
        UnitWord::Is(unit) => (value, unit),
    };
    let name_words = drop_release_prefix(tokens.get(..strength_at).unwrap_or(&[]));
    let name_words: Vec<String> = name_words
        .iter()
        .map(|w| w.to_lowercase())
        .filter(|w| !SALT_WORDS.contains(&w.as_str()) && !is_release_word(w))
        .collect();
    if name_words.is_empty() {
        return Err(format!(
            "no ingredient name before the strength in '{text}'"
        ));
    }
    // The longest run of trailing words that the catalogue knows ("PMDD fluoxetine",
    // "Sprinkle duloxetine"); otherwise the whole name, unknown to the catalogue.
    let (name, drug) = (0..name_words.len())
        .find_map(|start| {
            let candidate = name_words.get(start..)?.join(" ");
            catalogue
                .by_name(&candidate)
                .map(|drug| (candidate, Some(drug)))
        })
        .unwrap_or_else(|| (name_words.join(" "), None));
    let rest = tokens.get(strength_at + 2..).unwrap_or(&[]).join(" ");
    Ok((
        DrugComponent {
            name,
            drug,
            strength: Strength { value, unit },
        },
        rest,
    ))
}

/// Drops "12 HR" / "24 HR" and any brand-like qualifier before it
/// ("Smoking Cessation 12 HR bupropion").
fn drop_release_prefix<'a>(words: &'a [&'a str]) -> &'a [&'a str] {
    match words.iter().rposition(|w| *w == "HR") {
        Some(hr) if hr > 0 && words.get(hr - 1).is_some_and(|w| w.parse::<f64>().is_ok()) => {
            words.get(hr + 1..).unwrap_or(&[])
        }
        _ => words,
    }
}

/// Whitespace tokens, with a strength glued to its unit split apart ("100MG" ->
/// "100", "MG"; "20MG/ML" -> "20", "MG/ML").
fn tokens_of(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    for word in text.split_whitespace() {
        let digits = word
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(word.len());
        match (word.get(..digits), word.get(digits..)) {
            (Some(number), Some(unit))
                if digits > 0
                    && !unit.is_empty()
                    && strength_number(number).is_some()
                    && (strength_unit(unit).is_some() || per_volume(unit).is_some()) =>
            {
                tokens.push(number.to_string());
                tokens.push(unit.to_string());
            }
            _ => tokens.push(word.to_string()),
        }
    }
    per_ml(tokens)
}

/// "MG/5ML" (or "MG/5" before "ML") -> 5: a strength per several mL, as pharmacy
/// labels write oral solutions.
fn per_volume(unit: &str) -> Option<f64> {
    let upper = unit.to_ascii_uppercase();
    let volume = upper.strip_prefix("MG/")?;
    let volume = volume.strip_suffix("ML").unwrap_or(volume);
    strength_number(volume)
}

/// "20 MG/5ML" and "20 MG/5 ML" read as RxNorm writes them: "4 MG/ML".
fn per_ml(tokens: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(tokens.len());
    let mut iter = tokens.into_iter().peekable();
    while let Some(token) = iter.next() {
        let mg = out.last().and_then(|n| strength_number(n));
        let ml = per_volume(&token);
        let ml_written = ml.is_some()
            && mg.is_some()
            && (token.to_ascii_uppercase().ends_with("ML")
                || iter.next_if(|n| n.eq_ignore_ascii_case("ML")).is_some());
        match (mg, ml) {
            (Some(mg), Some(ml)) if ml_written => {
                out.pop();
                out.push(format!("{}", mg / ml));
                out.push("MG/ML".into());
            }
            _ => out.push(token),
        }
    }
    out
}

/// A strength figure: a finite positive number.
fn strength_number(word: &str) -> Option<f64> {
    word.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
}

enum UnitWord {
    Is(StrengthUnit),
    Mcg,
}

fn strength_unit(word: &str) -> Option<UnitWord> {
    match word.to_ascii_uppercase().as_str() {
        "MG" => Some(UnitWord::Is(StrengthUnit::Mg)),
        "MG/ML" => Some(UnitWord::Is(StrengthUnit::MgPerMl)),
        "MG/HR" => Some(UnitWord::Is(StrengthUnit::MgPerHour)),
        "MCG" | "UG" => Some(UnitWord::Mcg),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
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
        let with_unknown =
            parse("amitriptyline hydrochloride 10 MG / perphenazine 2 MG Oral Tablet");
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
        assert!(
            parse_rxnorm_display("{7 (sertraline 50 MG Oral Tablet)", &knowledge.drugs).is_err()
        );
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
        let combination_pack =
            parse("{28 (fluoxetine 25 MG / olanzapine 6 MG Oral Capsule) } Pack");
        assert_eq!(
            names(&combination_pack),
            vec![
                ("fluoxetine", 25.0, StrengthUnit::Mg, true),
                ("olanzapine", 6.0, StrengthUnit::Mg, true)
            ]
        );
    }
}
