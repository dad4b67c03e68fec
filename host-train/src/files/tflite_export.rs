//! `microcnn export-tflite`: writes a quantized model — our own weights, scales and zero points —
//! as a TensorFlow Lite flatbuffer, so Netron, TFLite and TFLite Micro can open it and check
//! our arithmetic. Built with the same generated bindings the importer reads with
//! ([`super::tflite_schema`]); no field numbers are written by hand.
//!
//! A `microcnn` metadata entry carries what TFLite has no field for — the model name, the class
//! names, the layer names and the model's source — so `import` of an exported file gives back
//! the same `quantized.json`, and `emit` the same Rust.

use super::tflite_schema::tflite as fb;
use crate::graph::{QModel, QOp, QParams};
use crate::model::spec::{PadName, PadSpec};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// Name of the metadata entry holding [`MicrocnnMetadata`].
pub const METADATA_NAME: &str = "microcnn";

/// What an export records beyond TFLite's fields (JSON in a metadata buffer).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MicrocnnMetadata {
    /// Model name.
    pub name: String,
    /// Class names.
    pub classes: Vec<String>,
    /// Layer names, in order.
    pub layers: Vec<String>,
    /// Where the model came from.
    pub source: String,
}

fn padding(p: &PadSpec, layer: &str) -> Result<fb::Padding> {
    match p {
        PadSpec::Named(PadName::Same) => Ok(fb::Padding::Same),
        PadSpec::Named(PadName::Valid) | PadSpec::Named(PadName::ValidFloor) => Ok(fb::Padding::Valid),
        _ => bail!("layer `{layer}`: explicit padding has no TFLite equivalent (TFLite only has SAME and VALID)"),
    }
}

fn act(a: [i8; 2]) -> fb::ActivationFunctionType {
    // TFLite derives the clamp from the fused activation and the output quantization exactly as
    // the quantizer did, so the clamp identifies the activation.
    match a {
        [-128, 127] => fb::ActivationFunctionType::None,
        [_, 127] => fb::ActivationFunctionType::Relu,
        _ => fb::ActivationFunctionType::Relu6,
    }
}

/// Tensors, buffers and operator codes as the export adds them.
#[derive(Default)]
struct Parts {
    tensors: Vec<fb::Tensor>,
    buffers: Vec<fb::Buffer>,
    codes: Vec<fb::BuiltinOperator>,
}

impl Parts {
    fn activation(&mut self, name: String, shape: Vec<i32>, q: QParams) -> i32 {
        self.tensors.push(fb::Tensor {
            shape: Some(shape),
            type_: fb::TensorType::Int8,
            name: Some(name),
            quantization: Some(Box::new(fb::QuantizationParameters {
                scale: Some(vec![q.scale]),
                zero_point: Some(vec![q.zero_point as i64]),
                ..Default::default()
            })),
            ..Default::default()
        });
        self.tensors.len() as i32 - 1
    }

    #[allow(clippy::too_many_arguments)]
    fn constant(
        &mut self,
        name: String,
        shape: Vec<i32>,
        ty: fb::TensorType,
        data: Vec<u8>,
        scales: Vec<f32>,
        dim: i32,
    ) -> i32 {
        self.buffers.push(fb::Buffer { data: Some(data), ..Default::default() });
        let quantization = (!scales.is_empty()).then(|| {
            Box::new(fb::QuantizationParameters {
                zero_point: Some(vec![0; scales.len()]),
                scale: Some(scales),
                quantized_dimension: dim,
                ..Default::default()
            })
        });
        self.tensors.push(fb::Tensor {
            shape: Some(shape),
            type_: ty,
            buffer: self.buffers.len() as u32 - 1,
            name: Some(name),
            quantization,
            ..Default::default()
        });
        self.tensors.len() as i32 - 1
    }

    fn opcode(&mut self, code: fb::BuiltinOperator) -> u32 {
        match self.codes.iter().position(|&c| c == code) {
            Some(i) => i as u32,
            None => {
                self.codes.push(code);
                self.codes.len() as u32 - 1
            }
        }
    }
}

/// Serialises `q` as a `.tflite` flatbuffer.
pub fn export(q: &QModel) -> Result<Vec<u8>> {
    use fb::BuiltinOperator as B;
    use fb::BuiltinOptions as O;
    q.validate().context("export-tflite needs a valid quantized model")?;
    let mut p = Parts { buffers: vec![fb::Buffer::default()], ..Default::default() }; // buffer 0: the empty sentinel
    let mut ops: Vec<fb::Operator> = Vec::new();
    let shape4 = |s: [usize; 3]| vec![1, s[0] as i32, s[1] as i32, s[2] as i32];
    let input = p.activation("input".into(), shape4(q.input), q.input_q);
    let mut tensor_ids = vec![input]; // our tensor id → flatbuffer tensor index
    for (i, l) in q.layers.iter().enumerate() {
        let cur = tensor_ids[q.source_of(i)];
        let last = i + 1 == q.layers.len();
        let out_shape = if matches!(l.op, QOp::Dense { .. } | QOp::Softmax { .. }) && l.output[..2] == [1, 1] {
            vec![1, l.output[2] as i32]
        } else {
            shape4(l.output)
        };
        let out = p.activation(if last { "scores".into() } else { l.name.clone() }, out_shape, l.output_q);
        let fused = act(l.act);
        let bias_scales =
            |ws: &[f32]| ws.iter().map(|&s| (l.input_q.scale as f64 * s as f64) as f32).collect::<Vec<_>>();
        let le = |v: &[i32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let (code, inputs, options) = match &l.op {
            QOp::Conv {
                filter_shape: f,
                stride,
                dilation,
                padding: pad,
                depth_multiplier,
                weights,
                weight_scales,
                bias,
                ..
            } => {
                let w = p.constant(
                    format!("{}/filter", l.name),
                    f.iter().map(|&d| d as i32).collect(),
                    fb::TensorType::Int8,
                    weights.iter().map(|&v| v as u8).collect(),
                    weight_scales.clone(),
                    if depth_multiplier.is_some() { 3 } else { 0 },
                );
                let b = p.constant(
                    format!("{}/bias", l.name),
                    vec![bias.len() as i32],
                    fb::TensorType::Int32,
                    le(bias),
                    bias_scales(weight_scales),
                    0,
                );
                let pad = padding(pad, &l.name)?;
                let (sh, sw, dh, dw) = (stride[0] as i32, stride[1] as i32, dilation[0] as i32, dilation[1] as i32);
                let (code, options) = match depth_multiplier {
                    Some(m) => (
                        B::DepthwiseConv2d,
                        O::DepthwiseConv2DOptions(Box::new(fb::DepthwiseConv2DOptions {
                            padding: pad,
                            stride_w: sw,
                            stride_h: sh,
                            depth_multiplier: *m as i32,
                            fused_activation_function: fused,
                            dilation_w_factor: dw,
                            dilation_h_factor: dh,
                        })),
                    ),
                    None => (
                        B::Conv2d,
                        O::Conv2DOptions(Box::new(fb::Conv2DOptions {
                            padding: pad,
                            stride_w: sw,
                            stride_h: sh,
                            fused_activation_function: fused,
                            dilation_w_factor: dw,
                            dilation_h_factor: dh,
                            ..Default::default()
                        })),
                    ),
                };
                (code, vec![cur, w, b], Some(options))
            }
            QOp::TransposeConv { filter_shape: f, stride, padding: pad, weights, weight_scales, bias, .. } => {
                // TFLite's operand order: output shape, filter, input, bias.
                let shape = p.constant(
                    format!("{}/output_shape", l.name),
                    vec![4],
                    fb::TensorType::Int32,
                    le(&[1, l.output[0] as i32, l.output[1] as i32, l.output[2] as i32]),
                    vec![],
                    0,
                );
                let w = p.constant(
                    format!("{}/filter", l.name),
                    f.iter().map(|&d| d as i32).collect(),
                    fb::TensorType::Int8,
                    weights.iter().map(|&v| v as u8).collect(),
                    weight_scales.clone(),
                    0,
                );
                let b = p.constant(
                    format!("{}/bias", l.name),
                    vec![bias.len() as i32],
                    fb::TensorType::Int32,
                    le(bias),
                    bias_scales(weight_scales),
                    0,
                );
                let options = fb::TransposeConvOptions {
                    padding: padding(pad, &l.name)?,
                    stride_w: stride[1] as i32,
                    stride_h: stride[0] as i32,
                    fused_activation_function: fused,
                    ..Default::default()
                };
                (B::TransposeConv, vec![shape, w, cur, b], Some(O::TransposeConvOptions(Box::new(options))))
            }
            QOp::Resize { align_corners, half_pixel_centers } => {
                let size = p.constant(
                    format!("{}/size", l.name),
                    vec![2],
                    fb::TensorType::Int32,
                    le(&[l.output[0] as i32, l.output[1] as i32]),
                    vec![],
                    0,
                );
                let options = fb::ResizeNearestNeighborOptions {
                    align_corners: *align_corners,
                    half_pixel_centers: *half_pixel_centers,
                };
                (B::ResizeNearestNeighbor, vec![cur, size], Some(O::ResizeNearestNeighborOptions(Box::new(options))))
            }
            QOp::Dense { units, weights, weight_scales, bias, .. } => {
                let depth = weights.len() / units;
                let w = p.constant(
                    format!("{}/weights", l.name),
                    vec![*units as i32, depth as i32],
                    fb::TensorType::Int8,
                    weights.iter().map(|&v| v as u8).collect(),
                    weight_scales.clone(),
                    0,
                );
                let b = p.constant(
                    format!("{}/bias", l.name),
                    vec![*units as i32],
                    fb::TensorType::Int32,
                    le(bias),
                    bias_scales(weight_scales),
                    0,
                );
                let options = fb::FullyConnectedOptions { fused_activation_function: fused, ..Default::default() };
                (B::FullyConnected, vec![cur, w, b], Some(O::FullyConnectedOptions(Box::new(options))))
            }
            QOp::Pool { max, size, stride, padding: pad } => {
                let options = fb::Pool2DOptions {
                    padding: padding(pad, &l.name)?,
                    stride_w: stride[1] as i32,
                    stride_h: stride[0] as i32,
                    filter_width: size[1] as i32,
                    filter_height: size[0] as i32,
                    fused_activation_function: fused,
                };
                let code = if *max { B::MaxPool2d } else { B::AveragePool2d };
                (code, vec![cur], Some(O::Pool2DOptions(Box::new(options))))
            }
            QOp::Mean { .. } => {
                let axis =
                    p.constant(format!("{}/axis", l.name), vec![2], fb::TensorType::Int32, le(&[1, 2]), vec![], 0);
                (B::Mean, vec![cur, axis], Some(O::ReducerOptions(Box::new(fb::ReducerOptions { keep_dims: true }))))
            }
            QOp::Add { skip, .. } => {
                let options = fb::AddOptions { fused_activation_function: fused, ..Default::default() };
                (B::Add, vec![cur, tensor_ids[*skip]], Some(O::AddOptions(Box::new(options))))
            }
            QOp::Clamp => {
                if l.act[1] != 127 {
                    bail!("layer `{}`: a standalone ReLU6 has no bit-exact TFLite int8 equivalent; fuse it into the previous layer", l.name);
                }
                (B::Relu, vec![cur], None)
            }
            QOp::Softmax { beta, .. } => {
                (B::Softmax, vec![cur], Some(O::SoftmaxOptions(Box::new(fb::SoftmaxOptions { beta: *beta }))))
            }
            QOp::Pad { before, after, value } => {
                let pads: Vec<i32> =
                    [0, 0].into_iter().chain((0..3).flat_map(|d| [before[d] as i32, after[d] as i32])).collect();
                let pads =
                    p.constant(format!("{}/paddings", l.name), vec![4, 2], fb::TensorType::Int32, le(&pads), vec![], 0);
                if *value == l.output_q.zero_point {
                    (B::Pad, vec![cur, pads], None)
                } else {
                    // PADV2's constant is a quantized scalar with the output's quantization.
                    let v = p.activation(format!("{}/value", l.name), vec![], l.output_q);
                    p.buffers.push(fb::Buffer { data: Some(vec![*value as u8]), ..Default::default() });
                    p.tensors[v as usize].buffer = p.buffers.len() as u32 - 1;
                    (B::Padv2, vec![cur, pads, v], None)
                }
            }
            QOp::Concat { axis, others } => {
                let inputs = std::iter::once(cur).chain(others.iter().map(|&t| tensor_ids[t])).collect();
                let options = fb::ConcatenationOptions { axis: *axis as i32 + 1, fused_activation_function: fused };
                (B::Concatenation, inputs, Some(O::ConcatenationOptions(Box::new(options))))
            }
            QOp::Logistic => (B::Logistic, vec![cur], None),
            QOp::HardSwish => (B::HardSwish, vec![cur], None),
            QOp::Transpose { perm } => {
                let perm4: Vec<i32> = [0].into_iter().chain(perm.iter().map(|&a| a as i32 + 1)).collect();
                let t = p.constant(format!("{}/perm", l.name), vec![4], fb::TensorType::Int32, le(&perm4), vec![], 0);
                (B::Transpose, vec![cur, t], None)
            }
            QOp::Requantize { .. } => {
                if l.act == [i8::MIN, i8::MAX] {
                    (B::Quantize, vec![cur], None)
                } else if l.act == [l.output_q.zero_point, i8::MAX] {
                    (B::Relu, vec![cur], None)
                } else {
                    bail!("layer `{}`: a requantization clamped to {:?} has no TFLite int8 equivalent", l.name, l.act)
                }
            }
            QOp::Binary { kind, other, other_shape, other_q, constant } => {
                let b = match other {
                    Some(t) => tensor_ids[*t],
                    None => {
                        let v = p.activation(format!("{}/constant", l.name), shape4(*other_shape), *other_q);
                        p.buffers.push(fb::Buffer {
                            data: Some(constant.iter().map(|&x| x as u8).collect()),
                            ..Default::default()
                        });
                        p.tensors[v as usize].buffer = p.buffers.len() as u32 - 1;
                        v
                    }
                };
                match kind {
                    crate::graph::BinaryKind::Add => {
                        let o = fb::AddOptions { fused_activation_function: fused, ..Default::default() };
                        (B::Add, vec![cur, b], Some(O::AddOptions(Box::new(o))))
                    }
                    crate::graph::BinaryKind::Sub => {
                        let o = fb::SubOptions { fused_activation_function: fused, ..Default::default() };
                        (B::Sub, vec![cur, b], Some(O::SubOptions(Box::new(o))))
                    }
                    crate::graph::BinaryKind::Mul => {
                        let o = fb::MulOptions { fused_activation_function: fused };
                        (B::Mul, vec![cur, b], Some(O::MulOptions(Box::new(o))))
                    }
                }
            }
            QOp::LeakyRelu { alpha } => {
                (B::LeakyRelu, vec![cur], Some(O::LeakyReluOptions(Box::new(fb::LeakyReluOptions { alpha: *alpha }))))
            }
            QOp::Tanh => (B::Tanh, vec![cur], None),
            QOp::L2Pool { .. } => {
                bail!("layer `{}`: TFLite has no int8 L2_POOL_2D kernel; this model cannot be exported", l.name)
            }
        };
        let opcode_index = p.opcode(code);
        ops.push(fb::Operator {
            opcode_index,
            inputs: Some(inputs),
            outputs: Some(vec![out]),
            builtin_options: options,
            ..Default::default()
        });
        tensor_ids.push(out);
    }
    let meta = MicrocnnMetadata {
        name: q.name.clone(),
        classes: q.classes.clone(),
        layers: q.layers.iter().map(|l| l.name.clone()).collect(),
        source: q.source.clone(),
    };
    p.buffers.push(fb::Buffer { data: Some(serde_json::to_vec(&meta)?), ..Default::default() });
    let meta_buffer = p.buffers.len() as u32 - 1;
    let operator_codes = p
        .codes
        .iter()
        .map(|&c| fb::OperatorCode {
            deprecated_builtin_code: (c as i32).min(127) as i8,
            version: 1,
            builtin_code: c,
            ..Default::default()
        })
        .collect();
    let model = fb::Model {
        version: 3,
        operator_codes: Some(operator_codes),
        subgraphs: Some(vec![fb::SubGraph {
            tensors: Some(p.tensors),
            inputs: Some(vec![input]),
            outputs: Some(vec![*tensor_ids.last().expect("the input at least")]),
            operators: Some(ops),
            name: Some("main".into()),
        }]),
        description: Some(format!("microcnn export of `{}` ({})", q.name, q.source)),
        buffers: Some(p.buffers),
        metadata: Some(vec![fb::Metadata { name: Some(METADATA_NAME.into()), buffer: meta_buffer }]),
        ..Default::default()
    };
    let mut builder = planus::Builder::new();
    Ok(with_identifier_at_4(builder.finish(&model, Some(*b"TFL3")).to_vec()))
}

/// planus 1.3's `Builder::finish` swaps the root offset and the file identifier (it writes
/// `[identifier][offset from byte 4]`; planus-org/planus#377). The flatbuffer format, and every
/// TFLite reader, expect `[offset from byte 0][identifier]`: swap them back, or leave a buffer
/// that is already right alone.
fn with_identifier_at_4(mut buf: Vec<u8>) -> Vec<u8> {
    if buf.len() >= 8 && buf[0..4] == *b"TFL3" && buf[4..8] != *b"TFL3" {
        let from_4 = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
        buf[0..4].copy_from_slice(&(from_4 + 4).to_le_bytes());
        buf[4..8].copy_from_slice(b"TFL3");
    }
    buf
}
