//! The float network used for training: layers in order, each a [`Layer`] around its type's
//! implementation in [`crate::train::layers`], whose padding, pooling windows and L2 semantics
//! come from the runtime's geometry code, so what is trained is what runs.

use crate::model::spec::{Act, LayerSpec, ModelSpec, Resolved};
use crate::rng::Rng;
use crate::train::layers::{self, Op, Pass};
use anyhow::Result;
use microcnn::shape::Geometry;
use microcnn::Window;

pub use crate::train::layers::set_im2col_chunk_floats;

/// A trainable tensor with its gradient and optimiser state.
#[derive(Clone, Debug)]
pub struct Param {
    /// Name, `<layer>.weight` or `<layer>.bias`.
    pub name: String,
    /// Values (weights OHWI / `[units][depth]`, depthwise `[kh][kw][c·m]`).
    pub value: Vec<f32>,
    /// Shape for checkpoints.
    pub dims: Vec<usize>,
    /// Accumulated gradient.
    pub grad: Vec<f32>,
    /// Adam first moment / SGD velocity.
    pub m: Vec<f32>,
    /// Adam second moment.
    pub v: Vec<f32>,
    /// Frozen parameters are never updated.
    pub frozen: bool,
}

impl Param {
    /// A parameter with zero gradient and optimiser state.
    pub fn new(name: String, dims: Vec<usize>, value: Vec<f32>) -> Self {
        let n = value.len();
        Param { name, value, dims, grad: vec![0.0; n], m: vec![0.0; n], v: vec![0.0; n], frozen: false }
    }
}

/// One layer: what every layer type shares (description, parameters, the input backward reads,
/// the fused activation's gradient mask) around its type's [`Op`] (see [`layers`]).
#[derive(Clone, Debug)]
pub struct Layer {
    /// Resolved description.
    pub r: Resolved,
    /// Weight and bias, for layers that have them.
    pub params: Vec<Param>,
    /// The layer type's computation and its own forward state.
    op: Box<dyn Op>,
    /// The last training batch's input (what backward reads).
    input: Vec<f32>,
    /// Where a fused ReLU/ReLU6 let the gradient through (1) or cut it (0).
    act_mask: Vec<u8>,
    /// Whether `backward` must compute the input gradient (false for the first layer).
    pub need_input_grad: bool,
}

fn window(r: &Resolved) -> Option<Window> {
    use LayerSpec::*;
    let w = |k: (usize, usize), s: (usize, usize), d: (usize, usize), p: microcnn::Padding| Window {
        kernel_h: k.0,
        kernel_w: k.1,
        stride_h: s.0,
        stride_w: s.1,
        dilation_h: d.0,
        dilation_w: d.1,
        padding: p,
    };
    match &r.spec {
        Conv { kernel, stride, padding, dilation, .. } => {
            Some(w(kernel.hw(), stride.hw(), dilation.hw(), padding.padding()))
        }
        Pointwise { stride, .. } => Some(w((1, 1), stride.hw(), (1, 1), microcnn::Padding::Valid)),
        Depthwise { kernel, stride, padding, .. } => Some(w(kernel.hw(), stride.hw(), (1, 1), padding.padding())),
        MaxPool { size, stride, padding } | AvgPool { size, stride, padding } | L2Pool { size, stride, padding } => {
            Some(w(size.hw(), stride.unwrap_or(*size).hw(), (1, 1), padding.padding()))
        }
        _ => None,
    }
}

/// The layer's window and its geometry on the layer's input.
pub fn geometry(r: &Resolved) -> Option<(Window, Geometry)> {
    let w = window(r)?;
    let g = w.resolve(r.input.h, r.input.w).ok()?;
    Some((w, g))
}

/// The fused activation of a layer.
pub fn fused(spec: &LayerSpec) -> Act {
    match spec {
        LayerSpec::Conv { activation, .. }
        | LayerSpec::Pointwise { activation, .. }
        | LayerSpec::Depthwise { activation, .. }
        | LayerSpec::TransposeConv { activation, .. }
        | LayerSpec::Dense { activation, .. }
        | LayerSpec::Residual { activation, .. } => *activation,
        _ => Act::None,
    }
}

/// Applies the activation in place; with `mask`, also records per element whether the gradient
/// passes (1) or is cut (0).
fn apply_act(a: Act, y: &mut [f32], mask: Option<&mut Vec<u8>>) {
    let hi = match a {
        Act::None => return,
        Act::Relu => f32::INFINITY,
        Act::Relu6 => 6.0,
    };
    match mask {
        Some(m) => {
            m.clear();
            m.resize(y.len(), 0);
            for (v, mk) in y.iter_mut().zip(m.iter_mut()) {
                *mk = (*v > 0.0 && *v < hi) as u8;
                *v = v.clamp(0.0, hi);
            }
        }
        None => y.iter_mut().for_each(|v| *v = v.clamp(0.0, hi)),
    }
}

/// Zeroes the gradient where the activation was saturated (branch-free, so it vectorises).
fn act_grad(mask: &[u8], dy: &mut [f32]) {
    dy.iter_mut().zip(mask).for_each(|(d, &m)| *d = if m != 0 { *d } else { 0.0 });
}

impl Layer {
    /// A layer of resolved description `r` with freshly initialised parameters (He-uniform
    /// weights, zero bias; inner layers of blocks after them, from the same `rng`).
    pub fn new(r: Resolved, rng: &mut Rng) -> Self {
        let op = layers::op_for(&r, rng);
        let params = op.params(&r, rng);
        Layer { r, params, op, input: Vec::new(), act_mask: Vec::new(), need_input_grad: true }
    }

    /// Forward pass for a batch of `n` (with `train`, keeps what backward needs).
    pub fn forward(&mut self, x: Vec<f32>, n: usize, train: bool, rng: &mut Rng) -> Vec<f32> {
        let pass = Pass { r: &self.r, params: &mut self.params, n };
        let mut y = self.op.forward(pass, &x, train, rng);
        debug_assert_eq!(y.len(), n * self.r.output.len(), "{}", self.r.name);
        apply_act(fused(&self.r.spec), &mut y, train.then_some(&mut self.act_mask));
        if train {
            self.input = x;
        }
        y
    }

    /// Backward pass: accumulates parameter gradients, returns the input gradient.
    pub fn backward(&mut self, dy: &mut [f32], n: usize) -> Vec<f32> {
        if fused(&self.r.spec) != Act::None {
            act_grad(&self.act_mask, dy);
        }
        let pass = Pass { r: &self.r, params: &mut self.params, n };
        let dx = self.op.backward(pass, &self.input, dy, self.need_input_grad);
        debug_assert_eq!(dx.len(), n * self.r.input.len(), "{}", self.r.name);
        dx
    }

    /// Inner layers (of a residual or skip block).
    pub fn children(&self) -> &[Layer] {
        self.op.children()
    }

    /// Inner layers, mutably.
    pub fn children_mut(&mut self) -> &mut [Layer] {
        self.op.children_mut()
    }
}

/// A whole float model.
#[derive(Clone, Debug)]
pub struct Net {
    /// The description it was built from.
    pub spec: ModelSpec,
    /// Layers in order.
    pub layers: Vec<Layer>,
}

impl Net {
    /// A freshly initialised network.
    pub fn new(spec: ModelSpec, seed: u64) -> Result<Self> {
        let mut rng = Rng::new(seed);
        let layers = spec.resolve()?.into_iter().map(|r| Layer::new(r, &mut rng)).collect();
        Ok(Net { spec, layers })
    }

    /// Logits (pre-softmax) for a batch.
    pub fn forward(&mut self, x: &[f32], n: usize, train: bool, rng: &mut Rng) -> Vec<f32> {
        let mut a = x.to_vec();
        for l in &mut self.layers {
            a = l.forward(a, n, train, rng);
        }
        a
    }

    /// Backpropagates the logit gradient through every layer.
    pub fn backward(&mut self, dlogits: Vec<f32>, n: usize) {
        let mut d = dlogits;
        let last = self.layers.len().saturating_sub(1);
        for (i, l) in self.layers.iter_mut().rev().enumerate() {
            l.need_input_grad = i != last; // nothing consumes the image's gradient
            d = l.backward(&mut d, n);
        }
    }

    /// Every parameter, in layer order (inner layers of residual blocks included).
    pub fn params_mut(&mut self) -> impl Iterator<Item = &mut Param> {
        let mut out = Vec::new();
        collect_params_mut(&mut self.layers, &mut out);
        out.into_iter()
    }

    /// Every parameter, in layer order (inner layers of residual blocks included).
    pub fn params(&self) -> impl Iterator<Item = &Param> {
        let mut out = Vec::new();
        collect_params(&self.layers, &mut out);
        out.into_iter()
    }

    /// Number of classes (the last layer's channels; without the box numbers of a localization
    /// model).
    pub fn num_classes(&self) -> usize {
        self.spec.task.class_count(self.head_len())
    }

    /// Output values per position: the last layer's channels (the class scores, and a
    /// localization model's box after them).
    pub fn head_len(&self) -> usize {
        self.layers.last().map(|l| l.r.output.c).unwrap_or(0)
    }

    /// Output values per image (`h · w · classes`; the classes alone for a classifier).
    pub fn output_len(&self) -> usize {
        self.layers.last().map(|l| l.r.output.len()).unwrap_or(0)
    }

    /// The output grid `[h, w]` (`[1, 1]` for a classifier).
    pub fn output_grid(&self) -> [usize; 2] {
        self.layers.last().map_or([1, 1], |l| [l.r.output.h, l.r.output.w])
    }

    /// Input elements per image.
    pub fn input_len(&self) -> usize {
        self.spec.input.iter().product()
    }

    /// Predicted classes for a data set, in batches (no dropout).
    pub fn predict(&mut self, images: &[f32], batch: usize) -> Vec<usize> {
        let il = self.input_len();
        let (k, stride) = (self.num_classes(), self.head_len());
        let mut rng = Rng::new(0);
        let mut out = Vec::with_capacity(images.len() / il);
        for chunk in images.chunks(batch * il) {
            let n = chunk.len() / il;
            let logits = self.forward(chunk, n, false, &mut rng);
            out.extend(logits.chunks_exact(stride).map(|r| argmax(&r[..k])));
        }
        out
    }
}

fn collect_params<'a>(layers: &'a [Layer], out: &mut Vec<&'a Param>) {
    for l in layers {
        out.extend(l.params.iter());
        collect_params(l.children(), out);
    }
}

fn collect_params_mut<'a>(layers: &'a mut [Layer], out: &mut Vec<&'a mut Param>) {
    for l in layers {
        // (Split borrows: the layer's own parameters and its op's inner layers.)
        let Layer { params, op, .. } = l;
        out.extend(params.iter_mut());
        collect_params_mut(op.children_mut(), out);
    }
}

impl Layer {
    /// `true` if the layer or any inner layer has trainable parameters.
    pub fn has_params(&self) -> bool {
        !self.params.is_empty() || self.children().iter().any(Layer::has_params)
    }

    /// Freezes or unfreezes the layer and all inner layers.
    pub fn set_frozen(&mut self, frozen: bool) {
        self.params.iter_mut().for_each(|p| p.frozen = frozen);
        self.children_mut().iter_mut().for_each(|c| c.set_frozen(frozen));
    }

    /// `true` if every parameter of the layer (and inner layers) is frozen.
    pub fn is_frozen(&self) -> bool {
        self.has_params()
            && self.params.iter().all(|p| p.frozen)
            && self.children().iter().all(|c| !c.has_params() || c.is_frozen())
    }
}

/// Index of the largest value (first on ties).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] {
            best = i;
        }
    }
    best
}
