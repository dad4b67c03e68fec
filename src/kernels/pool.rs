//! Max, average, L2-norm and global average pooling.
//!
//! Windows follow the same geometry rules as convolution ([`crate::shape::Window`]); taps that
//! fall in padding are skipped, never read as zeros, so the average and L2 norm are over the
//! in-bounds elements only (TFLite's rule).

use crate::error::{Error, Result};
use crate::kernels::conv::check_work;
use crate::kernels::simd;
use crate::quant::{requantize, ActivationRange, Requant};
use crate::shape::{Geometry, Shape, Window};

/// The most elements one average or L2 window (or one global-average channel) may hold: 2^23.
/// An average sums at most `2^23 · 255 < 2^31` in magnitude, so the `i32` sum is exact.
pub const MAX_WINDOW: usize = 1 << 23;

/// Parameters of max and average pooling. Output shares the input's scale and zero point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PoolParams {
    /// Window, stride and padding. Dilation must be 1.
    pub window: Window,
    /// Output clamp (a fused ReLU, or [`ActivationRange::NONE`]).
    pub activation: ActivationRange,
}

/// Output shape of a pooling layer.
///
/// # Errors
///
/// [`Error::ShapeMismatch`] for a dilated window, [`Error::ZeroParameter`] for an input with a
/// zero dimension, and the geometry errors of [`crate::shape::output_size`].
pub const fn pool2d_output_shape(window: &Window, input: Shape) -> Result<Shape> {
    if window.dilation_h != 1 || window.dilation_w != 1 {
        return Err(Error::ShapeMismatch);
    }
    if input.is_empty() {
        return Err(Error::ZeroParameter);
    }
    match window.resolve(input.h, input.w) {
        Ok(g) => Ok(Shape::new(input.n, g.y.out, g.x.out, input.c)),
        Err(e) => Err(e),
    }
}

fn prepare(
    window: &Window,
    activation: &ActivationRange,
    input: &[i8],
    input_shape: Shape,
    output: &[i8],
) -> Result<(Geometry, Shape)> {
    activation.check()?;
    input_shape.checked_nonempty_len()?;
    input_shape.expect_len(input.len())?;
    let out_shape = pool2d_output_shape(window, input_shape)?;
    out_shape.expect_len(output.len())?;
    let g = window.resolve(input_shape.h, input_shape.w)?;
    // A window never reads more than the input's extent along each axis.
    let taps = window.kernel_h.min(input_shape.h) * window.kernel_w.min(input_shape.w);
    check_work(out_shape.item_len(), taps)?;
    // Every window must overlap the input, or average/L2 would divide by zero. All of these
    // values are at most MAX_EXTENT (checked by `resolve`), so nothing overflows.
    let last_y = (out_shape.h - 1) * window.stride_h;
    let last_x = (out_shape.w - 1) * window.stride_w;
    if g.y.pad_before >= window.kernel_h
        || g.x.pad_before >= window.kernel_w
        || last_y >= g.y.pad_before + input_shape.h
        || last_x >= g.x.pad_before + input_shape.w
    {
        return Err(Error::EmptyWindow);
    }
    Ok((g, out_shape))
}

/// Visits every output position with the in-bounds window `[y0, y1) × [x0, x1)`.
fn for_each_window(
    g: &Geometry,
    window: &Window,
    input_shape: Shape,
    out_shape: Shape,
    mut f: impl FnMut(usize, usize, usize, usize, usize, usize),
) {
    let mut o = 0;
    for b in 0..input_shape.n {
        for oy in 0..out_shape.h {
            let start_y = (oy * window.stride_h) as isize - g.y.pad_before as isize;
            let y0 = start_y.max(0) as usize;
            let y1 = ((start_y + window.kernel_h as isize).min(input_shape.h as isize)) as usize;
            for ox in 0..out_shape.w {
                let start_x = (ox * window.stride_w) as isize - g.x.pad_before as isize;
                let x0 = start_x.max(0) as usize;
                let x1 = ((start_x + window.kernel_w as isize).min(input_shape.w as isize)) as usize;
                f(b, y0, y1, x0, x1, o);
                o += input_shape.c;
            }
        }
    }
}

/// Max pooling: the largest in-bounds element per window and channel, then clamped. This is
/// the reference; [`max_pool2d_i8`] is the fast kernel.
///
/// # Errors
///
/// As [`pool2d_output_shape`]; [`Error::LengthMismatch`] for slices of the wrong length;
/// [`Error::EmptyWindow`] if a window lies entirely in padding; [`Error::InvalidQuantization`]
/// for an inverted activation range.
pub fn max_pool2d_i8_reference(p: &PoolParams, input: &[i8], input_shape: Shape, output: &mut [i8]) -> Result<Shape> {
    let (g, out_shape) = prepare(&p.window, &p.activation, input, input_shape, output)?;
    let (w, c) = (input_shape.w, input_shape.c);
    for_each_window(&g, &p.window, input_shape, out_shape, |b, y0, y1, x0, x1, o| {
        for ch in 0..c {
            let mut m = i8::MIN;
            for y in y0..y1 {
                for x in x0..x1 {
                    m = m.max(input[((b * input_shape.h + y) * w + x) * c + ch]);
                }
            }
            output[o + ch] = p.activation.clamp(m as i32);
        }
    });
    Ok(out_shape)
}

/// Max pooling, bit-exact with [`max_pool2d_i8_reference`]: four channels at a time, the
/// lane-wise maximum of packed words over the window's taps ([`crate::simd::max_i8x4`]: `SSUB8`
/// and `SEL` on cores with the DSP extension; [`crate::simd::portable::max_i8x4_swar`] on the
/// Cortex-M3), byte by byte on the Cortex-M0 and the host.
///
/// # Errors
///
/// As [`max_pool2d_i8_reference`].
pub fn max_pool2d_i8(p: &PoolParams, input: &[i8], input_shape: Shape, output: &mut [i8]) -> Result<Shape> {
    let (g, out_shape) = prepare(&p.window, &p.activation, input, input_shape, output)?;
    let (w, c) = (input_shape.w, input_shape.c);
    let clamp = p.activation != ActivationRange::NONE;
    // Packed words where SSUB8/SEL exist, and on the other Armv7-M cores (the M3) in plain
    // word arithmetic; on the M0 bytes are quicker.
    let words = cfg!(all(target_arch = "arm", microcnn_armv7));
    let max4 = |a: u32, b: u32| {
        if cfg!(microcnn_dsp) {
            simd::max_i8x4(a, b)
        } else {
            simd::portable::max_i8x4_swar(a, b)
        }
    };
    for_each_window(&g, &p.window, input_shape, out_shape, |b, y0, y1, x0, x1, o| {
        let out = &mut output[o..o + c];
        // Four channels per packed word, over every tap from the lanes' minimum (−128, which
        // any tap replaces), the window's bounds checked once.
        let start = ((b * input_shape.h + y0) * w + x0) * c;
        let mut quads = 0;
        if words
            && simd::fold_windows_x4(
                input,
                start,
                (y1 - y0, w * c),
                (x1 - x0, c),
                c / 4,
                (0x8080_8080, max4),
                |q, m| {
                    if let [a, b, c, d] = &mut out[q..q + 4] {
                        [*a, *b, *c, *d] = m.to_le_bytes().map(|v| v as i8);
                    }
                },
            )
        {
            quads = c / 4 * 4;
        }
        // The other channels (all of them elsewhere): each tap's channel vector at once.
        if quads < c {
            let out = &mut out[quads..];
            out.fill(i8::MIN);
            for y in y0..y1 {
                let row = (b * input_shape.h + y) * w;
                for x in x0..x1 {
                    simd::rolled();
                    let at = (row + x) * c;
                    for (m, &v) in out.iter_mut().zip(&input[at + quads..at + c]) {
                        simd::rolled();
                        *m = (*m).max(v);
                    }
                }
            }
        }
        if clamp {
            for m in out.iter_mut() {
                simd::rolled();
                *m = p.activation.clamp(*m as i32);
            }
        }
    });
    Ok(out_shape)
}

/// `round_half_away(acc / count)` as TFLite's average pool computes it (C division after adding
/// or subtracting `count / 2`).
#[inline(always)]
fn rounded_average(acc: i32, count: i32) -> i32 {
    if acc > 0 {
        (acc + count / 2) / count
    } else {
        (acc - count / 2) / count
    }
}

/// Average pooling: the in-bounds sum divided by the in-bounds count, rounded half away from
/// zero (TFLite's `AveragePool`), then clamped. Output shares the input's quantization. This is
/// the reference; [`avg_pool2d_i8`] is the fast kernel.
///
/// # Errors
///
/// As [`max_pool2d_i8_reference`]; [`Error::TooLarge`] if a window holds more than
/// [`MAX_WINDOW`] elements.
pub fn avg_pool2d_i8_reference(p: &PoolParams, input: &[i8], input_shape: Shape, output: &mut [i8]) -> Result<Shape> {
    if p.window.kernel_h.saturating_mul(p.window.kernel_w) > MAX_WINDOW {
        return Err(Error::TooLarge);
    }
    let (g, out_shape) = prepare(&p.window, &p.activation, input, input_shape, output)?;
    let (w, c) = (input_shape.w, input_shape.c);
    for_each_window(&g, &p.window, input_shape, out_shape, |b, y0, y1, x0, x1, o| {
        let count = ((y1 - y0) * (x1 - x0)) as i32;
        for ch in 0..c {
            let mut acc: i32 = 0;
            for y in y0..y1 {
                for x in x0..x1 {
                    acc += input[((b * input_shape.h + y) * w + x) * c + ch] as i32;
                }
            }
            output[o + ch] = p.activation.clamp(rounded_average(acc, count));
        }
    });
    Ok(out_shape)
}

/// Average pooling, bit-exact with [`avg_pool2d_i8_reference`]: channels in blocks of 64 sums
/// on the stack (256 bytes), each tap's contiguous channel vector added at once; the division
/// by the window's count is one per output (a hardware divide on Armv7-M and later; on the
/// Cortex-M0, which has none, an exact reciprocal multiply, [`Reciprocal`]).
///
/// # Errors
///
/// As [`avg_pool2d_i8_reference`].
pub fn avg_pool2d_i8(p: &PoolParams, input: &[i8], input_shape: Shape, output: &mut [i8]) -> Result<Shape> {
    if p.window.kernel_h.saturating_mul(p.window.kernel_w) > MAX_WINDOW {
        return Err(Error::TooLarge);
    }
    let (g, out_shape) = prepare(&p.window, &p.activation, input, input_shape, output)?;
    let (w, c) = (input_shape.w, input_shape.c);
    const BLOCK: usize = 64;
    let mut sums = [0i32; BLOCK];
    let mut divider = Reciprocal::new(1);
    // The average of int8 values, rounded, is an int8 value: only a narrower range clamps.
    let clamp = p.activation != ActivationRange::NONE;
    for_each_window(&g, &p.window, input_shape, out_shape, |b, y0, y1, x0, x1, o| {
        let count = ((y1 - y0) * (x1 - x0)) as u32;
        if divider.d != count {
            divider = Reciprocal::new(count);
        }
        let half = count / 2;
        let finish = |acc: i32| -> i8 {
            // |acc| ≤ 128·count and count ≤ 2^23, so |acc| + count/2 < 2^31.
            let q = divider.divide(acc.unsigned_abs() + half) as i32;
            let v = if acc > 0 { q } else { -q };
            if clamp {
                p.activation.clamp(v)
            } else {
                v as i8
            }
        };
        // With the DSP extension: four channels per word, summed in 16-bit lanes by SXTAB16
        // (exact while |sum| ≤ 128·count < 2^15), the window's bounds checked once.
        let mut first = 0;
        if cfg!(microcnn_dsp) && count <= 255 {
            let start = ((b * input_shape.h + y0) * w + x0) * c;
            let out = &mut output[o..o + c];
            let quads = c / 4;
            let lane = |v: u32, hi: bool| (if hi { v >> 16 } else { v }) as u16 as i16 as i32;
            if simd::sum_windows_x4(input, start, (y1 - y0, w * c), (x1 - x0, c), quads, |q, even, odd| {
                if let [o0, o1, o2, o3] = &mut out[q..q + 4] {
                    *o0 = finish(lane(even, false));
                    *o1 = finish(lane(odd, false));
                    *o2 = finish(lane(even, true));
                    *o3 = finish(lane(odd, true));
                }
            }) {
                first = 4 * quads;
            }
        }
        let mut c0 = first;
        while c0 < c {
            let n = (c - c0).min(BLOCK);
            let sums = &mut sums[..n];
            sums.fill(0);
            for y in y0..y1 {
                let row = (b * input_shape.h + y) * w;
                for x in x0..x1 {
                    for (s, &v) in sums.iter_mut().zip(&input[(row + x) * c + c0..][..n]) {
                        *s += v as i32;
                    }
                }
            }
            for (out, &acc) in output[o + c0..o + c0 + n].iter_mut().zip(sums.iter()) {
                *out = finish(acc);
            }
            c0 += n;
        }
    });
    Ok(out_shape)
}

/// Exact division by a fixed `d ≥ 1` of numerators below 2^31 without a divide instruction
/// where the core has none (`n · m >> 32` with `m = ⌈2^32 / d⌉`, exact for `n < 2^16` and
/// `d ≤ 2^16`: the error `n·(m − 2^32/d)/2^32 < 2^-16 ≤ 1/d` never crosses an integer);
/// larger values, and cores with a hardware divide, use `/`.
#[derive(Clone, Copy, Debug)]
pub struct Reciprocal {
    d: u32,
    m: u64,
}

impl Reciprocal {
    /// The reciprocal of `d` (0 is treated as 1).
    pub const fn new(d: u32) -> Self {
        let d = if d == 0 { 1 } else { d };
        Reciprocal { d, m: (1u64 << 32).div_ceil(d as u64) }
    }

    /// `⌊n / d⌋`.
    #[inline(always)]
    pub const fn divide(&self, n: u32) -> u32 {
        if cfg!(microcnn_no_hw_divide) && n < 1 << 16 && self.d <= 1 << 16 {
            self.divide_small(n)
        } else {
            n / self.d
        }
    }

    /// `⌊n / d⌋` for `n < 2^16`, `d ≤ 2^16` with 32-bit multiplies only. With
    /// `m = (2^32 + r)/d`, `0 ≤ r < d`: `n·m/2^32 = n/d + n·r/(d·2^32)` and `n·r < 2^32`, so
    /// the excess stays below `1/d` and the floor is exact. `m ≤ 2^32` is split as
    /// `m_hi·2^16 + m_lo` (`m_hi ≤ 2^16`, `m_lo < 2^16`), so both products fit in 32 bits and
    /// `⌊(n·m_hi + ⌊n·m_lo/2^16⌋) / 2^16⌋ = ⌊n·m / 2^32⌋`.
    #[inline(always)]
    pub const fn divide_small(&self, n: u32) -> u32 {
        let (hi, lo) = ((self.m >> 16) as u32, (self.m & 0xffff) as u32);
        (n.wrapping_mul(hi).wrapping_add(n.wrapping_mul(lo) >> 16)) >> 16
    }
}

/// Parameters of L2-norm pooling, which changes scale (the norm is never negative).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct L2PoolParams {
    /// Window, stride and padding. Dilation must be 1.
    pub window: Window,
    /// Input zero point.
    pub input_zero_point: i8,
    /// Output zero point.
    pub output_zero_point: i8,
    /// `s_in / s_out` as multiplier and shift ([`crate::quant::quantize_multiplier`]).
    pub requant: Requant,
    /// Output clamp.
    pub activation: ActivationRange,
}

/// Integer square root, rounded to nearest: the `r` minimising `|r² − v|`.
pub const fn isqrt_rounded(v: u64) -> u64 {
    if v == 0 {
        return 0;
    }
    // Floor square root by Newton's method from an over-estimate.
    let mut x = 1u64 << (64 - v.leading_zeros()).div_ceil(2);
    loop {
        let y = (x + v / x) / 2;
        if y >= x {
            break;
        }
        x = y;
    }
    // Round: r = x + 1 when v - x² > x (i.e. v > (x + ½)² − ¼).
    if v - x * x > x {
        x + 1
    } else {
        x
    }
}

/// L2-norm pooling: `sqrt(mean((x − zp_in)²))` over the in-bounds window, requantized.
///
/// TFLite has no int8 L2 pool, so microcnn defines it, in integers only:
///
/// 1. `S = Σ (x − zp_in)²` over the `n` in-bounds taps (exact, `u64`);
/// 2. `m = round(S · 2^16 / n)` — the mean of squares in Q16, rounded half up;
/// 3. `r = isqrt_rounded(m)` — the RMS in Q8 (`r ≈ 256 · sqrt(S / n)`);
/// 4. `out = clamp(MultiplyByQuantizedMultiplier(r, M, shift − 8) + zp_out)` where `M, shift`
///    encode `s_in / s_out`.
///
/// Steps 2–3 lose less than 1/256 of an input step and step 4 rounds once more, so the result
/// is within 1 LSB of the float reference `round(s_in/s_out · sqrt(mean((x − zp)²))) + zp_out`
/// (tested exhaustively over random windows).
///
/// # Errors
///
/// As [`max_pool2d_i8`], plus [`Error::InvalidQuantization`] for an out-of-range zero point or
/// multiplier.
pub fn l2_pool2d_i8(p: &L2PoolParams, input: &[i8], input_shape: Shape, output: &mut [i8]) -> Result<Shape> {
    p.requant.check()?;
    if p.window.kernel_h.saturating_mul(p.window.kernel_w) > MAX_WINDOW {
        return Err(Error::TooLarge);
    }
    let (g, out_shape) = prepare(&p.window, &p.activation, input, input_shape, output)?;
    let (w, c) = (input_shape.w, input_shape.c);
    let shift = (p.requant.shift - 8).max(-31);
    for_each_window(&g, &p.window, input_shape, out_shape, |b, y0, y1, x0, x1, o| {
        let count = ((y1 - y0) * (x1 - x0)) as u64;
        for ch in 0..c {
            let mut sum_sq: u64 = 0;
            for y in y0..y1 {
                for x in x0..x1 {
                    let d = input[((b * input_shape.h + y) * w + x) * c + ch] as i32 - p.input_zero_point as i32;
                    sum_sq += (d * d) as u64; // ≤ 2^23 · 255² < 2^40
                }
            }
            let mean_q16 = ((sum_sq << 16) + count / 2) / count;
            let rms_q8 = isqrt_rounded(mean_q16) as i32; // ≤ 255·256
            output[o + ch] = requantize(rms_q8, p.requant.multiplier, shift, p.output_zero_point, p.activation);
        }
    });
    Ok(out_shape)
}

/// Parameters of global average pooling (TFLite's `MEAN` over height and width).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MeanParams {
    /// Input zero point.
    pub input_zero_point: i8,
    /// Output zero point.
    pub output_zero_point: i8,
    /// `s_in / (s_out · H · W)`: the rescale and the division by the element count in one
    /// multiplier (see [`MeanParams::new`]).
    pub requant: Requant,
    /// Output clamp.
    pub activation: ActivationRange,
}

impl MeanParams {
    /// Parameters for averaging `count = H·W` elements per channel, exactly as TFLite's
    /// `QuantizedMeanOrSum` folds the division into the multiplier: quantize `s_in / s_out`,
    /// then `k = min(⌊log2 count⌋, 32, 31 + shift)`, `M' = (M · 2^k) / count` (integer
    /// division) and `shift' = shift − k`. Build-time helper.
    pub fn new(s_in: f32, zp_in: i8, s_out: f32, zp_out: i8, count: usize, activation: ActivationRange) -> Self {
        let r = crate::quant::quantize_multiplier(s_in as f64 / s_out as f64);
        let count = count.clamp(1, i64::MAX as usize) as i64;
        // 0 ≤ k ≤ 32 and M < 2^31, so M · 2^k < 2^63; 2^k ≤ count, so the quotient is ≤ M.
        let k = (63 - (count as u64).leading_zeros() as i32).min(32).min(31 + r.shift).max(0);
        let multiplier = (((r.multiplier as i64) << k) / count) as i32;
        MeanParams {
            input_zero_point: zp_in,
            output_zero_point: zp_out,
            requant: Requant { multiplier, shift: r.shift - k },
            activation,
        }
    }
}

/// Global average pooling to `n×1×1×c`, bit-exact with TensorFlow Lite Micro's int8 `MEAN`
/// over axes 1 and 2: `acc = Σ (x − zp_in)`, then
/// `clamp(MultiplyByQuantizedMultiplier(acc, M, shift) + zp_out)` where `M, shift` encode
/// `s_in / s_out / (H·W)` as TFLite derives them ([`MeanParams::new`]).
///
/// # Errors
///
/// [`Error::LengthMismatch`] for wrong slice lengths; [`Error::ZeroParameter`] for a shape
/// with a zero dimension; [`Error::TooLarge`] above [`MAX_WINDOW`] elements per channel;
/// [`Error::InvalidQuantization`] for out-of-range parameters.
pub fn global_avg_pool_i8(p: &MeanParams, input: &[i8], input_shape: Shape, output: &mut [i8]) -> Result<Shape> {
    p.requant.check()?;
    p.activation.check()?;
    input_shape.checked_nonempty_len()?;
    input_shape.expect_len(input.len())?;
    // The input is in memory, so H·W fits `usize`.
    let hw = input_shape.h * input_shape.w;
    if hw > MAX_WINDOW {
        return Err(Error::TooLarge);
    }
    let out_shape = Shape::new(input_shape.n, 1, 1, input_shape.c);
    out_shape.expect_len(output.len())?;
    let c = input_shape.c;
    for b in 0..input_shape.n {
        for ch in 0..c {
            let mut acc: i32 = 0;
            for i in 0..hw {
                // ≤ 2^23 terms of at most 255: |acc| < 2^31.
                acc += input[(b * hw + i) * c + ch] as i32 - p.input_zero_point as i32;
            }
            output[b * c + ch] =
                requantize(acc, p.requant.multiplier, p.requant.shift, p.output_zero_point, p.activation);
        }
    }
    Ok(out_shape)
}

#[cfg(test)]
mod tests {
    use super::{isqrt_rounded, Reciprocal};

    #[test]
    fn reciprocal_division_is_exact() {
        let dmax = if cfg!(miri) { 9 } else { 1024 };
        for d in (1..=dmax).chain([4095, 65535, 65536]) {
            let r = Reciprocal::new(d);
            let step = if cfg!(miri) { 4099 } else { 1 };
            for n in (0..1u32 << 16).step_by(step).chain([65535]) {
                assert_eq!(r.divide_small(n), n / d, "{n} / {d}");
                assert_eq!(r.divide(n), n / d, "{n} / {d}");
            }
        }
    }

    #[test]
    fn isqrt_rounds_to_nearest() {
        for v in 0u64..200_000 {
            let r = isqrt_rounded(v);
            let exact = (v as f64).sqrt();
            assert!((r as f64 - exact).abs() <= 0.5 + 1e-9, "isqrt({v}) = {r}");
        }
        assert_eq!(isqrt_rounded((u32::MAX as u64) << 16), 16_777_216);
    }
}
