//! Integer requantization (the runtime half) and the float set-up helpers (the build-time half).
//!
//! The runtime functions reproduce TensorFlow Lite Micro's `MultiplyByQuantizedMultiplier`
//! bit for bit, including its double rounding. The `f64` helpers ([`quantize_multiplier`] and
//! friends) run once, on the host or at start-up; no kernel calls them.

use crate::error::{Error, Result};

/// `(a·b·2 + 2^31) >> 32` with round-half-away-from-zero, saturating the single overflowing
/// case `i32::MIN · i32::MIN` (gemmlowp's `SaturatingRoundingDoublingHighMul`).
#[inline(always)]
pub const fn saturating_rounding_doubling_high_mul(a: i32, b: i32) -> i32 {
    if a == i32::MIN && b == i32::MIN {
        return i32::MAX;
    }
    // gemmlowp adds a nudge of 2^30 (ab ≥ 0) or 1 − 2^30 (ab < 0) and divides by 2^31
    // truncating toward zero. For ab ≥ 0 that is ⌊(ab + 2^30) / 2^31⌋; for ab < 0 the sum is
    // negative, and truncating it equals ⌈(ab + 1 − 2^30) / 2^31⌉ = ⌊(ab + 2^30) / 2^31⌋ as well.
    // So one add and an arithmetic shift give the same bits for every input (a 64-bit multiply,
    // an add with carry and a funnel shift on a Cortex-M4 instead of a branchy division).
    // The 64-bit product even on the M0: measured, the split form of `rounded_high_mul` slows
    // the portable fast convolution there (register pressure in its loops).
    ((a as i64 * b as i64 + (1 << 30)) >> 31) as i32
}

/// `⌊(a·b + 2^30) / 2^31⌋` truncated to 32 bits: the rounding half of
/// [`saturating_rounding_doubling_high_mul`], for [`ChannelRequant::apply`]. On the Cortex-M0,
/// which has no 32×32→64 multiply, from four 16×16-bit products ([`rounded_high_mul_parts`])
/// instead of a `__aeabi_lmul` call.
#[inline(always)]
pub(crate) const fn rounded_high_mul(a: i32, b: i32) -> i32 {
    if cfg!(microcnn_v6m) {
        rounded_high_mul_parts(a, b)
    } else {
        ((a as i64 * b as i64 + (1 << 30)) >> 31) as i32
    }
}

/// [`rounded_high_mul`] from 16-bit halves: with `a = a_h·2^16 + a_l` and `b = b_h·2^16 + b_l`
/// (`a_h`, `b_h` signed, `a_l`, `b_l` in `0..2^16`),
/// `a·b = a_h·b_h·2^32 + (a_h·b_l + a_l·b_h)·2^16 + a_l·b_l`, where every product fits 32 bits
/// (the signed ones below 2^31 in magnitude, `a_l·b_l` unsigned) and only the sums need 64
/// (adds with carry).
#[inline(always)]
pub(crate) const fn rounded_high_mul_parts(a: i32, b: i32) -> i32 {
    let (ah, al) = (a >> 16, a & 0xffff);
    let (bh, bl) = (b >> 16, b & 0xffff);
    let hh = ah * bh;
    let mid = (ah * bl) as i64 + (al * bh) as i64;
    let ll = (al as u32).wrapping_mul(bl as u32) as i64;
    let ab = ((hh as i64) << 32) + (mid << 16) + ll;
    ((ab + (1 << 30)) >> 31) as i32
}

/// `x / 2^exponent`, rounding half away from zero (gemmlowp's `RoundingDivideByPOT`).
/// `exponent` must be in `0..=31`; values below are treated as 0 and above as 31.
#[inline(always)]
pub const fn rounding_divide_by_pot(x: i32, exponent: i32) -> i32 {
    let e = if exponent < 0 {
        0
    } else if exponent > 31 {
        31
    } else {
        exponent
    };
    let mask: i32 = ((1i64 << e) - 1) as i32;
    let remainder = x & mask;
    let threshold = (mask >> 1) + if x < 0 { 1 } else { 0 };
    // `x >> e` is below 2^30 in magnitude when e ≥ 1, and the +1 only happens when e ≥ 1.
    (x >> e) + if remainder > threshold { 1 } else { 0 }
}

/// Multiplies `x` by the real number `multiplier · 2^(shift − 31)`: TFLM's
/// `MultiplyByQuantizedMultiplier` (left shift, then rounding doubling high multiply, then
/// rounding right shift). `shift` is documented as `−31..=30`; outside it the left shift is
/// capped at 31 and the right shift at 31, so the function is total.
///
/// The left shift `x · 2^shift` wraps in `i32`, as TFLM's C++ does on two's-complement
/// hardware; kernels only reach it with accumulators that TFLite's converter sized for it.
#[inline(always)]
pub const fn multiply_by_quantized_multiplier(x: i32, multiplier: i32, shift: i32) -> i32 {
    let left = if shift > 31 {
        31
    } else if shift > 0 {
        shift
    } else {
        0
    };
    let right = if shift >= 0 {
        0
    } else if shift < -31 {
        31
    } else {
        -shift
    };
    rounding_divide_by_pot(saturating_rounding_doubling_high_mul(x.wrapping_shl(left as u32), multiplier), right)
}

/// The requantize-and-store step every accumulating kernel ends with:
/// `clamp(MultiplyByQuantizedMultiplier(acc, M, shift) + zp_out, act.min, act.max)`.
///
/// The zero point is added saturating, which equals TFLM's plain `+` whenever that does not
/// overflow and clamps to the same int8 value when it would.
#[inline(always)]
pub const fn requantize(acc: i32, multiplier: i32, shift: i32, output_zero_point: i8, act: ActivationRange) -> i8 {
    act.clamp(multiply_by_quantized_multiplier(acc, multiplier, shift).saturating_add(output_zero_point as i32))
}

/// [`requantize`] (for a multiplier and shift that [`Requant::check`] accepts) by the short
/// route of the assembly kernels where it is exact — `acc · 2^(left+1)` fits `i32` and the
/// right shift is at most 22 (see [`ChannelRequant::apply_short`]) — and by [`requantize`]
/// otherwise. The test is on the value itself, so it costs two instructions and needs no bound:
/// about half the instructions of [`requantize`] on cores with a 32×32→64 multiply. The
/// specification of the DSP dense routine's requantization (`dense.s`), tested against
/// [`requantize`] here.
#[cfg_attr(not(test), allow(dead_code))]
#[inline(always)]
pub(crate) const fn requantize_short(acc: i32, multiplier: i32, shift: i32, zp: i8, act: ActivationRange) -> i8 {
    let (left, right) = if shift > 0 { (shift as u32, 0) } else { (0, shift.unsigned_abs()) };
    let l1 = left + 1;
    let x = acc.wrapping_shl(l1);
    if l1 > 31 || right > 22 || multiplier < 0 || x >> l1 != acc {
        return requantize(acc, multiplier, shift, zp, act);
    }
    let round = ((1i32 << right) >> 1) + ((zp as i32) << right);
    let high = ((((round as i64) << 32) + x as i64 * multiplier as i64 + (1 << 31)) >> 32) as i32;
    let fix = if right > 0 { (x as u32 >> 31) as i32 } else { 0 };
    act.clamp((high - fix) >> right)
}

/// One output channel's requantization decoded once per kernel call, for the blocked kernels:
/// what to add to the raw accumulator (the bias, and the zero-point term `−zp·Σw` when the
/// kernel accumulates raw products), the multiplier, and the shift split into left and right
/// parts with the rounding constants of the right shift precomputed. [`ChannelRequant::apply`]
/// gives exactly [`requantize`]'s bits for every multiplier that [`Requant::check`] accepts (the
/// kernels build the table only after that check), in about half the instructions: no
/// saturation case (it needs a negative multiplier) and no mask to rebuild per output.
///
/// The field order is the assembly kernels' (`src/kernels/simd/requant.s` loads the first five
/// with one `LDM`). They run the short form [`ChannelRequant::apply_short`], which is exact only
/// while `(acc + add) · 2^(left+1)` fits `i32`; a kernel calls them only after
/// [`ChannelRequant::short_ok`] has shown that for every accumulator the channel can produce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub(crate) struct ChannelRequant {
    /// `max(shift, 0) + 1`, at most 32: the left shift and the doubling of the high multiply.
    pub lsl: u32,
    /// Q31 multiplier, `0..=i32::MAX`.
    pub multiplier: i32,
    /// `2^(right−1)` (0 when `right` is 0), the rounding half of the right shift, plus
    /// `zp_out · 2^right`, so the shift adds the output zero point (wrapping; used only where
    /// [`ChannelRequant::short_ok`] holds, which keeps it exact).
    pub round: i32,
    /// 31 when `right ≥ 1`, else 32: a logical right shift by it gives `[x < 0]` or 0 (the
    /// ties-away-from-zero correction, which only a real right shift needs).
    pub sign: u32,
    /// `max(−shift, 0)`, at most 31.
    pub right: u32,
    /// Added (wrapping, as TFLM's `int32` bias add) to the accumulator first.
    pub add: i32,
    /// `2^right − 1`: the bits the right shift rounds away.
    pub mask: i32,
}

impl ChannelRequant {
    /// Decodes `multiplier`/`shift` (the shift is clamped as in
    /// [`multiply_by_quantized_multiplier`]) for the output zero point `zp`. A negative
    /// multiplier, which every kernel refuses before building a table, is stored as 0.
    #[inline(always)]
    pub(crate) const fn new(add: i32, multiplier: i32, shift: i32, zp: i8) -> Self {
        let left = if shift > 31 {
            31
        } else if shift > 0 {
            shift as u32
        } else {
            0
        };
        let right = if shift >= 0 {
            0
        } else if shift < -31 {
            31
        } else {
            (-shift) as u32
        };
        let multiplier = if multiplier < 0 { 0 } else { multiplier };
        ChannelRequant {
            lsl: left + 1,
            multiplier,
            round: (if right == 0 { 0 } else { 1i32 << (right - 1) }).wrapping_add((zp as i32).wrapping_shl(right)),
            sign: if right == 0 { 32 } else { 31 },
            right,
            add,
            mask: ((1u32 << right) - 1) as i32,
        }
    }

    /// `requantize(acc + add, multiplier, shift, zp, act)`.
    #[inline(always)]
    pub(crate) const fn apply(&self, acc: i32, zp: i8, act: ActivationRange) -> i8 {
        let x = acc.wrapping_add(self.add).wrapping_shl(self.lsl - 1);
        // SaturatingRoundingDoublingHighMul without its saturation: that needs
        // x = multiplier = i32::MIN, and the multiplier is never negative. |x·m| < 2^62, so the
        // rounded quotient fits i32 (see `saturating_rounding_doubling_high_mul`).
        let y = rounded_high_mul(x, self.multiplier);
        // RoundingDivideByPOT with the mask precomputed.
        let threshold = (self.mask >> 1) + ((y as u32) >> 31) as i32;
        let q = (y >> self.right) + ((y & self.mask) > threshold) as i32;
        act.clamp(q.saturating_add(zp as i32))
    }

    /// Whether [`ChannelRequant::apply_short`] is exact for every accumulator `acc` with
    /// `|acc| ≤ bound` (before `add`): `(bound + |add|) · 2^lsl < 2^31`, and `right ≤ 22` so
    /// that the high word plus `round` (at most `2^30 + 2^21 + 128 · 2^22`) fits as well.
    #[inline(always)]
    pub(crate) const fn short_ok(&self, bound: u32) -> bool {
        let reach = bound as u64 + self.add.unsigned_abs() as u64;
        self.lsl < 32 && self.right <= 22 && (reach << self.lsl) < 1 << 31
    }

    /// The assembly kernels' requantization (`requant.s`, five instructions on DSP cores)
    /// instruction by instruction in 32-bit arithmetic: `MultiplyByQuantizedMultiplier(acc +
    /// add) + zp`, exact where [`ChannelRequant::short_ok`] holds. With `x = (acc + add) ·
    /// 2^lsl` (the left shift and the doubling), `SMMLAR(x, multiplier, round)` is
    /// SaturatingRoundingDoublingHighMul plus `round`, as `⌊(a·m + 2^30) / 2^31⌋` is
    /// `⌊(2a·m + 2^31) / 2^32⌋`, the high word rounded; RoundingDivideByPOT is then one
    /// arithmetic shift after subtracting `[x < 0]` (`(y + 2^(right−1) − [y < 0]) >> right`,
    /// ties away from zero: the product has `x`'s sign or is 0, which rounds to 0 either way).
    #[cfg_attr(not(test), allow(dead_code))]
    #[inline(always)]
    pub(crate) const fn apply_short(&self, acc: i32) -> i32 {
        let x = acc.wrapping_add(self.add).wrapping_shl(self.lsl);
        let high = ((((self.round as i64) << 32) + x as i64 * self.multiplier as i64 + (1 << 31)) >> 32) as i32;
        let fix = if self.sign < 32 { (x as u32 >> 31) as i32 } else { 0 };
        high.wrapping_sub(fix) >> self.right
    }
}

/// The inclusive output clamp `[min, max]` that a fused activation becomes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ActivationRange {
    /// Smallest output value.
    pub min: i8,
    /// Largest output value.
    pub max: i8,
}

impl ActivationRange {
    /// No activation: the full int8 range.
    pub const NONE: ActivationRange = ActivationRange { min: i8::MIN, max: i8::MAX };

    /// Fused ReLU for an output with zero point `zp`: `[max(−128, zp), 127]`.
    pub const fn relu(zp: i8) -> Self {
        ActivationRange { min: zp, max: i8::MAX }
    }

    /// Fused ReLU6: `[max(−128, zp), min(127, zp + round(6 / scale))]` (TFLite's rule).
    /// Total for any scale: a zero, negative, infinite or NaN scale gives a range that the
    /// saturating arithmetic clamps into `[zp, 127]`.
    pub fn relu6(zp: i8, scale: f32) -> Self {
        // `as i32` saturates (NaN → 0), and the add saturates too.
        let six = (zp as i32).saturating_add(libm::roundf(6.0 / scale) as i32);
        ActivationRange { min: zp, max: six.clamp(zp as i32, 127) as i8 }
    }

    /// Checks `min <= max`.
    pub(crate) const fn check(&self) -> Result<()> {
        if self.min > self.max {
            Err(Error::InvalidQuantization)
        } else {
            Ok(())
        }
    }

    /// Clamps an i32 into the range.
    #[inline(always)]
    pub const fn clamp(&self, v: i32) -> i8 {
        let lo = self.min as i32;
        let hi = self.max as i32;
        (if v < lo {
            lo
        } else if v > hi {
            hi
        } else {
            v
        }) as i8
    }
}

/// A requantization multiplier: the real factor `multiplier · 2^(shift − 31)`. (`repr(C)`:
/// the DSP dense routine reads it as two words.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(C)]
pub struct Requant {
    /// Q31 mantissa in `[2^30, 2^31)`, or 0.
    pub multiplier: i32,
    /// Power-of-two exponent, positive = left shift, in `−31..=30`.
    pub shift: i32,
}

impl Requant {
    /// The multiplier `multiplier · 2^(shift − 31)` (checked where a kernel uses it).
    pub const fn new(multiplier: i32, shift: i32) -> Self {
        Requant { multiplier, shift }
    }

    /// Applies the multiplier to an accumulator.
    #[inline(always)]
    pub const fn apply(&self, acc: i32) -> i32 {
        multiply_by_quantized_multiplier(acc, self.multiplier, self.shift)
    }

    /// Checks the documented ranges.
    pub(crate) const fn check(&self) -> Result<()> {
        check_requant(self.multiplier, self.shift)
    }
}

/// Checks that a multiplier/shift pair is in the documented range.
pub(crate) const fn check_requant(multiplier: i32, shift: i32) -> Result<()> {
    if multiplier < 0 || shift < -31 || shift > 30 {
        Err(Error::InvalidQuantization)
    } else {
        Ok(())
    }
}

/// Splits a positive real multiplier into a Q31 mantissa and a power-of-two shift, exactly as
/// TFLite's `QuantizeMultiplier` does (`frexp`, round half away from zero, renormalise `2^31`,
/// flush exponents below −31 to zero). Build-time only.
pub fn quantize_multiplier(real: f64) -> Requant {
    if real == 0.0 || !real.is_finite() || real < 0.0 {
        return Requant { multiplier: 0, shift: 0 };
    }
    let (q, mut shift) = libm::frexp(real);
    let mut q_fixed = libm::round(q * (1u64 << 31) as f64) as i64;
    if q_fixed == 1i64 << 31 {
        q_fixed /= 2;
        shift += 1;
    }
    if shift < -31 {
        shift = 0;
        q_fixed = 0;
    }
    if shift > 30 {
        // TFLite clamps here too: the largest representable multiplier.
        shift = 30;
        q_fixed = (1i64 << 31) - 1;
    }
    Requant { multiplier: q_fixed as i32, shift }
}

/// The per-channel multipliers of a convolution or dense layer: `s_in · s_w[c] / s_out`, each
/// product formed in `f64` from the `f32` scales as TFLite does. Writes one entry per channel.
///
/// # Errors
///
/// [`Error::LengthMismatch`] if the output slices are not as long as `weight_scales`.
pub fn conv_multipliers(
    input_scale: f32,
    weight_scales: &[f32],
    output_scale: f32,
    requant: &mut [Requant],
) -> Result<()> {
    if requant.len() != weight_scales.len() {
        return Err(Error::LengthMismatch { expected: weight_scales.len(), actual: requant.len() });
    }
    for (r, &ws) in requant.iter_mut().zip(weight_scales) {
        *r = quantize_multiplier(input_scale as f64 * ws as f64 / output_scale as f64);
    }
    Ok(())
}

/// Quantizes a real value: `clamp(round(x / scale) + zp, −128, 127)`, rounding half away from
/// zero. For model inputs; not used by kernels.
pub fn quantize_f32(x: f32, scale: f32, zero_point: i8) -> i8 {
    let q = libm::roundf(x / scale) + zero_point as f32;
    if q.is_nan() {
        return zero_point;
    }
    q.clamp(-128.0, 127.0) as i8
}

/// Dequantizes: `scale · (q − zp)`. For model outputs; not used by kernels.
pub fn dequantize_i8(q: i8, scale: f32, zero_point: i8) -> f32 {
    scale * (q as i32 - zero_point as i32) as f32
}

/// Quantizes a slice of reals into `out` (same length).
///
/// # Errors
///
/// [`Error::LengthMismatch`] if the lengths differ.
pub fn quantize_slice(x: &[f32], scale: f32, zero_point: i8, out: &mut [i8]) -> Result<()> {
    if x.len() != out.len() {
        return Err(Error::LengthMismatch { expected: x.len(), actual: out.len() });
    }
    for (o, &v) in out.iter_mut().zip(x) {
        *o = quantize_f32(v, scale, zero_point);
    }
    Ok(())
}

/// Quantizes 8-bit pixels (0–255) whose real value is `p · pixel_scale` (for example
/// `1.0 / 255.0`) straight from a camera or a stored image.
///
/// # Errors
///
/// [`Error::LengthMismatch`] if the lengths differ.
pub fn quantize_pixels(pixels: &[u8], pixel_scale: f32, scale: f32, zero_point: i8, out: &mut [i8]) -> Result<()> {
    if pixels.len() != out.len() {
        return Err(Error::LengthMismatch { expected: pixels.len(), actual: out.len() });
    }
    for (o, &p) in out.iter_mut().zip(pixels) {
        *o = quantize_f32(p as f32 * pixel_scale, scale, zero_point);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounded_high_mul_parts_equals_the_64_bit_product() {
        let edges = [
            i32::MIN,
            i32::MIN + 1,
            -(1 << 30),
            -65_536,
            -65_535,
            -32_768,
            -1,
            0,
            1,
            0xffff,
            0x10000,
            1 << 30,
            i32::MAX,
        ];
        let mut seed = 0x2545_f491u32;
        let mut vals = [0i32; 13 + 1_000];
        vals[..13].copy_from_slice(&edges);
        for v in &mut vals[13..] {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            *v = seed as i32;
        }
        let n = if cfg!(miri) { 40 } else { vals.len() };
        for &a in &vals[..n] {
            for &b in &vals[..n] {
                let want = ((a as i64 * b as i64 + (1 << 30)) >> 31) as i32;
                assert_eq!(rounded_high_mul_parts(a, b), want, "{a} · {b}");
            }
        }
    }

    #[test]
    fn channel_requant_equals_requantize() {
        let accs = [i32::MIN, i32::MIN + 1, -(1 << 30), -65_793 * 255, -129, -1, 0, 1, 2, 127, 1 << 20, i32::MAX];
        let mults = [0, 1, 1 << 30, (1 << 30) + 12_345, i32::MAX - 1, i32::MAX];
        let adds = [0, 1, -1, i32::MIN, i32::MAX, 77_777];
        let acts =
            [ActivationRange::NONE, ActivationRange { min: -128, max: -128 }, ActivationRange { min: -5, max: 9 }];
        let mut seed = 0x9e37_79b9u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as i32
        };
        // Every shift natively; under Miri (about a thousand times slower) the boundaries only.
        let boundaries = [-40, -31, -30, -1, 0, 1, 30, 31, 40];
        let mut all = [0i32; 81];
        for (k, v) in all.iter_mut().enumerate() {
            *v = k as i32 - 40;
        }
        for &shift in if cfg!(miri) { &boundaries[..] } else { &all[..] } {
            for &m in &mults {
                for &add in &adds {
                    let q = ChannelRequant::new(add, m, shift, 0);
                    for acc in accs.iter().copied().chain((0..if cfg!(miri) { 2 } else { 40 }).map(|_| next())) {
                        for zp in [-128i8, -3, 0, 127] {
                            for act in acts {
                                let want = requantize(acc.wrapping_add(add), m, shift, zp, act);
                                assert_eq!(
                                    q.apply(acc, zp, act),
                                    want,
                                    "acc {acc} add {add} m {m} shift {shift} zp {zp}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    /// The assembly's short requantization (`requant.s`, modelled by `apply_short`) against the
    /// reference for every shift and multiplier class, at accumulators on and next to the
    /// largest `short_ok` admits, and `short_ok` refusing the first bound beyond it.
    #[test]
    fn short_requant_equals_requantize_wherever_short_ok_admits_it() {
        let mults = [0, 1, 2, 3, 12_345, (1 << 30) - 1, 1 << 30, (1 << 30) + 12_345, i32::MAX - 1, i32::MAX];
        let adds = [0, 1, -1, 100_000, -100_000, (1 << 29) - 1, -(1 << 29), i32::MIN, i32::MAX];
        let mut seed = 0x1234_5679u32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        let mut admitted = 0u32;
        let shifts: &[i32] = if cfg!(miri) { &[-31, -1, 0, 1, 29] } else { &[0; 0] };
        let all: [i32; 71] = core::array::from_fn(|k| k as i32 - 40);
        for &shift in if cfg!(miri) { shifts } else { &all[..] } {
            for &m in &mults {
                for &add in &adds {
                    let zp = [-128i8, 0, 127][next() as usize % 3];
                    let q = ChannelRequant::new(add, m, shift, zp);
                    // The largest bound admitted (binary search over u32), then accumulators
                    // at ±bound, near it, and random ones inside it.
                    let (mut lo, mut hi) = (0u64, 1u64 << 32);
                    while hi - lo > 1 {
                        let mid = (lo + hi) / 2;
                        if q.short_ok(mid as u32) {
                            lo = mid;
                        } else {
                            hi = mid;
                        }
                    }
                    if !q.short_ok(lo as u32) {
                        continue;
                    }
                    admitted += 1;
                    let bound = lo as i64;
                    if hi < 1 << 32 {
                        assert!(!q.short_ok(hi as u32));
                        // Just beyond the bound the doubled value no longer fits.
                        let reach = hi as i64 + add.unsigned_abs() as i64;
                        assert!(reach << q.lsl >= 1 << 31 || q.lsl >= 32 || q.right > 22);
                    }
                    let edge = [bound, bound - 1, -bound, 1 - bound, 0, 1, -1, bound / 2, -bound / 3];
                    let randoms = (0..if cfg!(miri) { 2 } else { 24 })
                        .map(|_| (next() as i64 % (bound + 1)) * if next() & 1 == 0 { 1 } else { -1 });
                    for acc in edge.into_iter().chain(randoms).filter(|a| a.abs() <= bound) {
                        let acc = acc as i32;
                        let want = multiply_by_quantized_multiplier(acc.wrapping_add(add), m, shift) + zp as i32;
                        assert_eq!(q.apply_short(acc), want, "acc {acc} add {add} m {m} shift {shift} zp {zp}");
                    }
                }
            }
        }
        assert!(admitted > 100, "only {admitted} channels admitted");
    }

    /// `requantize_short` against `requantize` for every shift in range, multipliers of every
    /// class, accumulators at the limits and at the edge of the short route's test
    /// (`±2^(30−left)` and its neighbours), every zero point class and clamps.
    #[test]
    fn requantize_short_equals_requantize() {
        let mults = [0, 1, 12_345, (1 << 30) - 1, 1 << 30, (1 << 30) + 12_345, i32::MAX - 1, i32::MAX];
        let acts =
            [ActivationRange::NONE, ActivationRange { min: -128, max: -128 }, ActivationRange { min: -5, max: 9 }];
        let mut seed = 0x0bad_5eedu32;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed as i32
        };
        let shifts: &[i32] = &[-31, -23, -22, -1, 0, 1, 29, 30];
        let all: [i32; 62] = core::array::from_fn(|k| k as i32 - 31);
        for &shift in if cfg!(miri) { shifts } else { &all[..] } {
            let edge = 1i32.checked_shl(30 - shift.max(0) as u32).unwrap_or(i32::MAX);
            let accs = [i32::MIN, i32::MIN + 1, -edge - 1, -edge, 1 - edge, -1, 0, 1, edge - 1, edge, i32::MAX];
            for &m in &mults {
                for acc in
                    accs.iter().copied().chain((0..if cfg!(miri) { 2 } else { 30 }).map(|_| next() >> (next() & 31)))
                {
                    for zp in [-128i8, -3, 0, 127] {
                        for act in acts {
                            assert_eq!(
                                requantize_short(acc, m, shift, zp, act),
                                requantize(acc, m, shift, zp, act),
                                "acc {acc} m {m} shift {shift} zp {zp}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn srdhm_matches_definition() {
        assert_eq!(saturating_rounding_doubling_high_mul(i32::MIN, i32::MIN), i32::MAX);
        assert_eq!(saturating_rounding_doubling_high_mul(1 << 30, 1 << 30), 1 << 29);
        assert_eq!(saturating_rounding_doubling_high_mul(-3, 1 << 30), -1); // -1.5 -> -2? nudged
    }

    #[test]
    fn srdhm_equals_gemmlowps_nudged_truncating_division() {
        let nudged = |a: i32, b: i32| -> i32 {
            if a == i32::MIN && b == i32::MIN {
                return i32::MAX;
            }
            let ab = a as i64 * b as i64;
            let nudge: i64 = if ab >= 0 { 1 << 30 } else { 1 - (1 << 30) };
            ((ab + nudge) / (1i64 << 31)) as i32
        };
        let edges = [
            i32::MIN,
            i32::MIN + 1,
            -(1 << 30),
            -3,
            -2,
            -1,
            0,
            1,
            2,
            3,
            1 << 30,
            (1 << 30) + 1,
            i32::MAX - 1,
            i32::MAX,
        ];
        let mut s = 0x2545_F491_4F6C_DD1Du64;
        let mut values = [0i32; 4096];
        for (i, v) in values.iter_mut().enumerate() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            *v = if i % 2 == 0 { s as i32 } else { (s >> 40) as i32 - (1 << 23) };
        }
        let n = if cfg!(miri) { 40 } else { values.len() };
        for &a in edges.iter().chain(&values[..n]) {
            for &b in edges.iter().chain(&values[..64]) {
                assert_eq!(saturating_rounding_doubling_high_mul(a, b), nudged(a, b), "{a} · {b}");
            }
        }
    }

    #[test]
    fn rdbpot_rounds_half_away() {
        assert_eq!(rounding_divide_by_pot(5, 1), 3);
        assert_eq!(rounding_divide_by_pot(-5, 1), -3);
        assert_eq!(rounding_divide_by_pot(4, 1), 2);
        assert_eq!(rounding_divide_by_pot(-7, 2), -2);
        assert_eq!(rounding_divide_by_pot(-6, 2), -2);
        assert_eq!(rounding_divide_by_pot(i32::MIN, 31), -1);
    }

    #[test]
    fn quantize_multiplier_matches_tflite() {
        assert_eq!(quantize_multiplier(0.5), Requant { multiplier: 1 << 30, shift: 0 });
        assert_eq!(quantize_multiplier(1.0), Requant { multiplier: 1 << 30, shift: 1 });
        assert_eq!(quantize_multiplier(0.0), Requant { multiplier: 0, shift: 0 });
        assert_eq!(quantize_multiplier(1e-12), Requant { multiplier: 0, shift: 0 });
        // Rounds up to 2^31 and renormalises.
        let r = quantize_multiplier(0.999_999_999_9);
        assert_eq!(r, Requant { multiplier: 1 << 30, shift: 1 });
        let r = quantize_multiplier(0.003_921_568_627_45);
        let back = r.multiplier as f64 * 2f64.powi(r.shift - 31);
        assert!((back - 0.003_921_568_627_45).abs() < 1e-11);
    }

    #[test]
    fn mbqm_scales() {
        let r = quantize_multiplier(0.25);
        assert_eq!(r.apply(100), 25);
        assert_eq!(r.apply(-102), -26); // -25.5 rounds away
        let r = quantize_multiplier(3.0);
        assert_eq!(r.apply(7), 21);
    }

    #[test]
    fn quantize_roundtrip() {
        assert_eq!(quantize_f32(0.5, 0.25, 3), 5);
        assert_eq!(quantize_f32(-0.375, 0.25, 0), -2); // -1.5 away from zero
        assert_eq!(quantize_f32(1e9, 0.1, 0), 127);
        assert_eq!(quantize_f32(f32::NAN, 0.1, 7), 7);
        assert_eq!(dequantize_i8(5, 0.25, 3), 0.5);
    }
}
