//! libFuzzer's entry to the `ndjson` target; its body and what it covers are in
//! fuzz/targets/bundle.rs.
#![no_main]

#[path = "../targets/mod.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::bundle::ndjson(data));
