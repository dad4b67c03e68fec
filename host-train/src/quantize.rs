//! Post-training int8 quantization (TFLite's scheme) and the host executor that runs the
//! quantized model through the `microcnn` runtime kernels with the same static memory plan the
//! generated code uses.

use crate::data::Dataset;
use crate::net::{fused, Net};
use crate::rng::Rng;
use crate::spec::{Act, LayerSpec, PadSpec};
use anyhow::{bail, Result};
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
    /// Softmax (output scale 1/256, zero point −128).
    Softmax {
        /// Input multiplier.
        input_multiplier: i32,
        /// Left shift.
        input_left_shift: i32,
        /// Smallest contributing difference.
        diff_min: i32,
    },
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
    // Float activations after every layer on the calibration set.
    let mut rng = Rng::new(0);
    let mut acts: Vec<Vec<f32>> = Vec::new();
    let mut a = calib.images.clone();
    for l in &mut net.layers {
        a = l.forward(std::mem::take(&mut a), n, false, &mut rng);
        acts.push(a.clone());
    }
    let mut layers: Vec<QLayer> = Vec::new();
    let mut cur_q = input_q;
    for (li, l) in net.layers.iter().enumerate() {
        let r = &l.r;
        let (input, output) = (shape3(r.input), shape3(r.output));
        let calibrated = || {
            let mut v = acts[li].clone();
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
                if let Some(prev) = layers.last_mut() {
                    if matches!(prev.op, QOp::Conv { .. } | QOp::Dense { .. }) {
                        let r2 = act_range(a, prev.output_q);
                        prev.act = [prev.act[0].max(r2[0]), prev.act[1].min(r2[1])];
                        continue;
                    }
                }
                base(QOp::Clamp, cur_q, act_range(a, cur_q))
            }
            LayerSpec::Softmax => {
                let p = SoftmaxParams::new(cur_q.scale, 1.0);
                base(
                    QOp::Softmax {
                        input_multiplier: p.input_multiplier,
                        input_left_shift: p.input_left_shift,
                        diff_min: p.diff_min,
                    },
                    QParams { scale: 1.0 / 256.0, zero_point: -128 },
                    [i8::MIN, i8::MAX],
                )
            }
            LayerSpec::Dropout { .. } | LayerSpec::Flatten => continue, // identity / reinterpretation
        };
        cur_q = layer.output_q;
        layers.push(layer);
    }
    Ok(QModel {
        name: net.spec.name.clone(),
        classes: net.spec.classes.clone(),
        input: net.spec.input,
        input_q,
        layers,
        source,
    })
}

/// The static memory plan: layer `i` reads from `input_offset[i]` and writes `output_offset[i]`
/// inside one arena; outputs alternate between the two ends, so a layer's input and output never
/// overlap and the arena is exactly the largest input + output pair (the minimum for a
/// sequential schedule without in-place layers). The first input and the last output are the
/// caller's own buffers.
#[derive(Clone, Debug, PartialEq)]
pub struct ArenaPlan {
    /// Arena size in bytes.
    pub bytes: usize,
    /// Offset of each layer's output (None for the last layer, which writes the caller's buffer).
    pub output_offset: Vec<Option<usize>>,
}

impl QModel {
    /// Element count of layer `i`'s output.
    pub fn out_len(&self, i: usize) -> usize {
        self.layers[i].output.iter().product()
    }

    /// Plans the arena.
    pub fn plan(&self) -> ArenaPlan {
        let n = self.layers.len();
        let mut bytes = 0;
        for i in 0..n {
            let input = if i == 0 { 0 } else { self.out_len(i - 1) };
            let output = if i + 1 == n { 0 } else { self.out_len(i) };
            bytes = bytes.max(input + output);
        }
        let output_offset = (0..n)
            .map(|i| {
                if i + 1 == n {
                    None
                } else if i % 2 == 0 {
                    Some(0)
                } else {
                    Some(bytes - self.out_len(i))
                }
            })
            .collect();
        ArenaPlan { bytes, output_offset }
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
            let in_len = l.input.iter().product::<usize>();
            let out_len = self.out_len(i);
            let in_off = if i == 0 { None } else { plan.output_offset[i - 1] };
            // Split so the input and output borrow disjoint parts of the arena.
            let (src, dst): (&[i8], &mut [i8]) = match (in_off, plan.output_offset[i]) {
                (None, Some(o)) => (input, &mut arena[o..o + out_len]),
                (Some(a), None) => (&arena[a..a + in_len], &mut scores[..]),
                (None, None) => (input, &mut scores[..]),
                (Some(a), Some(o)) => {
                    if a < o {
                        let (lo, hi) = arena.split_at_mut(o);
                        (&lo[a..a + in_len], &mut hi[..out_len])
                    } else {
                        let (lo, hi) = arena.split_at_mut(a);
                        (&hi[..in_len], &mut lo[o..o + out_len])
                    }
                }
            };
            let _ = n;
            run_layer(l, src, dst)?;
        }
        Ok(())
    }
}

/// Runs one layer with the runtime kernels.
pub fn run_layer(l: &QLayer, src: &[i8], dst: &mut [i8]) -> Result<(), microcnn::Error> {
    let activation = ActivationRange { min: l.act[0], max: l.act[1] };
    let (zi, zo) = (l.input_q.zero_point as i32, l.output_q.zero_point as i32);
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
                multiplier,
                shift,
            };
            match depth_multiplier {
                Some(m) => depthwise_conv2d_i8(&p, *m, &w, src, ishape, dst).map(|_| ()),
                None => conv2d_i8(&p, &w, src, ishape, dst).map(|_| ()),
            }
        }
        QOp::Dense { units, weights, bias, multiplier, shift, .. } => {
            let p = DenseParams { input_zero_point: zi, output_zero_point: zo, activation };
            let w = DenseWeights { weights, units: *units, bias: Some(bias), multiplier, shift };
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
            dst.copy_from_slice(src);
            clamp_in_place_i8(activation, dst)
        }
        QOp::Softmax { input_multiplier, input_left_shift, diff_min } => {
            let p = SoftmaxParams {
                input_multiplier: *input_multiplier,
                input_left_shift: *input_left_shift,
                diff_min: *diff_min,
            };
            softmax_i8(&p, src, l.output[2], dst)
        }
    }
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
