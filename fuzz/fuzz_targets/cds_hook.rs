//! libFuzzer's entry to the `cds_hook` target; its body and what it covers are in
//! fuzz/targets/cds_hook.rs.
#![no_main]

#[path = "../targets/mod.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::cds_hook::run(data));
