//! `microcnn import MODEL.tflite`: a fully int8 TensorFlow Lite model becomes a
//! [`QModel`] — the same `quantized.json` a trained model gets — so `emit`, the report,
//! `export-tflite` and the QEMU apps take it unchanged.
//!
//! The flatbuffer is read with the bindings generated from TFLite's schema
//! ([`super::tflite_schema`]), which check every offset. Each operator is mapped to the runtime
//! op with TFLite Micro's int8 semantics: requantization multipliers from the float scales
//! exactly as TFLM's `Prepare` computes them, fused activations as TFLM clamps them, TFLite's
//! VALID padding as the runtime's `ValidFloor` (rows and columns a non-dividing stride never
//! reads are reported per layer). Every unsupported operator, tensor type or option is listed
//! at once, with its operator index, and nothing is written.
//!
//! The graph this version accepts is a chain (each operator reads the previous one's output)
//! with `ADD`s that merge an earlier tensor back in — the residual networks the field uses.

use super::tflite_schema::tflite as fb;
use crate::graph::{BinaryKind, QLayer, QModel, QOp, QParams};
use crate::model::spec::{PadName, PadSpec};
use anyhow::{anyhow, bail, Context, Result};
use microcnn::pool::MeanParams;
use microcnn::quant::conv_multipliers;
use microcnn::softmax::SoftmaxParams;
use microcnn::{ActivationRange, Requant};
use std::collections::HashMap;

/// What `import` found besides the model: per-layer notes (unread rows/columns).
#[derive(Debug)]
pub struct Imported {
    /// The model, validated.
    pub model: QModel,
    /// One line per layer that TFLite's VALID padding makes skip input rows or columns.
    pub notes: Vec<String>,
    /// The flatbuffer's tensor index for each of the model's tensors (0 = the int8 input,
    /// `i + 1` = layer `i`'s output): what `compare --layers` reads from TFLite Micro.
    pub tflite_tensors: Vec<usize>,
}

/// Largest `.tflite` accepted (the flatbuffer format itself stops at 2 GiB).
pub const MAX_FILE_BYTES: usize = 1 << 31;

/// Imports `bytes` (a `.tflite` file). The model is called `name` if given, else what a
/// microcnn export recorded, else `default_name`.
///
/// # Errors
///
/// A malformed flatbuffer, a model that is not fully int8, and every unsupported operator or
/// option (all of them, by operator index) are errors; so is a model the runtime would refuse.
pub fn import_tflite(bytes: &[u8], name: Option<&str>, default_name: &str) -> Result<Imported> {
    if bytes.len() < 8 {
        bail!("{} bytes is too short for a TFLite flatbuffer", bytes.len());
    }
    if bytes.len() > MAX_FILE_BYTES {
        bail!("{} bytes is larger than a flatbuffer can be (2 GiB)", bytes.len());
    }
    if &bytes[4..8] != b"TFL3" {
        bail!(
            "not a TensorFlow Lite model: the file identifier is {:?}, not \"TFL3\" (is this a .tflite file?)",
            String::from_utf8_lossy(&bytes[4..8])
        );
    }
    let root = <fb::ModelRef<'_> as planus::ReadAsRoot>::read_as_root(bytes)
        .map_err(|e| anyhow!("malformed TFLite flatbuffer: {e}"))?;
    let model = fb::Model::try_from(root).map_err(|e| anyhow!("malformed TFLite flatbuffer: {e}"))?;
    if model.version != 3 {
        bail!("TFLite schema version {} (only version 3 exists)", model.version);
    }
    let subgraphs = model.subgraphs.as_deref().unwrap_or_default();
    let [sg] = subgraphs else {
        bail!("{} subgraphs: only single-subgraph models (no control flow) are supported", subgraphs.len());
    };
    let g = Graph::new(&model, sg)?;
    let mut problems = Vec::new();
    for (i, op) in g.ops.iter().enumerate().filter(|(i, _)| !g.shape_only[*i]) {
        if let Err(e) = g.check_op(op) {
            problems.push(format!("operator {i} ({}): {e:#}", g.op_name(op)));
        }
    }
    if !problems.is_empty() {
        bail!("this model cannot be imported:\n  {}", problems.join("\n  "));
    }
    g.build(name, default_name)
}

/// The subgraph with its tensors and operator codes resolved.
struct Graph<'m> {
    model: &'m fb::Model,
    tensors: &'m [fb::Tensor],
    ops: &'m [fb::Operator],
    codes: Vec<Option<fb::BuiltinOperator>>,
    input: usize,
    output: usize,
    /// Operators that only compute the shape operand of a RESHAPE (SHAPE → STRIDED_SLICE → PACK,
    /// what a Keras model with an open batch size converts to): the static output shape is
    /// known, so they are skipped.
    shape_only: Vec<bool>,
}

/// A tensor's quantization: one scale and zero point, or one per channel.
struct Quant {
    scales: Vec<f32>,
    zero_points: Vec<i64>,
}

fn type_name(t: fb::TensorType) -> String {
    format!("{t:?}").to_uppercase()
}

impl<'m> Graph<'m> {
    fn new(model: &'m fb::Model, sg: &'m fb::SubGraph) -> Result<Self> {
        let tensors = sg.tensors.as_deref().unwrap_or_default();
        let ops = sg.operators.as_deref().unwrap_or_default();
        if ops.is_empty() {
            bail!("the model has no operators");
        }
        let codes = model
            .operator_codes
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|c| {
                // Codes below 127 may sit only in the deprecated byte field (older files).
                let code = (c.deprecated_builtin_code as i32).max(c.builtin_code as i32);
                fb::BuiltinOperator::try_from(code).ok()
            })
            .collect();
        let one = |v: &Option<Vec<i32>>, what: &str| -> Result<usize> {
            match v.as_deref().unwrap_or_default() {
                [t] => usize::try_from(*t)
                    .ok()
                    .filter(|&t| t < tensors.len())
                    .ok_or_else(|| anyhow!("the {what} tensor index {t} is out of range ({} tensors)", tensors.len())),
                other => bail!("{} {what}s: only models with one input and one output are supported", other.len()),
            }
        };
        let input = one(&sg.inputs, "input")?;
        let output = one(&sg.outputs, "output")?;
        let mut g = Graph { model, tensors, ops, codes, input, output, shape_only: vec![false; ops.len()] };
        g.shape_only = g.shape_computations();
        for (t, what) in [(input, "input"), (output, "output")] {
            let ty = g.tensors[t].type_;
            match ty {
                fb::TensorType::Int8 => {}
                // Float at the edges of an int8 model: TFLite's converter puts a QUANTIZE after
                // the input and a DEQUANTIZE before the output, which import takes over.
                fb::TensorType::Float32 if g.float_edge(t, what == "input") => {}
                fb::TensorType::Float32 => bail!(
                    "the model's {what} is FLOAT32 without a QUANTIZE/DEQUANTIZE at that edge: \
                     this is a float model; convert it to full int8 with a representative dataset"
                ),
                fb::TensorType::Uint8 => bail!(
                    "the model's {what} is UINT8: this is an old-style (uint8, asymmetric) quantized model; \
                     microcnn runs TFLite's int8 scheme — re-convert with the TF2 converter and tf.int8"
                ),
                fb::TensorType::Int16 => {
                    bail!("the model's {what} is INT16 (16x8 quantization); only int8 models are supported")
                }
                other => bail!("the model's {what} is {}; only int8 models are supported", type_name(other)),
            }
        }
        Ok(g)
    }

    fn shape_computations(&self) -> Vec<bool> {
        use fb::BuiltinOperator as B;
        let index = |v: &Option<Vec<i32>>| -> Vec<usize> {
            v.as_deref().unwrap_or_default().iter().filter_map(|&t| usize::try_from(t).ok()).collect()
        };
        let integer = |t: usize| {
            self.tensors.get(t).is_some_and(|t| matches!(t.type_, fb::TensorType::Int32 | fb::TensorType::Int64))
        };
        let mut shape_tensors = std::collections::HashSet::new();
        for op in self.ops {
            if self.op_code(op) == Some(B::Reshape) {
                shape_tensors.extend(index(&op.inputs).get(1).copied().filter(|&t| integer(t)));
            }
        }
        let mut skip = vec![false; self.ops.len()];
        for (i, op) in self.ops.iter().enumerate().rev() {
            let computes_shapes = matches!(
                self.op_code(op),
                Some(B::Shape | B::StridedSlice | B::Pack | B::Concatenation | B::Slice | B::Gather | B::Cast)
            );
            let outs = index(&op.outputs);
            if computes_shapes && !outs.is_empty() && outs.iter().all(|t| shape_tensors.contains(t) && integer(*t)) {
                skip[i] = true;
                shape_tensors.extend(index(&op.inputs).into_iter().filter(|&t| integer(t)));
            }
        }
        skip
    }

    /// Whether the float tensor `t` is the model input read only by a QUANTIZE to int8 (the
    /// first operator), or the model output written by a DEQUANTIZE from int8 (the last).
    fn float_edge(&self, t: usize, input: bool) -> bool {
        let (op, code) = if input {
            (self.ops.first(), fb::BuiltinOperator::Quantize)
        } else {
            (self.ops.last(), fb::BuiltinOperator::Dequantize)
        };
        let Some(op) = op else { return false };
        let io = |v: &Option<Vec<i32>>| v.as_deref().unwrap_or_default().to_vec();
        let (ins, outs) = (io(&op.inputs), io(&op.outputs));
        let other = if input { outs.first() } else { ins.first() };
        let this = if input { ins.first() } else { outs.first() };
        self.op_code(op) == Some(code)
            && this.copied() == Some(t as i32)
            && ins.len() == 1
            && outs.len() == 1
            && other.and_then(|&o| usize::try_from(o).ok()).and_then(|o| self.tensors.get(o)).map(|t| t.type_)
                == Some(fb::TensorType::Int8)
    }

    fn op_code(&self, op: &fb::Operator) -> Option<fb::BuiltinOperator> {
        self.codes.get(op.opcode_index as usize).copied().flatten()
    }

    fn op_name(&self, op: &fb::Operator) -> String {
        match self.model.operator_codes.as_deref().unwrap_or_default().get(op.opcode_index as usize) {
            Some(c) if c.custom_code.is_some() => format!("CUSTOM {:?}", c.custom_code.as_deref().unwrap_or("")),
            _ => match self.op_code(op) {
                Some(code) => tflite_op_name(code),
                None => format!("unknown operator code index {}", op.opcode_index),
            },
        }
    }

    /// Tensor `i` of `op`'s inputs (`None` for an absent optional input).
    fn input(&self, op: &fb::Operator, i: usize) -> Result<Option<usize>> {
        let inputs = op.inputs.as_deref().unwrap_or_default();
        match inputs.get(i) {
            None | Some(-1) => Ok(None),
            Some(&t) => usize::try_from(t)
                .ok()
                .filter(|&t| t < self.tensors.len())
                .map(Some)
                .ok_or_else(|| anyhow!("input {i} names tensor {t}, out of range ({} tensors)", self.tensors.len())),
        }
    }

    fn need_input(&self, op: &fb::Operator, i: usize, what: &str) -> Result<usize> {
        self.input(op, i)?.ok_or_else(|| anyhow!("missing {what} (input {i})"))
    }

    fn output_of(&self, op: &fb::Operator) -> Result<usize> {
        match op.outputs.as_deref().unwrap_or_default() {
            [t] => usize::try_from(*t)
                .ok()
                .filter(|&t| t < self.tensors.len())
                .ok_or_else(|| anyhow!("output names tensor {t}, out of range")),
            other => bail!("{} outputs (one expected)", other.len()),
        }
    }

    fn shape(&self, t: usize) -> Result<Vec<usize>> {
        let s = self.tensors[t].shape.as_deref().unwrap_or_default();
        s.iter()
            .map(|&d| usize::try_from(d).ok().filter(|&d| d > 0 && d <= microcnn::shape::MAX_EXTENT))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                anyhow!(
                    "tensor {t} has shape {s:?}: every dimension must be between 1 and {}",
                    microcnn::shape::MAX_EXTENT
                )
            })
    }

    /// `[h, w, c]` of a tensor of batch 1 (rank 4 NHWC, rank 2 `[1, n]`, rank 1, a scalar).
    fn hwc(&self, t: usize) -> Result<[usize; 3]> {
        match self.shape(t)?.as_slice() {
            [1, h, w, c] => Ok([*h, *w, *c]),
            [1, n] | [n] => Ok([1, 1, *n]),
            [] => Ok([1, 1, 1]), // a scalar (a constant operand)
            [1, w, c] => Ok([1, *w, *c]),
            other => bail!("tensor {t} has shape {other:?}: only batch 1 and ranks 1 to 4 are supported"),
        }
    }

    fn quant(&self, t: usize) -> Result<Quant> {
        let q = self.tensors[t].quantization.as_deref();
        let scales = q.and_then(|q| q.scale.clone()).unwrap_or_default();
        let zero_points = q.and_then(|q| q.zero_point.clone()).unwrap_or_default();
        if scales.is_empty() {
            bail!("tensor {t} ({}) has no quantization scale", self.tensor_name(t));
        }
        if zero_points.len() != scales.len() {
            bail!("tensor {t}: {} scales but {} zero points", scales.len(), zero_points.len());
        }
        if let Some(s) = scales.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            bail!("tensor {t} ({}): scale {s} is not a positive number", self.tensor_name(t));
        }
        Ok(Quant { scales, zero_points })
    }

    fn tensor_name(&self, t: usize) -> &str {
        self.tensors[t].name.as_deref().unwrap_or("")
    }

    /// Per-tensor int8 activation quantization of `t`.
    fn act_q(&self, t: usize) -> Result<QParams> {
        if self.tensors[t].type_ != fb::TensorType::Int8 {
            bail!("tensor {t} ({}) is {}, not INT8", self.tensor_name(t), type_name(self.tensors[t].type_));
        }
        let q = self.quant(t)?;
        if q.scales.len() != 1 {
            bail!("activation tensor {t} has {} scales (per-tensor quantization expected)", q.scales.len());
        }
        let zp = i8::try_from(q.zero_points[0])
            .map_err(|_| anyhow!("tensor {t}: zero point {} is outside int8", q.zero_points[0]))?;
        Ok(QParams { scale: q.scales[0], zero_point: zp })
    }

    fn data(&self, t: usize) -> Result<&'m [u8]> {
        let b = self.tensors[t].buffer as usize;
        let buffers = self.model.buffers.as_deref().unwrap_or_default();
        let buf = buffers
            .get(b)
            .ok_or_else(|| anyhow!("tensor {t} names buffer {b}, out of range ({} buffers)", buffers.len()))?;
        if buf.offset > 1 {
            bail!("tensor {t}: data stored outside the flatbuffer (models over 2 GB) is not supported");
        }
        let data = buf.data.as_deref().unwrap_or_default();
        if data.is_empty() {
            bail!("tensor {t} ({}) has no data: a constant (weights, bias, axes) was expected", self.tensor_name(t));
        }
        Ok(data)
    }

    /// A constant int8 weight tensor: values, per-channel (or per-tensor) scales, zero points 0.
    fn weights(&self, t: usize, channels: usize) -> Result<(Vec<i8>, Vec<f32>)> {
        if self.tensors[t].type_ != fb::TensorType::Int8 {
            bail!("weights (tensor {t}) are {}: only int8 weights are supported", type_name(self.tensors[t].type_));
        }
        let n: usize = self.shape(t)?.iter().product();
        let data = self.data(t)?;
        if data.len() != n {
            bail!("weights (tensor {t}): {} bytes of data for {n} values", data.len());
        }
        let q = self.quant(t)?;
        if q.zero_points.iter().any(|&z| z != 0) {
            bail!("weights (tensor {t}) have non-zero zero points (int8 weights must be symmetric)");
        }
        let scales = match q.scales.len() {
            1 => vec![q.scales[0]; channels],
            k if k == channels => q.scales,
            k => bail!("weights (tensor {t}): {k} scales for {channels} output channels"),
        };
        Ok((data.iter().map(|&b| b as i8).collect(), scales))
    }

    /// A constant int32 bias of `channels` entries, or zeros when the op has none.
    fn bias(&self, t: Option<usize>, channels: usize) -> Result<Vec<i32>> {
        let Some(t) = t else { return Ok(vec![0; channels]) };
        if self.tensors[t].type_ != fb::TensorType::Int32 {
            bail!("bias (tensor {t}) is {}: only int32 biases are supported", type_name(self.tensors[t].type_));
        }
        let data = self.data(t)?;
        if data.len() != 4 * channels {
            bail!("bias (tensor {t}): {} bytes for {channels} channels", data.len());
        }
        Ok(data.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    /// A constant INT32 or INT64 tensor's values.
    fn int_data(&self, t: usize) -> Result<Vec<i64>> {
        let data = self.data(t)?;
        let n: usize = self.shape(t)?.iter().product();
        let v: Vec<i64> = match self.tensors[t].type_ {
            fb::TensorType::Int32 => {
                data.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64).collect()
            }
            fb::TensorType::Int64 => data
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect(),
            other => bail!(
                "tensor {t} ({}) is {}: an INT32 or INT64 constant was expected",
                self.tensor_name(t),
                type_name(other)
            ),
        };
        if v.len() != n {
            bail!("tensor {t} ({}): {} values of data for shape {:?}", self.tensor_name(t), v.len(), self.shape(t)?);
        }
        Ok(v)
    }

    /// PAD/PADV2's `[before, after]` per axis of `[h, w, c]`, from its paddings tensor.
    fn paddings(&self, op: &fb::Operator) -> Result<([usize; 3], [usize; 3])> {
        let x = self.need_input(op, 0, "input")?;
        let rank = self.shape(x)?.len();
        let t = self.need_input(op, 1, "paddings")?;
        let v = self.int_data(t).context("paddings")?;
        if v.len() != 2 * rank || !(1..=4).contains(&rank) {
            bail!("paddings: {} values for a rank-{rank} input (2 per axis expected)", v.len());
        }
        if let Some(p) = v.iter().find(|&&p| !(0..=microcnn::shape::MAX_EXTENT as i64).contains(&p)) {
            bail!("paddings: {p} is negative or absurdly large");
        }
        // Axes counted from the last: rank 4 is NHWC; lower ranks drop leading axes.
        let (mut before, mut after) = ([0usize; 3], [0usize; 3]);
        for a in 0..rank {
            let from_end = rank - a; // 1 = channels
            let (b, e) = (v[2 * a] as usize, v[2 * a + 1] as usize);
            if from_end > 3 {
                if b != 0 || e != 0 {
                    bail!("paddings: padding the batch axis is not supported");
                }
                continue;
            }
            before[3 - from_end] = b;
            after[3 - from_end] = e;
        }
        Ok((before, after))
    }

    /// TRANSPOSE's permutation of `[h, w, c]`: a rank-4 permutation that keeps the batch axis
    /// first (or a rank-2 one that keeps it, the identity).
    fn transpose_perm(&self, op: &fb::Operator) -> Result<[usize; 3]> {
        let t = self.need_input(op, 1, "permutation")?;
        let v = self.int_data(t).context("permutation")?;
        match v.as_slice() {
            [0, a, b, c] => {
                let p = [*a, *b, *c].map(|x| x - 1);
                let mut sorted = p;
                sorted.sort_unstable();
                if sorted != [0, 1, 2] {
                    bail!("permutation {v:?} is not a permutation");
                }
                Ok(p.map(|x| x as usize))
            }
            [0, 1] => Ok([0, 1, 2]),
            other => bail!("permutation {other:?}: only rank-4 (or rank-2) permutations that keep the batch axis first are supported"),
        }
    }

    /// Whether `op` (a QUANTIZE) maps int8 to int8: a requantization inside the model.
    fn int8_requantize(&self, op: &fb::Operator) -> bool {
        let int8 = |t: Result<usize>| t.is_ok_and(|t| self.tensors[t].type_ == fb::TensorType::Int8);
        int8(self.need_input(op, 0, "input")) && int8(self.output_of(op))
    }

    /// CONCATENATION's axis as an index into `[h, w, c]`.
    fn concat_axis(&self, op: &fb::Operator) -> Result<usize> {
        let Some(fb::BuiltinOptions::ConcatenationOptions(o)) = Self::options(op) else {
            bail!("CONCATENATION without its options")
        };
        let rank = self.shape(self.output_of(op)?)?.len() as i32;
        let axis = if o.axis < 0 { o.axis + rank } else { o.axis };
        let from_end = rank - axis;
        if !(1..=3).contains(&from_end) || axis < 0 {
            bail!("axis {} of a rank-{rank} tensor: only rows, columns or channels can be concatenated", o.axis);
        }
        Ok((3 - from_end) as usize)
    }

    fn options(op: &fb::Operator) -> Option<&fb::BuiltinOptions> {
        op.builtin_options.as_ref()
    }

    /// Everything about `op` that this importer cannot express, as one error.
    fn check_op(&self, op: &fb::Operator) -> Result<()> {
        use fb::BuiltinOperator as B;
        let Some(code) = self.op_code(op) else { bail!("not a builtin operator") };
        if code == B::Quantize && self.int8_requantize(op) {
            return Ok(());
        }
        if code == B::Quantize || code == B::Dequantize {
            let edge = if code == B::Quantize {
                self.float_edge(self.input, true) && std::ptr::eq(op, &self.ops[0])
            } else {
                self.float_edge(self.output, false) && std::ptr::eq(op, &self.ops[self.ops.len() - 1])
            };
            if !edge {
                bail!("only int8→int8 QUANTIZE (a requantization), a float→int8 QUANTIZE of the model input and an int8→float DEQUANTIZE of its output are supported");
            }
            return Ok(());
        }
        let supported = matches!(
            code,
            B::Conv2d
                | B::DepthwiseConv2d
                | B::FullyConnected
                | B::MaxPool2d
                | B::AveragePool2d
                | B::Mean
                | B::Add
                | B::Softmax
                | B::Reshape
                | B::Squeeze
                | B::Relu
                | B::Relu6
                | B::Pad
                | B::Padv2
                | B::Concatenation
                | B::Logistic
                | B::Tanh
                | B::LeakyRelu
                | B::Quantize
                | B::Sub
                | B::Mul
                | B::HardSwish
                | B::Transpose
                | B::TransposeConv
                | B::ResizeNearestNeighbor
        );
        if !supported {
            bail!("not supported yet (microcnn imports CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, MAX_POOL_2D, AVERAGE_POOL_2D, MEAN, ADD, SUB, MUL (with broadcasting), CONCATENATION, PAD, PADV2, LOGISTIC, TANH, HARD_SWISH, TRANSPOSE, TRANSPOSE_CONV, RESIZE_NEAREST_NEIGHBOR, SOFTMAX, RELU, RELU6, LEAKY_RELU, RESHAPE, SQUEEZE, and QUANTIZE/DEQUANTIZE at float edges)");
        }
        let out = self.output_of(op)?;
        self.act_q(out).context("output")?;
        let x = self.need_input(op, data_operand(code), "input")?;
        self.act_q(x).context("input")?;
        match (code, Self::options(op)) {
            (B::TransposeConv, Some(fb::BuiltinOptions::TransposeConvOptions(o))) => {
                activation_ok(o.fused_activation_function)?;
                if o.quantized_bias_type != fb::TensorType::Float32 && o.quantized_bias_type != fb::TensorType::Int32 {
                    bail!("quantized_bias_type {} (int32 biases only)", type_name(o.quantized_bias_type));
                }
                let s = self.need_input(op, 0, "output shape")?;
                let v = self
                    .int_data(s)
                    .context("output shape (a computed output shape is not supported; convert with a fixed batch)")?;
                let want: Vec<i64> = self.shape(out)?.iter().map(|&d| d as i64).collect();
                if v != want {
                    bail!("output shape tensor {v:?} differs from the output tensor's shape {want:?}");
                }
            }
            (B::ResizeNearestNeighbor, Some(fb::BuiltinOptions::ResizeNearestNeighborOptions(o))) => {
                if o.align_corners && o.half_pixel_centers {
                    bail!("align_corners and half_pixel_centers together (TFLite refuses that too)");
                }
                let s = self.need_input(op, 1, "size")?;
                let v = self.int_data(s).context("size (a computed size is not supported)")?;
                let [h, w, _] = self.hwc(out)?;
                if v != [h as i64, w as i64] {
                    bail!("size {v:?} differs from the output tensor's {}×{}", h, w);
                }
                if self.act_q(x)? != self.act_q(out)? {
                    bail!("a resize that changes the quantization (TFLite Micro copies the values)");
                }
            }
            (B::Conv2d, Some(fb::BuiltinOptions::Conv2DOptions(o))) => {
                activation_ok(o.fused_activation_function)?;
                if o.quantized_bias_type != fb::TensorType::Float32 && o.quantized_bias_type != fb::TensorType::Int32 {
                    bail!("quantized_bias_type {} (int32 biases only)", type_name(o.quantized_bias_type));
                }
            }
            (B::DepthwiseConv2d, Some(fb::BuiltinOptions::DepthwiseConv2DOptions(o))) => {
                activation_ok(o.fused_activation_function)?
            }
            (B::FullyConnected, Some(fb::BuiltinOptions::FullyConnectedOptions(o))) => {
                activation_ok(o.fused_activation_function)?;
                if o.weights_format != fb::FullyConnectedOptionsWeightsFormat::Default {
                    bail!("shuffled weights format {:?}", o.weights_format);
                }
            }
            (B::MaxPool2d | B::AveragePool2d, Some(fb::BuiltinOptions::Pool2DOptions(o))) => {
                activation_ok(o.fused_activation_function)?
            }
            (B::Add | B::Sub | B::Mul, opts) => {
                let fused = match opts {
                    Some(fb::BuiltinOptions::AddOptions(o)) => o.fused_activation_function,
                    Some(fb::BuiltinOptions::SubOptions(o)) => o.fused_activation_function,
                    Some(fb::BuiltinOptions::MulOptions(o)) => o.fused_activation_function,
                    _ => fb::ActivationFunctionType::None,
                };
                activation_ok(fused)?;
                let a = self.need_input(op, 0, "first operand")?;
                let b = self.need_input(op, 1, "second operand")?;
                let (sa, sb) = (self.hwc(a)?, self.hwc(b)?);
                if (0..3).any(|d| sa[d] != sb[d] && sa[d] != 1 && sb[d] != 1) {
                    bail!("operands {:?} and {:?} do not broadcast", self.shape(a)?, self.shape(b)?);
                }
                let is_const = |t: usize| self.data(t).is_ok();
                if is_const(a) && is_const(b) {
                    bail!("both operands are constants (fold them before converting)");
                }
                if code == B::Sub && is_const(a) {
                    bail!("SUB of a constant minus a tensor is not supported yet");
                }
                for t in [a, b] {
                    self.act_q(t)?;
                }
            }
            (B::Mean, _) => {
                let axes = self.need_input(op, 1, "axes")?;
                let data = self.data(axes)?;
                let mut ax: Vec<i32> =
                    data.chunks_exact(4).map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
                ax.sort_unstable();
                if ax != [1, 2] || self.shape(x)?.len() != 4 {
                    bail!("MEAN over axes {ax:?}: only the spatial mean of an NHWC tensor (axes [1, 2]) is supported");
                }
            }
            (B::Pad | B::Padv2, _) => {
                self.paddings(op)?;
                let (inq, outq) = (self.act_q(x)?, self.act_q(out)?);
                if inq != outq {
                    bail!("input quantization {inq:?} differs from the output's {outq:?} (a padding copies values)");
                }
                if code == B::Padv2 {
                    let c = self.need_input(op, 2, "constant value")?;
                    let cq = self.act_q(c).context("constant value")?;
                    if cq != outq || self.data(c)?.len() != 1 {
                        bail!("the constant value must be one int8 with the output's quantization");
                    }
                }
            }
            (B::Concatenation, Some(fb::BuiltinOptions::ConcatenationOptions(o))) => {
                if o.fused_activation_function != fb::ActivationFunctionType::None {
                    bail!("a fused activation on CONCATENATION is not supported");
                }
                self.concat_axis(op)?;
                let outq = self.act_q(out)?;
                let n = op.inputs.as_deref().map_or(0, |v| v.len());
                for k in 0..n {
                    let t = self.need_input(op, k, "operand")?;
                    let q = self.act_q(t).with_context(|| format!("operand {k}"))?;
                    if q != outq {
                        bail!("operand {k} is quantized as {q:?}, the output as {outq:?}: microcnn concatenates one quantization (TFLite's converter normally unifies them)");
                    }
                }
            }
            (B::Logistic | B::Tanh, _) => {
                let (want, what) = if code == B::Logistic {
                    (QParams { scale: 1.0 / 256.0, zero_point: -128 }, "scale 1/256, zero point −128")
                } else {
                    (QParams { scale: 1.0 / 128.0, zero_point: 0 }, "scale 1/128, zero point 0")
                };
                if self.act_q(out)? != want {
                    bail!("output quantization {:?}: int8 {} writes {what}", self.act_q(out)?, tflite_op_name(code));
                }
                microcnn::activation::SquashParams::new(self.act_q(x)?.scale, 0).map_err(|_| {
                    anyhow!(
                        "input scale {} is outside what int8 {} can rescale",
                        self.act_q(x).map(|q| q.scale).unwrap_or(0.0),
                        tflite_op_name(code)
                    )
                })?;
            }
            (B::LeakyRelu, Some(fb::BuiltinOptions::LeakyReluOptions(o))) => {
                if !(o.alpha.is_finite() && o.alpha >= 0.0) {
                    bail!("alpha {}: only a finite slope ≥ 0 is supported", o.alpha);
                }
            }
            (B::Relu6, _) if self.act_q(x)? != self.act_q(out)? => {
                bail!("a RELU6 whose output quantization differs from its input's is not supported (TFLite Micro clamps without rescaling there)");
            }
            (B::Transpose, _) => {
                self.transpose_perm(op)?;
                if self.act_q(x)? != self.act_q(out)? {
                    bail!("a TRANSPOSE that changes the quantization");
                }
            }
            (B::HardSwish, _) => {
                let (i, o) = (self.act_q(x)?, self.act_q(out)?);
                microcnn::activation::HardSwishParams::new(i.scale, i.zero_point, o.scale, o.zero_point).map_err(
                    |_| {
                        anyhow!(
                            "input scale {} and output scale {}: the output multiplier would need a left shift",
                            i.scale,
                            o.scale
                        )
                    },
                )?;
            }
            (B::Softmax | B::Reshape | B::Squeeze | B::Relu | B::Relu6 | B::Quantize, _) => {}
            (_, other) => bail!("unexpected options {:?}", other.map(|_| "…")),
        }
        Ok(())
    }

    /// The chain of layers, once every operator has passed [`Graph::check_op`].
    fn build(&self, name: Option<&str>, default_name: &str) -> Result<Imported> {
        use fb::BuiltinOperator as B;
        // Our tensor ids: 0 = the model input, i + 1 = the output of layer i.
        let mut id: HashMap<usize, usize> = HashMap::from([(self.input, 0)]);
        let mut layers: Vec<QLayer> = Vec::new();
        let mut notes = Vec::new();
        let input_shape = self.hwc(self.input)?;
        // A float input: the int8 model starts at its QUANTIZE, whose output quantization the
        // host (`run`) applies to float inputs exactly as TFLite's QUANTIZE does.
        let float_in = self.tensors[self.input].type_ == fb::TensorType::Float32;
        let first_int8 = if float_in { self.output_of(&self.ops[0])? } else { self.input };
        let input_q = self.act_q(first_int8)?;
        if float_in {
            id.insert(first_int8, 0);
            notes.push(format!(
                "float32 input: quantized with scale {} and zero point {} as TFLite's QUANTIZE does (`run` takes float .npy)",
                input_q.scale, input_q.zero_point
            ));
        }
        // Shape and quantization of each of our tensors, by our id.
        let mut tens: Vec<([usize; 3], QParams)> = vec![(input_shape, input_q)];
        let mut produced_by_layer: HashMap<usize, usize> = HashMap::new();
        for (i, op) in self.ops.iter().enumerate().filter(|(i, _)| !self.shape_only[*i]) {
            let code = self.op_code(op).ok_or_else(|| anyhow!("operator {i}: not a builtin"))?;
            if code == B::Quantize && !self.int8_requantize(op) {
                continue; // the float input's, taken over above (check_op allows no other)
            }
            let at = |e: anyhow::Error| e.context(format!("operator {i} ({})", tflite_op_name(code)));
            let produced = |t: usize| -> Result<usize> {
                id.get(&t).copied().ok_or_else(|| {
                    at(anyhow!(
                        "it reads tensor {t} (`{}`), which neither the model input nor an earlier operator produces (a constant operand is not supported for this op)",
                        self.tensor_name(t)
                    ))
                })
            };
            let mut main = self.need_input(op, data_operand(code), "input").map_err(at)?;
            // A binary op's second operand; ADD and MUL take a constant first operand second.
            let mut other = None;
            if matches!(code, B::Add | B::Sub | B::Mul) {
                let b = self.need_input(op, 1, "second operand").map_err(at)?;
                if !id.contains_key(&main) && code != B::Sub {
                    other = Some(main);
                    main = b;
                } else {
                    other = Some(b);
                }
            }
            let src = produced(main)?;
            if code == B::Dequantize {
                id.insert(self.output_of(op)?, src);
                notes.push(
                    "float32 output: the int8 output dequantized as TFLite's DEQUANTIZE does (`run --float`)".into(),
                );
                continue;
            }
            let out_t = self.output_of(op).map_err(at)?;
            let out_q = self.act_q(out_t).map_err(at)?;
            let out_shape = self.hwc(out_t).map_err(at)?;
            // The layer reads our tensor `src` with the shape TFLite gives the operand: a RESHAPE
            // in between changes only the shape (the memory is flat NHWC either way).
            let in_shape = self.hwc(main).map_err(at)?;
            let in_q = tens[src].1;
            if code == B::Reshape || code == B::Squeeze {
                // Flat NHWC memory does not change: the output is the same tensor.
                if out_shape.iter().product::<usize>() != in_shape.iter().product::<usize>() || out_q != in_q {
                    bail!("operator {i} ({}) changes the element count or the quantization", tflite_op_name(code));
                }
                id.insert(out_t, src);
                continue;
            }
            let act = |f: fb::ActivationFunctionType| -> [i8; 2] { activation(f, out_q) };
            let (op_q, clamp) = match (code, Self::options(op)) {
                (B::Conv2d | B::DepthwiseConv2d, opts) => {
                    let (stride, dilation, pad, fused, depthwise) = match opts {
                        Some(fb::BuiltinOptions::Conv2DOptions(o)) => (
                            [o.stride_h, o.stride_w],
                            [o.dilation_h_factor, o.dilation_w_factor],
                            o.padding,
                            o.fused_activation_function,
                            false,
                        ),
                        Some(fb::BuiltinOptions::DepthwiseConv2DOptions(o)) => (
                            [o.stride_h, o.stride_w],
                            [o.dilation_h_factor, o.dilation_w_factor],
                            o.padding,
                            o.fused_activation_function,
                            true,
                        ),
                        _ => bail!("operator {i}: convolution without its options"),
                    };
                    let stride = positive2(stride).map_err(|e| at(e.context("stride")))?;
                    let dilation = positive2(dilation).map_err(|e| at(e.context("dilation")))?;
                    let f = self.need_input(op, 1, "filter").map_err(at)?;
                    let fs = self.shape(f).map_err(at)?;
                    let [fo, fh, fw, fi] = fs[..] else { bail!("operator {i}: filter shape {fs:?} is not 4-D") };
                    let oc = out_shape[2];
                    let (weights, weight_scales) = self.weights(f, oc).map_err(at)?;
                    let bias = self.bias(self.input(op, 2).map_err(at)?, oc).map_err(at)?;
                    let depth_multiplier = if depthwise {
                        if fo != 1 || fi != oc || oc % in_shape[2] != 0 {
                            bail!("operator {i}: depthwise filter {fs:?} for {} → {oc} channels", in_shape[2]);
                        }
                        Some(oc / in_shape[2])
                    } else {
                        if fo != oc || fi != in_shape[2] {
                            bail!("operator {i}: filter {fs:?} for {} → {oc} channels", in_shape[2]);
                        }
                        None
                    };
                    let padding = self.padding(pad, in_shape, [fh, fw], stride, dilation, i, &mut notes);
                    let rq = multipliers(in_q.scale, &weight_scales, out_q.scale)?;
                    (
                        QOp::Conv {
                            filter_shape: [fo, fh, fw, fi],
                            stride,
                            dilation,
                            padding,
                            depth_multiplier,
                            weights,
                            weight_scales,
                            bias,
                            multiplier: rq.iter().map(|r| r.multiplier).collect(),
                            shift: rq.iter().map(|r| r.shift).collect(),
                        },
                        act(fused),
                    )
                }
                (B::TransposeConv, Some(fb::BuiltinOptions::TransposeConvOptions(o))) => {
                    let stride = positive2([o.stride_h, o.stride_w]).map_err(|e| at(e.context("stride")))?;
                    let f = self.need_input(op, 1, "filter").map_err(at)?;
                    let fs = self.shape(f).map_err(at)?;
                    let [fo, fh, fw, fi] = fs[..] else { bail!("operator {i}: filter shape {fs:?} is not 4-D") };
                    let oc = out_shape[2];
                    if fo != oc || fi != in_shape[2] {
                        bail!("operator {i}: filter {fs:?} for {} → {oc} channels", in_shape[2]);
                    }
                    let (weights, weight_scales) = self.weights(f, oc).map_err(at)?;
                    let bias = match self.input(op, 3).map_err(at)? {
                        Some(b) => self.bias(Some(b), oc).map_err(at)?,
                        None => vec![0; oc],
                    };
                    let rq = multipliers(in_q.scale, &weight_scales, out_q.scale)?;
                    let padding =
                        PadSpec::Named(if o.padding == fb::Padding::Same { PadName::Same } else { PadName::Valid });
                    (
                        QOp::TransposeConv {
                            filter_shape: [fo, fh, fw, fi],
                            stride,
                            padding,
                            weights,
                            weight_scales,
                            bias,
                            multiplier: rq.iter().map(|r| r.multiplier).collect(),
                            shift: rq.iter().map(|r| r.shift).collect(),
                        },
                        act(o.fused_activation_function),
                    )
                }
                (B::ResizeNearestNeighbor, Some(fb::BuiltinOptions::ResizeNearestNeighborOptions(o))) => (
                    QOp::Resize { align_corners: o.align_corners, half_pixel_centers: o.half_pixel_centers },
                    [i8::MIN, i8::MAX],
                ),
                (B::FullyConnected, Some(fb::BuiltinOptions::FullyConnectedOptions(o))) => {
                    let units = out_shape[2];
                    let depth: usize = in_shape.iter().product();
                    let f = self.need_input(op, 1, "weights").map_err(at)?;
                    let fs = self.shape(f).map_err(at)?;
                    // keep_num_dims on a feature map: the dense layer applies to every pixel,
                    // which is exactly a 1×1 convolution (TFLM's arithmetic is the same).
                    let per_pixel = fs == [units, in_shape[2]]
                        && depth != in_shape[2]
                        && out_shape == [in_shape[0], in_shape[1], units];
                    if fs != [units, depth] && !per_pixel {
                        bail!("operator {i}: weights {fs:?} for {depth} inputs → {units} units");
                    }
                    let (weights, mut weight_scales) = self.weights(f, units).map_err(at)?;
                    if per_pixel {
                        let bias = self.bias(self.input(op, 2).map_err(at)?, units).map_err(at)?;
                        let rq = multipliers(in_q.scale, &weight_scales, out_q.scale)?;
                        notes.push(format!("operator {i}: FULLY_CONNECTED applied to every pixel of a {in_shape:?} map (keep_num_dims): imported as a 1×1 convolution"));
                        let conv = QOp::Conv {
                            filter_shape: [units, 1, 1, in_shape[2]],
                            stride: [1, 1],
                            dilation: [1, 1],
                            padding: PadSpec::Named(PadName::Valid),
                            depth_multiplier: None,
                            weights,
                            weight_scales,
                            bias,
                            multiplier: rq.iter().map(|r| r.multiplier).collect(),
                            shift: rq.iter().map(|r| r.shift).collect(),
                        };
                        (conv, act(o.fused_activation_function))
                    } else {
                        // Per-tensor weights (TFLite's converter before 2.21) keep one scale, so the
                        // runtime gets one multiplier, as TFLM does.
                        if self.quant(f).map_err(at)?.scales.len() == 1 {
                            weight_scales.truncate(1);
                        }
                        let bias = self.bias(self.input(op, 2).map_err(at)?, units).map_err(at)?;
                        let rq = multipliers(in_q.scale, &weight_scales, out_q.scale)?;
                        (
                            QOp::Dense {
                                units,
                                weights,
                                weight_scales,
                                bias,
                                multiplier: rq.iter().map(|r| r.multiplier).collect(),
                                shift: rq.iter().map(|r| r.shift).collect(),
                            },
                            act(o.fused_activation_function),
                        )
                    }
                }
                (B::MaxPool2d | B::AveragePool2d, Some(fb::BuiltinOptions::Pool2DOptions(o))) => {
                    if out_q != in_q {
                        bail!(
                            "operator {i} ({}): the output's quantization differs from the input's",
                            tflite_op_name(code)
                        );
                    }
                    let size = positive2([o.filter_height, o.filter_width]).map_err(|e| at(e.context("filter")))?;
                    let stride = positive2([o.stride_h, o.stride_w]).map_err(|e| at(e.context("stride")))?;
                    let padding = self.padding(o.padding, in_shape, size, stride, [1, 1], i, &mut notes);
                    (QOp::Pool { max: code == B::MaxPool2d, size, stride, padding }, act(o.fused_activation_function))
                }
                (B::Mean, _) => {
                    let count = in_shape[0] * in_shape[1];
                    let p = MeanParams::new(
                        in_q.scale,
                        in_q.zero_point,
                        out_q.scale,
                        out_q.zero_point,
                        count,
                        ActivationRange::NONE,
                    );
                    (QOp::Mean { multiplier: p.requant.multiplier, shift: p.requant.shift }, [i8::MIN, i8::MAX])
                }
                (B::Add | B::Sub | B::Mul, opts) => {
                    let b = other.ok_or_else(|| anyhow!("operator {i}: no second operand"))?;
                    let fused = match opts {
                        Some(fb::BuiltinOptions::AddOptions(o)) => o.fused_activation_function,
                        Some(fb::BuiltinOptions::SubOptions(o)) => o.fused_activation_function,
                        Some(fb::BuiltinOptions::MulOptions(o)) => o.fused_activation_function,
                        _ => fb::ActivationFunctionType::None,
                    };
                    let b_shape = self.hwc(b).map_err(at)?;
                    let tensor = id.get(&b).copied();
                    match tensor {
                        // The residual form: two tensors of one shape.
                        Some(skip) if code == B::Add && b_shape == in_shape && tens[skip].0 == b_shape => {
                            (QOp::Add { skip, skip_q: tens[skip].1 }, act(fused))
                        }
                        _ => {
                            let kind = match code {
                                B::Add => BinaryKind::Add,
                                B::Sub => BinaryKind::Sub,
                                _ => BinaryKind::Mul,
                            };
                            let (other_q, constant) = match tensor {
                                Some(t) => (tens[t].1, Vec::new()),
                                None => {
                                    let data = self.data(b).map_err(at)?;
                                    if self.tensors[b].type_ != fb::TensorType::Int8
                                        || data.len() != b_shape.iter().product::<usize>()
                                    {
                                        bail!(
                                            "operator {i} ({}): the constant operand is not {} int8 values",
                                            tflite_op_name(code),
                                            b_shape.iter().product::<usize>()
                                        );
                                    }
                                    (self.act_q(b).map_err(at)?, data.iter().map(|&v| v as i8).collect())
                                }
                            };
                            if let Some(t) = tensor {
                                if tens[t].0 != b_shape {
                                    bail!(
                                        "operator {i} ({}): the second operand is a reshaped view; not supported yet",
                                        tflite_op_name(code)
                                    );
                                }
                            }
                            (QOp::Binary { kind, other: tensor, other_shape: b_shape, other_q, constant }, act(fused))
                        }
                    }
                }
                (B::Softmax, opts) => {
                    let beta = match opts {
                        Some(fb::BuiltinOptions::SoftmaxOptions(o)) => o.beta,
                        _ => 1.0,
                    };
                    let p = SoftmaxParams::new(in_q.scale, beta, out_q.scale, out_q.zero_point).map_err(|_| {
                        anyhow!("operator {i} (SOFTMAX): output quantization {:?} (int8 softmax writes scale 1/256, zero point −128) or beta {beta}", out_q)
                    })?;
                    (
                        QOp::Softmax {
                            input_multiplier: p.input_multiplier,
                            input_left_shift: p.input_left_shift,
                            diff_min: p.diff_min,
                            beta,
                        },
                        [i8::MIN, i8::MAX],
                    )
                }
                (B::Pad | B::Padv2, _) => {
                    let (before, after) = self.paddings(op).map_err(at)?;
                    let value = if code == B::Padv2 {
                        let c = self.need_input(op, 2, "constant value").map_err(at)?;
                        self.data(c).map_err(at)?[0] as i8
                    } else {
                        out_q.zero_point
                    };
                    (QOp::Pad { before, after, value }, [i8::MIN, i8::MAX])
                }
                (B::Concatenation, _) => {
                    let axis = self.concat_axis(op).map_err(at)?;
                    let n = op.inputs.as_deref().map_or(0, |v| v.len());
                    let mut others = Vec::new();
                    for k in 1..n {
                        let t = self.need_input(op, k, "operand").map_err(at)?;
                        let ours = produced(t)?;
                        if self.hwc(t).map_err(at)? != tens[ours].0 {
                            bail!("operator {i} (CONCATENATION): operand {k} is a reshaped view; not supported yet");
                        }
                        others.push(ours);
                    }
                    (QOp::Concat { axis, others }, [i8::MIN, i8::MAX])
                }
                (B::Logistic, _) => (QOp::Logistic, [i8::MIN, i8::MAX]),
                (B::HardSwish, _) => (QOp::HardSwish, [i8::MIN, i8::MAX]),
                (B::Transpose, _) => {
                    (QOp::Transpose { perm: self.transpose_perm(op).map_err(at)? }, [i8::MIN, i8::MAX])
                }
                (B::Tanh, _) => (QOp::Tanh, [i8::MIN, i8::MAX]),
                (B::Relu, _) | (B::Quantize, _) if out_q != in_q || code == B::Quantize => {
                    let r = microcnn::quant::quantize_multiplier(in_q.scale as f64 / out_q.scale as f64);
                    let clamp = if code == B::Relu { [out_q.zero_point, i8::MAX] } else { [i8::MIN, i8::MAX] };
                    (QOp::Requantize { multiplier: r.multiplier, shift: r.shift }, clamp)
                }
                (B::LeakyRelu, Some(fb::BuiltinOptions::LeakyReluOptions(o))) => {
                    (QOp::LeakyRelu { alpha: o.alpha }, [i8::MIN, i8::MAX])
                }
                (B::Relu | B::Relu6, _) => {
                    let f = if code == B::Relu {
                        fb::ActivationFunctionType::Relu
                    } else {
                        fb::ActivationFunctionType::Relu6
                    };
                    (QOp::Clamp, act(f))
                }
                _ => bail!("operator {i} ({}): not supported", tflite_op_name(code)),
            };
            let short = match code {
                B::Conv2d => "conv",
                B::DepthwiseConv2d => "dw",
                B::FullyConnected => "fc",
                B::MaxPool2d => "maxpool",
                B::AveragePool2d => "avgpool",
                B::Mean => "mean",
                B::Add => "add",
                B::Sub => "sub",
                B::Mul => "mul",
                B::Softmax => "softmax",
                B::Pad | B::Padv2 => "pad",
                B::Concatenation => "concat",
                B::Logistic => "logistic",
                B::Tanh => "tanh",
                B::HardSwish => "hswish",
                B::Transpose => "transpose",
                B::TransposeConv => "tconv",
                B::ResizeNearestNeighbor => "resize",
                B::LeakyRelu => "leaky",
                B::Quantize => "requant",
                _ => "relu",
            };
            let layer_name = format!("{short}{}", layers.len());
            // A dense layer reads its input flattened, as the trainer's models record it.
            let in_shape = if matches!(op_q, QOp::Dense { .. }) { [1, 1, in_shape.iter().product()] } else { in_shape };
            layers.push(QLayer {
                name: layer_name,
                input: in_shape,
                output: out_shape,
                input_q: in_q,
                output_q: out_q,
                act: clamp,
                from: (src != layers.len()).then_some(src),
                op: op_q,
            });
            tens.push((out_shape, out_q));
            id.insert(out_t, layers.len());
            produced_by_layer.insert(out_t, layers.len());
        }
        if id.get(&self.output) != Some(&layers.len()) {
            bail!("the model's output (tensor {}) is not the last operator's output", self.output);
        }
        let mut model = QModel {
            name: default_name.to_string(),
            classes: Vec::new(),
            input: input_shape,
            input_q,
            layers,
            source: format!("imported from a TensorFlow Lite flatbuffer ({} operators)", self.ops.len()),
            task: Default::default(),
        };
        // Numbered classes: a map output's channels, or every value of a vector.
        model.classes = (0..model.class_count()).map(|k| k.to_string()).collect();
        // A file microcnn exported names its layers and classes: keep them (checked below).
        if let Some(meta) = self.microcnn_metadata() {
            if meta.layers.len() == model.layers.len() && meta.classes.len() == model.classes.len() {
                for (l, n) in model.layers.iter_mut().zip(meta.layers) {
                    l.name = n;
                }
                model.classes = meta.classes;
                model.source = meta.source;
                model.name = meta.name;
            }
        }
        if let Some(n) = name {
            model.name = n.to_string();
        }
        model.validate().context("the imported model does not pass microcnn's checks")?;
        let mut tflite_tensors = vec![first_int8; model.layers.len() + 1];
        for (&t, &ours) in &id {
            // The producer's own tensor, not a RESHAPE/DEQUANTIZE alias of it.
            if ours > 0 && produced_by_layer.get(&t) == Some(&ours) {
                tflite_tensors[ours] = t;
            }
        }
        Ok(Imported { model, notes, tflite_tensors })
    }

    /// The names an export by microcnn recorded, if this file is one.
    fn microcnn_metadata(&self) -> Option<super::tflite_export::MicrocnnMetadata> {
        let meta = self
            .model
            .metadata
            .as_deref()?
            .iter()
            .find(|m| m.name.as_deref() == Some(super::tflite_export::METADATA_NAME))?;
        let data = self.model.buffers.as_deref()?.get(meta.buffer as usize)?.data.as_deref()?;
        serde_json::from_slice(data).ok()
    }

    /// TFLite padding as a model-file padding; VALID with a stride that does not divide becomes
    /// `valid_floor`, and the rows/columns it never reads are noted.
    #[allow(clippy::too_many_arguments)]
    fn padding(
        &self,
        pad: fb::Padding,
        input: [usize; 3],
        kernel: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
        op: usize,
        notes: &mut Vec<String>,
    ) -> PadSpec {
        if pad == fb::Padding::Same {
            return PadSpec::Named(PadName::Same);
        }
        let mut unread = Vec::new();
        for (axis, what) in [(0, "rows"), (1, "columns")] {
            let k_eff = (kernel[axis] - 1) * dilation[axis] + 1;
            if let Some(span) = input[axis].checked_sub(k_eff) {
                let left = span % stride[axis];
                if left > 0 {
                    unread.push(format!("the last {left} {what}"));
                }
            }
        }
        if unread.is_empty() {
            PadSpec::Named(PadName::Valid)
        } else {
            notes.push(format!(
                "operator {op}: VALID padding with stride {}×{} never reads {} of its {}×{} input",
                stride[0],
                stride[1],
                unread.join(" and "),
                input[0],
                input[1]
            ));
            PadSpec::Named(PadName::ValidFloor)
        }
    }
}

/// The operand that carries the data: TRANSPOSE_CONV lists its output shape and filter first.
fn data_operand(code: fb::BuiltinOperator) -> usize {
    if code == fb::BuiltinOperator::TransposeConv {
        2
    } else {
        0
    }
}

fn positive2(v: [i32; 2]) -> Result<[usize; 2]> {
    let f = |x: i32| usize::try_from(x).ok().filter(|&x| x > 0 && x <= microcnn::shape::MAX_EXTENT);
    match (f(v[0]), f(v[1])) {
        (Some(a), Some(b)) => Ok([a, b]),
        _ => bail!("{v:?} must be positive"),
    }
}

fn multipliers(s_in: f32, weight_scales: &[f32], s_out: f32) -> Result<Vec<Requant>> {
    let mut rq = vec![Requant::new(0, 0); weight_scales.len()];
    conv_multipliers(s_in, weight_scales, s_out, &mut rq).map_err(|e| anyhow!("{e}"))?;
    Ok(rq)
}

fn activation_ok(f: fb::ActivationFunctionType) -> Result<()> {
    match f {
        fb::ActivationFunctionType::None
        | fb::ActivationFunctionType::Relu
        | fb::ActivationFunctionType::Relu6
        | fb::ActivationFunctionType::ReluN1To1 => Ok(()),
        other => bail!("fused activation {other:?} is not supported"),
    }
}

/// TFLM's `CalculateActivationRangeQuantized`: the int8 clamp a fused activation becomes.
fn activation(f: fb::ActivationFunctionType, q: QParams) -> [i8; 2] {
    let quantize = |x: f32| (q.zero_point as i32).saturating_add((x / q.scale).round() as i32).clamp(-128, 127) as i8;
    match f {
        fb::ActivationFunctionType::Relu => [q.zero_point, 127],
        fb::ActivationFunctionType::Relu6 => {
            let r = ActivationRange::relu6(q.zero_point, q.scale);
            [r.min, r.max]
        }
        fb::ActivationFunctionType::ReluN1To1 => [quantize(-1.0), quantize(1.0)],
        _ => [i8::MIN, i8::MAX],
    }
}

/// TFLite's name of a builtin operator (`CONV_2D`).
pub fn tflite_op_name(code: fb::BuiltinOperator) -> String {
    use fb::BuiltinOperator as B;
    let known = match code {
        B::Conv2d => "CONV_2D",
        B::DepthwiseConv2d => "DEPTHWISE_CONV_2D",
        B::AveragePool2d => "AVERAGE_POOL_2D",
        B::MaxPool2d => "MAX_POOL_2D",
        B::FullyConnected => "FULLY_CONNECTED",
        B::L2Pool2d => "L2_POOL_2D",
        B::TransposeConv => "TRANSPOSE_CONV",
        _ => "",
    };
    if !known.is_empty() {
        return known.into();
    }
    // The generated names are the schema's in CamelCase: RESIZE_NEAREST_NEIGHBOR ← ResizeNearestNeighbor.
    let mut s = String::new();
    for (k, ch) in format!("{code:?}").chars().enumerate() {
        if ch.is_ascii_uppercase() && k > 0 {
            s.push('_');
        }
        s.push(ch.to_ascii_uppercase());
    }
    s
}
