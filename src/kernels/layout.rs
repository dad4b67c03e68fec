//! Ops that only move int8 values: padding (TFLite's `PAD`/`PADV2`) and concatenation
//! (`CONCATENATION`). Neither rescales: TFLite Micro's int8 kernels copy, and the converter gives
//! their inputs and outputs one quantization.

use crate::error::{Error, Result};
use crate::shape::Shape;

/// Constant padding of an `[h, w, c]` tensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PadParams {
    /// Rows, columns and channels added before the data: `[top, left, front]`.
    pub before: [usize; 3],
    /// Rows, columns and channels added after it: `[bottom, right, back]`.
    pub after: [usize; 3],
    /// The value written into the padding: `PAD` uses the output zero point (a real 0),
    /// `PADV2` its quantized constant.
    pub value: i8,
}

impl PadParams {
    /// The padded shape of a `[h, w, c]` input (batch kept).
    ///
    /// # Errors
    ///
    /// [`Error::TooLarge`] if a dimension or the element count overflows `usize`.
    pub const fn output_shape(&self, input: Shape) -> Result<Shape> {
        let dims = [input.h, input.w, input.c];
        let mut out = [0usize; 3];
        let mut i = 0;
        while i < 3 {
            out[i] = match dims[i].checked_add(self.before[i]) {
                Some(v) => match v.checked_add(self.after[i]) {
                    Some(v) => v,
                    None => return Err(Error::TooLarge),
                },
                None => return Err(Error::TooLarge),
            };
            i += 1;
        }
        let s = Shape::new(input.n, out[0], out[1], out[2]);
        match s.checked_len() {
            Ok(_) => Ok(s),
            Err(e) => Err(e),
        }
    }
}

/// Pads `input` (shape `input_shape`, NHWC) with `p.value` into `output`, TFLite Micro's int8
/// `PAD`/`PADV2` bit for bit (padding on the batch axis is not supported: TFLite models do not
/// use it on a batch of one).
///
/// # Errors
///
/// [`Error::LengthMismatch`] if a slice does not match its shape; [`Error::TooLarge`] if the
/// padded shape overflows.
pub fn pad_i8(p: &PadParams, input_shape: Shape, input: &[i8], output: &mut [i8]) -> Result<()> {
    let out_shape = p.output_shape(input_shape)?;
    let in_len = input_shape.checked_len()?;
    let out_len = out_shape.checked_len()?;
    if input.len() != in_len {
        return Err(Error::LengthMismatch { expected: in_len, actual: input.len() });
    }
    if output.len() != out_len {
        return Err(Error::LengthMismatch { expected: out_len, actual: output.len() });
    }
    output.fill(p.value);
    if in_len == 0 {
        return Ok(());
    }
    let (c_in, c_out) = (input_shape.c, out_shape.c);
    let row_in = input_shape.w * c_in;
    let row_out = out_shape.w * c_out;
    let image_in = input_shape.h * row_in;
    let image_out = out_shape.h * row_out;
    for (img_in, img_out) in input.chunks_exact(image_in).zip(output.chunks_exact_mut(image_out)) {
        let rows_out = img_out[p.before[0] * row_out..].chunks_exact_mut(row_out);
        for (row, dst) in img_in.chunks_exact(row_in).zip(rows_out) {
            let dst = &mut dst[p.before[1] * c_out..];
            if c_in == c_out {
                dst[..row_in].copy_from_slice(row);
            } else {
                for (px, d) in row.chunks_exact(c_in).zip(dst.chunks_exact_mut(c_out)) {
                    d[p.before[2]..p.before[2] + c_in].copy_from_slice(px);
                }
            }
        }
    }
    Ok(())
}

/// Concatenates `inputs` along one axis into `output`, TFLite Micro's int8 `CONCATENATION` bit
/// for bit. `outer` is the product of the dimensions before the axis (for NHWC and the channel
/// axis, `n·h·w`; for the row axis, `n`); each input is `outer` blocks, copied in turn.
///
/// # Errors
///
/// [`Error::InvalidCount`] if `outer` is zero; [`Error::LengthMismatch`] if an input is not a
/// whole number of blocks or the lengths do not add up to the output's.
pub fn concat_i8(inputs: &[&[i8]], outer: usize, output: &mut [i8]) -> Result<()> {
    if outer == 0 {
        return Err(Error::InvalidCount);
    }
    let mut total = 0usize;
    for x in inputs {
        if x.len() % outer != 0 {
            return Err(Error::LengthMismatch { expected: x.len() - x.len() % outer, actual: x.len() });
        }
        total = total.checked_add(x.len()).ok_or(Error::TooLarge)?;
    }
    if total != output.len() {
        return Err(Error::LengthMismatch { expected: total, actual: output.len() });
    }
    if total == 0 {
        return Ok(());
    }
    let block = total / outer;
    for (o, dst) in output.chunks_exact_mut(block).enumerate() {
        let mut at = 0;
        for x in inputs {
            let part = x.len() / outer;
            dst[at..at + part].copy_from_slice(&x[o * part..(o + 1) * part]);
            at += part;
        }
    }
    Ok(())
}

/// Permutes the three axes of an `[d0, d1, d2]` tensor: output axis `k` is input axis
/// `perm[k]` (TFLite's int8 `TRANSPOSE` for a batch of one; PyTorch models converted to TFLite
/// carry them around NCHW code).
///
/// # Errors
///
/// [`Error::ShapeMismatch`] if `perm` is not a permutation of `0, 1, 2`;
/// [`Error::LengthMismatch`] if a slice does not hold `d0·d1·d2` values; [`Error::TooLarge`] on
/// overflow.
pub fn transpose_i8(input: &[i8], dims: [usize; 3], perm: [usize; 3], output: &mut [i8]) -> Result<()> {
    if perm[0] > 2 || perm[1] > 2 || perm[2] > 2 || perm[0] == perm[1] || perm[1] == perm[2] || perm[0] == perm[2] {
        return Err(Error::ShapeMismatch);
    }
    // An empty tensor is empty whatever its other extents (and in any axis order).
    let n = if dims.contains(&0) {
        0
    } else {
        dims[0].checked_mul(dims[1]).and_then(|v| v.checked_mul(dims[2])).ok_or(Error::TooLarge)?
    };
    if input.len() != n {
        return Err(Error::LengthMismatch { expected: n, actual: input.len() });
    }
    if output.len() != n {
        return Err(Error::LengthMismatch { expected: n, actual: output.len() });
    }
    if n == 0 {
        return Ok(());
    }
    let stride = [dims[1] * dims[2], dims[2], 1];
    let out_dims = [dims[perm[0]], dims[perm[1]], dims[perm[2]]];
    let mut k = 0;
    for a in 0..out_dims[0] {
        for b in 0..out_dims[1] {
            let base = a * stride[perm[0]] + b * stride[perm[1]];
            for c in 0..out_dims[2] {
                output[k] = input[base + c * stride[perm[2]]];
                k += 1;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pad_places_the_input_and_fills_the_rest() {
        let input: [i8; 4] = [1, 2, 3, 4]; // 2×1×2
        let p = PadParams { before: [1, 0, 1], after: [0, 1, 0], value: -7 };
        let s = p.output_shape(Shape::image(2, 1, 2)).unwrap();
        assert_eq!((s.h, s.w, s.c), (3, 2, 3));
        let mut out = [0i8; 18];
        pad_i8(&p, Shape::image(2, 1, 2), &input, &mut out).unwrap();
        #[rustfmt::skip]
        let want = [-7, -7, -7, -7, -7, -7,
                    -7, 1, 2, -7, -7, -7,
                    -7, 3, 4, -7, -7, -7];
        assert_eq!(out, want);
    }

    #[test]
    fn pad_refuses_bad_lengths_and_overflow() {
        let p = PadParams { before: [usize::MAX, 0, 0], after: [1, 0, 0], value: 0 };
        assert_eq!(p.output_shape(Shape::image(1, 1, 1)), Err(Error::TooLarge));
        let p = PadParams { before: [0; 3], after: [0; 3], value: 0 };
        assert!(pad_i8(&p, Shape::image(1, 1, 2), &[0], &mut [0, 0]).is_err());
        assert!(pad_i8(&p, Shape::image(1, 1, 1), &[0], &mut [0, 0]).is_err());
        let mut none: [i8; 0] = [];
        assert_eq!(pad_i8(&p, Shape::image(0, 1, 1), &[], &mut none), Ok(()));
    }

    #[test]
    fn transpose_permutes_axes() {
        let x: [i8; 6] = [1, 2, 3, 4, 5, 6]; // [2, 3, 1]: rows (1 2 3), (4 5 6)
        let mut out = [0i8; 6];
        transpose_i8(&x, [2, 3, 1], [1, 0, 2], &mut out).unwrap();
        assert_eq!(out, [1, 4, 2, 5, 3, 6]);
        transpose_i8(&x, [2, 3, 1], [0, 1, 2], &mut out).unwrap();
        assert_eq!(out, x);
        assert_eq!(transpose_i8(&x, [2, 3, 1], [0, 0, 2], &mut out), Err(Error::ShapeMismatch));
        assert!(transpose_i8(&x, [usize::MAX, 2, 1], [0, 1, 2], &mut out).is_err());
        assert_eq!(transpose_i8(&[], [0, usize::MAX, 5], [2, 1, 0], &mut []), Ok(()));
    }

    #[test]
    fn concat_interleaves_blocks() {
        let a: [i8; 4] = [1, 2, 3, 4]; // 2 pixels × 2 channels
        let b: [i8; 2] = [9, 8]; // 2 pixels × 1 channel
        let mut out = [0i8; 6];
        concat_i8(&[&a, &b], 2, &mut out).unwrap();
        assert_eq!(out, [1, 2, 9, 3, 4, 8]);
        concat_i8(&[&a, &b], 1, &mut out).unwrap();
        assert_eq!(out, [1, 2, 3, 4, 9, 8]);
        assert_eq!(concat_i8(&[&a, &b], 0, &mut out), Err(Error::InvalidCount));
        assert!(concat_i8(&[&a, &b], 4, &mut out).is_err());
        assert!(concat_i8(&[&a], 2, &mut out).is_err());
        assert_eq!(concat_i8(&[&[], &[]], usize::MAX, &mut []), Ok(()));
    }
}
