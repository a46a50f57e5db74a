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
mod tests;
