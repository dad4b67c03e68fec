//! Checks every field of a graph before emit, export or the executor trust it.

use super::*;
use anyhow::{bail, Context, Result};
use microcnn::conv::ConvParams;
use microcnn::layout::PadParams;
use microcnn::quant::quantize_multiplier;
use microcnn::softmax::SoftmaxParams;
use microcnn::{ActivationRange, Shape};

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
        crate::model::spec::check_model_name(&self.name).context("name")?;
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
            crate::model::spec::check_dotted_layer_name(&l.name).with_context(|| format!("layers[{i}].name"))?;
        }
        crate::model::spec::check_generated_idents(self.layers.iter().map(|l| l.name.as_str())).context("layers")?;
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
        // The output may have any shape (a feature map, a decoder's image); `classes` names its
        // elements when the model is a classifier.
        let k = self.class_count();
        if !self.classes.is_empty() && self.classes.len() != k {
            let what = if self.is_map() { "channels of the output map" } else { "outputs" };
            bail!("classes: {} names for {k} {what}", self.classes.len());
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
            QOp::TransposeConv { filter_shape: f, weights, weight_scales, bias, multiplier, shift, .. } => {
                let fs = Shape::new(f[0], f[1], f[2], f[3]);
                let flen = fs
                    .checked_nonempty_len()
                    .map_err(|_| anyhow::anyhow!("{at}.filter_shape: {f:?} must be non-zero"))?;
                if weights.len() != flen {
                    bail!("{at}.weights: {} values for filter_shape {f:?} ({flen})", weights.len());
                }
                if f[3] != l.input[2] {
                    bail!("{at}.filter_shape: {f:?} reads {} channels, the input has {}", f[3], l.input[2]);
                }
                if l.output[2] != f[0] {
                    bail!("{at}.output: {:?}, but the filter makes {} channels", l.output, f[0]);
                }
                tables(f[0], weight_scales, bias, multiplier, shift, &[f[0]])?;
                // Geometry (strides, the explicit crop against the output size, tap limits) is the
                // kernel's: checked when the layer runs once below.
            }
            QOp::Resize { align_corners, half_pixel_centers } => {
                if *align_corners && *half_pixel_centers {
                    bail!("{at}: align_corners and half_pixel_centers exclude each other (TFLite refuses both)");
                }
                if l.output[2] != l.input[2] {
                    bail!("{at}.output: {:?}; resizing keeps the {} channels", l.output, l.input[2]);
                }
                if l.output_q != l.input_q || l.act != [i8::MIN, i8::MAX] {
                    bail!("{at}: resizing keeps the quantization {:?} and takes no clamp", l.input_q);
                }
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
            QOp::Binary { kind: _, other, other_shape, other_q, constant } => {
                check_qparams(*other_q, &format!("{at}.other_q"))?;
                let b = img(*other_shape);
                let b_len = b
                    .checked_nonempty_len()
                    .map_err(|_| anyhow::anyhow!("{at}.other_shape: {other_shape:?} must be non-zero"))?;
                match other {
                    Some(t) => {
                        if *t > i {
                            bail!("{at}.other: tensor {t} does not exist yet (0 is the model input, j + 1 the output of layer j < {i})");
                        }
                        if self.tensor_len(*t) != b_len {
                            bail!("{at}.other_shape: {other_shape:?}, but tensor {t} is {:?}", self.tensor_shape(*t));
                        }
                        if self.tensor_q(*t) != *other_q {
                            bail!("{at}.other_q: {other_q:?}, but tensor {t} is quantized as {:?}", self.tensor_q(*t));
                        }
                        if !constant.is_empty() {
                            bail!("{at}.constant: a tensor operand takes no constant values");
                        }
                    }
                    None => {
                        if constant.len() != b_len {
                            bail!("{at}.constant: {} values for other_shape {other_shape:?}", constant.len());
                        }
                    }
                }
                let out = microcnn::add::broadcast_shape(ishape, b)
                    .map_err(|_| anyhow::anyhow!("{at}: {:?} and {other_shape:?} do not broadcast", l.input))?;
                expect_out(out)?;
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
            QOp::Transpose { perm } => {
                let mut seen = [false; 3];
                for &a in perm {
                    if a > 2 || seen[a] {
                        bail!("{at}.perm: {perm:?} is not a permutation of 0, 1, 2");
                    }
                    seen[a] = true;
                }
                let d = l.input;
                expect_out(img([d[perm[0]], d[perm[1]], d[perm[2]]]))?;
                if l.output_q != l.input_q || l.act != [i8::MIN, i8::MAX] {
                    bail!("{at}: a transpose keeps the quantization and takes no clamp");
                }
            }
            QOp::HardSwish => {
                expect_out(ishape)?;
                hard_swish_params(l).map_err(|_| {
                    anyhow::anyhow!(
                        "{at}.output_q: hard swish needs an output scale of at least 1/128 of the input's ({} and {})",
                        l.input_q.scale,
                        l.output_q.scale
                    )
                })?;
                if l.act != [i8::MIN, i8::MAX] {
                    bail!("{at}.act: {:?}; hard swish takes no fused activation ([-128, 127])", l.act);
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
