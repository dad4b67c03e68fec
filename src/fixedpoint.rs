//! The few gemmlowp fixed-point routines TFLite's int8 softmax is built from.
//!
//! A value with `I` integer bits is an `i32` holding `real · 2^(31 − I)`. Multiplying values with
//! `I₁` and `I₂` integer bits gives `I₁ + I₂` integer bits; [`rescale`] moves between formats.
//! These are written out by hand (not generic) because softmax only needs formats 0, 2, 4, 5
//! and 12, and every step must round exactly as gemmlowp does.

use crate::quant::{rounding_divide_by_pot, saturating_rounding_doubling_high_mul as mul};

/// `x · 2^exponent` with saturation (left) or rounding (right): `SaturatingRoundingMultiplyByPOT`.
/// `exponent` is meaningful in `−31..=31`; outside it is clamped there, so the function is total.
#[inline(always)]
pub const fn saturating_rounding_multiply_by_pot(x: i32, exponent: i32) -> i32 {
    let exponent = if exponent < -31 {
        -31
    } else if exponent > 31 {
        31
    } else {
        exponent
    };
    if exponent == 0 {
        x
    } else if exponent < 0 {
        rounding_divide_by_pot(x, -exponent)
    } else {
        let threshold = (1i32 << (31 - exponent)) - 1;
        if x > threshold {
            i32::MAX
        } else if x < -threshold {
            i32::MIN
        } else {
            x << exponent
        }
    }
}

/// Converts a fixed-point value from `src_int_bits` to `dst_int_bits` integer bits.
#[inline(always)]
pub const fn rescale(x: i32, src_int_bits: i32, dst_int_bits: i32) -> i32 {
    saturating_rounding_multiply_by_pot(x, src_int_bits.saturating_sub(dst_int_bits))
}

/// `exp(a)` for `a ∈ [−1/4, 0)`, both in Q0.31: a fourth-order Taylor expansion around −1/8.
const fn exp_on_interval_between_negative_one_quarter_and_0_excl(a: i32) -> i32 {
    const CONSTANT_TERM: i32 = 1_895_147_668; // exp(-1/8) in Q0.31
    const ONE_OVER_3: i32 = 715_827_883; // 1/3 in Q0.31
    let x = a.wrapping_add(1 << 28); // + 1/8
    let x2 = mul(x, x);
    let x3 = mul(x2, x);
    let x4 = mul(x2, x2);
    let x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2);
    let poly = saturating_rounding_multiply_by_pot(mul(x4_over_4.wrapping_add(x3), ONE_OVER_3).wrapping_add(x2), -1);
    CONSTANT_TERM.wrapping_add(mul(CONSTANT_TERM, x.wrapping_add(poly)))
}

/// `exp(a)` for `a ≤ 0` given with `int_bits` integer bits; result in Q0.31
/// (gemmlowp's `exp_on_negative_values`).
///
/// The domain is `a ≤ 0` and `int_bits` in `0..=29`; `int_bits` outside is clamped there and a
/// positive `a` gives an unspecified value, never a panic.
pub const fn exp_on_negative_values(a: i32, int_bits: i32) -> i32 {
    let int_bits = if int_bits < 0 {
        0
    } else if int_bits > 29 {
        29
    } else {
        int_bits
    };
    let frac_bits = 31 - int_bits;
    let one_quarter = 1i32 << (frac_bits - 2);
    let mask = one_quarter - 1;
    let a_mod_quarter_minus_one_quarter = (a & mask).wrapping_sub(one_quarter);
    let mut result =
        exp_on_interval_between_negative_one_quarter_and_0_excl(rescale(a_mod_quarter_minus_one_quarter, int_bits, 0));
    let remainder = a_mod_quarter_minus_one_quarter.wrapping_sub(a);
    // exp(-2^k) in Q0.31 for k = -2..=4.
    const BARREL: [(i32, i32); 7] = [
        (-2, 1_672_461_947),
        (-1, 1_302_514_674),
        (0, 790_015_084),
        (1, 290_630_308),
        (2, 39_332_535),
        (3, 720_401),
        (4, 242),
    ];
    let mut i = 0;
    while i < BARREL.len() {
        let (exponent, multiplier) = BARREL[i];
        if int_bits > exponent {
            let bit = frac_bits + exponent;
            if remainder & (1 << bit) != 0 {
                result = mul(result, multiplier);
            }
        }
        i += 1;
    }
    if int_bits > 5 {
        let clamp = -(1i32 << (36 - int_bits)); // -32.0
        if a < clamp {
            result = 0;
        }
    }
    if a == 0 {
        result = i32::MAX;
    }
    result
}

/// `(a + b) / 2` rounded half away from zero, without overflow (gemmlowp's `RoundingHalfSum`).
const fn rounding_half_sum(a: i32, b: i32) -> i32 {
    let sum = a as i64 + b as i64;
    let sign = if sum >= 0 { 1 } else { -1 };
    ((sum + sign) / 2) as i32
}

/// `2 / (1 + x)` for `x ∈ [0, 1)` in Q2.29 by three Newton–Raphson steps on the half
/// denominator (the shared core of gemmlowp's `one_over_one_plus_x_for_x_in_0_1` and
/// `one_minus_x_over_one_plus_x_for_x_in_0_1`).
const fn two_over_one_plus_x(a: i32) -> i32 {
    let half_denominator = rounding_half_sum(a, i32::MAX); // Q0.31
    const C48_OVER_17: i32 = 1_515_870_810; // Q2.29
    const NEG_C32_OVER_17: i32 = -1_010_580_540; // Q2.29
    const ONE_Q2: i32 = 1 << 29;
    let mut x = C48_OVER_17.wrapping_add(mul(half_denominator, NEG_C32_OVER_17)); // Q2
    let mut i = 0;
    while i < 3 {
        let half_denominator_times_x = mul(half_denominator, x); // Q2
        let one_minus = ONE_Q2.wrapping_sub(half_denominator_times_x); // Q2
        x = x.wrapping_add(rescale(mul(x, one_minus), 4, 2));
        i += 1;
    }
    x
}

/// `1 / (1 + x)` for `x ∈ [0, 1)` in Q0.31 by three Newton–Raphson steps
/// (gemmlowp's `one_over_one_plus_x_for_x_in_0_1`).
pub const fn one_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    // ExactMulByPot<-1> reinterprets Q2 as Q1, then rescale to Q0.
    rescale(two_over_one_plus_x(a), 1, 0)
}

/// `(1 − x) / (1 + x)` for `x ∈ [0, 1)` in Q0.31 (gemmlowp's
/// `one_minus_x_over_one_plus_x_for_x_in_0_1`).
pub const fn one_minus_x_over_one_plus_x_for_x_in_0_1(a: i32) -> i32 {
    rescale(two_over_one_plus_x(a).wrapping_sub(1 << 29), 2, 0)
}

/// The logistic function `1 / (1 + e^−a)` of `a` with `int_bits` integer bits, in Q0.31
/// (gemmlowp's `logistic`: ½ at zero, `One − f(|a|)` for negative `a`, where `One` is the
/// largest Q0.31 value). `a` must not be `i32::MIN`; it is treated as `−i32::MAX`.
pub const fn logistic(a: i32, int_bits: i32) -> i32 {
    if a == 0 {
        return 1 << 30;
    }
    let abs = if a > 0 {
        a
    } else if a == i32::MIN {
        i32::MAX
    } else {
        -a
    };
    let positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(-abs, int_bits));
    if a > 0 {
        positive
    } else {
        i32::MAX.wrapping_sub(positive)
    }
}

/// `tanh(a)` of `a` with `int_bits` integer bits, in Q0.31 (gemmlowp's `tanh`: zero at zero,
/// odd). `a` must not be `i32::MIN`; it is treated as `−i32::MAX`.
pub const fn tanh(a: i32, int_bits: i32) -> i32 {
    if a == 0 {
        return 0;
    }
    let n = if a == i32::MIN {
        -i32::MAX
    } else if a < 0 {
        a
    } else {
        -a
    }; // −|a|
       // exp(2n): ExactMulByPot<1> only adds an integer bit.
    let t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, int_bits + 1));
    if a < 0 {
        t.wrapping_neg()
    } else {
        t
    }
}

/// The reciprocal of a positive fixed-point value with `int_bits` integer bits, as a Q0.31
/// mantissa and the number of bits it lies over one (TFLite's `GetReciprocal`).
pub const fn reciprocal(x: i32, int_bits: i32) -> (i32, i32) {
    let headroom_plus_one = (x as u32).leading_zeros() as i32;
    let num_bits_over_unit = int_bits.saturating_sub(headroom_plus_one);
    let shifted_sum_minus_one = ((x as u32).wrapping_shl(headroom_plus_one as u32)).wrapping_sub(1u32 << 31) as i32;
    (one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(x: f64, int_bits: i32) -> i32 {
        (x * 2f64.powi(31 - int_bits)).round() as i32
    }

    #[test]
    fn barrel_constants_are_exp_of_powers_of_two() {
        for (k, m) in [
            (-2, 1_672_461_947),
            (-1, 1_302_514_674),
            (0, 790_015_084),
            (1, 290_630_308),
            (2, 39_332_535),
            (3, 720_401),
            (4, 242),
        ] {
            assert_eq!(q((-(2f64.powi(k))).exp(), 0), m, "exp(-2^{k})");
        }
        assert_eq!(q((-0.125f64).exp(), 0), 1_895_147_668);
        assert_eq!(q(48.0 / 17.0, 2), 1_515_870_810);
        assert_eq!(q(-32.0 / 17.0, 2), -1_010_580_540);
    }

    #[test]
    fn exp_is_accurate() {
        for i in 0..2000 {
            let x = -(i as f64) * 0.0157;
            let r = exp_on_negative_values(q(x, 5), 5) as f64 / 2f64.powi(31);
            assert!((r - x.exp()).abs() < 2e-6, "exp({x}) = {r}");
        }
        assert_eq!(exp_on_negative_values(0, 5), i32::MAX);
    }

    #[test]
    fn reciprocal_is_accurate() {
        for i in 1..1000 {
            let v = i as f64 * 0.37;
            let (m, bits) = reciprocal(q(v, 12), 12);
            let r = m as f64 / 2f64.powi(31) / 2f64.powi(bits);
            assert!((r - 1.0 / v).abs() / (1.0 / v) < 1e-5, "1/{v} = {r}");
        }
    }
}
