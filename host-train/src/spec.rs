//! The model description: a small TOML file (or the equivalent Rust builder), validated layer by
//! layer with the runtime's own geometry functions before anything is trained.

use anyhow::{bail, Result};
use microcnn::shape::resolve_axis;
use microcnn::{Padding, Shape};
use serde::{Deserialize, Serialize};

/// A size given as one number (square) or `[height, width]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Size2 {
    /// Same along both axes.
    Square(usize),
    /// `[height, width]`.
    Rect([usize; 2]),
}

impl Size2 {
    /// `(height, width)`.
    pub fn hw(self) -> (usize, usize) {
        match self {
            Size2::Square(k) => (k, k),
            Size2::Rect([h, w]) => (h, w),
        }
    }
}

fn one() -> Size2 {
    Size2::Square(1)
}

/// Padding as written in the file: `"valid"`, `"same"`, one number for all sides, or
/// `[top, bottom, left, right]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PadSpec {
    /// `"valid"` or `"same"`.
    Named(PadName),
    /// The same explicit padding on every side.
    All(usize),
    /// `[top, bottom, left, right]`.
    Sides([usize; 4]),
}

/// Named padding modes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PadName {
    /// No padding; the stride must fit exactly.
    Valid,
    /// TensorFlow's SAME.
    Same,
}

impl Default for PadSpec {
    fn default() -> Self {
        PadSpec::Named(PadName::Valid)
    }
}

impl PadSpec {
    /// The runtime's padding.
    pub fn padding(self) -> Padding {
        match self {
            PadSpec::Named(PadName::Valid) => Padding::Valid,
            PadSpec::Named(PadName::Same) => Padding::Same,
            PadSpec::All(p) => Padding::Explicit { top: p, bottom: p, left: p, right: p },
            PadSpec::Sides([top, bottom, left, right]) => Padding::Explicit { top, bottom, left, right },
        }
    }
}

/// A fused activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Act {
    /// None.
    #[default]
    None,
    /// ReLU.
    Relu,
    /// ReLU6.
    Relu6,
}

/// One layer of the description.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum LayerSpec {
    /// Convolution (any kernel, stride, padding, dilation).
    Conv {
        /// Layer name (defaults to `conv<N>`).
        #[serde(default)]
        name: Option<String>,
        /// Output channels.
        filters: usize,
        /// Kernel size.
        kernel: Size2,
        /// Stride.
        #[serde(default = "one")]
        stride: Size2,
        /// Padding.
        #[serde(default)]
        padding: PadSpec,
        /// Dilation.
        #[serde(default = "one")]
        dilation: Size2,
        /// Fused activation.
        #[serde(default)]
        activation: Act,
    },
    /// 1×1 convolution ("network in network").
    Pointwise {
        /// Layer name.
        #[serde(default)]
        name: Option<String>,
        /// Output channels.
        filters: usize,
        /// Stride.
        #[serde(default = "one")]
        stride: Size2,
        /// Fused activation.
        #[serde(default)]
        activation: Act,
    },
    /// Depthwise convolution.
    Depthwise {
        /// Layer name.
        #[serde(default)]
        name: Option<String>,
        /// Kernel size.
        kernel: Size2,
        /// Stride.
        #[serde(default = "one")]
        stride: Size2,
        /// Padding.
        #[serde(default)]
        padding: PadSpec,
        /// Depth multiplier.
        #[serde(default = "default_multiplier")]
        multiplier: usize,
        /// Fused activation.
        #[serde(default)]
        activation: Act,
    },
    /// Standalone ReLU.
    Relu,
    /// Standalone ReLU6.
    Relu6,
    /// Max pooling.
    MaxPool {
        /// Window.
        size: Size2,
        /// Stride (defaults to the window).
        #[serde(default)]
        stride: Option<Size2>,
        /// Padding.
        #[serde(default)]
        padding: PadSpec,
    },
    /// Average pooling.
    AvgPool {
        /// Window.
        size: Size2,
        /// Stride (defaults to the window).
        #[serde(default)]
        stride: Option<Size2>,
        /// Padding.
        #[serde(default)]
        padding: PadSpec,
    },
    /// L2-norm pooling.
    L2Pool {
        /// Window.
        size: Size2,
        /// Stride (defaults to the window).
        #[serde(default)]
        stride: Option<Size2>,
        /// Padding.
        #[serde(default)]
        padding: PadSpec,
    },
    /// Global average pooling to 1×1.
    GlobalAvgPool,
    /// Dropout (training only).
    Dropout {
        /// Fraction of activations dropped.
        rate: f32,
    },
    /// Flatten to a vector (NHWC memory order, as the runtime's dense layer reads it).
    Flatten,
    /// Dense layer.
    Dense {
        /// Layer name (defaults to `dense<N>`).
        #[serde(default)]
        name: Option<String>,
        /// Outputs.
        units: usize,
        /// Fused activation.
        #[serde(default)]
        activation: Act,
    },
    /// Softmax over the classes (fused with cross-entropy while training).
    Softmax,
    /// A residual block: `activation(x + layers(x))`. The inner layers must give back the
    /// block's input shape; the add rescales both operands as the runtime's `add_i8` does.
    Residual {
        /// Block name (defaults to `residual<N>`); inner layers are named `<block>.<layer>`.
        #[serde(default)]
        name: Option<String>,
        /// The inner layers.
        layers: Vec<LayerSpec>,
        /// Activation after the add.
        #[serde(default)]
        activation: Act,
    },
}

fn default_multiplier() -> usize {
    1
}

/// A whole model description.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Model name (used for generated identifiers).
    pub name: String,
    /// `[height, width, channels]` of the input.
    pub input: [usize; 3],
    /// Class names (optional; their count must match the last layer).
    #[serde(default)]
    pub classes: Vec<String>,
    /// The layers, in order.
    pub layers: Vec<LayerSpec>,
}

/// A validated layer with its resolved name, input and output shapes.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// Unique name.
    pub name: String,
    /// The layer.
    pub spec: LayerSpec,
    /// Input shape (batch 1).
    pub input: Shape,
    /// Output shape (batch 1).
    pub output: Shape,
    /// The resolved inner layers of a residual block (empty otherwise).
    pub children: Vec<Resolved>,
}

impl LayerSpec {
    /// Short kind name used in tables and default names.
    pub fn kind(&self) -> &'static str {
        match self {
            LayerSpec::Conv { .. } => "conv",
            LayerSpec::Pointwise { .. } => "pointwise",
            LayerSpec::Depthwise { .. } => "depthwise",
            LayerSpec::Relu => "relu",
            LayerSpec::Relu6 => "relu6",
            LayerSpec::MaxPool { .. } => "maxpool",
            LayerSpec::AvgPool { .. } => "avgpool",
            LayerSpec::L2Pool { .. } => "l2pool",
            LayerSpec::GlobalAvgPool => "gap",
            LayerSpec::Dropout { .. } => "dropout",
            LayerSpec::Flatten => "flatten",
            LayerSpec::Dense { .. } => "dense",
            LayerSpec::Softmax => "softmax",
            LayerSpec::Residual { .. } => "residual",
        }
    }

    /// The explicit name, if any.
    pub fn explicit_name(&self) -> Option<&str> {
        match self {
            LayerSpec::Conv { name, .. }
            | LayerSpec::Pointwise { name, .. }
            | LayerSpec::Depthwise { name, .. }
            | LayerSpec::Dense { name, .. }
            | LayerSpec::Residual { name, .. } => name.as_deref(),
            _ => None,
        }
    }
}

/// Resolves one axis and explains a failure with the layer's numbers and the formula.
#[allow(clippy::too_many_arguments)]
fn axis(
    layer: &str,
    what: &str,
    w: usize,
    k: usize,
    s: usize,
    d: usize,
    pad: Padding,
    vertical: bool,
) -> Result<usize> {
    match resolve_axis(w, k, s, d, pad, vertical) {
        Ok(g) => Ok(g.out),
        Err(e) => {
            let (pb, pa) = match pad {
                Padding::Explicit { top, bottom, left, right } => {
                    if vertical {
                        (top, bottom)
                    } else {
                        (left, right)
                    }
                }
                _ => (0, 0),
            };
            let keff = if k == 0 { 0 } else { (k - 1) * d + 1 };
            let hint = match e {
                microcnn::Error::FractionalOutput { .. } => {
                    let num = w + pb + pa - keff;
                    format!(
                        "O = (W − K + P)/S + 1 = ({w} − {keff} + {})/{s} + 1 = {num}/{s} + 1 is not a whole number. \
                         Use a stride that divides {num}, change the padding (for example padding = \"same\"), or crop the input",
                        pb + pa
                    )
                }
                microcnn::Error::KernelLargerThanInput => {
                    format!("the kernel ({keff}) is larger than the padded input ({})", w + pb + pa)
                }
                other => other.to_string(),
            };
            bail!("layer `{layer}`: {what}: {hint}")
        }
    }
}

impl ModelSpec {
    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Self> {
        Ok(toml::from_str(text)?)
    }

    /// Serialises to TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Validates the chain and returns every layer's resolved shapes.
    pub fn resolve(&self) -> Result<Vec<Resolved>> {
        let [h, w, c] = self.input;
        if h == 0 || w == 0 || c == 0 {
            bail!("input [{h}, {w}, {c}] has a zero dimension");
        }
        let mut names = std::collections::HashSet::new();
        let out = resolve_chain(&self.layers, Shape::image(h, w, c), "", &mut names)?;
        let Some(last) = out.last() else { bail!("the model has no layers") };
        if last.output.h != 1 || last.output.w != 1 {
            bail!(
                "the last layer `{}` outputs {}×{}×{}; a classifier must end in a vector (dense or global_avg_pool)",
                last.name,
                last.output.h,
                last.output.w,
                last.output.c
            );
        }
        if !self.classes.is_empty() && self.classes.len() != last.output.c {
            bail!("{} class names given but the model outputs {} scores", self.classes.len(), last.output.c);
        }
        Ok(out)
    }

    /// Number of classes the model outputs.
    pub fn num_classes(&self) -> Result<usize> {
        Ok(self.resolve()?.last().map(|l| l.output.c).unwrap_or(0))
    }
}

/// Resolves a chain of layers starting from `input`, naming them under `prefix`.
fn resolve_chain(
    layers: &[LayerSpec],
    input_shape: Shape,
    prefix: &str,
    names: &mut std::collections::HashSet<String>,
) -> Result<Vec<Resolved>> {
    let mut shape = input_shape;
    let mut out = Vec::new();
    let mut counts = std::collections::HashMap::<&str, usize>::new();
    for spec in layers {
        let n = counts.entry(spec.kind()).or_insert(0);
        *n += 1;
        let local = spec.explicit_name().map(str::to_string).unwrap_or_else(|| format!("{}{}", spec.kind(), n));
        let name = format!("{prefix}{local}");
        if !names.insert(name.clone()) {
            bail!("two layers are named `{name}`: names must be unique");
        }
        let input = shape;
        let pool = |size: &Size2, stride: &Option<Size2>, padding: &PadSpec| -> Result<Shape> {
            let (kh, kw) = size.hw();
            let (sh, sw) = stride.unwrap_or(*size).hw();
            let p = padding.padding();
            Ok(Shape::image(
                axis(&name, "height", input.h, kh, sh, 1, p, true)?,
                axis(&name, "width", input.w, kw, sw, 1, p, false)?,
                input.c,
            ))
        };
        let mut children = Vec::new();
        shape = match spec {
            LayerSpec::Residual { layers: inner, .. } => {
                if inner.is_empty() {
                    bail!("residual block `{name}` has no layers");
                }
                if inner.iter().any(|l| matches!(l, LayerSpec::Softmax)) {
                    bail!("residual block `{name}`: softmax belongs at the end of the model, not inside a block");
                }
                children = resolve_chain(inner, input, &format!("{name}."), names)?;
                let inner_out = children.last().map(|r| r.output).unwrap_or(input);
                if inner_out != input {
                    bail!(
                        "residual block `{name}`: its layers turn {}×{}×{} into {}×{}×{}, but the add needs the same shape: use padding = \"same\", stride 1 and {} filters in the last inner layer",
                        input.h, input.w, input.c, inner_out.h, inner_out.w, inner_out.c, input.c
                    );
                }
                input
            }
            LayerSpec::Conv { filters, kernel, stride, padding, dilation, .. } => {
                let ((kh, kw), (sh, sw), (dh, dw)) = (kernel.hw(), stride.hw(), dilation.hw());
                if *filters == 0 {
                    bail!("layer `{name}`: filters must be at least 1");
                }
                let p = padding.padding();
                Shape::image(
                    axis(&name, "height", input.h, kh, sh, dh, p, true)?,
                    axis(&name, "width", input.w, kw, sw, dw, p, false)?,
                    *filters,
                )
            }
            LayerSpec::Pointwise { filters, stride, .. } => {
                let (sh, sw) = stride.hw();
                Shape::image(
                    axis(&name, "height", input.h, 1, sh, 1, Padding::Valid, true)?,
                    axis(&name, "width", input.w, 1, sw, 1, Padding::Valid, false)?,
                    *filters,
                )
            }
            LayerSpec::Depthwise { kernel, stride, padding, multiplier, .. } => {
                let ((kh, kw), (sh, sw)) = (kernel.hw(), stride.hw());
                if *multiplier == 0 {
                    bail!("layer `{name}`: multiplier must be at least 1");
                }
                let p = padding.padding();
                Shape::image(
                    axis(&name, "height", input.h, kh, sh, 1, p, true)?,
                    axis(&name, "width", input.w, kw, sw, 1, p, false)?,
                    input.c * multiplier,
                )
            }
            LayerSpec::MaxPool { size, stride, padding }
            | LayerSpec::AvgPool { size, stride, padding }
            | LayerSpec::L2Pool { size, stride, padding } => pool(size, stride, padding)?,
            LayerSpec::GlobalAvgPool => Shape::image(1, 1, input.c),
            LayerSpec::Flatten => Shape::vector(1, input.len()),
            LayerSpec::Dense { units, .. } => {
                if input.h != 1 || input.w != 1 {
                    bail!("layer `{name}`: dense needs a vector input but gets {}×{}×{}: add a `flatten` or `global_avg_pool` layer before it", input.h, input.w, input.c);
                }
                if *units == 0 {
                    bail!("layer `{name}`: units must be at least 1");
                }
                Shape::vector(1, *units)
            }
            LayerSpec::Dropout { rate } => {
                if !(0.0..1.0).contains(rate) {
                    bail!("layer `{name}`: dropout rate {rate} must be in [0, 1)");
                }
                input
            }
            LayerSpec::Relu | LayerSpec::Relu6 | LayerSpec::Softmax => input,
        };
        out.push(Resolved { name, spec: spec.clone(), input, output: shape, children });
    }
    Ok(out)
}

/// Parameters and MACs of one layer.
pub fn cost(l: &Resolved) -> (usize, usize) {
    let o = l.output;
    match &l.spec {
        LayerSpec::Conv { kernel, .. } => {
            let (kh, kw) = kernel.hw();
            let k = kh * kw * l.input.c;
            (o.c * k + o.c, o.len() * k)
        }
        LayerSpec::Pointwise { .. } => (o.c * l.input.c + o.c, o.len() * l.input.c),
        LayerSpec::Depthwise { kernel, .. } => {
            let (kh, kw) = kernel.hw();
            (o.c * kh * kw + o.c, o.len() * kh * kw)
        }
        LayerSpec::Dense { units, .. } => (units * l.input.len() + units, units * l.input.len()),
        LayerSpec::Residual { .. } => l.children.iter().map(cost).fold((0, 0), |(a, b), (c, d)| (a + c, b + d)),
        _ => (0, 0),
    }
}

/// A Keras-style summary table.
pub fn summary(spec: &ModelSpec) -> Result<String> {
    let layers = spec.resolve()?;
    let mut s = format!("Model \"{}\"  input {}×{}×{}\n", spec.name, spec.input[0], spec.input[1], spec.input[2]);
    s += &format!(
        "{:<14} {:<10} {:>14} {:>10} {:>12} {:>12}\n",
        "layer", "type", "output", "params", "MACs", "act. bytes"
    );
    s += &"─".repeat(77);
    s.push('\n');
    let (mut tp, mut tm, mut peak) = (0, 0, 0);
    let rows: Vec<(&Resolved, bool)> =
        layers.iter().flat_map(|l| std::iter::once((l, false)).chain(l.children.iter().map(|c| (c, true)))).collect();
    for (l, inner) in rows {
        let (p, m) = cost(l);
        if !inner {
            tp += p;
            tm += m;
        }
        // A residual block keeps its input alive while its inner layers run.
        let live = l.input.len() + l.output.len() + if inner { l.input.len().max(l.output.len()) } else { 0 };
        peak = peak.max(live);
        s += &format!(
            "{:<14} {:<10} {:>14} {:>10} {:>12} {:>12}\n",
            if inner { format!("  {}", l.name) } else { l.name.clone() },
            l.spec.kind(),
            format!("{}×{}×{}", l.output.h, l.output.w, l.output.c),
            p,
            m,
            l.output.len()
        );
    }
    s += &"─".repeat(77);
    s += &format!("\ntotal: {tp} parameters, {tm} MACs per image, peak live activations {peak} bytes (estimate; `quantize` reports the planned arena)\n");
    Ok(s)
}
