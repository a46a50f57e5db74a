//! Symptom-score instruments (PHQ-9, MADRS, ...): which codes carry them and how a
//! value is read (remission cut-off, severity bands, flag thresholds).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::sources::{check_citations, Source};
use super::value_sets::ValueSetIndex;
use super::KnowledgeError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstrumentPurpose {
    /// Measures depression severity: used for trial response.
    Depression,
    Screening,
    Anxiety,
    Ptsd,
    /// A suicide-risk item or level (PHQ-9 item 9, C-SSRS): read by the safety rules.
    SuicideRisk,
    /// A symptom scale kept in the record but not used for percent response (EPDS, a
    /// PROMIS T-score).
    Symptom,
    /// Clinician's global rating (CGI-S, CGI-I).
    Global,
    /// Functional outcome or quality of life (WSAS, SDS, Q-LES-Q-SF, WPAI, WHODAS).
    Function,
    /// An item a functional score is computed from (WPAI questions).
    FunctionItem,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instrument {
    pub id: String,
    pub name: String,
    pub value_set: String,
    pub measures: InstrumentPurpose,
    pub range: [f64; 2],
    pub remission_at_or_below: Option<f64>,
    #[serde(default)]
    pub severity_bands: Vec<(f64, f64, String)>,
    pub flag_at_or_above: Option<f64>,
    /// Higher is better (Q-LES-Q-SF); otherwise higher is worse.
    #[serde(default)]
    pub higher_is_better: bool,
    /// Function still impaired at or above this value (WSAS 10).
    pub impaired_at_or_above: Option<f64>,
    /// Function still impaired below this value (Q-LES-Q-SF 70%).
    pub impaired_below: Option<f64>,
    /// Answer codes (LOINC LA codes) of a coded item, with the value each stands for
    /// (PHQ-9 item 9: LA6568-5 "not at all" = 0 ... LA6571-9 "nearly every day" = 3).
    #[serde(default)]
    pub answers: BTreeMap<String, f64>,
    /// How the total is reached from the items when a form or panel carries no
    /// total (a QuestionnaireResponse with the answers only).
    pub items: Option<ItemScoring>,
    #[serde(default)]
    pub sources: BTreeMap<String, String>,
}

/// An instrument's scored items and its rule for missing ones.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ItemScoring {
    /// The LOINC code of the form or panel (PHQ-9 44249-1): a panel Observation with
    /// this code is read for its members even when it carries no total.
    pub panel: String,
    /// The LOINC codes of the scored items, in the form's order.
    pub codes: Vec<String>,
    /// Answer codes (LOINC LA codes) and the score each stands for.
    #[serde(default)]
    pub answers: BTreeMap<String, f64>,
    /// How many items may be unanswered: the total is then the answered items' mean
    /// times the number of items (mean substitution); beyond it the form is not scored.
    #[serde(default)]
    pub missing_allowed: usize,
    /// The citation (a key of `[sources]`) for the items and the missing-item rule.
    pub source: String,
}

impl Instrument {
    /// Whether a functional score still shows impairment (None: no threshold known).
    pub fn impaired(&self, score: f64) -> Option<bool> {
        match (self.impaired_at_or_above, self.impaired_below) {
            (Some(at), _) => Some(score >= at),
            (None, Some(below)) => Some(score < below),
            (None, None) => None,
        }
    }

    pub fn severity(&self, score: f64) -> Option<&str> {
        self.severity_bands
            .iter()
            .find(|(low, high, _)| score >= *low && score <= *high)
            .map(|(_, _, band)| band.as_str())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InstrumentsFile {
    sources: BTreeMap<String, Source>,
    instrument: Vec<Instrument>,
}

pub(crate) fn parse(
    file: &str,
    text: &str,
    value_sets: &ValueSetIndex,
) -> Result<Vec<Instrument>, KnowledgeError> {
    let parsed: InstrumentsFile =
        toml::from_str(text).map_err(|e| KnowledgeError::invalid(file, e.to_string()))?;
    for instrument in &parsed.instrument {
        let entry = format!("instrument `{}`", instrument.id);
        let mut required = Vec::new();
        if instrument.remission_at_or_below.is_some() {
            required.push("remission");
        }
        if !instrument.severity_bands.is_empty() {
            required.push("severity_bands");
        }
        if instrument.flag_at_or_above.is_some() {
            required.push("flag_at_or_above");
        }
        if !instrument.answers.is_empty() {
            required.push("answers");
        }
        if instrument.impaired_at_or_above.is_some() {
            required.push("impaired_at_or_above");
        }
        if instrument.impaired_below.is_some() {
            required.push("impaired_below");
        }
        if let Some((code, value)) = instrument
            .answers
            .iter()
            .find(|(_, v)| **v < instrument.range[0] || **v > instrument.range[1])
        {
            return Err(KnowledgeError::invalid(
                file,
                format!("{entry}: answer {code} = {value} is outside the range"),
            ));
        }
        check_citations(
            file,
            &entry,
            &instrument.sources,
            &required,
            &parsed.sources,
        )?;
        if let Some(items) = &instrument.items {
            if !parsed.sources.contains_key(&items.source) {
                return Err(KnowledgeError::invalid(
                    file,
                    format!("{entry}: items cite unknown source `{}`", items.source),
                ));
            }
            if items.codes.is_empty() || items.missing_allowed >= items.codes.len() {
                return Err(KnowledgeError::invalid(
                    file,
                    format!("{entry}: items need codes, and fewer missing allowed than items"),
                ));
            }
        }
        if !value_sets.has(&instrument.value_set) {
            return Err(KnowledgeError::invalid(
                file,
                format!("{entry}: value set {} is not loaded", instrument.value_set),
            ));
        }
        if instrument.range[0] > instrument.range[1] {
            return Err(KnowledgeError::invalid(
                file,
                format!("{entry}: range low > high"),
            ));
        }
    }
    Ok(parsed.instrument)
}
