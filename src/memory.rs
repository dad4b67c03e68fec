//! How many bytes each layer needs, as `const fn`s, so a whole model is planned at build time
//! and placed in `static` buffers.
//!
//! No kernel in this crate needs scratch memory in the arena: every accumulator lives in
//! registers, so a layer needs exactly its input and its output tensor (one byte per int8
//! element). The buffers beyond that are on the stack, at most [`KERNEL_STACK_BYTES`]: the
//! blocked convolution's two pixel columns of [`crate::conv::COLUMN_BYTES`] (512) bytes, its
//! 32-channel requantization table (896 bytes) and the sums it carries across the pieces of
//! windows longer than a column (256 bytes); the firmware's stack reserve covers them, and the
//! QEMU apps measure the high-water mark of whole inferences. The functions below still report scratch explicitly so a plan
//! stays correct if a future fast path needs arena scratch.

use crate::error::{Error, Result};
use crate::kernels::conv::{conv2d_output_shape, ConvParams};
use crate::kernels::depthwise::depthwise_conv2d_output_shape;
use crate::kernels::pool::pool2d_output_shape;
use crate::shape::{Shape, Window};

/// The most stack any kernel's own buffers take (the blocked convolution's: two 512-byte
/// columns, an 896-byte channel table and 256 bytes of sums), beside a few hundred bytes of
/// frames.
pub const KERNEL_STACK_BYTES: usize = 2 * crate::kernels::conv::COLUMN_BYTES + 896 + 256;

/// The memory one layer needs while it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct LayerMemory {
    /// Bytes of the input activation.
    pub input_bytes: usize,
    /// Bytes of the output activation.
    pub output_bytes: usize,
    /// Bytes of scratch memory besides input and output.
    pub scratch_bytes: usize,
}

impl LayerMemory {
    /// Input, output and scratch together: what must be live at once.
    ///
    /// # Errors
    ///
    /// [`Error::TooLarge`] if the sum overflows `usize`.
    pub const fn total(&self) -> Result<usize> {
        match self.input_bytes.checked_add(self.output_bytes) {
            Some(t) => match t.checked_add(self.scratch_bytes) {
                Some(t) => Ok(t),
                None => Err(Error::TooLarge),
            },
            None => Err(Error::TooLarge),
        }
    }
}

const fn mem(input: Shape, output: Result<Shape>) -> Result<LayerMemory> {
    let input_bytes = match input.checked_len() {
        Ok(l) => l,
        Err(e) => return Err(e),
    };
    match output {
        Ok(o) => match o.checked_len() {
            Ok(output_bytes) => Ok(LayerMemory { input_bytes, output_bytes, scratch_bytes: 0 }),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// Bytes of an int8 activation of `shape`.
///
/// # Errors
///
/// [`Error::TooLarge`] if the element count overflows `usize`.
pub const fn activation_bytes(shape: Shape) -> Result<usize> {
    shape.checked_len()
}

/// Memory of a convolution (general or 1×1).
///
/// # Errors
///
/// As [`conv2d_output_shape`].
pub const fn conv2d_memory(p: &ConvParams, input: Shape, filter: Shape) -> Result<LayerMemory> {
    mem(input, conv2d_output_shape(p, input, filter))
}

/// Memory of a depthwise convolution.
///
/// # Errors
///
/// As [`depthwise_conv2d_output_shape`].
pub const fn depthwise_conv2d_memory(
    p: &ConvParams,
    depth_multiplier: usize,
    input: Shape,
    filter: Shape,
) -> Result<LayerMemory> {
    mem(input, depthwise_conv2d_output_shape(p, depth_multiplier, input, filter))
}

/// Memory of max, average or L2 pooling.
///
/// # Errors
///
/// As [`pool2d_output_shape`].
pub const fn pool2d_memory(window: &Window, input: Shape) -> Result<LayerMemory> {
    mem(input, pool2d_output_shape(window, input))
}

/// Memory of a dense layer with `units` outputs.
///
/// # Errors
///
/// [`Error::TooLarge`] if a byte count overflows `usize`.
pub const fn dense_memory(input: Shape, units: usize) -> Result<LayerMemory> {
    mem(input, Ok(Shape::vector(input.n, units)))
}

/// Memory of an element-wise layer (activation, softmax, add of two inputs of `shape`).
///
/// # Errors
///
/// [`Error::TooLarge`] if a byte count overflows `usize`.
pub const fn elementwise_memory(shape: Shape, inputs: usize) -> Result<LayerMemory> {
    let len = match shape.checked_len() {
        Ok(l) => l,
        Err(e) => return Err(e),
    };
    match len.checked_mul(inputs) {
        Some(input_bytes) => Ok(LayerMemory { input_bytes, output_bytes: len, scratch_bytes: 0 }),
        None => Err(Error::TooLarge),
    }
}

/// An array at an address that is a multiple of 4. The generated code declares every weight
/// array in one, so the DSP dense routine's word-aligned row loads (`LDRD`) never depend on
/// where the linker happens to put an array (rows one byte off take the edge-tap path: 256→10
/// at 0.91× of CMSIS-NN's instructions instead of 0.79× on the M4). Dereferences to the
/// array's elements, so `&W` is the `&[i8]` a kernel takes.
#[repr(C, align(4))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Aligned<T>(pub T);

impl<const N: usize> core::ops::Deref for Aligned<[i8; N]> {
    type Target = [i8];

    fn deref(&self) -> &[i8] {
        &self.0
    }
}

/// Borrows one layer's read-only inputs and its output from a shared arena, checking that every
/// region is in bounds and that no input overlaps the output (inputs may overlap each other).
/// `inputs` and `output` are `(offset, length)` pairs. Generated models call this for every
/// layer, so the memory plan is checked at run time too, without `unsafe`.
///
/// # Errors
///
/// [`Error::LengthMismatch`] if a region ends past the arena, [`Error::ShapeMismatch`] if an
/// input overlaps the output, [`Error::TooLarge`] if an offset plus length overflows.
pub fn arena_io<const N: usize>(
    arena: &mut [i8],
    inputs: [(usize, usize); N],
    output: (usize, usize),
) -> Result<([&[i8]; N], &mut [i8])> {
    let (split, out) = ArenaSplit::new(arena, output)?;
    let mut views: [&[i8]; N] = [&[]; N];
    for (view, &region) in views.iter_mut().zip(inputs.iter()) {
        *view = split.input(region)?;
    }
    Ok((views, out))
}

/// An arena split around one layer's output: the read-only parts before and after it, from
/// which any number of inputs can be borrowed while the output is written ([`arena_io`] for a
/// count known at compile time; the host executor for ops with a variable number of inputs).
#[derive(Debug)]
pub struct ArenaSplit<'a> {
    left: &'a [i8],
    right: &'a [i8],
    start: usize,
    end: usize,
}

impl<'a> ArenaSplit<'a> {
    /// Splits `arena` around `output = (offset, length)`; returns the split and the output.
    ///
    /// # Errors
    ///
    /// As [`arena_io`].
    pub fn new(arena: &'a mut [i8], output: (usize, usize)) -> Result<(Self, &'a mut [i8])> {
        let (o, olen) = output;
        let end = o.checked_add(olen).ok_or(Error::TooLarge)?;
        if end > arena.len() {
            return Err(Error::LengthMismatch { expected: end, actual: arena.len() });
        }
        let (left, rest) = arena.split_at_mut(o);
        let (out, right) = rest.split_at_mut(olen);
        Ok((ArenaSplit { left, right, start: o, end }, out))
    }

    /// The input region `(offset, length)`, which must not overlap the output.
    ///
    /// # Errors
    ///
    /// As [`arena_io`].
    pub fn input(&self, region: (usize, usize)) -> Result<&'a [i8]> {
        let (off, len) = region;
        let stop = off.checked_add(len).ok_or(Error::TooLarge)?;
        if stop <= self.start {
            Ok(&self.left[off..stop])
        } else if off >= self.end {
            let (a, b) = (off - self.end, stop - self.end);
            self.right.get(a..b).ok_or(Error::LengthMismatch { expected: stop, actual: self.end + self.right.len() })
        } else {
            Err(Error::ShapeMismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::arena_io;

    #[test]
    fn arena_io_splits_and_checks() {
        let mut arena = [0i8; 10];
        arena[0] = 1;
        arena[9] = 9;
        let ([a, b], out) = arena_io(&mut arena, [(0, 3), (8, 2)], (3, 4)).unwrap();
        assert_eq!((a[0], b[1], out.len()), (1, 9, 4));
        assert!(arena_io(&mut arena, [(2, 3)], (3, 4)).is_err(), "overlap");
        assert!(arena_io(&mut arena, [(0, 1)], (8, 4)).is_err(), "past the end");
        assert!(arena_io(&mut arena, [(9, 4)], (0, 2)).is_err(), "input past the end");
    }
}
