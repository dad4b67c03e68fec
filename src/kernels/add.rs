//! Element-wise addition of two tensors with different scales (residual connections).

use crate::error::{Error, Result};
use crate::quant::{
    quantize_multiplier, rounding_divide_by_pot, saturating_rounding_doubling_high_mul, ActivationRange, Requant,
};

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
