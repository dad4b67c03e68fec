//! The DSP instructions in plain Rust: the specification of [`super`]'s functions, and their
//! implementation on cores without the extension and on the host.

#[inline(always)]
const fn lo(x: u32) -> i32 {
    x as u16 as i16 as i32
}

#[inline(always)]
const fn hi(x: u32) -> i32 {
    (x >> 16) as u16 as i16 as i32
}

#[inline(always)]
const fn pack(l: i32, h: i32) -> u32 {
    (l as u32 & 0xffff) | ((h as u32) << 16)
}

/// `SXTB16`: bytes 0 and 2 of `x`, sign-extended to the two halfwords.
#[inline(always)]
pub const fn sxtb16(x: u32) -> u32 {
    pack(x as u8 as i8 as i32, (x >> 16) as u8 as i8 as i32)
}

/// `SXTB16 …, ROR #8`: bytes 1 and 3 of `x`, sign-extended to the two halfwords.
#[inline(always)]
pub const fn sxtb16_ror8(x: u32) -> u32 {
    sxtb16(x.rotate_right(8))
}

/// `SXTAB16`: bytes 0 and 2 of `x`, sign-extended, added lane-wise (mod 2^16) to `a`'s halfwords.
#[inline(always)]
pub const fn sxtab16(a: u32, x: u32) -> u32 {
    let b = sxtb16(x);
    pack(lo(a).wrapping_add(lo(b)), hi(a).wrapping_add(hi(b)))
}

/// `SXTAB16 …, ROR #8`: as [`sxtab16`] with bytes 1 and 3.
#[inline(always)]
pub const fn sxtab16_ror8(a: u32, x: u32) -> u32 {
    sxtab16(a, x.rotate_right(8))
}

/// `SMLABB`: `acc + a.lo·b.lo` (wrapping).
#[inline(always)]
pub const fn smlabb(a: u32, b: u32, acc: i32) -> i32 {
    acc.wrapping_add(lo(a) * lo(b))
}

/// `SMLATT`: `acc + a.hi·b.hi` (wrapping).
#[inline(always)]
pub const fn smlatt(a: u32, b: u32, acc: i32) -> i32 {
    acc.wrapping_add(hi(a) * hi(b))
}

/// `SSUB8` then `SEL`: the lane-wise maximum of four signed bytes.
#[inline(always)]
pub const fn max_i8x4(a: u32, b: u32) -> u32 {
    let mut r = 0u32;
    let mut i = 0;
    while i < 4 {
        let (x, y) = ((a >> (8 * i)) as u8 as i8, (b >> (8 * i)) as u8 as i8);
        let m = if x >= y { x } else { y };
        r |= (m as u8 as u32) << (8 * i);
        i += 1;
    }
    r
}

/// [`max_i8x4`] in plain 32-bit arithmetic, without a branch or a byte access: for cores
/// without `SSUB8`/`SEL` (the Cortex-M3: 12 data-processing instructions per word of four
/// lanes, against a load, a compare and a select per byte).
///
/// With the sign bits flipped (`ua = a ^ H`, `ub = b ^ H`, `H = 0x80` in every lane) signed
/// order becomes unsigned order. In each lane `(ua | 0x80) − (ub & 0x7f)` lies in `1..=255`, so
/// no borrow crosses lanes and its bit 7 says whether `ua`'s low seven bits are at least
/// `ub`'s; `ua ≥ ub` when `ua`'s top bit is set and `ub`'s is not, or the top bits agree and
/// that bit is set. The lanes' bit 7 spreads to a byte mask, which picks `a` over `b`.
#[inline(always)]
pub const fn max_i8x4_swar(a: u32, b: u32) -> u32 {
    const H: u32 = 0x8080_8080;
    let (ua, ub) = (a ^ H, b ^ H);
    let low_ge = (ua | H).wrapping_sub(ub & !H);
    let differ = a ^ b;
    let ge = ((ua & !ub) | (!differ & low_ge)) & H;
    // 0x80 → 0x7f | 0x80 = 0xff per lane; no lane borrows from its neighbour.
    let mask = (ge - (ge >> 7)) | ge;
    b ^ (differ & mask)
}

/// `SMLAD`: `acc + a.lo·b.lo + a.hi·b.hi`, wrapping (the instruction only sets the Q flag).
#[inline(always)]
pub const fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    acc.wrapping_add((lo(a) * lo(b)).wrapping_add(hi(a) * hi(b)))
}

/// For each of `quads` groups of four channels (at `start + 4·q`), `step` folded from `init`
/// over a window of packed words — the word at `start + 4·q + r·row_step + t·col_step` for
/// `r < rows`, `t < cols`, in that order — and the result handed to `f(4·q, acc)`. Returns
/// `false`, and calls nothing, if the window is empty or does not lie inside `bytes`. The
/// specification (and the host's and the Cortex-M0's version) of `arm::fold_windows_x4`, which
/// checks the bounds once per window instead of once per word.
#[inline(always)]
pub fn fold_windows_x4<A: Copy>(
    bytes: &[i8],
    start: usize,
    (rows, row_step): (usize, usize),
    (cols, col_step): (usize, usize),
    quads: usize,
    (init, step): (A, impl Fn(A, u32) -> A),
    mut f: impl FnMut(usize, A),
) -> bool {
    if !super::window_fits(bytes.len(), start, (rows, row_step), (cols, col_step), quads) {
        return false;
    }
    for q in 0..quads {
        let mut acc = init;
        for r in 0..rows {
            for t in 0..cols {
                acc = step(acc, super::word(bytes, start + 4 * q + r * row_step + t * col_step));
            }
        }
        f(4 * q, acc);
    }
    true
}

/// For each of `quads` groups of four channels, the sums of its four byte lanes over a window
/// of packed words ([`fold_windows_x4`]), added with `SXTAB16` into `(even, odd)` 16-bit lanes
/// (lanes 0 and 2, lanes 1 and 3), each from 0, and handed to `f(4·q, even, odd)`. The lanes
/// wrap at 16 bits; the caller keeps `rows·cols ≤ 255` so they cannot.
#[inline(always)]
pub fn sum_windows_x4(
    bytes: &[i8],
    start: usize,
    rows: (usize, usize),
    cols: (usize, usize),
    quads: usize,
    mut f: impl FnMut(usize, u32, u32),
) -> bool {
    let step = |(even, odd): (u32, u32), v: u32| (super::sxtab16(even, v), super::sxtab16_ror8(odd, v));
    super::fold_windows_x4(bytes, start, rows, cols, quads, ((0, 0), step), |q, (even, odd)| f(q, even, odd))
}

/// Bytes between the two columns [`dot2x2`] reads.
pub const COLUMN_GAP: usize = 512;

/// `[Σ w0·x0, Σ w0·x1, Σ w1·x0, Σ w1·x1]` over the first `4·quads` taps, where `w0 = w[..]`,
/// `w1 = w[stride..]`, `x0 = x[..]`, `x1 = x[COLUMN_GAP..]`; `None` if a slice is too short.
/// (On DSP cores this is one hand-scheduled assembly loop.)
#[inline(always)]
pub fn dot2x2(w: &[i8], stride: usize, x: &[i8], quads: usize) -> Option<[i32; 4]> {
    let taps = super::dot2x2_taps(w, stride, x, quads, COLUMN_GAP)?;
    let (w0, w1) = (&w[..taps], &w[stride..stride + taps]);
    let (x0, x1) = (&x[..taps], &x[COLUMN_GAP..COLUMN_GAP + taps]);
    let mut a = [0i32; 4];
    if cfg!(microcnn_v6m) {
        // The Cortex-M0's eight low registers: packed words, four taps per load, spill less.
        let word = |c: &[i8]| u32::from_le_bytes([c[0] as u8, c[1] as u8, c[2] as u8, c[3] as u8]);
        for (((wa, wb), xa), xb) in
            w0.chunks_exact(4).zip(w1.chunks_exact(4)).zip(x0.chunks_exact(4)).zip(x1.chunks_exact(4))
        {
            let (xa, xb, wa, wb) = (word(xa), word(xb), word(wa), word(wb));
            let (xal, xah, xbl, xbh) = (sxtb16(xa), sxtb16_ror8(xa), sxtb16(xb), sxtb16_ror8(xb));
            let (wal, wah, wbl, wbh) = (sxtb16(wa), sxtb16_ror8(wa), sxtb16(wb), sxtb16_ror8(wb));
            a[0] = smlad(wah, xah, smlad(wal, xal, a[0]));
            a[1] = smlad(wah, xbh, smlad(wal, xbl, a[1]));
            a[2] = smlad(wbh, xah, smlad(wbl, xal, a[2]));
            a[3] = smlad(wbh, xbh, smlad(wbl, xbl, a[3]));
        }
        return Some(a);
    }
    // Elsewhere (the Cortex-M3, the host) plain byte loads and multiply-accumulates are quicker
    // than emulating the packed instructions.
    for (((&wa, &wb), &xa), &xb) in w0.iter().zip(w1).zip(x0).zip(x1) {
        let (wa, wb, xa, xb) = (wa as i32, wb as i32, xa as i32, xb as i32);
        a[0] += wa * xa;
        a[1] += wa * xb;
        a[2] += wb * xa;
        a[3] += wb * xb;
    }
    Some(a)
}

/// `[Σ w_r·(x − zp)]` for the four rows `w_r = w[r·stride..]` over the first `4·quads` taps of
/// `x`, with `offset = −zp`; `None` if a slice is too short. (One assembly loop on DSP cores.)
#[inline(always)]
pub fn dot4x1(w: &[i8], stride: usize, x: &[i8], quads: usize, offset: i32) -> Option<[i32; 4]> {
    let taps = super::dot4x1_taps(w, stride, x, quads)?;
    let mut a = [0i32; 4];
    for (r, acc) in a.iter_mut().enumerate() {
        let row = &w[r * stride..r * stride + taps];
        for (wv, xv) in row.iter().zip(&x[..taps]) {
            *acc += *wv as i32 * (*xv as i32 + offset);
        }
    }
    Some(a)
}

/// The dense layer for the rows `w_r = w[r·stride..]`, `r < rows`, over the `4·⌊x.len()/4⌋`
/// taps of `x`: `Σ_r = Σ w_r·(x + offset)`, requantized into `o` ([`super::DenseOut`]), the
/// way the DSP routine does it: the sums start at the biases, [`super::DENSE_CHUNK`] taps at a
/// time unpacked once into 16-bit pairs with the offset added (`SXTAB16`), then
/// `SXTB16`/`SMLAD` per word of weights (wrapping, as the reference's bias add), then the exact
/// requantization (the routine's short route gives the same bits: `requantize_short`, tested
/// against it on the host). `false`, with nothing
/// written, if a slice is too short or `rows` is not 1 to [`super::DENSE_ROWS`]
/// (`dense_rows_fit`).
#[inline(always)]
pub fn dense_rows(w: &[i8], stride: usize, rows: usize, x: &[i8], offset: i32, o: super::DenseOut<'_>) -> bool {
    if !super::dense_rows_fit(w, stride, rows, x, &o) {
        return false;
    }
    let mut acc = [0i32; super::DENSE_ROWS];
    acc[..rows].copy_from_slice(&o.bias[..rows]);
    let mut pairs = [0u32; super::DENSE_CHUNK / 2];
    let offp = super::pair(offset);
    let taps = x.len() / 4 * 4;
    for t0 in (0..taps).step_by(super::DENSE_CHUNK) {
        let piece = &x[t0..taps.min(t0 + super::DENSE_CHUNK)];
        for (q, p) in piece.chunks_exact(4).zip(pairs.chunks_exact_mut(2)) {
            let v = super::word(q, 0);
            p[0] = sxtab16(offp, v);
            p[1] = sxtab16_ror8(offp, v);
        }
        for (r, a) in acc[..rows].iter_mut().enumerate() {
            let row = &w[r * stride + t0..][..piece.len()];
            for (q, p) in row.chunks_exact(4).zip(pairs.chunks_exact(2)) {
                let v = super::word(q, 0);
                *a = smlad(sxtb16_ror8(v), p[1], smlad(sxtb16(v), p[0], *a));
            }
        }
    }
    super::requantize_rows(o.out, &acc[..rows], o.quant, o.zp, o.act);
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every pair of byte values in every lane (the other lanes pseudo-random), then random words.
    #[test]
    fn swar_max_equals_the_lane_definition() {
        let mut s = 0x2545_f491_u32;
        let mut next = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s
        };
        for x in 0..=255u32 {
            for y in 0..=255u32 {
                for lane in 0..4 {
                    let keep = !(0xff << (8 * lane));
                    let (a, b) = ((next() & keep) | (x << (8 * lane)), (next() & keep) | (y << (8 * lane)));
                    assert_eq!(max_i8x4_swar(a, b), max_i8x4(a, b), "{a:08x} {b:08x}");
                }
            }
        }
        for _ in 0..100_000 {
            let (a, b) = (next(), next());
            assert_eq!(max_i8x4_swar(a, b), max_i8x4(a, b), "{a:08x} {b:08x}");
        }
    }
}
