//! Depthwise convolution with a depth multiplier: each input channel is convolved with its own
//! `multiplier` filters, never mixed with other channels.

use crate::error::{Error, Result};
use crate::kernels::conv::{check_channel_params, check_work, ConvParams, ConvWeights, MAX_TAPS};
use crate::kernels::simd;
use crate::quant::{requantize, ChannelRequant};
use crate::shape::tap_range;
use crate::shape::{Geometry, Shape};

/// The output shape of a depthwise convolution: channels `in_c · depth_multiplier`.
///
/// `filter` is `Shape { n: 1, h: k_h, w: k_w, c: in_c · depth_multiplier }` (TFLite's layout).
///
/// # Errors
///
/// [`Error::ShapeMismatch`] if `filter.n != 1` or `filter.c != in_c · depth_multiplier`;
/// [`Error::ZeroParameter`] for a zero multiplier or a shape with a zero dimension; the
/// geometry errors of
/// [`crate::shape::output_size`].
pub const fn depthwise_conv2d_output_shape(
    p: &ConvParams,
    depth_multiplier: usize,
    input: Shape,
    filter: Shape,
) -> Result<Shape> {
    if depth_multiplier == 0 || input.is_empty() || filter.is_empty() {
        return Err(Error::ZeroParameter);
    }
    let oc = match input.c.checked_mul(depth_multiplier) {
        Some(c) => c,
        None => return Err(Error::TooLarge),
    };
    if filter.n != 1 || filter.c != oc {
        return Err(Error::ShapeMismatch);
    }
    match p.window(filter.h, filter.w).resolve(input.h, input.w) {
        Ok(g) => Ok(Shape::new(input.n, g.y.out, g.x.out, oc)),
        Err(e) => Err(e),
    }
}

/// Checks everything a depthwise convolution needs; returns the geometry and output shape.
fn prepare(
    p: &ConvParams,
    depth_multiplier: usize,
    w: &ConvWeights<'_>,
    input: &[i8],
    input_shape: Shape,
    output: &[i8],
) -> Result<(Geometry, Shape)> {
    p.activation.check()?;
    input_shape.checked_nonempty_len()?;
    input_shape.expect_len(input.len())?;
    let out_shape = depthwise_conv2d_output_shape(p, depth_multiplier, input_shape, w.filter_shape)?;
    w.filter_shape.expect_len(w.filter.len())?;
    check_channel_params(w.bias, w.requant, out_shape.c)?;
    out_shape.expect_len(output.len())?;
    // The filter is in memory, so `K_h · K_w` fits `usize`.
    let taps = w.filter_shape.h * w.filter_shape.w;
    if taps > MAX_TAPS {
        return Err(Error::TooLarge);
    }
    check_work(out_shape.item_len(), taps)?;
    let g = p.window(w.filter_shape.h, w.filter_shape.w).resolve(input_shape.h, input_shape.w)?;
    Ok((g, out_shape))
}

/// Depthwise convolution (TFLite Micro's `DepthwiseConvPerChannel`, bit for bit).
///
/// Output channel `o = i · depth_multiplier + m` reads input channel `i` and filter channel `o`:
/// `acc = Σ_{in-bounds taps} w[ky][kx][o] · (x[iy][ix][i] − zp_in) + bias[o]`, requantized with
/// `multiplier[o]`/`shift[o]`, offset by `zp_out` and clamped to the activation range.
///
/// `w.filter_shape` is `(1, k_h, k_w, in_c · depth_multiplier)`; bias, multiplier and shift have
/// one entry per output channel.
///
/// # Errors
///
/// As [`depthwise_conv2d_output_shape`], plus [`Error::LengthMismatch`] for slices of the wrong
/// length, [`Error::InvalidQuantization`] for out-of-range quantization parameters and
/// [`Error::TooLarge`] for more than [`MAX_TAPS`] taps or
/// [`crate::shape::MAX_WORK_PER_ITEM`] multiply-accumulates per batch item.
pub fn depthwise_conv2d_i8_reference(
    p: &ConvParams,
    depth_multiplier: usize,
    w: &ConvWeights<'_>,
    input: &[i8],
    input_shape: Shape,
    output: &mut [i8],
) -> Result<Shape> {
    let (g, out_shape) = prepare(p, depth_multiplier, w, input, input_shape, output)?;
    let (kh, kw, ic, oc) = (w.filter_shape.h, w.filter_shape.w, input_shape.c, out_shape.c);
    let (ih, iw) = (input_shape.h as isize, input_shape.w as isize);
    let input_offset = -(p.input_zero_point as i32);
    let mut o = 0;
    for b in 0..input_shape.n {
        for oy in 0..out_shape.h {
            let y0 = (oy * p.stride_h) as isize - g.y.pad_before as isize;
            for ox in 0..out_shape.w {
                let x0 = (ox * p.stride_w) as isize - g.x.pad_before as isize;
                for i in 0..ic {
                    for m in 0..depth_multiplier {
                        let c = i * depth_multiplier + m;
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
                                let x =
                                    input[((b * input_shape.h + iy as usize) * input_shape.w + ix as usize) * ic + i];
                                let wv = w.filter[(ky * kw + kx) * oc + c];
                                acc += wv as i32 * (x as i32 + input_offset);
                            }
                        }
                        if let Some(bias) = w.bias {
                            acc = acc.wrapping_add(bias[c]);
                        }
                        output[o] = requantize(
                            acc,
                            w.requant[c].multiplier,
                            w.requant[c].shift,
                            p.output_zero_point,
                            p.activation,
                        );
                        o += 1;
                    }
                }
            }
        }
    }
    Ok(out_shape)
}

/// Output channels accumulated at once by [`depthwise_conv2d_i8_fast`] (stack: 4 bytes each).
const DW_BLOCK: usize = 64;

/// Depthwise convolution, optimised and bit-exact with [`depthwise_conv2d_i8_reference`]: the
/// in-bounds tap ranges are computed once per output pixel, and for each tap a whole block of
/// output channels is accumulated from contiguous input and filter rows (no per-tap bounds
/// tests, no division by the multiplier in the inner loop). Integer sums are reordered only,
/// which is exact in `i32` (see [`MAX_TAPS`]).
///
/// # Errors
///
/// As [`depthwise_conv2d_i8_reference`].
pub fn depthwise_conv2d_i8_fast(
    p: &ConvParams,
    depth_multiplier: usize,
    w: &ConvWeights<'_>,
    input: &[i8],
    input_shape: Shape,
    output: &mut [i8],
) -> Result<Shape> {
    if depth_multiplier > DW_BLOCK {
        return depthwise_conv2d_i8_reference(p, depth_multiplier, w, input, input_shape, output);
    }
    let (g, out_shape) = prepare(p, depth_multiplier, w, input, input_shape, output)?;
    let (kh, kw, ic, oc, m) = (w.filter_shape.h, w.filter_shape.w, input_shape.c, out_shape.c, depth_multiplier);
    let (ih, iw) = (input_shape.h, input_shape.w);
    let input_offset = -(p.input_zero_point as i32);
    let block_ic = DW_BLOCK / m; // ≥ 1
    let mut acc = [0i32; DW_BLOCK];
    let mut o = 0;
    for b in 0..input_shape.n {
        let image = &input[b * input_shape.item_len()..(b + 1) * input_shape.item_len()];
        for oy in 0..out_shape.h {
            let y0 = (oy * p.stride_h) as isize - g.y.pad_before as isize;
            let (ky0, ky1) = tap_range(y0, kh, p.dilation_h, ih);
            for ox in 0..out_shape.w {
                let x0 = (ox * p.stride_w) as isize - g.x.pad_before as isize;
                let (kx0, kx1) = tap_range(x0, kw, p.dilation_w, iw);
                for i0 in (0..ic).step_by(block_ic) {
                    let i1 = (i0 + block_ic).min(ic);
                    let (c0, c1) = (i0 * m, i1 * m);
                    let acc = &mut acc[..c1 - c0];
                    acc.fill(0);
                    for ky in ky0..ky1 {
                        let iy = (y0 + (ky * p.dilation_h) as isize) as usize;
                        for kx in kx0..kx1 {
                            let ix = (x0 + (kx * p.dilation_w) as isize) as usize;
                            let xs = &image[(iy * iw + ix) * ic + i0..][..i1 - i0];
                            let ws = &w.filter[(ky * kw + kx) * oc + c0..][..c1 - c0];
                            if m == 1 {
                                for ((a, &wv), &xv) in acc.iter_mut().zip(ws).zip(xs) {
                                    *a += wv as i32 * (xv as i32 + input_offset);
                                }
                            } else {
                                for ((a, wv), &xv) in acc.chunks_exact_mut(m).zip(ws.chunks_exact(m)).zip(xs) {
                                    let x = xv as i32 + input_offset;
                                    for (aa, &ww) in a.iter_mut().zip(wv) {
                                        *aa += ww as i32 * x;
                                    }
                                }
                            }
                        }
                    }
                    for (k, &a) in acc.iter().enumerate() {
                        let c = c0 + k;
                        let total = a.wrapping_add(w.bias.map_or(0, |bb| bb[c]));
                        output[o + c] = requantize(
                            total,
                            w.requant[c].multiplier,
                            w.requant[c].shift,
                            p.output_zero_point,
                            p.activation,
                        );
                    }
                }
                o += oc;
            }
        }
    }
    Ok(out_shape)
}

/// Depthwise convolution with a depth multiplier of 1, four channels at a time, bit-exact with
/// [`depthwise_conv2d_i8_reference`]: for every in-bounds tap one word of four input channels
/// and one of their four weights are unpacked into halfword pairs (`SXTAB16` adds the input
/// offset on the way) and `SMLABB`/`SMLATT` accumulate each channel separately in a register;
/// each channel's requantization is decoded once per call. Other multipliers go to
/// [`depthwise_conv2d_i8_fast`].
///
/// Stack: a 32-channel requantization table (896 bytes).
///
/// # Errors
///
/// As [`depthwise_conv2d_i8_reference`].
#[inline(never)]
pub fn depthwise_conv2d_i8_blocked(
    p: &ConvParams,
    depth_multiplier: usize,
    w: &ConvWeights<'_>,
    input: &[i8],
    input_shape: Shape,
    output: &mut [i8],
) -> Result<Shape> {
    if depth_multiplier != 1 {
        return depthwise_conv2d_i8_fast(p, depth_multiplier, w, input, input_shape, output);
    }
    let (g, out_shape) = prepare(p, depth_multiplier, w, input, input_shape, output)?;
    let (kh, kw, c) = (w.filter_shape.h, w.filter_shape.w, input_shape.c);
    let (ih, iw) = (input_shape.h, input_shape.w);
    let off = -(p.input_zero_point as i32);
    let offp = simd::pair(off);
    let (zp, act) = (p.output_zero_point, p.activation);
    const BLOCK: usize = 32;
    let mut table = [ChannelRequant::default(); BLOCK];
    for c0 in (0..c).step_by(BLOCK) {
        let c1 = (c0 + BLOCK).min(c);
        // Whether every channel's sums (|Σ w·(x − zp)| ≤ 255·Σ|w| over all its taps) admit the
        // assembly routine's short requantization (`ChannelRequant::short_ok`).
        #[allow(unused_mut, unused_variables)]
        let mut short = true;
        for (ch, q) in (c0..c1).zip(table.iter_mut()) {
            *q = ChannelRequant::new(w.bias.map_or(0, |b| b[ch]), w.requant[ch].multiplier, w.requant[ch].shift, zp);
            #[cfg(all(target_arch = "arm", microcnn_armv7))]
            {
                let abs: u32 = w.filter[ch..].iter().step_by(c).map(|&v| v.unsigned_abs() as u32).sum();
                short &= q.short_ok(abs.saturating_mul(255));
            }
        }
        let quads_end = c0 + (c1 - c0) / 4 * 4;
        for b in 0..input_shape.n {
            let image = &input[b * input_shape.item_len()..(b + 1) * input_shape.item_len()];
            for oy in 0..out_shape.h {
                let y0 = (oy * p.stride_h) as isize - g.y.pad_before as isize;
                let (ky0, ky1) = tap_range(y0, kh, p.dilation_h, ih);
                let x_start = |ox: usize| (ox * p.stride_w) as isize - g.x.pad_before as isize;
                // Whether all of a pixel's kernel columns are in bounds (no division, unlike
                // `tap_range`; the dilated kernel is at most MAX_EXTENT, checked by `prepare`).
                let reach = ((kw - 1) * p.dilation_w) as isize;
                let full = |ox: usize| x_start(ox) >= 0 && x_start(ox) + reach < iw as isize;
                let mut run_start = 0;
                while run_start < out_shape.w {
                    let (kx0, kx1) = tap_range(x_start(run_start), kw, p.dilation_w, iw);
                    // The pixels after it with the same in-bounds columns share one call of the
                    // assembly routine (on a 3×3 "same" layer: the whole interior of a row).
                    let mut run_end = run_start + 1;
                    if cfg!(all(target_arch = "arm", microcnn_armv7)) && full(run_start) {
                        while run_end < out_shape.w && full(run_end) {
                            run_end += 1;
                        }
                    }
                    #[allow(unused_mut)]
                    let mut first = c0;
                    #[cfg(all(target_arch = "arm", microcnn_armv7))]
                    if short && kx1 > kx0 && ky1 > ky0 {
                        let iy = (y0 + (ky0 * p.dilation_h) as isize) as usize;
                        let ix = (x_start(run_start) + (kx0 * p.dilation_w) as isize) as usize;
                        let taps = simd::arm::Taps {
                            x: (iy * iw + ix) * c + c0,
                            w: (ky0 * kw + kx0) * c + c0,
                            rows: ky1 - ky0,
                            cols: kx1 - kx0,
                            x_row: p.dilation_h * iw * c,
                            x_col: p.dilation_w * c,
                            w_row: kw * c,
                            w_col: c,
                            pixels: run_end - run_start,
                            x_pixel: p.stride_w * c,
                            out_pixel: c,
                        };
                        let q = &table[..quads_end - c0];
                        let row_out = ((b * out_shape.h + oy) * out_shape.w + run_start) * c;
                        first += simd::arm::depthwise4(
                            image,
                            w.filter,
                            &taps,
                            q,
                            &mut output[row_out + c0..],
                            act.min,
                            act.max,
                            off,
                        );
                    }
                    // The channels the routine left (all of them off the chip), pixel by pixel.
                    for ox in (run_start..run_end).filter(|_| first < c1) {
                        let x0 = x_start(ox);
                        let out = &mut output[((b * out_shape.h + oy) * out_shape.w + ox) * c..][..c];
                        for q in (first..quads_end).step_by(4) {
                            let mut a = [0i32; 4];
                            for ky in ky0..ky1 {
                                let iy = (y0 + (ky * p.dilation_h) as isize) as usize;
                                for kx in kx0..kx1 {
                                    let ix = (x0 + (kx * p.dilation_w) as isize) as usize;
                                    let xw = simd::word(image, (iy * iw + ix) * c + q);
                                    let ww = simd::word(w.filter, (ky * kw + kx) * c + q);
                                    let (xl, xh) = (simd::sxtab16(offp, xw), simd::sxtab16_ror8(offp, xw));
                                    let (wl, wh) = (simd::sxtb16(ww), simd::sxtb16_ror8(ww));
                                    a[0] = simd::smlabb(wl, xl, a[0]);
                                    a[2] = simd::smlatt(wl, xl, a[2]);
                                    a[1] = simd::smlabb(wh, xh, a[1]);
                                    a[3] = simd::smlatt(wh, xh, a[3]);
                                }
                            }
                            if let [o0, o1, o2, o3] = &mut out[q..q + 4] {
                                let t = &table[q - c0..q - c0 + 4];
                                *o0 = t[0].apply(a[0], zp, act);
                                *o1 = t[1].apply(a[1], zp, act);
                                *o2 = t[2].apply(a[2], zp, act);
                                *o3 = t[3].apply(a[3], zp, act);
                            }
                        }
                        for ch in quads_end..c1 {
                            let mut a = 0i32;
                            for ky in ky0..ky1 {
                                let iy = (y0 + (ky * p.dilation_h) as isize) as usize;
                                for kx in kx0..kx1 {
                                    let ix = (x0 + (kx * p.dilation_w) as isize) as usize;
                                    let x = image[(iy * iw + ix) * c + ch] as i32 + off;
                                    a += w.filter[(ky * kw + kx) * c + ch] as i32 * x;
                                }
                            }
                            out[ch] = table[ch - c0].apply(a, zp, act);
                        }
                    }
                    run_start = run_end;
                }
            }
        }
    }
    Ok(out_shape)
}

/// Depthwise convolution: the blocked kernel on cores with the DSP extension, the fast kernel
/// elsewhere (both bit-exact with the reference). Same contract as
/// [`depthwise_conv2d_i8_reference`].
///
/// # Errors
///
/// As [`depthwise_conv2d_i8_reference`].
pub fn depthwise_conv2d_i8(
    p: &ConvParams,
    depth_multiplier: usize,
    w: &ConvWeights<'_>,
    input: &[i8],
    input_shape: Shape,
    output: &mut [i8],
) -> Result<Shape> {
    if cfg!(microcnn_armv7) {
        depthwise_conv2d_i8_blocked(p, depth_multiplier, w, input, input_shape, output)
    } else {
        depthwise_conv2d_i8_fast(p, depth_multiplier, w, input, input_shape, output)
    }
}
