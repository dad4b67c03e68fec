//! # microcnn
//!
//! A `no_std`, heap-free int8 convolutional-network runtime for Cortex-M microcontrollers whose
//! every output is **bit-exact with TensorFlow Lite Micro's int8 reference kernels** (and hence
//! with CMSIS-NN).
//!
//! - Tensors are NHWC `i8` slices with a [`Shape`]; filters are OHWI (depthwise: `1×H×W×C·M`).
//! - Weights are symmetric int8 per output channel; activations are asymmetric int8 per tensor
//!   (`real = scale · (q − zero_point)`); biases are int32 in units of `s_in · s_w`.
//! - Requantization is by a Q31 multiplier and a shift ([`quant`]); floats appear only in the
//!   build-time helpers that compute those and in [`quant::quantize_f32`] /
//!   [`quant::dequantize_i8`] at the model's edges.
//! - Every kernel checks shapes, lengths and parameters once, up front, and returns
//!   [`Error`] instead of panicking; the output size formula `O = (W − K + 2P)/S + 1` lives in
//!   one `const fn` ([`shape::output_size`]) and rejects fractional results.
//! - [`memory`] reports the bytes each layer needs as `const fn`s for static planning.
//!
//! # Never panics, for any argument
//!
//! Every public function returns `Err` (or, for the arithmetic helpers, a documented value)
//! for *every* combination of arguments, in release builds and with overflow checks on; none
//! loops for ever or reads out of bounds. The limits that make this provable:
//!
//! - shapes: no zero dimension ([`Error::ZeroParameter`]), element counts that fit `usize`;
//! - geometry: every extent (input, kernel, stride, dilation, padding, dilated kernel, padded
//!   input) at most [`shape::MAX_EXTENT`] = 2^28, so positions never overflow `isize`;
//! - accumulators: at most [`conv::MAX_TAPS`] = 65,793 products per output, the exact bound
//!   for weights −128..=127 against inputs 255 steps from their zero point (the headroom
//!   argument is written next to it); average windows at most [`pool::MAX_WINDOW`] = 2^23;
//! - work: at most [`shape::MAX_WORK_PER_ITEM`] = 2^32 inner-loop steps per batch item, so a
//!   call cannot run for hours;
//! - quantization: shifts −31..=30, multipliers ≥ 0, `min ≤ max` clamps; zero points are `i8`,
//!   so they cannot be out of range.
//!
//! Arithmetic that wraps on purpose (the bias add and the requantization left shift, as TFLM's
//! `int32` C++ does) says so with `wrapping_*`. `tests/extremes.rs` and the `fuzz/` targets
//! (which share `tests/harness`) hunt for violations with extreme values, and check every fast
//! path against its reference kernel.
//!
//! ```
//! use microcnn::{Shape, conv::{conv2d_i8, ConvParams, ConvWeights}, ActivationRange, Padding, Requant};
//! let p = ConvParams {
//!     stride_h: 1, stride_w: 1, dilation_h: 1, dilation_w: 1, padding: Padding::Same,
//!     input_zero_point: -128, output_zero_point: -128, activation: ActivationRange::relu(-128),
//! };
//! let filter = [1i8; 9]; // one 3×3×1 filter
//! let w = ConvWeights {
//!     filter: &filter, filter_shape: Shape::new(1, 3, 3, 1), bias: None,
//!     requant: &[Requant::new(1 << 30, -2)], // ×0.125
//! };
//! let input = [-120i8; 16];
//! let mut out = [0i8; 16];
//! let shape = conv2d_i8(&p, &w, &input, Shape::image(4, 4, 1), &mut out)?;
//! assert_eq!(shape, Shape::image(4, 4, 1));
//! assert_eq!(out[5], -128 + 9); // 9 taps of (−120 + 128) · 1 · 0.125
//! # Ok::<(), microcnn::Error>(())
//! ```
//!
//! # Kernels per core
//!
//! The reference kernels (`*_reference`) are the specification; the dispatchers (`conv2d_i8`,
//! `dense_i8`, `depthwise_conv2d_i8`, `max_pool2d_i8`, `avg_pool2d_i8`) pick, at build time, a
//! faster kernel that gives the same bits:
//!
//! - cores with the DSP extension — every `thumbv7em-*` target (Cortex-M4, M7), and
//!   `thumbv8m.main-*` (M33, M35P, M55) with the `dsp` feature — run the register-blocked
//!   kernels ([`conv::conv2d_i8_blocked`], [`depthwise::depthwise_conv2d_i8_blocked`],
//!   [`dense::dense_i8_blocked`]) whose inner loops are assembly routines on `SXTB16`/`SXTAB16`/
//!   `SMLAD`/`SMLABB`/`SMLATT`, requantizing in the same routine (TFLM's double rounding in five
//!   instructions with `SMMLAR`, wherever a bound or a test on the value shows that exact; the
//!   Rust path otherwise), plus `SSUB8`/`SEL` max pooling and `SXTAB16` average pooling
//!   ([`simd`]), each window's words bounds-checked once; the dense routine loads weight rows
//!   with `LDRD`, so it sums the taps before a row's first word-aligned weight in Rust;
//! - the Cortex-M3 (`thumbv7m-*`, and `thumbv8m.main-*` without `dsp`) runs the same
//!   convolution, depthwise and dense routines built on `LDRSB`/`MLA` instead, and max pooling
//!   four channels per word in plain 32-bit arithmetic;
//! - the Cortex-M0 (`thumbv6m-*`) runs the blocked convolution (windows up to 512 taps) and
//!   dense layer on a Thumb-1 routine of four weight rows against one column (`LDRSB`/`MULS`,
//!   sums in high registers), the portable fast paths otherwise, multiplies 32×32→64 from 16-bit
//!   halves and divides by reciprocals (it has neither instruction);
//! - other targets (the host) use the portable fast paths; the blocked kernels run there too
//!   (with the portable twins of the instructions) for the tests and the fuzzers.
//!
//! Built for size (`opt-level = "s"` or `"z"` for this crate; `build.rs` reads cargo's
//! `OPT_LEVEL`), the paths that cost flash for speed are left out, with the same bits: on
//! Armv7-M and later cores the dense layer takes two rows at a time (on packed pairs where the
//! DSP extension is present) instead of the DSP cores' unpacked-pairs routine and the M3's
//! four-row routine, and the 1×1 convolution's direct column copy and the fixed-size copies of
//! short window rows go.
//!
//! The only `unsafe` in the crate is in `src/kernels/simd/dsp.rs`, `src/kernels/simd/arm.rs` and
//! `src/kernels/simd/v6m.rs`:
//! single instructions through `asm!` and calls of the `global_asm!` routines, each behind a
//! safe wrapper that checks every bound the routine relies on. The routines use unaligned word
//! loads, which these cores allow unless software sets the unaligned-access trap
//! (`SCB.CCR.UNALIGN_TRP`); microcnn does not support that setting.
//!
//! Stack: the blocked convolution uses 2,176 bytes ([`memory::KERNEL_STACK_BYTES`]: two 512-byte
//! columns, a 32-channel requantization table of 896 bytes and 256 bytes of sums for windows
//! longer than a column), the blocked depthwise 896, the DSP dense layer 1,280 (the input's
//! 16-bit pairs, 512 taps at a time, and 64 sums), the portable column path 512, average
//! pooling 256; no kernel uses arena scratch.
//!
//! # Optional features
//!
//! - `defmt`: derives `defmt::Format` for [`Error`] and the parameter types.
//! - `dsp`: the Armv8-M Mainline core has the DSP extension; use the SIMD kernels on
//!   `thumbv8m.main-*` (no effect elsewhere: `thumbv7em-*` always has it).
//!
//! # MSRV
//!
//! Rust 1.82.

#![no_std]
#![deny(missing_docs)]
#![deny(unsafe_code)]
#![allow(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::cast_lossless,
    clippy::cast_precision_loss,
    clippy::similar_names,
    clippy::many_single_char_names,
    clippy::module_name_repetitions,
    clippy::too_many_lines,
    clippy::missing_panics_doc,
    clippy::doc_markdown,
    clippy::unreadable_literal,
    clippy::inline_always,
    clippy::too_many_arguments
)]

pub mod error;
pub mod fixedpoint;
pub mod kernels;
pub mod memory;
pub mod quant;
pub mod shape;

pub use error::{Error, Result};
pub use kernels::{
    activation, add, classify, conv, dense, depthwise, layout, pool, postprocess, resize, simd, softmax, transpose_conv,
};
pub use quant::{ActivationRange, Requant};
pub use shape::{Padding, Shape, Window};
