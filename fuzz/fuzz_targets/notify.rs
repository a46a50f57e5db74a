//! libFuzzer's entry to the `notify` target; its body and what it covers are in
//! fuzz/targets/notify.rs.
#![no_main]

#[path = "../targets/mod.rs"]
mod targets;

libfuzzer_sys::fuzz_target!(|data: &[u8]| targets::notify::run(data));
