//! Authentication to the EHR: none, a static bearer token, or SMART Backend Services
//! (client_credentials with a signed JWT assertion; the token is cached and renewed a
//! minute before it expires, or at once after a 401).

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Deserialize;
use tokio::sync::Mutex;

use super::error::FhirError;
use crate::config::{JwtAlgorithm, Secret};

const RENEW_BEFORE: Duration = Duration::from_secs(60);

pub enum Auth {
    None,
    Bearer(Secret),
    Smart(Box<SmartBackend>),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Auth::None => "Auth::None",
            Auth::Bearer(_) => "Auth::Bearer(***)",
            Auth::Smart(_) => "Auth::Smart(***)",
        })
    }
}

pub struct SmartBackend {
    pub client_id: String,
    key: EncodingKey,
    algorithm: Algorithm,
    key_id: Option<String>,
    scope: String,
    token_url: Mutex<Option<String>>,
    cached: Mutex<Option<(Secret, Instant)>>,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}

#[derive(Deserialize)]
struct SmartConfiguration {
    token_endpoint: String,
}

#[derive(serde::Serialize)]
struct Assertion<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    exp: u64,
    jti: String,
}

impl SmartBackend {
    pub fn new(
        client_id: String,
        private_key_pem: &[u8],
        algorithm: JwtAlgorithm,
        key_id: Option<String>,
        scope: String,
        token_url: Option<String>,
    ) -> Result<Self, FhirError> {
        let (key, algorithm) = match algorithm {
            JwtAlgorithm::RS384 => (EncodingKey::from_rsa_pem(private_key_pem), Algorithm::RS384),
            JwtAlgorithm::ES384 => (EncodingKey::from_ec_pem(private_key_pem), Algorithm::ES384),
        };
        let key = key.map_err(|e| FhirError::Auth(format!("private key: {e}")))?;
        Ok(Self {
            client_id,
            key,
            algorithm,
            key_id,
            scope,
            token_url: Mutex::new(token_url),
            cached: Mutex::new(None),
        })
    }

    async fn token_url(&self, http: &reqwest::Client, base: &str) -> Result<String, FhirError> {
        let mut known = self.token_url.lock().await;
        if let Some(url) = known.as_ref() {
            return Ok(url.clone());
        }
        let url = format!(
            "{}/.well-known/smart-configuration",
            base.trim_end_matches('/')
        );
        let answer = http
            .get(&url)
            .send()
            .await
            .map_err(|e| FhirError::IdentityProvider(format!("{url}: {e}")))?;
        let config: SmartConfiguration = answer
            .json()
            .await
            .map_err(|e| FhirError::IdentityProvider(format!("{url}: no token_endpoint: {e}")))?;
        *known = Some(config.token_endpoint.clone());
        Ok(config.token_endpoint)
    }

    async fn token(&self, http: &reqwest::Client, base: &str) -> Result<Secret, FhirError> {
        let mut cached = self.cached.lock().await;
        if let Some((token, expires)) = cached.as_ref() {
            if Instant::now() + RENEW_BEFORE < *expires {
                return Ok(token.clone());
            }
        }
        let token_url = self.token_url(http, base).await?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let claims = Assertion {
            iss: &self.client_id,
            sub: &self.client_id,
            aud: &token_url,
            exp: now + 300,
            jti: format!("{:032x}", rand::random::<u128>()),
        };
        let mut header = Header::new(self.algorithm);
        header.kid = self.key_id.clone();
        header.typ = Some("JWT".into());
        let assertion = jsonwebtoken::encode(&header, &claims, &self.key)
            .map_err(|e| FhirError::Auth(format!("signing: {e}")))?;
        let form = [
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            ),
            ("client_assertion", assertion.as_str()),
            ("scope", self.scope.as_str()),
        ];
        let answer = http
            .post(&token_url)
            .form(&form)
            .send()
            .await
            .map_err(|e| FhirError::IdentityProvider(format!("{token_url}: {e}")))?;
        if !answer.status().is_success() {
            return Err(FhirError::IdentityProvider(format!(
                "{token_url}: HTTP {}",
                answer.status().as_u16()
            )));
        }
        let body: TokenResponse = answer.json().await.map_err(|e| {
            FhirError::IdentityProvider(format!("{token_url}: bad token response: {e}"))
        })?;
        let expires = Instant::now() + Duration::from_secs(body.expires_in.unwrap_or(300));
        let token = Secret::new(body.access_token);
        *cached = Some((token.clone(), expires));
        Ok(token)
    }

    async fn forget(&self) {
        *self.cached.lock().await = None;
    }
}

impl Auth {
    /// The Authorization header value, if any.
    pub async fn header(
        &self,
        http: &reqwest::Client,
        base: &str,
    ) -> Result<Option<String>, FhirError> {
        Ok(match self {
            Auth::None => None,
            Auth::Bearer(token) => Some(format!("Bearer {}", token.expose())),
            Auth::Smart(smart) => Some(format!(
                "Bearer {}",
                smart.token(http, base).await?.expose()
            )),
        })
    }

    /// After a 401: drop a cached token so the next call fetches a fresh one.
    /// Returns whether a fresh credential is possible at all.
    pub async fn refresh_after_401(&self) -> bool {
        match self {
            Auth::Smart(smart) => {
                smart.forget().await;
                true
            }
            _ => false,
        }
    }
}

impl Auth {
    /// Builds the configured authentication; reads secret files here, once.
    pub fn from_settings(
        settings: &crate::config::FhirSettings,
        mode: crate::config::AuthMode,
    ) -> Result<Self, FhirError> {
        use crate::config::AuthMode;
        let read = |path: &std::path::Path| {
            std::fs::read(path).map_err(|e| FhirError::Auth(format!("{}: {e}", path.display())))
        };
        match mode {
            AuthMode::None => Ok(Auth::None),
            AuthMode::Bearer => {
                let token = match (&settings.token, &settings.token_file) {
                    (Some(token), _) => token.clone(),
                    (None, Some(path)) => {
                        Secret::new(String::from_utf8_lossy(&read(path)?).trim().to_string())
                    }
                    (None, None) => {
                        return Err(FhirError::Auth("bearer auth needs a token".into()))
                    }
                };
                Ok(Auth::Bearer(token))
            }
            AuthMode::SmartBackend => {
                let (Some(client_id), Some(key_file)) =
                    (&settings.smart_client_id, &settings.smart_private_key_file)
                else {
                    return Err(FhirError::Auth(
                        "smart-backend auth needs a client id and a private key file".into(),
                    ));
                };
                Ok(Auth::Smart(Box::new(SmartBackend::new(
                    client_id.clone(),
                    &read(key_file)?,
                    settings.smart_algorithm,
                    settings.smart_key_id.clone(),
                    settings.smart_scope.clone(),
                    settings.smart_token_url.clone(),
                )?)))
            }
        }
    }
}
