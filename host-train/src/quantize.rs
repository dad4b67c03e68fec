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

/// The static memory plan. Tensors are numbered 0 (the model input, the caller's buffer),
/// `i + 1` (the output of layer `i`); the last layer writes the caller's score buffer. Every
/// other tensor gets an arena offset such that tensors alive at the same time never overlap:
/// tensors are placed largest first at the lowest offset free of every tensor whose lifetime
/// (producer to last consumer) overlaps theirs. For a plain chain this gives exactly the largest
/// input + output pair of any layer, the minimum for a sequential schedule without in-place
/// layers; a residual block's input stays alive until its add.
#[derive(Clone, Debug, PartialEq)]
pub struct ArenaPlan {
    /// Arena size in bytes.
    pub bytes: usize,
    /// Offset of each tensor (None: the caller's input or score buffer).
    pub offset: Vec<Option<usize>>,
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

    /// The tensors layer `i` reads.
    pub fn inputs_of(&self, i: usize) -> Vec<usize> {
        match &self.layers[i].op {
            QOp::Add { skip, .. } => vec![i, *skip],
            _ => vec![i],
        }
    }

    /// Plans the arena.
    pub fn plan(&self) -> ArenaPlan {
        let n = self.layers.len();
        let tensors = n + 1;
        // Lifetime of tensor t: [producer, last consumer], in layer steps.
        let mut last_use = vec![0usize; tensors];
        for i in 0..n {
            for t in self.inputs_of(i) {
                last_use[t] = last_use[t].max(i);
            }
        }
        let in_arena = |t: usize| t != 0 && t != n;
        let life = |t: usize| (t - 1, last_use[t].max(t - 1));
        let peak_live = (0..n)
            .map(|i| {
                (1..n).filter(|&t| in_arena(t) && life(t).0 <= i && i <= life(t).1).map(|t| self.tensor_len(t)).sum()
            })
            .max()
            .unwrap_or(0);
        // First-fit placement in a given order.
        let place = |order: &[usize]| -> (usize, Vec<Option<usize>>) {
            let mut offset: Vec<Option<usize>> = vec![None; tensors];
            let mut bytes = 0;
            for &t in order {
                let (s, e) = life(t);
                let len = self.tensor_len(t);
                let mut busy: Vec<(usize, usize)> = (1..n)
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
            (bytes, offset)
        };
        // A few classic orders, then deterministic pseudo-random ones; the smallest arena wins
        // (first found on ties, so the plan is reproducible). Chains reach the optimum at once.
        let base: Vec<usize> = (1..n).collect();
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

    /// Runs one image through the runtime kernels, using `arena` exactly as the plan says.
    pub fn run(&self, input: &[i8], arena: &mut [i8], scores: &mut [i8]) -> Result<(), microcnn::Error> {
        let plan = self.plan();
        let n = self.layers.len();
        for (i, l) in self.layers.iter().enumerate() {
            let ins = self.inputs_of(i);
            let region = |t: usize| plan.offset[t].map(|o| (o, self.tensor_len(t)));
            match plan.offset[i + 1] {
                Some(o) => {
                    let out = (o, self.out_len(i));
                    // Arena inputs through the checked splitter, external ones directly.
                    let first = region(ins[0]);
                    let second = ins.get(1).and_then(|&t| region(t));
                    let ([a, b], dst) =
                        microcnn::memory::arena_io(arena, [first.unwrap_or((0, 0)), second.unwrap_or((0, 0))], out)?;
                    let src = if first.is_some() { a } else { input };
                    let skip = ins.get(1).map(|_| if second.is_some() { b } else { input });
                    run_layer(l, src, skip, dst)?;
                }
                None => {
                    debug_assert_eq!(i + 1, n);
                    let view = |t: usize| -> &[i8] {
                        match region(t) {
                            Some((o, len)) => &arena[o..o + len],
                            None => input,
                        }
                    };
                    let src = view(ins[0]);
                    let skip = ins.get(1).map(|&t| view(t));
                    run_layer(l, src, skip, scores)?;
                }
            }
        }
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
        let mut prev_out = self.input;
        let mut prev_q = self.input_q;
        for (i, l) in self.layers.iter().enumerate() {
            let at = format!("layers[{i}] (`{}`)", l.name);
            // A dense layer reads its input flattened (a dropped `flatten`): same element count.
            let flattened = matches!(l.op, QOp::Dense { .. })
                && l.input[0] == 1
                && l.input[1] == 1
                && l.input.iter().product::<usize>() == prev_out.iter().product::<usize>();
            if l.input != prev_out && !flattened {
                bail!("{at}.input: {:?}, but the previous tensor is {:?}", l.input, prev_out);
            }
            if l.input_q != prev_q {
                bail!("{at}.input_q: {:?} differs from the previous tensor's quantization {:?}", l.input_q, prev_q);
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
            prev_out = l.output;
            prev_q = l.output_q;
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
            let src = vec![0i8; self.tensor_len(i)];
            let skip = match &l.op {
                QOp::Add { skip, .. } => Some(vec![0i8; self.tensor_len(*skip)]),
                _ => None,
            };
            let mut dst = vec![0i8; self.out_len(i)];
            run_layer(l, &src, skip.as_deref(), &mut dst)
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
                let skip_shape = if *skip == 0 { self.input } else { self.layers[*skip - 1].output };
                if skip_shape != l.input {
                    bail!("{at}.skip: tensor {skip} is {skip_shape:?}, but the add needs {:?}", l.input);
                }
                let actual_q = if *skip == 0 { self.input_q } else { self.layers[*skip - 1].output_q };
                if *skip_q != actual_q {
                    bail!("{at}.skip_q: {skip_q:?}, but tensor {skip} is quantized as {actual_q:?}");
                }
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

pub fn run_layer(l: &QLayer, src: &[i8], skip: Option<&[i8]>, dst: &mut [i8]) -> Result<(), microcnn::Error> {
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
        QOp::Add { .. } => microcnn::add::add_i8(&add_params(l), src, skip.unwrap_or(&[]), dst),
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
