//! One home per layer type. Each module holds one layer type's parameters (shapes and
//! initialisation), forward pass, backward pass and its finite-difference gradient checks (unit
//! tests calling [`gradient_check`]). [`op_for`] is the only place that maps a [`LayerSpec`] to
//! its implementation: adding a layer type is one new module implementing [`Op`] and one line
//! there (plus its description in `model::spec` and its int8 lowering in `graph::quantize`).
//!
//! What every layer shares stays in [`Layer`]: the resolved shapes, the parameter list, the
//! stored input that backward reads, and the fused activation with its gradient mask.

mod block;
mod conv;
mod dense;
mod depthwise;
mod pool;
mod resize;
mod simple;
mod transpose;

pub use conv::set_im2col_chunk_floats;

use crate::model::spec::{LayerSpec, ModelSpec, Resolved};
use crate::rng::Rng;
use crate::train::loss::softmax_cross_entropy;
use crate::train::net::{Layer, Net, Param};
use std::fmt::Debug;

/// What a layer's forward or backward pass gets besides its input: its resolved description,
/// its parameters (in the order [`Op::params`] made them) and the batch size.
pub struct Pass<'a> {
    /// Shapes and settings.
    pub r: &'a Resolved,
    /// Weights and bias (values, and gradients to accumulate into).
    pub params: &'a mut [Param],
    /// Images in the batch.
    pub n: usize,
}

/// One layer type's computation. Implementations keep whatever forward state their backward pass
/// needs (im2col buffers, max-pooling arg-maxima, dropout masks, inner layers).
pub trait Op: OpClone + Debug + Send + Sync {
    /// The trainable parameters of a fresh layer (weights then bias), initialised from `rng`.
    fn params(&self, _r: &Resolved, _rng: &mut Rng) -> Vec<Param> {
        Vec::new()
    }

    /// Output for a batch of `p.n` images `x` (before the layer's fused activation).
    fn forward(&mut self, p: Pass, x: &[f32], train: bool, rng: &mut Rng) -> Vec<f32>;

    /// Accumulates parameter gradients for output gradient `dy` (the fused activation's gradient
    /// already applied) at input `x` (the last training forward's), and returns the input
    /// gradient; with `need_dx` false the caller ignores it (the first layer), so it may be zeros.
    fn backward(&mut self, p: Pass, x: &[f32], dy: &[f32], need_dx: bool) -> Vec<f32>;

    /// Inner layers (residual and skip blocks).
    fn children(&self) -> &[Layer] {
        &[]
    }

    /// Inner layers, mutably.
    fn children_mut(&mut self) -> &mut [Layer] {
        &mut []
    }
}

/// Cloning of boxed [`Op`]s (a network is cloned per training thread).
pub trait OpClone {
    /// A boxed copy.
    fn clone_op(&self) -> Box<dyn Op>;
}

impl<T: Op + Clone + 'static> OpClone for T {
    fn clone_op(&self) -> Box<dyn Op> {
        Box::new(self.clone())
    }
}

impl Clone for Box<dyn Op> {
    fn clone(&self) -> Self {
        self.clone_op()
    }
}

/// The implementation of a resolved layer (inner layers of blocks initialised from `rng`).
pub fn op_for(r: &Resolved, rng: &mut Rng) -> Box<dyn Op> {
    use LayerSpec::*;
    match &r.spec {
        Conv { .. } | Pointwise { .. } => Box::new(conv::Conv::default()),
        Depthwise { .. } => Box::new(depthwise::Depthwise),
        TransposeConv { .. } => Box::new(transpose::TransposeConv::default()),
        Dense { .. } => Box::new(dense::Dense),
        MaxPool { .. } => Box::new(pool::MaxPool::default()),
        AvgPool { .. } | L2Pool { .. } => Box::new(pool::AvgPool::default()),
        GlobalAvgPool => Box::new(pool::GlobalAvgPool),
        Upsample { .. } => Box::new(resize::Upsample),
        Relu => Box::new(simple::Clamp(f32::INFINITY)),
        Relu6 => Box::new(simple::Clamp(6.0)),
        Dropout { .. } => Box::new(simple::Dropout::default()),
        Flatten | Softmax => Box::new(simple::Identity),
        Residual { .. } => Box::new(block::Residual::new(r, rng)),
        Skip { .. } => Box::new(block::Skip::new(r, rng)),
    }
}

/// A layer's weight (He-uniform for `fan_in`) and zero bias of `units`.
fn weight_and_bias(r: &Resolved, dims: Vec<usize>, fan_in: usize, units: usize, rng: &mut Rng) -> Vec<Param> {
    let lim = (6.0 / fan_in as f32).sqrt();
    let n = dims.iter().product();
    let w = (0..n).map(|_| rng.range(-lim, lim)).collect();
    vec![
        Param::new(format!("{}.weight", r.name), dims, w),
        Param::new(format!("{}.bias", r.name), vec![units], vec![0.0; units]),
    ]
}

/// Adds `bias` to every row of `y`.
fn add_bias(y: &mut [f32], bias: &[f32]) {
    for row in y.chunks_exact_mut(bias.len()) {
        row.iter_mut().zip(bias).for_each(|(v, b)| *v += b);
    }
}

/// Adds every row of `dy` into the bias gradient `g`.
fn bias_grad(g: &mut [f32], dy: &[f32]) {
    let k = g.len();
    for row in dy.chunks_exact(k) {
        g.iter_mut().zip(row).for_each(|(g, d)| *g += d);
    }
}

/// `C[m×n] = beta·C + A[m×k]·B[k×n]`, C row-major, A and B with (row, column) strides.
fn gemm(m: usize, k: usize, n: usize, a: (&[f32], isize, isize), b: (&[f32], isize, isize), beta: f32, c: &mut [f32]) {
    gemm_strided(m, k, n, a, b, beta, (c, n as isize, 1));
}

/// `C[m×n] = beta·C + A[m×k]·B[k×n]` with arbitrary non-negative strides (row, column) for
/// each matrix.
fn gemm_strided(
    m: usize,
    k: usize,
    n: usize,
    (a, ars, acs): (&[f32], isize, isize),
    (b, brs, bcs): (&[f32], isize, isize),
    beta: f32,
    (c, crs, ccs): (&mut [f32], isize, isize),
) {
    assert!(ars >= 0 && acs >= 0 && brs >= 0 && bcs >= 0 && crs >= 0 && ccs >= 0);
    assert!(m == 0 || n == 0 || c.len() as isize > (m as isize - 1) * crs + (n as isize - 1) * ccs);
    assert!(m == 0 || k == 0 || a.len() as isize > (m as isize - 1) * ars + (k as isize - 1) * acs);
    assert!(k == 0 || n == 0 || b.len() as isize > (k as isize - 1) * brs + (n as isize - 1) * bcs);
    // SAFETY: the asserts above bound the largest index of A, B and C by their lengths with
    // non-negative strides, and C does not alias A or B (distinct borrows).
    #[allow(unsafe_code)]
    unsafe {
        matrixmultiply::sgemm(m, k, n, 1.0, a.as_ptr(), ars, acs, b.as_ptr(), brs, bcs, beta, c.as_mut_ptr(), crs, ccs);
    }
}

/// Checks backpropagation against central finite differences: builds the model `body` (TOML
/// `[[layers]]` tables) on an `[h, w, c]` input, appends flatten + dense 3, and compares every
/// parameter's gradient of a softmax cross-entropy loss with `(L(θ+ε) − L(θ−ε)) / 2ε`, for the
/// whole batch in one im2col chunk and for one image per chunk. Returns the mismatches when more
/// than 1 in 50 entries differ (a few may sit on a ReLU or max kink, where finite differences are
/// meaningless). Each layer type's unit tests call it; so do the tests of nested blocks.
pub fn gradient_check(body: &str, [h, w, c]: [usize; 3]) -> Result<(), String> {
    let res = [1 << 18, 1].into_iter().try_for_each(|floats| {
        set_im2col_chunk_floats(floats);
        gradient_check_once(body, [h, w, c])
    });
    set_im2col_chunk_floats(1 << 18);
    res
}

fn gradient_check_once(body: &str, [h, w, c]: [usize; 3]) -> Result<(), String> {
    let spec = format!("name = \"grad\"\ninput = [{h}, {w}, {c}]\n{body}\n[[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"dense\"\nunits = 3\n");
    let spec = ModelSpec::from_toml(&spec).map_err(|e| format!("{e:#}"))?;
    let mut net = Net::new(spec, 5).map_err(|e| format!("{e:#}"))?;
    let mut rng = Rng::new(11);
    let n = 2;
    let x: Vec<f32> = (0..n * h * w * c).map(|_| rng.range(0.0, 1.0)).collect();
    let labels = [1u8, 2];
    let loss = |net: &mut Net| {
        let logits = net.forward(&x, n, false, &mut Rng::new(0));
        let mut g = vec![0.0; n * 3];
        softmax_cross_entropy(&logits, &labels, 3, &mut g) as f64
    };
    let logits = net.forward(&x, n, true, &mut Rng::new(0));
    let mut g = vec![0.0; n * 3];
    softmax_cross_entropy(&logits, &labels, 3, &mut g);
    net.backward(g, n);
    let analytic: Vec<Vec<f32>> = net.params().map(|p| p.grad.clone()).collect();
    let eps = 1e-3f32;
    let (mut checked, mut bad) = (0, Vec::new());
    for (pi, grads) in analytic.iter().enumerate() {
        for (i, &a) in grads.iter().enumerate() {
            let set = |net: &mut Net, v: f32| net.params_mut().nth(pi).expect("same parameters").value[i] = v;
            let orig = net.params().nth(pi).expect("same parameters").value[i];
            set(&mut net, orig + eps);
            let up = loss(&mut net);
            set(&mut net, orig - eps);
            let down = loss(&mut net);
            set(&mut net, orig);
            let numeric = ((up - down) / (2.0 * eps as f64)) as f32;
            if (a - numeric).abs() > 1e-3 + 2e-2 * numeric.abs() {
                bad.push(format!("param {pi}[{i}]: backprop {a}, finite difference {numeric}"));
            }
            checked += 1;
        }
    }
    if checked == 0 || bad.len() * 50 > checked {
        return Err(format!("{body}\n{} of {checked} gradients differ:\n{}", bad.len(), bad.join("\n")));
    }
    Ok(())
}

#[cfg(test)]
fn assert_gradients(body: &str, input: [usize; 3]) {
    if let Err(e) = gradient_check(body, input) {
        panic!("{e}");
    }
}
