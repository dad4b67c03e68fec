//! Dense (fully connected) layer.

use crate::error::{Error, Result};
#[cfg(microcnn_dense_groups)]
use crate::kernels::blocked;
use crate::kernels::conv::{check_bias, check_channel_params, MAX_TAPS};
#[cfg(not(microcnn_dense_groups))]
use crate::kernels::simd;
#[cfg(microcnn_dense_groups)]
use crate::quant::ChannelRequant;
use crate::quant::{requantize, ActivationRange, Requant};
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

/// The bias of a layer without one, for a block of `simd::DENSE_ROWS` units.
#[cfg(not(microcnn_dense_groups))]
static NO_BIAS: [i32; simd::DENSE_ROWS] = [0; simd::DENSE_ROWS];

/// Dense layer with register blocking, bit-exact with [`dense_i8_reference`].
///
/// On cores with the DSP extension (and on the host, with the same arithmetic in plain Rust,
/// see [`crate::simd`]) one assembly routine per [`simd::DENSE_CHUNK`] input taps and block of
/// up to [`simd::DENSE_ROWS`] units: the sums start at the biases, the taps are unpacked once
/// into 16-bit pairs with the zero point applied, then two rows at a time take eight taps per
/// step (`LDM` of the pairs, per row one `LDRD` of weights, four `SXTB16` and four `SMLAD`:
/// 1.19 instructions per MAC), and the last piece requantizes. `LDRD` needs word-aligned rows:
/// the taps before a row's first aligned weight, and the last `depth mod 4`, are summed here
/// into its bias, and a depth that is not a multiple of 4 goes one row at a time. Elsewhere
/// four units at a time against the input's bytes (the `LDRSB`/`MLA` assembly of the M3 and
/// the M0), then two, then one; built for size, Armv7-M and later cores take two at a time
/// (on packed pairs where the DSP extension is present) instead of those routines. Batch
/// items go one at a time: on a microcontroller the batch is one, and a two-item path cost
/// 1.5 KB of flash.
///
/// Stack: 1 KB of pairs and 256 bytes of sums on DSP cores.
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
    let off = -(p.input_zero_point as i32);
    let (zp, act) = (p.output_zero_point, p.activation);
    let units = w.units;
    let per_channel = w.requant.len() != 1;
    let row = |u: usize| &w.weights[u * depth..(u + 1) * depth];
    #[cfg(not(microcnn_dense_groups))]
    {
        // With depth a multiple of 4 every row has the first row's alignment: blocks of up to
        // DENSE_ROWS rows; otherwise one row at a time, each with its own.
        let block = if depth % 4 == 0 { simd::DENSE_ROWS } else { 1 };
        for (x, out) in input.chunks_exact(depth).zip(output.chunks_exact_mut(units)) {
            let mut u0 = 0;
            while u0 < units {
                let n = (units - u0).min(block);
                let first = &w.weights[u0 * depth..];
                // The taps before the first word-aligned weight (the routine loads rows with
                // LDRD), then whole quads; the taps outside those go into the bias (exact: the
                // reference adds the bias to the whole sum, wrapping).
                let head = first.as_ptr().align_offset(4).min(depth);
                let taps = (depth - head) / 4 * 4;
                let quant = if per_channel { &w.requant[u0..u0 + n] } else { w.requant };
                let user_bias = w.bias.map_or(&NO_BIAS[..n], |b| &b[u0..u0 + n]);
                // (Set only when used: clearing it on every call cost 120 instructions.)
                let mut edges: [i32; simd::DENSE_ROWS];
                let bias = if taps == depth {
                    user_bias
                } else {
                    // Only the at most 3 + 3 edge taps of each row are visited.
                    let end = head + taps;
                    edges = [0i32; simd::DENSE_ROWS];
                    for (r, (e, &b)) in edges.iter_mut().zip(user_bias).enumerate() {
                        let wr = row(u0 + r);
                        let tap = |a: i32, (&wv, &xv): (&i8, &i8)| {
                            simd::rolled();
                            a.wrapping_add(wv as i32 * (xv as i32 + off))
                        };
                        let a = wr[..head].iter().zip(&x[..head]).fold(b, tap);
                        *e = wr[end..].iter().zip(&x[end..]).fold(a, tap);
                    }
                    &edges[..n]
                };
                let outs = &mut out[u0..u0 + n];
                if taps == 0 {
                    simd::requantize_rows(outs, bias, quant, zp, act);
                } else {
                    let o = simd::DenseOut { out: outs, quant, bias, zp, act };
                    if !simd::dense_rows(&first[head..], depth, n, &x[head..head + taps], off, o) {
                        // Unreachable: `prepare` checked every length, and `head` aligns the rows.
                        return Err(Error::LengthMismatch { expected: units * depth, actual: w.weights.len() });
                    }
                }
                u0 += n;
            }
        }
        Ok(out_shape)
    }
    #[cfg(microcnn_dense_groups)]
    {
        let whole_quads = depth % 4 == 0;
        // One requantization site for every group (each inlined copy costs flash).
        let requant = |u: usize, acc: i32| {
            let q = &w.requant[if per_channel { u } else { 0 }];
            let bias = w.bias.map_or(0, |b| b[u]);
            // Measured: fewer instructions than `requantize_short` on the M3, and no
            // `__aeabi_lmul` call on the M0 (16-bit halves there).
            ChannelRequant::new(bias, q.multiplier, q.shift, zp).apply(acc, zp, act)
        };
        for (x, out) in input.chunks_exact(depth).zip(output.chunks_exact_mut(units)) {
            let mut u = 0;
            while u < units {
                // The next group of rows: four (one assembly loop on the M3 and the M0), then
                // two, then one. On the M0, whose one- and two-row loops are slow (3
                // instructions per product even without emulated pairs, against 3.6 for all four
                // of the assembly routine's), the last one to three units are the last four rows
                // again, only the new ones stored. `head` covers the first ⌊depth/4⌋·4 taps of
                // four-row groups and every tap otherwise.
                let s = if cfg!(microcnn_v6m) && units >= 4 { u.min(units - 4) } else { u };
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
                for (r, &a) in head.iter().enumerate().take(n).skip(u - s) {
                    let tail = if four.is_none() || whole_quads { 0 } else { blocked::dot1x1_tail(row(s + r), x, off) };
                    out[s + r] = requant(s + r, a + tail);
                }
                u = s + n;
            }
        }
        Ok(out_shape)
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::{vec, vec::Vec};

    /// The blocked kernel (on the host: the DSP path's arithmetic in plain Rust) against the
    /// reference on shapes that cross its pieces and blocks: depths around the 512-tap chunk
    /// and not multiples of 4, unit counts around the 64-row block, extreme weights, inputs,
    /// zero points, biases and multipliers.
    #[test]
    fn blocked_equals_reference_across_chunks_and_row_blocks() {
        let mut seed = 0x51ed_2701u32;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        // Under Miri (about a thousand times slower) the small shapes and one piece boundary.
        let shapes: &[(usize, usize)] = if cfg!(miri) {
            &[(1, 1), (3, 5), (7, 9), (516, 3)]
        } else {
            &[(1, 1), (3, 5), (4, 1), (7, 9), (512, 3), (513, 64), (516, 65), (1027, 10), (1024, 130), (2049, 7)]
        };
        for (case, &(depth, units)) in shapes.iter().enumerate() {
            let extreme = case % 2 == 1;
            let byte = |v: u32| if extreme { [-128i8, 127, -1, 0][v as usize % 4] } else { v as u8 as i8 };
            let x: Vec<i8> = (0..depth).map(|_| byte(next())).collect();
            // A byte or three in front, so rows start at every alignment.
            let skew = case % 4;
            let stored: Vec<i8> = (0..skew + depth * units).map(|_| byte(next())).collect();
            let weights = &stored[skew..];
            let bias: Vec<i32> = (0..units)
                .map(|u| if extreme && u % 3 == 0 { [i32::MIN, i32::MAX][u % 2] } else { next() as i32 >> 12 })
                .collect();
            let requant: Vec<Requant> = (0..units)
                .map(|_| {
                    let m = if extreme {
                        [0, 1, i32::MAX, 1 << 30][next() as usize % 4]
                    } else {
                        (1 << 30) | (next() >> 2) as i32
                    };
                    Requant::new(m, next() as i32 % 31 - if extreme { 0 } else { 10 })
                })
                .collect();
            for per_channel in [true, false] {
                let zp = if extreme { -128 } else { 3 };
                let p = DenseParams {
                    input_zero_point: if extreme { 127 } else { -5 },
                    output_zero_point: zp,
                    activation: ActivationRange::relu(zp),
                };
                let w = DenseWeights {
                    weights,
                    units,
                    bias: Some(&bias),
                    requant: if per_channel { &requant } else { &requant[..1] },
                };
                let shape = Shape::vector(1, depth);
                let (mut a, mut b) = (vec![0i8; units], vec![0i8; units]);
                let ra = dense_i8_reference(&p, &w, &x, shape, &mut a);
                let rb = dense_i8_blocked(&p, &w, &x, shape, &mut b);
                assert_eq!(ra, rb, "depth {depth} units {units}");
                assert_eq!(a, b, "depth {depth} units {units} per channel {per_channel}");
            }
        }
    }
}
