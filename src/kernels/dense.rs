//! Dense (fully connected) layer.

use crate::error::{Error, Result};
use crate::kernels::blocked;
use crate::kernels::conv::{check_bias, check_channel_params, MAX_TAPS};
use crate::quant::{requantize, ActivationRange, ChannelRequant, Requant};
use crate::shape::Shape;

/// Quantization of a dense layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct DenseParams {
    /// Input zero point.
    pub input_zero_point: i8,
    /// Output zero point.
    pub output_zero_point: i8,
    /// Output clamp (fused ReLU/ReLU6 or none).
    pub activation: ActivationRange,
}

/// Weights of a dense layer.
#[derive(Clone, Copy, Debug)]
pub struct DenseWeights<'a> {
    /// `[units][depth]` row-major, symmetric int8.
    pub weights: &'a [i8],
    /// Number of outputs per batch item.
    pub units: usize,
    /// One bias per unit in units of `s_in · s_w`, or `None`.
    pub bias: Option<&'a [i32]>,
    /// Requantization multipliers: one per unit (per-channel), or a single one (per-tensor, as
    /// TFLite's converter emits for `FULLY_CONNECTED`).
    pub requant: &'a [Requant],
}

/// Checks everything a dense layer needs; returns `(depth, out_shape)`.
fn prepare(
    p: &DenseParams,
    w: &DenseWeights<'_>,
    input: &[i8],
    input_shape: Shape,
    output: &[i8],
) -> Result<(usize, Shape)> {
    p.activation.check()?;
    input_shape.checked_nonempty_len()?;
    input_shape.expect_len(input.len())?;
    let depth = input_shape.item_len();
    if depth > MAX_TAPS {
        return Err(Error::TooLarge);
    }
    let units = w.units;
    if units == 0 {
        return Err(Error::ZeroParameter);
    }
    let expected = units.checked_mul(depth).ok_or(Error::TooLarge)?;
    if w.weights.len() != expected {
        return Err(Error::LengthMismatch { expected, actual: w.weights.len() });
    }
    // One multiplier per unit, or one for the whole tensor.
    let per_channel = w.requant.len() != 1;
    check_bias(w.bias, units)?;
    let quant_len = if per_channel { units } else { 1 };
    check_channel_params(None, w.requant, quant_len)?;
    let out_shape = Shape::vector(input_shape.n, units);
    out_shape.expect_len(output.len())?;
    Ok((depth, out_shape))
}

/// Dense layer over `input_shape.n` batch items of `depth = H·W·C` values each (an NHWC tensor
/// is flattened in memory order, as TFLite's `FULLY_CONNECTED` does):
/// `acc = Σ w[u][d] · (x[d] − zp_in) + bias[u]`, requantized with the integer multiplier and shift
/// (TFLite Micro's kernel, not TFLite's double-precision reference), `+ zp_out`, clamped.
///
/// Returns the output shape `n×1×1×units`.
///
/// # Errors
///
/// [`Error::LengthMismatch`] for slices of the wrong length (the weights must be
/// `units · depth`); [`Error::ZeroParameter`] for zero `units` or an input shape with a zero
/// dimension; [`Error::TooLarge`] for `depth` above [`MAX_TAPS`] (the accumulator headroom
/// bound); [`Error::InvalidQuantization`] for out-of-range parameters.
pub fn dense_i8_reference(
    p: &DenseParams,
    w: &DenseWeights<'_>,
    input: &[i8],
    input_shape: Shape,
    output: &mut [i8],
) -> Result<Shape> {
    let (depth, out_shape) = prepare(p, w, input, input_shape, output)?;
    let units = w.units;
    let per_channel = w.requant.len() != 1;
    let input_offset = -(p.input_zero_point as i32);
    for (x, out) in input.chunks_exact(depth).zip(output.chunks_exact_mut(units)) {
        for (u, (o, row)) in out.iter_mut().zip(w.weights.chunks_exact(depth)).enumerate() {
            // At most MAX_TAPS products of at most 128·255: exact in i32 (see MAX_TAPS).
            let mut acc: i32 = 0;
            for (&wv, &xv) in row.iter().zip(x) {
                acc += wv as i32 * (xv as i32 + input_offset);
            }
            if let Some(bias) = w.bias {
                acc = acc.wrapping_add(bias[u]);
            }
            let q = if per_channel { u } else { 0 };
            *o = requantize(acc, w.requant[q].multiplier, w.requant[q].shift, p.output_zero_point, p.activation);
        }
    }
    Ok(out_shape)
}

/// Dense layer: the register-blocked kernel ([`dense_i8_blocked`]) on Cortex-M cores, the plain
/// one ([`dense_i8_reference`]) elsewhere. Same contract as
/// [`dense_i8_reference`].
///
/// # Errors
///
/// As [`dense_i8_reference`].
pub fn dense_i8(
    p: &DenseParams,
    w: &DenseWeights<'_>,
    input: &[i8],
    input_shape: Shape,
    output: &mut [i8],
) -> Result<Shape> {
    // Measured (firmware-examples/bench): the blocked kernel wins on every Cortex-M, its SIMD
    // emulated where the core has none; on the host the plain loop is quicker.
    if cfg!(target_arch = "arm") {
        dense_i8_blocked(p, w, input, input_shape, output)
    } else {
        dense_i8_reference(p, w, input, input_shape, output)
    }
}

/// Dense layer with register blocking, bit-exact with [`dense_i8_reference`]: four units at a
/// time against each batch item (then two, then one), four taps per step on packed-word SIMD
/// (`SXTB16`/`SXTAB16`/`SMLAD` on cores with the DSP extension, `LDRSB`/`MLA` assembly on the
/// M3; see [`crate::simd`]). Batch items go one at a time: on a microcontroller the batch is
/// one, and a two-item path cost 1.5 KB of flash.
///
/// # Errors
///
/// As [`dense_i8_reference`].
pub fn dense_i8_blocked(
    p: &DenseParams,
    w: &DenseWeights<'_>,
    input: &[i8],
    input_shape: Shape,
    output: &mut [i8],
) -> Result<Shape> {
    let (depth, out_shape) = prepare(p, w, input, input_shape, output)?;
    let units = w.units;
    let per_channel = w.requant.len() != 1;
    let off = -(p.input_zero_point as i32);
    let (zp, act) = (p.output_zero_point, p.activation);
    let whole_quads = depth % 4 == 0;
    let row = |u: usize| &w.weights[u * depth..(u + 1) * depth];
    for (x, out) in input.chunks_exact(depth).zip(output.chunks_exact_mut(units)) {
        let mut u = 0;
        while u < units {
            // The next group of rows: four (one assembly loop on Cortex-M cores), then two,
            // then one. On the M0, whose one- and two-row loops are slow (3 instructions per
            // product even without emulated pairs, against 3.6 for all four of the assembly
            // routine's), the last one to three units are the last four rows again, only the
            // new ones stored. `head` covers the first ⌊depth/4⌋·4 taps of four-row groups
            // and every tap otherwise.
            let s = if cfg!(all(target_arch = "arm", microcnn_v6m)) && units >= 4 { u.min(units - 4) } else { u };
            let four = if depth >= 4 && s + 4 <= units {
                blocked::dot4x1_head(&w.weights[s * depth..], depth, x, off)
            } else {
                None
            };
            let (n, head) = match four {
                Some(head) => (4, head),
                None if u + 2 <= units => {
                    let [a0, a1] = blocked::dot2x1(&w.weights[u * depth..], depth, x, off);
                    (2, [a0, a1, 0, 0])
                }
                None => (1, [blocked::dot1x1(row(u), x, off), 0, 0, 0]),
            };
            let s = if four.is_some() { s } else { u };
            // One requantization site for every group (each inlined copy costs flash).
            for (r, &a) in head.iter().enumerate().take(n).skip(u - s) {
                let tail = if four.is_none() || whole_quads { 0 } else { blocked::dot1x1_tail(row(s + r), x, off) };
                let q = &w.requant[if per_channel { s + r } else { 0 }];
                let bias = w.bias.map_or(0, |b| b[s + r]);
                out[s + r] = ChannelRequant::new(bias, q.multiplier, q.shift, zp).apply(a + tail, zp, act);
            }
            u = s + n;
        }
    }
    Ok(out_shape)
}
