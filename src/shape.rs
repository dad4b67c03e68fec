//! Tensor shapes, padding and the output-size formula `O = (W − K + 2P)/S + 1`.
//!
//! Every kernel and the host-side model builder use [`output_size`], so a geometry that is
//! rejected here is rejected everywhere, at compile time when the sizes are constants:
//!
//! ```
//! use microcnn::shape::output_size;
//! // 28×28 input, 5×5 kernel, stride 1, no padding: 24×24.
//! const OUT: usize = match output_size(28, 5, 1, 1, 0, 0) {
//!     Ok(o) => o,
//!     Err(_) => panic!("stride does not fit"),
//! };
//! assert_eq!(OUT, 24);
//! // 7×7 input, 3×3 kernel, stride 3: (7 − 3)/3 is not whole, so it is an error, not a floor.
//! assert!(output_size(7, 3, 3, 1, 0, 0).is_err());
//! ```

use crate::error::{Error, Result};

/// The shape of an NHWC tensor: batch, height, width, channels. Elements are stored with the
/// channel varying fastest: `index = ((n·H + y)·W + x)·C + c`.
///
/// Filters reuse the type as OHWI: `n` is the number of output channels, `c` the input channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Shape {
    /// Batch size.
    pub n: usize,
    /// Height (rows).
    pub h: usize,
    /// Width (columns).
    pub w: usize,
    /// Channels (innermost, contiguous).
    pub c: usize,
}

impl Shape {
    /// A shape from its four dimensions.
    pub const fn new(n: usize, h: usize, w: usize, c: usize) -> Self {
        Shape { n, h, w, c }
    }

    /// A single image (`n = 1`).
    pub const fn image(h: usize, w: usize, c: usize) -> Self {
        Shape { n: 1, h, w, c }
    }

    /// A flat vector of `len` values per batch item, stored as `n×1×1×len`.
    pub const fn vector(n: usize, len: usize) -> Self {
        Shape { n, h: 1, w: 1, c: len }
    }

    /// The number of elements, or [`Error::TooLarge`] if it overflows `usize`.
    pub const fn checked_len(&self) -> Result<usize> {
        match self.n.checked_mul(self.h) {
            Some(a) => match a.checked_mul(self.w) {
                Some(b) => match b.checked_mul(self.c) {
                    Some(len) => Ok(len),
                    None => Err(Error::TooLarge),
                },
                None => Err(Error::TooLarge),
            },
            None => Err(Error::TooLarge),
        }
    }

    /// The number of elements, saturating at `usize::MAX` (use in `const` sizing, where an
    /// overflow then fails the build when the buffer is declared).
    #[inline]
    pub const fn len(&self) -> usize {
        match self.checked_len() {
            Ok(l) => l,
            Err(_) => usize::MAX,
        }
    }

    /// `true` when any dimension is zero.
    pub const fn is_empty(&self) -> bool {
        self.n == 0 || self.h == 0 || self.w == 0 || self.c == 0
    }

    /// Checks that no dimension is zero and the element count fits `usize`; returns the count.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroParameter`] for a zero dimension (kernels refuse empty tensors: there is
    /// nothing to compute, and a zero channel count would hide arbitrarily long loops over
    /// nothing), [`Error::TooLarge`] on overflow.
    pub const fn checked_nonempty_len(&self) -> Result<usize> {
        if self.is_empty() {
            return Err(Error::ZeroParameter);
        }
        self.checked_len()
    }

    /// Elements per batch item (`H·W·C`).
    pub const fn item_len(&self) -> usize {
        Shape::new(1, self.h, self.w, self.c).len()
    }

    /// Checks that `actual` elements are exactly what this shape needs.
    pub const fn expect_len(&self, actual: usize) -> Result<()> {
        match self.checked_len() {
            Ok(expected) if expected == actual => Ok(()),
            Ok(expected) => Err(Error::LengthMismatch { expected, actual }),
            Err(e) => Err(e),
        }
    }
}

/// How a convolution or pooling window is padded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Padding {
    /// No padding. `(W − K_eff)` must be a multiple of the stride.
    Valid,
    /// TensorFlow Lite's `VALID`: no padding, and `⌊(W − K_eff) / S⌋ + 1` outputs, so when the
    /// stride does not divide `W − K_eff` the last `(W − K_eff) mod S` rows or columns are never
    /// read. For imported TFLite models, which run exactly as TFLite runs them; [`Padding::Valid`]
    /// refuses such a geometry instead.
    ValidFloor,
    /// TensorFlow's `SAME`: the output has `ceil(W / S)` positions and the padding that needs,
    /// `max((O − 1)·S + K_eff − W, 0)`, is split with the odd element at the bottom/right.
    ///
    /// When the kernel is smaller than the stride (a 1×1 kernel with stride 2 on an even input,
    /// say), that padding would be negative and is clamped to zero, so trailing input pixels are
    /// never read. This is TensorFlow's definition, kept for bit-exactness with TFLite models; use
    /// `Valid` or `Explicit` to have such a geometry rejected instead.
    Same,
    /// Explicit zero padding (zero in the real domain, i.e. the input zero point) on each side.
    Explicit {
        /// Rows added above.
        top: usize,
        /// Rows added below.
        bottom: usize,
        /// Columns added on the left.
        left: usize,
        /// Columns added on the right.
        right: usize,
    },
}

/// The resolved geometry along one axis: output length and padding before the first element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct AxisGeometry {
    /// Output length along the axis.
    pub out: usize,
    /// Padding before the first input element (top or left).
    pub pad_before: usize,
    /// Padding after the last input element (bottom or right), as TFLite would compute it.
    pub pad_after: usize,
}

/// The largest extent along one axis that the geometry functions accept: input length,
/// kernel, stride, dilation, each padding, the dilated kernel `(K − 1)·D + 1` and the padded
/// input `W + P_before + P_after` (2^28). Keeping every position inside `±2^29` lets the kernels
/// index with `isize` arithmetic that provably cannot overflow, even where `usize` is 32 bits.
/// Anything larger is [`Error::TooLarge`].
pub const MAX_EXTENT: usize = 1 << 28;

/// The most inner-loop steps (multiply-accumulates, or window taps for pooling) one kernel call
/// may need per batch item: 2^32, minutes on a Cortex-M and seconds on a PC. A call that would
/// need more is refused with [`Error::TooLarge`] before it starts, so no argument makes a kernel
/// run for hours.
pub const MAX_WORK_PER_ITEM: u64 = 1 << 32;

/// The effective extent of a dilated kernel: `(K − 1)·D + 1` (0 for a zero kernel).
///
/// # Errors
///
/// [`Error::TooLarge`] if it overflows `usize`.
pub const fn dilated_kernel(kernel: usize, dilation: usize) -> Result<usize> {
    if kernel == 0 {
        return Ok(0);
    }
    match (kernel - 1).checked_mul(dilation) {
        Some(k) => match k.checked_add(1) {
            Some(k) => Ok(k),
            None => Err(Error::TooLarge),
        },
        None => Err(Error::TooLarge),
    }
}

/// Checks the per-axis arguments every window shares: none zero, none above [`MAX_EXTENT`],
/// and the dilated kernel within it too. Returns `K_eff`.
const fn check_axis(input: usize, kernel: usize, stride: usize, dilation: usize) -> Result<usize> {
    if input == 0 || kernel == 0 || stride == 0 || dilation == 0 {
        return Err(Error::ZeroParameter);
    }
    if input > MAX_EXTENT || kernel > MAX_EXTENT || stride > MAX_EXTENT || dilation > MAX_EXTENT {
        return Err(Error::TooLarge);
    }
    match dilated_kernel(kernel, dilation) {
        Ok(k) if k <= MAX_EXTENT => Ok(k),
        _ => Err(Error::TooLarge),
    }
}

/// The output length `O = (W + P_before + P_after − K_eff)/S + 1` with `K_eff = (K − 1)·D + 1`.
///
/// # Errors
///
/// - [`Error::ZeroParameter`] if `input`, `kernel`, `stride` or `dilation` is zero;
/// - [`Error::KernelLargerThanInput`] if `K_eff` exceeds the padded input;
/// - [`Error::FractionalOutput`] if the stride does not divide `W + P − K_eff`: a geometry that
///   would leave input unread is an error, never a silent floor;
/// - [`Error::TooLarge`] if any argument, the dilated kernel or the padded input exceeds
///   [`MAX_EXTENT`].
pub const fn output_size(
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    pad_before: usize,
    pad_after: usize,
) -> Result<usize> {
    let k_eff = match check_axis(input, kernel, stride, dilation) {
        Ok(k) => k,
        Err(e) => return Err(e),
    };
    if pad_before > MAX_EXTENT || pad_after > MAX_EXTENT {
        return Err(Error::TooLarge);
    }
    // Each term ≤ 2^28, so the sum cannot overflow.
    let padded = input + pad_before + pad_after;
    if padded > MAX_EXTENT {
        return Err(Error::TooLarge);
    }
    if k_eff > padded {
        return Err(Error::KernelLargerThanInput);
    }
    let span = padded - k_eff;
    if span % stride != 0 {
        return Err(Error::FractionalOutput { span, stride });
    }
    Ok(span / stride + 1)
}

/// The in-bounds kernel taps `[k0, k1)` along one axis for a window starting at input position
/// `start` (negative inside the leading padding), with `k` taps at dilation `d`, over an input
/// of length `len`: tap `t` reads `start + t·d`, and exactly the taps in `k0..k1` land inside
/// `0..len`. The optimised kernels and the trainer's im2col share it.
///
/// Total for every argument: a zero dilation reads `start` for every tap, and no value
/// overflows (the result is exact, not saturated, whenever it is below `k`).
#[inline(always)]
pub fn tap_range(start: isize, k: usize, d: usize, len: usize) -> (usize, usize) {
    if d == 0 {
        let inside = start >= 0 && start.unsigned_abs() < len;
        return if inside { (0, k) } else { (0, 0) };
    }
    // First tap at or after position 0, and the position `p0 ≥ 0` it reads.
    let (k0, p0) = if start < 0 {
        let a = start.unsigned_abs();
        let k0 = a.div_ceil(d);
        (k0, (d - a % d) % d)
    } else {
        (0, start.unsigned_abs())
    };
    if p0 >= len || k0 >= k {
        return (k.min(k0), k.min(k0));
    }
    // Taps k0, k0 + 1, … read p0, p0 + d, …: those below `len` are ⌈(len − p0)/d⌉ many.
    let k1 = k0.saturating_add((len - p0).div_ceil(d)).min(k);
    (k0, k1)
}

/// Resolves one axis of a window under `padding`'s rule for that axis.
///
/// `before`/`after` are the explicit paddings (ignored for `Valid` and `Same`).
///
/// # Errors
///
/// As [`output_size`]; `Same` only fails on zero parameters or overflow.
pub const fn resolve_axis(
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    padding: Padding,
    vertical: bool,
) -> Result<AxisGeometry> {
    let (before, after) = match padding {
        Padding::Valid => (0, 0),
        Padding::ValidFloor => {
            let k_eff = match check_axis(input, kernel, stride, dilation) {
                Ok(k) => k,
                Err(e) => return Err(e),
            };
            if k_eff > input {
                return Err(Error::KernelLargerThanInput);
            }
            return Ok(AxisGeometry { out: (input - k_eff) / stride + 1, pad_before: 0, pad_after: 0 });
        }
        Padding::Explicit { top, bottom, left, right } => {
            if vertical {
                (top, bottom)
            } else {
                (left, right)
            }
        }
        Padding::Same => {
            let k_eff = match check_axis(input, kernel, stride, dilation) {
                Ok(k) => k,
                Err(e) => return Err(e),
            };
            let out = input.div_ceil(stride);
            // (out − 1)·stride < input ≤ 2^28 and k_eff ≤ 2^28: no overflow.
            let needed = (out - 1) * stride + k_eff;
            let total = needed.saturating_sub(input);
            if input + total > MAX_EXTENT {
                return Err(Error::TooLarge);
            }
            return Ok(AxisGeometry { out, pad_before: total / 2, pad_after: total - total / 2 });
        }
    };
    match output_size(input, kernel, stride, dilation, before, after) {
        Ok(out) => Ok(AxisGeometry { out, pad_before: before, pad_after: after }),
        Err(e) => Err(e),
    }
}

/// A 2-D sliding window: kernel (or pool window) size, stride, dilation and padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Window {
    /// Kernel height.
    pub kernel_h: usize,
    /// Kernel width.
    pub kernel_w: usize,
    /// Vertical stride.
    pub stride_h: usize,
    /// Horizontal stride.
    pub stride_w: usize,
    /// Vertical dilation (1 = dense).
    pub dilation_h: usize,
    /// Horizontal dilation (1 = dense).
    pub dilation_w: usize,
    /// Padding rule.
    pub padding: Padding,
}

/// A window resolved against an input: output size and top/left padding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Geometry {
    /// Vertical axis.
    pub y: AxisGeometry,
    /// Horizontal axis.
    pub x: AxisGeometry,
}

impl Window {
    /// A square `k×k` window with stride `s`, no dilation.
    pub const fn square(k: usize, s: usize, padding: Padding) -> Self {
        Window { kernel_h: k, kernel_w: k, stride_h: s, stride_w: s, dilation_h: 1, dilation_w: 1, padding }
    }

    /// Resolves the window against an `in_h × in_w` input.
    ///
    /// # Errors
    ///
    /// As [`output_size`], for either axis.
    // Out of line: every kernel's argument check calls it (inlined, a copy per call site).
    #[inline(never)]
    pub const fn resolve(&self, in_h: usize, in_w: usize) -> Result<Geometry> {
        let y = match resolve_axis(in_h, self.kernel_h, self.stride_h, self.dilation_h, self.padding, true) {
            Ok(g) => g,
            Err(e) => return Err(e),
        };
        let x = match resolve_axis(in_w, self.kernel_w, self.stride_w, self.dilation_w, self.padding, false) {
            Ok(g) => g,
            Err(e) => return Err(e),
        };
        Ok(Geometry { y, x })
    }
}

/// Unwraps a `Result` in a `const` context, turning an error into a compile-time failure.
///
/// ```
/// use microcnn::{const_unwrap, shape::output_size};
/// const O: usize = const_unwrap!(output_size(32, 3, 1, 1, 1, 1));
/// assert_eq!(O, 32);
/// ```
#[macro_export]
macro_rules! const_unwrap {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(_) => panic!(concat!("microcnn: invalid geometry: ", stringify!($e))),
        }
    };
}
