//! Reading a resource's type and place without parsing it: most of an export is
//! skipped this way.

use std::borrow::Cow;

use memchr::memchr2;

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
fn leading_resource_type(text: &str) -> Option<&str> {
    let rest = text.trim_start().strip_prefix('{')?.trim_start();
    let rest = rest.strip_prefix("\"resourceType\"")?.trim_start();
    let rest = rest.strip_prefix(':')?.trim_start().strip_prefix('"')?;
    let end = rest.find(['"', '\\'])?;
    (rest.as_bytes().get(end) == Some(&b'"')).then(|| &rest[..end])
}

/// A resource's type without parsing it: from its first member, as writers put it,
/// else from a scan of its top-level members (writers that sort keys put `code` or
/// `entry` first). `None` when the text is not an object with a string resourceType.
pub(super) fn resource_type(text: &str) -> Option<Cow<'_, str>> {
    if let Some(kind) = leading_resource_type(text) {
        return Some(Cow::Borrowed(kind));
    }
    top_level_string(text, "resourceType")
}

/// The string value of a top-level member of the object `text`, found in one pass
/// over its quotes and braces: a string that closes at depth one and is followed by
/// `:` is a key.
fn top_level_string<'t>(text: &'t str, key: &str) -> Option<Cow<'t, str>> {
    let bytes = text.as_bytes();
    let start = skip_ws(bytes, 0)?;
    if bytes.get(start)? != &b'{' {
        return None;
    }
    let mut depth = 0usize;
    let mut string_start: Option<usize> = None;
    for i in memchr::memchr3_iter(b'"', b'{', b'}', bytes.get(start..)?) {
        let pos = start + i;
        match (*bytes.get(pos)?, string_start) {
            (b'"', Some(open)) => {
                if escaped(bytes, pos) {
                    continue;
                }
                string_start = None;
                if depth == 1 && bytes.get(open + 1..pos)? == key.as_bytes() {
                    let colon = skip_ws(bytes, pos + 1)?;
                    if bytes.get(colon)? == &b':' {
                        let value = skip_ws(bytes, colon + 1)?;
                        return string_value(text.get(value..string_end(bytes, value)?)?);
                    }
                }
            }
            (b'"', None) => string_start = Some(pos),
            (_, Some(_)) => {}
            (b'{', None) => depth += 1,
            _ => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return None;
                }
            }
        }
    }
    None
}

/// One entry of a Bundle as the scanner found it: its `fullUrl`, when it has one,
/// and the text of its resource.
pub(super) type ScannedEntry<'t> = (Option<Cow<'t, str>>, &'t str);

/// A Bundle's entries, split without parsing them: `(fullUrl, resource text)` of each
/// entry that has a resource. The scanner follows the JSON structure (strings with
/// their escapes, nested objects and arrays) without validating what it skips: the
/// resources that are kept are parsed, and checked, by serde afterwards. `None` when
/// the text is not structured as a Bundle object (the caller then parses it and
/// reports what is wrong).
pub(super) fn bundle_entries(text: &str) -> Option<Vec<ScannedEntry<'_>>> {
    let bytes = text.as_bytes();
    let entry = object_members(bytes, skip_ws(bytes, 0)?)?
        .into_iter()
        .find(|(key, _)| *key == "entry")
        .map(|(_, value)| value);
    let Some((start, end)) = entry else {
        return Some(Vec::new()); // a Bundle without entries
    };
    let mut out = Vec::new();
    for (from, _) in array_elements(bytes, start, end)? {
        let members = object_members(bytes, from)?;
        let mut full_url = None;
        let mut resource = None;
        for (key, (s, e)) in members {
            match key {
                "fullUrl" => full_url = string_value(text.get(s..e)?),
                "resource" => resource = text.get(s..e),
                _ => {}
            }
        }
        if let Some(resource) = resource {
            out.push((full_url, resource));
        }
    }
    Some(out)
}

fn skip_ws(bytes: &[u8], mut at: usize) -> Option<usize> {
    while matches!(bytes.get(at)?, b' ' | b'\n' | b'\r' | b'\t') {
        at += 1;
    }
    Some(at)
}

/// The end (one past the closing quote) of the string starting at `at` (a quote).
fn string_end(bytes: &[u8], at: usize) -> Option<usize> {
    let mut pos = at + 1;
    loop {
        let found = pos + memchr2(b'"', b'\\', bytes.get(pos..)?)?;
        if bytes.get(found) == Some(&b'"') {
            return Some(found + 1);
        }
        pos = found + 2; // a backslash and the character it escapes
    }
}

/// Whether the quote at `at` is escaped (an odd run of backslashes before it).
fn escaped(bytes: &[u8], at: usize) -> bool {
    let run = bytes.get(..at).map_or(0, |before| {
        before.iter().rev().take_while(|b| **b == b'\\').count()
    });
    run % 2 == 1
}

/// The end of the value starting at `at`. Objects and arrays are crossed in one pass
/// over their quotes and brackets (one SIMD search, not one per string).
fn value_end(bytes: &[u8], at: usize) -> Option<usize> {
    let (open, close) = match bytes.get(at)? {
        b'"' => return string_end(bytes, at),
        b'{' => (b'{', b'}'),
        b'[' => (b'[', b']'),
        _ => {
            let rest = bytes.get(at..)?;
            let len = rest
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t'))
                .unwrap_or(rest.len());
            return (len > 0).then_some(at + len);
        }
    };
    let region = bytes.get(at..)?;
    let mut depth = 0usize;
    let mut in_string = false;
    for i in memchr::memchr3_iter(b'"', open, close, region) {
        let pos = at + i;
        match *bytes.get(pos)? {
            b'"' => {
                if !in_string || !escaped(bytes, pos) {
                    in_string = !in_string;
                }
            }
            _ if in_string => {}
            b if b == open => depth += 1,
            _ => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(pos + 1);
                }
            }
        }
    }
    None
}

/// The members of the object starting at `at`: (key, value span). Keys are read as
/// written (a key with an escape is returned escaped, and matches no name we look
/// for).
fn object_members(bytes: &[u8], at: usize) -> Option<Vec<(&str, (usize, usize))>> {
    if bytes.get(at)? != &b'{' {
        return None;
    }
    let mut members = Vec::new();
    let mut pos = skip_ws(bytes, at + 1)?;
    if bytes.get(pos)? == &b'}' {
        return Some(members);
    }
    loop {
        if bytes.get(pos)? != &b'"' {
            return None;
        }
        let key_end = string_end(bytes, pos)?;
        let key = std::str::from_utf8(bytes.get(pos + 1..key_end - 1)?).ok()?;
        pos = skip_ws(bytes, key_end)?;
        if bytes.get(pos)? != &b':' {
            return None;
        }
        let start = skip_ws(bytes, pos + 1)?;
        let end = value_end(bytes, start)?;
        members.push((key, (start, end)));
        pos = skip_ws(bytes, end)?;
        match bytes.get(pos)? {
            b',' => pos = skip_ws(bytes, pos + 1)?,
            b'}' => return Some(members),
            _ => return None,
        }
    }
}

/// The elements of the array spanning [start, end).
fn array_elements(bytes: &[u8], start: usize, end: usize) -> Option<Vec<(usize, usize)>> {
    if bytes.get(start)? != &b'[' {
        return None;
    }
    let mut elements = Vec::new();
    let mut pos = skip_ws(bytes, start + 1)?;
    if bytes.get(pos)? == &b']' {
        return Some(elements);
    }
    while pos < end {
        let element_end = value_end(bytes, pos)?;
        elements.push((pos, element_end));
        pos = skip_ws(bytes, element_end)?;
        match bytes.get(pos)? {
            b',' => pos = skip_ws(bytes, pos + 1)?,
            b']' => return Some(elements),
            _ => return None,
        }
    }
    None
}

/// A JSON string value's content (unescaped when it has escapes).
fn string_value(raw: &str) -> Option<Cow<'_, str>> {
    let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        serde_json::from_str::<String>(raw).ok().map(Cow::Owned)
    } else {
        Some(Cow::Borrowed(inner))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_split_without_parsing_them() {
        let text = r#" {"resourceType":"Bundle","type":"collection","entry":[
            {"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient","id":"p","name":[{"text":"a \"b\" {c} [d]"},{"text":"c:\\"},{"text":"\\\"}"}]}},
            {"request":{"method":"GET"}},
            { "resource" : {"resourceType":"Observation","component":[{"x":[1,2,{"y":"}"}]}]} , "fullUrl" : "urn:uuid:\u0032" }
        ]} "#;
        let entries = bundle_entries(text).expect("entries");
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].0.as_deref(), Some("urn:uuid:1"));
        assert!(
            entries[0].1.starts_with(r#"{"resourceType":"Patient""#)
                && entries[0].1.ends_with("]}")
        );
        for (_, resource) in &entries {
            assert!(
                serde_json::from_str::<serde_json::Value>(resource).is_ok(),
                "{resource}"
            );
        }
        assert_eq!(entries[1].0.as_deref(), Some("urn:uuid:2"));
        assert!(entries[1].1.ends_with(r#"}]}]}"#));
        for broken in [
            r#"{"entry":[{"resource":{"a":1}"#,
            r#"{"entry":[{"resource":{"a":"x}]}"#,
            "not json",
            r#"["#,
        ] {
            assert!(bundle_entries(broken).is_none(), "{broken}");
        }
        assert_eq!(
            bundle_entries(r#"{"resourceType":"Bundle"}"#).map(|e| e.len()),
            Some(0)
        );
    }

    #[test]
    fn the_resource_type_is_found_wherever_it_stands_at_the_top_level() {
        let cases = [
            (r#"{"resourceType":"Patient","id":"p"}"#, Some("Patient")),
            (
                r#" { "id" : "p", "resourceType" : "Condition" }"#,
                Some("Condition"),
            ),
            (
                r#"{"code":{"resourceType":"Nested","text":""resourceType""},"resourceType":"Observation"}"#,
                Some("Observation"),
            ),
            (r#"{"contained":[{"resourceType":"Medication"}]}"#, None),
            (r#"{"a":"resourceType","b":1}"#, None),
            (r#"{"resourceType":"Encounter"}"#, Some("Encounter")),
            ("not json", None),
            (r#"{"id":"p""#, None),
        ];
        for (text, expected) in cases {
            assert_eq!(resource_type(text).as_deref(), expected, "{text}");
        }
    }
}
