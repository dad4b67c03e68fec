//! Fuzz target: `harness::check_conv` and `harness::check_upsample` (transposed convolution and
//! nearest-neighbour resize; see `tests/harness/mod.rs` for what they assert).
#![no_main]

#[path = "../../tests/harness/mod.rs"]
mod harness;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    harness::check_conv(data);
    harness::check_upsample(data);
});
