//! Depthwise convolution with a depth multiplier: each input channel is convolved with its own
//! `multiplier` filters, never mixed with other channels.

use crate::error::{Error, Result};
use crate::kernels::conv::{check_channel_params, ConvParams, ConvWeights, MAX_TAPS};
use crate::quant::multiply_by_quantized_multiplier;
use crate::shape::Shape;

/// The output shape of a depthwise convolution: channels `in_c · depth_multiplier`.
///
/// `filter` is `Shape { n: 1, h: k_h, w: k_w, c: in_c · depth_multiplier }` (TFLite's layout).
///
/// # Errors
///
/// [`Error::ShapeMismatch`] if `filter.n != 1` or `filter.c != in_c · depth_multiplier`;
/// [`Error::ZeroParameter`] for a zero multiplier; the geometry errors of
/// [`crate::shape::output_size`].
pub const fn depthwise_conv2d_output_shape(
    p: &ConvParams,
    depth_multiplier: usize,
    input: Shape,
    filter: Shape,
) -> Result<Shape> {
    if depth_multiplier == 0 {
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
/// length and [`Error::InvalidQuantization`] for out-of-range quantization parameters.
pub fn depthwise_conv2d_i8(
    p: &ConvParams,
    depth_multiplier: usize,
    w: &ConvWeights<'_>,
    input: &[i8],
    input_shape: Shape,
    output: &mut [i8],
) -> Result<Shape> {
    p.activation.check()?;
    crate::quant::check_zero_point(p.input_zero_point)?;
    crate::quant::check_zero_point(p.output_zero_point)?;
    input_shape.expect_len(input.len())?;
    let out_shape = depthwise_conv2d_output_shape(p, depth_multiplier, input_shape, w.filter_shape)?;
    w.filter_shape.expect_len(w.filter.len())?;
    check_channel_params(w.bias, w.multiplier, w.shift, out_shape.c)?;
    out_shape.expect_len(output.len())?;
    if w.filter_shape.h * w.filter_shape.w > MAX_TAPS {
        return Err(Error::TooLarge);
    }
    let g = p.window(w.filter_shape.h, w.filter_shape.w).resolve(input_shape.h, input_shape.w)?;
    let (kh, kw, ic, oc) = (w.filter_shape.h, w.filter_shape.w, input_shape.c, out_shape.c);
    let (ih, iw) = (input_shape.h as isize, input_shape.w as isize);
    let input_offset = -p.input_zero_point;
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
                        let v =
                            multiply_by_quantized_multiplier(acc, w.multiplier[c], w.shift[c]) + p.output_zero_point;
                        output[o] = p.activation.clamp(v);
                        o += 1;
                    }
                }
            }
        }
    }
    Ok(out_shape)
}
