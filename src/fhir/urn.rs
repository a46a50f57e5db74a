//! Stable `urn:uuid` fullUrls: the same entry (a written resource, a card's
//! suggestion, the summary document) gets the same one on every run, so a retried
//! transaction or a re-rendered card names the same things.

use sha2::{Digest, Sha256};

/// A urn:uuid made from a stable name, so the same entry gets the same fullUrl.
pub fn urn_for(name: &str) -> String {
    let d = Sha256::digest(name.as_bytes());
    let h: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "urn:uuid:{}-{}-4{}-8{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}
