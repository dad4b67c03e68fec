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

/// `SMLAD`: `acc + a.lo·b.lo + a.hi·b.hi`, wrapping (the instruction only sets the Q flag).
#[inline(always)]
pub const fn smlad(a: u32, b: u32, acc: i32) -> i32 {
    acc.wrapping_add((lo(a) * lo(b)).wrapping_add(hi(a) * hi(b)))
}
