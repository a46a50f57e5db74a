//! Target `cds_hook`: what an EHR sends to `POST /cds-services/{id}`: the
//! `Authorization` JWT (checked against a client with keys from a file, so no network)
//! and the hook request with its prefetch and draft orders, through the same call the
//! route makes: request reading, prefetch into the record, the engine or the draft
//! review, the cards. The client has no allow-listed `fhirServer`, so an incomplete
//! prefetch ends in a clean 412-style error, never a request.
//!
//! Input, framed (`super::frame`), 2 lines then the body:
//!   1. the service id (`trd-patient-view` or `trd-prescribing`; anything else is an
//!      unknown service)
//!   2. the `Authorization` header's value

use std::sync::{Arc, OnceLock};

use trd_sentinel::cds::trust::Trust;
use trd_sentinel::cds::Cds;
use trd_sentinel::config::{CdsClient, CdsSettings, Config};
use trd_sentinel::ehr::Ehr;
use trd_sentinel::metrics::Metrics;

use super::{frame, repository_file, AS_OF};

/// The EHR the fuzzed calls come from (its JWKS is the tests' key set A).
pub const ISS: &str = "https://ehr.test";
/// When the calls are made (epoch seconds; the spec example JWT's time).
const NOW: u64 = 1_700_000_000;

struct Harness {
    runtime: tokio::runtime::Runtime,
    cds: Cds,
    client: CdsClient,
}

fn harness() -> &'static Harness {
    static H: OnceLock<Harness> = OnceLock::new();
    H.get_or_init(|| {
        let jwks = repository_file("tests/data/cds/jwks-a.json");
        let client: CdsClient = serde_json::from_value(serde_json::json!({
            "iss": ISS,
            "jwks_file": jwks,
        }))
        .expect("client");
        let settings = CdsSettings {
            enabled: true,
            clients: vec![client.clone()],
            ..CdsSettings::default()
        };
        let env = [
            ("TRD_FHIR_BASE_URL", "http://127.0.0.1:9/fhir"),
            ("TRD_NOTIFY_TOKEN", "test-notify-token"),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let config = Config::load_from(None, env).expect("config");
        let ehr = Ehr::from_config(&config).expect("ehr");
        Harness {
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime"),
            cds: Cds {
                trust: Trust::new(settings.clone()),
                settings,
                ehr: Arc::new(ehr),
                metrics: Arc::new(Metrics::new()),
                queue: None,
                public_base_url: None,
                page_link: None,
            },
            client,
        }
    })
}

pub fn run(data: &[u8]) {
    let (lines, body) = frame(data, 2);
    let text = |i: usize| lines.get(i).copied().unwrap_or("");
    let h = harness();
    let endpoint = format!("http://127.0.0.1/cds-services/{}", text(0));
    h.runtime.block_on(async {
        let _ = h
            .cds
            .trust
            .verify(Some(text(1)).filter(|t| !t.is_empty()), &endpoint, NOW)
            .await;
        let _ = h.cds.call(text(0), body, &h.client, AS_OF).await;
    });
}
