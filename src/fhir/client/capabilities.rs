//! What the EHR says it can do (its CapabilityStatement), checked at start.

use reqwest::Method;
use serde_json::Value;

use super::{FhirClient, FhirError, Idempotency};

impl FhirClient {
    /// Reads the CapabilityStatement and checks that each `(type, interaction)`
    /// the configuration needs is supported (a server-level `transaction` as
    /// `("*", "transaction")`).
    pub async fn check_capabilities(&self, needed: &[(&str, &str)]) -> Result<(), FhirError> {
        let statement = self
            .send(Method::GET, "metadata", None, Idempotency::Idempotent)
            .await?;
        self.batch_listed.store(
            lists_batch(&statement),
            std::sync::atomic::Ordering::Relaxed,
        );
        let missing = missing_capabilities(&statement, needed);
        if missing.is_empty() {
            Ok(())
        } else {
            Err(FhirError::Capability(missing.join(", ")))
        }
    }
}

/// The interactions in `needed` that a CapabilityStatement does not list.
pub fn missing_capabilities(statement: &Value, needed: &[(&str, &str)]) -> Vec<String> {
    let rest = statement.pointer("/rest/0");
    let codes = |list: Option<&Value>| -> Vec<String> {
        list.and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i.get("code").and_then(Value::as_str).map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    needed
        .iter()
        .filter(|(kind, interaction)| {
            if *kind == "*" {
                return !codes(rest.and_then(|r| r.get("interaction")))
                    .iter()
                    .any(|c| c == interaction);
            }
            let resource = rest
                .and_then(|r| r.get("resource"))
                .and_then(Value::as_array)
                .and_then(|rs| {
                    rs.iter()
                        .find(|r| r.get("type").and_then(Value::as_str) == Some(kind))
                });
            !codes(resource.and_then(|r| r.get("interaction")))
                .iter()
                .any(|c| c == interaction)
        })
        .map(|(kind, interaction)| format!("{interaction} on {kind}"))
        .collect()
}

/// Whether the server lists the system-level `batch` interaction.
pub fn lists_batch(statement: &Value) -> bool {
    missing_capabilities(statement, &[("*", "batch")]).is_empty()
}
