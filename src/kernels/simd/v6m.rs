//! The four-rows-against-one-column dot product for Armv6-M (Cortex-M0/M0+/M1) as one Thumb-1
//! assembly loop (`src/kernels/simd/dot4x1_v6m.s`): byte loads, `MULS` and an `ADD` into a high
//! register per product — 3.3 to 3.6 instructions per MAC, where the packed-word arithmetic the
//! other blocked kernels are written in has to be emulated on this core (about 7). The dense
//! layer uses it with the input offset, the blocked convolution without (its zero-point term is
//! folded into the bias). Its specification is [`super::portable::dot4x1`]; `kernel_props` in
//! `firmware-examples/qemu` checks the kernels built on it against their references on the M0.
#![allow(unsafe_code)]

core::arch::global_asm!(include_str!("dot4x1_v6m.s"), options(raw));

extern "C" {
    fn microcnn_dot4x1_v6m_s8(w: *const i8, x: *const i8, taps: u32, stride: u32, out: *mut i32, offset: i32);
    fn microcnn_dot4x1_raw_v6m_s8(w: *const i8, x: *const i8, taps: u32, stride: u32, out: *mut i32, offset: i32);
}

/// `[Σ_{t < taps} w_r[t]·(x[t] + offset)]` for the rows `w_r = w[r·stride..]`, r = 0..=3
/// (`RAW`: without the offset); `None` if `taps` is 0, a row would overlap the next or a
/// slice is too short.
#[inline(always)]
fn call<const RAW: bool>(w: &[i8], stride: usize, x: &[i8], taps: usize, offset: i32) -> Option<[i32; 4]> {
    let fits = taps > 0 && stride >= taps && w.len() >= stride.checked_mul(3)?.checked_add(taps)? && x.len() >= taps;
    if !fits {
        return None;
    }
    let (taps, stride) = (u32::try_from(taps).ok()?, u32::try_from(stride).ok()?);
    let mut out = [0i32; 4];
    let f = if RAW { microcnn_dot4x1_raw_v6m_s8 } else { microcnn_dot4x1_v6m_s8 };
    // SAFETY: the routine reads `w[r·stride..r·stride + taps]` for r = 0..=3 and `x[..taps]`
    // (all in bounds by the checks above), writes the four words of `out`, and saves and
    // restores r4–r11 and lr as the AAPCS requires.
    unsafe { f(w.as_ptr(), x.as_ptr(), taps, stride, out.as_mut_ptr(), offset) };
    Some(out)
}

/// `[Σ w_r·(x + offset)]` over the first `taps` taps of the four rows `w_r = w[r·stride..]`.
#[inline(always)]
pub(crate) fn dot4x1(w: &[i8], stride: usize, x: &[i8], taps: usize, offset: i32) -> Option<[i32; 4]> {
    call::<false>(w, stride, x, taps, offset)
}

/// `[Σ w_r·x]` (raw products) over the first `taps` taps of the four rows `w_r = w[r·stride..]`.
#[inline(always)]
pub(crate) fn dot4x1_raw(w: &[i8], stride: usize, x: &[i8], taps: usize) -> Option<[i32; 4]> {
    call::<true>(w, stride, x, taps, 0)
}
