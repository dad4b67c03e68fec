//! Standalone activations and dropout.

use crate::error::{Error, Result};
use crate::quant::{quantize_multiplier, requantize, ActivationRange, Requant};

/// A standalone ReLU or ReLU6 that may change scale (TFLite Micro's `RELU`):
/// `out = clamp(zp_out + MultiplyByQuantizedMultiplier(x − zp_in, M, shift), min, max)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ReluParams {
    /// Input zero point.
    pub input_zero_point: i8,
    /// Output zero point.
    pub output_zero_point: i8,
    /// `s_in / s_out`.
    pub requant: Requant,
    /// `[zp_out, 127]` for ReLU, `[zp_out, zp_out + round(6 / s_out)]` for ReLU6.
    pub activation: ActivationRange,
}

impl ReluParams {
    /// ReLU (`relu6 = false`) or ReLU6 from the float quantization. Build-time helper.
    pub fn new(s_in: f32, zp_in: i8, s_out: f32, zp_out: i8, relu6: bool) -> Self {
        ReluParams {
            input_zero_point: zp_in,
            output_zero_point: zp_out,
            requant: quantize_multiplier(s_in as f64 / s_out as f64),
            activation: if relu6 { ActivationRange::relu6(zp_out, s_out) } else { ActivationRange::relu(zp_out) },
        }
    }
}

/// Standalone ReLU/ReLU6 with requantization.
///
/// # Errors
///
/// [`Error::LengthMismatch`] if the lengths differ; [`Error::InvalidQuantization`] for
/// out-of-range parameters.
pub fn relu_i8(p: &ReluParams, input: &[i8], output: &mut [i8]) -> Result<()> {
    p.requant.check()?;
    p.activation.check()?;
    if input.len() != output.len() {
        return Err(Error::LengthMismatch { expected: input.len(), actual: output.len() });
    }
    for (o, &x) in output.iter_mut().zip(input) {
        let d = x as i32 - p.input_zero_point as i32;
        *o = requantize(d, p.requant.multiplier, p.requant.shift, p.output_zero_point, p.activation);
    }
    Ok(())
}

/// TFLite Micro's int8 `RELU6`: a pure clamp of the input to `[q(0), q(6)]` in the *input's*
/// quantization, `q(v) = zp_in + round(v / s_in)`; it does not rescale even when the converter
/// gave the output tensor different parameters. Use [`relu_i8`] with ReLU6 parameters for the
/// rescaling form.
///
/// # Errors
///
/// [`Error::LengthMismatch`] if the lengths differ.
pub fn relu6_i8(s_in: f32, zp_in: i8, input: &[i8], output: &mut [i8]) -> Result<()> {
    if input.len() != output.len() {
        return Err(Error::LengthMismatch { expected: input.len(), actual: output.len() });
    }
    let range = ActivationRange::relu6(zp_in, s_in);
    for (o, &x) in output.iter_mut().zip(input) {
        *o = range.clamp(x as i32);
    }
    Ok(())
}

/// ReLU/ReLU6 in place when input and output share scale and zero point: a pure clamp to
/// `range` (TFLite Micro's int8 `RELU6` kernel is exactly this).
///
/// # Errors
///
/// [`Error::InvalidQuantization`] if `range.min > range.max`.
pub fn clamp_in_place_i8(range: ActivationRange, data: &mut [i8]) -> Result<()> {
    range.check()?;
    for v in data {
        *v = range.clamp(*v as i32);
    }
    Ok(())
}

/// Dropout at inference: the identity.
///
/// Dropout only exists while training (the host trainer scales the kept activations by
/// `1 / (1 − rate)` during training — "inverted dropout" — so nothing needs rescaling
/// afterwards). A model trained with dropout therefore runs unchanged: the code generator drops
/// the layer, and this function exists for hand-written pipelines that keep it. It copies
/// `input` to `output`.
///
/// # Errors
///
/// [`Error::LengthMismatch`] if the lengths differ.
pub fn dropout_i8(input: &[i8], output: &mut [i8]) -> Result<()> {
    if input.len() != output.len() {
        return Err(Error::LengthMismatch { expected: input.len(), actual: output.len() });
    }
    output.copy_from_slice(input);
    Ok(())
}

/// TFLite Micro's int8 `LEAKY_RELU`: `x − zp_in` rescaled by `s_in / s_out` when it is
/// non-negative and by `α · s_in / s_out` when negative, plus `zp_out`, saturated to int8.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LeakyReluParams {
    /// Input zero point.
    pub input_zero_point: i8,
    /// Output zero point.
    pub output_zero_point: i8,
    /// `s_in / s_out`.
    pub identity: Requant,
    /// `α · s_in / s_out`.
    pub alpha: Requant,
}

impl LeakyReluParams {
    /// Derives the multipliers as TFLite Micro does: the real multipliers in `f32`
    /// (`s_in · α / s_out` and `s_in / s_out`), then `QuantizeMultiplier`. Build-time helper.
    pub fn new(s_in: f32, zp_in: i8, s_out: f32, zp_out: i8, alpha: f32) -> Self {
        LeakyReluParams {
            input_zero_point: zp_in,
            output_zero_point: zp_out,
            identity: quantize_multiplier((s_in / s_out) as f64),
            alpha: quantize_multiplier((s_in * alpha / s_out) as f64),
        }
    }
}

/// TFLite Micro's int8 `LEAKY_RELU` bit for bit, for α ≥ 0 (a negative α would need a
/// negative multiplier, which [`Requant`] does not carry).
///
/// # Errors
///
/// [`Error::LengthMismatch`] if the lengths differ; [`Error::InvalidQuantization`] for
/// out-of-range multipliers or shifts.
pub fn leaky_relu_i8(p: &LeakyReluParams, input: &[i8], output: &mut [i8]) -> Result<()> {
    p.identity.check()?;
    p.alpha.check()?;
    if input.len() != output.len() {
        return Err(Error::LengthMismatch { expected: input.len(), actual: output.len() });
    }
    for (o, &x) in output.iter_mut().zip(input) {
        let d = x as i32 - p.input_zero_point as i32;
        let r = if d >= 0 { p.identity } else { p.alpha };
        *o = requantize(d, r.multiplier, r.shift, p.output_zero_point, ActivationRange::NONE);
    }
    Ok(())
}

/// TFLite Micro's int8 `HARD_SWISH`, `x · ReLU6(x + 3) / 6`, computed as TFLite does in 16-bit
/// fixed point: the input on a 2^7-finer scale, a "ReLU-ish" factor in [0, 1] from it, their
/// product shifted to the output scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct HardSwishParams {
    /// Input zero point.
    pub input_zero_point: i8,
    /// Output zero point.
    pub output_zero_point: i8,
    /// Q15 multiplier from the fine input scale to the output scale.
    pub output_multiplier: i16,
    /// Its exponent (≤ 0: a right shift).
    pub output_exponent: i32,
    /// Q15 multiplier from the fine input scale to the scale where 3.0 is 2^15.
    pub reluish_multiplier: i16,
    /// Its exponent (either sign).
    pub reluish_exponent: i32,
}

/// TFLite's `DownScaleInt32ToInt16Multiplier`: a Q31 multiplier rounded to Q15.
const fn down_scale_to_i16(m: i32) -> i16 {
    if m >= i32::MAX - (1 << 15) {
        return i16::MAX;
    }
    ((m + (1 << 15)) >> 16) as i16
}

impl HardSwishParams {
    /// Derives the parameters as TFLite Micro's `HardSwishPrepare` does (the real multipliers
    /// in `f32`). Build-time helper.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidQuantization`] if a scale is not a positive finite number or the output
    /// multiplier needs a left shift (an output scale below 1/128 of the input's; TFLite refuses
    /// it too).
    pub fn new(s_in: f32, zp_in: i8, s_out: f32, zp_out: i8) -> Result<Self> {
        if !(s_in.is_finite() && s_in > 0.0 && s_out.is_finite() && s_out > 0.0) {
            return Err(Error::InvalidQuantization);
        }
        let hires = (1.0f32 / 128.0) * s_in;
        let reluish_scale = 3.0f32 / 32768.0;
        let out = quantize_multiplier((hires / s_out) as f64);
        let reluish = quantize_multiplier((hires / reluish_scale) as f64);
        if out.shift > 0 || out.multiplier <= 0 || reluish.multiplier <= 0 {
            return Err(Error::InvalidQuantization);
        }
        Ok(HardSwishParams {
            input_zero_point: zp_in,
            output_zero_point: zp_out,
            output_multiplier: down_scale_to_i16(out.multiplier),
            output_exponent: out.shift,
            reluish_multiplier: down_scale_to_i16(reluish.multiplier),
            reluish_exponent: reluish.shift,
        })
    }
}

/// gemmlowp's 16-bit `SaturatingRoundingDoublingHighMul`.
const fn srdhm16(a: i16, b: i16) -> i16 {
    if a == i16::MIN && b == i16::MIN {
        return i16::MAX;
    }
    let ab = a as i32 * b as i32;
    let nudge = if ab >= 0 { 1 << 14 } else { 1 - (1 << 14) };
    ((ab + nudge) / (1 << 15)) as i16
}

/// TFLite's `SaturatingDoublingHighMul` (no rounding: it cancels the bias of the rounding one).
const fn sdhm16(a: i16, b: i16) -> i16 {
    if a == i16::MIN && b == i16::MIN {
        return i16::MAX;
    }
    ((a as i32 * b as i32) / (1 << 15)) as i16
}

/// `value · 2^amount` saturated to i16 (`amount` in 0..=31 here).
const fn saturating_left_shift16(value: i16, amount: i32) -> i16 {
    let r = (value as i64) << amount;
    if r > i16::MAX as i64 {
        i16::MAX
    } else if r < i16::MIN as i64 {
        i16::MIN
    } else {
        r as i16
    }
}

/// TFLite Micro's int8 `HARD_SWISH` bit for bit.
///
/// # Errors
///
/// [`Error::LengthMismatch`] if the lengths differ; [`Error::InvalidQuantization`] for an output
/// exponent outside −31..=0, a reluish exponent outside −31..=31, or a negative multiplier.
pub fn hard_swish_i8(p: &HardSwishParams, input: &[i8], output: &mut [i8]) -> Result<()> {
    if !(-31..=0).contains(&p.output_exponent)
        || !(-31..=31).contains(&p.reluish_exponent)
        || p.output_multiplier < 0
        || p.reluish_multiplier < 0
    {
        return Err(Error::InvalidQuantization);
    }
    if input.len() != output.len() {
        return Err(Error::LengthMismatch { expected: output.len(), actual: input.len() });
    }
    for (o, &x) in output.iter_mut().zip(input) {
        // |x − zp| ≤ 255, so ·2^7 fits i16.
        let hires = ((x as i32 - p.input_zero_point as i32) * (1 << 7)) as i16;
        let preshift = srdhm16(hires, p.output_multiplier);
        let mut reluish = hires;
        if p.reluish_exponent > 0 {
            reluish = saturating_left_shift16(reluish, p.reluish_exponent - 1);
        }
        reluish = srdhm16(reluish, p.reluish_multiplier);
        if p.reluish_exponent > 0 {
            reluish = saturating_left_shift16(reluish, 1);
        }
        if p.reluish_exponent < 0 {
            reluish = crate::quant::rounding_divide_by_pot(reluish as i32, -p.reluish_exponent) as i16;
        }
        let reluish = ((reluish as i32 + (1 << 15)) >> 1) as i16;
        let pre = sdhm16(reluish, preshift);
        let v = crate::quant::rounding_divide_by_pot(pre as i32, -p.output_exponent) + p.output_zero_point as i32;
        *o = v.clamp(-128, 127) as i8;
    }
    Ok(())
}

/// The input side of TFLite Micro's int8 `LOGISTIC` and `TANH`: inputs are brought to Q4.27
/// fixed point by `MultiplyByQuantizedMultiplier(x − zp, multiplier, left_shift)`; inputs at
/// least `input_range_radius` away from the zero point saturate without being rescaled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SquashParams {
    /// Input zero point.
    pub input_zero_point: i8,
    /// `|x − zp|` from which the output saturates.
    pub input_range_radius: i32,
    /// Q0.31 mantissa of `s_in · 2^27`.
    pub input_multiplier: i32,
    /// Its exponent (a left shift).
    pub input_left_shift: i32,
}

/// Integer bits of the fixed-point input of `LOGISTIC` and `TANH`.
const SQUASH_INPUT_INT_BITS: i32 = 4;

/// The radius TFLite's `CalculateInputRadius(4, left_shift, 31)` gives: the largest `|x − zp|`
/// whose rescaled value stays below `15 · 2^27`.
const fn squash_radius(left_shift: i32) -> i32 {
    if left_shift >= 32 {
        return 0;
    }
    // floor(15 · 2^27 / 2^left_shift), exact in integers for left_shift in 0..32.
    ((15i64 << 27) >> left_shift) as i32
}

impl SquashParams {
    /// Derives the parameters from the input quantization exactly as TFLite Micro's
    /// `CalculateArithmeticOpData` does (in `f64`, with `frexp`). Build-time helper.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidQuantization`] if `s_in` is not a positive finite number or gives a shift
    /// outside `0..=62` (scales below 2^−27 or above 2^35, where TFLite's own arithmetic is
    /// undefined).
    pub fn new(s_in: f32, zp_in: i8) -> Result<Self> {
        if !(s_in.is_finite() && s_in > 0.0) {
            return Err(Error::InvalidQuantization);
        }
        let real = s_in as f64 * (1u64 << (31 - SQUASH_INPUT_INT_BITS)) as f64;
        let (q, mut e) = libm::frexp(real);
        let mut m = libm::round(q * (1u64 << 31) as f64) as i64;
        if m == 1 << 31 {
            m /= 2;
            e += 1;
        }
        if !(0..=62).contains(&e) {
            return Err(Error::InvalidQuantization);
        }
        Ok(SquashParams {
            input_zero_point: zp_in,
            input_range_radius: squash_radius(e),
            input_multiplier: m as i32,
            input_left_shift: e,
        })
    }

    /// The ranges [`logistic_i8`] and [`tanh_i8`] rely on: a non-negative multiplier, a shift in
    /// `0..=62`, a radius no larger than the shift allows (so rescaling cannot overflow).
    const fn check(&self) -> Result<()> {
        if self.input_multiplier < 0
            || self.input_left_shift < 0
            || self.input_left_shift > 62
            || self.input_range_radius < 0
            || self.input_range_radius > squash_radius(self.input_left_shift)
        {
            return Err(Error::InvalidQuantization);
        }
        Ok(())
    }

    /// The Q4.27 input, or the saturated side.
    #[inline(always)]
    const fn rescale(&self, x: i8) -> core::result::Result<i32, bool> {
        let d = x as i32 - self.input_zero_point as i32;
        if d <= -self.input_range_radius {
            Err(false)
        } else if d >= self.input_range_radius {
            Err(true)
        } else {
            // |d| < radius ≤ 15·2^27 / 2^shift, so the shift stays in range (shift < 32 here).
            Ok(crate::quant::multiply_by_quantized_multiplier(d, self.input_multiplier, self.input_left_shift))
        }
    }
}

fn squash(p: &SquashParams, input: &[i8], output: &mut [i8], f: impl Fn(i32) -> i8) -> Result<()> {
    p.check()?;
    if input.len() != output.len() {
        return Err(Error::LengthMismatch { expected: output.len(), actual: input.len() });
    }
    for (o, &x) in output.iter_mut().zip(input) {
        *o = match p.rescale(x) {
            Ok(q4) => f(q4),
            Err(high) => {
                if high {
                    i8::MAX
                } else {
                    i8::MIN
                }
            }
        };
    }
    Ok(())
}

/// TFLite Micro's int8 `LOGISTIC` bit for bit: output scale 1/256, zero point −128.
///
/// # Errors
///
/// [`Error::LengthMismatch`] if the lengths differ; [`Error::InvalidQuantization`] for
/// parameters outside their ranges.
pub fn logistic_i8(p: &SquashParams, input: &[i8], output: &mut [i8]) -> Result<()> {
    squash(p, input, output, |q4| {
        let q0 = crate::fixedpoint::logistic(q4, SQUASH_INPUT_INT_BITS);
        let q = crate::quant::rounding_divide_by_pot(q0, 31 - 8) - 128;
        q.clamp(-128, 127) as i8
    })
}

/// TFLite Micro's int8 `TANH` bit for bit: output scale 1/128, zero point 0.
///
/// # Errors
///
/// As [`logistic_i8`].
pub fn tanh_i8(p: &SquashParams, input: &[i8], output: &mut [i8]) -> Result<()> {
    squash(p, input, output, |q4| {
        let q0 = crate::fixedpoint::tanh(q4, SQUASH_INPUT_INT_BITS);
        crate::quant::rounding_divide_by_pot(q0, 31 - 7).clamp(-128, 127) as i8
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squash_shapes_on_every_code() {
        let codes: [i8; 256] = core::array::from_fn(|i| (i as i32 - 128) as i8);
        for s in [0.002f32, 0.05, 0.1, 0.3, 1.0] {
            let p = SquashParams::new(s, 3).unwrap();
            let (mut l, mut t) = ([0i8; 256], [0i8; 256]);
            logistic_i8(&p, &codes, &mut l).unwrap();
            tanh_i8(&p, &codes, &mut t).unwrap();
            assert!(l.windows(2).all(|w| w[0] <= w[1]) && t.windows(2).all(|w| w[0] <= w[1]), "monotonic at {s}");
            // At the zero point: logistic ½ (code 0 at scale 1/256, zp −128), tanh 0.
            assert_eq!((l[128 + 3], t[128 + 3]), (0, 0), "values at the zero point, scale {s}");
            // Odd symmetry of tanh around the zero point, where both sides are in range.
            for d in 1..100 {
                assert!((t[131 + d] as i32 + t[131 - d] as i32).abs() <= 1, "tanh odd at {s}, {d}");
            }
        }
        // Saturation: a coarse input scale reaches both ends.
        let p = SquashParams::new(0.5, 0).unwrap();
        let mut out = [0i8; 2];
        logistic_i8(&p, &[-128, 127], &mut out).unwrap();
        assert_eq!(out, [-128, 127]);
    }

    #[test]
    fn squash_refuses_bad_parameters() {
        assert!(SquashParams::new(f32::NAN, 0).is_err());
        assert!(SquashParams::new(0.0, 0).is_err());
        assert!(SquashParams::new(1e-30, 0).is_err());
        let mut p = SquashParams::new(0.1, 0).unwrap();
        p.input_range_radius = i32::MAX;
        assert_eq!(logistic_i8(&p, &[0], &mut [0]), Err(Error::InvalidQuantization));
        let p = SquashParams::new(0.1, 0).unwrap();
        assert_eq!(tanh_i8(&p, &[0, 1], &mut [0]), Err(Error::LengthMismatch { expected: 1, actual: 2 }));
    }
}
