//! Fuzz target: `harness::check_dense` (see `tests/harness/mod.rs` for what it asserts).
#![no_main]

#[path = "../../tests/harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::check_dense(data);
});
