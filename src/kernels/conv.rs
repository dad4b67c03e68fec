//! 2-D convolution, NHWC input, OHWI per-channel int8 filter: the reference kernel, the 1×1
//! ("network in network") fast path and the dispatcher that picks between them.

use crate::error::{Error, Result};
use crate::kernels::blocked;
use crate::quant::{requantize, ActivationRange, ChannelRequant, Requant};
use crate::shape::{tap_range, Geometry, Padding, Shape, Window, MAX_WORK_PER_ITEM};

/// The largest `|w · (x − zp)|`: weights are `−128..=127` and `x − zp` is `−255..=255`, so
/// `128 · 255 = 32_640` (weight −128 against an input 255 steps from its zero point).
pub const MAX_PRODUCT: i64 = 128 * 255;
/// The largest number of multiply-accumulates into one output (`K_h · K_w · C_in`, the dense
/// depth, or the depthwise `K_h · K_w`): `⌊(2^31 − 1) / 32_640⌋ = 65_793`.
///
/// Headroom argument, used by every accumulating kernel: with `T ≤ MAX_TAPS` taps,
/// `|Σ w·(x − zp)| ≤ 32_640 · 65_793 = 2_147_483_520 ≤ i32::MAX`, so the exact sum never
/// overflows. The fast paths compute `Σ w·x − zp·Σ w` instead; each of those two terms is at
/// most `128 · 128 · T ≤ 1_077_944_512` in magnitude and their difference is the exact sum, so
/// no partial result overflows either. The bias is then added with `wrapping_add`, as TFLM adds
/// it in `int32` (a converter never produces a bias that overflows there). One more tap
/// (65_794) could reach `2_147_516_160 > i32::MAX`, so it is refused with [`Error::TooLarge`].
pub const MAX_TAPS: usize = (i32::MAX as i64 / MAX_PRODUCT) as usize;
const _: () = assert!(MAX_TAPS as i64 * MAX_PRODUCT <= i32::MAX as i64);
const _: () = assert!((MAX_TAPS as i64 + 1) * MAX_PRODUCT > i32::MAX as i64);

/// Geometry and quantization of a convolution, everything but the weights.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ConvParams {
    /// Vertical stride (≥ 1).
    pub stride_h: usize,
    /// Horizontal stride (≥ 1).
    pub stride_w: usize,
    /// Vertical dilation (≥ 1).
    pub dilation_h: usize,
    /// Horizontal dilation (≥ 1).
    pub dilation_w: usize,
    /// Padding rule.
    pub padding: Padding,
    /// Zero point of the input tensor.
    pub input_zero_point: i8,
    /// Zero point of the output tensor.
    pub output_zero_point: i8,
    /// Fused activation as an output clamp.
    pub activation: ActivationRange,
}

impl ConvParams {
    /// The sliding window for a `kernel_h × kernel_w` filter.
    pub const fn window(&self, kernel_h: usize, kernel_w: usize) -> Window {
        Window {
            kernel_h,
            kernel_w,
            stride_h: self.stride_h,
            stride_w: self.stride_w,
            dilation_h: self.dilation_h,
            dilation_w: self.dilation_w,
            padding: self.padding,
        }
    }

    const fn check(&self) -> Result<()> {
        self.activation.check()
    }
}

/// Weights of a convolution: filter, bias and per-output-channel requantization.
#[derive(Clone, Copy, Debug)]
pub struct ConvWeights<'a> {
    /// Filter values, OHWI: `[out_c][k_h][k_w][in_c]`, symmetric int8 (zero point 0).
    pub filter: &'a [i8],
    /// `Shape { n: out_c, h: k_h, w: k_w, c: in_c }`.
    pub filter_shape: Shape,
    /// One int32 bias per output channel, in units of `s_in · s_w[c]`; `None` for no bias.
    pub bias: Option<&'a [i32]>,
    /// One requantization multiplier per output channel (see
    /// [`crate::quant::quantize_multiplier`]).
    pub requant: &'a [Requant],
}

impl ConvWeights<'_> {
    /// Validates lengths and ranges against the filter shape.
    pub(crate) fn check(&self, channels: usize) -> Result<()> {
        self.filter_shape.expect_len(self.filter.len())?;
        if self.filter_shape.n != channels {
            return Err(Error::ShapeMismatch);
        }
        check_channel_params(self.bias, self.requant, channels)
    }
}

/// Checks that a bias, if any, has one entry per channel.
pub(crate) fn check_bias(bias: Option<&[i32]>, channels: usize) -> Result<()> {
    match bias {
        Some(b) if b.len() != channels => Err(Error::LengthMismatch { expected: channels, actual: b.len() }),
        _ => Ok(()),
    }
}

/// Checks that bias and requantization have one in-range entry per output channel. (Out of
/// line: every kernel calls it once.)
#[inline(never)]
pub(crate) fn check_channel_params(bias: Option<&[i32]>, requant: &[Requant], channels: usize) -> Result<()> {
    if requant.len() != channels {
        return Err(Error::LengthMismatch { expected: channels, actual: requant.len() });
    }
    check_bias(bias, channels)?;
    // One test per entry without a branch (`shift + 31` as unsigned is above 61 exactly when
    // the shift is outside −31..=30): measured 103 → 45 instructions for ten entries.
    // Kept rolled (unrolled: 0.2 KB of flash for 2.5 instructions per channel, once per layer).
    let bad = requant.iter().fold(0u32, |bad, r| {
        crate::simd::rolled();
        bad | (r.multiplier < 0) as u32 | ((r.shift as u32).wrapping_add(31) > 61) as u32
    });
    if bad != 0 {
        return Err(Error::InvalidQuantization);
    }
    Ok(())
}

/// The output shape of a convolution of `input` by a filter of `filter` (OHWI).
///
/// # Errors
///
/// [`Error::ZeroParameter`] if either shape has a zero dimension, [`Error::ShapeMismatch`] if
/// the filter's input channels differ from the input's, and every error of
/// [`crate::shape::output_size`].
pub const fn conv2d_output_shape(p: &ConvParams, input: Shape, filter: Shape) -> Result<Shape> {
    if input.is_empty() || filter.is_empty() {
        return Err(Error::ZeroParameter);
    }
    if filter.c != input.c {
        return Err(Error::ShapeMismatch);
    }
    match p.window(filter.h, filter.w).resolve(input.h, input.w) {
        Ok(g) => Ok(Shape::new(input.n, g.y.out, g.x.out, filter.n)),
        Err(e) => Err(e),
    }
}

/// Checks everything a convolution needs and returns the resolved geometry and output shape.
fn prepare(
    p: &ConvParams,
    w: &ConvWeights<'_>,
    input: &[i8],
    input_shape: Shape,
    output: &[i8],
) -> Result<(Geometry, Shape)> {
    p.check()?;
    input_shape.checked_nonempty_len()?;
    input_shape.expect_len(input.len())?;
    let out_shape = conv2d_output_shape(p, input_shape, w.filter_shape)?;
    w.check(out_shape.c)?;
    out_shape.expect_len(output.len())?;
    // The filter is in memory, so its element count fits `usize`.
    let taps = w.filter_shape.item_len();
    if taps > MAX_TAPS {
        return Err(Error::TooLarge);
    }
    check_work(out_shape.item_len(), taps)?;
    let g = p.window(w.filter_shape.h, w.filter_shape.w).resolve(input_shape.h, input_shape.w)?;
    Ok((g, out_shape))
}

/// Refuses a call needing more than [`MAX_WORK_PER_ITEM`] steps per batch item:
/// `outputs_per_item · steps_per_output` (both fit `usize`, their product `u64` or saturates).
pub(crate) const fn check_work(outputs_per_item: usize, steps_per_output: usize) -> Result<()> {
    if (outputs_per_item as u64).saturating_mul(steps_per_output as u64) > MAX_WORK_PER_ITEM {
        Err(Error::TooLarge)
    } else {
        Ok(())
    }
}

/// Reference 2-D convolution: the specification every faster path is bit-exact to.
///
/// For each output element `acc = Σ w·(x − zp_in)` over the taps that fall inside the input
/// (padding is zero in the real domain, so padded taps contribute nothing), plus the bias, then
/// `clamp(MultiplyByQuantizedMultiplier(acc, M[c], shift[c]) + zp_out, act.min, act.max)` —
/// TFLite Micro's `ConvPerChannel`, element for element.
///
/// Layouts: `input` NHWC with `input_shape`; output NHWC with the shape returned, which is
/// [`conv2d_output_shape`]; `output.len()` must equal it.
///
/// # Errors
///
/// Shape, length and geometry errors from [`conv2d_output_shape`]; [`Error::LengthMismatch`]
/// for any slice of the wrong length; [`Error::InvalidQuantization`] for a shift outside
/// −31..=30, a negative multiplier or an inverted activation range; [`Error::TooLarge`] when a
/// filter has more than [`MAX_TAPS`] taps or the call more than
/// [`crate::shape::MAX_WORK_PER_ITEM`] multiply-accumulates per batch item. Nothing is written
/// on error.
// Never inlined: the dispatcher would otherwise give every path its own stack buffers in one
// frame (their sum, not the largest, on the stack).
#[inline(never)]
pub fn conv2d_i8_reference(
    p: &ConvParams,
    w: &ConvWeights<'_>,
    input: &[i8],
    input_shape: Shape,
    output: &mut [i8],
) -> Result<Shape> {
    let (g, out_shape) = prepare(p, w, input, input_shape, output)?;
    let (kh, kw, ic, oc) = (w.filter_shape.h, w.filter_shape.w, input_shape.c, out_shape.c);
    let (ih, iw) = (input_shape.h as isize, input_shape.w as isize);
    let input_offset = -(p.input_zero_point as i32);
    let mut o = 0;
    for b in 0..input_shape.n {
        for oy in 0..out_shape.h {
            let y0 = (oy * p.stride_h) as isize - g.y.pad_before as isize;
            for ox in 0..out_shape.w {
                let x0 = (ox * p.stride_w) as isize - g.x.pad_before as isize;
                for c in 0..oc {
                    let mut acc: i32 = 0;
                    for ky in 0..kh {
                        let iy = y0 + (ky * p.dilation_h) as isize;
                        if iy < 0 || iy >= ih {
                            continue;
                        }
                        for kx in 0..kw {
                            let ix = x0 + (kx * p.dilation_w) as isize;
                            if ix < 0 || ix >= iw {
                                continue;
                            }
                            let in_base = ((b * input_shape.h + iy as usize) * input_shape.w + ix as usize) * ic;
                            let f_base = ((c * kh + ky) * kw + kx) * ic;
                            for i in 0..ic {
                                acc += w.filter[f_base + i] as i32 * (input[in_base + i] as i32 + input_offset);
                            }
                        }
                    }
                    if let Some(bias) = w.bias {
                        acc = acc.wrapping_add(bias[c]);
                    }
                    output[o] =
                        requantize(acc, w.requant[c].multiplier, w.requant[c].shift, p.output_zero_point, p.activation);
                    o += 1;
                }
            }
        }
    }
    Ok(out_shape)
}

/// `true` when the 1×1 fast path applies: a 1×1 kernel with no padding on the top/left (any
/// stride; dilation is irrelevant for a single tap).
pub const fn is_pointwise(p: &ConvParams, filter: Shape) -> bool {
    filter.h == 1
        && filter.w == 1
        && match p.padding {
            Padding::Valid | Padding::ValidFloor | Padding::Same => true,
            Padding::Explicit { top, bottom, left, right } => top == 0 && bottom == 0 && left == 0 && right == 0,
        }
}

/// 1×1 convolution ("network in network"): a matrix product of every sampled pixel's channel
/// vector with the `[out_c][in_c]` filter. Bit-exact with [`conv2d_i8_reference`].
///
/// The weight sums `Σ_i w[c][i]` are folded into the accumulator once per output channel, so
/// the inner loop is a plain `Σ w·x` dot product over contiguous memory.
///
/// # Errors
///
/// As [`conv2d_i8_reference`], plus [`Error::ShapeMismatch`] if the filter is not 1×1 or the
/// padding is not zero.
// Never inlined: the dispatcher would otherwise give every path its own stack buffers in one
// frame (their sum, not the largest, on the stack).
#[inline(never)]
pub fn conv2d_1x1_i8(
    p: &ConvParams,
    w: &ConvWeights<'_>,
    input: &[i8],
    input_shape: Shape,
    output: &mut [i8],
) -> Result<Shape> {
    if !is_pointwise(p, w.filter_shape) {
        return Err(Error::ShapeMismatch);
    }
    let (_, out_shape) = prepare(p, w, input, input_shape, output)?;
    let (ic, oc) = (input_shape.c, out_shape.c);
    let input_offset = -(p.input_zero_point as i32);
    let mut o = 0;
    for b in 0..input_shape.n {
        for oy in 0..out_shape.h {
            let iy = oy * p.stride_h;
            for ox in 0..out_shape.w {
                let ix = ox * p.stride_w;
                let base = ((b * input_shape.h + iy) * input_shape.w + ix) * ic;
                let x = &input[base..base + ic];
                for (c, (out, row)) in output[o..o + oc].iter_mut().zip(w.filter.chunks_exact(ic)).enumerate() {
                    let mut dot: i32 = 0;
                    let mut wsum: i32 = 0;
                    for (&wv, &xv) in row.iter().zip(x) {
                        dot += wv as i32 * xv as i32;
                        wsum += wv as i32;
                    }
                    // Σ w·(x + off) = Σ w·x + off·Σ w; both terms stay within i32 (see MAX_TAPS).
                    let mut acc = dot + input_offset * wsum;
                    if let Some(bias) = w.bias {
                        acc = acc.wrapping_add(bias[c]);
                    }
                    *out =
                        requantize(acc, w.requant[c].multiplier, w.requant[c].shift, p.output_zero_point, p.activation);
                }
                o += oc;
            }
        }
    }
    Ok(out_shape)
}

/// General convolution, optimised and bit-exact with [`conv2d_i8_reference`].
///
/// Differences from the reference, none of which changes a bit of the result:
/// - the in-bounds kernel rows and columns are computed once per output position, so the inner
///   loops have no bounds tests;
/// - with horizontal dilation 1 the in-bounds taps of one kernel row are one contiguous run of
///   `n·C_in` input and filter values, so each row is a single dot product;
/// - `Σ w·(x − zp)` is computed as `Σ w·x − zp·Σ w`, which is exact in `i32` (see
///   [`MAX_TAPS`]) and keeps the zero point out of the inner loop.
///
/// # Errors
///
/// As [`conv2d_i8_reference`].
// Never inlined: the dispatcher would otherwise give every path its own stack buffers in one
// frame (their sum, not the largest, on the stack).
#[inline(never)]
pub fn conv2d_i8_fast(
    p: &ConvParams,
    w: &ConvWeights<'_>,
    input: &[i8],
    input_shape: Shape,
    output: &mut [i8],
) -> Result<Shape> {
    let (g, out_shape) = prepare(p, w, input, input_shape, output)?;
    let (kh, kw, ic, oc) = (w.filter_shape.h, w.filter_shape.w, input_shape.c, out_shape.c);
    if kh * kw * ic <= COLUMN_BYTES {
        conv_by_columns(p, w, input, input_shape, out_shape, &g, output);
        return Ok(out_shape);
    }
    let (ih, iw) = (input_shape.h, input_shape.w);
    let input_offset = -(p.input_zero_point as i32);
    let out_hw = out_shape.h * out_shape.w;
    // Output channels in blocks of up to 32: each block's full weight sums are computed once, and
    // each output position's in-bounds tap ranges once per block.
    const BLOCK: usize = 32;
    let mut full_sum = [0i32; BLOCK];
    for c0 in (0..oc).step_by(BLOCK) {
        let c1 = (c0 + BLOCK).min(oc);
        for c in c0..c1 {
            full_sum[c - c0] = w.filter[c * kh * kw * ic..(c + 1) * kh * kw * ic].iter().map(|&v| v as i32).sum();
        }
        for b in 0..input_shape.n {
            let image = &input[b * ih * iw * ic..(b + 1) * ih * iw * ic];
            for oy in 0..out_shape.h {
                let y0 = (oy * p.stride_h) as isize - g.y.pad_before as isize;
                let (ky0, ky1) = tap_range(y0, kh, p.dilation_h, ih);
                for ox in 0..out_shape.w {
                    let x0 = (ox * p.stride_w) as isize - g.x.pad_before as isize;
                    let (kx0, kx1) = tap_range(x0, kw, p.dilation_w, iw);
                    let interior = ky0 == 0 && ky1 == kh && kx0 == 0 && kx1 == kw;
                    let out_base = ((b * out_hw) + oy * out_shape.w + ox) * oc;
                    for c in c0..c1 {
                        let filter = &w.filter[c * kh * kw * ic..(c + 1) * kh * kw * ic];
                        let (mut dot, mut wsum) = (0i32, 0i32);
                        if kx1 > kx0 {
                            for ky in ky0..ky1 {
                                let iy = (y0 + (ky * p.dilation_h) as isize) as usize;
                                if p.dilation_w == 1 {
                                    let ix = (x0 + kx0 as isize) as usize;
                                    let n = (kx1 - kx0) * ic;
                                    let xs = &image[(iy * iw + ix) * ic..][..n];
                                    let fs = &filter[(ky * kw + kx0) * ic..][..n];
                                    dot += dot_i8(fs, xs);
                                    if !interior {
                                        wsum += fs.iter().map(|&v| v as i32).sum::<i32>();
                                    }
                                } else {
                                    for kx in kx0..kx1 {
                                        let ix = (x0 + (kx * p.dilation_w) as isize) as usize;
                                        let xs = &image[(iy * iw + ix) * ic..][..ic];
                                        let fs = &filter[(ky * kw + kx) * ic..][..ic];
                                        dot += dot_i8(fs, xs);
                                        if !interior {
                                            wsum += fs.iter().map(|&v| v as i32).sum::<i32>();
                                        }
                                    }
                                }
                            }
                        }
                        if interior {
                            wsum = full_sum[c - c0];
                        }
                        let acc = (dot + input_offset * wsum).wrapping_add(w.bias.map_or(0, |b| b[c]));
                        output[out_base + c] = requantize(
                            acc,
                            w.requant[c].multiplier,
                            w.requant[c].shift,
                            p.output_zero_point,
                            p.activation,
                        );
                    }
                }
            }
        }
    }
    Ok(out_shape)
}

/// Bytes of stack the column path of [`conv2d_i8_fast`] uses for one output pixel's window.
pub const COLUMN_BYTES: usize = 512;
const _: () = assert!(COLUMN_BYTES == crate::simd::COLUMN_GAP);

/// The column path for small windows (`K_h·K_w·C_in ≤ COLUMN_BYTES`, e.g. a 5×5 kernel on one
/// channel): each output pixel's window is gathered once into a stack buffer, taps in padding
/// filled with the input zero point (so they contribute `w·(zp − zp) = 0`, exactly as skipping
/// them does), and then every output channel is one contiguous dot product with
/// `acc = Σ w·x − zp·Σ w` using the full per-channel weight sums.
fn conv_by_columns(
    p: &ConvParams,
    w: &ConvWeights<'_>,
    input: &[i8],
    input_shape: Shape,
    out_shape: Shape,
    g: &Geometry,
    output: &mut [i8],
) {
    let (kh, kw, ic, oc) = (w.filter_shape.h, w.filter_shape.w, input_shape.c, out_shape.c);
    let k = kh * kw * ic;
    let mut column = [0i8; COLUMN_BYTES];
    let column = &mut column[..k];
    let input_offset = -(p.input_zero_point as i32);
    let out_hw = out_shape.h * out_shape.w;
    let mut full_sum = [0i32; BLOCK];
    let view = Window3 { p, shape: input_shape, g, kh, kw };
    for c0 in (0..oc).step_by(BLOCK) {
        let c1 = (c0 + BLOCK).min(oc);
        for c in c0..c1 {
            full_sum[c - c0] = blocked::sums(&w.filter[c * k..(c + 1) * k]).0;
        }
        for b in 0..input_shape.n {
            let image = &input[b * input_shape.item_len()..(b + 1) * input_shape.item_len()];
            for oy in 0..out_shape.h {
                for ox in 0..out_shape.w {
                    gather_taps(&view, image, oy, ox, 0, column);
                    let base = ((b * out_hw) + oy * out_shape.w + ox) * oc;
                    for c in c0..c1 {
                        let filter = &w.filter[c * k..(c + 1) * k];
                        let acc = (dot_i8(filter, column) + input_offset * full_sum[c - c0])
                            .wrapping_add(w.bias.map_or(0, |bb| bb[c]));
                        output[base + c] = requantize(
                            acc,
                            w.requant[c].multiplier,
                            w.requant[c].shift,
                            p.output_zero_point,
                            p.activation,
                        );
                    }
                }
            }
        }
    }
}

/// `Σ a[i]·b[i]` over two equally long int8 slices, four products per step.
#[inline(always)]
fn dot_i8(a: &[i8], b: &[i8]) -> i32 {
    let mut acc = 0i32;
    let (ac, bc) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ar, br) = (ac.remainder(), bc.remainder());
    for (x, y) in ac.zip(bc) {
        acc += x[0] as i32 * y[0] as i32
            + x[1] as i32 * y[1] as i32
            + x[2] as i32 * y[2] as i32
            + x[3] as i32 * y[3] as i32;
    }
    for (&x, &y) in ar.iter().zip(br) {
        acc += x as i32 * y as i32;
    }
    acc
}

/// `dst.copy_from_slice(src)` (equal lengths) without a `memcpy` call for up to 8 bytes (a
/// byte loop would be turned back into the call).
#[inline(always)]
fn copy_short(dst: &mut [i8], src: &[i8]) {
    macro_rules! fixed {
        ($($n:literal)*) => {
            match dst.len() {
                $($n => {
                    if let (Ok(d), Ok(s)) = (<&mut [i8; $n]>::try_from(&mut *dst), <&[i8; $n]>::try_from(src)) {
                        *d = *s;
                    }
                })*
                _ => dst.copy_from_slice(src),
            }
        };
    }
    fixed!(1 2 3 4 5 6 7 8)
}

/// What a window gather needs to know about the input and the kernel.
struct Window3<'a> {
    p: &'a ConvParams,
    shape: Shape,
    g: &'a Geometry,
    kh: usize,
    kw: usize,
}

/// Taps `t0..t0 + column.len()` of output pixel `(oy, ox)`'s window (in filter order
/// `[k_y][k_x][c_in]`, `K_h·K_w·C_in` in all) into `column`, taps in padding set to the input
/// zero point so they contribute `w·(zp − zp) = 0`, exactly as skipping them does. A window row
/// inside the input (undilated) is one copy; a row across an edge, or dilated, goes a run of
/// input channels at a time. The one gather of every column path (each pixel of the blocked
/// kernel, each piece of a long window, the host's column kernel): never inlined, one copy in
/// the binary (measured against a per-pixel and a per-piece copy: 0.1 KB less flash at
/// opt-level 3 and 0.3 KB less at "s", for 0.4 instructions per MAC more on a 5×5 kernel over
/// one channel on the M4).
#[inline(never)]
fn gather_taps(v: &Window3<'_>, image: &[i8], oy: usize, ox: usize, t0: usize, column: &mut [i8]) {
    let (ih, iw, ic) = (v.shape.h as isize, v.shape.w as isize, v.shape.c);
    let y0 = (oy * v.p.stride_h) as isize - v.g.y.pad_before as isize;
    let x0 = (ox * v.p.stride_w) as isize - v.g.x.pad_before as isize;
    let (row_len, zp) = (v.kw * ic, v.p.input_zero_point);
    let contiguous = v.p.dilation_w == 1 && x0 >= 0 && x0 + v.kw as isize <= iw;
    let end = t0 + column.len();
    // Divisions only for a piece that starts inside a row (the M0 has no divide instruction).
    let mut ky = if t0 == 0 { 0 } else { t0 / row_len };
    let mut t = t0;
    while t < end && ky < v.kh {
        let row_start = ky * row_len;
        let row_end = (row_start + row_len).min(end);
        let iy = y0 + (ky * v.p.dilation_h) as isize;
        let dst = &mut column[t - t0..row_end - t0];
        let r = t - row_start;
        if iy < 0 || iy >= ih {
            dst.fill(zp);
        } else if contiguous {
            let src = ((iy * iw + x0) as usize) * ic + r;
            let src = &image[src..src + dst.len()];
            // Rows of up to 8 bytes (a small kernel on one channel) without a `memcpy` call on
            // Armv7-M and later: measured 5.82 → 5.07 instructions per MAC for a 5×5 kernel on
            // one channel on the M4, for 0.1 KB of flash (left out when built for size; slower
            // on the M0, whose call is cheaper than the fixed-size copies' set-up).
            if cfg!(all(target_arch = "arm", microcnn_armv7, not(microcnn_compact))) {
                copy_short(dst, src);
            } else {
                dst.copy_from_slice(src);
            }
        } else {
            let (mut kx, mut ci) = if r == 0 { (0, 0) } else { (r / ic, r % ic) };
            let mut d = 0;
            while d < dst.len() {
                let run = (ic - ci).min(dst.len() - d);
                let ix = x0 + (kx * v.p.dilation_w) as isize;
                let out = &mut dst[d..d + run];
                if ix >= 0 && ix < iw {
                    let src = ((iy * iw + ix) as usize) * ic + ci;
                    out.copy_from_slice(&image[src..src + run]);
                } else {
                    out.fill(zp);
                }
                (d, kx, ci) = (d + run, kx + 1, 0);
            }
        }
        t = row_end;
        ky += 1;
    }
}

/// One pixel pair (or a last single pixel) of [`conv2d_i8_blocked`] for the channels
/// [`blocked::conv2x2`] leaves: each piece of at most [`COLUMN_BYTES`] taps of both windows is
/// gathered once into `columns` and multiplied by every channel of `table`; `k` is the filter
/// row length.
#[allow(clippy::too_many_arguments)]
fn long_window(
    v: &Window3<'_>,
    filter: &[i8],
    k: usize,
    pixel0: (&[i8], usize, usize),
    pixel1: Option<(&[i8], usize, usize)>,
    columns: &mut [i8; 2 * COLUMN_BYTES],
    table: &[ChannelRequant],
    out0: &mut [i8],
    out1: &mut [i8],
    zp: i8,
    act: ActivationRange,
) {
    // acc[2c] is channel c of pixel 0, acc[2c + 1] of pixel 1.
    let mut acc = [0i32; 2 * BLOCK];
    let acc = &mut acc[..2 * table.len()];
    // `while`, not `step_by`: its set-up code is measured flash (here and below).
    let mut t0 = 0;
    while t0 < k {
        let n = (k - t0).min(COLUMN_BYTES);
        let (c0s, c1s) = columns.split_at_mut(COLUMN_BYTES);
        gather_taps(v, pixel0.0, pixel0.1, pixel0.2, t0, &mut c0s[..n]);
        if let Some((image, oy, ox)) = pixel1 {
            gather_taps(v, image, oy, ox, t0, &mut c1s[..n]);
        }
        let x = &columns[..];
        let mut c = 0;
        while c < table.len() {
            // A last odd channel goes through the same routine with its row twice (stride 0).
            let both = c + 1 < table.len();
            let [a00, a01, a10, a11] =
                blocked::dot2x2_raw(&filter[c * k + t0..], if both { k } else { 0 }, n, x, COLUMN_BYTES);
            acc[2 * c] += a00;
            acc[2 * c + 1] += a01;
            if both {
                acc[2 * c + 2] += a10;
                acc[2 * c + 3] += a11;
            }
            c += 2;
        }
        t0 += n;
    }
    // One requantization site for both pixels (`out1` is empty without a second pixel).
    for (pixel, out) in [out0, out1].into_iter().enumerate() {
        crate::simd::rolled();
        for (c, (o, q)) in out.iter_mut().zip(table).enumerate() {
            crate::simd::rolled();
            *o = q.apply(acc[2 * c + pixel], zp, act);
        }
    }
}

/// Output channels [`conv2d_i8_blocked`] decodes the requantization of at once.
pub const BLOCK: usize = 32;
// The stack figure in `memory::KERNEL_STACK_BYTES` counts an 896-byte table and 256 bytes of sums.
const _: () = assert!(BLOCK * core::mem::size_of::<ChannelRequant>() == 896 && 2 * BLOCK * 4 == 256);

/// Convolution with register blocking, bit-exact with [`conv2d_i8_reference`]: output pixels
/// are taken two at a time and output channels two at a time, so each loaded weight word
/// serves two pixels and each input word two channels; four taps per step on packed-word
/// SIMD (`SXTB16`/`SXTAB16`/`SMLAD` on cores with the DSP extension, the same arithmetic in plain
/// Rust elsewhere — see [`crate::simd`]). A 1×1 kernel reads its columns straight from the
/// input; other kernels gather each pixel's window into a stack column, a column of
/// [`COLUMN_BYTES`] taps at a time for longer windows (whose raw sums are carried between
/// the pieces).
///
/// Stack: two columns of [`COLUMN_BYTES`] bytes, a table of 28 bytes per output channel for
/// a block of [`BLOCK`] channels and, for long windows, 8 bytes of sums per channel (2,176
/// bytes in all, [`crate::memory::KERNEL_STACK_BYTES`]).
///
/// # Errors
///
/// As [`conv2d_i8_reference`].
// Never inlined: the dispatcher would otherwise give every path its own stack buffers in one
// frame (their sum, not the largest, on the stack).
#[inline(never)]
pub fn conv2d_i8_blocked(
    p: &ConvParams,
    w: &ConvWeights<'_>,
    input: &[i8],
    input_shape: Shape,
    output: &mut [i8],
) -> Result<Shape> {
    let (g, out_shape) = prepare(p, w, input, input_shape, output)?;
    let (kh, kw, oc) = (w.filter_shape.h, w.filter_shape.w, out_shape.c);
    let k = w.filter_shape.item_len();
    let pointwise = is_pointwise(p, w.filter_shape);
    let off = -(p.input_zero_point as i32);
    let item = input_shape.item_len();
    let (oh, ow) = (out_shape.h, out_shape.w);
    let pixels = input_shape.n * oh * ow;
    // Both pixels' columns in one buffer, the second `COLUMN_BYTES` after the first.
    let mut columns = [0i8; 2 * COLUMN_BYTES];
    // (batch item, row, column) of a pixel index, stepped without division (the M0 has none).
    let step = |(b, oy, ox): (usize, usize, usize)| {
        if ox + 1 < ow {
            (b, oy, ox + 1)
        } else if oy + 1 < oh {
            (b, oy + 1, 0)
        } else {
            (b + 1, 0, 0)
        }
    };
    // Channels in blocks, each channel's requantization decoded once, with the bias and the
    // zero-point term folded into one addend: Σ w·(x − zp) + bias = Σ w·x + (off·Σ w + bias).
    let mut table = [ChannelRequant::default(); BLOCK];
    let (zp, act) = (p.output_zero_point, p.activation);
    let mut c0 = 0;
    while c0 < oc {
        let c1 = (c0 + BLOCK).min(oc);
        // Whether every channel's raw sums (|Σ w·x| ≤ 128·Σ|w|) admit the short requantization
        // of the assembly routine (`ChannelRequant::short_ok`); if not, the Rust path does them.
        let mut short = true;
        for (c, q) in (c0..c1).zip(table.iter_mut()) {
            let (sum, abs) = blocked::sums(&w.filter[c * k..(c + 1) * k]);
            let add = (off * sum).wrapping_add(w.bias.map_or(0, |b| b[c]));
            *q = ChannelRequant::new(add, w.requant[c].multiplier, w.requant[c].shift, zp);
            short &= q.short_ok(abs.saturating_mul(128));
        }
        let table = &table[..c1 - c0];
        let mut pix = 0;
        let mut at = (0, 0, 0);
        while pix < pixels {
            let pair = pix + 1 < pixels;
            let (b0, oy0, ox0) = at;
            let (b1, oy1, ox1) = if pair { step(at) } else { at };
            at = step((b1, oy1, ox1));
            let (out0, rest) = output[pix * oc..].split_at_mut(oc);
            let out0 = &mut out0[c0..c1];
            // The second pixel's channels (none when the last pixel has no partner).
            let out1: &mut [i8] = if pair { &mut rest[c0..c1] } else { &mut [] };
            let filter = &w.filter[c0 * k..c1 * k];
            let mut c = 0;
            if pair && k <= COLUMN_BYTES {
                // The two pixels' columns, `COLUMN_BYTES` apart: a 1×1 kernel's is the pixel's
                // channel vector (copied directly: measured 2.11 → 1.99 instructions per MAC on
                // the M4 for 0.25 KB of flash, left out when built for size), any other
                // kernel's its gathered window.
                let (c0s, c1s) = columns.split_at_mut(COLUMN_BYTES);
                if !cfg!(microcnn_compact) && pointwise {
                    let (sh, sw, iw, ic) = (p.stride_h, p.stride_w, input_shape.w, input_shape.c);
                    let at = |b: usize, oy: usize, ox: usize| b * item + (oy * sh * iw + ox * sw) * ic;
                    c0s[..k].copy_from_slice(&input[at(b0, oy0, ox0)..][..k]);
                    c1s[..k].copy_from_slice(&input[at(b1, oy1, ox1)..][..k]);
                } else {
                    let view = Window3 { p, shape: input_shape, g: &g, kh, kw };
                    gather_taps(&view, &input[b0 * item..(b0 + 1) * item], oy0, ox0, 0, &mut c0s[..k]);
                    gather_taps(&view, &input[b1 * item..(b1 + 1) * item], oy1, ox1, 0, &mut c1s[..k]);
                }
                c = blocked::conv2x2(filter, k, &columns[..], COLUMN_BYTES, table, short, out0, out1, zp, act);
            }
            if c < table.len() {
                // What is left — a last odd channel, a last single pixel, or windows longer than
                // a column: the taps a column at a time, raw sums carried across the pieces
                // (exact, so the bits do not depend on the split).
                let image = |b: usize| &input[b * item..(b + 1) * item];
                let pixel1 = if pair { Some((image(b1), oy1, ox1)) } else { None };
                let view = Window3 { p, shape: input_shape, g: &g, kh, kw };
                let out1: &mut [i8] = if pair { &mut out1[c..] } else { &mut [] };
                long_window(
                    &view,
                    &filter[c * k..],
                    k,
                    (image(b0), oy0, ox0),
                    pixel1,
                    &mut columns,
                    &table[c..],
                    &mut out0[c..],
                    out1,
                    zp,
                    act,
                );
            }
            pix += 2;
        }
        c0 = c1;
    }
    Ok(out_shape)
}

/// Convolution: picks the fastest kernel that is bit-exact for the shape and core — the
/// register-blocked kernel ([`conv2d_i8_blocked`]) on cores with the DSP extension and on the
/// Cortex-M3, and on the Cortex-M0 for 1×1 kernels and windows of at most 64 taps; otherwise
/// the 1×1 fast path or the general fast kernel. Same contract as [`conv2d_i8_reference`].
///
/// # Errors
///
/// As [`conv2d_i8_reference`].
pub fn conv2d_i8(
    p: &ConvParams,
    w: &ConvWeights<'_>,
    input: &[i8],
    input_shape: Shape,
    output: &mut [i8],
) -> Result<Shape> {
    // Measured per core (firmware-examples/bench): the blocked kernel wins everywhere on cores
    // with DSP and on the Cortex-M3; on the Cortex-M0, whose SIMD is emulated, only for 1×1 and
    // small windows; on the host the plain fast paths are quicker.
    let blocked = if cfg!(microcnn_dsp) || cfg!(all(target_arch = "arm", not(microcnn_v6m))) {
        true
    } else if cfg!(microcnn_v6m) {
        is_pointwise(p, w.filter_shape) || w.filter_shape.item_len() <= COLUMN_BYTES
    } else {
        false
    };
    if blocked {
        conv2d_i8_blocked(p, w, input, input_shape, output)
    } else if is_pointwise(p, w.filter_shape) {
        conv2d_1x1_i8(p, w, input, input_shape, output)
    } else {
        conv2d_i8_fast(p, w, input, input_shape, output)
    }
}
