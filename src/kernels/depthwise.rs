//! Depthwise convolution with a depth multiplier: each input channel is convolved with its own
//! `multiplier` filters, never mixed with other channels.

use crate::error::{Error, Result};
use crate::kernels::conv::{check_channel_params, check_work, ConvParams, ConvWeights, MAX_TAPS};
use crate::quant::requantize;
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
    check_channel_params(w.bias, w.multiplier, w.shift, out_shape.c)?;
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
                        output[o] = requantize(acc, w.multiplier[c], w.shift[c], p.output_zero_point, p.activation);
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
                        output[o + c] =
                            requantize(total, w.multiplier[c], w.shift[c], p.output_zero_point, p.activation);
                    }
                }
                o += oc;
            }
        }
    }
    Ok(out_shape)
}

/// Depthwise convolution: the fast kernel (bit-exact with the reference). Same contract as
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
    depthwise_conv2d_i8_fast(p, depth_multiplier, w, input, input_shape, output)
}
