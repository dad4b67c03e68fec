//! The register-blocked convolution's inner loop (two pixels × a block of channel pairs, dot
//! products and requantization) as one assembly routine for Armv7-M and Armv7E-M / Armv8-M
//! Mainline, `src/kernels/simd/conv2x2.s`: on cores with the DSP extension its taps go through
//! `SXTB16`/`SMLAD`, on the Cortex-M3 through `LDRSB`/`MLA`. Rust spills registers in this loop
//! (it needs all fourteen); the routine does not. Its specification is
//! [`super::super::blocked::conv2x2`]'s portable loop, which it replaces bit for bit (checked
//! in QEMU by `firmware-examples/qemu`'s `kernel_props` on M3, M4 and M33).
#![allow(unsafe_code)]

use crate::quant::ChannelRequant;

#[cfg(microcnn_dsp)]
#[cfg(not(microcnn_v8m))]
core::arch::global_asm!(".set MICROCNN_DSP, 1", include_str!("conv2x2.s"), options(raw));
#[cfg(microcnn_dsp)]
#[cfg(microcnn_v8m)]
core::arch::global_asm!(
    ".arch armv7e-m",
    ".set MICROCNN_DSP, 1",
    include_str!("conv2x2.s"),
    ".arch armv8-m.main",
    options(raw)
);
#[cfg(not(microcnn_dsp))]
core::arch::global_asm!(include_str!("conv2x2.s"), options(raw));

/// The routine's arguments (layout documented in `conv2x2.s`).
#[repr(C)]
struct Conv2x2Args {
    w: *const i8,
    x: *const i8,
    k: u32,
    table: *const ChannelRequant,
    pairs: u32,
    out0: *mut i8,
    out1: *mut i8,
    zp: i32,
    lo: i32,
    hi: i32,
}

// The routine reads the table entries at these offsets.
const _: () = {
    assert!(core::mem::size_of::<ChannelRequant>() == 16);
    assert!(core::mem::offset_of!(ChannelRequant, add) == 0);
    assert!(core::mem::offset_of!(ChannelRequant, multiplier) == 4);
    assert!(core::mem::offset_of!(ChannelRequant, mask) == 8);
    assert!(core::mem::offset_of!(ChannelRequant, left) == 12);
    assert!(core::mem::offset_of!(ChannelRequant, right) == 13);
};

extern "C" {
    fn microcnn_conv2x2_s8(args: *const Conv2x2Args);
}

/// Bytes between the two pixels' columns.
const GAP: usize = super::COLUMN_GAP;

/// Channel pairs `c, c + 1` for `c = 0, 2, …` below `table.len()` (rounded down to even):
/// `out_p[c] = table[c].apply(Σ w[c·k..][..k] · x_p[..k], zp, act)` for the columns
/// `x_0 = x[..k]`, `x_1 = x[GAP..][..k]`. Returns the number of channels done (0 when a
/// slice is too short or there is no pair, so the caller's loop does them).
#[inline(always)]
pub(crate) fn conv2x2(
    w: &[i8],
    k: usize,
    x: &[i8],
    table: &[ChannelRequant],
    out0: &mut [i8],
    out1: &mut [i8],
    zp: i8,
    lo: i8,
    hi: i8,
) -> usize {
    let channels = table.len() / 2 * 2;
    let fits = channels > 0
        && k > 0
        && k <= GAP
        && u32::try_from(k).is_ok()
        && channels.checked_mul(k).is_some_and(|n| w.len() >= n)
        && x.len() >= GAP + k
        && out0.len() >= channels
        && out1.len() >= channels;
    if !fits {
        return 0;
    }
    let args = Conv2x2Args {
        w: w.as_ptr(),
        x: x.as_ptr(),
        k: k as u32,
        table: table.as_ptr(),
        pairs: (channels / 2) as u32,
        out0: out0.as_mut_ptr(),
        out1: out1.as_mut_ptr(),
        zp: zp as i32,
        lo: lo as i32 - zp as i32,
        hi: hi as i32 - zp as i32,
    };
    // SAFETY: the routine reads w[..channels·k], x[..k], x[GAP..GAP + k] and
    // table[..channels], and writes out0[..channels] and out1[..channels] — all in bounds by
    // the checks above; `args` lives across the call. It saves and restores r4–r11 and lr and
    // keeps the stack 8-byte aligned (AAPCS); unaligned word loads are allowed on the cores
    // it is built for.
    unsafe { microcnn_conv2x2_s8(&args) };
    channels
}
