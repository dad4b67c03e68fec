//! The one error type every kernel returns.

/// Why a kernel refused to run.
///
/// Kernels check every shape, length and parameter once, before touching data, and return one of
/// these instead of panicking. The variants are deliberately small (they are copied around on
/// targets with a few kilobytes of RAM); the documentation of each kernel says which it returns.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// A stride, dilation, kernel or window dimension is zero.
    ZeroParameter,
    /// `(W − K_eff + P) / S` is not a whole number: the stride does not fit the padded input. The
    /// fields are the padded input extent minus the effective kernel extent, and the stride.
    FractionalOutput {
        /// `W + P_before + P_after − ((K − 1)·D + 1)`.
        span: usize,
        /// The stride that does not divide `span`.
        stride: usize,
    },
    /// The (dilated) kernel or window is larger than the padded input.
    KernelLargerThanInput,
    /// Two shapes that must agree do not (channels, batch, depth multiplier, …).
    ShapeMismatch,
    /// A slice is shorter or longer than its shape requires.
    LengthMismatch {
        /// The number of elements the shape requires.
        expected: usize,
        /// The number of elements given.
        actual: usize,
    },
    /// A shape's element count does not fit in `usize` or an accumulator could overflow.
    TooLarge,
    /// A quantization parameter is out of its documented range (shift outside −31..=30,
    /// negative multiplier, zero point outside −128..=127, `min > max` activation range, …).
    InvalidQuantization,
    /// A pooling window lies entirely in padding, so it has no element to pool.
    EmptyWindow,
    /// `k` is zero or larger than the number of classes, or a buffer meant for the result is empty.
    InvalidCount,
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::ZeroParameter => f.write_str("a stride, dilation or kernel dimension is zero"),
            Error::FractionalOutput { span, stride } => write!(
                f,
                "output size (W - K + 2P)/S + 1 is fractional: {span}/{stride} is not a whole \
                 number; change the stride or the padding"
            ),
            Error::KernelLargerThanInput => f.write_str("the kernel is larger than the padded input"),
            Error::ShapeMismatch => f.write_str("tensor shapes do not agree"),
            Error::LengthMismatch { expected, actual } => {
                write!(f, "buffer holds {actual} elements but the shape needs {expected}")
            }
            Error::TooLarge => f.write_str("a tensor is too large for the accumulator or usize"),
            Error::InvalidQuantization => f.write_str("a quantization parameter is out of range"),
            Error::EmptyWindow => f.write_str("a pooling window lies entirely in padding"),
            Error::InvalidCount => f.write_str("an element count is zero or too large"),
        }
    }
}

/// Shorthand for `core::result::Result<T, microcnn::Error>`.
pub type Result<T> = core::result::Result<T, Error>;
