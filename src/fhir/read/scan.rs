//! Reading a resource's type and place without parsing it: most of an export is
//! skipped this way.

use std::borrow::Cow;

use memchr::memchr2;
use wide::u8x16;

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

/// Whether the reader keeps a resource type: the types the engine reads and the
/// Medications they name (every other type is skipped, its fullUrl too: nothing the
/// engine reads refers to one).
pub(super) fn is_read_type(kind: &str) -> bool {
    kind == "Medication" || crate::resource_types::read_type(kind).is_some()
}

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
pub(crate) fn resource_type(text: &str) -> Option<Cow<'_, str>> {
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
    let mut out = Vec::new();
    // One pass: the Bundle's members are crossed by `value_end`, except `entry`,
    // whose entries are walked member by member (each byte is looked at once).
    let end = walk_object(bytes, skip_ws(bytes, 0)?, |key, start| {
        if key != "entry" || bytes.get(start) != Some(&b'[') {
            return value_end(bytes, start);
        }
        walk_array(bytes, start, |element| {
            let mut full_url = None;
            let mut resource = None;
            let end = walk_object(bytes, element, |key, start| {
                let end = value_end(bytes, start)?;
                match key {
                    "fullUrl" => full_url = Some(string_value(text.get(start..end)?)?),
                    "resource" => resource = Some(text.get(start..end)?),
                    _ => {}
                }
                Some(end)
            })?;
            if let Some(resource) = resource {
                out.push((full_url, resource));
            }
            Some(end)
        })
    })?;
    // Only whitespace may follow the Bundle.
    (skip_ws(bytes, end).is_none()).then_some(out)
}

/// Crosses the object starting at `at`, handing each member's key and value start to
/// `member`, which returns where the value ends. Returns the end of the object.
fn walk_object<'t>(
    bytes: &'t [u8],
    at: usize,
    mut member: impl FnMut(&'t str, usize) -> Option<usize>,
) -> Option<usize> {
    walk_items(bytes, at, (b'{', b'}'), |pos| {
        if bytes.get(pos)? != &b'"' {
            return None;
        }
        let key_end = string_end(bytes, pos)?;
        let key = std::str::from_utf8(bytes.get(pos + 1..key_end - 1)?).ok()?;
        let colon = skip_ws(bytes, key_end)?;
        if bytes.get(colon)? != &b':' {
            return None;
        }
        member(key, skip_ws(bytes, colon + 1)?)
    })
}

/// Crosses the array starting at `at`, handing each element's start to `element`,
/// which returns where it ends. Returns the end of the array.
fn walk_array(
    bytes: &[u8],
    at: usize,
    element: impl FnMut(usize) -> Option<usize>,
) -> Option<usize> {
    walk_items(bytes, at, (b'[', b']'), element)
}

/// The comma-separated items between `brackets` starting at `at`: each item's start
/// goes to `item`, which returns where it ends. Returns the end of the container.
fn walk_items(
    bytes: &[u8],
    at: usize,
    (open, close): (u8, u8),
    mut item: impl FnMut(usize) -> Option<usize>,
) -> Option<usize> {
    if *bytes.get(at)? != open {
        return None;
    }
    let mut pos = skip_ws(bytes, at + 1)?;
    if *bytes.get(pos)? == close {
        return Some(pos + 1);
    }
    loop {
        pos = skip_ws(bytes, item(pos)?)?;
        match *bytes.get(pos)? {
            b',' => pos = skip_ws(bytes, pos + 1)?,
            b if b == close => return Some(pos + 1),
            _ => return None,
        }
    }
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

/// The end of the value starting at `at`: a string to its closing quote, an object
/// or array to its closing bracket ([`container_end`]), anything else to the next
/// delimiter.
fn value_end(bytes: &[u8], at: usize) -> Option<usize> {
    match bytes.get(at)? {
        b'"' => string_end(bytes, at),
        b'{' | b'[' => container_end(bytes, at),
        _ => {
            let rest = bytes.get(at..)?;
            let len = rest
                .iter()
                .position(|b| matches!(b, b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t'))
                .unwrap_or(rest.len());
            (len > 0).then_some(at + len)
        }
    }
}

/// The end (one past the closing bracket) of the object or array starting at `at`.
///
/// This is where the reader spends its time (most of an export is skipped, and
/// skipping is finding where a resource ends), so it goes 64 bytes at a time, as
/// simdjson's first stage does: bit masks of quotes, backslashes and brackets (loops
/// done with 16-byte vector compares), the inside of strings as the prefix XOR
/// of the unescaped quotes, and then only the brackets outside strings are looked at
/// one by one, and only in a block where the depth could reach zero. Blocks with a
/// backslash (rare in FHIR JSON) find their escaped quotes byte by byte.
fn container_end(bytes: &[u8], at: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut in_string = 0u64; // all ones when the block starts inside a string
    let mut escape_carried = false; // the previous block ended in an unpaired backslash
    let mut offset = at;
    while offset < bytes.len() {
        let block = Block::at(bytes, offset);
        let escaped = if block.backslashes == 0 && !escape_carried {
            0
        } else {
            let (escaped, carry) = block.escaped(escape_carried);
            escape_carried = carry;
            escaped
        };
        let quotes = block.quotes & !escaped;
        let inside = prefix_xor(quotes) ^ in_string;
        in_string = 0u64.wrapping_sub(inside >> 63);
        let opens = block.opens & !inside;
        let closes = block.closes & !inside;
        let closing = closes.count_ones() as usize;
        if closing < depth {
            // The depth cannot reach zero in this block.
            depth = depth + opens.count_ones() as usize - closing;
        } else {
            let mut brackets = opens | closes;
            while brackets != 0 {
                let bit = brackets.trailing_zeros();
                brackets &= brackets - 1;
                if opens & (1u64 << bit) != 0 {
                    depth += 1;
                } else {
                    depth = depth.checked_sub(1)?;
                    if depth == 0 {
                        return Some(offset + bit as usize + 1);
                    }
                }
            }
        }
        offset += 64;
    }
    None
}

/// Bit masks of one 64-byte block of JSON text (bit i is byte i; a short last block is
/// padded with spaces).
struct Block {
    bytes: [u8; 64],
    quotes: u64,
    backslashes: u64,
    opens: u64,
    closes: u64,
}

impl Block {
    fn at(text: &[u8], offset: usize) -> Self {
        let mut bytes = [b' '; 64];
        let rest = text.get(offset..).unwrap_or_default();
        let len = rest.len().min(64);
        if let (Some(to), Some(from)) = (bytes.get_mut(..len), rest.get(..len)) {
            to.copy_from_slice(from);
        }
        let (mut quotes, mut backslashes, mut opens, mut closes) = (0u64, 0u64, 0u64, 0u64);
        // Four 16-byte vectors (SSE2 on x86-64, NEON or scalar elsewhere, by `wide`).
        for (lane, chunk) in bytes.chunks_exact(16).enumerate() {
            let mut array = [0u8; 16];
            array.copy_from_slice(chunk);
            let vector = u8x16::new(array);
            // `{` and `[` differ only in bit 5, as do `}` and `]`.
            let folded = vector | u8x16::splat(0x20);
            let mask = |v: u8x16, byte: u8| u64::from(v.simd_eq(u8x16::splat(byte)).to_bitmask());
            let shift = lane * 16;
            quotes |= mask(vector, b'"') << shift;
            backslashes |= mask(vector, b'\\') << shift;
            opens |= mask(folded, b'{') << shift;
            closes |= mask(folded, b'}') << shift;
        }
        Self {
            bytes,
            quotes,
            backslashes,
            opens,
            closes,
        }
    }

    /// The characters escaped by a backslash (bit set), and whether the block ends in
    /// a backslash that escapes the next block's first byte.
    fn escaped(&self, mut pending: bool) -> (u64, bool) {
        let mut escaped = 0u64;
        for (i, &b) in self.bytes.iter().enumerate() {
            if pending {
                escaped |= 1u64 << i;
                pending = false;
            } else if b == b'\\' {
                pending = true;
            }
        }
        (escaped, pending)
    }
}

/// Bit i of the result is the XOR of bits 0..=i of `x`: with `x` the quotes, the bits
/// from an opening quote up to (not including) its closing quote.
fn prefix_xor(mut x: u64) -> u64 {
    x ^= x << 1;
    x ^= x << 2;
    x ^= x << 4;
    x ^= x << 8;
    x ^= x << 16;
    x ^= x << 32;
    x
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

    fn json_value() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
        use proptest::prelude::*;
        let text = proptest::string::string_regex(r#"[a-z{}\[\]"\\/ é\n\t]{0,40}"#).expect("regex");
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            text.prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(6, 200, 8, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::from),
                proptest::collection::btree_map("[a-z{\\[\"]{1,6}", inner, 0..8)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest::proptest! {
        /// The block scanner finds where an object or array ends exactly where a JSON
        /// parser does, whatever strings, escapes and nesting cross the 64-byte blocks.
        #[test]
        fn containers_end_where_a_parser_says(
            value in json_value(),
            padding in 0usize..70,
            pretty: bool,
        ) {
            // Wrapped, so every case is a container (a bare leaf has nothing to cross).
            let value = serde_json::json!([value, {"k": value}]);
            let body = if pretty {
                serde_json::to_string_pretty(&value)
            } else {
                serde_json::to_string(&value)
            }
            .expect("json");
            let text = format!("{}{body} , {{\"after\": [1]}}", " ".repeat(padding));
            proptest::prop_assert_eq!(
                container_end(text.as_bytes(), padding),
                Some(padding + body.len())
            );
        }
    }

    #[test]
    fn unclosed_containers_have_no_end() {
        for text in [
            r#"{"a":"}"#,
            r#"[{"a":1}"#,
            r#"{"a":"\"}"#,
            "[",
            r#"{"a":"\\"#,
        ] {
            assert_eq!(container_end(text.as_bytes(), 0), None, "{text}");
        }
        assert_eq!(container_end(br#"{"a":"\\"}"#, 0), Some(10));
    }
}
