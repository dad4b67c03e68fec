//! Nearest-neighbour resizing, TFLite's `RESIZE_NEAREST_NEIGHBOR`: the upsampling step of a
//! segmentation decoder. Values are copied, never rescaled (TFLite gives the input and the output
//! one quantization).

use crate::error::{Error, Result};
use crate::shape::{Shape, MAX_EXTENT};

/// The options of TFLite's `RESIZE_NEAREST_NEIGHBOR`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ResizeParams {
    /// Output rows.
    pub out_h: usize,
    /// Output columns.
    pub out_w: usize,
    /// Scale by `(in − 1) / (out − 1)` and round, so the corner pixels line up.
    pub align_corners: bool,
    /// Sample at pixel centres (`y + 0.5`), what Keras' `UpSampling2D` and `tf.image.resize` use.
    pub half_pixel_centers: bool,
}

/// The largest extent resizing accepts along an axis (2^24): every coordinate is then exact in
/// `f32`, which TFLite uses to compute the source index.
pub const MAX_RESIZE_EXTENT: usize = 1 << 24;
const _: () = assert!(MAX_RESIZE_EXTENT <= MAX_EXTENT);

/// The input row (or column) output position `o` copies: TFLite Micro's `GetNearestNeighbor`,
/// computed in `f32` exactly as it is there (`floor` or round-half-away of `(o + offset)·scale`,
/// clamped to the input), so the indices agree with TFLite for every size.
///
/// Requires `0 < in_size, out_size ≤` [`MAX_RESIZE_EXTENT`] and `o < out_size` (checked by
/// [`resize_nearest_i8`]); returns an index below `in_size`.
pub fn nearest_source(
    o: usize,
    in_size: usize,
    out_size: usize,
    align_corners: bool,
    half_pixel_centers: bool,
) -> usize {
    let scale = if align_corners && out_size > 1 {
        (in_size - 1) as f32 / (out_size - 1) as f32
    } else {
        in_size as f32 / out_size as f32
    };
    let offset = if half_pixel_centers { 0.5f32 } else { 0.0 };
    let v = (o as f32 + offset) * scale;
    // `v ≥ 0` and below 2^25, so both conversions are exact and in range.
    let idx = if align_corners { libm::roundf(v) } else { libm::floorf(v) } as usize;
    idx.min(in_size - 1)
}

/// The output shape of a resize of `input`.
///
/// # Errors
///
/// [`Error::ZeroParameter`] if the input or the requested size is empty; [`Error::TooLarge`] if
/// a dimension exceeds [`MAX_RESIZE_EXTENT`] or the element count overflows.
pub const fn resize_output_shape(p: &ResizeParams, input: Shape) -> Result<Shape> {
    if input.is_empty() || p.out_h == 0 || p.out_w == 0 {
        return Err(Error::ZeroParameter);
    }
    if input.h > MAX_RESIZE_EXTENT
        || input.w > MAX_RESIZE_EXTENT
        || p.out_h > MAX_RESIZE_EXTENT
        || p.out_w > MAX_RESIZE_EXTENT
    {
        return Err(Error::TooLarge);
    }
    let s = Shape::new(input.n, p.out_h, p.out_w, input.c);
    match s.checked_len() {
        Ok(_) => Ok(s),
        Err(e) => Err(e),
    }
}

/// Resizes `input` (NHWC, `input_shape`) to `p.out_h × p.out_w` by copying the nearest input
/// pixel, TFLite Micro's int8 `RESIZE_NEAREST_NEIGHBOR` bit for bit. `output` holds the
/// [`resize_output_shape`].
///
/// # Errors
///
/// Those of [`resize_output_shape`]; [`Error::ShapeMismatch`] if both `align_corners` and
/// `half_pixel_centers` are set (TFLite refuses that too); [`Error::LengthMismatch`] for a slice
/// of the wrong length. Nothing is written on error.
pub fn resize_nearest_i8(p: &ResizeParams, input: &[i8], input_shape: Shape, output: &mut [i8]) -> Result<Shape> {
    if p.align_corners && p.half_pixel_centers {
        return Err(Error::ShapeMismatch);
    }
    let out_shape = resize_output_shape(p, input_shape)?;
    input_shape.expect_len(input.len())?;
    out_shape.expect_len(output.len())?;
    let c = input_shape.c;
    let (row_in, row_out) = (input_shape.w * c, out_shape.w * c);
    let (image_in, image_out) = (input_shape.h * row_in, out_shape.h * row_out);
    for (img_in, img_out) in input.chunks_exact(image_in).zip(output.chunks_exact_mut(image_out)) {
        for (oy, row) in img_out.chunks_exact_mut(row_out).enumerate() {
            let iy = nearest_source(oy, input_shape.h, out_shape.h, p.align_corners, p.half_pixel_centers);
            let src = &img_in[iy * row_in..(iy + 1) * row_in];
            for (ox, px) in row.chunks_exact_mut(c).enumerate() {
                let ix = nearest_source(ox, input_shape.w, out_shape.w, p.align_corners, p.half_pixel_centers);
                px.copy_from_slice(&src[ix * c..(ix + 1) * c]);
            }
        }
    }
    Ok(out_shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubling_repeats_each_pixel() {
        let p = ResizeParams { out_h: 4, out_w: 4, ..Default::default() };
        let input = [1i8, 2, 3, 4];
        let mut out = [0i8; 16];
        resize_nearest_i8(&p, &input, Shape::image(2, 2, 1), &mut out).unwrap();
        assert_eq!(out, [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
        let hp = ResizeParams { half_pixel_centers: true, ..p };
        resize_nearest_i8(&hp, &input, Shape::image(2, 2, 1), &mut out).unwrap();
        assert_eq!(out, [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]);
    }

    #[test]
    fn indices_match_the_exact_rule_for_integer_ratios() {
        // With out = k·in the f32 rule is exact: ⌊o / k⌋, and ⌊(o + ½) / k⌋ for half pixels.
        for n in 1..40usize {
            for k in 1..6usize {
                for o in 0..n * k {
                    assert_eq!(nearest_source(o, n, n * k, false, false), o / k);
                    assert_eq!(nearest_source(o, n, n * k, false, true), (2 * o + 1) / (2 * k));
                }
            }
        }
    }

    #[test]
    fn align_corners_hits_both_corners() {
        for (i, o) in [(1usize, 1usize), (1, 7), (3, 9), (9, 3), (5, 5), (16, 1)] {
            assert_eq!(nearest_source(0, i, o, true, false), 0);
            if o > 1 {
                assert_eq!(nearest_source(o - 1, i, o, true, false), i - 1);
            }
        }
    }

    #[test]
    fn bad_arguments_are_refused() {
        let p = ResizeParams { out_h: 2, out_w: 2, ..Default::default() };
        let mut out = [0i8; 4];
        assert_eq!(
            resize_nearest_i8(&p, &[1], Shape::image(1, 1, 1), &mut out[..3]).unwrap_err(),
            Error::LengthMismatch { expected: 4, actual: 3 }
        );
        let both = ResizeParams { align_corners: true, half_pixel_centers: true, ..p };
        assert_eq!(resize_nearest_i8(&both, &[1], Shape::image(1, 1, 1), &mut out), Err(Error::ShapeMismatch));
        let zero = ResizeParams { out_h: 0, ..p };
        assert_eq!(resize_nearest_i8(&zero, &[1], Shape::image(1, 1, 1), &mut []), Err(Error::ZeroParameter));
        let huge = ResizeParams { out_h: usize::MAX, out_w: usize::MAX, ..p };
        assert_eq!(resize_nearest_i8(&huge, &[1], Shape::image(1, 1, 1), &mut out), Err(Error::TooLarge));
        assert_eq!(out, [0; 4]);
    }
}
