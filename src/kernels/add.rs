//! Element-wise addition of two tensors with different scales (residual connections).

use crate::error::{Error, Result};
use crate::quant::{
    quantize_multiplier, rounding_divide_by_pot, saturating_rounding_doubling_high_mul, ActivationRange, Requant,
};
use crate::shape::Shape;

/// Quantization of an add: both inputs are brought to a common scale `2·max(s₁, s₂) / 2^20`
/// before summing (TFLite's `left_shift = 20`), then the sum is requantized to the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AddParams {
    /// First input's zero point.
    pub input1_zero_point: i8,
    /// Second input's zero point.
    pub input2_zero_point: i8,
    /// Output zero point.
    pub output_zero_point: i8,
    /// Bits both inputs are shifted left before rescaling (20 for int8).
    pub left_shift: i32,
    /// `s₁ / (2·max(s₁, s₂))`; shift ≤ 0.
    pub input1: Requant,
    /// `s₂ / (2·max(s₁, s₂))`; shift ≤ 0.
    pub input2: Requant,
    /// `2·max(s₁, s₂) / (2^20 · s_out)`; shift ≤ 0.
    pub output: Requant,
    /// Output clamp.
    pub activation: ActivationRange,
}

impl AddParams {
    /// Derives the multipliers from the float scales exactly as TFLite Micro's `add` does
    /// (in `f64`). Build-time helper.
    pub fn new(s1: f32, zp1: i8, s2: f32, zp2: i8, s_out: f32, zp_out: i8, activation: ActivationRange) -> Self {
        let left_shift = 20;
        let twice_max = 2.0 * (s1.max(s2) as f64);
        AddParams {
            input1_zero_point: zp1,
            input2_zero_point: zp2,
            output_zero_point: zp_out,
            left_shift,
            input1: quantize_multiplier(s1 as f64 / twice_max),
            input2: quantize_multiplier(s2 as f64 / twice_max),
            output: quantize_multiplier(twice_max / ((1i64 << left_shift) as f64 * s_out as f64)),
            activation,
        }
    }
}

/// `RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x, m), −shift)` for shifts ≤ 0.
#[inline(always)]
const fn mul_smaller_than_one(x: i32, r: Requant) -> i32 {
    rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x, r.multiplier), -r.shift)
}

/// `out[i] = clamp(rescale(a[i]) + rescale(b[i]))`, TFLite Micro's int8 `ADD` bit for bit.
/// All three slices have the same length (no broadcasting).
///
/// # Errors
///
/// [`Error::LengthMismatch`] if the lengths differ; [`Error::InvalidQuantization`] for a
/// `left_shift` outside 0..=20, a negative multiplier, a shift outside −31..=0 or an inverted
/// activation range.
pub fn add_i8(p: &AddParams, a: &[i8], b: &[i8], output: &mut [i8]) -> Result<()> {
    check_add(p)?;
    if b.len() != a.len() {
        return Err(Error::LengthMismatch { expected: a.len(), actual: b.len() });
    }
    if output.len() != a.len() {
        return Err(Error::LengthMismatch { expected: a.len(), actual: output.len() });
    }
    for ((o, &x), &y) in output.iter_mut().zip(a).zip(b) {
        // |x − zp| ≤ 255 and left_shift ≤ 20, so the shifted values stay below 2^28; a
        // multiplier below 2^31 with a shift ≤ 0 never grows a value, so the sum of the two
        // rescaled operands is below 2^29 and the rescaled sum plus a zero point fits too.
        let x = (x as i32 - p.input1_zero_point as i32) << p.left_shift;
        let y = (y as i32 - p.input2_zero_point as i32) << p.left_shift;
        let sum = mul_smaller_than_one(x, p.input1) + mul_smaller_than_one(y, p.input2);
        *o = p.activation.clamp(mul_smaller_than_one(sum, p.output) + p.output_zero_point as i32);
    }
    Ok(())
}

/// The shape two operands broadcast to: along each axis the extents are equal or one of them
/// is 1 (TFLite's broadcasting rule, for NHWC).
///
/// # Errors
///
/// [`Error::ShapeMismatch`] if an axis has two different extents, neither 1.
pub const fn broadcast_shape(a: Shape, b: Shape) -> Result<Shape> {
    const fn one(x: usize, y: usize) -> Option<usize> {
        if x == y || y == 1 {
            Some(x)
        } else if x == 1 {
            Some(y)
        } else {
            None
        }
    }
    match (one(a.n, b.n), one(a.h, b.h), one(a.w, b.w), one(a.c, b.c)) {
        (Some(n), Some(h), Some(w), Some(c)) => Ok(Shape::new(n, h, w, c)),
        _ => Err(Error::ShapeMismatch),
    }
}

/// Calls `f(a[i], b[j])` for every output element in NHWC order, `i`/`j` the broadcast source
/// indices, after checking both lengths and the output's.
fn broadcast(
    a: &[i8],
    a_shape: Shape,
    b: &[i8],
    b_shape: Shape,
    output: &mut [i8],
    f: impl Fn(i8, i8) -> i8,
) -> Result<()> {
    let out = broadcast_shape(a_shape, b_shape)?;
    for (x, s) in [(a, a_shape), (b, b_shape)] {
        let n = s.checked_len()?;
        if x.len() != n {
            return Err(Error::LengthMismatch { expected: n, actual: x.len() });
        }
    }
    let n_out = out.checked_len()?;
    if output.len() != n_out {
        return Err(Error::LengthMismatch { expected: n_out, actual: output.len() });
    }
    // An empty operand makes the output empty (0 broadcasts only with 0 or 1), and then
    // nothing below runs: the stride products are only formed for non-empty shapes.
    if n_out == 0 {
        return Ok(());
    }
    if a_shape == b_shape {
        for ((o, &x), &y) in output.iter_mut().zip(a).zip(b) {
            *o = f(x, y);
        }
        return Ok(());
    }
    // Strides of each operand, 0 along a broadcast axis.
    let strides = |s: Shape| {
        let st = |ext: usize, step: usize| if ext == 1 { 0 } else { step };
        [st(s.n, s.h * s.w * s.c), st(s.h, s.w * s.c), st(s.w, s.c), st(s.c, 1)]
    };
    let (sa, sb) = (strides(a_shape), strides(b_shape));
    let mut k = 0;
    for n in 0..out.n {
        for h in 0..out.h {
            for w in 0..out.w {
                let ia = n * sa[0] + h * sa[1] + w * sa[2];
                let ib = n * sb[0] + h * sb[1] + w * sb[2];
                for c in 0..out.c {
                    output[k] = f(a[ia + c * sa[3]], b[ib + c * sb[3]]);
                    k += 1;
                }
            }
        }
    }
    Ok(())
}

/// The parameter ranges [`add_i8`] and [`add_broadcast_i8`] rely on.
fn check_add(p: &AddParams) -> Result<()> {
    p.activation.check()?;
    for r in [p.input1, p.input2, p.output] {
        r.check()?;
        if r.shift > 0 {
            return Err(Error::InvalidQuantization);
        }
    }
    if !(0..=20).contains(&p.left_shift) {
        return Err(Error::InvalidQuantization);
    }
    Ok(())
}

/// TFLite Micro's int8 `ADD` (`subtract = false`) or `SUB` (`true`) with broadcasting: the two
/// operands are rescaled to a common scale as in [`add_i8`], summed or subtracted, requantized.
///
/// # Errors
///
/// As [`add_i8`], and [`Error::ShapeMismatch`] for shapes that do not broadcast.
pub fn add_broadcast_i8(
    p: &AddParams,
    subtract: bool,
    a: &[i8],
    a_shape: Shape,
    b: &[i8],
    b_shape: Shape,
    output: &mut [i8],
) -> Result<()> {
    check_add(p)?;
    broadcast(a, a_shape, b, b_shape, output, |x, y| {
        // The bounds of add_i8 hold: a difference is a sum with the second operand negated.
        let x = (x as i32 - p.input1_zero_point as i32) << p.left_shift;
        let y = (y as i32 - p.input2_zero_point as i32) << p.left_shift;
        let (x, y) = (mul_smaller_than_one(x, p.input1), mul_smaller_than_one(y, p.input2));
        let r = if subtract { x - y } else { x + y };
        p.activation.clamp(mul_smaller_than_one(r, p.output) + p.output_zero_point as i32)
    })
}

/// Quantization of an int8 `MUL`: `out = zp_out + MultiplyByQuantizedMultiplier((a − zp₁)(b −
/// zp₂), M, shift)` with `M · 2^shift = s₁ · s₂ / s_out`, clamped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MulParams {
    /// First input's zero point.
    pub input1_zero_point: i8,
    /// Second input's zero point.
    pub input2_zero_point: i8,
    /// Output zero point.
    pub output_zero_point: i8,
    /// `s₁ · s₂ / s_out`.
    pub output: Requant,
    /// Output clamp.
    pub activation: ActivationRange,
}

impl MulParams {
    /// Derives the multiplier as TFLite Micro does (in `f64`). Build-time helper.
    pub fn new(s1: f32, zp1: i8, s2: f32, zp2: i8, s_out: f32, zp_out: i8, activation: ActivationRange) -> Self {
        MulParams {
            input1_zero_point: zp1,
            input2_zero_point: zp2,
            output_zero_point: zp_out,
            output: quantize_multiplier(s1 as f64 * s2 as f64 / s_out as f64),
            activation,
        }
    }
}

/// TFLite Micro's int8 `MUL` with broadcasting, bit for bit.
///
/// # Errors
///
/// [`Error::InvalidQuantization`] for an out-of-range multiplier or shift or an inverted clamp;
/// [`Error::ShapeMismatch`] / [`Error::LengthMismatch`] as [`add_broadcast_i8`].
pub fn mul_broadcast_i8(
    p: &MulParams,
    a: &[i8],
    a_shape: Shape,
    b: &[i8],
    b_shape: Shape,
    output: &mut [i8],
) -> Result<()> {
    p.activation.check()?;
    p.output.check()?;
    broadcast(a, a_shape, b, b_shape, output, |x, y| {
        // |x − zp|·|y − zp| ≤ 65,536: MultiplyByQuantizedMultiplier's left shift wraps rather
        // than panics for the (meaningless) largest shifts.
        let prod = (x as i32 - p.input1_zero_point as i32) * (y as i32 - p.input2_zero_point as i32);
        let r = crate::quant::multiply_by_quantized_multiplier(prod, p.output.multiplier, p.output.shift);
        p.activation.clamp(r.saturating_add(p.output_zero_point as i32))
    })
}
