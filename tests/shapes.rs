//! One clinical course, many shapes (issue 24 item 7): every fixture is re-expressed in
//! the other ways EHRs and pharmacy feeds write the same facts, alone and all together,
//! and must give the same verdict: status, each trial's ingredient, period, daily dose,
//! adequacy and response class, the non-trials, the ignored medications, and the
//! finding and suggestion codes. A shape that must change the answer names the allowed
//! difference (`Shape::allowed`).
//!
//! A fixture is a fact pattern; a shape is a way of writing it. Testing each rule with
//! one fixture in one shape let variants slip through; here every fixture meets every
//! shape.

#[path = "support/fixture_set.rs"]
mod fixture_set;

use std::collections::BTreeSet;

use fixture_set::Fixture;
use serde_json::{json, Map, Value};
use trd_sentinel::clinical::{assess, Knowledge};
use trd_sentinel::fhir::read::{Relevance, ResourcePool};

/// A way of writing the same facts.
struct Shape {
    name: &'static str,
    /// Rewrites a fixture's Bundle.
    apply: fn(&mut Value),
    /// Finding codes this shape may add (the reader says what it inferred).
    allowed: &'static [&'static str],
}

const SHAPES: &[Shape] = &[
    Shape {
        name: "contained Medication (medicationReference #id)",
        apply: contained_medication,
        allowed: &[],
    },
    Shape {
        name: "Medication in the Bundle (medicationReference urn:uuid)",
        apply: bundled_medication,
        allowed: &[],
    },
    Shape {
        name: "Medication in the Bundle (medicationReference Medication/id)",
        apply: medication_by_id,
        allowed: &[],
    },
    Shape {
        name: "dateTime with a time zone offset",
        apply: offset_date_times,
        allowed: &[],
    },
    Shape {
        name: "Observation effectivePeriod",
        apply: effective_period,
        allowed: &[],
    },
    Shape {
        name: "MedicationDispense whenPrepared only",
        apply: when_prepared,
        allowed: &[],
    },
    Shape {
        name: "score as valueQuantity",
        apply: value_quantity,
        allowed: &[],
    },
    Shape {
        name: "medication named by display text only",
        apply: display_only,
        allowed: &["strength-from-display"],
    },
    Shape {
        name: "medication named by its brand in text only",
        apply: brand_text_only,
        allowed: &["strength-from-display"],
    },
    Shape {
        name: "pharmacy feed: NDC with the pharmacy's display",
        apply: ndc_pharmacy_display,
        allowed: &["strength-from-display"],
    },
    Shape {
        name: "dispense with quantity but no daysSupply",
        apply: quantity_only,
        allowed: &[],
    },
    Shape {
        name: "PHQ-9 as a panel with the total as a component",
        apply: phq9_panel,
        allowed: &[],
    },
    Shape {
        name: "PHQ-9 as a QuestionnaireResponse with its total item",
        apply: phq9_questionnaire_total,
        allowed: &[],
    },
    Shape {
        name: "PHQ-9 as a QuestionnaireResponse with the nine answers only",
        apply: phq9_questionnaire_items,
        allowed: &[],
    },
    Shape {
        name: "first two weeks given on the ward (MedicationAdministration)",
        apply: first_weeks_on_the_ward,
        allowed: &[],
    },
    Shape {
        name: "entries in reverse order",
        apply: reverse_entries,
        allowed: &[],
    },
];

// --- the shapes -------------------------------------------------------------

fn resources_mut(bundle: &mut Value) -> impl Iterator<Item = &mut Map<String, Value>> {
    bundle["entry"]
        .as_array_mut()
        .into_iter()
        .flatten()
        .filter_map(|e| e.get_mut("resource").and_then(Value::as_object_mut))
}

fn is_medication_resource(r: &Map<String, Value>) -> bool {
    matches!(
        r.get("resourceType").and_then(Value::as_str),
        Some(
            "MedicationRequest"
                | "MedicationDispense"
                | "MedicationStatement"
                | "MedicationAdministration"
        )
    )
}

fn contained_medication(bundle: &mut Value) {
    for r in resources_mut(bundle).filter(|r| is_medication_resource(r)) {
        if let Some(concept) = r.remove("medicationCodeableConcept") {
            r.insert(
                "contained".into(),
                json!([{ "resourceType": "Medication", "id": "med", "code": concept }]),
            );
            r.insert("medicationReference".into(), json!({ "reference": "#med" }));
        }
    }
}

/// Moves every medicationCodeableConcept into a Medication entry of the Bundle,
/// referenced as `reference(n, id)` says.
fn to_bundled_medications(bundle: &mut Value, reference: fn(usize, &str) -> (String, String)) {
    let mut medications = Vec::new();
    for (n, r) in resources_mut(bundle)
        .filter(|r| is_medication_resource(r))
        .enumerate()
    {
        if let Some(concept) = r.remove("medicationCodeableConcept") {
            let id = format!("shape-med-{n}");
            let (full_url, reference) = reference(n, &id);
            r.insert(
                "medicationReference".into(),
                json!({ "reference": reference }),
            );
            medications.push(json!({
                "fullUrl": full_url,
                "resource": { "resourceType": "Medication", "id": id, "code": concept }
            }));
        }
    }
    if let Some(entries) = bundle["entry"].as_array_mut() {
        entries.extend(medications);
    }
}

fn bundled_medication(bundle: &mut Value) {
    to_bundled_medications(bundle, |n, _| {
        let urn = format!("urn:uuid:0c1d6a52-5f1e-4b7e-9a8d-{n:012}");
        (urn.clone(), urn)
    });
}

fn medication_by_id(bundle: &mut Value) {
    to_bundled_medications(bundle, |_, id| {
        (
            format!("https://ehr.example.org/fhir/Medication/{id}"),
            format!("Medication/{id}"),
        )
    });
}

/// The fields that carry a clinical date or dateTime.
const DATE_FIELDS: &[&str] = &[
    "whenHandedOver",
    "whenPrepared",
    "effectiveDateTime",
    "authoredOn",
    "onsetDateTime",
    "abatementDateTime",
    "performedDateTime",
    "recordedDate",
];

/// `2024-01-08` or `2024-01-08T10:00:00Z` becomes `2024-01-08T12:00:00-05:00`: the same
/// calendar day where the patient is, written with the zone an EHR writes.
fn offset_date_times(bundle: &mut Value) {
    for r in resources_mut(bundle) {
        for field in DATE_FIELDS {
            if let Some(Value::String(text)) = r.get_mut(*field) {
                if text.len() >= 10 {
                    *text = format!("{}T12:00:00-05:00", &text[..10]);
                }
            }
        }
    }
}

fn effective_period(bundle: &mut Value) {
    for r in resources_mut(bundle) {
        if r.get("resourceType").and_then(Value::as_str) != Some("Observation") {
            continue;
        }
        if let Some(when) = r.remove("effectiveDateTime") {
            r.insert(
                "effectivePeriod".into(),
                json!({ "start": when, "end": when }),
            );
        }
    }
}

fn when_prepared(bundle: &mut Value) {
    for r in resources_mut(bundle) {
        if r.get("resourceType").and_then(Value::as_str) != Some("MedicationDispense") {
            continue;
        }
        if let Some(when) = r.remove("whenHandedOver") {
            r.insert("whenPrepared".into(), when);
        }
    }
}

fn value_quantity(bundle: &mut Value) {
    for r in resources_mut(bundle) {
        if let Some(Value::Number(n)) = r.remove("valueInteger") {
            r.insert(
                "valueQuantity".into(),
                json!({ "value": n, "unit": "{score}", "system": "http://unitsofmeasure.org", "code": "{score}" }),
            );
        }
    }
}

fn concepts_mut(bundle: &mut Value) -> Vec<&mut Map<String, Value>> {
    resources_mut(bundle)
        .filter(|r| is_medication_resource(r))
        .filter_map(|r| {
            r.get_mut("medicationCodeableConcept")
                .and_then(Value::as_object_mut)
        })
        .collect()
}

fn display_only(bundle: &mut Value) {
    for concept in concepts_mut(bundle) {
        let display = concept.get("coding").map(|c| c[0]["display"].clone());
        concept.remove("coding");
        if let Some(display) = display {
            concept.insert("text".into(), display);
        }
    }
}

/// "sertraline 100 MG Oral Tablet" becomes "Zoloft 100 MG Oral Tablet", with no code:
/// the first brand the knowledge lists for each ingredient.
fn brand_text_only(bundle: &mut Value) {
    static BRANDS: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    let brands = BRANDS.get_or_init(|| {
        let knowledge = Knowledge::embedded().expect("knowledge");
        let mut first: Vec<(String, String)> = Vec::new();
        for (brand, ingredient) in &knowledge.drugs.brands.names {
            if !first.iter().any(|(i, _)| i == ingredient) {
                first.push((ingredient.clone(), brand.clone()));
            }
        }
        first
    });
    for concept in concepts_mut(bundle) {
        let Some(display) = concept
            .get("coding")
            .and_then(|c| c[0]["display"].as_str())
            .map(str::to_string)
        else {
            continue;
        };
        let display = display
            .split(' ')
            .map(|word| {
                brands
                    .iter()
                    .find(|(ingredient, _)| ingredient.eq_ignore_ascii_case(word))
                    .map_or(word, |(_, brand)| brand.as_str())
            })
            .collect::<Vec<_>>()
            .join(" ");
        concept.remove("coding");
        concept.insert("text".into(), json!(display));
    }
}

/// The salt a retail pharmacy's product name carries for each ingredient.
const PHARMACY_SALTS: &[(&str, &str)] = &[
    ("sertraline", "SERTRALINE HCL"),
    ("escitalopram", "ESCITALOPRAM OXALATE"),
    ("citalopram", "CITALOPRAM HBR"),
    ("venlafaxine", "VENLAFAXINE HCL"),
    ("duloxetine", "DULOXETINE HCL"),
    ("fluoxetine", "FLUOXETINE HCL"),
    ("nortriptyline", "NORTRIPTYLINE HCL"),
    ("phenelzine", "PHENELZINE SULFATE"),
    ("bupropion", "BUPROPION HCL"),
];

/// An RxNorm name as a retail pharmacy writes the same product: upper case, the salt
/// abbreviated, the release form as a word before the strength, no "Oral".
/// "24 HR venlafaxine 75 MG Extended Release Oral Capsule" becomes
/// "VENLAFAXINE HCL ER 75 MG CAPSULE"; "duloxetine 60 MG Delayed Release Oral Capsule"
/// becomes "DULOXETINE HCL DR 60 MG CAPSULE". Packs, combinations and names without a
/// strength are left as written (upper case).
fn pharmacy_name(display: &str) -> String {
    let (body, release) = match display
        .strip_prefix("24 HR ")
        .or_else(|| display.strip_prefix("12 HR "))
    {
        Some(rest) => (rest, Some("ER")),
        None if display.contains("Delayed Release") => (display, Some("DR")),
        None => (display, None),
    };
    let words: Vec<&str> = body.split(' ').collect();
    let strength_at = words
        .iter()
        .position(|w| w.parse::<f64>().is_ok())
        .filter(|_| !body.starts_with('{') && !body.contains(" / "));
    let Some(at) = strength_at else {
        return display.to_uppercase();
    };
    let name = words[..at].join(" ").replace(" hydrochloride", "");
    let name = PHARMACY_SALTS
        .iter()
        .find(|(ingredient, _)| *ingredient == name)
        .map_or(name.to_uppercase(), |(_, salted)| salted.to_string());
    let rest = words[at..]
        .join(" ")
        .replace("Extended Release ", "")
        .replace("Delayed Release ", "")
        .replace("Oral ", "")
        .to_uppercase();
    match release {
        Some(word) => format!("{name} {word} {rest}"),
        None => format!("{name} {rest}"),
    }
}

/// An NDC as a retail pharmacy sends it: the product code and the pharmacy's own
/// description.
fn ndc_pharmacy_display(bundle: &mut Value) {
    for concept in concepts_mut(bundle) {
        let label = concept
            .get("coding")
            .and_then(|c| c[0]["display"].as_str())
            .or_else(|| concept.get("text").and_then(Value::as_str))
            .map(pharmacy_name);
        let mut coding =
            json!({ "system": "http://hl7.org/fhir/sid/ndc", "code": "16714-0612-01" });
        match label {
            Some(label) => {
                coding["display"] = json!(label);
                concept.insert("text".into(), json!(label));
            }
            None => {
                concept.remove("text");
            }
        }
        concept.insert("coding".into(), json!([coding]));
    }
}

#[test]
fn pharmacy_names_are_written_as_pharmacies_write_them() {
    for (rxnorm, pharmacy) in [
        (
            "sertraline 100 MG Oral Tablet",
            "SERTRALINE HCL 100 MG TABLET",
        ),
        (
            "24 HR venlafaxine 75 MG Extended Release Oral Capsule",
            "VENLAFAXINE HCL ER 75 MG CAPSULE",
        ),
        (
            "24 HR paroxetine hydrochloride 25 MG Extended Release Oral Tablet",
            "PAROXETINE ER 25 MG TABLET",
        ),
        (
            "duloxetine 60 MG Delayed Release Oral Capsule",
            "DULOXETINE HCL DR 60 MG CAPSULE",
        ),
        (
            "24 HR selegiline 0.25 MG/HR Transdermal System",
            "SELEGILINE ER 0.25 MG/HR TRANSDERMAL SYSTEM",
        ),
        ("lithium carbonate", "LITHIUM CARBONATE"),
    ] {
        assert_eq!(pharmacy_name(rxnorm), pharmacy, "{rxnorm}");
    }
}

/// Units a day from the first dosage instruction: dose x frequency / period (days).
fn units_per_day(dispense: &Map<String, Value>) -> Option<f64> {
    let dosage = dispense.get("dosageInstruction")?.get(0)?;
    let dose = dosage["doseAndRate"][0]["doseQuantity"]["value"].as_f64()?;
    let repeat = &dosage["timing"]["repeat"];
    let frequency = repeat["frequency"].as_f64().unwrap_or(1.0);
    let period = repeat["period"].as_f64().unwrap_or(1.0);
    (repeat["periodUnit"] == "d").then_some(dose * frequency / period)
}

/// Days supply left out where the quantity and the dosage say the same (an
/// inconsistent dispense is another fact pattern, not another shape).
fn quantity_only(bundle: &mut Value) {
    for r in resources_mut(bundle) {
        if r.get("resourceType").and_then(Value::as_str) != Some("MedicationDispense") {
            continue;
        }
        let quantity = r.get("quantity").and_then(|q| q["value"].as_f64());
        let days = r.get("daysSupply").and_then(|d| d["value"].as_f64());
        if let (Some(quantity), Some(days), Some(per_day)) = (quantity, days, units_per_day(r)) {
            if per_day > 0.0 && (quantity / per_day - days).abs() < 0.5 {
                r.remove("daysSupply");
            }
        }
    }
}

fn phq9_panel(bundle: &mut Value) {
    for r in resources_mut(bundle) {
        if r.get("code").map(|c| &c["coding"][0]["code"]) != Some(&json!("44261-6")) {
            continue;
        }
        let Some(key) = r.keys().find(|k| k.starts_with("value")).cloned() else {
            continue;
        };
        let value = r.remove(&key).unwrap_or(Value::Null);
        r.insert(
            "code".into(),
            json!({ "coding": [{ "system": "http://loinc.org", "code": "44249-1", "display": "PHQ-9 quick depression assessment panel" }] }),
        );
        r.insert(
            "component".into(),
            json!([{ "code": { "coding": [{ "system": "http://loinc.org", "code": "44261-6" }] }, key: value }]),
        );
    }
}

const LOINC: &str = "http://loinc.org";
const PHQ9_ITEMS: [&str; 9] = [
    "44250-9", "44255-8", "44259-0", "44254-1", "44251-7", "44258-2", "44252-5", "44253-3",
    "44260-8",
];
const LA_ANSWERS: [&str; 4] = ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"];

/// The QuestionnaireResponse status an Observation status corresponds to.
fn questionnaire_status(observation: &str) -> &'static str {
    match observation {
        "final" => "completed",
        "amended" | "corrected" => "amended",
        "entered-in-error" => "entered-in-error",
        "cancelled" => "stopped",
        _ => "in-progress",
    }
}

/// The answer a value[x] becomes (an integer stays one; a quantity's number becomes
/// a decimal; text stays text).
fn answer_of(observation: &Map<String, Value>) -> Option<Value> {
    if let Some(i) = observation.get("valueInteger") {
        return Some(json!({ "valueInteger": i }));
    }
    if let Some(q) = observation
        .get("valueQuantity")
        .and_then(|q| q.get("value"))
    {
        return Some(json!({ "valueDecimal": q }));
    }
    if let Some(text) = observation.get("valueString") {
        return Some(json!({ "valueString": text }));
    }
    None
}

/// Every PHQ-9 total Observation rewritten as the QuestionnaireResponse an EHR keeps,
/// with `items` giving the form's items from the total's answer.
fn phq9_as_questionnaire(bundle: &mut Value, items: fn(Option<Value>) -> Vec<Value>) {
    for r in resources_mut(bundle) {
        let is_total = r.get("resourceType") == Some(&json!("Observation"))
            && r.get("code").map(|c| &c["coding"][0]["code"]) == Some(&json!("44261-6"));
        if !is_total {
            continue;
        }
        let status = questionnaire_status(r.get("status").and_then(Value::as_str).unwrap_or(""));
        let authored = r
            .get("effectiveDateTime")
            .or_else(|| r.get("effectivePeriod").and_then(|p| p.get("start")))
            .cloned();
        let answer = answer_of(r);
        let mut response = Map::new();
        response.insert("resourceType".into(), json!("QuestionnaireResponse"));
        for key in ["id", "subject"] {
            if let Some(value) = r.get(key) {
                response.insert(key.into(), value.clone());
            }
        }
        response.insert("status".into(), json!(status));
        response.insert("questionnaire".into(), json!("http://loinc.org/q/44249-1"));
        if let Some(authored) = authored {
            response.insert("authored".into(), authored);
        }
        response.insert("item".into(), Value::Array(items(answer)));
        *r = response;
    }
}

fn phq9_questionnaire_total(bundle: &mut Value) {
    phq9_as_questionnaire(bundle, |answer| {
        let mut item = json!({ "linkId": "/44249-1/44261-6", "text": "PHQ-9 total score" });
        if let Some(answer) = answer {
            item["answer"] = json!([answer]);
        }
        vec![item]
    });
}

/// A whole-number total 0-27 becomes nine LA-coded answers adding up to it (item 9
/// 'not at all': an item-9 finding is another fact pattern); any other value stays
/// a total item.
fn phq9_questionnaire_items(bundle: &mut Value) {
    phq9_as_questionnaire(bundle, |answer| {
        let total = answer
            .as_ref()
            .and_then(|a| a.get("valueInteger"))
            .and_then(Value::as_u64)
            .filter(|t| *t <= 24);
        let Some(mut left) = total else {
            let mut item = json!({ "linkId": "44261-6" });
            if let Some(answer) = answer {
                item["answer"] = json!([answer]);
            }
            return vec![item];
        };
        PHQ9_ITEMS
            .iter()
            .enumerate()
            .map(|(n, code)| {
                let score = if n < 8 { left.min(3) } else { 0 };
                left -= score;
                let la = LA_ANSWERS[usize::try_from(score).unwrap_or(0)];
                json!({ "linkId": code, "answer": [{ "valueCoding": { "system": LOINC, "code": la } }] })
            })
            .collect()
    });
}

/// The first dispense of the record (when it is a plain one: tablets a day known, at
/// least four weeks supplied, no other dispense that day) begins on the ward instead:
/// its first 14 days are daily MedicationAdministrations of the same product and dose,
/// and the pharmacy fill comes on day 14 with 14 days fewer. The same days are covered
/// at the same dose, so nothing in the verdict may change.
fn first_weeks_on_the_ward(bundle: &mut Value) {
    const WARD_DAYS: i64 = 14;
    let Some(entries) = bundle["entry"].as_array_mut() else {
        return;
    };
    let dispenses: Vec<(usize, String)> = entries
        .iter()
        .enumerate()
        .filter(|(_, e)| e["resource"]["resourceType"] == "MedicationDispense")
        .filter(|(_, e)| e["resource"]["status"] == "completed")
        .filter_map(|(n, e)| {
            Some((
                n,
                e["resource"]["whenHandedOver"]
                    .as_str()?
                    .get(..10)?
                    .to_string(),
            ))
        })
        .collect();
    let Some((index, day)) = dispenses.iter().min_by_key(|(_, day)| day.clone()).cloned() else {
        return;
    };
    if dispenses.iter().filter(|(_, d)| *d == day).count() > 1 {
        return;
    }
    // The stay must end before the last date the record shows, so that no dose is
    // dated after the as-of date.
    let last_recorded = entries
        .iter()
        .flat_map(|e| {
            DATE_FIELDS
                .iter()
                .filter_map(|f| e["resource"][*f].as_str())
        })
        .filter_map(|d| d.get(..10))
        .max()
        .map(str::to_string);
    let resource = entries[index]["resource"].clone();
    let Some(dispense) = resource.as_object() else {
        return;
    };
    let instruction = dispense
        .get("dosageInstruction")
        .and_then(|d| d.get(0))
        .cloned()
        .unwrap_or(Value::Null);
    if instruction.get("asNeededBoolean") == Some(&json!(true))
        || instruction.get("asNeededCodeableConcept").is_some()
    {
        return; // a dose taken as needed is not a scheduled ward dose
    }
    let Some(per_day) = units_per_day(dispense) else {
        return;
    };
    let days = dispense.get("daysSupply").and_then(|d| d["value"].as_f64());
    let quantity = dispense.get("quantity").and_then(|q| q["value"].as_f64());
    let (Some(days), Some(quantity)) = (days, quantity) else {
        return;
    };
    let unit = &instruction["doseAndRate"][0]["doseQuantity"]["code"];
    if days < 28.0 || (quantity / per_day - days).abs() >= 0.5 || per_day.fract() != 0.0 {
        return;
    }
    let Ok(start) = time::Date::parse(&day, &time::format_description::well_known::Iso8601::DATE)
    else {
        return;
    };
    let fill = start + time::Duration::days(WARD_DAYS);
    if last_recorded.is_none_or(|last| fill.to_string() > last) {
        return;
    }
    let medication = dispense.get("medicationCodeableConcept").cloned();
    let Some(medication) = medication else {
        return;
    };
    let mut ward = Vec::new();
    for k in 0..WARD_DAYS {
        let when = start + time::Duration::days(k);
        ward.push(json!({ "fullUrl": format!("urn:uuid:shape-ward-{k}"), "resource": {
            "resourceType": "MedicationAdministration", "id": format!("shape-ward-{k}"), "status": "completed",
            "medicationCodeableConcept": medication, "subject": dispense["subject"],
            "effectiveDateTime": format!("{when}T08:00:00Z"),
            "dosage": { "dose": { "value": per_day, "unit": unit, "system": "http://unitsofmeasure.org", "code": unit } } } }));
    }
    #[allow(clippy::cast_precision_loss)] // 14
    let ward_days = WARD_DAYS as f64;
    let moved = &mut entries[index]["resource"];
    moved["whenHandedOver"] = json!(format!("{fill}T10:00:00Z"));
    moved["daysSupply"]["value"] = json!(days - ward_days);
    moved["quantity"]["value"] = json!(quantity - ward_days * per_day);
    entries.extend(ward);
}

fn reverse_entries(bundle: &mut Value) {
    if let Some(entries) = bundle["entry"].as_array_mut() {
        entries.reverse();
    }
}

// --- the verdict -------------------------------------------------------------

/// What must not change with the shape.
fn verdict(assessment: &Value) -> Value {
    let codes = |list: &str| -> BTreeSet<String> {
        assessment[list]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| {
                let code = &i["code"];
                code.as_str().or(code["code"].as_str()).map(str::to_string)
            })
            .collect()
    };
    let trials: Vec<Value> = assessment["trials"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            json!({
                "ingredient": t["ingredient"],
                "start": t["start"],
                "end": t["end"],
                "ongoing": t["ongoing"],
                "daily_dose_mg": t["daily_dose_mg"],
                "orders_only": t["orders_only"],
                "adequacy": t["adequacy"],
                "response": t["response"]["class"],
                // A form kept as a QuestionnaireResponse is the same score.
                "outcome": serde_json::from_str::<Value>(
                    &t["response"]["outcome"]
                        .to_string()
                        .replace("\"QuestionnaireResponse/", "\"Observation/"),
                )
                .unwrap_or(Value::Null),
            })
        })
        .collect();
    let non_trials: Vec<Value> = assessment["non_trials"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            json!({
                "ingredient": t["ingredient"], "start": t["start"], "end": t["end"],
                "daily_dose_mg": t["daily_dose_mg"], "reason": t["reason"],
            })
        })
        .collect();
    json!({
        "trd_status": assessment["trd_status"],
        "failed_adequate_trials": assessment["failed_adequate_trials"],
        "episode_start": assessment["episode"]["start"],
        "trials": trials,
        "non_trials": non_trials,
        // Resources of medicines the engine does not track, ward doses aside (the ward
        // shape writes one per dose).
        "ignored_medications": assessment["ignored_medications"].as_array().map(|list| {
            list.iter()
                .filter(|i| !i["source"].as_str().unwrap_or("").starts_with("MedicationAdministration/"))
                .count()
        }),
        "finding_codes": codes("findings"),
        "suggestion_codes": codes("suggestions"),
    })
}

fn assess_bundle(bundle: &Value, fixture: &Fixture, knowledge: &Knowledge) -> Value {
    let mut pool = ResourcePool::new(Relevance::from_knowledge(knowledge));
    pool.add_json(&bundle.to_string(), &fixture.name)
        .expect("the reshaped bundle reads");
    let records = pool.records();
    assert_eq!(records.len(), 1, "{}: one patient", fixture.name);
    serde_json::to_value(assess(
        &records[0],
        &fixture.policy,
        knowledge,
        fixture.as_of,
    ))
    .expect("serialise")
}

/// Where two verdicts differ, field by field (the allowed finding codes removed).
fn differences(original: &Value, reshaped: &Value, allowed: &[&str]) -> Vec<String> {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(codes) = v["finding_codes"].as_array_mut() {
            codes.retain(|c| !allowed.iter().any(|a| c == a));
        }
        v
    };
    let (original, reshaped) = (strip(original), strip(reshaped));
    let mut out = Vec::new();
    for (key, value) in original.as_object().into_iter().flatten() {
        if reshaped.get(key) != Some(value) {
            out.push(format!(
                "{key}: {} -> {}",
                value,
                reshaped.get(key).unwrap_or(&Value::Null)
            ));
        }
    }
    out
}

#[test]
fn every_fixture_gives_the_same_verdict_in_every_shape() {
    let knowledge = Knowledge::embedded().expect("knowledge");
    let fixtures = fixture_set::all();
    assert!(fixtures.len() >= 100, "{} fixtures", fixtures.len());
    let mut checked = 0;
    let mut failures = Vec::new();
    for fixture in &fixtures {
        let bundle = fixture.bundle();
        let original = verdict(&assess_bundle(&bundle, fixture, &knowledge));
        // Each shape alone, then all of them together (in list order; the Medication
        // shapes exclude one another, so the combination takes the first).
        let combined: Vec<&Shape> = SHAPES
            .iter()
            .filter(|s| !s.name.starts_with("Medication in the Bundle"))
            .collect();
        let runs = SHAPES
            .iter()
            .map(|s| (s.name.to_string(), vec![s]))
            .chain(std::iter::once((
                "all shapes combined".to_string(),
                combined,
            )));
        for (name, shapes) in runs {
            let mut bundle = bundle.clone();
            let mut allowed = Vec::new();
            for shape in &shapes {
                (shape.apply)(&mut bundle);
                allowed.extend_from_slice(shape.allowed);
            }
            let reshaped = verdict(&assess_bundle(&bundle, fixture, &knowledge));
            let diff = differences(&original, &reshaped, &allowed);
            if !diff.is_empty() {
                failures.push(format!(
                    "{} / {name}:\n    {}",
                    fixture.name,
                    diff.join("\n    ")
                ));
            }
            checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} fixture x shape combinations changed the verdict:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "{checked} fixture x shape combinations ({} fixtures, {} shapes and their combination) give the same verdict",
        fixtures.len(),
        SHAPES.len()
    );
}
