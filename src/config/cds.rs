//! `[cds]`: the CDS Hooks service (alerts inside the EHR) and the clients it trusts.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::string_or_list;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CdsSettings {
    /// Serve `/cds-services` (discovery, the hooks, feedback).
    pub enabled: bool,
    /// Past this, a hook call answers `{"cards": []}` (and the hookInstance is
    /// logged): the EHR's window is short, and no card beats a late one.
    pub deadline_ms: u64,
    /// patient-view shows at most this many cards besides safety cards (which are
    /// never cut): alert fatigue is the first complaint about CDS.
    pub max_cards: usize,
    /// Clock skew allowed on `exp` and `iat`, in seconds.
    pub skew_secs: u64,
    /// A JWT living longer than this (`exp` - `iat`) is refused; `jti`s are kept this
    /// long (the spec: "no more than an hour").
    pub max_token_lifetime_secs: u64,
    /// A JWKS is fetched again for an unknown `kid` at most this often (per URL).
    pub jwks_refetch_secs: u64,
    /// Cached JWKS are fetched again after this long, to follow key rotation.
    pub jwks_cache_secs: u64,
    /// The EHRs allowed to call, each with how to check its JWTs.
    pub clients: Vec<CdsClient>,
}

impl Default for CdsSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            deadline_ms: 1500,
            max_cards: 3,
            skew_secs: 60,
            max_token_lifetime_secs: 3600,
            jwks_refetch_secs: 10,
            jwks_cache_secs: 3600,
            clients: Vec::new(),
        }
    }
}

/// One CDS client (an EHR, the sandbox): its issuer, its keys, the audiences and FHIR
/// servers accepted from it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct CdsClient {
    /// The JWT's `iss`, exactly.
    pub iss: String,
    /// Its JWKS, fetched and cached.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    /// Or its JWKS from a file (keys exchanged out of band).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks_file: Option<PathBuf>,
    /// JWKS URLs a JWT's `jku` header may name (each fetched and cached).
    #[serde(
        deserialize_with = "string_or_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub jku: Vec<String>,
    /// Accepted `aud` values besides the exact endpoint URL (Epic lets the hospital
    /// set `aud` by hand).
    #[serde(
        deserialize_with = "string_or_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub audiences: Vec<String>,
    /// When set, the JWT's `tenant` must equal it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// `fhirServer`s this client may send: the only servers the service fetches
    /// from (with the client's access token) when prefetch is missing.
    #[serde(
        deserialize_with = "string_or_list",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub fhir_servers: Vec<String>,
}

impl CdsSettings {
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.enabled && self.clients.is_empty() {
            out.push("cds.enabled needs at least one [[cds.clients]] entry (iss and keys)".into());
        }
        if self.deadline_ms == 0 || self.max_token_lifetime_secs == 0 {
            out.push("cds.deadline_ms and cds.max_token_lifetime_secs must be > 0".into());
        }
        let is_url =
            |u: &str| reqwest::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        for (n, client) in self.clients.iter().enumerate() {
            let which = format!("cds.clients[{n}]");
            if client.iss.trim().is_empty() {
                out.push(format!("{which}: iss is required"));
            }
            match (&client.jwks_url, &client.jwks_file) {
                (None, None) if client.jku.is_empty() => out.push(format!(
                    "{which}: set jwks_url, jwks_file or a jku allow-list: its keys"
                )),
                (Some(_), Some(_)) => out.push(format!(
                    "{which}: jwks_url and jwks_file exclude each other"
                )),
                _ => {}
            }
            if let Some(file) = &client.jwks_file {
                if !file.is_file() {
                    out.push(format!(
                        "{which}: jwks_file {} does not exist",
                        file.display()
                    ));
                }
            }
            for url in client
                .jwks_url
                .iter()
                .chain(&client.jku)
                .chain(&client.fhir_servers)
                .filter(|u| !is_url(u))
            {
                out.push(format!("{which}: `{url}` is not an http(s) URL"));
            }
        }
        out
    }
}

/// `[page]`: the patient's treatment timeline page, linked from the CDS cards.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PageSettings {
    /// Serve `/page/{token}` (needs a signing key and `http.public_base_url`).
    pub enabled: bool,
    /// The key that signs page links (TRD_PAGE_SIGNING_KEY; at least 32 bytes).
    pub signing_key: Option<super::Secret>,
    pub signing_key_file: Option<PathBuf>,
    /// How long a link from a card stays valid.
    pub link_lifetime_secs: u64,
    /// Who may frame the page (CSP `frame-ancestors`): the EHR's origins; `*` any.
    #[serde(deserialize_with = "string_or_list")]
    pub frame_ancestors: Vec<String>,
}

impl Default for PageSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            signing_key: None,
            signing_key_file: None,
            link_lifetime_secs: 900,
            frame_ancestors: vec!["*".into()],
        }
    }
}

/// Shorter keys make HS256 links guessable offline.
pub const MIN_SIGNING_KEY_BYTES: usize = 32;

impl PageSettings {
    /// The signing key, from the environment or its file.
    pub fn key(&self) -> Option<super::Secret> {
        self.signing_key.clone().or_else(|| {
            let path = self.signing_key_file.as_ref()?;
            super::Secret::from_file(path).ok()
        })
    }

    pub fn problems(&self, public_base_url: Option<&str>) -> Vec<String> {
        let mut out = Vec::new();
        if !self.enabled {
            return out;
        }
        if self
            .key()
            .is_none_or(|k| k.expose().len() < MIN_SIGNING_KEY_BYTES)
        {
            out.push(format!(
                "page.enabled needs a signing key of at least {MIN_SIGNING_KEY_BYTES} bytes (TRD_PAGE_SIGNING_KEY or page.signing_key_file)"
            ));
        }
        if public_base_url.is_none() {
            out.push("page.enabled needs http.public_base_url (the links point there)".into());
        }
        if self.link_lifetime_secs == 0 || self.link_lifetime_secs > 86_400 {
            out.push("page.link_lifetime_secs must be between 1 and 86400".into());
        }
        out
    }
}
