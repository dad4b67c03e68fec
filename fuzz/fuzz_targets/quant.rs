//! Fuzz target: `harness::check_quant` and `harness::check_simd` (see `tests/harness/mod.rs` for
//! what they assert).
#![no_main]

#[path = "../../tests/harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::check_quant(data);
    harness::check_simd(data);
});
