//! Per-model report (layer table, flash and RAM totals, accuracies) and the `emit` command.

pub mod metrics;
pub mod plot;

use crate::files::emit::{emit, weight_bytes};
use crate::graph::QModel;
use anyhow::{bail, Context, Result};
use std::fmt::Write;
use std::path::Path;

/// MACs of one quantized layer.
fn macs(l: &crate::graph::QLayer) -> usize {
    let out: usize = l.output.iter().product();
    match &l.op {
        crate::graph::QOp::Conv { filter_shape: f, depth_multiplier: None, .. } => out * f[1] * f[2] * f[3],
        crate::graph::QOp::Conv { filter_shape: f, .. } => out * f[1] * f[2],
        crate::graph::QOp::Dense { weights, .. } => weights.len(),
        // Every input value meets K_h·K_w·C_out weights (the taps cropped at the border included).
        crate::graph::QOp::TransposeConv { weights, .. } => l.input[0] * l.input[1] * weights.len(),
        _ => 0,
    }
}

/// RAM an inference needs: the arena, which holds the input and the scores too.
pub fn ram_bytes(q: &QModel) -> usize {
    q.plan().bytes
}

/// Flash of the constant tables.
pub fn flash_bytes(q: &QModel) -> usize {
    q.layers.iter().map(weight_bytes).sum()
}

/// The report table.
pub fn table(q: &QModel, acc: Option<(f32, f32, usize)>) -> String {
    let mut s = format!("int8 model \"{}\"\n", q.name);
    let plan = q.plan();
    let _ = writeln!(
        s,
        "{:<12} {:<16} {:>10} {:>12} {:>9} {:>10} {:>9} {:>9} {:>9}",
        "layer", "op", "reads", "output", "params", "MACs", "act B", "weight B", "arena @"
    );
    s += &"─".repeat(104);
    s.push('\n');
    let (mut tp, mut tm) = (0, 0);
    let tensor = |t: usize| if t == 0 { "input".to_string() } else { format!("L{}", t - 1) };
    for (i, l) in q.layers.iter().enumerate() {
        let params = match &l.op {
            crate::graph::QOp::Conv { weights, bias, .. }
            | crate::graph::QOp::TransposeConv { weights, bias, .. }
            | crate::graph::QOp::Dense { weights, bias, .. } => weights.len() + bias.len(),
            _ => 0,
        };
        tp += params;
        tm += macs(l);
        let reads: Vec<String> = q.inputs_of(i).into_iter().map(tensor).collect();
        let _ = writeln!(
            s,
            "{:<12} {:<16} {:>10} {:>12} {:>9} {:>10} {:>9} {:>9} {:>9}",
            l.name,
            op_label(l),
            reads.join("+"),
            format!("{}×{}×{}", l.output[0], l.output[1], l.output[2]),
            params,
            macs(l),
            l.output.iter().product::<usize>(),
            weight_bytes(l),
            plan.offset[i + 1]
        );
    }
    s += &"─".repeat(104);
    let _ = writeln!(s, "\n{tp} parameters, {tm} MACs per inference");
    let _ = writeln!(s, "flash (weights, biases, multipliers, shifts): {} bytes", flash_bytes(q));
    let _ =
        writeln!(s, "RAM: arena {} bytes (every activation tensor, the input at offset {} and the scores included; the most alive at once {})", ram_bytes(q), plan.offset[0], plan.peak_live);
    if let Some((f, i, n)) = acc {
        let _ = writeln!(s, "accuracy on {n} test images: float {:.2}%, int8 {:.2}% (int8 − float: {:+.2} points; int8 computed by the microcnn runtime kernels)", 100.0 * f, 100.0 * i, 100.0 * (i - f));
    }
    s
}

/// A short name for the layer's op.
pub fn op_label(l: &crate::graph::QLayer) -> &'static str {
    use crate::graph::QOp::*;
    match &l.op {
        Conv { depth_multiplier: Some(_), .. } => "depthwise conv",
        Conv { filter_shape: f, .. } if f[1] == 1 && f[2] == 1 => "1x1 conv",
        Conv { .. } => "conv",
        Dense { .. } => "dense",
        TransposeConv { .. } => "transpose conv",
        Resize { .. } => "resize nearest",
        Pool { max: true, .. } => "max pool",
        Pool { .. } => "avg pool",
        L2Pool { .. } => "l2 pool",
        Mean { .. } => "global avg pool",
        Clamp => "relu",
        Softmax { .. } => "softmax",
        Add { .. } => "add",
        Pad { .. } => "pad",
        Concat { .. } => "concat",
        Logistic => "logistic",
        HardSwish => "hard swish",
        Transpose { .. } => "transpose",
        Tanh => "tanh",
        Requantize { .. } => "requantize",
        LeakyRelu { .. } => "leaky relu",
        Binary { kind: crate::graph::BinaryKind::Add, .. } => "add",
        Binary { kind: crate::graph::BinaryKind::Sub, .. } => "sub",
        Binary { kind: crate::graph::BinaryKind::Mul, .. } => "mul",
    }
}

/// Reads and validates `DIR/quantized.json`.
pub fn load_qmodel(dir: &Path) -> Result<QModel> {
    let qpath = dir.join("quantized.json");
    let text = std::fs::read_to_string(&qpath).with_context(|| {
        format!("cannot read {} (run `microcnn quantize --out {}` first)", qpath.display(), dir.display())
    })?;
    QModel::from_json(&text, &qpath.display().to_string())
}

/// `microcnn emit`: validates `DIR/quantized.json` and the budgets, and returns the model and
/// the code for `DIR/model.rs` (`None` with `check`, after comparing it with the file). Writes
/// nothing: the caller commits every output of the command together.
pub fn emit_cmd(
    dir: &Path,
    check: bool,
    max_flash: Option<usize>,
    max_ram: Option<usize>,
) -> Result<(QModel, Option<String>)> {
    let q = load_qmodel(dir)?;
    if let Some(max) = max_flash {
        let f = flash_bytes(&q);
        if f > max {
            let big = q
                .layers
                .iter()
                .max_by_key(|l| weight_bytes(l))
                .map(|l| format!("{} ({} bytes)", l.name, weight_bytes(l)))
                .unwrap_or_default();
            bail!("model needs {f} bytes of flash for weights, over the budget of {max}; largest layer: {big}. Nothing was written.");
        }
    }
    if let Some(max) = max_ram {
        let r = ram_bytes(&q);
        if r > max {
            let (mut worst, mut at) = (0, String::new());
            for (i, l) in q.layers.iter().enumerate() {
                let pair = l.input.iter().product::<usize>() + q.out_len(i);
                if pair > worst {
                    worst = pair;
                    at = l.name.clone();
                }
            }
            bail!("model needs {r} bytes of RAM, over the budget of {max}; the largest live pair is layer {at} ({worst} bytes of input + output). Nothing was written.");
        }
    }
    // The header names no machine-specific path, so the output depends only on the model.
    let regen = "cargo run --release -p host-train -- emit --model-dir <this folder>".to_string();
    let code = emit(&q, &regen);
    let target = dir.join("model.rs");
    if check {
        let current = std::fs::read_to_string(&target).with_context(|| {
            format!("{} missing: run `microcnn emit --model-dir {}`", target.display(), dir.display())
        })?;
        if current != code {
            let line = current
                .lines()
                .zip(code.lines())
                .position(|(a, b)| a != b)
                .map(|i| i + 1)
                .unwrap_or(current.lines().count().min(code.lines().count()) + 1);
            bail!(
                "{} has drifted from its generator (first difference at line {line}); regenerate with `{regen}`",
                target.display()
            );
        }
        println!("{}: up to date", target.display());
        return Ok((q, None));
    }
    Ok((q, Some(code)))
}

/// The text of a `test_vectors.rs`: the quantized test images, labels and the host runtime's
/// int8 scores, with the host's int8 accuracy on them.
pub fn test_vectors(q: &QModel, data: &crate::data::Dataset) -> Result<(String, f32)> {
    let (acc, outputs) = crate::graph::evaluate(q, data)?;
    let n = data.len();
    let mut s = format!(
        "//! {n} test images for model `{}` with the host's expected int8 scores (host int8 accuracy on\n\
         //! them: {:.1}%). Generated by `microcnn emit --test-images {n}`; the images are the first {n} of\n\
         //! the test split (Fashion-MNIST, MIT licence, (c) Zalando SE).\n\n",
        crate::files::emit::comment(&q.name),
        100.0 * acc
    );
    let _ = writeln!(s, "/// Number of images.\npub const COUNT: usize = {n};");
    let _ = writeln!(
        s,
        "/// Quantized input images.\npub static IMAGES: [[i8; {}]; COUNT] = [",
        q.input.iter().product::<usize>()
    );
    for i in 0..n {
        let x = q.quantize_input(data.image(i));
        let _ = writeln!(s, "    {x:?},");
    }
    if q.is_map() {
        // A map has no one true label: the host's majority class, so the app's "accuracy"
        // counts agreement with the host (the exactness check compares every value anyway).
        let labels = outputs.iter().map(|y| top_label(q, y)).collect::<Result<Vec<u8>>>()?;
        s.push_str("];\n/// The host's majority class of each output map (a map has no single true label).\n");
        let _ = writeln!(s, "pub static LABELS: [u8; COUNT] = {labels:?};");
    } else {
        s.push_str("];\n/// True labels.\n");
        let _ = writeln!(s, "pub static LABELS: [u8; COUNT] = {:?};", data.labels);
    }
    let _ = writeln!(
        s,
        "/// Scores the host computed with the same runtime code.\npub static EXPECTED: [[i8; {}]; COUNT] = [",
        q.num_classes()
    );
    for o in &outputs {
        let _ = writeln!(s, "    {o:?},");
    }
    s.push_str("];\n");
    Ok((s, acc))
}

/// The label an output stands for: the best class of a score vector, the most frequent class
/// of a map's per-pixel argmax (the first of equals).
pub fn top_label(q: &QModel, y: &[i8]) -> Result<u8> {
    let top = if q.is_map() {
        let mut map = vec![0u8; y.len() / q.class_count()];
        microcnn::postprocess::argmax_map_i8(y, q.class_count(), &mut map).map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut counts = vec![0usize; q.class_count()];
        for &c in &map {
            counts[c as usize] += 1;
        }
        (0..counts.len()).rev().max_by_key(|&c| counts[c]).unwrap_or(0)
    } else {
        // A localization model's box follows its class scores.
        microcnn::classify::argmax_i8(&y[..q.class_count().min(y.len())]).map_err(|e| anyhow::anyhow!("{e}"))?
    };
    u8::try_from(top).map_err(|_| anyhow::anyhow!("more than 256 classes"))
}

/// `test_vectors.rs` from given int8 inputs (a `.npy` batch) instead of a labelled data set:
/// the host's int8 outputs as `EXPECTED`, and as `LABELS` the host's top class per input ([`top_label`]; the
/// file has no labels, so the firmware's "accuracy" then measures agreement with the host).
pub fn test_vectors_from_inputs(q: &QModel, items: &[Vec<i8>], from: &str) -> Result<String> {
    let n = items.len();
    let mut arena = vec![0i8; q.plan().bytes];
    let mut outputs = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    for (k, x) in items.iter().enumerate() {
        let mut y = vec![0i8; q.num_classes()];
        q.run(x, &mut arena, &mut y).map_err(|e| anyhow::anyhow!("input {k}: runtime error: {e}"))?;
        labels.push(top_label(q, &y)?);
        outputs.push(y);
    }
    let mut s = format!(
        "//! {n} inputs for model `{}` from {} with the host's expected int8 outputs. Generated by\n\
         //! `microcnn emit --test-inputs`; LABELS are the host's top outputs (the inputs carry no labels).\n\n",
        crate::files::emit::comment(&q.name),
        crate::files::emit::comment(from)
    );
    let _ = writeln!(s, "/// Number of inputs.\npub const COUNT: usize = {n};");
    let _ = writeln!(
        s,
        "/// Quantized inputs.\npub static IMAGES: [[i8; {}]; COUNT] = [",
        q.input.iter().product::<usize>()
    );
    for x in items {
        let _ = writeln!(s, "    {x:?},");
    }
    s.push_str("];\n/// The host's top output per input.\n");
    let _ = writeln!(s, "pub static LABELS: [u8; COUNT] = {labels:?};");
    let _ = writeln!(
        s,
        "/// Outputs the host computed with the same runtime code.\npub static EXPECTED: [[i8; {}]; COUNT] = [",
        q.num_classes()
    );
    for o in &outputs {
        let _ = writeln!(s, "    {o:?},");
    }
    s.push_str("];\n");
    Ok(s)
}
