//! Strategies for FHIR resources with type-correct-ish random values, extremes
//! included (for the engine's property tests): medication requests, dispenses and
//! statements, PHQ-9 Observations and Conditions, about one patient, in a Bundle.

use proptest::prelude::*;
use serde_json::{json, Map, Value};

const PATIENT: &str = "Patient/p";

/// Numbers a field might hold in a real export, from ordinary to absurd.
pub fn extreme_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        3 => (0i64..120).prop_map(Value::from),
        1 => prop_oneof![
            Just(json!(0)),
            Just(json!(-1)),
            Just(json!(-30)),
            Just(json!(10_000_000)),
            Just(json!(1e7)),
            Just(json!(1e300)),
            Just(json!(-1e300)),
            Just(json!(f64::MAX)),
            Just(json!(f64::MIN_POSITIVE)),
            Just(json!(i64::MAX)),
            Just(json!(i64::MIN)),
            Just(json!(u64::MAX)),
            Just(json!(4_294_967_296u64)),
            Just(json!(2_147_483_648u64)),
            Just(json!(0.000_001)),
            Just(json!(1e-300)),
        ],
        1 => any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
    ]
}

/// A value of the wrong JSON type, or a string where a number belongs.
pub fn wrong_type() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!("NaN")),
        Just(json!("Infinity")),
        Just(json!("-Infinity")),
        Just(json!("1e7")),
        Just(json!("")),
        Just(json!(" ")),
        Just(Value::Null),
        Just(json!(true)),
        Just(json!([])),
        Just(json!({})),
        Just(json!([1, 2])),
        Just(json!({"value": 1})),
        "\\PC{0,12}".prop_map(Value::from),
    ]
}

/// Dates from 0001-01-01 to 9999-12-31, partial dates, dateTimes and non-dates.
pub fn date_value() -> impl Strategy<Value = Value> {
    let ymd = (1i32..=9999, 1u8..=12, 1u8..=28)
        .prop_map(|(y, m, d)| Value::from(format!("{y:04}-{m:02}-{d:02}")));
    let recent = (2015i32..=2025, 1u8..=12, 1u8..=28)
        .prop_map(|(y, m, d)| Value::from(format!("{y:04}-{m:02}-{d:02}")));
    prop_oneof![
        4 => recent,
        2 => ymd,
        2 => prop_oneof![
            Just(json!("0001-01-01")),
            Just(json!("9999-12-31")),
            Just(json!("9999-12-20")),
            Just(json!("9999-12-31T23:59:59Z")),
            Just(json!("9999-12-31T23:59:59-14:00")),
            Just(json!("0001-01-01T00:00:00+14:00")),
            Just(json!("2024-01-08T10:00:00Z")),
            Just(json!("2024")),
            Just(json!("2024-02")),
            Just(json!("9999")),
            Just(json!("0001")),
            Just(json!("2024-02-30")),
            Just(json!("2024-13-01")),
            Just(json!("10000-01-01")),
            Just(json!("0000-01-01")),
        ],
        1 => wrong_type(),
    ]
}

pub fn unit() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "d", "day", "days", "wk", "mo", "a", "h", "min", "s", "mg", "g", "ug", "mcg", "kg",
        "{tbl}", "tablet", "mL", "1", "", "furlong",
    ])
}

pub fn quantity() -> impl Strategy<Value = Value> {
    (
        prop::option::weighted(0.9, extreme_number()),
        prop::option::of(unit()),
        prop::option::of(unit()),
        any::<bool>(),
    )
        .prop_map(|(value, unit, code, ucum)| {
            let mut q = Map::new();
            if let Some(v) = value {
                q.insert("value".into(), v);
            }
            if let Some(u) = unit {
                q.insert("unit".into(), u.into());
            }
            if let Some(c) = code {
                q.insert("code".into(), c.into());
            }
            if ucum {
                q.insert("system".into(), "http://unitsofmeasure.org".into());
            }
            Value::Object(q)
        })
}

pub fn days_quantity() -> impl Strategy<Value = Value> {
    (extreme_number(), prop::sample::select(vec!["d", "day", "wk", "mo", "h", ""])).prop_map(
        |(value, code)| {
            json!({"value": value, "unit": code, "system": "http://unitsofmeasure.org", "code": code})
        },
    )
}

/// RxNorm codes the catalogue knows (and two it does not), with their displays.
pub fn medication_concept() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        ("312938", "sertraline 100 MG Oral Tablet"),
        ("312940", "sertraline 25 MG Oral Tablet"),
        ("351250", "escitalopram 20 MG Oral Tablet"),
        ("310385", "fluoxetine 20 MG Oral Capsule"),
        ("313585", "24 HR venlafaxine 75 MG Extended Release Oral Capsule"),
        ("314111", "mirtazapine 30 MG Oral Tablet"),
        ("198047", "nortriptyline 75 MG Oral Capsule"),
        ("312347", "phenelzine 15 MG Oral Tablet"),
        ("403969", "fluoxetine 25 MG / olanzapine 6 MG Oral Capsule"),
        ("865206", "24 HR selegiline 0.25 MG/HR Transdermal System"),
        (
            "1653469",
            "{7 (vilazodone hydrochloride 10 MG Oral Tablet) / 23 (vilazodone hydrochloride 20 MG Oral Tablet) } Pack",
        ),
        ("89013", "aripiprazole"),
        ("198429", "lamotrigine 200 MG Oral Tablet"),
        ("99999999", "zorbitran 10 MG Oral Tablet"),
        ("", ""),
    ])
    .prop_map(|(code, display)| {
        json!({"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": code, "display": display}], "text": display})
    })
}

pub fn dosage() -> impl Strategy<Value = Value> {
    (
        prop::option::of(extreme_number()),
        prop::option::of(extreme_number()),
        prop::option::of(prop::sample::select(vec![
            "d", "h", "wk", "mo", "min", "s", "a",
        ])),
        prop::option::of(quantity()),
        prop::option::of(any::<bool>()),
        prop::option::of(prop::sample::select(vec![
            "BID", "TID", "QD", "QID", "Q4H", "",
        ])),
    )
        .prop_map(|(frequency, period, period_unit, dose, prn, code)| {
            let mut repeat = Map::new();
            if let Some(f) = frequency {
                repeat.insert("frequency".into(), f);
            }
            if let Some(p) = period {
                repeat.insert("period".into(), p);
            }
            if let Some(u) = period_unit {
                repeat.insert("periodUnit".into(), u.into());
            }
            let mut timing = Map::new();
            timing.insert("repeat".into(), Value::Object(repeat));
            if let Some(c) = code {
                timing.insert("code".into(), json!({"coding": [{"code": c}]}));
            }
            let mut d = Map::new();
            d.insert("text".into(), "as directed".into());
            d.insert("timing".into(), Value::Object(timing));
            if let Some(q) = dose {
                d.insert("doseAndRate".into(), json!([{"doseQuantity": q}]));
            }
            if let Some(b) = prn {
                d.insert("asNeededBoolean".into(), b.into());
            }
            Value::Object(d)
        })
}

pub fn status(options: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop_oneof![
        9 => prop::sample::select(options).prop_map(Value::from),
        1 => wrong_type(),
    ]
}

/// Puts `value` at `key` unless it is `None` (a missing field).
pub fn put(map: &mut Map<String, Value>, key: &str, value: Option<Value>) {
    if let Some(v) = value {
        map.insert(key.into(), v);
    }
}

pub fn subject() -> Value {
    json!({"reference": PATIENT})
}

pub fn request() -> impl Strategy<Value = Value> {
    (
        status(&[
            "active",
            "completed",
            "stopped",
            "on-hold",
            "entered-in-error",
            "draft",
        ]),
        prop::sample::select(vec!["order", "plan", "proposal", "original-order"]),
        prop::option::weighted(0.9, date_value()),
        prop::option::weighted(0.9, medication_concept()),
        prop::collection::vec(dosage(), 0..3),
        prop::option::of(days_quantity()),
        prop::option::of(extreme_number()),
        prop::option::of(quantity()),
        prop::option::of((date_value(), date_value())),
    )
        .prop_map(
            |(status, intent, authored, medication, dosage, supply, repeats, qty, validity)| {
                let mut r = Map::new();
                r.insert("resourceType".into(), "MedicationRequest".into());
                r.insert("status".into(), status);
                r.insert("intent".into(), intent.into());
                r.insert("subject".into(), subject());
                put(&mut r, "authoredOn", authored);
                put(&mut r, "medicationCodeableConcept", medication);
                r.insert("dosageInstruction".into(), Value::Array(dosage));
                let mut dispense = Map::new();
                put(&mut dispense, "expectedSupplyDuration", supply);
                put(&mut dispense, "numberOfRepeatsAllowed", repeats);
                put(&mut dispense, "quantity", qty);
                if let Some((start, end)) = validity {
                    dispense.insert("validityPeriod".into(), json!({"start": start, "end": end}));
                }
                r.insert("dispenseRequest".into(), Value::Object(dispense));
                Value::Object(r)
            },
        )
}

pub fn dispense() -> impl Strategy<Value = Value> {
    (
        status(&[
            "completed",
            "in-progress",
            "cancelled",
            "entered-in-error",
            "stopped",
        ]),
        prop::option::weighted(0.9, date_value()),
        prop::option::of(date_value()),
        prop::option::weighted(0.9, medication_concept()),
        prop::option::weighted(0.8, quantity()),
        prop::option::weighted(0.8, days_quantity()),
        prop::collection::vec(dosage(), 0..2),
    )
        .prop_map(
            |(status, handed, prepared, medication, qty, days, dosage)| {
                let mut r = Map::new();
                r.insert("resourceType".into(), "MedicationDispense".into());
                r.insert("status".into(), status);
                r.insert("subject".into(), subject());
                put(&mut r, "whenHandedOver", handed);
                put(&mut r, "whenPrepared", prepared);
                put(&mut r, "medicationCodeableConcept", medication);
                put(&mut r, "quantity", qty);
                put(&mut r, "daysSupply", days);
                r.insert("dosageInstruction".into(), Value::Array(dosage));
                Value::Object(r)
            },
        )
}

pub fn statement() -> impl Strategy<Value = Value> {
    (
        status(&[
            "active",
            "completed",
            "stopped",
            "intended",
            "not-taken",
            "entered-in-error",
        ]),
        prop_oneof![
            date_value().prop_map(|d| ("effectiveDateTime", d)),
            (
                prop::option::of(date_value()),
                prop::option::of(date_value())
            )
                .prop_map(|(s, e)| {
                    let mut p = Map::new();
                    put(&mut p, "start", s);
                    put(&mut p, "end", e);
                    ("effectivePeriod", Value::Object(p))
                }),
        ],
        prop::option::weighted(0.9, medication_concept()),
        prop::collection::vec(dosage(), 0..2),
    )
        .prop_map(|(status, (effective_key, effective), medication, dosage)| {
            let mut r = Map::new();
            r.insert("resourceType".into(), "MedicationStatement".into());
            r.insert("status".into(), status);
            r.insert("subject".into(), subject());
            r.insert(effective_key.into(), effective);
            put(&mut r, "medicationCodeableConcept", medication);
            r.insert("dosage".into(), Value::Array(dosage));
            Value::Object(r)
        })
}

pub fn phq9() -> impl Strategy<Value = Value> {
    (
        status(&["final", "amended", "corrected", "preliminary", "entered-in-error"]),
        prop::option::weighted(0.9, date_value()),
        prop_oneof![
            3 => (0i64..=27).prop_map(|v| ("valueInteger", Value::from(v))),
            1 => extreme_number().prop_map(|v| ("valueInteger", v)),
            1 => quantity().prop_map(|q| ("valueQuantity", q)),
            1 => prop_oneof![Just("20"), Just(""), Just("severe"), Just("1e300"), Just("-5")]
                .prop_map(|s| ("valueString", Value::from(s))),
        ],
    )
        .prop_map(|(status, effective, (value_key, value))| {
            let mut r = Map::new();
            r.insert("resourceType".into(), "Observation".into());
            r.insert("status".into(), status);
            r.insert("subject".into(), subject());
            r.insert(
                "code".into(),
                json!({"coding": [{"system": "http://loinc.org", "code": "44261-6", "display": "PHQ-9 total score"}]}),
            );
            put(&mut r, "effectiveDateTime", effective);
            r.insert(value_key.into(), value);
            Value::Object(r)
        })
}

pub fn condition() -> impl Strategy<Value = Value> {
    (
        prop::sample::select(vec![
            "F32.1", "F33.3", "F31.81", "F10.20", "G47.33", "F32.A", "",
        ]),
        prop::option::of(date_value()),
        prop::option::of(date_value()),
        prop::option::of(date_value()),
        prop::option::of(prop::sample::select(vec![
            "active",
            "resolved",
            "remission",
            "",
        ])),
        prop::option::of(prop::sample::select(vec![
            "confirmed",
            "refuted",
            "entered-in-error",
        ])),
    )
        .prop_map(
            |(code, onset, abatement, recorded, clinical, verification)| {
                let mut r = Map::new();
                r.insert("resourceType".into(), "Condition".into());
                r.insert("subject".into(), subject());
                r.insert(
                "code".into(),
                json!({"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": code}]}),
            );
                put(&mut r, "onsetDateTime", onset);
                put(&mut r, "abatementDateTime", abatement);
                put(&mut r, "recordedDate", recorded);
                if let Some(c) = clinical {
                    r.insert("clinicalStatus".into(), json!({"coding": [{"code": c}]}));
                }
                if let Some(v) = verification {
                    r.insert(
                        "verificationStatus".into(),
                        json!({"coding": [{"code": v}]}),
                    );
                }
                Value::Object(r)
            },
        )
}

pub fn resource() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => request(),
        3 => dispense(),
        1 => statement(),
        2 => phq9(),
        1 => condition(),
    ]
}

pub fn bundle_of(resources: Vec<Value>) -> Value {
    let mut entries = vec![json!({"resource": {"resourceType": "Patient", "id": "p"}})];
    for (n, mut r) in resources.into_iter().enumerate() {
        if let Some(map) = r.as_object_mut() {
            map.insert("id".into(), format!("r{n}").into());
        }
        entries.push(json!({"fullUrl": format!("urn:uuid:r{n}"), "resource": r}));
    }
    json!({"resourceType": "Bundle", "type": "collection", "entry": entries})
}
