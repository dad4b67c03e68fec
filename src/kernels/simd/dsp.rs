//! The DSP extension's instructions through `asm!` (stable Rust has no intrinsics for them).
//! Each block is one register-to-register instruction with no memory access, no stack use and
//! no flags read, or a call of an assembly loop.
#![allow(unsafe_code)]

use core::arch::asm;

/// One DSP instruction. On Armv8-M Mainline the assembler only accepts it for a CPU it knows has
/// the optional extension, so the template switches it to Armv7E-M (same T32 encoding) for the
/// one instruction and back.
macro_rules! dsp {
    ([$($insn:literal),+], $($ops:tt)*) => {{
        #[cfg(microcnn_v8m)]
        asm!(".arch armv7e-m", $($insn,)+ ".arch armv8-m.main", $($ops)*);
        #[cfg(not(microcnn_v8m))]
        asm!($($insn),+, $($ops)*);
    }};
}

/// `SXTB16`: see [`super::portable::sxtb16`].
#[inline(always)]
pub fn sxtb16(x: u32) -> u32 {
    let r: u32;
    // SAFETY: one register-only instruction of the DSP extension, which this build targets
    // (`cfg(microcnn_dsp)`); it reads and writes no memory and no flags.
    unsafe {
        dsp!(["sxtb16 {r}, {x}"], r = lateout(reg) r, x = in(reg) x, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// `SXTB16 …, ROR #8`: see [`super::portable::sxtb16_ror8`].
#[inline(always)]
pub fn sxtb16_ror8(x: u32) -> u32 {
    let r: u32;
    // SAFETY: as in `sxtb16`.
    unsafe {
        dsp!(["sxtb16 {r}, {x}, ror #8"], r = lateout(reg) r, x = in(reg) x, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// `SXTAB16`: see [`super::portable::sxtab16`].
#[inline(always)]
pub fn sxtab16(a: u32, x: u32) -> u32 {
    let r: u32;
    // SAFETY: as in `sxtb16`.
    unsafe {
        dsp!(["sxtab16 {r}, {a}, {x}"], r = lateout(reg) r, a = in(reg) a, x = in(reg) x, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// `SXTAB16 …, ROR #8`: see [`super::portable::sxtab16_ror8`].
#[inline(always)]
pub fn sxtab16_ror8(a: u32, x: u32) -> u32 {
    let r: u32;
    // SAFETY: as in `sxtb16`.
    unsafe {
        dsp!(["sxtab16 {r}, {a}, {x}, ror #8"], r = lateout(reg) r, a = in(reg) a, x = in(reg) x, options(pure, nomem, nostack, preserves_flags))
    };
    r
}

/// `SSUB8` + `SEL`: see [`super::portable::max_i8x4`]. One block, because `SEL` reads the
/// GE flags `SSUB8` sets.
#[inline(always)]
pub fn max_i8x4(a: u32, b: u32) -> u32 {
    let r: u32;
    // SAFETY: two register-only DSP instructions; they write the APSR.GE flags, which the block
    // does not claim to preserve, and touch no memory.
    unsafe {
        dsp!(["ssub8 {r}, {a}, {b}", "sel {r}, {a}, {b}"], r = out(reg) r, a = in(reg) a, b = in(reg) b, options(pure, nomem, nostack))
    };
    r
}

/// `SMLABB`: see [`super::portable::smlabb`] (these are Armv7E-M DSP instructions too).
#[inline(always)]
pub fn smlabb(a: u32, b: u32, acc: i32) -> i32 {
    let r: i32;
    // SAFETY: as in `sxtb16`; the Q flag it may set is never read.
    unsafe {
        dsp!(["smlabb {r}, {a}, {b}, {acc}"], r = lateout(reg) r, a = in(reg) a, b = in(reg) b, acc = in(reg) acc, options(pure, nomem, nostack))
    };
    r
}

/// `SMLATT`: see [`super::portable::smlatt`].
#[inline(always)]
pub fn smlatt(a: u32, b: u32, acc: i32) -> i32 {
    let r: i32;
    // SAFETY: as in `sxtb16`; the Q flag it may set is never read.
    unsafe {
        dsp!(["smlatt {r}, {a}, {b}, {acc}"], r = lateout(reg) r, a = in(reg) a, b = in(reg) b, acc = in(reg) acc, options(pure, nomem, nostack))
    };
    r
}

/// `SMLAD`: see [`super::portable::smlad`]. (It sets the sticky Q flag on overflow, which
/// nothing reads; the kernels' headroom bound rules overflow out anyway.)
#[inline(always)]
pub fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    let r: i32;
    // SAFETY: as in `sxtb16`; the Q flag it may set is never read (`preserves_flags` would
    // be wrong, so it is not claimed).
    unsafe {
        dsp!(["smlad {r}, {a}, {b}, {acc}"], r = lateout(reg) r, a = in(reg) a, b = in(reg) b, acc = in(reg) acc, options(pure, nomem, nostack))
    };
    r
}

// The 2×2 block's inner loop needs 14 registers (four accumulators, two pointers, a stride, a
// counter, four unpacked input halves and two unpacked weight halves); `asm!` blocks may use
// only 12, so it is a whole function in assembly that saves and restores what it uses (AAPCS).
//
// microcnn_dot2x2_s8(w, x, quads, stride, out):
//   r0 = w: row 0 (row 1 is `stride` bytes further), r1 = x: column 0 (column 1 is
//   `COLUMN_GAP` bytes further), r2 = quads ≥ 1 (four taps each), r3 = stride, [sp] = out:
//   out[0..4] = [Σ w0·x0, Σ w0·x1, Σ w1·x0, Σ w1·x1] over 4·quads taps (raw int8 products).
// Per four taps (16 MACs): 3 loads, 6 SXTB16, 8 SMLAD, 3 others — 1.375 instructions per MAC.
#[cfg(not(microcnn_v8m))]
core::arch::global_asm!(include_str!("dot2x2.s"), include_str!("dense.s"), options(raw));
#[cfg(microcnn_v8m)]
core::arch::global_asm!(
    ".arch armv7e-m",
    include_str!("dot2x2.s"),
    include_str!("dense.s"),
    ".arch armv8-m.main",
    options(raw)
);

extern "C" {
    fn microcnn_dot2x2_s8(w: *const i8, x: *const i8, quads: u32, stride: u32, out: *mut i32);
    fn microcnn_dense_rows_s8(args: *const DenseArgs) -> u32;
}

/// Bytes between the two columns [`dot2x2`] reads.
pub const COLUMN_GAP: usize = 512;

/// `[Σ w0·x0, Σ w0·x1, Σ w1·x0, Σ w1·x1]` over the first `4·quads` taps, where `w0 = w[..]`,
/// `w1 = w[stride..]`, `x0 = x[..]`, `x1 = x[COLUMN_GAP..]`; `None` if a slice is too short
/// for that (the caller then uses the portable loop).
#[inline(always)]
pub fn dot2x2(w: &[i8], stride: usize, x: &[i8], quads: usize) -> Option<[i32; 4]> {
    super::dot2x2_taps(w, stride, x, quads, COLUMN_GAP)?;
    let mut out = [0i32; 4];
    // Unaligned word loads are allowed on the cores this is built for (Armv7E-M, Armv8-M Main).
    // SAFETY: reads `w[0..4q]`, `w[stride..][..4q]`, `x[0..4q]`, `x[COLUMN_GAP..][..4q]` (bounds
    // checked above), writes `out`, and saves/restores r4–r11 and lr as the AAPCS requires.
    unsafe { microcnn_dot2x2_s8(w.as_ptr(), x.as_ptr(), quads as u32, stride as u32, out.as_mut_ptr()) };
    Some(out)
}

/// The routine's arguments (layout documented in `dense.s`).
#[repr(C)]
struct DenseArgs {
    w: *const i8,
    x: *const i8,
    quads: u32,
    stride: u32,
    rows: u32,
    acc: *mut i32,
    init: *const i32,
    pairs: *mut u32,
    offset: u32,
    out: *mut i8,
    quant: *const crate::Requant,
    step: u32,
    zp2: i32,
    lo: i32,
    hi: i32,
}

// The routine reads a `Requant` as (multiplier, shift) with one LDRD.
const _: () = {
    assert!(core::mem::size_of::<crate::Requant>() == 8);
    assert!(core::mem::offset_of!(crate::Requant, multiplier) == 0);
    assert!(core::mem::offset_of!(crate::Requant, shift) == 4);
};

/// The dense layer for the rows `w_r = w[r·stride..]`, `r < rows`, over the `4·⌊x.len()/4⌋`
/// taps of `x`: `Σ_r = Σ w_r·(x + offset)`, requantized into `o` ([`super::DenseOut`]);
/// `false`, with nothing written, if `dense_rows_fit` refuses the slices (too short,
/// `rows` not 1 to [`super::DENSE_ROWS`], rows not word-aligned). One assembly call per
/// [`super::DENSE_CHUNK`] taps (`dense.s`): the sums start at the biases, the piece is
/// unpacked once into 16-bit pairs with the offset added, then two rows at a time, eight taps
/// per step (one `LDM` of pairs, per row one `LDRD` of weights, four `SXTB16` and four
/// `SMLAD`: 1.19 instructions per MAC); the last call requantizes by the short route wherever
/// it is exact, and if any output is not (a huge accumulator or shift) every row is
/// requantized here by [`crate::quant::requantize`].
#[inline(always)]
pub fn dense_rows(w: &[i8], stride: usize, rows: usize, x: &[i8], offset: i32, o: super::DenseOut<'_>) -> bool {
    use core::mem::MaybeUninit;
    if !super::dense_rows_fit(w, stride, rows, x, &o) {
        return false;
    }
    // Both written by the routine before anything reads them (uninitialised so that no clear
    // precedes every call: measured 154 + 400 instructions on a 256→10 layer).
    let mut acc = [const { MaybeUninit::<i32>::uninit() }; super::DENSE_ROWS];
    let mut pairs = [const { MaybeUninit::<u32>::uninit() }; super::DENSE_CHUNK / 2];
    let taps = x.len() / 4 * 4;
    let sums = acc.as_mut_ptr().cast::<i32>();
    let mut undone = 0;
    let mut t0 = 0;
    while t0 < taps {
        let quads = (taps - t0).min(super::DENSE_CHUNK) / 4;
        let last = t0 + 4 * quads == taps;
        let args = DenseArgs {
            w: w[t0..].as_ptr(),
            x: x[t0..].as_ptr(),
            quads: quads as u32,
            stride: stride as u32,
            rows: rows as u32,
            acc: sums,
            init: if t0 == 0 { o.bias.as_ptr() } else { sums },
            pairs: pairs.as_mut_ptr().cast(),
            offset: super::pair(offset),
            out: if last { o.out.as_mut_ptr() } else { core::ptr::null_mut() },
            quant: o.quant.as_ptr(),
            step: if o.quant.len() == 1 { 0 } else { 8 },
            zp2: 2 * o.zp as i32 + 1,
            lo: o.act.min as i32,
            hi: o.act.max as i32,
        };
        // The routine reads `w[t0 + r·stride..][..4q]` for r < rows (word-aligned: `w` and
        // `stride` are multiples of 4, and so is t0) and `x[t0..][..4q]` (unaligned word loads,
        // allowed on these cores), writes and then reads `pairs[..2q]` (2q ≤ DENSE_CHUNK/2),
        // reads `init[..rows]` (the biases, or `acc` after the first piece, which the first call
        // wrote) and writes `acc[..rows]` (rows ≤ DENSE_ROWS), and on the last piece reads
        // `quant[..rows]` (or `quant[0]` with step 0) and writes `out[..rows]`; `pairs`, `acc`,
        // the biases and `quant` are word-aligned for its LDRD, LDM and STRD; it saves/restores
        // r4–r11 and lr and keeps the stack 8-byte aligned (AAPCS).
        // SAFETY: every range above is in bounds by `dense_rows_fit` (which also keeps every
        // count and `4·stride` within 32 bits), and `args` outlives the call.
        undone = unsafe { microcnn_dense_rows_s8(&args) };
        t0 += 4 * quads;
    }
    if undone != 0 {
        // SAFETY: the routine's first call (t0 = 0; taps ≥ 4 by `dense_rows_fit`, so there is
        // one) wrote `acc[..rows]`, and `MaybeUninit<i32>` has `i32`'s layout.
        let acc = unsafe { core::slice::from_raw_parts(sums, rows) };
        super::requantize_rows(o.out, acc, o.quant, o.zp, o.act);
    }
    true
}
