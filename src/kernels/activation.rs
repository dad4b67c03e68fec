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
