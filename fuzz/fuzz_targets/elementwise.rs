//! Fuzz target: `harness::check_elementwise` and `harness::check_postprocess` (see `tests/harness/mod.rs` for what it asserts).
#![no_main]

#[path = "../../tests/harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::check_elementwise(data);
    harness::check_postprocess(data);
});
