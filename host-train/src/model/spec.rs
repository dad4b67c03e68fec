//! The model description: a small TOML file (or the equivalent Rust builder), validated layer by
//! layer with the runtime's own geometry functions before anything is trained.

use anyhow::{bail, Context, Result};
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
    /// TensorFlow Lite's VALID: no padding, the output size floored, so a stride that does not
    /// fit leaves the last rows/columns unread (what imported models use).
    #[serde(rename = "valid_floor")]
    ValidFloor,
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
            PadSpec::Named(PadName::ValidFloor) => Padding::ValidFloor,
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
    /// Transposed convolution (learned upsampling; TFLite's `TRANSPOSE_CONV`): every input pixel
    /// adds the kernel times its value onto the output, `stride` apart. Output size per axis:
    /// `"same"` → input × stride; `"valid"` (the default) → (input − 1) × stride + kernel;
    /// explicit `[top, bottom, left, right]` crops that much off the valid output, like
    /// PyTorch's `ConvTranspose2d(padding=…)`.
    TransposeConv {
        /// Layer name (defaults to `transposeconv<N>`).
        #[serde(default)]
        name: Option<String>,
        /// Output channels.
        filters: usize,
        /// Kernel size.
        kernel: Size2,
        /// Stride (the upsampling factor).
        #[serde(default = "one")]
        stride: Size2,
        /// Padding (what a forward convolution of the output would pad, cropped off).
        #[serde(default)]
        padding: PadSpec,
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
    /// Nearest-neighbour upsampling by a whole factor on both axes (a decoder's step back up;
    /// TFLite's RESIZE_NEAREST_NEIGHBOR on the chip).
    Upsample {
        /// Output pixels per input pixel along each axis (≥ 1).
        factor: usize,
    },
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
    /// A skip connection by concatenation (U-Net): the inner layers' output followed, along the
    /// channels, by the block's input. The inner layers must give back the input's rows and
    /// columns (down and up again, or neither); nest blocks for the levels of a U-Net. Quantized,
    /// both operands are brought to one scale (TFLite's `CONCATENATION` copies values).
    Skip {
        /// Block name (defaults to `skip<N>`); inner layers are named `<block>.<layer>`.
        #[serde(default)]
        name: Option<String>,
        /// The inner layers.
        layers: Vec<LayerSpec>,
    },
}

fn default_multiplier() -> usize {
    1
}

/// What a model's output means, and so which labels, loss and metrics it is trained and judged
/// with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// One class per image: the output is a vector of class scores.
    #[default]
    Classify,
    /// Object centres (FOMO): the output is a heat map, a grid of cells each scoring the
    /// background (channel 0) and every class; an object's centre is the cell its box centre
    /// falls in.
    Detect,
    /// A class for every pixel: the output is a map of per-position class scores (background
    /// channel 0), at the input resolution or a fraction of it.
    Segment,
    /// One object per image, its class and its box: the output is a vector of the class scores
    /// followed by [`BOX_OUTPUTS`] numbers, the box's centre x, centre y, width and height as
    /// fractions of the input side times [`BOX_UNITS`].
    Localize,
}

/// The box numbers at the end of a localization model's output.
pub const BOX_OUTPUTS: usize = 4;

/// A localization model's box numbers are fractions of the input side times this: 0..16 rather
/// than 0..1, so the box and the class scores share the output's int8 scale without the box
/// losing its precision (one step of a typical scale is about 1/100 of the side).
pub const BOX_UNITS: f32 = 16.0;

impl Task {
    fn is_classify(&self) -> bool {
        *self == Task::Classify
    }

    /// The lowercase name used in model files and generated code.
    pub fn name(&self) -> &'static str {
        match self {
            Task::Classify => "classify",
            Task::Detect => "detect",
            Task::Segment => "segment",
            Task::Localize => "localize",
        }
    }

    /// How many classes an output of `channels` values per position scores.
    pub fn class_count(&self, channels: usize) -> usize {
        match self {
            Task::Localize => channels.saturating_sub(BOX_OUTPUTS),
            _ => channels,
        }
    }

    /// Whether the output is one vector per image (classification, localization) rather than a
    /// map of per-position scores.
    pub fn is_vector(&self) -> bool {
        matches!(self, Task::Classify | Task::Localize)
    }
}

/// A whole model description.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSpec {
    /// Model name (used for generated identifiers).
    pub name: String,
    /// `[height, width, channels]` of the input.
    pub input: [usize; 3],
    /// Class names (optional; their count must match the last layer's channels — for
    /// detection and segmentation the first is the background).
    #[serde(default)]
    pub classes: Vec<String>,
    /// What the output means (default `classify`).
    #[serde(default, skip_serializing_if = "Task::is_classify")]
    pub task: Task,
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
            LayerSpec::TransposeConv { .. } => "transposeconv",
            LayerSpec::Relu => "relu",
            LayerSpec::Relu6 => "relu6",
            LayerSpec::MaxPool { .. } => "maxpool",
            LayerSpec::AvgPool { .. } => "avgpool",
            LayerSpec::L2Pool { .. } => "l2pool",
            LayerSpec::GlobalAvgPool => "gap",
            LayerSpec::Upsample { .. } => "upsample",
            LayerSpec::Dropout { .. } => "dropout",
            LayerSpec::Flatten => "flatten",
            LayerSpec::Dense { .. } => "dense",
            LayerSpec::Softmax => "softmax",
            LayerSpec::Residual { .. } => "residual",
            LayerSpec::Skip { .. } => "skip",
        }
    }

    /// The explicit name, if any.
    pub fn explicit_name(&self) -> Option<&str> {
        match self {
            LayerSpec::Conv { name, .. }
            | LayerSpec::Pointwise { name, .. }
            | LayerSpec::Depthwise { name, .. }
            | LayerSpec::TransposeConv { name, .. }
            | LayerSpec::Dense { name, .. }
            | LayerSpec::Residual { name, .. }
            | LayerSpec::Skip { name, .. } => name.as_deref(),
            _ => None,
        }
    }
}

/// The deepest nesting of a TOML text: bracket depth outside strings and comments, and the
/// number of dotted `layers` parts in a table header (`[[layers.layers.layers]]`).
fn nesting_depth(text: &str) -> usize {
    let mut max = 0usize;
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with('[') {
            max = max.max(t.matches("layers").count());
        }
    }
    let (mut depth, mut in_str, mut quote, mut escaped, mut comment) = (0usize, false, ' ', false, false);
    for c in text.chars() {
        if comment {
            comment = c != '\n';
            continue;
        }
        if in_str {
            if escaped {
                escaped = false;
            } else if c == '\\' && quote == '"' {
                escaped = true;
            } else if c == quote {
                in_str = false;
            }
            continue;
        }
        match c {
            '"' | '\'' => {
                in_str = true;
                quote = c;
            }
            '#' => comment = true,
            '[' | '{' => {
                depth += 1;
                max = max.max(depth);
            }
            ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
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
            let keff = microcnn::shape::dilated_kernel(k, d).unwrap_or(usize::MAX);
            let padded = w.saturating_add(pb).saturating_add(pa);
            let hint = match e {
                microcnn::Error::FractionalOutput { span: num, .. } => {
                    format!(
                        "O = (W − K + P)/S + 1 = ({w} − {keff} + {})/{s} + 1 = {num}/{s} + 1 is not a whole number. \
                         Use a stride that divides {num}, change the padding (for example padding = \"same\"), crop the input, \
                         or say padding = \"valid_floor\" to floor the size as TensorFlow Lite's VALID does (the last rows/columns are then never read)",
                        pb.saturating_add(pa)
                    )
                }
                microcnn::Error::KernelLargerThanInput => {
                    format!("the kernel ({keff}) is larger than the padded input ({padded})")
                }
                microcnn::Error::TooLarge => format!(
                    "a size is too large (the input, kernel, stride, dilation, padding and padded input must each be at most {})",
                    microcnn::shape::MAX_EXTENT
                ),
                other => other.to_string(),
            };
            bail!("layer `{layer}`: {what}: {hint}")
        }
    }
}

/// The most parameters (weights and biases) one model may have in the trainer: 2^26 (64 M, a
/// thousand times what fits a microcontroller). Training keeps each parameter four times in
/// `f32` (value, gradient, two Adam moments), so this is 1 GiB; a larger description is refused
/// before anything is allocated.
pub const MAX_PARAMS: usize = 1 << 26;

/// The most activation values one image may produce over all layers: 2^26 (256 MiB of `f32`
/// per image, times the batch while training).
pub const MAX_ACTIVATIONS: usize = 1 << 26;

/// Checks a layer name given in a model file: it becomes part of Rust identifiers in
/// `model.rs`, so it must start with a letter and use only ASCII letters, digits and `_`
/// (at most 64 characters).
pub fn check_layer_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64;
    if !ok {
        bail!(
            "layer name {name:?}: names must start with a letter and use only letters, digits and `_` (at most 64), because they become Rust identifiers in model.rs; rename it"
        );
    }
    Ok(())
}

/// Checks a layer name as stored in `quantized.json`: [`check_layer_name`] parts joined by `.`
/// (residual blocks name their inner layers `block.layer`).
pub fn check_dotted_layer_name(name: &str) -> Result<()> {
    if name.len() > 200 {
        bail!("layer name {:?}…: longer than 200 characters", name.chars().take(40).collect::<String>());
    }
    for part in name.split('.') {
        check_layer_name(part).with_context(|| format!("layer name {name:?}"))?;
    }
    Ok(())
}

/// Checks a model name: letters, digits, `_`, `-` and `.`, starting with a letter or digit, at
/// most 64 characters (it appears in generated comments, reports and file metadata).
pub fn check_model_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && name.len() <= 64;
    if !ok {
        bail!("model name {name:?}: use 1–64 letters, digits, `_`, `-` or `.`, starting with a letter or digit");
    }
    Ok(())
}

/// The Rust identifier stem generated code uses for a layer: upper case, `.` → `_`.
pub fn rust_ident(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_uppercase() } else { '_' }).collect()
}

/// Suffixes generated code appends to a layer's identifier stem.
pub const IDENT_SUFFIXES: [&str; 6] = ["", "_W", "_B", "_Q", "_FILTER", "_WINDOW"];

/// Items every generated model defines, which no layer may shadow.
pub const RESERVED_IDENTS: [&str; 16] = [
    "TASK",
    "INPUT_LEN",
    "INPUT_SHAPE",
    "INPUT_SCALE",
    "INPUT_ZERO_POINT",
    "OUTPUT_SCALE",
    "OUTPUT_ZERO_POINT",
    "NUM_CLASSES",
    "OUTPUT_SHAPE",
    "OUTPUT_LEN",
    "INPUT_OFFSET",
    "OUTPUT_OFFSET",
    "LABELS",
    "ARENA_BYTES",
    "WEIGHT_BYTES",
    "LAYER_NAMES",
];

/// Checks that the identifiers generated for `names` are valid and pairwise distinct, and
/// collide with nothing generated code defines itself (`a.b` and `a_b` both become `A_B`; a
/// layer `conv` owns `CONV_W`, so another layer may not be called `conv_w`).
pub fn check_generated_idents<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<()> {
    let mut owner: std::collections::HashMap<String, &str> = std::collections::HashMap::new();
    for name in names {
        let stem = rust_ident(name);
        if !stem.starts_with(|c: char| c.is_ascii_alphabetic()) {
            bail!("layer name {name:?} does not start with a letter, so it cannot become a Rust identifier; rename it");
        }
        for suffix in IDENT_SUFFIXES {
            let id = format!("{stem}{suffix}");
            let generated = RESERVED_IDENTS.contains(&id.as_str())
                || id.strip_prefix('L').and_then(|r| r.split_once('_')).is_some_and(|(num, rest)| {
                    !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) && matches!(rest, "IN" | "OUT")
                });
            if generated {
                bail!("layer name {name:?} becomes `{id}` in model.rs, which the generated code defines itself; rename the layer");
            }
            if let Some(other) = owner.insert(id.clone(), name) {
                if other != name {
                    bail!("layers {other:?} and {name:?} both become `{id}` in model.rs; rename one of them");
                }
            }
        }
    }
    Ok(())
}

/// Activation values one image produces over all layers (inner layers of residual blocks
/// included): what training keeps per image of a batch.
pub fn activations_per_image(layers: &[Resolved]) -> usize {
    layers
        .iter()
        .map(|l| l.output.len().saturating_add(activations_per_image(&l.children)))
        .fold(0, usize::saturating_add)
}

impl ModelSpec {
    /// Parses TOML text. Nesting (residual blocks inside residual blocks, inline tables and
    /// arrays) is limited to 32 levels before parsing, so a hostile file cannot exhaust the
    /// stack of the recursive deserializer.
    pub fn from_toml(text: &str) -> Result<Self> {
        if text.len() > 1 << 24 {
            bail!("the model description is {} bytes; a model file is at most 16 MiB", text.len());
        }
        let depth = nesting_depth(text);
        if depth > 32 {
            bail!("the model description nests {depth} levels deep (blocks, tables or arrays); at most 32 are allowed");
        }
        Ok(toml::from_str(text)?)
    }

    /// Serialises to TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Validates the chain and returns every layer's resolved shapes.
    pub fn resolve(&self) -> Result<Vec<Resolved>> {
        check_model_name(&self.name)?;
        let [h, w, c] = self.input;
        if h == 0 || w == 0 || c == 0 {
            bail!("input [{h}, {w}, {c}] has a zero dimension");
        }
        if h > microcnn::shape::MAX_EXTENT
            || w > microcnn::shape::MAX_EXTENT
            || h.saturating_mul(w).saturating_mul(c) > MAX_ACTIVATIONS
        {
            bail!("input [{h}, {w}, {c}] is too large: at most {MAX_ACTIVATIONS} values per image");
        }
        let mut names = std::collections::HashSet::new();
        let out = resolve_chain(&self.layers, Shape::image(h, w, c), "", &mut names)?;
        check_generated_idents(names.iter().map(String::as_str))?;
        for (i, name) in self.classes.iter().enumerate() {
            crate::data::check_class_name(name, &format!("classes[{i}]"))?;
        }
        if let Some(dup) = self.classes.iter().enumerate().find_map(|(i, n)| self.classes[..i].contains(n).then_some(n))
        {
            bail!("class name {dup:?} appears twice in `classes`");
        }
        budget(&out)?;
        let Some(last) = out.last() else { bail!("the model has no layers") };
        if self.task.is_vector() && (last.output.h != 1 || last.output.w != 1) {
            bail!(
                "the last layer `{}` outputs {}×{}×{}; a {} model must end in a vector (dense or global_avg_pool), or set `task = \"detect\"` or `\"segment\"` for a map",
                last.name,
                last.output.h,
                last.output.w,
                last.output.c,
                self.task.name()
            );
        }
        if self.task == Task::Localize {
            if last.output.c <= BOX_OUTPUTS {
                bail!(
                    "the last layer `{}` outputs {} values; a localize model outputs its class scores and then {BOX_OUTPUTS} box numbers (cx, cy, w, h): give it classes + {BOX_OUTPUTS} units",
                    last.name,
                    last.output.c
                );
            }
            if matches!(last.spec, LayerSpec::Softmax) {
                bail!("a localize model cannot end in softmax: its last {BOX_OUTPUTS} outputs are the box, not class scores; end in the dense layer");
            }
        }
        if !self.task.is_vector() && last.output.c < 2 {
            bail!(
                "the last layer `{}` outputs {} channel(s); a {:?} model needs the background and at least one class",
                last.name,
                last.output.c,
                self.task
            );
        }
        let k = self.task.class_count(last.output.c);
        if !self.classes.is_empty() && self.classes.len() != k {
            bail!("{} class names given but the model outputs {k} class scores", self.classes.len());
        }
        Ok(out)
    }

    /// Number of classes the model outputs.
    pub fn num_classes(&self) -> Result<usize> {
        Ok(self.resolve()?.last().map(|l| self.task.class_count(l.output.c)).unwrap_or(0))
    }
}

/// A transposed convolution's output rows and columns for `padding` (see
/// [`LayerSpec::TransposeConv`]).
fn transpose_output(
    name: &str,
    input: Shape,
    (kh, kw): (usize, usize),
    (sh, sw): (usize, usize),
    padding: PadSpec,
) -> Result<(usize, usize)> {
    if kh == 0 || kw == 0 || sh == 0 || sw == 0 {
        bail!("layer `{name}`: kernel and stride must be at least 1");
    }
    let full = |i: usize, k: usize, s: usize| (i - 1).checked_mul(s).and_then(|v| v.checked_add(k));
    let same = |i: usize, s: usize| i.checked_mul(s);
    let (h, w) = match padding.padding() {
        Padding::Same => (same(input.h, sh), same(input.w, sw)),
        Padding::Valid | Padding::ValidFloor => (full(input.h, kh, sh), full(input.w, kw, sw)),
        Padding::Explicit { top, bottom, left, right } => (
            full(input.h, kh, sh).and_then(|v| v.checked_sub(top.checked_add(bottom)?)),
            full(input.w, kw, sw).and_then(|v| v.checked_sub(left.checked_add(right)?)),
        ),
    };
    match (h, w) {
        (Some(h @ 1..), Some(w @ 1..)) if h.saturating_mul(w) <= MAX_ACTIVATIONS => Ok((h, w)),
        _ => bail!("layer `{name}`: a {kh}×{kw} transposed convolution with stride {sh}×{sw} and padding {padding:?} of {}×{} gives no output of at most {MAX_ACTIVATIONS} pixels: crop less or use a smaller stride", input.h, input.w),
    }
}

/// The runtime's description of a transposed convolution with this stride and padding to an
/// `out_h × out_w` output (quantization left neutral).
pub fn transpose_params(
    (sh, sw): (usize, usize),
    padding: PadSpec,
    out_h: usize,
    out_w: usize,
) -> microcnn::transpose_conv::TransposeConvParams {
    microcnn::transpose_conv::TransposeConvParams {
        stride_h: sh,
        stride_w: sw,
        out_h,
        out_w,
        padding: padding.padding(),
        input_zero_point: 0,
        output_zero_point: 0,
        activation: microcnn::quant::ActivationRange::NONE,
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
        if let Some(explicit) = spec.explicit_name() {
            check_layer_name(explicit)?;
        }
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
            LayerSpec::Skip { layers: inner, .. } => {
                if inner.is_empty() {
                    bail!("skip block `{name}` has no layers");
                }
                if inner.iter().any(|l| matches!(l, LayerSpec::Softmax | LayerSpec::Flatten | LayerSpec::Dense { .. }))
                {
                    bail!("skip block `{name}`: its layers must keep a map (no softmax, flatten or dense inside)");
                }
                children = resolve_chain(inner, input, &format!("{name}."), names)?;
                let inner_out = children.last().map(|r| r.output).unwrap_or(input);
                if (inner_out.h, inner_out.w) != (input.h, input.w) {
                    bail!(
                        "skip block `{name}`: its layers turn {}×{} into {}×{}, but the concatenation needs the same rows and columns: upsample back to the block's input size",
                        input.h, input.w, inner_out.h, inner_out.w
                    );
                }
                Shape::image(input.h, input.w, inner_out.c + input.c)
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
                if *filters == 0 {
                    bail!("layer `{name}`: filters must be at least 1");
                }
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
                    input.c.checked_mul(*multiplier).filter(|&c| c <= MAX_ACTIVATIONS).ok_or_else(|| {
                        anyhow::anyhow!("layer `{name}`: {} channels × multiplier {multiplier} is too many", input.c)
                    })?,
                )
            }
            LayerSpec::TransposeConv { filters, kernel, stride, padding, .. } => {
                if *filters == 0 {
                    bail!("layer `{name}`: filters must be at least 1");
                }
                let (kh, kw) = kernel.hw();
                let (oh, ow) = transpose_output(&name, input, kernel.hw(), stride.hw(), *padding)?;
                let p = transpose_params(stride.hw(), *padding, oh, ow);
                let filter = Shape::new(*filters, kh, kw, input.c);
                microcnn::transpose_conv::transpose_conv2d_output_shape(&p, input, filter)
                    .map_err(|e| anyhow::anyhow!("layer `{name}`: a {kh}×{kw} transposed convolution of {}×{}×{} to {oh}×{ow}×{filters} cannot run: {e}", input.h, input.w, input.c))?;
                Shape::image(oh, ow, *filters)
            }
            LayerSpec::MaxPool { size, stride, padding }
            | LayerSpec::AvgPool { size, stride, padding }
            | LayerSpec::L2Pool { size, stride, padding } => pool(size, stride, padding)?,
            LayerSpec::GlobalAvgPool => Shape::image(1, 1, input.c),
            LayerSpec::Upsample { factor } => {
                let up = |d: usize| d.checked_mul(*factor).filter(|&v| v <= microcnn::resize::MAX_RESIZE_EXTENT);
                match (*factor, up(input.h), up(input.w)) {
                    (1.., Some(h), Some(w)) if h.saturating_mul(w).saturating_mul(input.c) <= MAX_ACTIVATIONS => {
                        Shape::image(h, w, input.c)
                    }
                    _ => bail!("layer `{name}`: upsample factor {factor} must be at least 1 and keep {}×{}×{} within {MAX_ACTIVATIONS} values", input.h, input.w, input.c),
                }
            }
            LayerSpec::Flatten => {
                Shape::vector(1, input.checked_len().map_err(|_| anyhow::anyhow!("layer `{name}`: too large"))?)
            }
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
        if shape.checked_len().map_or(true, |l| l > MAX_ACTIVATIONS) {
            bail!(
                "layer `{name}`: its output {}×{}×{} has more than {MAX_ACTIVATIONS} values per image ({} bytes as f32, the trainer's limit is {} bytes); use fewer filters or a smaller input",
                shape.h,
                shape.w,
                shape.c,
                shape.len().saturating_mul(4),
                MAX_ACTIVATIONS * 4
            );
        }
        out.push(Resolved { name, spec: spec.clone(), input, output: shape, children });
    }
    Ok(out)
}

/// Refuses a model whose parameters or activations would not fit the trainer, naming the layer
/// that crosses the limit and the bytes.
fn budget(layers: &[Resolved]) -> Result<()> {
    let (mut params, mut acts) = (0usize, 0usize);
    let mut walk: Vec<&Resolved> = Vec::new();
    for l in layers {
        walk.push(l);
        walk.extend(l.children.iter());
    }
    for l in walk {
        let p = checked_cost(l).ok_or_else(|| anyhow::anyhow!("layer `{}`: its parameter count overflows", l.name))?.0;
        params = params.saturating_add(if l.children.is_empty() { p } else { 0 });
        acts = acts.saturating_add(l.output.len());
        if params > MAX_PARAMS {
            bail!(
                "layer `{}`: the model reaches {params} parameters ({} bytes as f32, {} bytes while training), more than the trainer's limit of {MAX_PARAMS}; use fewer filters or units",
                l.name,
                params.saturating_mul(4),
                params.saturating_mul(16)
            );
        }
        if acts > MAX_ACTIVATIONS {
            bail!(
                "layer `{}`: the model reaches {acts} activation values per image ({} bytes as f32), more than the trainer's limit of {MAX_ACTIVATIONS}; use a smaller input or fewer channels",
                l.name,
                acts.saturating_mul(4)
            );
        }
    }
    Ok(())
}

/// Parameters and MACs of one layer, or `None` on overflow.
fn checked_cost(l: &Resolved) -> Option<(usize, usize)> {
    let o = l.output;
    let olen = o.checked_len().ok()?;
    let with_bias =
        |k: usize| -> Option<(usize, usize)> { Some((o.c.checked_mul(k)?.checked_add(o.c)?, olen.checked_mul(k)?)) };
    match &l.spec {
        LayerSpec::Conv { kernel, .. } => {
            let (kh, kw) = kernel.hw();
            with_bias(kh.checked_mul(kw)?.checked_mul(l.input.c)?)
        }
        LayerSpec::Pointwise { .. } => with_bias(l.input.c),
        LayerSpec::Depthwise { kernel, .. } => {
            let (kh, kw) = kernel.hw();
            with_bias(kh.checked_mul(kw)?)
        }
        LayerSpec::TransposeConv { kernel, .. } => {
            // Every input pixel scatters the whole kernel (taps cropped off the edges included).
            let (kh, kw) = kernel.hw();
            let k = kh.checked_mul(kw)?.checked_mul(l.input.c)?;
            let macs = (l.input.h * l.input.w).checked_mul(k)?.checked_mul(o.c)?;
            Some((o.c.checked_mul(k)?.checked_add(o.c)?, macs))
        }
        LayerSpec::Dense { .. } => with_bias(l.input.checked_len().ok()?),
        LayerSpec::Residual { .. } | LayerSpec::Skip { .. } => {
            l.children.iter().try_fold((0usize, 0usize), |(a, b), c| {
                let (p, m) = checked_cost(c)?;
                Some((a.checked_add(p)?, b.checked_add(m)?))
            })
        }
        _ => Some((0, 0)),
    }
}

/// Parameters and MACs of one layer (saturating; [`ModelSpec::resolve`] has refused any model
/// whose counts overflow).
pub fn cost(l: &Resolved) -> (usize, usize) {
    checked_cost(l).unwrap_or((usize::MAX, usize::MAX))
}

/// A Keras-style summary table.
pub fn summary(spec: &ModelSpec) -> Result<String> {
    let layers = spec.resolve()?;
    let mut s = format!("Model \"{}\"  input {}×{}×{}\n", spec.name, spec.input[0], spec.input[1], spec.input[2]);
    let (mut tp, mut tm, mut peak) = (0, 0, 0);
    // Every layer with its nesting depth (inner layers of residual and skip blocks indented).
    fn walk<'a>(ls: &'a [Resolved], depth: usize, out: &mut Vec<(&'a Resolved, usize)>) {
        for l in ls {
            out.push((l, depth));
            walk(&l.children, depth + 1, out);
        }
    }
    let mut rows = Vec::new();
    walk(&layers, 0, &mut rows);
    // Columns as wide as the longest (indented) name and kind.
    let nw = rows.iter().map(|(l, d)| 2 * d + l.name.chars().count()).max().unwrap_or(0).max(20);
    let kw = rows.iter().map(|(l, _)| l.spec.kind().len()).max().unwrap_or(0).max(10);
    let rule = "─".repeat(nw + kw + 53);
    s += &format!(
        "{:<nw$} {:<kw$} {:>14} {:>10} {:>12} {:>12}\n{rule}\n",
        "layer", "type", "output", "params", "MACs", "act. bytes"
    );
    for (l, depth) in rows {
        let (p, m) = cost(l);
        if depth == 0 {
            tp += p;
            tm += m;
        }
        // A block keeps its input alive while its inner layers run.
        let live = l.input.len() + l.output.len() + if depth > 0 { l.input.len().max(l.output.len()) } else { 0 };
        peak = peak.max(live);
        let shape = format!("{}×{}×{}", l.output.h, l.output.w, l.output.c);
        let name = format!("{}{}", "  ".repeat(depth), l.name);
        s += &format!("{name:<nw$} {:<kw$} {shape:>14} {p:>10} {m:>12} {:>12}\n", l.spec.kind(), l.output.len());
    }
    s += &rule;
    s += &format!("\ntotal: {tp} parameters, {tm} MACs per image, peak live activations {peak} bytes (estimate; `quantize` reports the planned arena)\n");
    s += &format!("task: {}\n", task_line(spec));
    Ok(s)
}

/// What a model's task trains on and how it is judged, for `summary`.
fn task_line(spec: &ModelSpec) -> String {
    let out = spec.resolve().ok().and_then(|r| r.last().map(|l| l.output));
    let (h, w, c) = out.map_or((0, 0, 0), |o| (o.h, o.w, o.c));
    match spec.task {
        Task::Classify => format!("classify — {c} classes; metric: accuracy"),
        Task::Detect => format!(
            "detect (FOMO) — a {h}×{w} heat map of {c} channels (0 = background); labels: the cell of each box centre (--scenes); metric: precision, recall and F1 of centres matched within 1 cell"
        ),
        Task::Segment => format!(
            "segment — a {h}×{w} map of {c} classes (0 = background); labels: the mask sampled at each position (--scenes); metrics: pixel accuracy and mean IoU"
        ),
        Task::Localize => format!(
            "localize — {} class scores, then the box (cx, cy, w, h) × {BOX_UNITS} of the side; labels: the one box of each image (--scenes); metrics: class accuracy, mean IoU, share with IoU ≥ 0.5",
            c.saturating_sub(BOX_OUTPUTS)
        ),
    }
}
