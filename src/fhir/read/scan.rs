//! Reading a resource's type and place without parsing it: most of an export is
//! skipped this way.

/// Where a resource was read (written out only when it is needed: most resources
/// are skipped, and a string per resource would cost more than skipping them).
pub(super) struct Origin<'a> {
    source: &'a str,
    /// A Bundle entry's index, or an NDJSON line number.
    at: Option<(&'static str, usize)>,
}

impl<'a> Origin<'a> {
    pub(super) fn whole(source: &'a str) -> Self {
        Self { source, at: None }
    }
    pub(super) fn entry(source: &'a str, index: usize) -> Self {
        Self {
            source,
            at: Some(("#entry", index)),
        }
    }
    pub(super) fn line(source: &'a str, number: usize) -> Self {
        Self {
            source,
            at: Some((":", number)),
        }
    }
}

impl std::fmt::Display for Origin<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.at {
            Some(("#entry", n)) => write!(f, "{}#entry[{n}]", self.source),
            Some((sep, n)) => write!(f, "{}{sep}{n}", self.source),
            None => f.write_str(self.source),
        }
    }
}

/// The resource types the reader keeps (every other type is skipped, its fullUrl too:
/// nothing the engine reads refers to one).
pub(super) const READ_TYPES: &[&str] = &[
    "Patient",
    "Medication",
    "MedicationRequest",
    "MedicationDispense",
    "MedicationStatement",
    "Observation",
    "Condition",
    "Procedure",
    "Encounter",
];

/// The resourceType of a resource whose text starts with it, as FHIR JSON writers
/// put it (`{"resourceType": "X", ...`); `None` when it does not (the caller parses).
pub(super) fn leading_resource_type(text: &str) -> Option<&str> {
    let rest = text.trim_start().strip_prefix('{')?.trim_start();
    let rest = rest.strip_prefix("\"resourceType\"")?.trim_start();
    let rest = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let end = rest.find(['"', '\\'])?;
    (rest.as_bytes().get(end) == Some(&b'"')).then(|| &rest[..end])
}
