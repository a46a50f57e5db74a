//! A deterministic, Synthea-style synthetic population for benchmarks: each patient
//! bundle is ~1 MB, mostly resources the engine does not read (encounters, claims,
//! explanations of benefit, vitals, notes), with a few antidepressant trials and
//! PHQ-9 scores among them, as in real exports.

#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

/// A small linear congruential generator: the same seed gives the same population.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn date(day: u64) -> String {
    // day 0 = 2020-01-01; month lengths simplified to 28 days for speed of generation
    let year = 2020 + day / 336;
    let month = 1 + (day % 336) / 28;
    let dom = 1 + day % 28;
    format!("{year}-{month:02}-{dom:02}")
}

const ANTIDEPRESSANTS: &[(&str, &str)] = &[
    ("312938", "sertraline 100 MG Oral Tablet"),
    ("312940", "sertraline 25 MG Oral Tablet"),
    ("349332", "escitalopram 10 MG Oral Tablet"),
    ("310385", "fluoxetine 20 MG Oral Capsule"),
    (
        "313585",
        "24 HR venlafaxine 75 MG Extended Release Oral Capsule",
    ),
    ("596934", "duloxetine 60 MG Delayed Release Oral Capsule"),
];

fn reference(kind: &str, id: &str) -> Value {
    json!({ "reference": format!("urn:uuid:{kind}-{id}") })
}

fn entry(resource: Value) -> Value {
    let kind = resource["resourceType"].as_str().unwrap_or("X").to_string();
    let id = resource["id"].as_str().unwrap_or("x").to_string();
    json!({ "fullUrl": format!("urn:uuid:{kind}-{id}"), "resource": resource, "request": { "method": "POST", "url": kind } })
}

/// One patient's transaction bundle, about `target_bytes` long.
pub fn patient_bundle(index: usize, target_bytes: usize) -> String {
    let mut rng = Lcg(index as u64 * 7919 + 17);
    let pid = format!("p{index:05}");
    let subject = reference("Patient", &pid);
    let mut entries = vec![entry(json!({
        "resourceType": "Patient", "id": pid,
        "name": [{ "family": format!("Family{index}"), "given": [format!("Given{index}")] }],
        "birthDate": "1975-05-05", "gender": if index.is_multiple_of(2) { "female" } else { "male" },
        "address": [{ "line": ["1 Synthetic Way"], "city": "Testville", "postalCode": "00000" }]
    }))];

    // The part the engine reads: one to three antidepressant trials with PHQ-9 scores.
    let trials = 1 + rng.below(3);
    let mut day = rng.below(300);
    for t in 0..trials {
        let (code, display) = ANTIDEPRESSANTS[rng.below(ANTIDEPRESSANTS.len() as u64) as usize];
        let order_id = format!("{pid}-mr{t}");
        entries.push(entry(json!({
            "resourceType": "MedicationRequest", "id": order_id, "status": "completed", "intent": "order",
            "subject": subject, "authoredOn": date(day),
            "medicationCodeableConcept": { "coding": [{ "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": code, "display": display }], "text": display },
            "dosageInstruction": [{ "sequence": 1, "text": "Take 1 daily", "timing": { "repeat": { "frequency": 1, "period": 1, "periodUnit": "d" } },
                "doseAndRate": [{ "doseQuantity": { "value": 1, "unit": "tablet", "system": "http://unitsofmeasure.org", "code": "{tbl}" } }] }],
            "dispenseRequest": { "numberOfRepeatsAllowed": 3, "expectedSupplyDuration": { "value": 30, "unit": "days", "code": "d" } }
        })));
        let fills = 1 + rng.below(6);
        for f in 0..fills {
            entries.push(entry(json!({
                "resourceType": "MedicationDispense", "id": format!("{pid}-md{t}-{f}"), "status": "completed", "subject": subject,
                "medicationCodeableConcept": { "coding": [{ "system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": code, "display": display }] },
                "authorizingPrescription": [reference("MedicationRequest", &order_id)],
                "quantity": { "value": 30, "unit": "tablet", "code": "{tbl}" }, "daysSupply": { "value": 30, "unit": "day", "code": "d" },
                "whenHandedOver": format!("{}T09:00:00Z", date(day + f * (30 + rng.below(12))))
            })));
        }
        for s in 0..3 {
            entries.push(entry(json!({
                "resourceType": "Observation", "id": format!("{pid}-phq{t}-{s}"), "status": "final", "subject": subject,
                "category": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "survey" }] }],
                "code": { "coding": [{ "system": "http://loinc.org", "code": "44261-6", "display": "PHQ-9 total score" }] },
                "effectiveDateTime": date(day + s * 35), "valueInteger": 8 + rng.below(16)
            })));
        }
        day += fills * 35 + rng.below(60);
    }
    entries.push(entry(json!({
        "resourceType": "Condition", "id": format!("{pid}-dx"), "subject": subject,
        "clinicalStatus": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active" }] },
        "code": { "coding": [{ "system": "http://snomed.info/sct", "code": "370143000", "display": "Major depressive disorder" }] },
        "onsetDateTime": date(1)
    })));

    // The bulk the engine skips: encounters, claims, EOBs, vitals, notes.
    let mut n = 0;
    let mut size: usize = entries.iter().map(|e| e.to_string().len()).sum();
    while size < target_bytes {
        n += 1;
        let eid = format!("{pid}-enc{n}");
        let when = date(rng.below(1500));
        let batch = [
            json!({ "resourceType": "Encounter", "id": eid, "status": "finished", "class": { "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB" },
                "type": [{ "coding": [{ "system": "http://snomed.info/sct", "code": "185349003", "display": "Encounter for check up (procedure)" }], "text": "Encounter for check up (procedure)" }],
                "subject": subject, "participant": [{ "individual": { "reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999999999", "display": "Dr. Synthetic" } }],
                "period": { "start": format!("{when}T08:00:00Z"), "end": format!("{when}T08:30:00Z") },
                "serviceProvider": { "reference": "Organization?identifier=https://github.com/synthetichealth/synthea|abc", "display": "CLINIC" } }),
            json!({ "resourceType": "Observation", "id": format!("{eid}-bp"), "status": "final", "subject": subject, "encounter": reference("Encounter", &eid),
                "category": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs", "display": "vital-signs" }] }],
                "code": { "coding": [{ "system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure panel with all children optional" }], "text": "Blood pressure panel" },
                "effectiveDateTime": format!("{when}T08:10:00Z"), "issued": format!("{when}T08:10:00.000Z"),
                "component": [
                    { "code": { "coding": [{ "system": "http://loinc.org", "code": "8462-4", "display": "Diastolic Blood Pressure" }] }, "valueQuantity": { "value": 70 + rng.below(20), "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]" } },
                    { "code": { "coding": [{ "system": "http://loinc.org", "code": "8480-6", "display": "Systolic Blood Pressure" }] }, "valueQuantity": { "value": 110 + rng.below(30), "unit": "mm[Hg]", "system": "http://unitsofmeasure.org", "code": "mm[Hg]" } }] }),
            json!({ "resourceType": "Observation", "id": format!("{eid}-bmi"), "status": "final", "subject": subject, "encounter": reference("Encounter", &eid),
                "code": { "coding": [{ "system": "http://loinc.org", "code": "39156-5", "display": "Body mass index (BMI) [Ratio]" }] },
                "effectiveDateTime": format!("{when}T08:10:00Z"), "valueQuantity": { "value": 24.5, "unit": "kg/m2", "system": "http://unitsofmeasure.org", "code": "kg/m2" } }),
            json!({ "resourceType": "Claim", "id": format!("{eid}-claim"), "status": "active", "use": "claim", "patient": subject,
                "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional" }] },
                "billablePeriod": { "start": format!("{when}T08:00:00Z"), "end": format!("{when}T08:30:00Z") }, "created": format!("{when}T08:30:00Z"),
                "provider": { "reference": "Organization?identifier=https://github.com/synthetichealth/synthea|abc" }, "priority": { "coding": [{ "code": "normal" }] },
                "insurance": [{ "sequence": 1, "focal": true, "coverage": { "display": "Medicaid" } }],
                "item": [{ "sequence": 1, "productOrService": { "coding": [{ "system": "http://snomed.info/sct", "code": "185349003" }] }, "encounter": [reference("Encounter", &eid)] }],
                "total": { "value": 129.16, "currency": "USD" } }),
            json!({ "resourceType": "ExplanationOfBenefit", "id": format!("{eid}-eob"), "status": "active", "use": "claim", "patient": subject, "outcome": "complete",
                "type": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional" }] },
                "billablePeriod": { "start": format!("{when}T08:00:00Z"), "end": format!("{when}T08:30:00Z") }, "created": format!("{when}T08:30:00Z"),
                "insurer": { "display": "Medicaid" }, "provider": { "reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999999999" },
                "claim": reference("Claim", &format!("{eid}-claim")),
                "careTeam": [{ "sequence": 1, "provider": { "reference": "Practitioner?identifier=http://hl7.org/fhir/sid/us-npi|9999999999" }, "role": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/claimcareteamrole", "code": "primary", "display": "Primary Care Practitioner" }] } }],
                "insurance": [{ "focal": true, "coverage": { "display": "Medicaid" } }],
                "item": (1..=4).map(|s| json!({ "sequence": s, "category": { "coding": [{ "system": "https://bluebutton.cms.gov/resources/variables/line_cms_type_srvc_cd", "code": "1", "display": "Medical care" }] },
                    "productOrService": { "coding": [{ "system": "http://snomed.info/sct", "code": "185349003", "display": "Encounter for check up" }] },
                    "servicedPeriod": { "start": format!("{when}T08:00:00Z"), "end": format!("{when}T08:30:00Z") },
                    "locationCodeableConcept": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/ex-serviceplace", "code": "19", "display": "Off Campus-Outpatient Hospital" }] },
                    "encounter": [reference("Encounter", &eid)], "net": { "value": 129.16, "currency": "USD" },
                    "adjudication": [{ "category": { "coding": [{ "system": "https://bluebutton.cms.gov/resources/codesystem/adjudication", "code": "https://bluebutton.cms.gov/resources/variables/line_coinsrnc_amt", "display": "Line Beneficiary Coinsurance Amount" }] }, "amount": { "value": 25.83, "currency": "USD" } },
                        { "category": { "coding": [{ "system": "https://bluebutton.cms.gov/resources/codesystem/adjudication", "code": "https://bluebutton.cms.gov/resources/variables/line_prvdr_pmt_amt", "display": "Line Provider Payment Amount" }] }, "amount": { "value": 103.33, "currency": "USD" } }] })).collect::<Vec<_>>(),
                "total": [{ "category": { "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "submitted" }] }, "amount": { "value": 129.16, "currency": "USD" } }],
                "payment": { "amount": { "value": 103.33, "currency": "USD" } } }),
            json!({ "resourceType": "DocumentReference", "id": format!("{eid}-note"), "status": "superseded", "subject": subject,
                "type": { "coding": [{ "system": "http://loinc.org", "code": "34117-2", "display": "History and physical note" }] },
                "date": format!("{when}T08:30:00Z"),
                "content": [{ "attachment": { "contentType": "text/plain; charset=utf-8", "data": "U3ludGhldGljIG5vdGUgdGV4dCBmb3IgYmVuY2htYXJraW5nIG9ubHku".repeat(8) } }] }),
        ];
        for resource in batch {
            let e = entry(resource);
            size += e.to_string().len();
            entries.push(e);
        }
    }
    json!({ "resourceType": "Bundle", "type": "transaction", "entry": entries }).to_string()
}

/// Writes `count` bundles of about `target_bytes` under `dir` (kept between runs when
/// already complete) and returns their paths.
pub fn ensure_population(dir: &Path, count: usize, target_bytes: usize) -> Vec<PathBuf> {
    fs::create_dir_all(dir).expect("population dir");
    (0..count)
        .map(|i| {
            let path = dir.join(format!("patient-{i:05}.json"));
            if !path.exists() {
                fs::write(&path, patient_bundle(i, target_bytes)).expect("write bundle");
            }
            path
        })
        .collect()
}

/// The population as a Bulk Data export: one NDJSON file per resource type, each
/// resource on its own line with literal references (`Patient/{id}`), as an EHR's
/// $export writes them. Cached in `dir`; returns the files.
pub fn ensure_bulk_export(dir: &Path, count: usize, target_bytes: usize) -> Vec<PathBuf> {
    use std::collections::BTreeMap;
    use std::io::Write;
    let done = dir.join(".complete");
    if !done.exists() {
        let _ = fs::remove_dir_all(dir);
        fs::create_dir_all(dir).expect("export dir");
        let mut files: BTreeMap<String, std::io::BufWriter<fs::File>> = BTreeMap::new();
        for index in 0..count {
            let bundle: Value =
                serde_json::from_str(&patient_bundle(index, target_bytes)).expect("bundle");
            for entry in bundle["entry"].as_array().into_iter().flatten() {
                let mut resource = entry["resource"].clone();
                literal_references(&mut resource);
                let kind = resource["resourceType"]
                    .as_str()
                    .unwrap_or("Unknown")
                    .to_string();
                let file = files.entry(kind.clone()).or_insert_with(|| {
                    std::io::BufWriter::new(
                        fs::File::create(dir.join(format!("{kind}.ndjson"))).expect("file"),
                    )
                });
                writeln!(file, "{resource}").expect("write");
            }
        }
        for file in files.values_mut() {
            file.flush().expect("flush");
        }
        fs::write(&done, "").expect("marker");
    }
    let mut paths: Vec<PathBuf> = fs::read_dir(dir)
        .expect("export")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ndjson"))
        .collect();
    paths.sort();
    paths
}

/// `urn:uuid:{Type}-{id}` references as `{Type}/{id}`.
fn literal_references(value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get_mut("reference") {
                if let Some((kind, id)) = reference
                    .strip_prefix("urn:uuid:")
                    .and_then(|rest| rest.split_once('-'))
                {
                    *reference = format!("{kind}/{id}");
                }
            }
            map.values_mut().for_each(literal_references);
        }
        Value::Array(items) => items.iter_mut().for_each(literal_references),
        _ => {}
    }
}
