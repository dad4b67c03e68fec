//! Post-training int8 quantization (TFLite's scheme) and the host executor that runs the
//! quantized model through the `microcnn` runtime kernels with the same static memory plan the
//! generated code uses.

use crate::data::Dataset;
use crate::net::{fused, Net};
use crate::rng::Rng;
use crate::spec::{Act, LayerSpec, PadSpec};
use anyhow::{bail, Context, Result};
use microcnn::activation::clamp_in_place_i8;
use microcnn::conv::{conv2d_i8, ConvParams, ConvWeights};
use microcnn::dense::{dense_i8, DenseParams, DenseWeights};
use microcnn::depthwise::depthwise_conv2d_i8;
use microcnn::layout::PadParams;
use microcnn::pool::{
    avg_pool2d_i8, global_avg_pool_i8, l2_pool2d_i8, max_pool2d_i8, L2PoolParams, MeanParams, PoolParams,
};
use microcnn::quant::quantize_multiplier;
use microcnn::softmax::{softmax_i8, SoftmaxParams};
use microcnn::{ActivationRange, Requant, Shape, Window};
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
    /// TFLite's int8 `LEAKY_RELU` with slope `alpha` (≥ 0) below zero.
    LeakyRelu {
        /// The slope for negative inputs.
        alpha: f32,
    },
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
}

fn shape3(s: Shape) -> [usize; 3] {
    [s.h, s.w, s.c]
}

/// `Shape` of `[h, w, c]` with batch 1.
pub fn img(s: [usize; 3]) -> Shape {
    Shape::image(s[0], s[1], s[2])
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
    quantize_chain(&mut net.layers, calib.images.clone(), n, input_q, method, &mut rng, &mut layers, 0)?;
    Ok(QModel {
        name: net.spec.name.clone(),
        classes: net.spec.classes.clone(),
        input: net.spec.input,
        input_q,
        layers,
        source,
    })
}

/// Quantizes a chain of layers whose float input is `x` (already quantized with `cur_q`),
/// appending to `layers`; returns the chain's float output and its quantization. A ReLU may be
/// folded into the previous layer only if that layer was emitted after `barrier` (a residual
/// block's input must not be changed by a ReLU inside the block).
#[allow(clippy::too_many_arguments)]
fn quantize_chain(
    chain: &mut [crate::net::Layer],
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
            let (inner, inner_q) = quantize_chain(&mut l.children, a, n, cur_q, method, rng, layers, start)?;
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
                let (win, _) = crate::net::geometry(r).expect("validated");
                let dims = &l.params[0].dims;
                let oc = r.output.c;
                let (weights, weight_scales) = if dw.is_some() {
                    quantize_weights(&l.params[0].value, oc, |i| i % oc)
                } else {
                    let per = l.params[0].value.len() / oc;
                    quantize_weights(&l.params[0].value, oc, |i| i / per)
                };
                let bias = l.params[1]
                    .value
                    .iter()
                    .zip(&weight_scales)
                    .map(|(&b, &s)| (b as f64 / (cur_q.scale as f64 * s as f64)).round() as i32)
                    .collect();
                let (multiplier, shift) = requant(cur_q.scale, &weight_scales, out_q.scale);
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
                    if matches!(prev.op, QOp::Conv { .. } | QOp::Dense { .. }) {
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
            LayerSpec::Residual { .. } => unreachable!("handled above"),
        };
        cur_q = layer.output_q;
        layers.push(layer);
    }
    Ok((a, cur_q))
}

/// The static memory plan over the graph. Tensors are numbered 0 (the model input) and `i + 1`
/// (the output of layer `i`); every tensor, the input and the scores included (as TFLite Micro
/// keeps them), gets an arena offset such that tensors alive at the same time never overlap. A
/// tensor lives from its producer to its last consumer (the input from the first layer, the
/// scores at the last), over any DAG of branches and merges. Placement is first-fit at the
/// lowest free offset, in several orders (largest first, as TFLite Micro's greedy planner,
/// longest-lived first, execution order, then seeded shuffles); the smallest arena wins. For a
/// chain it is the largest input + output pair of any layer, the minimum for a sequential
/// schedule without in-place layers.
#[derive(Clone, Debug, PartialEq)]
pub struct ArenaPlan {
    /// Arena size in bytes.
    pub bytes: usize,
    /// Offset of each tensor in the arena.
    pub offset: Vec<usize>,
    /// The most bytes that are alive at once during any layer (a lower bound for any plan).
    pub peak_live: usize,
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
            _ => vec![src],
        }
    }

    /// Plans the arena (see [`ArenaPlan`]).
    pub fn plan(&self) -> ArenaPlan {
        let n = self.layers.len();
        let tensors = n + 1;
        // Lifetime of tensor t: [producer, last consumer], in layer steps.
        let mut last_use: Vec<usize> = (0..tensors).map(|t| t.saturating_sub(1)).collect();
        for i in 0..n {
            for t in self.inputs_of(i) {
                last_use[t] = last_use[t].max(i);
            }
        }
        let life = |t: usize| (t.saturating_sub(1), last_use[t]);
        let peak_live = (0..n)
            .map(|i| (0..tensors).filter(|&t| life(t).0 <= i && i <= life(t).1).map(|t| self.tensor_len(t)).sum())
            .max()
            .unwrap_or(0);
        // First-fit placement in a given order.
        let place = |order: &[usize]| -> (usize, Vec<usize>) {
            let mut offset: Vec<Option<usize>> = vec![None; tensors];
            let mut bytes = 0;
            for &t in order {
                let (s, e) = life(t);
                let len = self.tensor_len(t);
                let mut busy: Vec<(usize, usize)> = (0..tensors)
                    .filter(|&u| u != t)
                    .filter_map(|u| offset[u].map(|o| (u, o)))
                    .filter(|&(u, _)| {
                        let (us, ue) = life(u);
                        us <= e && s <= ue
                    })
                    .map(|(u, o)| (o, o + self.tensor_len(u)))
                    .collect();
                busy.sort_unstable();
                let mut at = 0;
                for (bs, be) in busy {
                    if at + len <= bs {
                        break;
                    }
                    at = at.max(be);
                }
                offset[t] = Some(at);
                bytes = bytes.max(at + len);
            }
            (bytes, offset.into_iter().map(|o| o.unwrap_or(0)).collect())
        };
        // A few classic orders, then deterministic pseudo-random ones; the smallest arena wins
        // (first found on ties, so the plan is reproducible). Chains reach the optimum at once.
        let base: Vec<usize> = (0..tensors).collect();
        let mut orders: Vec<Vec<usize>> = Vec::new();
        let mut by_size = base.clone();
        by_size.sort_by_key(|&t| (std::cmp::Reverse(self.tensor_len(t)), t));
        orders.push(by_size);
        orders.push(base.clone());
        let mut by_length = base.clone();
        by_length
            .sort_by_key(|&t| (std::cmp::Reverse(life(t).1 - life(t).0), std::cmp::Reverse(self.tensor_len(t)), t));
        orders.push(by_length);
        let mut best = place(&orders[0]);
        for o in &orders[1..] {
            let cand = place(o);
            if cand.0 < best.0 {
                best = cand;
            }
        }
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut shuffled = base;
        for _ in 0..400 {
            if best.0 <= peak_live {
                break;
            }
            for i in (1..shuffled.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                shuffled.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let cand = place(&shuffled);
            if cand.0 < best.0 {
                best = cand;
            }
        }
        let (bytes, offset) = best;
        ArenaPlan { bytes, offset, peak_live }
    }

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.layers.last().map(|l| l.output.iter().product()).unwrap_or(0)
    }

    /// Quantizes `[0, 1]` pixels to the model's input.
    pub fn quantize_input(&self, pixels: &[f32]) -> Vec<i8> {
        pixels.iter().map(|&p| microcnn::quant::quantize_f32(p, self.input_q.scale, self.input_q.zero_point)).collect()
    }

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
        let plan = self.plan();
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

/// The most activation bytes (sum over all tensors) a quantized model may describe: 2^30.
pub const MAX_MODEL_ACTIVATIONS: usize = 1 << 30;

impl QModel {
    /// Parses and completely validates a `quantized.json` (see [`QModel::validate`]); `name`
    /// (the file) starts every error message.
    pub fn from_json(text: &str, name: &str) -> Result<QModel> {
        let q: QModel = serde_json::from_str(text).map_err(|e| {
            anyhow::anyhow!("{name}: not a quantized model ({e}); regenerate it with `microcnn quantize`")
        })?;
        q.validate().map_err(|e| anyhow::anyhow!("{name}: {e:#}; regenerate it with `microcnn quantize`"))?;
        Ok(q)
    }

    /// Checks everything `emit`, `export-tflite` and the host executor rely on, naming the
    /// field of the first problem (`layers[3].multiplier[2]`): names that become identifiers,
    /// class names, every shape against the previous layer and the runtime's geometry, every
    /// table's length, every multiplier, shift, zero point, clamp and scale against its range,
    /// skip indices, the memory the plan needs; then each layer is run once through the runtime
    /// kernels on zeros, so whatever the runtime would refuse on the device is refused here.
    pub fn validate(&self) -> Result<()> {
        crate::spec::check_model_name(&self.name).context("name")?;
        if self.source.chars().count() > 2000 {
            bail!("source: longer than 2000 characters");
        }
        let [h, w, c] = self.input;
        let in_len = h.checked_mul(w).and_then(|v| v.checked_mul(c)).filter(|&v| v > 0 && v <= MAX_MODEL_ACTIVATIONS);
        let Some(in_len) = in_len else {
            bail!("input: {:?} must be non-zero and at most {MAX_MODEL_ACTIVATIONS} values", self.input)
        };
        check_qparams(self.input_q, "input_q")?;
        if self.layers.is_empty() {
            bail!("layers: empty; a model needs at least one layer");
        }
        for (i, l) in self.layers.iter().enumerate() {
            crate::spec::check_dotted_layer_name(&l.name).with_context(|| format!("layers[{i}].name"))?;
        }
        crate::spec::check_generated_idents(self.layers.iter().map(|l| l.name.as_str())).context("layers")?;
        let mut total = in_len;
        for (i, l) in self.layers.iter().enumerate() {
            let at = format!("layers[{i}] (`{}`)", l.name);
            if let Some(t) = l.from {
                if t > i {
                    bail!("{at}.from: tensor {t} does not exist yet (0 is the model input, j + 1 the output of layer j < {i})");
                }
            }
            let src = self.source_of(i);
            let (src_shape, src_q) = (self.tensor_shape(src), self.tensor_q(src));
            // A layer may read its tensor with another shape of the same element count: a
            // flatten or reshape, free in flat NHWC memory.
            let reshaped =
                l.input.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) == Some(src_shape.iter().product::<usize>());
            if l.input != src_shape && !reshaped {
                bail!(
                    "{at}.input: {:?}, but tensor {src}, which it reads, is {:?} (a reshape keeps the element count)",
                    l.input,
                    src_shape
                );
            }
            if l.input_q != src_q {
                bail!(
                    "{at}.input_q: {:?} differs from the quantization {:?} of tensor {src}, which it reads",
                    l.input_q,
                    src_q
                );
            }
            check_qparams(l.output_q, &format!("{at}.output_q"))?;
            if l.act[0] > l.act[1] {
                bail!("{at}.act: [{}, {}] is an empty clamp (min > max)", l.act[0], l.act[1]);
            }
            let out_len = l.output.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).filter(|&v| v > 0);
            let Some(out_len) = out_len else { bail!("{at}.output: {:?} must be non-zero and not overflow", l.output) };
            total = total.saturating_add(out_len);
            if total > MAX_MODEL_ACTIVATIONS {
                bail!("{at}.output: the model's tensors reach {total} bytes, more than {MAX_MODEL_ACTIVATIONS}");
            }
            self.validate_op(i, l, &at)?;
        }
        let last = self.layers.last().expect("non-empty");
        if last.output[0] != 1 || last.output[1] != 1 {
            bail!("layers[{}].output: {:?}; a classifier ends in 1×1×classes", self.layers.len() - 1, last.output);
        }
        let k = last.output[2];
        if !self.classes.is_empty() && self.classes.len() != k {
            bail!("classes: {} names for {k} outputs", self.classes.len());
        }
        for (i, n) in self.classes.iter().enumerate() {
            crate::data::check_class_name(n, &format!("classes[{i}]"))?;
        }
        // Run each layer once on zeros: the runtime's own checks, with the layer named.
        for (i, l) in self.layers.iter().enumerate() {
            let ins: Vec<Vec<i8>> = self.inputs_of(i).iter().map(|&t| vec![0i8; self.tensor_len(t)]).collect();
            let ins: Vec<&[i8]> = ins.iter().map(|v| v.as_slice()).collect();
            let mut dst = vec![0i8; self.out_len(i)];
            run_layer(l, &ins, &mut dst)
                .map_err(|e| anyhow::anyhow!("layers[{i}] (`{}`): the runtime kernel refuses it: {e}", l.name))?;
        }
        Ok(())
    }

    fn validate_op(&self, i: usize, l: &QLayer, at: &str) -> Result<()> {
        let ishape = img(l.input);
        let expect_out = |s: Shape| -> Result<()> {
            if shape3(s) != l.output || s.n != 1 {
                bail!("{at}.output: {:?}, but the op computes {:?}", l.output, shape3(s));
            }
            Ok(())
        };
        let geometry = |e: microcnn::Error| anyhow::anyhow!("{at}: impossible geometry: {e}");
        let tables = |n: usize, ws: &[f32], bias: &[i32], m: &[i32], sh: &[i32], nq: &[usize]| -> Result<()> {
            if !nq.contains(&ws.len()) {
                bail!("{at}.weight_scales: {} entries for {n} channels", ws.len());
            }
            if let Some((j, v)) = ws.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v > 0.0)) {
                bail!("{at}.weight_scales[{j}]: {v} must be finite and positive");
            }
            if bias.len() != n {
                bail!("{at}.bias: {} entries for {n} channels", bias.len());
            }
            if !nq.contains(&m.len()) || sh.len() != m.len() {
                bail!("{at}.multiplier/shift: {} and {} entries for {n} channels", m.len(), sh.len());
            }
            for (j, (&mv, &sv)) in m.iter().zip(sh).enumerate() {
                check_requant_field(mv, sv, &format!("{at}.multiplier[{j}]/shift[{j}]"))?;
            }
            Ok(())
        };
        match &l.op {
            QOp::Conv {
                filter_shape: f,
                stride,
                dilation,
                padding,
                depth_multiplier,
                weights,
                weight_scales,
                bias,
                multiplier,
                shift,
            } => {
                let fs = Shape::new(f[0], f[1], f[2], f[3]);
                let flen = fs
                    .checked_nonempty_len()
                    .map_err(|_| anyhow::anyhow!("{at}.filter_shape: {f:?} must be non-zero"))?;
                if weights.len() != flen {
                    bail!("{at}.weights: {} values for filter_shape {f:?} ({flen})", weights.len());
                }
                let p = ConvParams {
                    stride_h: stride[0],
                    stride_w: stride[1],
                    dilation_h: dilation[0],
                    dilation_w: dilation[1],
                    padding: padding.padding(),
                    input_zero_point: l.input_q.zero_point,
                    output_zero_point: l.output_q.zero_point,
                    activation: ActivationRange::NONE,
                };
                let out = match depth_multiplier {
                    Some(m) => microcnn::depthwise::depthwise_conv2d_output_shape(&p, *m, ishape, fs),
                    None => microcnn::conv::conv2d_output_shape(&p, ishape, fs),
                }
                .map_err(geometry)?;
                expect_out(out)?;
                tables(out.c, weight_scales, bias, multiplier, shift, &[out.c])?;
            }
            QOp::Dense { units, weights, weight_scales, bias, multiplier, shift } => {
                let depth = ishape.len();
                if *units == 0 || weights.len() != units.saturating_mul(depth) {
                    bail!("{at}.weights: {} values for {units} units × depth {depth}", weights.len());
                }
                expect_out(Shape::vector(1, *units))?;
                tables(*units, weight_scales, bias, multiplier, shift, &[1, *units])?;
            }
            QOp::Pool { size, stride, padding, .. } | QOp::L2Pool { size, stride, padding, .. } => {
                let out =
                    microcnn::pool::pool2d_output_shape(&window(*size, *stride, *padding), ishape).map_err(geometry)?;
                expect_out(out)?;
                if let QOp::L2Pool { multiplier, shift, .. } = &l.op {
                    check_requant_field(*multiplier, *shift, &format!("{at}.multiplier/shift"))?;
                } else if l.output_q != l.input_q {
                    bail!("{at}.output_q: pooling keeps the input's quantization {:?}", l.input_q);
                }
            }
            QOp::Mean { multiplier, shift } => {
                expect_out(Shape::image(1, 1, l.input[2]))?;
                // TFLite folds 1/(H·W) into the mantissa, so it may be below 2^30.
                if *multiplier < 0 || !(-31..=30).contains(shift) {
                    bail!("{at}.multiplier/shift: {multiplier}/{shift}: the multiplier must be ≥ 0 and the shift in −31..=30");
                }
            }
            QOp::Clamp => {
                expect_out(ishape)?;
                if l.output_q != l.input_q {
                    bail!("{at}.output_q: a clamp keeps the input's quantization {:?}", l.input_q);
                }
            }
            QOp::Add { skip, skip_q } => {
                expect_out(ishape)?;
                if *skip > i {
                    bail!("{at}.skip: tensor {skip} does not exist yet (0 is the model input, j + 1 the output of layer j < {i})");
                }
                let skip_shape = self.tensor_shape(*skip);
                if skip_shape != l.input {
                    bail!("{at}.skip: tensor {skip} is {skip_shape:?}, but the add needs {:?}", l.input);
                }
                let actual_q = self.tensor_q(*skip);
                if *skip_q != actual_q {
                    bail!("{at}.skip_q: {skip_q:?}, but tensor {skip} is quantized as {actual_q:?}");
                }
            }
            QOp::Pad { .. } | QOp::Concat { .. } if l.act != [i8::MIN, i8::MAX] => {
                bail!("{at}.act: {:?}; padding and concatenation take no fused activation ([-128, 127])", l.act);
            }
            QOp::Pad { before, after, .. } => {
                let p = PadParams { before: *before, after: *after, value: 0 };
                expect_out(p.output_shape(ishape).map_err(geometry)?)?;
                if l.output_q != l.input_q {
                    bail!("{at}.output_q: padding keeps the input's quantization {:?}", l.input_q);
                }
            }
            QOp::Concat { axis, others } => {
                if *axis > 2 {
                    bail!("{at}.axis: {axis}; 0, 1 or 2 (rows, columns, channels of [h, w, c])");
                }
                if others.is_empty() {
                    bail!("{at}.others: empty; a concatenation joins at least two tensors");
                }
                let mut want = l.input;
                for (k, &t) in others.iter().enumerate() {
                    if t > i {
                        bail!("{at}.others[{k}]: tensor {t} does not exist yet (0 is the model input, j + 1 the output of layer j < {i})");
                    }
                    let shape = self.tensor_shape(t);
                    if (0..3).any(|d| d != *axis && shape[d] != l.input[d]) {
                        bail!(
                            "{at}.others[{k}]: tensor {t} is {shape:?}, which does not fit {:?} along axis {axis}",
                            l.input
                        );
                    }
                    if self.tensor_q(t) != l.input_q {
                        bail!("{at}.others[{k}]: tensor {t} is quantized as {:?}, the first operand as {:?}; a concatenation copies values, so all need one quantization", self.tensor_q(t), l.input_q);
                    }
                    want[*axis] = want[*axis].saturating_add(shape[*axis]);
                }
                expect_out(img(want))?;
                if l.output_q != l.input_q {
                    bail!("{at}.output_q: a concatenation keeps its operands' quantization {:?}", l.input_q);
                }
            }
            QOp::Requantize { multiplier, shift } => {
                expect_out(ishape)?;
                check_requant_field(*multiplier, *shift, &format!("{at}.multiplier/shift"))?;
                let derived = quantize_multiplier(l.input_q.scale as f64 / l.output_q.scale as f64);
                if (derived.multiplier, derived.shift) != (*multiplier, *shift) {
                    bail!("{at}.multiplier/shift: {multiplier}/{shift}, but the quantizations give {}/{}; regenerate the file", derived.multiplier, derived.shift);
                }
            }
            QOp::LeakyRelu { alpha } => {
                expect_out(ishape)?;
                if !(alpha.is_finite() && *alpha >= 0.0) {
                    bail!("{at}.alpha: {alpha}; a finite slope ≥ 0");
                }
                let p = leaky_params(l);
                check_requant_field(p.identity.multiplier, p.identity.shift, &format!("{at}: s_in / s_out"))?;
                check_requant_field(p.alpha.multiplier, p.alpha.shift, &format!("{at}: alpha · s_in / s_out"))?;
                if l.act != [i8::MIN, i8::MAX] {
                    bail!("{at}.act: {:?}; leaky ReLU takes no fused activation ([-128, 127])", l.act);
                }
            }
            QOp::Logistic | QOp::Tanh => {
                expect_out(ishape)?;
                let (want, what) = if matches!(l.op, QOp::Logistic) {
                    (QParams { scale: 1.0 / 256.0, zero_point: -128 }, "logistic: scale 1/256, zero point −128")
                } else {
                    (QParams { scale: 1.0 / 128.0, zero_point: 0 }, "tanh: scale 1/128, zero point 0")
                };
                if l.output_q != want {
                    bail!("{at}.output_q: {:?}; int8 {what}", l.output_q);
                }
                if l.act != [i8::MIN, i8::MAX] {
                    bail!("{at}.act: {:?}; {what} takes no fused activation ([-128, 127])", l.act);
                }
                squash_params(l).map_err(|_| {
                    anyhow::anyhow!(
                        "{at}.input_q: scale {} is outside what int8 LOGISTIC/TANH can rescale (2^-27 to 2^35)",
                        l.input_q.scale
                    )
                })?;
            }
            QOp::Softmax { input_multiplier, input_left_shift, diff_min, beta } => {
                expect_out(ishape)?;
                let derived = SoftmaxParams::new(
                    l.input_q.scale,
                    *beta,
                    SoftmaxParams::OUTPUT_SCALE,
                    SoftmaxParams::OUTPUT_ZERO_POINT,
                )
                .map_err(|_| anyhow::anyhow!("{at}.beta: {beta} must be a positive number"))?;
                if (derived.input_multiplier, derived.input_left_shift, derived.diff_min)
                    != (*input_multiplier, *input_left_shift, *diff_min)
                {
                    bail!(
                        "{at}: input_multiplier/input_left_shift/diff_min ({input_multiplier}, {input_left_shift}, {diff_min}) are not what input scale {} and beta {beta} give ({}, {}, {}); regenerate the file",
                        l.input_q.scale, derived.input_multiplier, derived.input_left_shift, derived.diff_min
                    );
                }
                if *input_multiplier < 0 || !(0..=31).contains(input_left_shift) || *diff_min > 0 {
                    bail!("{at}: softmax needs input_multiplier ≥ 0, input_left_shift in 0..=31 and diff_min ≤ 0");
                }
                if l.output_q != (QParams { scale: 1.0 / 256.0, zero_point: -128 }) {
                    bail!("{at}.output_q: int8 softmax output is scale 1/256, zero point −128");
                }
            }
        }
        Ok(())
    }
}

fn check_qparams(q: QParams, at: &str) -> Result<()> {
    if !(q.scale.is_finite() && q.scale > 0.0) {
        bail!("{at}.scale: {} must be finite and positive", q.scale);
    }
    Ok(())
}

fn check_requant_field(m: i32, s: i32, at: &str) -> Result<()> {
    if !(m == 0 || (1 << 30..=i32::MAX).contains(&m)) || !(-31..=30).contains(&s) {
        bail!("{at}: {m}/{s}: a multiplier is 0 or in [2^30, 2^31) and a shift in −31..=30 (TFLite's range)");
    }
    Ok(())
}

/// Runs one layer with the runtime kernels.
/// The runtime's per-channel requantization table from the model file's parallel
/// `multiplier`/`shift` arrays (checked to have equal lengths by [`QModel::validate`]).
fn requant_table(multiplier: &[i32], shift: &[i32]) -> Vec<Requant> {
    multiplier.iter().zip(shift).map(|(&m, &s)| Requant::new(m, s)).collect()
}

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
        QOp::Requantize { multiplier, shift } => {
            let p = microcnn::activation::ReluParams {
                input_zero_point: zi,
                output_zero_point: zo,
                requant: Requant { multiplier: *multiplier, shift: *shift },
                activation,
            };
            microcnn::activation::relu_i8(&p, src, dst)
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
        QOp::Add { skip_q, .. } => *skip_q,
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

/// int8 accuracy and predictions on a data set, through the runtime kernels.
pub fn evaluate(q: &QModel, data: &Dataset) -> Result<(f32, Vec<Vec<i8>>)> {
    let mut arena = vec![0i8; q.plan().bytes];
    let mut scores = vec![0i8; q.num_classes()];
    let mut correct = 0;
    let mut outputs = Vec::with_capacity(data.len());
    for i in 0..data.len() {
        let x = q.quantize_input(data.image(i));
        q.run(&x, &mut arena, &mut scores).map_err(|e| anyhow::anyhow!("runtime error in image {i}: {e}"))?;
        if microcnn::classify::argmax_i8(&scores).map_err(|e| anyhow::anyhow!("{e}"))? == data.labels[i] as usize {
            correct += 1;
        }
        outputs.push(scores.clone());
    }
    Ok((correct as f32 / data.len().max(1) as f32, outputs))
}
