//! Citations: every clinical value in a knowledge file names one of these.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::KnowledgeError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceQuality {
    /// Read in the paper, guideline or measure itself.
    Primary,
    /// A transcription or review.
    Secondary,
    /// Plausible but unconfirmed: prefer a primary source when one turns up.
    Check,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub citation: String,
    pub quality: SourceQuality,
}

/// Checks that each `field -> source key` of an entry names a declared source and
/// that every `required` field has one.
pub(crate) fn check_citations(
    file: &str,
    entry: &str,
    cited: &BTreeMap<String, String>,
    required: &[&str],
    sources: &BTreeMap<String, Source>,
) -> Result<(), KnowledgeError> {
    for field in required {
        if !cited.contains_key(*field) {
            return Err(KnowledgeError::invalid(
                file,
                format!("{entry}: no source cited for `{field}`"),
            ));
        }
    }
    for (field, key) in cited {
        if !sources.contains_key(key) {
            return Err(KnowledgeError::invalid(
                file,
                format!(
                    "{entry}: source `{key}` cited for `{field}` is not declared under [sources]"
                ),
            ));
        }
    }
    Ok(())
}
