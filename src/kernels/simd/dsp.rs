//! The DSP extension's instructions through `asm!` (stable Rust has no intrinsics for them).
//! This file is the crate's only `unsafe`: each block is one register-to-register instruction
//! with no memory access, no stack use and no flags read.
#![allow(unsafe_code)]

use core::arch::asm;

/// One DSP instruction. On Armv8-M Mainline the assembler only accepts it for a CPU it knows has
/// the optional extension, so the template switches it to Armv7E-M (same T32 encoding) for the
/// one instruction and back.
macro_rules! dsp {
    ($insn:literal, $($ops:tt)*) => {{
        #[cfg(microcnn_v8m)]
        asm!(".arch armv7e-m", $insn, ".arch armv8-m.main", $($ops)*);
        #[cfg(not(microcnn_v8m))]
        asm!($insn, $($ops)*);
    }};
}

/// `SXTB16`: see [`super::portable::sxtb16`].
#[inline(always)]
pub fn sxtb16(x: u32) -> u32 {
    let r: u32;
    // SAFETY: one register-only instruction of the DSP extension, which this build targets
    // (`cfg(microcnn_dsp)`); it reads and writes no memory and no flags.
    unsafe {
        dsp!("sxtb16 {r}, {x}", r = lateout(reg) r, x = in(reg) x, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// `SXTB16 …, ROR #8`: see [`super::portable::sxtb16_ror8`].
#[inline(always)]
pub fn sxtb16_ror8(x: u32) -> u32 {
    let r: u32;
    // SAFETY: as in `sxtb16`.
    unsafe {
        dsp!("sxtb16 {r}, {x}, ror #8", r = lateout(reg) r, x = in(reg) x, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// `SXTAB16`: see [`super::portable::sxtab16`].
#[inline(always)]
pub fn sxtab16(a: u32, x: u32) -> u32 {
    let r: u32;
    // SAFETY: as in `sxtb16`.
    unsafe {
        dsp!("sxtab16 {r}, {a}, {x}", r = lateout(reg) r, a = in(reg) a, x = in(reg) x, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// `SXTAB16 …, ROR #8`: see [`super::portable::sxtab16_ror8`].
#[inline(always)]
pub fn sxtab16_ror8(a: u32, x: u32) -> u32 {
    let r: u32;
    // SAFETY: as in `sxtb16`.
    unsafe {
        dsp!("sxtab16 {r}, {a}, {x}, ror #8", r = lateout(reg) r, a = in(reg) a, x = in(reg) x, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// `SMLAD`: see [`super::portable::smlad`]. (It sets the sticky Q flag on overflow, which
/// nothing reads; the kernels' headroom bound rules overflow out anyway.)
#[inline(always)]
pub fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let r: i32;
    // SAFETY: as in `sxtb16`; the Q flag it may set is never read (`preserves_flags` would
    // be wrong, so it is not claimed).
    unsafe {
        dsp!("smlad {r}, {a}, {b}, {acc}", r = lateout(reg) r, a = in(reg) a, b = in(reg) b, acc = in(reg) acc, options(pure, nomem, nostack))
    };
    r
}
