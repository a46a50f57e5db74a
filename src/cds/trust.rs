//! Trusting CDS clients: every call (discovery and feedback too) carries a JWT signed
//! by the EHR. Checked here, in order: ES384 or RS384 only (never `none` or HMAC); an
//! `iss` on the allow-list; the key from the client's JWKS (URL or file), or from the
//! JWT's `jku` only when that URL is allow-listed for the issuer, found by `kid` (an
//! unknown `kid` fetches the JWKS again, at most every `jwks_refetch_secs`, so
//! rotation works); the signature; `aud` equal to the exact endpoint URL or one of the
//! client's audiences; `exp` and `iat` within the skew, and a lifetime no longer than
//! allowed; a `jti` not seen before (kept until the token expires); `tenant` when
//! configured.
//!
//! A refusal says which rule failed (for metrics and logs) but never the token.
//! Nothing here logs a JWT.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::Mutex;

use crate::config::{CdsClient, CdsSettings};

/// Why a JWT was refused (never with the token or its claims' values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no bearer token")]
    NoToken,
    #[error("not a JWT")]
    Malformed,
    #[error("algorithm not allowed")]
    Algorithm,
    #[error("issuer not trusted")]
    Issuer,
    #[error("jku not allow-listed for the issuer")]
    KeyUrl,
    #[error("keys unavailable")]
    KeysUnavailable,
    #[error("unknown kid")]
    UnknownKey,
    #[error("bad signature")]
    Signature,
    #[error("audience mismatch")]
    Audience,
    #[error("expired")]
    Expired,
    #[error("issued in the future")]
    IssuedInFuture,
    #[error("lifetime too long")]
    Lifetime,
    #[error("missing claim")]
    MissingClaim,
    #[error("jti replayed")]
    Replay,
    #[error("tenant mismatch")]
    Tenant,
}

impl Refusal {
    pub fn label(self) -> &'static str {
        match self {
            Refusal::NoToken => "no-token",
            Refusal::Malformed => "malformed",
            Refusal::Algorithm => "algorithm",
            Refusal::Issuer => "issuer",
            Refusal::KeyUrl => "jku",
            Refusal::KeysUnavailable => "keys-unavailable",
            Refusal::UnknownKey => "unknown-kid",
            Refusal::Signature => "signature",
            Refusal::Audience => "audience",
            Refusal::Expired => "expired",
            Refusal::IssuedInFuture => "iat-future",
            Refusal::Lifetime => "lifetime",
            Refusal::MissingClaim => "missing-claim",
            Refusal::Replay => "replay",
            Refusal::Tenant => "tenant",
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<Value>,
    exp: Option<u64>,
    iat: Option<u64>,
    jti: Option<String>,
    tenant: Option<String>,
}

/// Where a client's keys come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeySource {
    Url(String),
    File(std::path::PathBuf),
}

struct CachedKeys {
    set: JwkSet,
    fetched: Instant,
}

pub struct Trust {
    settings: CdsSettings,
    http: reqwest::Client,
    keys: Mutex<HashMap<KeySource, CachedKeys>>,
    /// `iss|jti` -> expiry (epoch seconds).
    seen: Mutex<HashMap<String, u64>>,
}

impl Trust {
    pub fn new(settings: CdsSettings) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .user_agent(concat!("trd-sentinel/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Self {
            settings,
            http,
            keys: Mutex::new(HashMap::new()),
            seen: Mutex::new(HashMap::new()),
        }
    }

    /// Checks the `Authorization` header's JWT for a call to `endpoint` (the exact
    /// URL called) at `now` (epoch seconds): the trusted client, or why not.
    pub async fn verify(
        &self,
        authorization: Option<&str>,
        endpoint: &str,
        now: u64,
    ) -> Result<&CdsClient, Refusal> {
        let token = authorization
            .and_then(|h| {
                h.strip_prefix("Bearer ")
                    .or_else(|| h.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(Refusal::NoToken)?;
        let header = decode_header(token).map_err(|_| Refusal::Malformed)?;
        if !matches!(header.alg, Algorithm::ES384 | Algorithm::RS384) {
            return Err(Refusal::Algorithm);
        }
        let unverified: Claims = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| Refusal::Malformed)?;
        let iss = unverified.iss.as_deref().ok_or(Refusal::MissingClaim)?;
        let client = self
            .settings
            .clients
            .iter()
            .find(|c| c.iss == iss)
            .ok_or(Refusal::Issuer)?;
        let source = match &header.jku {
            Some(jku) if client.jku.iter().any(|allowed| allowed == jku) => {
                KeySource::Url(jku.clone())
            }
            Some(_) => return Err(Refusal::KeyUrl),
            None => match (&client.jwks_url, &client.jwks_file) {
                (Some(url), _) => KeySource::Url(url.clone()),
                (None, Some(file)) => KeySource::File(file.clone()),
                (None, None) => return Err(Refusal::KeysUnavailable),
            },
        };
        let kid = header.kid.as_deref().ok_or(Refusal::UnknownKey)?;
        let key = self.key(&source, kid).await?;

        let mut validation = Validation::new(header.alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let claims = decode::<Claims>(token, &key, &validation)
            .map_err(|_| Refusal::Signature)?
            .claims;

        let audiences: Vec<&str> = match &claims.aud {
            Some(Value::String(one)) => vec![one.as_str()],
            Some(Value::Array(many)) => many.iter().filter_map(Value::as_str).collect(),
            _ => return Err(Refusal::MissingClaim),
        };
        let accepted = |aud: &str| {
            aud.trim_end_matches('/') == endpoint.trim_end_matches('/')
                || client.audiences.iter().any(|a| a == aud)
        };
        if !audiences.iter().any(|a| accepted(a)) {
            return Err(Refusal::Audience);
        }
        let skew = self.settings.skew_secs;
        let (exp, iat) = claims.exp.zip(claims.iat).ok_or(Refusal::MissingClaim)?;
        if exp.saturating_add(skew) < now {
            return Err(Refusal::Expired);
        }
        if iat > now.saturating_add(skew) {
            return Err(Refusal::IssuedInFuture);
        }
        if exp.saturating_sub(iat) > self.settings.max_token_lifetime_secs {
            return Err(Refusal::Lifetime);
        }
        if let Some(tenant) = &client.tenant {
            if claims.tenant.as_deref() != Some(tenant.as_str()) {
                return Err(Refusal::Tenant);
            }
        }
        let jti = claims
            .jti
            .filter(|j| !j.is_empty())
            .ok_or(Refusal::MissingClaim)?;
        self.remember(iss, &jti, exp.saturating_add(skew), now)
            .await?;
        Ok(client)
    }

    /// Records a `jti` until its token expires; a second sighting is a replay.
    async fn remember(&self, iss: &str, jti: &str, until: u64, now: u64) -> Result<(), Refusal> {
        let mut seen = self.seen.lock().await;
        if seen.len() > 10_000 {
            seen.retain(|_, expiry| *expiry >= now);
        }
        let key = format!("{iss}|{jti}");
        match seen.get(&key) {
            Some(expiry) if *expiry >= now => Err(Refusal::Replay),
            _ => {
                seen.insert(key, until);
                Ok(())
            }
        }
    }

    /// The key `kid` from `source`: cached, fetched when absent or stale, and fetched
    /// again for an unknown `kid` when the last fetch is old enough.
    async fn key(&self, source: &KeySource, kid: &str) -> Result<DecodingKey, Refusal> {
        let refetch = Duration::from_secs(self.settings.jwks_refetch_secs);
        let stale = Duration::from_secs(self.settings.jwks_cache_secs);
        let fetch_needed = {
            let keys = self.keys.lock().await;
            match keys.get(source) {
                Some(cached) if cached.fetched.elapsed() < stale => {
                    if let Some(jwk) = cached.set.find(kid) {
                        return DecodingKey::from_jwk(jwk).map_err(|_| Refusal::KeysUnavailable);
                    }
                    cached.fetched.elapsed() >= refetch
                }
                _ => true,
            }
        };
        if !fetch_needed {
            return Err(Refusal::UnknownKey);
        }
        let set = self.fetch(source).await.ok_or(Refusal::KeysUnavailable)?;
        let found = set.find(kid).map(DecodingKey::from_jwk);
        self.keys.lock().await.insert(
            source.clone(),
            CachedKeys {
                set,
                fetched: Instant::now(),
            },
        );
        match found {
            Some(Ok(key)) => Ok(key),
            Some(Err(_)) => Err(Refusal::KeysUnavailable),
            None => Err(Refusal::UnknownKey),
        }
    }

    async fn fetch(&self, source: &KeySource) -> Option<JwkSet> {
        match source {
            KeySource::File(path) => {
                let text = tokio::fs::read_to_string(path).await.ok()?;
                serde_json::from_str(&text).ok()
            }
            KeySource::Url(url) => {
                let response = self.http.get(url).send().await.ok()?;
                if !response.status().is_success() {
                    tracing::warn!(jwks = %url, status = response.status().as_u16(), "JWKS fetch failed");
                    return None;
                }
                response.json().await.ok()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/cds/spec");
    const ENDPOINT: &str = "https://cds.example.org/cds-services/some-service";
    const JKU: &str = "https://fhir-ehr.example.com/jwk_uri";

    /// The spec's example client (its iss, its jku allow-listed), with the published
    /// key already cached as if fetched from the jku.
    async fn spec_trust(lifetime: u64) -> Trust {
        let settings = CdsSettings {
            max_token_lifetime_secs: lifetime,
            clients: vec![CdsClient {
                iss: "https://fhir-ehr.example.com/".into(),
                jku: vec![JKU.into()],
                ..CdsClient::default()
            }],
            ..CdsSettings::default()
        };
        let trust = Trust::new(settings);
        let text = std::fs::read_to_string(format!("{SPEC}/spec-jwk-public.json")).expect("jwks");
        trust.keys.lock().await.insert(
            KeySource::Url(JKU.into()),
            CachedKeys {
                set: serde_json::from_str(&text).expect("jwks"),
                fetched: Instant::now(),
            },
        );
        trust
    }

    fn spec_token() -> String {
        let text = std::fs::read_to_string(format!("{SPEC}/spec-jwt.txt")).expect("token");
        format!("Bearer {}", text.lines().next().expect("line").trim())
    }

    /// The specification's example JWT: the signature verifies with its published key;
    /// before its expiry it passes every rule but the lifetime (3.5 years), which the
    /// service refuses; after its expiry it is refused as expired.
    #[tokio::test]
    async fn the_spec_example_jwt() {
        let token = spec_token();
        let issued_then = 1_422_568_000; // just before exp (2015-01-29)
        let trust = spec_trust(200_000_000).await;
        assert!(trust
            .verify(Some(&token), ENDPOINT, issued_then)
            .await
            .is_ok());
        assert_eq!(
            trust
                .verify(Some(&token), ENDPOINT, issued_then)
                .await
                .err(),
            Some(Refusal::Replay),
            "the same jti again"
        );
        let trust = spec_trust(200_000_000).await;
        assert_eq!(
            trust
                .verify(Some(&token), ENDPOINT, 1_800_000_000)
                .await
                .err(),
            Some(Refusal::Expired)
        );
        let trust = spec_trust(3600).await;
        assert_eq!(
            trust
                .verify(Some(&token), ENDPOINT, issued_then)
                .await
                .err(),
            Some(Refusal::Lifetime)
        );
        let trust = spec_trust(200_000_000).await;
        assert_eq!(
            trust
                .verify(
                    Some(&token),
                    "https://cds.example.org/cds-services/other",
                    issued_then
                )
                .await
                .err(),
            Some(Refusal::Audience)
        );
        // One byte of the signature changed.
        let mut tampered = token.clone();
        let last = tampered.pop().expect("char");
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(
            trust
                .verify(Some(&tampered), ENDPOINT, issued_then)
                .await
                .err(),
            Some(Refusal::Signature)
        );
    }
}
