//! The NDC -> RxNorm map a hospital supplies (`knowledge/ndc-rxnorm.csv` in its
//! knowledge directory): pharmacy feeds code dispenses by NDC alone, and the map
//! turns each into the RxNorm clinical drug the engine knows (strength included).
//! Without a map (the shipped file is empty) an NDC-coded product is read by its
//! display text, or takes the drug of the order it was dispensed against.
//!
//! The file: `#` comment lines, a header `ndc,rxcui`, then one row per package code.
//! NDCs may be written 10-digit with hyphens (4-4-2, 5-3-2, 5-4-1), 11-digit with
//! hyphens (5-4-2) or 11 digits without; all are compared in the 11-digit 5-4-2 form
//! (FDA NDC directory; CMS's 11-digit billing form). A bare 10-digit NDC cannot be
//! placed in 5-4-2 and matches only the same bare 10 digits.

use std::collections::HashMap;

use super::KnowledgeError;

pub(crate) const NDC_MAP_FILE: &str = "knowledge/ndc-rxnorm.csv";
pub const NDC_SYSTEM: &str = "http://hl7.org/fhir/sid/ndc";

#[derive(Debug, Default, Clone)]
pub struct NdcMap {
    rxcui_by_ndc: HashMap<String, String>,
}

impl NdcMap {
    pub fn parse(file: &str, text: &str) -> Result<Self, KnowledgeError> {
        let mut rxcui_by_ndc = HashMap::new();
        let rows = text
            .lines()
            .enumerate()
            .map(|(n, line)| (n + 1, line.trim()))
            .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'));
        for (number, line) in rows {
            let mut fields = line.split(',').map(str::trim);
            let (Some(ndc), Some(rxcui)) = (fields.next(), fields.next()) else {
                return Err(KnowledgeError::invalid(
                    file,
                    format!("line {number}: expected `ndc,rxcui`"),
                ));
            };
            if ndc.eq_ignore_ascii_case("ndc") {
                continue; // the header
            }
            let Some(key) = normalise(ndc) else {
                return Err(KnowledgeError::invalid(
                    file,
                    format!("line {number}: `{ndc}` is not an NDC"),
                ));
            };
            if rxcui.is_empty() || !rxcui.bytes().all(|b| b.is_ascii_digit()) {
                return Err(KnowledgeError::invalid(
                    file,
                    format!("line {number}: `{rxcui}` is not an RxNorm code"),
                ));
            }
            rxcui_by_ndc.insert(key, rxcui.to_string());
        }
        Ok(Self { rxcui_by_ndc })
    }

    /// The RxNorm code of an NDC as a record writes it, when the map has it.
    pub fn rxcui(&self, ndc: &str) -> Option<&str> {
        self.rxcui_by_ndc.get(&normalise(ndc)?).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.rxcui_by_ndc.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rxcui_by_ndc.is_empty()
    }
}

/// The 11-digit 5-4-2 form of an NDC; a bare 10-digit code stays as written.
fn normalise(ndc: &str) -> Option<String> {
    let parts: Vec<&str> = ndc.trim().split('-').collect();
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    match parts.as_slice() {
        [whole] if digits(whole) && matches!(whole.len(), 10 | 11) => Some(whole.to_string()),
        [labeler, product, package]
            if digits(labeler)
                && digits(product)
                && digits(package)
                && labeler.len() <= 5
                && product.len() <= 4
                && package.len() <= 2
                && labeler.len() + product.len() + package.len() >= 10 =>
        {
            Some(format!("{labeler:0>5}{product:0>4}{package:0>2}"))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_written_form_of_one_package_is_the_same_ndc() {
        let map = NdcMap::parse("t", "# a comment\nndc,rxcui\n0093-7198-56,312938\n").expect("map");
        for form in [
            "0093-7198-56",
            "00093-7198-56",
            "00093719856",
            " 00093-7198-56 ",
        ] {
            assert_eq!(map.rxcui(form), Some("312938"), "{form}");
        }
        assert_eq!(
            map.rxcui("0093719856"),
            None,
            "bare 10 digits cannot be placed"
        );
        assert_eq!(map.rxcui("00093-7198-57"), None);
        assert_eq!(map.len(), 1);
    }

    #[test]
    fn a_bad_row_names_its_line() {
        let error = NdcMap::parse("f.csv", "ndc,rxcui\n1234,312938\n").expect_err("bad");
        assert!(error.to_string().contains("line 2"), "{error}");
        let error = NdcMap::parse("f.csv", "00093-7198-56,abc\n").expect_err("bad");
        assert!(error.to_string().contains("line 1"), "{error}");
    }
}
