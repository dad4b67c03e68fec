//! The host executor: the graph through the `microcnn` runtime kernels, in the arena the plan
//! gives (as the generated code runs it on the chip), or every tensor kept for debugging.

use super::*;
use crate::model::spec::PadSpec;
use anyhow::Result;
use microcnn::activation::clamp_in_place_i8;
use microcnn::conv::{conv2d_i8, ConvParams, ConvWeights};
use microcnn::dense::{dense_i8, DenseParams, DenseWeights};
use microcnn::depthwise::depthwise_conv2d_i8;
use microcnn::layout::PadParams;
use microcnn::pool::{
    avg_pool2d_i8, global_avg_pool_i8, l2_pool2d_i8, max_pool2d_i8, L2PoolParams, MeanParams, PoolParams,
};
use microcnn::softmax::{softmax_i8, SoftmaxParams};
use microcnn::{ActivationRange, Requant, Shape, Window};

impl QModel {
    /// Every tensor of one inference (0 = the input, `i + 1` = layer `i`'s output), each in its
    /// own buffer: for comparing layer by layer (`compare --layers`), not for deployment.
    pub fn run_tensors(&self, input: &[i8]) -> Result<Vec<Vec<i8>>, microcnn::Error> {
        let mut t: Vec<Vec<i8>> = vec![input.to_vec()];
        for (i, l) in self.layers.iter().enumerate() {
            let mut dst = vec![0i8; self.out_len(i)];
            let ins: Vec<&[i8]> = self.inputs_of(i).into_iter().map(|k| t[k].as_slice()).collect();
            run_layer(l, &ins, &mut dst)?;
            t.push(dst);
        }
        Ok(t)
    }

    /// Runs one image through the runtime kernels, using `arena` exactly as the plan says: the
    /// input is copied to its place in the arena, every layer reads and writes arena regions
    /// through the checked splitter, and the scores are copied out.
    pub fn run(&self, input: &[i8], arena: &mut [i8], scores: &mut [i8]) -> Result<(), microcnn::Error> {
        self.run_planned(&self.plan(), input, arena, scores)
    }

    /// As [`QModel::run`] with a plan made once ([`QModel::plan`]), for running many inputs.
    pub fn run_planned(
        &self,
        plan: &ArenaPlan,
        input: &[i8],
        arena: &mut [i8],
        scores: &mut [i8],
    ) -> Result<(), microcnn::Error> {
        let region = |t: usize| (plan.offset[t], self.tensor_len(t));
        let (o, len) = region(0);
        let arena_len = arena.len();
        let slot = arena
            .get_mut(o..o + len)
            .ok_or(microcnn::Error::LengthMismatch { expected: o + len, actual: arena_len })?;
        if input.len() != len {
            return Err(microcnn::Error::LengthMismatch { expected: len, actual: input.len() });
        }
        slot.copy_from_slice(input);
        for (i, l) in self.layers.iter().enumerate() {
            let (split, dst) = microcnn::memory::ArenaSplit::new(arena, region(i + 1))?;
            let ins =
                self.inputs_of(i).into_iter().map(|t| split.input(region(t))).collect::<Result<Vec<&[i8]>, _>>()?;
            run_layer(l, &ins, dst)?;
        }
        let (o, len) = region(self.layers.len());
        if scores.len() != len {
            return Err(microcnn::Error::LengthMismatch { expected: len, actual: scores.len() });
        }
        scores.copy_from_slice(&arena[o..o + len]);
        Ok(())
    }
}

/// The runtime's per-channel requantization table from the model file's parallel
/// `multiplier`/`shift` arrays (checked to have equal lengths by [`QModel::validate`]).
fn requant_table(multiplier: &[i32], shift: &[i32]) -> Vec<Requant> {
    multiplier.iter().zip(shift).map(|(&m, &s)| Requant::new(m, s)).collect()
}

/// Runs one layer with the runtime kernels.
pub fn run_layer(l: &QLayer, ins: &[&[i8]], dst: &mut [i8]) -> Result<(), microcnn::Error> {
    let src = ins.first().copied().unwrap_or(&[]);
    let activation = ActivationRange { min: l.act[0], max: l.act[1] };
    let (zi, zo) = (l.input_q.zero_point, l.output_q.zero_point);
    let ishape = img(l.input);
    match &l.op {
        QOp::Conv {
            filter_shape: f,
            stride,
            dilation,
            padding,
            depth_multiplier,
            weights,
            bias,
            multiplier,
            shift,
            ..
        } => {
            let p = ConvParams {
                stride_h: stride[0],
                stride_w: stride[1],
                dilation_h: dilation[0],
                dilation_w: dilation[1],
                padding: padding.padding(),
                input_zero_point: zi,
                output_zero_point: zo,
                activation,
            };
            let w = ConvWeights {
                filter: weights,
                filter_shape: Shape::new(f[0], f[1], f[2], f[3]),
                bias: Some(bias),
                requant: &requant_table(multiplier, shift),
            };
            match depth_multiplier {
                Some(m) => depthwise_conv2d_i8(&p, *m, &w, src, ishape, dst).map(|_| ()),
                None => conv2d_i8(&p, &w, src, ishape, dst).map(|_| ()),
            }
        }
        QOp::TransposeConv { filter_shape: f, stride, padding, weights, bias, multiplier, shift, .. } => {
            let p = microcnn::transpose_conv::TransposeConvParams {
                stride_h: stride[0],
                stride_w: stride[1],
                out_h: l.output[0],
                out_w: l.output[1],
                padding: padding.padding(),
                input_zero_point: zi,
                output_zero_point: zo,
                activation,
            };
            let w = ConvWeights {
                filter: weights,
                filter_shape: Shape::new(f[0], f[1], f[2], f[3]),
                bias: Some(bias),
                requant: &requant_table(multiplier, shift),
            };
            microcnn::transpose_conv::transpose_conv2d_i8(&p, &w, src, ishape, dst).map(|_| ())
        }
        QOp::Resize { align_corners, half_pixel_centers } => {
            let p = microcnn::resize::ResizeParams {
                out_h: l.output[0],
                out_w: l.output[1],
                align_corners: *align_corners,
                half_pixel_centers: *half_pixel_centers,
            };
            microcnn::resize::resize_nearest_i8(&p, src, ishape, dst).map(|_| ())
        }
        QOp::Dense { units, weights, bias, multiplier, shift, .. } => {
            let p = DenseParams { input_zero_point: zi, output_zero_point: zo, activation };
            let w =
                DenseWeights { weights, units: *units, bias: Some(bias), requant: &requant_table(multiplier, shift) };
            dense_i8(&p, &w, src, ishape, dst).map(|_| ())
        }
        QOp::Pool { max, size, stride, padding } => {
            let p = PoolParams { window: window(*size, *stride, *padding), activation };
            if *max {
                max_pool2d_i8(&p, src, ishape, dst).map(|_| ())
            } else {
                avg_pool2d_i8(&p, src, ishape, dst).map(|_| ())
            }
        }
        QOp::L2Pool { size, stride, padding, multiplier, shift } => {
            let p = L2PoolParams {
                window: window(*size, *stride, *padding),
                input_zero_point: zi,
                output_zero_point: zo,
                requant: Requant { multiplier: *multiplier, shift: *shift },
                activation,
            };
            l2_pool2d_i8(&p, src, ishape, dst).map(|_| ())
        }
        QOp::Mean { multiplier, shift } => {
            let p = MeanParams {
                input_zero_point: zi,
                output_zero_point: zo,
                requant: Requant { multiplier: *multiplier, shift: *shift },
                activation,
            };
            global_avg_pool_i8(&p, src, ishape, dst).map(|_| ())
        }
        QOp::Clamp => {
            if src.len() != dst.len() {
                return Err(microcnn::Error::LengthMismatch { expected: dst.len(), actual: src.len() });
            }
            dst.copy_from_slice(src);
            clamp_in_place_i8(activation, dst)
        }
        QOp::Add { .. } => microcnn::add::add_i8(&add_params(l), src, ins.get(1).copied().unwrap_or(&[]), dst),
        QOp::Pad { before, after, value } => {
            microcnn::layout::pad_i8(&PadParams { before: *before, after: *after, value: *value }, ishape, src, dst)
        }
        QOp::Concat { axis, .. } => microcnn::layout::concat_i8(ins, concat_outer(l.output, *axis), dst),
        QOp::Logistic => microcnn::activation::logistic_i8(&squash_params(l)?, src, dst),
        QOp::Transpose { perm } => microcnn::layout::transpose_i8(src, l.input, *perm, dst),
        QOp::HardSwish => microcnn::activation::hard_swish_i8(&hard_swish_params(l)?, src, dst),
        QOp::Requantize { multiplier, shift } => {
            let p = microcnn::activation::ReluParams {
                input_zero_point: zi,
                output_zero_point: zo,
                requant: Requant { multiplier: *multiplier, shift: *shift },
                activation,
            };
            microcnn::activation::relu_i8(&p, src, dst)
        }
        QOp::Binary { kind, other, other_shape, constant, .. } => {
            let b: &[i8] = if other.is_some() { ins.get(1).copied().unwrap_or(&[]) } else { constant };
            let b_shape = img(*other_shape);
            match kind {
                BinaryKind::Mul => microcnn::add::mul_broadcast_i8(&mul_params(l), src, ishape, b, b_shape, dst),
                k => {
                    microcnn::add::add_broadcast_i8(&add_params(l), *k == BinaryKind::Sub, src, ishape, b, b_shape, dst)
                }
            }
        }
        QOp::LeakyRelu { .. } => microcnn::activation::leaky_relu_i8(&leaky_params(l), src, dst),
        QOp::Tanh => microcnn::activation::tanh_i8(&squash_params(l)?, src, dst),
        QOp::Softmax { input_multiplier, input_left_shift, diff_min, .. } => {
            let p = SoftmaxParams {
                input_multiplier: *input_multiplier,
                input_left_shift: *input_left_shift,
                diff_min: *diff_min,
                output_zero_point: zo,
            };
            softmax_i8(&p, src, l.output[2], dst)
        }
    }
}

/// The parameters of a `MUL`, derived from the three quantizations as TFLite Micro does.
pub fn mul_params(l: &QLayer) -> microcnn::add::MulParams {
    let other_q = if let QOp::Binary { other_q, .. } = &l.op { *other_q } else { l.input_q };
    microcnn::add::MulParams::new(
        l.input_q.scale,
        l.input_q.zero_point,
        other_q.scale,
        other_q.zero_point,
        l.output_q.scale,
        l.output_q.zero_point,
        ActivationRange { min: l.act[0], max: l.act[1] },
    )
}

/// The multipliers of `LEAKY_RELU`, derived as TFLite Micro derives them.
pub fn leaky_params(l: &QLayer) -> microcnn::activation::LeakyReluParams {
    let alpha = if let QOp::LeakyRelu { alpha } = l.op { alpha } else { 0.0 };
    microcnn::activation::LeakyReluParams::new(
        l.input_q.scale,
        l.input_q.zero_point,
        l.output_q.scale,
        l.output_q.zero_point,
        alpha,
    )
}

/// The parameters of `HARD_SWISH`, derived as TFLite Micro derives them.
pub fn hard_swish_params(l: &QLayer) -> Result<microcnn::activation::HardSwishParams, microcnn::Error> {
    microcnn::activation::HardSwishParams::new(
        l.input_q.scale,
        l.input_q.zero_point,
        l.output_q.scale,
        l.output_q.zero_point,
    )
}

/// The input parameters of `LOGISTIC`/`TANH`, derived from the input quantization as TFLite
/// Micro derives them.
pub fn squash_params(l: &QLayer) -> Result<microcnn::activation::SquashParams, microcnn::Error> {
    microcnn::activation::SquashParams::new(l.input_q.scale, l.input_q.zero_point)
}

/// The number of blocks a concatenation along `axis` of `[h, w, c]` tensors copies in turn.
pub fn concat_outer(shape: [usize; 3], axis: usize) -> usize {
    shape[..axis.min(3)].iter().product()
}

/// The runtime parameters of a residual add, derived from the three quantizations exactly as
/// TFLite Micro derives them (so they are never stored twice). Default parameters for any
/// other layer.
pub fn add_params(l: &QLayer) -> microcnn::add::AddParams {
    let skip_q = match &l.op {
        QOp::Add { skip_q, .. } | QOp::Binary { other_q: skip_q, .. } => *skip_q,
        _ => l.input_q,
    };
    microcnn::add::AddParams::new(
        l.input_q.scale,
        l.input_q.zero_point,
        skip_q.scale,
        skip_q.zero_point,
        l.output_q.scale,
        l.output_q.zero_point,
        ActivationRange { min: l.act[0], max: l.act[1] },
    )
}

/// The runtime window of a pooling layer.
pub fn window(size: [usize; 2], stride: [usize; 2], padding: PadSpec) -> Window {
    Window {
        kernel_h: size[0],
        kernel_w: size[1],
        stride_h: stride[0],
        stride_w: stride[1],
        dilation_h: 1,
        dilation_w: 1,
        padding: padding.padding(),
    }
}
