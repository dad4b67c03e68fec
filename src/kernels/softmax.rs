//! Softmax with int8 output (scale 1/256, zero point −128, checked), TFLite Micro's fixed-point
//! algorithm.

use crate::error::{Error, Result};
use crate::fixedpoint::{exp_on_negative_values, reciprocal, rescale};
use crate::quant::{quantize_multiplier, rounding_divide_by_pot, saturating_rounding_doubling_high_mul};

/// Integer bits of the scaled input differences (TFLite's `kScaledDiffIntegerBits`).
const SCALED_DIFF_INT_BITS: i32 = 5;
/// Integer bits of the sum of exponentials (TFLite's `kAccumulationIntegerBits`).
const ACCUM_INT_BITS: i32 = 12;

/// Softmax parameters: the input scale times β as a multiplier with a left shift, and the
/// smallest input difference that still contributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SoftmaxParams {
    /// Q31 multiplier of `β · s_in · 2^26`.
    pub input_multiplier: i32,
    /// Left shift applied with the multiplier (0..=31).
    pub input_left_shift: i32,
    /// Differences from the row maximum below this (≤ 0) give probability 0.
    pub diff_min: i32,
    /// The output tensor's zero point. TFLite Micro's int8 softmax writes probabilities in
    /// units of 1/256 from −128, so this must be [`SoftmaxParams::OUTPUT_ZERO_POINT`].
    pub output_zero_point: i8,
}

impl SoftmaxParams {
    /// The only int8 output scale TFLite Micro's softmax accepts.
    pub const OUTPUT_SCALE: f32 = 1.0 / 256.0;
    /// The only int8 output zero point TFLite Micro's softmax accepts.
    pub const OUTPUT_ZERO_POINT: i8 = -128;

    /// TFLite's `PreprocessSoftmaxScaling` and `CalculateInputRadius` for an int8 input with
    /// scale `input_scale` and the given `beta` (1.0 for a plain softmax), writing to an output
    /// quantized with `output_scale` and `output_zero_point`. Build-time helper.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidQuantization`] unless the output is quantized as TFLite Micro requires
    /// (scale 1/256 within its tolerance of 0.1 %, zero point −128), or if `input_scale` or
    /// `beta` is not a positive finite number.
    pub fn new(input_scale: f32, beta: f32, output_scale: f32, output_zero_point: i8) -> Result<Self> {
        let scale_ok = (output_scale - Self::OUTPUT_SCALE).abs() <= 0.001 * Self::OUTPUT_SCALE;
        let finite = |v: f32| v.is_finite() && v > 0.0;
        if !scale_ok || output_zero_point != Self::OUTPUT_ZERO_POINT || !finite(input_scale) || !finite(beta) {
            return Err(Error::InvalidQuantization);
        }
        let real = (beta as f64 * input_scale as f64 * (1i64 << (31 - SCALED_DIFF_INT_BITS)) as f64)
            .min((1i64 << 31) as f64 - 1.0);
        let r = quantize_multiplier(real);
        let max_input_rescaled = ((1i64 << SCALED_DIFF_INT_BITS) - 1) as f64
            * (1i64 << (31 - SCALED_DIFF_INT_BITS)) as f64
            / (1i64 << r.shift.clamp(0, 62)) as f64;
        Ok(SoftmaxParams {
            input_multiplier: r.multiplier,
            input_left_shift: r.shift,
            diff_min: -(libm::floor(max_input_rescaled) as i32),
            output_zero_point,
        })
    }
}

/// Softmax over the last axis of `rows` rows of `depth` values: the output is
/// `round(256 · exp(x − max) / Σ exp) − 128`, computed in gemmlowp fixed point exactly as
/// TFLite Micro's int8 softmax. `output` has the length of `input`.
///
/// # Errors
///
/// [`Error::LengthMismatch`] if `input.len() != output.len()` or the length is not a multiple
/// of `depth`; [`Error::ZeroParameter`] for `depth == 0`; [`Error::InvalidQuantization`] for a
/// left shift outside 0..=31, a negative multiplier, a positive `diff_min` or an output zero
/// point other than [`SoftmaxParams::OUTPUT_ZERO_POINT`].
// Not inlined: one call per inference, and a symbol of its own for the flash figures.
#[inline(never)]
pub fn softmax_i8(p: &SoftmaxParams, input: &[i8], depth: usize, output: &mut [i8]) -> Result<()> {
    if depth == 0 {
        return Err(Error::ZeroParameter);
    }
    if input.len() != output.len() {
        return Err(Error::LengthMismatch { expected: input.len(), actual: output.len() });
    }
    if input.len() % depth != 0 {
        return Err(Error::LengthMismatch { expected: input.len().div_ceil(depth) * depth, actual: input.len() });
    }
    if !(0..=31).contains(&p.input_left_shift)
        || p.input_multiplier < 0
        || p.diff_min > 0
        || p.output_zero_point != SoftmaxParams::OUTPUT_ZERO_POINT
    {
        return Err(Error::InvalidQuantization);
    }
    // exp(β·s_in·diff) in Q0.31 for a difference from the row maximum (one out-of-line copy for
    // both passes over the row: each inlined one was ~100 bytes of 64-bit multiply).
    #[inline(never)]
    fn exp_of(diff: i32, p: &SoftmaxParams) -> i32 {
        // MultiplyByQuantizedMultiplierGreaterThanOne; diff ≥ −255 and the shift only grows it
        // while diff·2^shift fits, which diff_min guarantees for contributing differences.
        let x = diff.wrapping_mul(1i32.wrapping_shl(p.input_left_shift as u32));
        exp_on_negative_values(saturating_rounding_doubling_high_mul(x, p.input_multiplier), SCALED_DIFF_INT_BITS)
    }
    // The depth hidden from the optimiser: a model's constant depth (10 classes) otherwise has
    // both passes over the row fully unrolled (0.4 KB of flash for a few instructions).
    let depth = crate::simd::opaque(depth);
    for (row, out) in input.chunks_exact(depth).zip(output.chunks_exact_mut(depth)) {
        let max = row.iter().fold(i8::MIN, |m, &x| {
            crate::simd::rolled();
            m.max(x)
        }) as i32;
        let mut sum_of_exps: i32 = 0; // Q12.19
        for &x in row {
            crate::simd::rolled();
            let diff = x as i32 - max;
            if diff >= p.diff_min {
                let e = exp_of(diff, p);
                sum_of_exps = sum_of_exps.wrapping_add(rescale(e, 0, ACCUM_INT_BITS));
            }
        }
        let (shifted_scale, num_bits_over_unit) = reciprocal(sum_of_exps, ACCUM_INT_BITS);
        for (o, &x) in out.iter_mut().zip(row) {
            crate::simd::rolled();
            let diff = x as i32 - max;
            *o = if diff >= p.diff_min {
                let e = exp_of(diff, p);
                let unsat = rounding_divide_by_pot(
                    saturating_rounding_doubling_high_mul(shifted_scale, e),
                    num_bits_over_unit + 31 - 8,
                );
                unsat.saturating_sub(128).clamp(-128, 127) as i8
            } else {
                i8::MIN
            };
        }
    }
    Ok(())
}
