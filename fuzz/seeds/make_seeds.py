#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs under fuzz/seeds/<target>/ from the fixtures
and the specifications' examples. Run from anywhere; the seeds are committed, so run
it again only to change them.

    bundle    the fixtures themselves (scripts/fuzz adds fixtures/patients); none here
    ndjson    fixtures as Bulk Data NDJSON (one resource a line), one with a bad line
    notify    Subscriptions R5 Backport IG notification shapes (handshake, heartbeat,
              full-resource, id-only, empty, several events), a bare resource, a
              rest-hook PUT; framed: method line, query, token header, signature
    cds_hook  the CDS Hooks spec's patient-view request and JWT, the CDS Hooks
              library's order-select / order-sign, and fixtures as patient-view and
              order-select calls with full prefetch; framed: service id, Authorization
    config    configuration files as the README and the chart write them
"""
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEEDS = ROOT / "fuzz" / "seeds"
FIXTURES = ROOT / "fixtures" / "patients"
SPEC = ROOT / "tests" / "data" / "cds" / "spec"


def write(target, name, data):
    path = SEEDS / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode())


def fixture(name):
    return json.loads((FIXTURES / f"{name}.json").read_text())


def resources(bundle):
    return [e["resource"] for e in bundle.get("entry", []) if "resource" in e]


# --- ndjson ------------------------------------------------------------------
for name in ["trd-two-ssris", "dose-too-low", "partial-response"]:
    lines = [json.dumps(r, separators=(",", ":")) for r in resources(fixture(name))]
    write("ndjson", f"{name}.ndjson", "\n".join(lines) + "\n")
lines = [json.dumps(r) for r in resources(fixture("remission-after-second"))]
lines.insert(2, '{"resourceType": "Observation", "status": ')
write("ndjson", "remission-after-second-bad-line.ndjson", "\n".join(lines) + "\n")

# --- notify ------------------------------------------------------------------
TOKEN = "Bearer test-notify-token"


def status(kind, events, focus=()):
    params = [
        {"name": "subscription", "valueReference": {"reference": "http://ehr/fhir/Subscription/s1"}},
        {"name": "topic", "valueCanonical": "http://ehr/topic/antidepressants"},
        {"name": "status", "valueCode": "active"},
        {"name": "type", "valueCode": kind},
        {"name": "events-since-subscription-start", "valueString": str(events)},
    ]
    for number, reference in focus:
        params.append({"name": "notification-event", "part": [
            {"name": "event-number", "valueString": str(number)},
            {"name": "focus", "valueReference": {"reference": reference}},
        ]})
    return {"resourceType": "Parameters", "parameter": params}


def notification(status_resource, entries=()):
    entry = [{"fullUrl": "urn:uuid:9e41ff6d-5be6-4e6a-8b85-abd4e7f58400", "resource": status_resource}]
    entry.extend(entries)
    return {"resourceType": "Bundle", "type": "history", "timestamp": "2024-10-20T10:00:00Z", "entry": entry}


def framed(body, method="POST", query="", token=TOKEN, signature=""):
    body = body if isinstance(body, str) else json.dumps(body)
    return f"{method}\n{query}\n{token}\n{signature}\n{body}"


order = resources(fixture("trd-two-ssris"))[1]
write("notify", "handshake", framed(notification(status("handshake", 0))))
write("notify", "heartbeat", framed(notification(status("heartbeat", 3))))
write("notify", "full-resource", framed(notification(
    status("event-notification", 1, [(1, "MedicationRequest/" + order.get("id", "x"))]),
    [{"fullUrl": "http://ehr/fhir/MedicationRequest/" + order.get("id", "x"), "resource": order,
      "request": {"method": "PUT", "url": "MedicationRequest/" + order.get("id", "x")},
      "response": {"status": "200"}}])))
write("notify", "id-only-several-events", framed(notification(
    status("event-notification", 4, [(2, "MedicationDispense/9"), (3, "Observation/7"), (4, "Condition/2")]),
    [{"fullUrl": "http://ehr/fhir/MedicationDispense/9"}, {"fullUrl": "http://ehr/fhir/Observation/7"},
     {"fullUrl": "http://ehr/fhir/Condition/2"}])))
write("notify", "empty-event", framed(notification(status("event-notification", 5))))
r5 = notification({"resourceType": "SubscriptionStatus", "status": "active", "type": "event-notification",
                   "eventsSinceSubscriptionStart": "6",
                   "notificationEvent": [{"eventNumber": "6", "focus": {"reference": "Observation/8"}}],
                   "subscription": {"reference": "Subscription/s1"}, "topic": "http://ehr/topic/antidepressants"})
write("notify", "r5-subscription-status", framed(r5, query="token=test-notify-token", token=""))
write("notify", "bare-resource", framed(order))
write("notify", "rest-hook-put", framed(order, method="PUT MedicationRequest/" + order.get("id", "x")))
write("notify", "rest-hook-put-no-body", framed("", method="PUT Observation/44"))
write("notify", "hmac-signed", framed(order, token="", signature="sha256=00ff"))

# --- cds_hook ----------------------------------------------------------------
jwt = (SPEC / "spec-jwt.txt").read_text().strip()
write("cds_hook", "spec-patient-view", f"trd-patient-view\nBearer {jwt}\n" + (SPEC / "spec-patient-view-request.json").read_text())
for hook in ["order-select", "order-sign"]:
    write("cds_hook", f"library-{hook}", f"trd-prescribing\nBearer {jwt}\n" + (SPEC / f"library-{hook}.json").read_text())


def full_prefetch(bundle):
    rs = resources(bundle)
    of = lambda kind: [r for r in rs if r["resourceType"] == kind]
    def searchset(matches, included):
        if not matches:
            return None
        entry = [{"resource": r, "search": {"mode": "match"}} for r in matches]
        entry += [{"resource": r, "search": {"mode": "include"}} for r in included]
        return {"resourceType": "Bundle", "type": "searchset", "total": len(matches), "entry": entry}
    prefetch = {"patient": (of("Patient") or [None])[0]}
    for key, kind in [("medicationRequests", "MedicationRequest"), ("medicationDispenses", "MedicationDispense"),
                      ("medicationStatements", "MedicationStatement"), ("observations", "Observation"),
                      ("conditions", "Condition"), ("procedures", "Procedure"), ("encounters", "Encounter")]:
        prefetch[key] = searchset(of(kind), of("Medication") if kind.startswith("Medication") else [])
    return prefetch


for name in ["trd-two-ssris", "dose-too-low", "thase-rush-v"]:
    bundle = fixture(name)
    patient = (resources(bundle)[0].get("id") if resources(bundle) else name)
    call = {"hook": "patient-view", "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
            "context": {"userId": "Practitioner/example", "patientId": patient},
            "prefetch": full_prefetch(bundle)}
    write("cds_hook", f"patient-view-{name}", "trd-patient-view\n\n" + json.dumps(call))
draft = {"resourceType": "MedicationRequest", "id": "draft-1", "status": "draft", "intent": "order",
         "medicationCodeableConcept": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm",
                                                    "code": "312938", "display": "sertraline 100 MG Oral Tablet"}]},
         "dosageInstruction": [{"timing": {"repeat": {"frequency": 1, "period": 1, "periodUnit": "d"}},
                                "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}]}]}
bundle = fixture("trd-two-ssris")
call = {"hook": "order-select", "hookInstance": "0f4e1a2b-0000-4000-8000-000000000001",
        "context": {"userId": "Practitioner/example", "patientId": resources(bundle)[0].get("id"),
                    "selections": ["MedicationRequest/draft-1"],
                    "draftOrders": {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": draft}]}},
        "prefetch": full_prefetch(bundle)}
write("cds_hook", "order-select-trd-two-ssris", "trd-prescribing\n\n" + json.dumps(call))

# --- config ------------------------------------------------------------------
write("config", "minimal.toml", '[fhir]\nbase_url = "https://ehr.example.org/fhir"\n')
write("config", "full.toml", '''[fhir]
base_url = "https://ehr.example.org/fhir"
auth = "smart-backend"
client_id = "trd-sentinel"
private_key_file = "/var/run/secrets/trd/key.pem"
scope = "system/MedicationRequest.rs system/Observation.rs"
look_back_months = 36
max_concurrency = 4
request_timeout_secs = 30

[engine]
policy = "default"
measurement_year = 2024

[writeback]
enabled = true
document = "composition"

[amqp]
shards = 8
prefetch = 32

[http]
addr = "0.0.0.0:8080"
public_base_url = "https://trd.hospital.example.org"

[reconcile]
enabled = true
interval_secs = 300
''')
write("config", "cds.toml", '''[cds]
enabled = true
max_cards = 3
deadline_ms = 1500

[[cds.clients]]
iss = "https://ehr.test"
jwks_url = "https://ehr.test/.well-known/jwks.json"
jku = ["https://ehr.test/jwks"]
audiences = ["https://hand-set.example.org/cds"]
fhir_servers = ["https://ehr.test/fhir"]

[page]
enabled = true
signing_key_file = "/var/run/secrets/trd/page-key"
frame_ancestors = ["https://ehr.hospital.example.org"]
''')
write("config", "broken.toml", '[fhir]\nbase_urll = "http://ehr"\nmax_concurrency = "four"\n[nosuch]\nx = 1\n')
