//! The Rust builder for model descriptions: the same [`ModelSpec`] a TOML file gives, written in
//! code. Layer methods append a layer with the TOML defaults; modifier methods (`name`,
//! `stride`, `padding`, `activation`, …) change the layer just added. [`ModelBuilder::build`]
//! validates the whole chain exactly as a loaded file is validated.
//!
//! ```
//! use host_train::model::builder::ModelBuilder;
//! use host_train::model::spec::{Act, PadName};
//!
//! let spec = ModelBuilder::new("tiny", [28, 28, 1])
//!     .conv(8, 3).name("conv1").stride(2).padding(PadName::Same).activation(Act::Relu)
//!     .max_pool(2)
//!     .residual(|b| b.depthwise(3).padding(PadName::Same).activation(Act::Relu).pointwise(8))
//!     .activation(Act::Relu)
//!     .global_avg_pool()
//!     .dense(10)
//!     .softmax()
//!     .build()
//!     .unwrap();
//! assert_eq!(spec.resolve().unwrap().last().unwrap().output.c, 10);
//! ```

use crate::model::spec::{Act, LayerSpec, ModelSpec, PadName, PadSpec, Size2};
use anyhow::{bail, Result};

/// Builds a [`ModelSpec`] layer by layer.
#[derive(Clone, Debug)]
pub struct ModelBuilder {
    spec: ModelSpec,
    /// The first misuse of a modifier, reported by `build`.
    error: Option<String>,
}

impl ModelBuilder {
    /// A model called `name` taking `[height, width, channels]` images.
    pub fn new(name: &str, input: [usize; 3]) -> Self {
        ModelBuilder {
            spec: ModelSpec {
                name: name.to_string(),
                input,
                classes: Vec::new(),
                task: Default::default(),
                layers: Vec::new(),
            },
            error: None,
        }
    }

    /// Class names (their count must match the last layer).
    pub fn classes<S: AsRef<str>>(mut self, names: &[S]) -> Self {
        self.spec.classes = names.iter().map(|s| s.as_ref().to_string()).collect();
        self
    }

    /// Nearest-neighbour upsampling by `factor` on both axes.
    pub fn upsample(self, factor: usize) -> Self {
        self.push(LayerSpec::Upsample { factor })
    }

    /// What the output means (detection heat map, segmentation map; default classification).
    pub fn task(mut self, task: crate::model::spec::Task) -> Self {
        self.spec.task = task;
        self
    }

    fn push(mut self, l: LayerSpec) -> Self {
        self.spec.layers.push(l);
        self
    }

    /// Convolution with `filters` outputs and a square `kernel` (stride 1, valid padding).
    pub fn conv(self, filters: usize, kernel: usize) -> Self {
        self.push(LayerSpec::Conv {
            name: None,
            filters,
            kernel: Size2::Square(kernel),
            stride: Size2::Square(1),
            padding: PadSpec::default(),
            dilation: Size2::Square(1),
            activation: Act::None,
        })
    }

    /// Transposed convolution (learned upsampling) with `filters` outputs, a square `kernel` and
    /// `stride` (valid padding: `(in − 1)·stride + kernel` outputs per axis; `.padding(Same)` for
    /// `in·stride`).
    pub fn transpose_conv(self, filters: usize, kernel: usize, stride: usize) -> Self {
        self.push(LayerSpec::TransposeConv {
            name: None,
            filters,
            kernel: Size2::Square(kernel),
            stride: Size2::Square(stride),
            padding: PadSpec::default(),
            activation: Act::None,
        })
    }

    /// 1×1 convolution.
    pub fn pointwise(self, filters: usize) -> Self {
        self.push(LayerSpec::Pointwise { name: None, filters, stride: Size2::Square(1), activation: Act::None })
    }

    /// Depthwise convolution with a square `kernel` (multiplier 1).
    pub fn depthwise(self, kernel: usize) -> Self {
        self.push(LayerSpec::Depthwise {
            name: None,
            kernel: Size2::Square(kernel),
            stride: Size2::Square(1),
            padding: PadSpec::default(),
            multiplier: 1,
            activation: Act::None,
        })
    }

    /// Max pooling over `size`×`size` windows (stride = size).
    pub fn max_pool(self, size: usize) -> Self {
        self.push(LayerSpec::MaxPool { size: Size2::Square(size), stride: None, padding: PadSpec::default() })
    }

    /// Average pooling over `size`×`size` windows (stride = size).
    pub fn avg_pool(self, size: usize) -> Self {
        self.push(LayerSpec::AvgPool { size: Size2::Square(size), stride: None, padding: PadSpec::default() })
    }

    /// L2-norm pooling over `size`×`size` windows (stride = size).
    pub fn l2_pool(self, size: usize) -> Self {
        self.push(LayerSpec::L2Pool { size: Size2::Square(size), stride: None, padding: PadSpec::default() })
    }

    /// Global average pooling.
    pub fn global_avg_pool(self) -> Self {
        self.push(LayerSpec::GlobalAvgPool)
    }

    /// Standalone ReLU.
    pub fn relu(self) -> Self {
        self.push(LayerSpec::Relu)
    }

    /// Standalone ReLU6.
    pub fn relu6(self) -> Self {
        self.push(LayerSpec::Relu6)
    }

    /// Dropout (training only).
    pub fn dropout(self, rate: f32) -> Self {
        self.push(LayerSpec::Dropout { rate })
    }

    /// Flatten.
    pub fn flatten(self) -> Self {
        self.push(LayerSpec::Flatten)
    }

    /// Dense layer.
    pub fn dense(self, units: usize) -> Self {
        self.push(LayerSpec::Dense { name: None, units, activation: Act::None })
    }

    /// Softmax.
    pub fn softmax(self) -> Self {
        self.push(LayerSpec::Softmax)
    }

    /// Residual block `x + inner(x)`; `inner` adds the block's layers to an empty builder.
    pub fn residual(mut self, inner: impl FnOnce(ModelBuilder) -> ModelBuilder) -> Self {
        let b = inner(ModelBuilder::new("", self.spec.input));
        if self.error.is_none() {
            self.error = b.error;
        }
        self.push(LayerSpec::Residual { name: None, layers: b.spec.layers, activation: Act::None })
    }

    /// Skip connection by concatenation, `concat(inner(x), x)` along the channels; `inner` adds
    /// the block's layers (which must give back `x`'s rows and columns) to an empty builder.
    pub fn skip(mut self, inner: impl FnOnce(ModelBuilder) -> ModelBuilder) -> Self {
        let b = inner(ModelBuilder::new("", self.spec.input));
        if self.error.is_none() {
            self.error = b.error;
        }
        self.push(LayerSpec::Skip { name: None, layers: b.spec.layers })
    }

    /// Applies `f` to the last layer, or records that `what` does not apply to it.
    fn modify(mut self, what: &str, f: impl FnOnce(&mut LayerSpec) -> bool) -> Self {
        let ok = self.spec.layers.last_mut().is_some_and(f);
        if !ok && self.error.is_none() {
            let after = self.spec.layers.last().map(|l| format!("a `{}` layer", l.kind())).unwrap_or("no layer".into());
            self.error = Some(format!("`{what}` does not apply to {after} (layer {})", self.spec.layers.len()));
        }
        self
    }

    /// Names the last layer (convolutions, dense layers and residual and skip blocks have names).
    pub fn name(self, name: &str) -> Self {
        self.modify("name", |l| match l {
            LayerSpec::Conv { name: n, .. }
            | LayerSpec::Pointwise { name: n, .. }
            | LayerSpec::Depthwise { name: n, .. }
            | LayerSpec::TransposeConv { name: n, .. }
            | LayerSpec::Dense { name: n, .. }
            | LayerSpec::Residual { name: n, .. }
            | LayerSpec::Skip { name: n, .. } => {
                *n = Some(name.to_string());
                true
            }
            _ => false,
        })
    }

    /// Fused activation of the last convolution, dense layer or residual block.
    pub fn activation(self, act: Act) -> Self {
        self.modify("activation", |l| match l {
            LayerSpec::Conv { activation, .. }
            | LayerSpec::Pointwise { activation, .. }
            | LayerSpec::Depthwise { activation, .. }
            | LayerSpec::TransposeConv { activation, .. }
            | LayerSpec::Dense { activation, .. }
            | LayerSpec::Residual { activation, .. } => {
                *activation = act;
                true
            }
            _ => false,
        })
    }

    /// The same stride along both axes for the last convolution or pooling layer.
    pub fn stride(self, s: usize) -> Self {
        self.stride_hw(s, s)
    }

    /// Vertical and horizontal stride for the last convolution or pooling layer.
    pub fn stride_hw(self, h: usize, w: usize) -> Self {
        let s = if h == w { Size2::Square(h) } else { Size2::Rect([h, w]) };
        self.modify("stride", |l| match l {
            LayerSpec::Conv { stride, .. }
            | LayerSpec::Pointwise { stride, .. }
            | LayerSpec::Depthwise { stride, .. }
            | LayerSpec::TransposeConv { stride, .. } => {
                *stride = s;
                true
            }
            LayerSpec::MaxPool { stride, .. }
            | LayerSpec::AvgPool { stride, .. }
            | LayerSpec::L2Pool { stride, .. } => {
                *stride = Some(s);
                true
            }
            _ => false,
        })
    }

    /// `valid` or `same` padding for the last convolution or pooling layer.
    pub fn padding(self, p: PadName) -> Self {
        self.pad(PadSpec::Named(p))
    }

    /// Explicit zero padding `[top, bottom, left, right]`.
    pub fn padding_sides(self, sides: [usize; 4]) -> Self {
        self.pad(PadSpec::Sides(sides))
    }

    fn pad(self, p: PadSpec) -> Self {
        self.modify("padding", |l| match l {
            LayerSpec::Conv { padding, .. }
            | LayerSpec::Depthwise { padding, .. }
            | LayerSpec::TransposeConv { padding, .. }
            | LayerSpec::MaxPool { padding, .. }
            | LayerSpec::AvgPool { padding, .. }
            | LayerSpec::L2Pool { padding, .. } => {
                *padding = p;
                true
            }
            _ => false,
        })
    }

    /// A `[height, width]` kernel for the last convolution (or window for the last pooling).
    pub fn kernel_hw(self, h: usize, w: usize) -> Self {
        let k = if h == w { Size2::Square(h) } else { Size2::Rect([h, w]) };
        self.modify("kernel", |l| match l {
            LayerSpec::Conv { kernel, .. }
            | LayerSpec::Depthwise { kernel, .. }
            | LayerSpec::TransposeConv { kernel, .. } => {
                *kernel = k;
                true
            }
            LayerSpec::MaxPool { size, .. } | LayerSpec::AvgPool { size, .. } | LayerSpec::L2Pool { size, .. } => {
                *size = k;
                true
            }
            _ => false,
        })
    }

    /// Dilation of the last convolution.
    pub fn dilation(self, d: usize) -> Self {
        self.modify("dilation", |l| match l {
            LayerSpec::Conv { dilation, .. } => {
                *dilation = Size2::Square(d);
                true
            }
            _ => false,
        })
    }

    /// Depth multiplier of the last depthwise convolution.
    pub fn multiplier(self, m: usize) -> Self {
        self.modify("multiplier", |l| match l {
            LayerSpec::Depthwise { multiplier, .. } => {
                *multiplier = m;
                true
            }
            _ => false,
        })
    }

    /// The description, validated like a loaded file (shapes, names, classifier ending).
    ///
    /// # Errors
    /// A modifier used on a layer it does not apply to, or any validation error.
    pub fn build(self) -> Result<ModelSpec> {
        if let Some(e) = self.error {
            bail!("model `{}`: {e}", self.spec.name);
        }
        self.spec.resolve()?;
        Ok(self.spec)
    }
}
