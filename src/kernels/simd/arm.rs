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
core::arch::global_asm!(
    ".set MICROCNN_DSP, 1",
    include_str!("requant.s"),
    include_str!("conv2x2.s"),
    include_str!("depthwise4.s"),
    options(raw)
);
#[cfg(microcnn_dsp)]
#[cfg(microcnn_v8m)]
core::arch::global_asm!(
    ".arch armv7e-m",
    ".set MICROCNN_DSP, 1",
    include_str!("requant.s"),
    include_str!("conv2x2.s"),
    include_str!("depthwise4.s"),
    ".arch armv8-m.main",
    options(raw)
);
#[cfg(not(microcnn_dsp))]
core::arch::global_asm!(
    include_str!("requant.s"),
    include_str!("conv2x2.s"),
    include_str!("depthwise4.s"),
    include_str!("dot4x1_v7m.s"),
    options(raw)
);

#[cfg(not(microcnn_dsp))]
extern "C" {
    #[cfg(not(microcnn_compact))]
    fn microcnn_dot4x1_s8(w: *const i8, x: *const i8, quads: u32, stride: u32, out: *mut i32, offset: i32);
    fn microcnn_dot2x1_s8(w: *const i8, x: *const i8, quads: u32, stride: u32, out: *mut i32, offset: i32);
}

/// The dense layer's four-rows-against-one-column dot product on the Cortex-M3 (LDRSB/MLA in
/// assembly; the DSP cores have their own, see the `dsp` module): `[Σ w_r·(x + offset)]` for
/// the rows `w_r = w[r·stride..]`, r = 0..=3, over the first `4·quads` taps; `None` if a slice
/// is too short.
#[cfg(not(any(microcnn_dsp, microcnn_compact)))]
#[inline(always)]
pub fn dot4x1(w: &[i8], stride: usize, x: &[i8], quads: usize, offset: i32) -> Option<[i32; 4]> {
    super::dot4x1_taps(w, stride, x, quads)?;
    let (quads, stride) = (u32::try_from(quads).ok()?, u32::try_from(stride).ok()?);
    let mut out = [0i32; 4];
    // SAFETY: reads `w[r·stride..][..4q]` for r = 0..=3 and `x[0..4q]` (bounds checked by
    // `dot4x1_taps`), writes `out`, and saves/restores r4–r11 and lr as the AAPCS requires.
    unsafe { microcnn_dot4x1_s8(w.as_ptr(), x.as_ptr(), quads, stride, out.as_mut_ptr(), offset) };
    Some(out)
}

/// [`dot4x1`] for the two rows `w[..]` and `w[stride..]` (LDRSB/MLA, 3.1 instructions per
/// MAC against about 4 for the compiled loop): `None` if a slice is too short.
#[cfg(not(microcnn_dsp))]
#[inline(always)]
pub fn dot2x1(w: &[i8], stride: usize, x: &[i8], quads: usize, offset: i32) -> Option<[i32; 2]> {
    let taps = quads.checked_mul(4)?;
    let fits = quads > 0 && stride >= taps && w.len() >= stride.checked_add(taps)? && x.len() >= taps;
    if !fits {
        return None;
    }
    let (quads, stride) = (u32::try_from(quads).ok()?, u32::try_from(stride).ok()?);
    let mut out = [0i32; 2];
    // SAFETY: reads `w[..4q]`, `w[stride..stride + 4q]` and `x[..4q]` (bounds checked above),
    // writes the two words of `out`, and saves/restores r4–r11 and lr as the AAPCS requires.
    unsafe { microcnn_dot2x1_s8(w.as_ptr(), x.as_ptr(), quads, stride, out.as_mut_ptr(), offset) };
    Some(out)
}

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
    lo: u32,
    hi: u32,
}

// The routines read the table entries at these offsets (`requant.s`).
const _: () = {
    assert!(core::mem::size_of::<ChannelRequant>() == 28);
    assert!(core::mem::offset_of!(ChannelRequant, lsl) == 0);
    assert!(core::mem::offset_of!(ChannelRequant, multiplier) == 4);
    assert!(core::mem::offset_of!(ChannelRequant, round) == 8);
    assert!(core::mem::offset_of!(ChannelRequant, sign) == 12);
    assert!(core::mem::offset_of!(ChannelRequant, right) == 16);
    assert!(core::mem::offset_of!(ChannelRequant, add) == 20);
};

extern "C" {
    fn microcnn_conv2x2_s8(args: *const Conv2x2Args);
}

/// Bytes between the two pixels' columns.
const GAP: usize = super::COLUMN_GAP;

/// An activation bound as the routines take it: in all four bytes on DSP cores (for the packed
/// SSUB8/SEL clamp), else as a word.
#[inline(always)]
fn bound(v: i8) -> u32 {
    if cfg!(microcnn_dsp) {
        (v as u8 as u32) * 0x0101_0101
    } else {
        v as i32 as u32
    }
}

/// Channel pairs `c, c + 1` for `c = 0, 2, …` below `table.len()` (rounded down to even):
/// `out_p[c] = table[c].apply(Σ w[c·k..][..k] · x_p[..k], zp, act)` for the columns
/// `x_0 = x[..k]`, `x_1 = x[GAP..][..k]`, where every entry of `table` must admit the short
/// requantization for these sums (`ChannelRequant::short_ok`; the routine's results are only
/// exact then). Returns the number of channels done (0 when a slice is too short or there is
/// no pair, so the caller's loop does them).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn conv2x2(
    w: &[i8],
    k: usize,
    x: &[i8],
    table: &[ChannelRequant],
    out0: &mut [i8],
    out1: &mut [i8],
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
        lo: bound(lo),
        hi: bound(hi),
    };
    // The routine reads w[..channels·k], x[..k], x[GAP..GAP + k] and table[..channels], writes
    // out0[..channels] and out1[..channels] (two bytes at a time), saves and restores r4–r11
    // and lr, and keeps the stack 8-byte aligned (AAPCS); unaligned word loads and halfword
    // stores are allowed on these cores.
    // SAFETY: every one of those ranges is in bounds by the checks above; `args` outlives the call.
    unsafe { microcnn_conv2x2_s8(&args) };
    channels
}

/// The routine's arguments (layout documented in `depthwise4.s`).
#[repr(C)]
struct Depthwise4Args {
    x: *const i8,
    w: *const i8,
    rows: u32,
    span: u32,
    xrow: u32,
    wrow: u32,
    step: u32,
    quads: u32,
    table: *const ChannelRequant,
    out: *mut i8,
    lo: u32,
    hi: u32,
    offset: u32,
    pixels: u32,
    xpixel: u32,
    opixel: u32,
}

extern "C" {
    fn microcnn_depthwise4_s8(args: *const Depthwise4Args);
}

/// A run of output pixels with the same in-bounds taps, for [`depthwise4`]: the first pixel's
/// first tap's index into the input and the filter (at the block's first channel), how many
/// rows and columns of taps, the index steps between rows and between columns, and how many
/// pixels, `x_pixel` input bytes and `out_pixel` output bytes apart.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Taps {
    pub x: usize,
    pub w: usize,
    pub rows: usize,
    pub cols: usize,
    pub x_row: usize,
    pub x_col: usize,
    pub w_row: usize,
    pub w_col: usize,
    pub pixels: usize,
    pub x_pixel: usize,
    pub out_pixel: usize,
}

/// The last index a tap walk reads (plus `width` bytes), or `None` on overflow.
fn reach(start: usize, rows: usize, row: usize, cols: usize, col: usize, width: usize) -> Option<usize> {
    start.checked_add((rows - 1).checked_mul(row)?)?.checked_add((cols - 1).checked_mul(col)?)?.checked_add(width)
}

/// Channels `0..4·⌊table.len()/4⌋` of every pixel `p < t.pixels` of a run of a
/// depth-multiplier-1 depthwise convolution: `out[p·out_pixel + c] =
/// table[c].apply(Σ_taps w[c]·(x[p·x_pixel + c] + offset), zp, act)` over the taps `t`
/// describes, where every entry of `table` must admit the short requantization for these sums
/// (`ChannelRequant::short_ok`; the routine's results are only exact then, and the zero point
/// comes from the table). Returns the channels done per pixel (0 if a slice is too short, the input's
/// column step differs from the filter's (a dilated row), or a step does not fit 32 bits, so
/// the caller's loop does them).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn depthwise4(
    input: &[i8],
    filter: &[i8],
    t: &Taps,
    table: &[ChannelRequant],
    out: &mut [i8],
    lo: i8,
    hi: i8,
    offset: i32,
) -> usize {
    let channels = table.len() / 4 * 4;
    if channels == 0 || t.rows == 0 || t.cols == 0 || t.pixels == 0 || t.x_col != t.w_col {
        return 0;
    }
    let last_pixel = |step: usize| (t.pixels - 1).checked_mul(step);
    let x_end =
        reach(t.x, t.rows, t.x_row, t.cols, t.x_col, channels).and_then(|e| e.checked_add(last_pixel(t.x_pixel)?));
    let w_end = reach(t.w, t.rows, t.w_row, t.cols, t.w_col, channels);
    let out_end = last_pixel(t.out_pixel).and_then(|e| e.checked_add(channels));
    let in_bounds = x_end.is_some_and(|e| e <= input.len())
        && w_end.is_some_and(|e| e <= filter.len())
        && out_end.is_some_and(|e| e <= out.len());
    let word = |v: usize| u32::try_from(v).ok();
    // The routine forms `rows · x_row` (one past the last row's end) and `cols · step` in 32
    // bits; both must fit, as every other step.
    let fits = t.rows.checked_mul(t.x_row).and_then(word).is_some();
    let (Some(span), Some(xrow), Some(wrow), Some(step), Some(pixels), Some(xpixel), Some(opixel), true, true) = (
        t.cols.checked_mul(t.w_col).and_then(word),
        word(t.x_row),
        word(t.w_row),
        word(t.w_col),
        word(t.pixels),
        word(t.x_pixel),
        word(t.out_pixel),
        in_bounds,
        fits,
    ) else {
        return 0;
    };
    let dsp = cfg!(microcnn_dsp);
    let args = Depthwise4Args {
        x: input[t.x..].as_ptr(),
        w: filter[t.w..].as_ptr(),
        rows: t.rows as u32,
        span,
        xrow,
        wrow,
        step,
        quads: (channels / 4) as u32,
        table: table.as_ptr(),
        out: out.as_mut_ptr(),
        lo: bound(lo),
        hi: bound(hi),
        offset: if dsp { super::pair(offset) } else { offset as u32 },
        pixels,
        xpixel,
        opixel,
    };
    // The routine reads, for every pixel p < pixels and tap (r, k) with r < rows and k < cols,
    // the `channels` bytes at input[x + p·x_pixel + r·x_row + k·x_col..] and
    // filter[w + r·w_row + k·w_col..], reads table[..channels], writes
    // out[p·out_pixel..][..channels] (word stores, unaligned, which these cores allow), and
    // saves/restores r4–r11 and lr, keeping the stack 8-byte aligned (AAPCS).
    // SAFETY: all reads end below `x_end ≤ input.len()` / `w_end ≤ filter.len()` and all writes
    // below `out_end ≤ out.len()` (checked above without overflow, from in-slice starts);
    // `args` outlives the call.
    unsafe { microcnn_depthwise4_s8(&args) };
    channels
}

/// Keeps LLVM's loop unroller from copying the body of the loop this is called in: on M-class
/// cores it runtime-unrolls small loops at opt-level 3, but never one that contains a call or
/// inline assembly. Emits no instruction. For loops that run a few times per layer (set-up,
/// edges, tails), where the unrolled copies are flash without a measurable gain.
#[inline(always)]
pub(crate) fn rolled() {
    // SAFETY: an empty assembly block: it reads and writes no register, flag or memory.
    unsafe { core::arch::asm!("", options(nomem, nostack, preserves_flags)) }
}

/// `n` through an empty assembly block, so the compiler cannot see its value: a loop bounded
/// by it is not fully unrolled. Emits no instruction.
#[inline(always)]
pub(crate) fn opaque(mut n: usize) -> usize {
    // SAFETY: an empty assembly block that leaves its one register operand unchanged; it
    // touches no other register, flag or memory.
    unsafe { core::arch::asm!("/* {0} */", inout(reg) n, options(pure, nomem, nostack, preserves_flags)) }
    n
}

/// [`super::portable::fold_windows_x4`] with the window's bounds checked once instead of once
/// per word (measured on average pooling 2×2/2 on 28×28×8: 41.0 instructions per output
/// instead of 54.7).
#[inline(always)]
pub fn fold_windows_x4<A: Copy>(
    bytes: &[i8],
    start: usize,
    (rows, row_step): (usize, usize),
    (cols, col_step): (usize, usize),
    quads: usize,
    (init, step): (A, impl Fn(A, u32) -> A),
    mut f: impl FnMut(usize, A),
) -> bool {
    if !super::window_fits(bytes.len(), start, (rows, row_step), (cols, col_step), quads) {
        return false;
    }
    let base = bytes.as_ptr();
    for q in 0..quads {
        let mut acc = init;
        let mut row = start + 4 * q;
        for _ in 0..rows {
            let mut at = row;
            for _ in 0..cols {
                // `at = start + 4q + r·row_step + t·col_step` with `q < quads`, `r < rows`,
                // `t < cols`, so `at + 4 ≤ window_end(..) ≤ bytes.len()` (`window_fits` above,
                // without overflow).
                // SAFETY: so the four bytes read lie inside `bytes`; `read_unaligned` allows
                // any alignment.
                let v = unsafe { base.add(at).cast::<u32>().read_unaligned() };
                rolled();
                acc = step(acc, v);
                at += col_step;
            }
            row += row_step;
        }
        f(4 * q, acc);
    }
    true
}
