//! Code sets as FHIR ValueSets: expansions (VSAC), enumerated concepts, `is-a`
//! filters (read as code prefixes, which is how ICD-10-CM's hierarchy works) and
//! imports of other value sets.

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

use super::files::ProfileFiles;
use super::KnowledgeError;

/// A ValueSet canonical URL.
pub type ValueSetUrl = String;

/// A set of codes as codes and code prefixes, by system: one value set expanded, or
/// the union of several (every diagnosis the engine reads, say).
#[derive(Debug, Default, Clone, PartialEq)]
pub struct CodeSelection {
    /// system -> codes
    exact: HashMap<String, HashSet<String>>,
    /// system -> code prefixes (dots ignored)
    prefixes: HashMap<String, Vec<String>>,
}

/// One value set's expansion.
type Expansion = CodeSelection;

impl CodeSelection {
    pub fn contains(&self, system: &str, code: &str) -> bool {
        if self
            .exact
            .get(system)
            .is_some_and(|codes| codes.contains(code))
        {
            return true;
        }
        self.prefixes.get(system).is_some_and(|prefixes| {
            let code = undotted(code);
            prefixes.iter().any(|p| code.starts_with(p.as_str()))
        })
    }

    /// A selection of exact codes only.
    pub fn from_exact(codes: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut selection = Self::default();
        for (system, code) in codes {
            selection.exact.entry(system).or_default().insert(code);
        }
        selection
    }

    /// Every (system, code) listed exactly, sorted.
    pub fn exact_codes(&self) -> Vec<(String, String)> {
        pairs(&self.exact)
    }

    /// Every (system, prefix) an `is-a` filter stands for (dots removed), sorted.
    pub fn prefixes(&self) -> Vec<(String, String)> {
        pairs(&self.prefixes)
    }

    /// The selection as a token search value (`system|code,...`), for `code=`;
    /// `None` when it has prefixes (a token search cannot say "starts with"
    /// portably: `:below` is rarely supported on ICD-10-CM) or no codes.
    pub fn token_list(&self) -> Option<String> {
        if self.is_empty() || self.prefixes.values().any(|p| !p.is_empty()) {
            return None;
        }
        let codes: Vec<String> = self
            .exact_codes()
            .iter()
            .map(|(system, code)| format!("{system}|{code}"))
            .collect();
        Some(codes.join(","))
    }

    pub fn is_empty(&self) -> bool {
        self.exact.values().all(HashSet::is_empty) && self.prefixes.values().all(Vec::is_empty)
    }

    pub fn absorb(&mut self, other: &Expansion) {
        for (system, codes) in &other.exact {
            self.exact
                .entry(system.clone())
                .or_default()
                .extend(codes.iter().cloned());
        }
        for (system, prefixes) in &other.prefixes {
            self.prefixes
                .entry(system.clone())
                .or_default()
                .extend(prefixes.iter().cloned());
        }
    }
}

/// A system -> codes map as sorted, distinct (system, code) pairs.
fn pairs<'m, C>(by_system: &'m HashMap<String, C>) -> Vec<(String, String)>
where
    &'m C: IntoIterator<Item = &'m String>,
{
    let mut pairs: Vec<(String, String)> = by_system
        .iter()
        .flat_map(|(system, codes)| codes.into_iter().map(move |c| (system.clone(), c.clone())))
        .collect();
    pairs.sort();
    pairs.dedup();
    pairs
}

fn undotted(code: &str) -> String {
    code.chars().filter(|c| *c != '.').collect()
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ValueSetFile {
    resource_type: String,
    url: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    compose: Option<Compose>,
    #[serde(default)]
    expansion: Option<ExpansionFile>,
}

#[derive(Debug, Deserialize)]
struct Compose {
    #[serde(default)]
    include: Vec<Include>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Include {
    system: Option<String>,
    #[serde(default)]
    concept: Vec<Concept>,
    #[serde(default)]
    filter: Vec<Filter>,
    #[serde(default)]
    value_set: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Concept {
    code: String,
}

#[derive(Debug, Deserialize)]
struct Filter {
    property: String,
    op: String,
    value: String,
}

#[derive(Debug, Deserialize)]
struct ExpansionFile {
    #[serde(default)]
    contains: Vec<Contains>,
}

#[derive(Debug, Deserialize)]
struct Contains {
    system: Option<String>,
    code: Option<String>,
}

/// Every value set by canonical URL, fully expanded.
#[derive(Debug, Default)]
pub struct ValueSetIndex {
    sets: HashMap<ValueSetUrl, Expansion>,
    /// The diagnosis sets (`.../ValueSet/dx-*`) with their titles, by URL: the
    /// problems a treatment summary lists.
    diagnoses: Vec<(ValueSetUrl, String)>,
    /// The procedure sets (`.../ValueSet/proc-*`): psychotherapy, ECT, TMS, esketamine.
    procedures: Vec<ValueSetUrl>,
}

impl ValueSetIndex {
    pub fn load(files: &ProfileFiles) -> Result<Self, KnowledgeError> {
        let mut own: HashMap<String, (String, Expansion, Vec<String>)> = HashMap::new();
        let mut diagnoses = Vec::new();
        let mut procedures = Vec::new();
        for folder in ["vsac/", "valuesets/"] {
            for (file, text) in files.under(folder) {
                let parsed: ValueSetFile = serde_json::from_str(text)
                    .map_err(|e| KnowledgeError::invalid(file, e.to_string()))?;
                if parsed.resource_type != "ValueSet" {
                    continue;
                }
                if parsed.url.contains("/ValueSet/dx-") {
                    let title = parsed.title.clone().unwrap_or_else(|| parsed.url.clone());
                    diagnoses.push((parsed.url.clone(), title));
                }
                if parsed.url.contains("/ValueSet/proc-") {
                    procedures.push(parsed.url.clone());
                }
                let (expansion, imports) = expand_own(file, &parsed)?;
                own.insert(parsed.url.clone(), (file.to_string(), expansion, imports));
            }
        }
        // Resolve imports (one level of nesting is all the shipped sets use; deeper
        // chains resolve because imported sets are resolved on demand).
        let mut sets = HashMap::new();
        for url in own.keys() {
            let mut seen = HashSet::new();
            let expansion = resolve(url, &own, &mut seen)?;
            sets.insert(url.clone(), expansion);
        }
        diagnoses.sort();
        diagnoses.dedup_by(|a, b| a.0 == b.0);
        procedures.sort();
        procedures.dedup();
        Ok(Self {
            sets,
            diagnoses,
            procedures,
        })
    }

    /// The diagnosis value sets and their titles, by URL.
    pub fn diagnoses(&self) -> impl Iterator<Item = (&str, &str)> {
        self.diagnoses.iter().map(|(u, t)| (u.as_str(), t.as_str()))
    }

    /// Every code of every diagnosis set: the Conditions the engine reads.
    pub fn every_diagnosis(&self) -> CodeSelection {
        self.union(self.diagnoses.iter().map(|(url, _)| url.as_str()))
    }

    /// Every code of every procedure set: the Procedures the engine reads.
    pub fn every_procedure(&self) -> CodeSelection {
        self.union(self.procedures.iter().map(String::as_str))
    }

    /// Every code of the named value sets (unknown ones hold nothing).
    pub fn union<'u>(&self, urls: impl Iterator<Item = &'u str>) -> CodeSelection {
        let mut all = CodeSelection::default();
        for set in urls.filter_map(|url| self.sets.get(url)) {
            all.absorb(set);
        }
        all
    }

    /// Is this code in the value set? Unknown value sets contain nothing.
    pub fn contains(&self, url: &str, system: &str, code: &str) -> bool {
        self.sets.get(url).is_some_and(|e| e.contains(system, code))
    }

    /// How many codes and code prefixes the value set lists: a measure of breadth,
    /// to prefer the specific set ("PTSD") over an umbrella that holds it.
    pub fn size(&self, url: &str) -> usize {
        self.sets.get(url).map_or(0, |e| {
            e.exact.values().map(HashSet::len).sum::<usize>()
                + e.prefixes.values().map(Vec::len).sum::<usize>()
        })
    }

    pub fn has(&self, url: &str) -> bool {
        self.sets.contains_key(url)
    }

    /// Every (system, code) listed exactly in the value set; used to fetch
    /// observations by code from an EHR and to pre-filter bulk input.
    pub fn exact_codes(&self, url: &str) -> Vec<(String, String)> {
        self.sets
            .get(url)
            .map(CodeSelection::exact_codes)
            .unwrap_or_default()
    }
}

fn expand_own(file: &str, vs: &ValueSetFile) -> Result<(Expansion, Vec<String>), KnowledgeError> {
    let mut expansion = Expansion::default();
    let mut imports = Vec::new();
    for c in vs.expansion.iter().flat_map(|e| &e.contains) {
        if let (Some(system), Some(code)) = (&c.system, &c.code) {
            expansion
                .exact
                .entry(system.clone())
                .or_default()
                .insert(code.clone());
        }
    }
    for include in vs.compose.iter().flat_map(|c| &c.include) {
        imports.extend(include.value_set.iter().cloned());
        let Some(system) = &include.system else {
            if include.concept.is_empty() && include.filter.is_empty() {
                continue;
            }
            return Err(KnowledgeError::invalid(
                file,
                "compose.include with concepts but no system",
            ));
        };
        for concept in &include.concept {
            expansion
                .exact
                .entry(system.clone())
                .or_default()
                .insert(concept.code.clone());
        }
        for filter in &include.filter {
            if filter.property != "concept" || filter.op != "is-a" {
                return Err(KnowledgeError::invalid(
                    file,
                    format!(
                        "filter {} {} is not supported (only concept is-a)",
                        filter.property, filter.op
                    ),
                ));
            }
            expansion
                .prefixes
                .entry(system.clone())
                .or_default()
                .push(undotted(&filter.value));
        }
    }
    Ok((expansion, imports))
}

fn resolve(
    url: &str,
    own: &HashMap<String, (String, Expansion, Vec<String>)>,
    seen: &mut HashSet<String>,
) -> Result<Expansion, KnowledgeError> {
    let (file, expansion, imports) = &own[url];
    let mut result = expansion.clone();
    seen.insert(url.to_string());
    for import in imports {
        if seen.contains(import) {
            continue;
        }
        if !own.contains_key(import) {
            return Err(KnowledgeError::invalid(
                file,
                format!("imports value set {import}, which is not loaded"),
            ));
        }
        result.absorb(&resolve(import, own, seen)?);
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use crate::clinical::knowledge::Knowledge;

    const ICD: &str = "http://hl7.org/fhir/sid/icd-10-cm";
    const SCT: &str = "http://snomed.info/sct";
    const VS: &str = "https://fhir.trd-sentinel.org/ValueSet/";

    #[test]
    fn is_a_filters_match_icd10_descendants_with_or_without_dots() {
        let k = Knowledge::embedded().expect("knowledge");
        let bipolar = format!("{VS}dx-bipolar");
        assert!(k.value_sets.contains(&bipolar, ICD, "F31.81"));
        assert!(k.value_sets.contains(&bipolar, ICD, "F3181"));
        assert!(!k.value_sets.contains(&bipolar, ICD, "F32.9"));
        let ptsd = format!("{VS}dx-ptsd");
        assert!(k.value_sets.contains(&ptsd, ICD, "F43.10"));
        assert!(!k.value_sets.contains(&ptsd, ICD, "F43.2"));
    }

    #[test]
    fn imported_vsac_sets_are_expanded() {
        let k = Knowledge::embedded().expect("knowledge");
        // 371596008 "Bipolar I disorder" comes from the VSAC import, not a filter.
        let bipolar = format!("{VS}dx-bipolar");
        let vsac = "http://cts.nlm.nih.gov/fhir/ValueSet/2.16.840.1.113883.3.67.1.101.1.128";
        let snomed_code = k
            .value_sets
            .exact_codes(vsac)
            .into_iter()
            .find(|(s, _)| s == SCT)
            .expect("a SNOMED code")
            .1;
        assert!(k.value_sets.contains(&bipolar, SCT, &snomed_code));
        assert!(k
            .value_sets
            .contains(&format!("{VS}score-phq9"), "http://loinc.org", "89204-2"));
        assert!(!k
            .value_sets
            .contains("http://unknown/ValueSet/x", ICD, "F31"));
    }
}
