//! The graph every model becomes, trained here or imported: tensors (0 = the input, `i + 1` = the
//! output of layer `i`) and int8 ops in execution order, each reading earlier tensors — any DAG of
//! branches and merges. One home for everything that works on it:
//!
//! - [`quantize()`] (in [`mod@quantize`]): a trained float net → the graph (post-training int8 quantization);
//! - [`validate`](QModel::validate): every field checked before anything trusts it;
//! - [`plan`](QModel::plan): the static arena over tensor lifetimes ([`ArenaPlan`]);
//! - [`run`](QModel::run) and [`run_layer`]: the host executor, running the graph through the `microcnn` runtime kernels with
//!   that plan (what the generated code does on the chip).
//!
//! Model files in and out of it (`quantized.json`, generated Rust, `.tflite`) live in
//! [`crate::files`].

mod exec;
mod plan;
pub mod quantize;
mod validate;

pub use exec::{
    add_params, concat_outer, hard_swish_params, leaky_params, mul_params, run_layer, squash_params, window,
};
pub use plan::ArenaPlan;
pub use quantize::{evaluate, quantize, Calibration};
pub use validate::MAX_MODEL_ACTIVATIONS;

use crate::model::spec::PadSpec;
use microcnn::Shape;
use serde::{Deserialize, Serialize};

/// Per-tensor quantization of an activation.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct QParams {
    /// Scale.
    pub scale: f32,
    /// Zero point.
    pub zero_point: i8,
}

impl QParams {
    fn from_range(lo: f32, hi: f32) -> Self {
        let (lo, hi) = (lo.min(0.0), hi.max(0.0));
        let scale = ((hi - lo) / 255.0).max(1e-8);
        let zp = (-128.0 - lo / scale).round().clamp(-128.0, 127.0) as i8;
        QParams { scale, zero_point: zp }
    }
}

/// What an int8 layer computes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum QOp {
    /// Convolution; `depth_multiplier` set means depthwise.
    Conv {
        /// OHWI (or 1×H×W×C·M for depthwise) filter shape `[n, h, w, c]`.
        filter_shape: [usize; 4],
        /// Stride `[h, w]`.
        stride: [usize; 2],
        /// Dilation `[h, w]`.
        dilation: [usize; 2],
        /// Padding.
        padding: PadSpec,
        /// Depthwise multiplier (None for a normal convolution).
        depth_multiplier: Option<usize>,
        /// Weights.
        weights: Vec<i8>,
        /// Per-channel weight scales.
        weight_scales: Vec<f32>,
        /// Biases.
        bias: Vec<i32>,
        /// Multipliers.
        multiplier: Vec<i32>,
        /// Shifts.
        shift: Vec<i32>,
    },
    /// TFLite's `TRANSPOSE_CONV` (learned upsampling) to the layer's `output` size: every input
    /// pixel scatters the filter times its value onto the output, `stride` apart.
    TransposeConv {
        /// OHWI filter shape `[out_c, k_h, k_w, in_c]` (TFLite's layout).
        filter_shape: [usize; 4],
        /// Stride `[h, w]`.
        stride: [usize; 2],
        /// TFLite's `same`/`valid` (the crop a forward convolution of the output would pad), or
        /// explicit `[top, bottom, left, right]` crops as PyTorch's `ConvTranspose2d(padding)`.
        padding: PadSpec,
        /// Weights.
        weights: Vec<i8>,
        /// Per-channel weight scales.
        weight_scales: Vec<f32>,
        /// Biases (zeros for a layer without).
        bias: Vec<i32>,
        /// Multipliers.
        multiplier: Vec<i32>,
        /// Shifts.
        shift: Vec<i32>,
    },
    /// TFLite's `RESIZE_NEAREST_NEIGHBOR` to the layer's `output` rows and columns (values copied;
    /// the same quantization in and out).
    Resize {
        /// Scale by `(in − 1)/(out − 1)` and round, lining up the corners.
        #[serde(default)]
        align_corners: bool,
        /// Sample at pixel centres (what `tf.image.resize` and Keras use).
        #[serde(default)]
        half_pixel_centers: bool,
    },
    /// Dense.
    Dense {
        /// Units.
        units: usize,
        /// `[units][depth]`.
        weights: Vec<i8>,
        /// Per-unit weight scales.
        weight_scales: Vec<f32>,
        /// Biases.
        bias: Vec<i32>,
        /// Multipliers.
        multiplier: Vec<i32>,
        /// Shifts.
        shift: Vec<i32>,
    },
    /// Max or average pooling (same quantization in and out).
    Pool {
        /// `true` for max, `false` for average.
        max: bool,
        /// Window `[h, w]`.
        size: [usize; 2],
        /// Stride `[h, w]`.
        stride: [usize; 2],
        /// Padding.
        padding: PadSpec,
    },
    /// L2-norm pooling.
    L2Pool {
        /// Window.
        size: [usize; 2],
        /// Stride.
        stride: [usize; 2],
        /// Padding.
        padding: PadSpec,
        /// `s_in / s_out`.
        multiplier: i32,
        /// Shift.
        shift: i32,
    },
    /// Global average pooling.
    Mean {
        /// `s_in / (s_out · H·W)`.
        multiplier: i32,
        /// Shift.
        shift: i32,
    },
    /// A standalone ReLU/ReLU6 on an unchanged quantization: a clamp.
    Clamp,
    /// Residual add: the previous layer's output plus tensor `skip` (0 = the model input,
    /// `i + 1` = the output of layer `i`), both rescaled as TFLite's int8 `ADD` does.
    Add {
        /// Tensor id of the second operand.
        skip: usize,
        /// Quantization of the second operand.
        skip_q: QParams,
    },
    /// Constant padding, TFLite's `PAD` (the value is the zero point) and `PADV2`; the same
    /// quantization in and out.
    Pad {
        /// Rows, columns, channels added before: `[top, left, front]`.
        before: [usize; 3],
        /// Rows, columns, channels added after: `[bottom, right, back]`.
        after: [usize; 3],
        /// The padding value.
        value: i8,
    },
    /// Concatenation of the layer's input and the tensors `others`, in that order, along `axis`
    /// (0 rows, 1 columns, 2 channels); one quantization for all (the values are copied, as
    /// TFLite Micro's int8 kernel does).
    Concat {
        /// 0, 1 or 2 for `[h, w, c]`.
        axis: usize,
        /// Tensor ids of the operands after the first.
        others: Vec<usize>,
    },
    /// `clamp(zp_out + MultiplyByQuantizedMultiplier(x − zp_in, M, shift), act)`: TFLite's
    /// int8 → int8 `QUANTIZE` (full clamp) and a `RELU` that changes the quantization (clamp
    /// `[zp_out, 127]`); `M`/`shift` encode `s_in / s_out`.
    Requantize {
        /// Multiplier.
        multiplier: i32,
        /// Shift.
        shift: i32,
    },
    /// TFLite's int8 `ADD`, `SUB` or `MUL` of the layer's input and a second operand — another
    /// tensor or a constant — with broadcasting (each axis equal or 1 in one of them).
    Binary {
        /// `add`, `sub` or `mul`.
        kind: BinaryKind,
        /// The second operand's tensor id; absent for a constant.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        other: Option<usize>,
        /// The second operand's shape `[h, w, c]`.
        other_shape: [usize; 3],
        /// The second operand's quantization.
        other_q: QParams,
        /// The constant operand's values (empty for a tensor).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        constant: Vec<i8>,
    },
    /// TFLite's int8 `LEAKY_RELU` with slope `alpha` (≥ 0) below zero.
    LeakyRelu {
        /// The slope for negative inputs.
        alpha: f32,
    },
    /// TFLite's `TRANSPOSE` of the three axes `[h, w, c]`: output axis `k` is input axis
    /// `perm[k]` (what PyTorch models converted to TFLite carry around NCHW code).
    Transpose {
        /// A permutation of 0, 1, 2.
        perm: [usize; 3],
    },
    /// TFLite's int8 `HARD_SWISH`, `x · ReLU6(x + 3) / 6`; its parameters derive from the
    /// input and output quantizations.
    HardSwish,
    /// TFLite's int8 `LOGISTIC` (output scale 1/256, zero point −128); its parameters derive
    /// from the input quantization.
    Logistic,
    /// TFLite's int8 `TANH` (output scale 1/128, zero point 0).
    Tanh,
    /// Softmax (output scale 1/256, zero point −128).
    Softmax {
        /// Input multiplier.
        input_multiplier: i32,
        /// Left shift.
        input_left_shift: i32,
        /// Smallest contributing difference.
        diff_min: i32,
        /// TFLite's β (the three fields above are derived from it and the input scale, and
        /// checked against them); 1 when absent.
        #[serde(default = "one")]
        beta: f32,
    },
}

fn one() -> f32 {
    1.0
}

/// The element-wise binary ops.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BinaryKind {
    /// `a + b`.
    Add,
    /// `a − b`.
    Sub,
    /// `a · b`.
    Mul,
}

/// One int8 layer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QLayer {
    /// Name from the model description.
    pub name: String,
    /// Input shape `[h, w, c]`.
    pub input: [usize; 3],
    /// Output shape `[h, w, c]`.
    pub output: [usize; 3],
    /// Input quantization.
    pub input_q: QParams,
    /// Output quantization.
    pub output_q: QParams,
    /// Output clamp (fused activation).
    pub act: [i8; 2],
    /// The tensor the layer reads (0 = the model input, `j + 1` = the output of layer `j`, an
    /// earlier layer); absent: the previous layer's output, as in a chain. With it (and the second
    /// operands of ops such as `add`) the layers form a DAG in execution order: any number of
    /// branches and merges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<usize>,
    /// The computation.
    #[serde(flatten)]
    pub op: QOp,
}

/// A quantized model: what `microcnn emit` turns into Rust.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QModel {
    /// Model name.
    pub name: String,
    /// Class names.
    pub classes: Vec<String>,
    /// Input `[h, w, c]`.
    pub input: [usize; 3],
    /// Input quantization (pixels in [0, 1]).
    pub input_q: QParams,
    /// Layers.
    pub layers: Vec<QLayer>,
    /// Where it came from (checkpoint path, calibration).
    pub source: String,
    /// What the output means (classification unless trained for detection or segmentation).
    #[serde(default, skip_serializing_if = "is_classify")]
    pub task: crate::model::spec::Task,
}

fn is_classify(t: &crate::model::spec::Task) -> bool {
    *t == crate::model::spec::Task::Classify
}

fn shape3(s: Shape) -> [usize; 3] {
    [s.h, s.w, s.c]
}

/// `Shape` of `[h, w, c]` with batch 1.
pub fn img(s: [usize; 3]) -> Shape {
    Shape::image(s[0], s[1], s[2])
}

impl QModel {
    /// Element count of layer `i`'s output.
    pub fn out_len(&self, i: usize) -> usize {
        self.layers[i].output.iter().product()
    }

    /// Element count of tensor `t`.
    pub fn tensor_len(&self, t: usize) -> usize {
        if t == 0 {
            self.input.iter().product()
        } else {
            self.out_len(t - 1)
        }
    }

    /// The tensor layer `i` reads first (its `from`, by default the previous layer's output).
    pub fn source_of(&self, i: usize) -> usize {
        self.layers[i].from.unwrap_or(i)
    }

    /// Shape `[h, w, c]` of tensor `t`.
    pub fn tensor_shape(&self, t: usize) -> [usize; 3] {
        if t == 0 {
            self.input
        } else {
            self.layers[t - 1].output
        }
    }

    /// Quantization of tensor `t`.
    pub fn tensor_q(&self, t: usize) -> QParams {
        if t == 0 {
            self.input_q
        } else {
            self.layers[t - 1].output_q
        }
    }

    /// The tensors layer `i` reads, its main input first: the edges of the graph.
    pub fn inputs_of(&self, i: usize) -> Vec<usize> {
        let src = self.source_of(i);
        match &self.layers[i].op {
            QOp::Add { skip, .. } => vec![src, *skip],
            QOp::Concat { others, .. } => std::iter::once(src).chain(others.iter().copied()).collect(),
            QOp::Binary { other: Some(t), .. } => vec![src, *t],
            _ => vec![src],
        }
    }

    /// Number of output values (every element of the last layer's output).
    pub fn num_classes(&self) -> usize {
        self.layers.last().map(|l| l.output.iter().product()).unwrap_or(0)
    }

    /// Shape `[h, w, c]` of the model's output.
    pub fn output_shape(&self) -> [usize; 3] {
        self.layers.last().map_or(self.input, |l| l.output)
    }

    /// Whether the output is a map (more than one pixel: a segmentation or heat map), whose
    /// channels are the classes, rather than one vector of scores.
    pub fn is_map(&self) -> bool {
        let [h, w, _] = self.output_shape();
        h * w > 1
    }

    /// How many classes `classes` names: the channels of a map output, the values before the box
    /// of a localization model, every value otherwise.
    pub fn class_count(&self) -> usize {
        if self.is_map() {
            self.output_shape()[2]
        } else {
            self.task.class_count(self.num_classes())
        }
    }

    /// Quantizes `[0, 1]` pixels to the model's input.
    pub fn quantize_input(&self, pixels: &[f32]) -> Vec<i8> {
        pixels.iter().map(|&p| microcnn::quant::quantize_f32(p, self.input_q.scale, self.input_q.zero_point)).collect()
    }
}
