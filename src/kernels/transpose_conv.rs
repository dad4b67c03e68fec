//! Transposed convolution (TFLite's `TRANSPOSE_CONV`): the learned upsampling of a segmentation
//! decoder. Every input pixel scatters `filter × (x − zp_in)` onto a `K_h × K_w` patch of the
//! output, `stride` apart; each output is then requantized per channel.
//!
//! TFLite Micro computes it as that scatter into an `int32` scratch buffer as large as the output.
//! Integer addition is associative, so this kernel gathers instead — for each output element, the
//! sum over the input pixels and taps that land on it — and needs no scratch at all, with the same
//! sums and therefore the same bits.

use crate::error::{Error, Result};
use crate::kernels::conv::{check_work, ConvWeights, MAX_TAPS};
use crate::quant::{requantize, ActivationRange};
use crate::shape::{Padding, Shape, MAX_EXTENT};

/// Geometry and quantization of a transposed convolution (no dilation: TFLite has none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct TransposeConvParams {
    /// Vertical stride (≥ 1): output rows per input row.
    pub stride_h: usize,
    /// Horizontal stride (≥ 1).
    pub stride_w: usize,
    /// Output rows.
    pub out_h: usize,
    /// Output columns.
    pub out_w: usize,
    /// TFLite's rule: [`Padding::Same`] or [`Padding::Valid`]/[`Padding::ValidFloor`] crop the
    /// padding a forward convolution of the output would need (`total / 2` rows and columns
    /// before); [`Padding::Explicit`] crops `top`/`left` before and `bottom`/`right` after, as
    /// PyTorch's `ConvTranspose2d(padding=…)` does, and must then give exactly the output size.
    pub padding: Padding,
    /// Zero point of the input tensor.
    pub input_zero_point: i8,
    /// Zero point of the output tensor.
    pub output_zero_point: i8,
    /// Fused activation as an output clamp.
    pub activation: ActivationRange,
}

/// Rows (or columns) cropped before the output along one axis: TFLite Micro's
/// `ComputePaddingHeightWidth` over the *output* size, or the explicit crop, checked. All
/// arguments are at most [`MAX_EXTENT`] and `stride, k, inp ≥ 1`.
const fn crop_before(
    padding: Padding,
    vertical: bool,
    stride: usize,
    k: usize,
    inp: usize,
    out: usize,
) -> Result<usize> {
    let (before, after) = match padding {
        Padding::Explicit { top, bottom, left, right } => {
            if vertical {
                (top, bottom)
            } else {
                (left, right)
            }
        }
        Padding::Same | Padding::Valid | Padding::ValidFloor => {
            // The size a forward convolution of the output would have, then its padding.
            let conv_out = if matches!(padding, Padding::Same) {
                out.div_ceil(stride)
            } else if out >= k {
                (out - k) / stride + 1
            } else {
                0
            };
            let span = conv_out.saturating_sub(1) * stride + k;
            return Ok(span.saturating_sub(out) / 2);
        }
    };
    // Explicit: (in − 1)·S + K − before − after must be the output size (all below 2^57).
    let full = (inp - 1) as u64 * stride as u64 + k as u64;
    if before as u64 + after as u64 + out as u64 != full {
        return Err(Error::ShapeMismatch);
    }
    Ok(before)
}

/// The largest number of multiply-accumulates into one output: `⌈K_h/S_h⌉·⌈K_w/S_w⌉·C_in` (each
/// input row can meet an output row through at most one tap in every `S` consecutive ones).
pub const fn transpose_conv_taps(p: &TransposeConvParams, filter: Shape) -> Option<usize> {
    if p.stride_h == 0 || p.stride_w == 0 {
        return None;
    }
    match filter.h.div_ceil(p.stride_h).checked_mul(filter.w.div_ceil(p.stride_w)) {
        Some(t) => t.checked_mul(filter.c),
        None => None,
    }
}

const fn any_above(v: &[usize], limit: usize) -> bool {
    let mut i = 0;
    while i < v.len() {
        if v[i] > limit {
            return true;
        }
        i += 1;
    }
    false
}

/// The output shape `[n, out_h, out_w, out_c]` of a transposed convolution of `input` by
/// `filter` (OHWI), with every geometry check the kernel makes — usable in a `const` so generated
/// code refuses a bad layer at compile time.
///
/// # Errors
///
/// [`Error::ZeroParameter`] for a zero stride, size or dimension; [`Error::TooLarge`] for an
/// extent over [`MAX_EXTENT`], more than [`MAX_TAPS`] taps into one output, an element count that
/// overflows or more than [`crate::shape::MAX_WORK_PER_ITEM`] steps; [`Error::ShapeMismatch`] if
/// the filter's input channels differ from the input's or an explicit crop does not give the
/// output size.
pub const fn transpose_conv2d_output_shape(p: &TransposeConvParams, input: Shape, filter: Shape) -> Result<Shape> {
    if p.stride_h == 0 || p.stride_w == 0 || input.is_empty() || filter.is_empty() || p.out_h == 0 || p.out_w == 0 {
        return Err(Error::ZeroParameter);
    }
    if any_above(&[input.h, input.w, filter.h, filter.w, p.stride_h, p.stride_w, p.out_h, p.out_w], MAX_EXTENT) {
        return Err(Error::TooLarge);
    }
    if let Padding::Explicit { top, bottom, left, right } = p.padding {
        if any_above(&[top, bottom, left, right], MAX_EXTENT) {
            return Err(Error::TooLarge);
        }
    }
    if filter.c != input.c {
        return Err(Error::ShapeMismatch);
    }
    let out = Shape::new(input.n, p.out_h, p.out_w, filter.n);
    if let Err(e) = out.checked_len() {
        return Err(e);
    }
    let taps = match transpose_conv_taps(p, filter) {
        Some(t) if t <= MAX_TAPS => t,
        _ => return Err(Error::TooLarge),
    };
    if let Err(e) = check_work(out.item_len(), taps) {
        return Err(e);
    }
    if let Err(e) = crop_before(p.padding, true, p.stride_h, filter.h, input.h, p.out_h) {
        return Err(e);
    }
    if let Err(e) = crop_before(p.padding, false, p.stride_w, filter.w, input.w, p.out_w) {
        return Err(e);
    }
    Ok(out)
}

/// The rows and columns `(top, left)` cropped before the output (every check of
/// [`transpose_conv2d_output_shape`] made first): output row `o` takes input row `i` through tap
/// `k` when `i·S_h + k − top = o`, likewise for columns. A trainer computing the float layer the
/// same way uses this to train what runs.
///
/// # Errors
///
/// Those of [`transpose_conv2d_output_shape`].
pub const fn transpose_conv_crops(p: &TransposeConvParams, input: Shape, filter: Shape) -> Result<(usize, usize)> {
    if let Err(e) = transpose_conv2d_output_shape(p, input, filter) {
        return Err(e);
    }
    let top = match crop_before(p.padding, true, p.stride_h, filter.h, input.h, p.out_h) {
        Ok(v) => v,
        Err(e) => return Err(e),
    };
    match crop_before(p.padding, false, p.stride_w, filter.w, input.w, p.out_w) {
        Ok(left) => Ok((top, left)),
        Err(e) => Err(e),
    }
}

/// Checks everything and returns the output shape and the rows/columns cropped before.
fn prepare(
    p: &TransposeConvParams,
    w: &ConvWeights<'_>,
    input: &[i8],
    input_shape: Shape,
    output: &[i8],
) -> Result<(Shape, usize, usize)> {
    p.activation.check()?;
    let f = w.filter_shape;
    let out_shape = transpose_conv2d_output_shape(p, input_shape, f)?;
    input_shape.expect_len(input.len())?;
    w.check(f.n)?;
    out_shape.expect_len(output.len())?;
    let top = crop_before(p.padding, true, p.stride_h, f.h, input_shape.h, p.out_h)?;
    let left = crop_before(p.padding, false, p.stride_w, f.w, input_shape.w, p.out_w)?;
    Ok((out_shape, top, left))
}

/// The input positions and taps that land on output position `o` along one axis: input `i`
/// with tap `k = o + crop − i·S` in `0..K`. Returns the first input and its tap, and how many.
fn contributors(o: usize, crop: usize, stride: usize, k: usize, inp: usize) -> (usize, usize, usize) {
    let pos = o + crop; // < 2^29: both below MAX_EXTENT.
                        // i ≤ pos / S, and i ≥ (pos − K + 1) / S rounded up.
    let last = (pos / stride).min(inp - 1);
    let first = if pos + 1 > k { (pos + 1 - k).div_ceil(stride) } else { 0 };
    if first > last {
        return (0, 0, 0);
    }
    (first, pos - first * stride, last - first + 1)
}

/// Transposed convolution, TFLite Micro's int8 `TRANSPOSE_CONV` (per-channel) bit for bit.
///
/// `acc[o] = Σ w[c][k_y][k_x][i] · (x[i_y][i_x][i] − zp_in)` over every input pixel and tap with
/// `i_y·S_h + k_y − crop_top = o_y` (likewise for columns), plus the bias, then
/// `clamp(MultiplyByQuantizedMultiplier(acc, M[c], shift[c]) + zp_out, act)`.
///
/// The filter is OHWI (`[out_c][k_h][k_w][in_c]`, TFLite's layout). `output` is NHWC with
/// `[n, p.out_h, p.out_w, out_c]`.
///
/// # Errors
///
/// [`Error::ZeroParameter`] for a zero stride, size or dimension; [`Error::ShapeMismatch`] if
/// the filter's input channels differ from the input's or explicit padding does not give the
/// output size; [`Error::LengthMismatch`] for a slice of the wrong length;
/// [`Error::InvalidQuantization`] for a bad requantization or activation range;
/// [`Error::TooLarge`] for an extent over [`MAX_EXTENT`], more than [`MAX_TAPS`] taps into one
/// output or more than [`crate::shape::MAX_WORK_PER_ITEM`] steps. Nothing is written on error.
pub fn transpose_conv2d_i8(
    p: &TransposeConvParams,
    w: &ConvWeights<'_>,
    input: &[i8],
    input_shape: Shape,
    output: &mut [i8],
) -> Result<Shape> {
    let (out_shape, top, left) = prepare(p, w, input, input_shape, output)?;
    let f = w.filter_shape;
    let (ic, oc) = (input_shape.c, out_shape.c);
    let offset = -(p.input_zero_point as i32);
    let image_in = input_shape.item_len();
    let row_out = out_shape.w * oc;
    for (img, out_img) in input.chunks_exact(image_in).zip(output.chunks_exact_mut(out_shape.h * row_out)) {
        for (oy, out_row) in out_img.chunks_exact_mut(row_out).enumerate() {
            let (iy0, ky0, ny) = contributors(oy, top, p.stride_h, f.h, input_shape.h);
            for (ox, px) in out_row.chunks_exact_mut(oc).enumerate() {
                let (ix0, kx0, nx) = contributors(ox, left, p.stride_w, f.w, input_shape.w);
                for (c, dst) in px.iter_mut().enumerate() {
                    let mut acc: i32 = 0;
                    for j in 0..ny {
                        let (iy, ky) = (iy0 + j, ky0 - j * p.stride_h);
                        for i in 0..nx {
                            let (ix, kx) = (ix0 + i, kx0 - i * p.stride_w);
                            let x = &img[(iy * input_shape.w + ix) * ic..][..ic];
                            let wt = &w.filter[((c * f.h + ky) * f.w + kx) * ic..][..ic];
                            for (&a, &b) in x.iter().zip(wt) {
                                acc += b as i32 * (a as i32 + offset);
                            }
                        }
                    }
                    if let Some(bias) = w.bias {
                        acc = acc.wrapping_add(bias[c]);
                    }
                    *dst =
                        requantize(acc, w.requant[c].multiplier, w.requant[c].shift, p.output_zero_point, p.activation);
                }
            }
        }
    }
    Ok(out_shape)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::Requant;

    #[test]
    fn tflite_padding_rule() {
        // 2×2/2 SAME doubling: no crop; 3×3/2 SAME to 2·in: total (in−1)·2+3−2in = 1 → 0 before.
        assert_eq!(crop_before(Padding::Same, true, 2, 2, 4, 8), Ok(0));
        assert_eq!(crop_before(Padding::Same, true, 2, 3, 4, 8), Ok(0));
        assert_eq!(crop_before(Padding::Same, true, 1, 3, 5, 5), Ok(1));
        assert_eq!(crop_before(Padding::Same, true, 2, 4, 4, 8), Ok(1));
        assert_eq!(crop_before(Padding::Valid, true, 2, 3, 4, 9), Ok(0));
        let ex = Padding::Explicit { top: 1, bottom: 1, left: 0, right: 0 };
        assert_eq!(crop_before(ex, true, 2, 4, 4, 8), Ok(1));
        assert_eq!(crop_before(ex, true, 2, 4, 4, 9), Err(Error::ShapeMismatch));
    }

    #[test]
    fn extremes_are_refused_or_exact() {
        let requant = [Requant::new(1 << 30, 0)];
        let filter = [-128i8; 4];
        let w = ConvWeights { filter: &filter, filter_shape: Shape::new(1, 2, 2, 1), bias: None, requant: &requant };
        let mut p = TransposeConvParams {
            stride_h: 2,
            stride_w: 2,
            out_h: 2,
            out_w: 2,
            padding: Padding::Same,
            input_zero_point: 127,
            output_zero_point: -128,
            activation: ActivationRange::NONE,
        };
        let mut out = [0i8; 4];
        transpose_conv2d_i8(&p, &w, &[-128], Shape::image(1, 1, 1), &mut out).unwrap();
        assert_eq!(out, [127; 4]);
        p.stride_h = 0;
        assert_eq!(transpose_conv2d_i8(&p, &w, &[-128], Shape::image(1, 1, 1), &mut out), Err(Error::ZeroParameter));
        p.stride_h = usize::MAX;
        assert_eq!(transpose_conv2d_i8(&p, &w, &[-128], Shape::image(1, 1, 1), &mut out), Err(Error::TooLarge));
        p.stride_h = 2;
        p.out_h = usize::MAX;
        assert_eq!(transpose_conv2d_i8(&p, &w, &[-128], Shape::image(1, 1, 1), &mut out), Err(Error::TooLarge));
        p.out_h = 2;
        let big = Shape::new(1, 1, 1, MAX_TAPS + 1);
        static WIDE: [i8; MAX_TAPS + 1] = [0; MAX_TAPS + 1];
        let wide = &WIDE[..];
        let w2 = ConvWeights { filter: wide, filter_shape: big, bias: None, requant: &requant };
        assert_eq!(
            transpose_conv2d_i8(&p, &w2, wide, Shape::image(1, 1, MAX_TAPS + 1), &mut out[..4]),
            Err(Error::TooLarge)
        );
    }
}
