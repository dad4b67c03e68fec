//! `microcnn export-tflite`: writes a quantized model — our own weights, scales and zero points —
//! as a TensorFlow Lite flatbuffer (schema v3), so Netron, TFLite and TFLite Micro can open it
//! and check our arithmetic. Field numbers follow the published `schema.fbs`.

use crate::quantize::{QModel, QOp, QParams};
use crate::spec::{PadName, PadSpec};
use anyhow::{bail, Context, Result};
use flatbuffers::{FlatBufferBuilder, WIPOffset};

// BuiltinOperator codes.
const ADD: i32 = 0;
const AVERAGE_POOL_2D: i32 = 1;
const CONV_2D: i32 = 3;
const DEPTHWISE_CONV_2D: i32 = 4;
const FULLY_CONNECTED: i32 = 9;
const MAX_POOL_2D: i32 = 17;
const RELU: i32 = 19;
const SOFTMAX: i32 = 25;
const MEAN: i32 = 40;
// BuiltinOptions union tags.
const OPT_CONV: u8 = 1;
const OPT_DEPTHWISE: u8 = 2;
const OPT_POOL: u8 = 5;
const OPT_FC: u8 = 8;
const OPT_SOFTMAX: u8 = 9;
const OPT_ADD: u8 = 11;
const OPT_REDUCER: u8 = 27;
// TensorType.
const INT32: i8 = 2;
const INT8: i8 = 9;
// Padding.
const SAME: i8 = 0;
const VALID: i8 = 1;

/// Slot offset of field `i` in a table's vtable.
const fn slot(i: u16) -> u16 {
    4 + 2 * i
}

struct TensorSpec {
    shape: Vec<i32>,
    ty: i8,
    buffer: u32,
    name: String,
    scales: Vec<f32>,
    zero_points: Vec<i64>,
    quantized_dimension: i32,
}

fn padding(p: &PadSpec, layer: &str) -> Result<i8> {
    match p {
        PadSpec::Named(PadName::Same) => Ok(SAME),
        PadSpec::Named(PadName::Valid) | PadSpec::Named(PadName::ValidFloor) => Ok(VALID),
        _ => bail!("layer `{layer}`: explicit padding has no TFLite equivalent (TFLite only has SAME and VALID)"),
    }
}

fn act(a: [i8; 2]) -> i8 {
    // TFLite derives the clamp from the fused activation and the output quantization exactly as
    // the quantizer did, so the clamp identifies the activation.
    match a {
        [-128, 127] => 0, // NONE
        [_, 127] => 1,    // RELU
        _ => 3,           // RELU6
    }
}

/// Serialises `q` as a `.tflite` flatbuffer.
pub fn export(q: &QModel) -> Result<Vec<u8>> {
    q.validate().context("export-tflite needs a valid quantized model")?;
    let mut fbb = FlatBufferBuilder::new();
    let mut buffers: Vec<Vec<u8>> = vec![Vec::new()]; // buffer 0 is the empty sentinel
    let mut tensors: Vec<TensorSpec> = Vec::new();
    let mut opcodes: Vec<i32> = Vec::new();
    struct Op {
        opcode: u32,
        inputs: Vec<i32>,
        outputs: Vec<i32>,
        options_type: u8,
        options: Vec<(u16, OptVal)>,
    }
    #[derive(Clone, Copy)]
    enum OptVal {
        I8(i8),
        I32(i32),
        F32(f32),
        Bool(bool),
    }
    let mut ops: Vec<Op> = Vec::new();
    let act_tensor = |tensors: &mut Vec<TensorSpec>, name: String, shape: Vec<i32>, qp: QParams| -> i32 {
        tensors.push(TensorSpec {
            shape,
            ty: INT8,
            buffer: 0,
            name,
            scales: vec![qp.scale],
            zero_points: vec![qp.zero_point as i64],
            quantized_dimension: 0,
        });
        tensors.len() as i32 - 1
    };
    let mut const_tensor = |tensors: &mut Vec<TensorSpec>,
                            name: String,
                            shape: Vec<i32>,
                            ty: i8,
                            data: Vec<u8>,
                            scales: Vec<f32>,
                            dim: i32|
     -> i32 {
        buffers.push(data);
        let zp = vec![0; scales.len()];
        tensors.push(TensorSpec {
            shape,
            ty,
            buffer: buffers.len() as u32 - 1,
            name,
            scales,
            zero_points: zp,
            quantized_dimension: dim,
        });
        tensors.len() as i32 - 1
    };
    let mut opcode = |code: i32| -> u32 {
        if let Some(i) = opcodes.iter().position(|&c| c == code) {
            i as u32
        } else {
            opcodes.push(code);
            opcodes.len() as u32 - 1
        }
    };
    let shape4 = |s: [usize; 3]| vec![1, s[0] as i32, s[1] as i32, s[2] as i32];
    let input = act_tensor(&mut tensors, "input".into(), shape4(q.input), q.input_q);
    let mut cur = input;
    let mut tensor_ids = vec![input]; // our tensor id → flatbuffer tensor index
    for (i, l) in q.layers.iter().enumerate() {
        let last = i + 1 == q.layers.len();
        let out_shape = if matches!(l.op, QOp::Dense { .. } | QOp::Softmax { .. }) {
            vec![1, l.output[2] as i32]
        } else {
            shape4(l.output)
        };
        let out = act_tensor(&mut tensors, if last { "scores".into() } else { l.name.clone() }, out_shape, l.output_q);
        let fused = act(l.act);
        let op = match &l.op {
            QOp::Conv {
                filter_shape: f,
                stride,
                dilation,
                padding: p,
                depth_multiplier,
                weights,
                weight_scales,
                bias,
                ..
            } => {
                let bias_scales: Vec<f32> =
                    weight_scales.iter().map(|&s| (l.input_q.scale as f64 * s as f64) as f32).collect();
                let w = const_tensor(
                    &mut tensors,
                    format!("{}/filter", l.name),
                    f.iter().map(|&d| d as i32).collect(),
                    INT8,
                    weights.iter().map(|&v| v as u8).collect(),
                    weight_scales.clone(),
                    if depth_multiplier.is_some() { 3 } else { 0 },
                );
                let b = const_tensor(
                    &mut tensors,
                    format!("{}/bias", l.name),
                    vec![bias.len() as i32],
                    INT32,
                    bias.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    bias_scales,
                    0,
                );
                let pad = padding(p, &l.name)?;
                let (code, ty, mut options) = match depth_multiplier {
                    Some(m) => (
                        DEPTHWISE_CONV_2D,
                        OPT_DEPTHWISE,
                        vec![
                            (slot(3), OptVal::I32(*m as i32)),
                            (slot(4), OptVal::I8(fused)),
                            (slot(5), OptVal::I32(dilation[1] as i32)),
                            (slot(6), OptVal::I32(dilation[0] as i32)),
                        ],
                    ),
                    None => (
                        CONV_2D,
                        OPT_CONV,
                        vec![
                            (slot(3), OptVal::I8(fused)),
                            (slot(4), OptVal::I32(dilation[1] as i32)),
                            (slot(5), OptVal::I32(dilation[0] as i32)),
                        ],
                    ),
                };
                options.extend([
                    (slot(0), OptVal::I8(pad)),
                    (slot(1), OptVal::I32(stride[1] as i32)),
                    (slot(2), OptVal::I32(stride[0] as i32)),
                ]);
                Op { opcode: opcode(code), inputs: vec![cur, w, b], outputs: vec![out], options_type: ty, options }
            }
            QOp::Dense { units, weights, weight_scales, bias, .. } => {
                let depth = weights.len() / units;
                let w = const_tensor(
                    &mut tensors,
                    format!("{}/weights", l.name),
                    vec![*units as i32, depth as i32],
                    INT8,
                    weights.iter().map(|&v| v as u8).collect(),
                    weight_scales.clone(),
                    0,
                );
                let bias_scales = weight_scales.iter().map(|&s| (l.input_q.scale as f64 * s as f64) as f32).collect();
                let b = const_tensor(
                    &mut tensors,
                    format!("{}/bias", l.name),
                    vec![*units as i32],
                    INT32,
                    bias.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    bias_scales,
                    0,
                );
                Op {
                    opcode: opcode(FULLY_CONNECTED),
                    inputs: vec![cur, w, b],
                    outputs: vec![out],
                    options_type: OPT_FC,
                    options: vec![(slot(0), OptVal::I8(fused))],
                }
            }
            QOp::Pool { max, size, stride, padding: p } => Op {
                opcode: opcode(if *max { MAX_POOL_2D } else { AVERAGE_POOL_2D }),
                inputs: vec![cur],
                outputs: vec![out],
                options_type: OPT_POOL,
                options: vec![
                    (slot(0), OptVal::I8(padding(p, &l.name)?)),
                    (slot(1), OptVal::I32(stride[1] as i32)),
                    (slot(2), OptVal::I32(stride[0] as i32)),
                    (slot(3), OptVal::I32(size[1] as i32)),
                    (slot(4), OptVal::I32(size[0] as i32)),
                    (slot(5), OptVal::I8(fused)),
                ],
            },
            QOp::Mean { .. } => {
                let axis = const_tensor(
                    &mut tensors,
                    format!("{}/axis", l.name),
                    vec![2],
                    INT32,
                    [1i32, 2].iter().flat_map(|v| v.to_le_bytes()).collect(),
                    vec![],
                    0,
                );
                Op {
                    opcode: opcode(MEAN),
                    inputs: vec![cur, axis],
                    outputs: vec![out],
                    options_type: OPT_REDUCER,
                    options: vec![(slot(0), OptVal::Bool(true))],
                }
            }
            QOp::Add { skip, .. } => Op {
                opcode: opcode(ADD),
                inputs: vec![cur, tensor_ids[*skip]],
                outputs: vec![out],
                options_type: OPT_ADD,
                options: vec![(slot(0), OptVal::I8(fused))],
            },
            QOp::Clamp => {
                Op { opcode: opcode(RELU), inputs: vec![cur], outputs: vec![out], options_type: 0, options: vec![] }
            }
            QOp::Softmax { .. } => Op {
                opcode: opcode(SOFTMAX),
                inputs: vec![cur],
                outputs: vec![out],
                options_type: OPT_SOFTMAX,
                options: vec![(slot(0), OptVal::F32(1.0))],
            },
            QOp::L2Pool { .. } => {
                bail!("layer `{}`: TFLite has no int8 L2_POOL_2D kernel; this model cannot be exported", l.name)
            }
        };
        if matches!(l.op, QOp::Clamp) && l.act[1] != 127 {
            bail!("layer `{}`: a standalone ReLU6 has no bit-exact TFLite int8 equivalent; fuse it into the previous layer", l.name);
        }
        ops.push(op);
        cur = out;
        tensor_ids.push(out);
    }

    // Serialise bottom-up.
    let buffer_offs: Vec<_> = buffers
        .iter()
        .map(|b| {
            let data = if b.is_empty() { None } else { Some(fbb.create_vector(b)) };
            let t = fbb.start_table();
            if let Some(d) = data {
                fbb.push_slot_always(slot(0), d);
            }
            fbb.end_table(t)
        })
        .collect();
    let tensor_offs: Vec<_> = tensors
        .iter()
        .map(|t| {
            let shape = fbb.create_vector(&t.shape);
            let name = fbb.create_string(&t.name);
            let quant = if t.scales.is_empty() {
                None
            } else {
                let sc = fbb.create_vector(&t.scales);
                let zp = fbb.create_vector(&t.zero_points);
                let qt = fbb.start_table();
                fbb.push_slot_always(slot(2), sc);
                fbb.push_slot_always(slot(3), zp);
                fbb.push_slot(slot(6), t.quantized_dimension, 0);
                Some(fbb.end_table(qt))
            };
            let tt = fbb.start_table();
            fbb.push_slot_always(slot(0), shape);
            fbb.push_slot(slot(1), t.ty, 0);
            fbb.push_slot(slot(2), t.buffer, 0);
            fbb.push_slot_always(slot(3), name);
            if let Some(qo) = quant {
                fbb.push_slot_always(slot(4), qo);
            }
            fbb.end_table(tt)
        })
        .collect();
    let op_offs: Vec<_> = ops
        .iter()
        .map(|o| {
            let options: Option<WIPOffset<flatbuffers::TableFinishedWIPOffset>> = if o.options_type == 0 {
                None
            } else {
                let t = fbb.start_table();
                for &(s, v) in &o.options {
                    match v {
                        OptVal::I8(x) => fbb.push_slot_always(s, x),
                        OptVal::I32(x) => fbb.push_slot_always(s, x),
                        OptVal::F32(x) => fbb.push_slot_always(s, x),
                        OptVal::Bool(x) => fbb.push_slot_always(s, x),
                    }
                }
                Some(fbb.end_table(t))
            };
            let ins = fbb.create_vector(&o.inputs);
            let outs = fbb.create_vector(&o.outputs);
            let t = fbb.start_table();
            fbb.push_slot(slot(0), o.opcode, 0);
            fbb.push_slot_always(slot(1), ins);
            fbb.push_slot_always(slot(2), outs);
            if let Some(opt) = options {
                fbb.push_slot(slot(3), o.options_type, 0);
                fbb.push_slot_always(slot(4), opt);
            }
            fbb.end_table(t)
        })
        .collect();
    let tv = fbb.create_vector(&tensor_offs);
    let sg_in = fbb.create_vector(&[input]);
    let sg_out = fbb.create_vector(&[cur]);
    let ov = fbb.create_vector(&op_offs);
    let sg_name = fbb.create_string("main");
    let sg = fbb.start_table();
    fbb.push_slot_always(slot(0), tv);
    fbb.push_slot_always(slot(1), sg_in);
    fbb.push_slot_always(slot(2), sg_out);
    fbb.push_slot_always(slot(3), ov);
    fbb.push_slot_always(slot(4), sg_name);
    let sg = fbb.end_table(sg);
    let code_offs: Vec<_> = opcodes
        .iter()
        .map(|&c| {
            let t = fbb.start_table();
            fbb.push_slot(slot(0), c.min(127) as i8, 0);
            fbb.push_slot(slot(2), 1i32, 0); // version (written explicitly)
            fbb.push_slot(slot(3), c, 0);
            fbb.end_table(t)
        })
        .collect();
    let codes = fbb.create_vector(&code_offs);
    let sgs = fbb.create_vector(&[sg]);
    let desc = fbb.create_string(&format!("microcnn export of `{}` ({})", q.name, q.source));
    let bufs = fbb.create_vector(&buffer_offs);
    let m = fbb.start_table();
    fbb.push_slot(slot(0), 3u32, 0);
    fbb.push_slot_always(slot(1), codes);
    fbb.push_slot_always(slot(2), sgs);
    fbb.push_slot_always(slot(3), desc);
    fbb.push_slot_always(slot(4), bufs);
    let m = fbb.end_table(m);
    fbb.finish(m, Some("TFL3"));
    Ok(fbb.finished_data().to_vec())
}
