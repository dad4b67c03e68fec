//! Post-training int8 quantization (TFLite's scheme): a trained float net, calibrated on
//! images, becomes the graph.

use super::*;
use crate::data::Dataset;
use crate::model::spec::{Act, LayerSpec, PadSpec, Task, BOX_OUTPUTS};
use crate::rng::Rng;
use crate::train::net::{fused, Net};
use anyhow::{bail, Result};
use microcnn::pool::MeanParams;
use microcnn::quant::quantize_multiplier;
use microcnn::softmax::SoftmaxParams;
use microcnn::ActivationRange;
use serde::{Deserialize, Serialize};

/// How activation ranges are calibrated.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Calibration {
    /// Observed minimum and maximum.
    Minmax,
    /// The 0.01 % and 99.99 % percentiles (robust to outliers).
    Percentile,
}

/// Per-output-channel int8 weights of a convolution-like layer (`channel_of(i)` is weight `i`'s
/// output channel), their scales, the int32 bias in units of `s_in · s_w[c]` and the
/// requantization multipliers and shifts to `out_scale`.
#[allow(clippy::type_complexity)]
fn per_channel(
    params: &[crate::train::net::Param],
    oc: usize,
    channel_of: impl Fn(usize) -> usize,
    in_scale: f32,
    out_scale: f32,
) -> (Vec<i8>, Vec<f32>, Vec<i32>, Vec<i32>, Vec<i32>) {
    let (weights, scales) = quantize_weights(&params[0].value, oc, channel_of);
    let bias = params[1]
        .value
        .iter()
        .zip(&scales)
        .map(|(&b, &s)| (b as f64 / (in_scale as f64 * s as f64)).round() as i32)
        .collect();
    let (multiplier, shift) = requant(in_scale, &scales, out_scale);
    (weights, scales, bias, multiplier, shift)
}

fn quantize_weights(w: &[f32], channels: usize, channel_of: impl Fn(usize) -> usize) -> (Vec<i8>, Vec<f32>) {
    let mut maxabs = vec![0f32; channels];
    for (i, &v) in w.iter().enumerate() {
        let c = channel_of(i);
        maxabs[c] = maxabs[c].max(v.abs());
    }
    let scales: Vec<f32> = maxabs.iter().map(|&m| if m > 0.0 { m / 127.0 } else { 1.0 }).collect();
    let q =
        w.iter().enumerate().map(|(i, &v)| (v / scales[channel_of(i)]).round().clamp(-127.0, 127.0) as i8).collect();
    (q, scales)
}

fn requant(s_in: f32, ws: &[f32], s_out: f32) -> (Vec<i32>, Vec<i32>) {
    ws.iter()
        .map(|&s| {
            let r = quantize_multiplier(s_in as f64 * s as f64 / s_out as f64);
            (r.multiplier, r.shift)
        })
        .unzip()
}

fn act_range(a: Act, q: QParams) -> [i8; 2] {
    let r = match a {
        Act::None => ActivationRange::NONE,
        Act::Relu => ActivationRange::relu(q.zero_point),
        Act::Relu6 => ActivationRange::relu6(q.zero_point, q.scale),
    };
    [r.min, r.max]
}

fn range_of(values: &mut [f32], method: Calibration) -> (f32, f32) {
    match method {
        Calibration::Minmax => values.iter().fold((f32::MAX, f32::MIN), |(a, b), &v| (a.min(v), b.max(v))),
        Calibration::Percentile => {
            values.sort_unstable_by(f32::total_cmp);
            let at = |p: f64| values[((values.len() - 1) as f64 * p).round() as usize];
            (at(0.0001), at(0.9999))
        }
    }
}

/// Quantizes `net`, calibrating activation ranges on `calib`.
pub fn quantize(net: &mut Net, calib: &Dataset, method: Calibration, source: String) -> Result<QModel> {
    let n = calib.len();
    if n == 0 {
        bail!("no calibration images");
    }
    let input_q = QParams { scale: 1.0 / 255.0, zero_point: -128 };
    let mut layers: Vec<QLayer> = Vec::new();
    let mut rng = Rng::new(0);
    let (out, _) = quantize_chain(&mut net.layers, calib.images.clone(), n, input_q, method, &mut rng, &mut layers, 0)?;
    // Measured on models/localize (the README's recipe; float: class accuracy 89.45 %, mean
    // IoU 0.923), int8: 89.90 % / 0.894 with neither, 89.75 % / 0.914 with per-unit dense
    // weights, 89.45 % / 0.899 with the narrowed output, 89.95 % / 0.920 with both.
    if net.spec.task == Task::Localize {
        dense_per_unit(&mut layers, &net.layers);
        narrow_localize_output(&mut layers, &out, n, method);
    }
    Ok(QModel {
        name: net.spec.name.clone(),
        classes: net.spec.classes.clone(),
        input: net.spec.input,
        input_q,
        layers,
        source,
        task: net.spec.task,
    })
}

/// The float layer named `name` in `chain` or its blocks.
fn find_layer<'a>(chain: &'a [crate::train::net::Layer], name: &str) -> Option<&'a crate::train::net::Layer> {
    chain.iter().find_map(|l| if l.r.name == name { Some(l) } else { find_layer(l.children(), name) })
}

/// Requantizes every dense layer's weights with one scale per output unit instead of one for
/// the matrix (TFLite's converter's choice for `FULLY_CONNECTED`; per-channel
/// `FULLY_CONNECTED` runs in TFLite Micro, `tools/check_tflite.py`). For localization: its
/// head makes class scores and box numbers from one matrix, and one scale set by the class
/// rows leaves the smaller box rows (and the features feeding them) few significant bits.
fn dense_per_unit(layers: &mut [QLayer], chain: &[crate::train::net::Layer]) {
    for q in layers.iter_mut() {
        let s_in = q.input_q.scale;
        let s_out = q.output_q.scale;
        let QOp::Dense { units, weights, weight_scales, bias, multiplier, shift } = &mut q.op else { continue };
        let Some(l) = find_layer(chain, &q.name) else { continue };
        let (w, b) = (&l.params[0].value, &l.params[1].value);
        if *units == 0 || w.len() % *units != 0 || b.len() != *units {
            continue;
        }
        let depth = w.len() / *units;
        (*weights, *weight_scales) = quantize_weights(w, *units, |i| i / depth);
        *bias = b
            .iter()
            .zip(weight_scales.iter())
            .map(|(&b, &ws)| (b as f64 / (s_in as f64 * ws as f64)).round() as i32)
            .collect();
        (*multiplier, *shift) = requant(s_in, weight_scales, s_out);
    }
}

/// A localization model's output holds the class scores and the box in one tensor of one scale,
/// and min/max calibration spends most of its 256 steps on class scores far below any winner,
/// which only need to stay below it. This narrows the last layer's output range to what the
/// results depend on: the box values and each calibration image's winning score (a class score
/// under the lowest calibrated winner then saturates at −128, which no argmax seen in
/// calibration depends on), so the box gets finer steps. Only a dense head without activation
/// is changed (its multipliers recomputed for the new scale).
fn narrow_localize_output(layers: &mut [QLayer], out: &[f32], n: usize, method: Calibration) {
    let Some(last) = layers.last_mut() else { return };
    let len = last.output.iter().product::<usize>();
    if len <= BOX_OUTPUTS || out.len() != n * len || last.act != [i8::MIN, i8::MAX] {
        return;
    }
    let classes = len - BOX_OUTPUTS;
    let mut wanted: Vec<f32> = Vec::with_capacity(n * (BOX_OUTPUTS + 1));
    for o in out.chunks_exact(len) {
        wanted.push(o[..classes].iter().copied().fold(f32::MIN, f32::max));
        wanted.extend_from_slice(&o[classes..]);
    }
    let (lo, hi) = range_of(&mut wanted, method);
    let q = QParams::from_range(lo, hi);
    if q.scale >= last.output_q.scale {
        return;
    }
    let s_in = last.input_q.scale;
    let QOp::Dense { weight_scales, multiplier, shift, .. } = &mut last.op else { return };
    (*multiplier, *shift) = requant(s_in, weight_scales, q.scale);
    last.output_q = q;
}

/// Quantizes a chain of layers whose float input is `x` (already quantized with `cur_q`),
/// appending to `layers`; returns the chain's float output and its quantization. A ReLU may be
/// folded into the previous layer only if that layer was emitted after `barrier` (a residual
/// block's input must not be changed by a ReLU inside the block).
#[allow(clippy::too_many_arguments)]
fn quantize_chain(
    chain: &mut [crate::train::net::Layer],
    x: Vec<f32>,
    n: usize,
    mut cur_q: QParams,
    method: Calibration,
    rng: &mut Rng,
    layers: &mut Vec<QLayer>,
    barrier: usize,
) -> Result<(Vec<f32>, QParams)> {
    let mut a = x;
    for l in chain.iter_mut() {
        if let LayerSpec::Residual { activation, .. } = l.r.spec {
            // The block input is the newest tensor: tensor ids are 0 = model input, i + 1 =
            // output of layer i.
            let skip = layers.len();
            let skip_q = cur_q;
            let block_in = a.clone();
            let start = layers.len();
            let (inner, inner_q) = quantize_chain(l.children_mut(), a, n, cur_q, method, rng, layers, start)?;
            let mut y: Vec<f32> = inner.iter().zip(&block_in).map(|(p, q)| p + q).collect();
            match activation {
                Act::None => {}
                Act::Relu => y.iter_mut().for_each(|v| *v = v.max(0.0)),
                Act::Relu6 => y.iter_mut().for_each(|v| *v = v.clamp(0.0, 6.0)),
            }
            let mut v = y.clone();
            let (lo, hi) = range_of(&mut v, method);
            let out_q = QParams::from_range(lo, hi);
            let act = act_range(activation, out_q);
            layers.push(QLayer {
                name: format!("{}.add", l.r.name),
                input: shape3(l.r.input),
                output: shape3(l.r.output),
                input_q: inner_q,
                output_q: out_q,
                act,
                from: None,
                op: QOp::Add { skip, skip_q },
            });
            cur_q = out_q;
            a = y;
            continue;
        }
        if let LayerSpec::Skip { .. } = l.r.spec {
            let (y, q) = quantize_skip(l, a, n, cur_q, method, rng, layers)?;
            cur_q = q;
            a = y;
            continue;
        }
        let out = l.forward(std::mem::take(&mut a), n, false, rng);
        a = out;
        let r = &l.r;
        let (input, output) = (shape3(r.input), shape3(r.output));
        let calibrated = || {
            let mut v = a.clone();
            let (lo, hi) = range_of(&mut v, method);
            QParams::from_range(lo, hi)
        };
        let act = fused(&r.spec);
        let base = |op: QOp, out_q: QParams, act_r: [i8; 2]| QLayer {
            name: r.name.clone(),
            input,
            output,
            input_q: cur_q,
            output_q: out_q,
            act: act_r,
            from: None,
            op,
        };
        let layer = match &r.spec {
            LayerSpec::Conv { .. } | LayerSpec::Pointwise { .. } | LayerSpec::Depthwise { .. } => {
                let out_q = calibrated();
                let dw = if let LayerSpec::Depthwise { multiplier, .. } = &r.spec { Some(*multiplier) } else { None };
                let (win, _) = crate::train::net::geometry(r).expect("validated");
                let dims = &l.params[0].dims;
                let oc = r.output.c;
                let per = l.params[0].value.len() / oc;
                // Depthwise weights are `[kh][kw][c]` (channel fastest), the others OHWI.
                let channel_of = |i: usize| if dw.is_some() { i % oc } else { i / per };
                let (weights, weight_scales, bias, multiplier, shift) =
                    per_channel(&l.params, oc, channel_of, cur_q.scale, out_q.scale);
                let padding = match &r.spec {
                    LayerSpec::Conv { padding, .. } | LayerSpec::Depthwise { padding, .. } => *padding,
                    _ => PadSpec::default(),
                };
                base(
                    QOp::Conv {
                        filter_shape: [dims[0], dims[1], dims[2], dims[3]],
                        stride: [win.stride_h, win.stride_w],
                        dilation: [win.dilation_h, win.dilation_w],
                        padding,
                        depth_multiplier: dw,
                        weights,
                        weight_scales,
                        bias,
                        multiplier,
                        shift,
                    },
                    out_q,
                    act_range(act, out_q),
                )
            }
            LayerSpec::TransposeConv { stride, padding, .. } => {
                let out_q = calibrated();
                let dims = &l.params[0].dims;
                let oc = r.output.c;
                let per = l.params[0].value.len() / oc;
                let (weights, weight_scales, bias, multiplier, shift) =
                    per_channel(&l.params, oc, |i| i / per, cur_q.scale, out_q.scale);
                let (sh, sw) = stride.hw();
                base(
                    QOp::TransposeConv {
                        filter_shape: [dims[0], dims[1], dims[2], dims[3]],
                        stride: [sh, sw],
                        padding: *padding,
                        weights,
                        weight_scales,
                        bias,
                        multiplier,
                        shift,
                    },
                    out_q,
                    act_range(act, out_q),
                )
            }
            LayerSpec::Dense { units, .. } => {
                let out_q = calibrated();
                // One scale for the whole weight matrix, as TFLite's converter does for
                // FULLY_CONNECTED (so the exported .tflite runs on every TFLM version).
                let (weights, weight_scales) = quantize_weights(&l.params[0].value, 1, |_| 0);
                let bias = l.params[1]
                    .value
                    .iter()
                    .map(|&b| (b as f64 / (cur_q.scale as f64 * weight_scales[0] as f64)).round() as i32)
                    .collect();
                let (multiplier, shift) = requant(cur_q.scale, &weight_scales, out_q.scale);
                base(
                    QOp::Dense { units: *units, weights, weight_scales, bias, multiplier, shift },
                    out_q,
                    act_range(act, out_q),
                )
            }
            LayerSpec::MaxPool { size, stride, padding } | LayerSpec::AvgPool { size, stride, padding } => {
                let (kh, kw) = size.hw();
                let (sh, sw) = stride.unwrap_or(*size).hw();
                base(
                    QOp::Pool {
                        max: matches!(r.spec, LayerSpec::MaxPool { .. }),
                        size: [kh, kw],
                        stride: [sh, sw],
                        padding: *padding,
                    },
                    cur_q,
                    [i8::MIN, i8::MAX],
                )
            }
            LayerSpec::L2Pool { size, stride, padding } => {
                let out_q = calibrated();
                let (kh, kw) = size.hw();
                let (sh, sw) = stride.unwrap_or(*size).hw();
                let rq = quantize_multiplier(cur_q.scale as f64 / out_q.scale as f64);
                base(
                    QOp::L2Pool {
                        size: [kh, kw],
                        stride: [sh, sw],
                        padding: *padding,
                        multiplier: rq.multiplier,
                        shift: rq.shift,
                    },
                    out_q,
                    [i8::MIN, i8::MAX],
                )
            }
            // An integer factor picks the same pixels with or without half-pixel centres.
            LayerSpec::Upsample { .. } => {
                base(QOp::Resize { align_corners: false, half_pixel_centers: false }, cur_q, [i8::MIN, i8::MAX])
            }
            LayerSpec::GlobalAvgPool => {
                let out_q = calibrated();
                let p = MeanParams::new(
                    cur_q.scale,
                    cur_q.zero_point,
                    out_q.scale,
                    out_q.zero_point,
                    r.input.h * r.input.w,
                    ActivationRange::NONE,
                );
                base(QOp::Mean { multiplier: p.requant.multiplier, shift: p.requant.shift }, out_q, [i8::MIN, i8::MAX])
            }
            LayerSpec::Relu | LayerSpec::Relu6 => {
                let a = if matches!(r.spec, LayerSpec::Relu) { Act::Relu } else { Act::Relu6 };
                // Fold into the previous layer's clamp when it owns its output quantization.
                if layers.len() > barrier {
                    let prev = layers.last_mut().expect("len > barrier");
                    if matches!(prev.op, QOp::Conv { .. } | QOp::TransposeConv { .. } | QOp::Dense { .. }) {
                        let r2 = act_range(a, prev.output_q);
                        prev.act = [prev.act[0].max(r2[0]), prev.act[1].min(r2[1])];
                        continue;
                    }
                }
                base(QOp::Clamp, cur_q, act_range(a, cur_q))
            }
            LayerSpec::Softmax => {
                let out_q =
                    QParams { scale: SoftmaxParams::OUTPUT_SCALE, zero_point: SoftmaxParams::OUTPUT_ZERO_POINT };
                let p = SoftmaxParams::new(cur_q.scale, 1.0, out_q.scale, out_q.zero_point).map_err(|e| {
                    anyhow::anyhow!("layer {}: softmax input scale {} cannot be quantized: {e}", r.name, cur_q.scale)
                })?;
                base(
                    QOp::Softmax {
                        input_multiplier: p.input_multiplier,
                        input_left_shift: p.input_left_shift,
                        diff_min: p.diff_min,
                        beta: 1.0,
                    },
                    out_q,
                    [i8::MIN, i8::MAX],
                )
            }
            LayerSpec::Dropout { .. } | LayerSpec::Flatten => continue, // identity / reinterpretation
            LayerSpec::Residual { .. } | LayerSpec::Skip { .. } => unreachable!("handled above"),
        };
        cur_q = layer.output_q;
        layers.push(layer);
    }
    Ok((a, cur_q))
}

/// A skip block `concat(inner(x), x)`: the inner layers, then each operand brought to one
/// shared quantization (calibrated on both) by a `requantize` where it differs, then the
/// concatenation, which copies values as TFLite's int8 `CONCATENATION` does. Returns the block's
/// float output and its quantization.
fn quantize_skip(
    l: &mut crate::train::net::Layer,
    x: Vec<f32>,
    n: usize,
    x_q: QParams,
    method: Calibration,
    rng: &mut Rng,
    layers: &mut Vec<QLayer>,
) -> Result<(Vec<f32>, QParams)> {
    // Tensor ids: 0 = model input, j + 1 = output of layer j; the block input is the newest.
    let x_t = layers.len();
    let block_in = x.clone();
    let start = layers.len();
    let (inner, inner_q) = quantize_chain(l.children_mut(), x, n, x_q, method, rng, layers, start)?;
    let mut both: Vec<f32> = inner.iter().chain(&block_in).copied().collect();
    let (lo, hi) = range_of(&mut both, method);
    let q = QParams::from_range(lo, hi);
    let (input, output) = (shape3(l.r.input), shape3(l.r.output));
    let inner_shape = [input[0], input[1], output[2] - input[2]];
    let requantize = |name: String, from: Option<usize>, shape: [usize; 3], in_q: QParams| {
        let rq = quantize_multiplier(in_q.scale as f64 / q.scale as f64);
        QLayer {
            name,
            input: shape,
            output: shape,
            input_q: in_q,
            output_q: q,
            act: [i8::MIN, i8::MAX],
            from,
            op: QOp::Requantize { multiplier: rq.multiplier, shift: rq.shift },
        }
    };
    let mut inner_t = layers.len();
    if inner_q != q {
        layers.push(requantize(format!("{}.requantize_inner", l.r.name), None, inner_shape, inner_q));
        inner_t = layers.len();
    }
    let mut skip_t = x_t;
    if x_q != q {
        layers.push(requantize(format!("{}.requantize_skip", l.r.name), Some(x_t), input, x_q));
        skip_t = layers.len();
    }
    layers.push(QLayer {
        name: format!("{}.concat", l.r.name),
        input: inner_shape,
        output,
        input_q: q,
        output_q: q,
        act: [i8::MIN, i8::MAX],
        from: (inner_t != layers.len()).then_some(inner_t),
        op: QOp::Concat { axis: 2, others: vec![skip_t] },
    });
    let (ci, cx) = (inner_shape[2], input[2]);
    let mut y = Vec::with_capacity(inner.len() + block_in.len());
    for (a, b) in inner.chunks_exact(ci).zip(block_in.chunks_exact(cx)) {
        y.extend_from_slice(a);
        y.extend_from_slice(b);
    }
    Ok((y, q))
}

/// int8 accuracy (of images, or of the cells/pixels of a dense task) and the outputs on a data
/// set, through the runtime kernels.
pub fn evaluate(q: &QModel, data: &Dataset) -> Result<(f32, Vec<Vec<i8>>)> {
    let plan = q.plan();
    let mut arena = vec![0i8; plan.bytes];
    let mut scores = vec![0i8; q.num_classes()];
    let mut correct = 0;
    let mut outputs = Vec::with_capacity(data.len());
    for i in 0..data.len() {
        let x = q.quantize_input(data.image(i));
        q.run_planned(&plan, &x, &mut arena, &mut scores)
            .map_err(|e| anyhow::anyhow!("runtime error in image {i}: {e}"))?;
        // One label per image, or per cell/pixel of a dense task: the share of them predicted.
        let k = q.class_count();
        for (row, &want) in scores.chunks_exact(k).zip(data.target_block(i)) {
            if microcnn::classify::argmax_i8(row).map_err(|e| anyhow::anyhow!("{e}"))? == want as usize {
                correct += 1;
            }
        }
        outputs.push(scores.clone());
    }
    let labels = data.len() * data.positions();
    Ok((correct as f32 / labels.max(1) as f32, outputs))
}
