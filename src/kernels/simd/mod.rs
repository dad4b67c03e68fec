//! The few SIMD instructions of the Armv7E-M / Armv8-M DSP extension the blocked kernels are
//! written with, as functions on packed words: `x` holds four `i8` lanes (byte 0 lowest) or
//! two `i16` lanes (halfword 0 lowest).
//!
//! On cores with the extension (`cfg(microcnn_dsp)`, see the crate docs) each is one
//! instruction through `core::arch::asm!` (`src/kernels/simd/dsp.rs`); everywhere else the same functions are
//! plain Rust ([`portable`]), so the blocked kernels built on them run — and are property-tested
//! and fuzzed — on the host, bit for bit as on the chip. The two implementations are checked
//! against each other lane by lane on the target (`firmware-examples`).

#[cfg(all(target_arch = "arm", microcnn_dsp))]
mod dsp;
#[cfg(all(target_arch = "arm", microcnn_dsp))]
pub use dsp::*;

pub mod portable;
#[cfg(not(all(target_arch = "arm", microcnn_dsp)))]
pub use portable::*;

/// Reads four bytes at `at` as a little-endian word (an unaligned `LDR` where the core allows).
#[inline(always)]
pub(crate) fn word(bytes: &[i8], at: usize) -> u32 {
    // One bounds check for all four bytes, so the compiler can merge them into one load.
    let b = &bytes[at..at + 4];
    u32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8])
}

/// `offset` in both halfword lanes (for [`sxtab16`]).
#[inline(always)]
pub const fn pair(offset: i32) -> u32 {
    (offset as u32 & 0xffff) | ((offset as u32) << 16)
}
