//! Signed, short-lived links to a patient's page: the link holds a token the
//! service signs (HS256 with its own key) naming the patient and an expiry; nothing
//! else about the patient is in the URL. An expired, tampered or foreign token is
//! refused.

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::Secret;

const AUDIENCE: &str = "trd-sentinel-page";

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("the link is not valid (expired, altered, or not ours)")]
    Invalid,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    aud: String,
    iat: u64,
    exp: u64,
}

/// Makes and checks page links.
pub struct PageLinks {
    key: Secret,
    lifetime_secs: u64,
    /// `{public_base_url}/page`.
    base: String,
}

impl PageLinks {
    pub fn new(key: Secret, lifetime_secs: u64, public_base_url: &str) -> Self {
        Self {
            key,
            lifetime_secs,
            base: format!("{}/page", public_base_url.trim_end_matches('/')),
        }
    }

    /// The link to `patient`'s page, valid from `now` (epoch seconds) for the
    /// configured lifetime.
    pub fn link(&self, patient: &str, now: u64) -> Option<String> {
        let claims = Claims {
            sub: patient.to_string(),
            aud: AUDIENCE.into(),
            iat: now,
            exp: now.saturating_add(self.lifetime_secs),
        };
        let token = encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(self.key.expose().as_bytes()),
        )
        .ok()?;
        Some(format!("{}/{token}", self.base))
    }

    /// The patient a token names, if it is ours and not expired at `now`.
    pub fn patient(&self, token: &str, now: u64) -> Result<String, LinkError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.validate_exp = false;
        validation.required_spec_claims.clear();
        let claims = decode::<Claims>(
            token,
            &DecodingKey::from_secret(self.key.expose().as_bytes()),
            &validation,
        )
        .map_err(|_| LinkError::Invalid)?
        .claims;
        if claims.exp < now || !claims.sub.starts_with("Patient/") {
            return Err(LinkError::Invalid);
        }
        Ok(claims.sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(key: &str) -> PageLinks {
        PageLinks::new(Secret::new(key), 900, "https://trd.example.org/")
    }

    fn token(link: &str) -> &str {
        link.rsplit('/').next().expect("token")
    }

    #[test]
    fn a_link_names_its_patient_until_it_expires() {
        let links = links("k1-0123456789abcdef0123456789abcdef");
        let link = links.link("Patient/42", 1_000).expect("link");
        assert!(link.starts_with("https://trd.example.org/page/"));
        assert!(!link.contains("42"), "no patient in the URL: {link}");
        assert_eq!(links.patient(token(&link), 1_500), Ok("Patient/42".into()));
        assert_eq!(links.patient(token(&link), 1_901), Err(LinkError::Invalid));
    }

    #[test]
    fn altered_or_foreign_tokens_are_refused() {
        let ours = links("k1-0123456789abcdef0123456789abcdef");
        let link = ours.link("Patient/42", 1_000).expect("link");
        let t = token(&link);
        // Another key's token.
        let theirs = links("another-key-0123456789abcdef012345");
        let foreign = theirs.link("Patient/42", 1_000).expect("link");
        assert_eq!(
            ours.patient(token(&foreign), 1_001),
            Err(LinkError::Invalid)
        );
        // The payload rewritten to name another patient (the signature no longer fits).
        let parts: Vec<&str> = t.split('.').collect();
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let payload = String::from_utf8(b64.decode(parts[1]).expect("b64")).expect("utf8");
        let other = b64.encode(payload.replace("Patient/42", "Patient/43"));
        let forged = format!("{}.{other}.{}", parts[0], parts[2]);
        assert_eq!(ours.patient(&forged, 1_001), Err(LinkError::Invalid));
        assert_eq!(ours.patient("not-a-token", 1_001), Err(LinkError::Invalid));
    }
}
