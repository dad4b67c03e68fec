//! One golden kernel case, described with `'static` data, and the code that runs it through the
//! `microcnn` public API.
//!
//! The same runner is used by the host test (`tests/golden.rs`, which parses
//! `tests/golden/*.json`) and by the QEMU firmware (whose build script turns the same JSON
//! into `static` cases), so the host and every Cortex-M core check the identical computation.
//! Quantization parameters are derived here from the float scales with microcnn's own
//! build-time helpers, so those helpers are under test too.

#![no_std]
#![deny(missing_docs)]
#![deny(unsafe_code)]

use microcnn::activation::{relu6_i8, relu_i8, ReluParams};
use microcnn::add::{add_i8, AddParams};
use microcnn::conv::{conv2d_i8, conv2d_i8_reference, ConvParams, ConvWeights};
use microcnn::dense::{dense_i8, DenseParams, DenseWeights};
use microcnn::depthwise::depthwise_conv2d_i8;
use microcnn::pool::{avg_pool2d_i8, global_avg_pool_i8, max_pool2d_i8, MeanParams, PoolParams};
use microcnn::quant::conv_multipliers;
use microcnn::softmax::{softmax_i8, SoftmaxParams};
use microcnn::{ActivationRange, Error, Padding, Requant, Shape, Window};

/// The TFLite operator a case exercises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `CONV_2D`.
    Conv,
    /// `DEPTHWISE_CONV_2D`.
    DepthwiseConv,
    /// `MAX_POOL_2D`.
    MaxPool,
    /// `AVERAGE_POOL_2D`.
    AvgPool,
    /// `MEAN` over height and width (global average pooling).
    Mean,
    /// `FULLY_CONNECTED`.
    Dense,
    /// `ADD`.
    Add,
    /// `SOFTMAX`.
    Softmax,
    /// `RELU`.
    Relu,
    /// `RELU6`.
    Relu6,
}

/// Fused activation of the op.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    /// None.
    None,
    /// ReLU.
    Relu,
    /// ReLU6.
    Relu6,
}

/// One input set and the output TFLite Micro produced for it.
#[derive(Debug)]
pub struct Sample<'a> {
    /// One or two int8 input tensors.
    pub inputs: &'a [&'a [i8]],
    /// TFLite Micro's output.
    pub expected: &'a [i8],
}

/// A golden case: one operator, its parameters as TFLite stores them, and samples.
#[derive(Debug)]
pub struct Case<'a> {
    /// Case name (file stem).
    pub name: &'a str,
    /// Operator.
    pub op: Op,
    /// Input shape as TFLite stores it (rank 2 to 4).
    pub input_shape: &'a [usize],
    /// Input scale and zero point.
    pub input_quant: (f32, i32),
    /// Second input's scale and zero point (`ADD`).
    pub input2_quant: (f32, i32),
    /// Output shape.
    pub output_shape: &'a [usize],
    /// Output scale and zero point.
    pub output_quant: (f32, i32),
    /// Filter shape (OHWI, `[1,H,W,C·M]` depthwise, `[units, depth]` dense) or empty.
    pub filter_shape: &'a [usize],
    /// Filter values.
    pub filter: &'a [i8],
    /// Filter scales, per channel or one.
    pub filter_scales: &'a [f32],
    /// Bias values or empty.
    pub bias: &'a [i32],
    /// `[stride_h, stride_w]`.
    pub stride: [usize; 2],
    /// `[dilation_h, dilation_w]`.
    pub dilation: [usize; 2],
    /// Pool window `[h, w]`.
    pub pool: [usize; 2],
    /// `SAME` (true) or `VALID` padding.
    pub same: bool,
    /// Depthwise multiplier.
    pub depth_multiplier: usize,
    /// Fused activation.
    pub activation: Act,
    /// Samples.
    pub samples: &'a [Sample<'a>],
}

/// The largest number of output channels any case may have (sizes the stack buffers below).
pub const MAX_CHANNELS: usize = 64;

fn shape4(s: &[usize]) -> Shape {
    match *s {
        [n, h, w, c] => Shape::new(n, h, w, c),
        [n, h, c] => Shape::new(n, 1, h, c),
        [n, c] => Shape::vector(n, c),
        [c] => Shape::vector(1, c),
        _ => Shape::new(0, 0, 0, 0),
    }
}

fn act_range(a: Act, zp: i8, scale: f32) -> ActivationRange {
    match a {
        Act::None => ActivationRange::NONE,
        Act::Relu => ActivationRange::relu(zp),
        Act::Relu6 => ActivationRange::relu6(zp, scale),
    }
}

/// Runs `case` on one sample's inputs into `out` (which must have the output's length).
///
/// `reference` forces the reference convolution instead of the dispatcher.
///
/// # Errors
///
/// Whatever the kernel returns, or [`Error::TooLarge`] if the case has more than
/// [`MAX_CHANNELS`] channels.
pub fn run(case: &Case<'_>, inputs: &[&[i8]], out: &mut [i8], reference: bool) -> Result<(), Error> {
    let (s_in, zp_in) = case.input_quant;
    let (s_out, zp_out) = case.output_quant;
    let zp_in = i8::try_from(zp_in).map_err(|_| Error::InvalidQuantization)?;
    let zp_out = i8::try_from(zp_out).map_err(|_| Error::InvalidQuantization)?;
    let input = inputs.first().copied().unwrap_or(&[]);
    let in_shape = shape4(case.input_shape);
    let activation = act_range(case.activation, zp_out, s_out);
    let padding = if case.same { Padding::Same } else { Padding::Valid };
    let mut requant = [Requant::new(0, 0); MAX_CHANNELS];
    let nq = case.filter_scales.len();
    if nq > MAX_CHANNELS {
        return Err(Error::TooLarge);
    }
    conv_multipliers(s_in, case.filter_scales, s_out, &mut requant[..nq])?;
    let bias = if case.bias.is_empty() { None } else { Some(case.bias) };
    let conv = ConvParams {
        stride_h: case.stride[0],
        stride_w: case.stride[1],
        dilation_h: case.dilation[0],
        dilation_w: case.dilation[1],
        padding,
        input_zero_point: zp_in,
        output_zero_point: zp_out,
        activation,
    };
    let weights =
        ConvWeights { filter: case.filter, filter_shape: shape4(case.filter_shape), bias, requant: &requant[..nq] };
    let pool = PoolParams {
        window: Window {
            kernel_h: case.pool[0],
            kernel_w: case.pool[1],
            stride_h: case.stride[0],
            stride_w: case.stride[1],
            dilation_h: 1,
            dilation_w: 1,
            padding,
        },
        activation,
    };
    match case.op {
        Op::Conv if reference => conv2d_i8_reference(&conv, &weights, input, in_shape, out).map(|_| ()),
        Op::Conv => conv2d_i8(&conv, &weights, input, in_shape, out).map(|_| ()),
        Op::DepthwiseConv => {
            depthwise_conv2d_i8(&conv, case.depth_multiplier, &weights, input, in_shape, out).map(|_| ())
        }
        Op::MaxPool => max_pool2d_i8(&pool, input, in_shape, out).map(|_| ()),
        Op::AvgPool => avg_pool2d_i8(&pool, input, in_shape, out).map(|_| ()),
        Op::Mean => {
            let p = MeanParams::new(s_in, zp_in, s_out, zp_out, in_shape.h * in_shape.w, activation);
            global_avg_pool_i8(&p, input, in_shape, out).map(|_| ())
        }
        Op::Dense => {
            let units = case.filter_shape.first().copied().unwrap_or(0);
            let p = DenseParams { input_zero_point: zp_in, output_zero_point: zp_out, activation };
            let w = DenseWeights { weights: case.filter, units, bias, requant: &requant[..nq] };
            dense_i8(&p, &w, input, in_shape, out).map(|_| ())
        }
        Op::Add => {
            let (s2, zp2) = case.input2_quant;
            let p = AddParams::new(
                s_in,
                zp_in,
                s2,
                i8::try_from(zp2).map_err(|_| Error::InvalidQuantization)?,
                s_out,
                zp_out,
                activation,
            );
            add_i8(&p, input, inputs.get(1).copied().unwrap_or(&[]), out)
        }
        Op::Softmax => {
            let depth = case.input_shape.last().copied().unwrap_or(0);
            softmax_i8(&SoftmaxParams::new(s_in, 1.0, s_out, zp_out)?, input, depth, out)
        }
        Op::Relu => relu_i8(&ReluParams::new(s_in, zp_in, s_out, zp_out, false), input, out),
        Op::Relu6 => relu6_i8(s_in, zp_in, input, out),
    }
}
