//! The register-blocked dot products behind the SIMD kernels: several output channels against
//! one or two input columns at once, four int8 taps per step, on the packed-word instructions
//! of [`super::simd`].
//!
//! Both operands are int8 words: weights are unpacked with `SXTB16` (bytes 0, 2) and
//! `SXTB16 ROR 8` (bytes 1, 3); inputs the same way with `SXTAB16`, which adds the input offset
//! `−zp` to each lane on the way, so `SMLAD` accumulates `w·(x − zp)` directly and both sides'
//! lanes pair up without any reordering. Every product is at most `128 · 255` in magnitude and a
//! column has at most [`super::conv::MAX_TAPS`] taps, so no partial sum overflows `i32` (the
//! headroom argument in [`super::conv::MAX_TAPS`]); the sums are exact, so any blocking gives
//! the reference kernel's bits.

use crate::quant::{ActivationRange, ChannelRequant};

/// `[Σ w0·x0, Σ w0·x1, Σ w1·x0, Σ w1·x1]` over `n` taps — raw products, the zero point is
/// folded in by the caller (`+ off·Σw`) — where `w` holds the two rows `w0 = w[..n]`,
/// `w1 = w[stride..stride + n]` and `x` the two columns `x0 = x[..n]`, `x1 = x[gap..gap + n]`.
/// Keeping the rows and the columns at fixed distances lets the loop address all four through
/// two pointers, which leaves enough registers for the 2×2 block without spilling.
#[inline(always)]
pub(crate) fn dot2x2_raw(w: &[i8], stride: usize, n: usize, x: &[i8], gap: usize) -> [i32; 4] {
    let (w0, w1) = (&w[..n], &w[stride..stride + n]);
    let (x0, x1) = (&x[..n], &x[gap..gap + n]);
    let quads = n / 4;
    // Columns at the standard gap: the SIMD routine (one assembly loop on DSP cores).
    let head = if gap == super::simd::COLUMN_GAP { super::simd::dot2x2(w, stride, x, quads) } else { None };
    let done = if head.is_some() { quads * 4 } else { 0 };
    let [mut a00, mut a01, mut a10, mut a11] = head.unwrap_or([0; 4]);
    for i in done..n {
        super::simd::rolled();
        let (xa, xb) = (x0[i] as i32, x1[i] as i32);
        let (wa, wb) = (w0[i] as i32, w1[i] as i32);
        a00 += wa * xa;
        a01 += wa * xb;
        a10 += wb * xa;
        a11 += wb * xb;
    }
    [a00, a01, a10, a11]
}

/// Two pixels' outputs for the channel pairs of a block: for `c` in `0..table.len()` rounded
/// down to even, `out_p[c] = table[c].apply(Σ w[c·k..][..k] · x_p[..k])` with the columns
/// `x_0 = x[..k]` and `x_1 = x[gap..][..k]` (raw products: the zero-point term is in the table's
/// `add`). Returns the channels done. On Armv7-M and later Mainline cores with the standard gap
/// and a table whose every channel admits the short requantization (`short`, see
/// `ChannelRequant::short_ok`) this is one assembly routine ([`super::simd`]'s `arm` module),
/// elsewhere this loop.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) fn conv2x2(
    w: &[i8],
    k: usize,
    x: &[i8],
    gap: usize,
    table: &[ChannelRequant],
    short: bool,
    out0: &mut [i8],
    out1: &mut [i8],
    zp: i8,
    act: ActivationRange,
) -> usize {
    // On Armv7-M and later one assembly routine; the channels it leaves (a last odd one, or
    // all of them if a slice is short) go to the caller's column-at-a-time path, so this
    // function has no second copy of the loop there (measured: 0.6 KB of flash).
    #[cfg(all(target_arch = "arm", microcnn_armv7))]
    if gap == super::simd::COLUMN_GAP {
        return if short { super::simd::arm::conv2x2(w, k, x, table, out0, out1, act.min, act.max) } else { 0 };
    }
    let _ = short;
    #[cfg(all(target_arch = "arm", microcnn_v6m))]
    let mut c = conv4x2_v6m(w, k, x, gap, table, out0, out1, zp, act);
    #[cfg(not(all(target_arch = "arm", microcnn_v6m)))]
    let mut c = 0;
    while c + 2 <= table.len() {
        let [a00, a01, a10, a11] = dot2x2_raw(&w[c * k..], k, k, x, gap);
        let (q0, q1) = (&table[c], &table[c + 1]);
        if let ([o00, o01], [o10, o11]) = (&mut out0[c..c + 2], &mut out1[c..c + 2]) {
            *o00 = q0.apply(a00, zp, act);
            *o01 = q1.apply(a10, zp, act);
            *o10 = q0.apply(a01, zp, act);
            *o11 = q1.apply(a11, zp, act);
        }
        c += 2;
    }
    c
}

/// [`conv2x2`] on the Cortex-M0: four channels against one pixel's column at a time in the
/// Thumb-1 routine of [`super::simd::v6m`] (the packed pairs the 2×2 block is written in are
/// emulated on this core), a last group of fewer than four channels redone as the last four
/// with only the new ones stored. Returns the channels done (0 below four channels).
#[cfg(all(target_arch = "arm", microcnn_v6m))]
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn conv4x2_v6m(
    w: &[i8],
    k: usize,
    x: &[i8],
    gap: usize,
    table: &[ChannelRequant],
    out0: &mut [i8],
    out1: &mut [i8],
    zp: i8,
    act: ActivationRange,
) -> usize {
    use super::simd::v6m::dot4x1_raw;
    let n = table.len();
    let mut c = 0;
    while c < n && n >= 4 {
        let s = c.min(n - 4);
        let rows = &w[s * k..];
        let (Some(a), Some(b)) = (dot4x1_raw(rows, k, x, k), dot4x1_raw(rows, k, &x[gap..], k)) else { break };
        for r in c - s..4 {
            out0[s + r] = table[s + r].apply(a[r], zp, act);
            out1[s + r] = table[s + r].apply(b[r], zp, act);
        }
        c = s + 4;
    }
    c
}

/// `(Σ w, Σ |w|)`: the first folds the zero point into raw products, the second bounds them.
#[inline(always)]
pub(crate) fn sums(w: &[i8]) -> (i32, u32) {
    w.iter().fold((0i32, 0u32), |(s, a), &v| {
        super::simd::rolled();
        (s + v as i32, a + v.unsigned_abs() as u32)
    })
}

/// `[Σ w0·(x − zp), Σ w1·(x − zp)]`: the two rows `w0 = w[..k]`, `w1 = w[stride..stride + k]`
/// against one column of `k = x.len()` taps (the dense layer on the M3, the M0 and, built for
/// size, cores with the DSP extension).
#[cfg(microcnn_dense_groups)]
#[inline(always)]
pub(crate) fn dot2x1(w: &[i8], stride: usize, x: &[i8], off: i32) -> [i32; 2] {
    let k = x.len();
    let (w0, w1) = (&w[..k], &w[stride..stride + k]);
    // The whole quads first: on the Cortex-M3 one LDRSB/MLA assembly loop, on cores with the
    // DSP extension built for size four taps of both rows per step on packed pairs; the M0
    // does every tap below.
    #[cfg(all(microcnn_armv7, not(microcnn_dsp)))]
    let ([mut a0, mut a1], done) = match super::simd::arm::dot2x1(w, stride, x, k / 4, off) {
        Some(sums) => (sums, k / 4 * 4),
        None => ([0, 0], 0),
    };
    #[cfg(microcnn_dsp)]
    let ([mut a0, mut a1], done) = (dot2x1_pairs(x, w0, w1, off), k / 4 * 4);
    #[cfg(not(microcnn_armv7))]
    let ([mut a0, mut a1], done) = ([0i32, 0i32], 0);
    for i in done..k {
        super::simd::rolled();
        let xv = x[i] as i32 + off;
        a0 += w0[i] as i32 * xv;
        a1 += w1[i] as i32 * xv;
    }
    [a0, a1]
}

/// `[Σ w0·(x − zp), Σ w1·(x − zp)]` over the whole quads of three slices of one length, on
/// packed pairs: each quad of the input unpacked once into offset pairs (`SXTAB16`), each
/// row's with `SXTB16`, two `SMLAD`s a row (18 instructions per 8 MACs at opt-level "s";
/// unaligned word loads, which these cores allow). Exact: every product is at most 128·255 and
/// a row has at most `MAX_TAPS` taps. Never inlined, and with iterators rather than an index:
/// inlined into the dense layer its loop spilled registers (measured on 256→10 on the M4: 2.70
/// instructions per MAC, against 3.27 inlined and 3.08 with an index).
#[cfg(all(microcnn_dense_groups, microcnn_dsp))]
#[inline(never)]
fn dot2x1_pairs(x: &[i8], w0: &[i8], w1: &[i8], off: i32) -> [i32; 2] {
    use super::simd::{pair, smlad, sxtab16, sxtab16_ror8, sxtb16, sxtb16_ror8, word};
    let offsets = pair(off);
    let (mut a0, mut a1) = (0i32, 0i32);
    for ((xq, q0), q1) in x.chunks_exact(4).zip(w0.chunks_exact(4)).zip(w1.chunks_exact(4)) {
        let xv = word(xq, 0);
        let (xe, xo) = (sxtab16(offsets, xv), sxtab16_ror8(offsets, xv));
        let (v0, v1) = (word(q0, 0), word(q1, 0));
        a0 = smlad(sxtb16_ror8(v0), xo, smlad(sxtb16(v0), xe, a0));
        a1 = smlad(sxtb16_ror8(v1), xo, smlad(sxtb16(v1), xe, a1));
    }
    [a0, a1]
}

/// `Σ w·(x − zp)`: one row against one column (the dense layer on the M3 and the M0; plain
/// byte loads and multiply-accumulates are quicker there than emulated packed pairs).
#[cfg(microcnn_dense_groups)]
#[inline(always)]
pub(crate) fn dot1x1(w: &[i8], x: &[i8], off: i32) -> i32 {
    w.iter().zip(x).fold(0, |a, (&wv, &xv)| {
        super::simd::rolled();
        a + wv as i32 * (xv as i32 + off)
    })
}

/// The four rows `w[r·k..]`, r = 0..=3, against `x` over the first `⌊k/4⌋·4` taps, with the
/// offset `off = −zp` applied to `x` (the M3's and the M0's assembly); [`dot1x1_tail`] adds
/// the rest.
#[cfg(microcnn_dense_groups)]
#[inline(always)]
pub(crate) fn dot4x1_head(w: &[i8], k: usize, x: &[i8], off: i32) -> Option<[i32; 4]> {
    #[cfg(all(microcnn_armv7, not(microcnn_dsp), not(microcnn_compact)))]
    return super::simd::arm::dot4x1(w, k, x, k / 4, off);
    #[cfg(microcnn_v6m)]
    return super::simd::v6m::dot4x1(w, k, x, k / 4 * 4, off);
    // Built for size, Armv7-M and later cores take two rows at a time (`dot2x1`; on the M3
    // the four-row routine and its group cost 0.3 KB of flash for 0.2 instructions per MAC).
    #[cfg(any(microcnn_dsp, all(microcnn_armv7, microcnn_compact)))]
    {
        let _ = (w, k, x, off);
        None
    }
}

/// `Σ w·(x − zp)` over the taps after the last full four of `w`.
#[cfg(microcnn_dense_groups)]
#[inline(always)]
pub(crate) fn dot1x1_tail(w: &[i8], x: &[i8], off: i32) -> i32 {
    let start = w.len() / 4 * 4;
    w[start..].iter().zip(&x[start..w.len()]).fold(0, |a, (&wv, &xv)| {
        super::simd::rolled();
        a + wv as i32 * (xv as i32 + off)
    })
}
