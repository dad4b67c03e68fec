//! The few SIMD instructions of the Armv7E-M / Armv8-M DSP extension the blocked kernels are
//! written with, as functions on packed words: `x` holds four `i8` lanes (byte 0 lowest) or
//! two `i16` lanes (halfword 0 lowest).
//!
//! On cores with the extension (`cfg(microcnn_dsp)`, see the crate docs) each is one
//! instruction through `core::arch::asm!` (`src/kernels/simd/dsp.rs`); everywhere else the same functions are
//! plain Rust ([`portable`]), so the blocked kernels built on them run — and are property-tested
//! and fuzzed — on the host, bit for bit as on the chip. The two implementations are checked
//! against each other lane by lane on the target (`firmware-examples`).

#[cfg(all(target_arch = "arm", microcnn_dsp))]
mod dsp;
#[cfg(all(target_arch = "arm", microcnn_dsp))]
pub use dsp::*;

#[cfg(all(target_arch = "arm", microcnn_armv7))]
pub(crate) mod arm;

#[cfg(all(target_arch = "arm", microcnn_v6m))]
pub(crate) mod v6m;

pub mod portable;
#[cfg(not(all(target_arch = "arm", microcnn_dsp)))]
pub use portable::*;
// Every build has the portable window sums; the window fold reads words unchecked on Armv7-M
// and later cores (one bounds check per window), checked elsewhere.
#[cfg(all(target_arch = "arm", microcnn_armv7))]
pub use arm::fold_windows_x4;
#[cfg(all(target_arch = "arm", microcnn_dsp))]
pub use portable::sum_windows_x4;

/// Marks a cold loop to stay rolled at opt-level 3 (see `arm::rolled`; nothing elsewhere).
#[inline(always)]
pub(crate) fn rolled() {
    #[cfg(all(target_arch = "arm", microcnn_armv7))]
    arm::rolled();
}

/// `n`, hidden from the optimiser: a loop bounded by it is not unrolled fully either (with
/// [`rolled`] in its body, not at all). For loops of a few fixed steps whose unrolled copies cost
/// more flash than their overhead costs time (see `arm::opaque`; `n` itself elsewhere).
#[inline(always)]
pub(crate) fn opaque(n: usize) -> usize {
    #[cfg(all(target_arch = "arm", microcnn_armv7))]
    return arm::opaque(n);
    #[cfg(not(all(target_arch = "arm", microcnn_armv7)))]
    n
}

/// Reads four bytes at `at` as a little-endian word (an unaligned `LDR` where the core allows).
#[inline(always)]
pub(crate) fn word(bytes: &[i8], at: usize) -> u32 {
    // One bounds check for all four bytes, so the compiler can merge them into one load.
    let b = &bytes[at..at + 4];
    u32::from_le_bytes([b[0] as u8, b[1] as u8, b[2] as u8, b[3] as u8])
}

/// One past the last byte a window of packed words reads (see `fold_windows_x4`): the last
/// tap's word of the last quad, `start + (rows−1)·row_step + (cols−1)·col_step + 4·quads`;
/// `None` if the window or `quads` is empty or the sum overflows.
#[inline(always)]
pub(crate) fn window_end(
    start: usize,
    (rows, row_step): (usize, usize),
    (cols, col_step): (usize, usize),
    quads: usize,
) -> Option<usize> {
    if quads == 0 {
        return None;
    }
    rows.checked_sub(1)?
        .checked_mul(row_step)?
        .checked_add(cols.checked_sub(1)?.checked_mul(col_step)?)?
        .checked_add(start)?
        .checked_add(quads.checked_mul(4)?)
}

/// Whether a window of packed words (see [`window_end`]) is non-empty and lies inside `len`
/// bytes: the one check both window folds make before they read.
#[inline(always)]
pub(crate) fn window_fits(len: usize, start: usize, rows: (usize, usize), cols: (usize, usize), quads: usize) -> bool {
    window_end(start, rows, cols, quads).is_some_and(|end| end <= len)
}

/// `offset` in both halfword lanes (for [`sxtab16`]).
#[inline(always)]
pub const fn pair(offset: i32) -> u32 {
    (offset as u32 & 0xffff) | ((offset as u32) << 16)
}

/// The taps `dot2x2` covers (`4·quads`) if its slices are long enough: `w` holds rows at 0 and
/// `stride` (0 reads one row twice), `x` columns at 0 and `COLUMN_GAP`. Shared by both
/// implementations.
#[inline(always)]
pub(crate) fn dot2x2_taps(w: &[i8], stride: usize, x: &[i8], quads: usize, gap: usize) -> Option<usize> {
    let taps = quads.checked_mul(4)?;
    let fits = quads > 0 && w.len() >= stride.checked_add(taps)? && x.len() >= gap.checked_add(taps)?;
    fits.then_some(taps)
}

/// The taps `dot4x1` covers (`4·quads`) if `w` holds four rows `stride` apart and `x` the column.
#[inline(always)]
pub(crate) fn dot4x1_taps(w: &[i8], stride: usize, x: &[i8], quads: usize) -> Option<usize> {
    let taps = quads.checked_mul(4)?;
    let fits = quads > 0 && stride >= taps && w.len() >= stride.checked_mul(3)?.checked_add(taps)? && x.len() >= taps;
    fits.then_some(taps)
}

/// Taps of the input vector [`dense_rows`] unpacks at a time: 512 16-bit pairs (1 KB of stack).
pub const DENSE_CHUNK: usize = 512;

/// Rows [`dense_rows`] takes at once (their sums, 256 bytes, are carried across the pieces).
pub const DENSE_ROWS: usize = 64;

/// Where [`dense_rows`] puts its rows and how it requantizes them: `out[r] =
/// requantize(Σ_r + bias[r], quant[r], zp, act)` (`quant` has one entry per row, or one for
/// every row). Each `Requant` must be in [`crate::Requant`]'s documented ranges (a multiplier
/// of at least 0, a shift in −31..=30), as the dense layer checks before it calls; outside
/// them the outputs are unspecified, never memory-unsafe.
pub struct DenseOut<'a> {
    /// One byte per row.
    pub out: &'a mut [i8],
    /// One multiplier per row, or one for all.
    pub quant: &'a [crate::Requant],
    /// One bias per row.
    pub bias: &'a [i32],
    /// Output zero point.
    pub zp: i8,
    /// Output clamp.
    pub act: crate::ActivationRange,
}

/// Whether [`dense_rows`] takes these slices: `rows` (1 to [`DENSE_ROWS`]) rows of
/// `taps = 4·⌊x.len()/4⌋ ≥ 4` weights `stride ≥ taps` bytes apart, word-aligned (the first row
/// at a multiple of 4 and, for more than one row, `stride` one too: the DSP routine loads them
/// with `LDRD`), with
/// `4·stride` fitting 32 bits, and `rows` outputs, biases and multipliers (or one multiplier).
/// Shared by both implementations, so the host takes the same paths as the chip.
#[inline(always)]
pub(crate) fn dense_rows_fit(w: &[i8], stride: usize, rows: usize, x: &[i8], o: &DenseOut<'_>) -> bool {
    let taps = x.len() / 4 * 4;
    let reach = rows.checked_sub(1).and_then(|r| r.checked_mul(stride)?.checked_add(taps));
    taps > 0
        && (1..=DENSE_ROWS).contains(&rows)
        && stride >= taps
        && (rows == 1 || stride % 4 == 0)
        && (w.as_ptr() as usize) % 4 == 0
        && reach.is_some_and(|e| e <= w.len())
        && stride.checked_mul(4).is_some_and(|v| u32::try_from(v).is_ok())
        && o.out.len() >= rows
        && o.bias.len() >= rows
        && (o.quant.len() == 1 || o.quant.len() >= rows)
}

/// `out[r] = requantize(acc[r], quant[r] (or quant[0] for all), zp, act)`: the exact route for
/// sums that already include the bias, out of line and shared (the DSP routine's rare fallback,
/// layers too narrow for it, and the host).
#[inline(never)]
pub(crate) fn requantize_rows(
    out: &mut [i8],
    acc: &[i32],
    quant: &[crate::Requant],
    zp: i8,
    act: crate::ActivationRange,
) {
    for (r, (o, &a)) in out.iter_mut().zip(acc).enumerate() {
        let q = quant.get(r).unwrap_or(&quant[0]);
        *o = crate::quant::requantize(a, q.multiplier, q.shift, zp, act);
    }
}
