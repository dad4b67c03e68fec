//! The float network used for training: forward and backward passes whose padding, pooling
//! windows and L2 semantics come from the runtime's geometry code, so what is trained is what
//! runs. Convolution and dense use im2col + `matrixmultiply`'s SGEMM.

use crate::rng::Rng;
use crate::spec::{Act, LayerSpec, ModelSpec, Resolved};
use anyhow::Result;
use microcnn::shape::Geometry;
use microcnn::{Shape, Window};

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
    fn new(name: String, dims: Vec<usize>, value: Vec<f32>) -> Self {
        let n = value.len();
        Param { name, value, dims, grad: vec![0.0; n], m: vec![0.0; n], v: vec![0.0; n], frozen: false }
    }
}

/// One layer's parameters (weights then bias) and forward cache.
#[derive(Clone, Debug)]
pub struct Layer {
    /// Resolved description.
    pub r: Resolved,
    /// Weight and bias, for layers that have them.
    pub params: Vec<Param>,
    cache: Vec<f32>,
    cache_idx: Vec<u32>,
    input: Vec<f32>,
    output: Vec<f32>,
    /// Whether `backward` must compute the input gradient (false for the first layer).
    pub need_input_grad: bool,
    /// Reused im2col-gradient buffer (allocating it per batch costs page faults).
    dcol: Vec<f32>,
    /// The inner layers of a residual block.
    pub children: Vec<Layer>,
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
        | LayerSpec::Dense { activation, .. }
        | LayerSpec::Residual { activation, .. } => *activation,
        _ => Act::None,
    }
}

fn apply_act(a: Act, y: &mut [f32]) {
    match a {
        Act::None => {}
        Act::Relu => y.iter_mut().for_each(|v| *v = v.max(0.0)),
        Act::Relu6 => y.iter_mut().for_each(|v| *v = v.clamp(0.0, 6.0)),
    }
}

fn act_grad(a: Act, y: &[f32], dy: &mut [f32]) {
    match a {
        Act::None => {}
        Act::Relu => dy.iter_mut().zip(y).for_each(|(d, &v)| {
            if v <= 0.0 {
                *d = 0.0
            }
        }),
        Act::Relu6 => dy.iter_mut().zip(y).for_each(|(d, &v)| {
            if v <= 0.0 || v >= 6.0 {
                *d = 0.0
            }
        }),
    }
}

/// `C[m×n] = beta·C + A[m×k]·B[k×n]` with arbitrary strides (row, column) for each matrix.
#[allow(clippy::too_many_arguments)]
fn gemm(
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    ars: isize,
    acs: isize,
    b: &[f32],
    brs: isize,
    bcs: isize,
    beta: f32,
    c: &mut [f32],
) {
    assert!(c.len() >= m * n);
    assert!(m == 0 || k == 0 || a.len() as isize > (m as isize - 1) * ars + (k as isize - 1) * acs);
    assert!(k == 0 || n == 0 || b.len() as isize > (k as isize - 1) * brs + (n as isize - 1) * bcs);
    // SAFETY: the asserts above bound the largest index of A, B and C by their lengths; the
    // strides are non-negative, and C does not alias A or B (distinct borrows).
    #[allow(unsafe_code)]
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            ars,
            acs,
            b.as_ptr(),
            brs,
            bcs,
            beta,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

impl Layer {
    /// A layer with He-initialised weights.
    pub fn new(r: Resolved, rng: &mut Rng) -> Self {
        let mut params = Vec::new();
        let he = |fan_in: usize, n: usize, rng: &mut Rng| -> Vec<f32> {
            let lim = (6.0 / fan_in as f32).sqrt();
            (0..n).map(|_| rng.range(-lim, lim)).collect()
        };
        let (i, o) = (r.input, r.output);
        match &r.spec {
            LayerSpec::Conv { kernel, .. } => {
                let (kh, kw) = kernel.hw();
                let k = kh * kw * i.c;
                params.push(Param::new(format!("{}.weight", r.name), vec![o.c, kh, kw, i.c], he(k, o.c * k, rng)));
                params.push(Param::new(format!("{}.bias", r.name), vec![o.c], vec![0.0; o.c]));
            }
            LayerSpec::Pointwise { .. } => {
                params.push(Param::new(format!("{}.weight", r.name), vec![o.c, 1, 1, i.c], he(i.c, o.c * i.c, rng)));
                params.push(Param::new(format!("{}.bias", r.name), vec![o.c], vec![0.0; o.c]));
            }
            LayerSpec::Depthwise { kernel, .. } => {
                let (kh, kw) = kernel.hw();
                params.push(Param::new(
                    format!("{}.weight", r.name),
                    vec![1, kh, kw, o.c],
                    he(kh * kw, kh * kw * o.c, rng),
                ));
                params.push(Param::new(format!("{}.bias", r.name), vec![o.c], vec![0.0; o.c]));
            }
            LayerSpec::Dense { units, .. } => {
                let d = i.len();
                params.push(Param::new(format!("{}.weight", r.name), vec![*units, d], he(d, units * d, rng)));
                params.push(Param::new(format!("{}.bias", r.name), vec![*units], vec![0.0; *units]));
            }
            _ => {}
        }
        let children = r.children.iter().map(|c| Layer::new(c.clone(), rng)).collect();
        Layer {
            r,
            params,
            cache: Vec::new(),
            cache_idx: Vec::new(),
            input: Vec::new(),
            output: Vec::new(),
            need_input_grad: true,
            dcol: Vec::new(),
            children,
        }
    }

    /// Forward pass for a batch of `n`.
    pub fn forward(&mut self, x_owned: Vec<f32>, n: usize, train: bool, rng: &mut Rng) -> Vec<f32> {
        let x = &x_owned[..];
        let (i, o) = (self.r.input, self.r.output);
        let (ilen, olen) = (i.len(), o.len());
        let mut y = vec![0.0f32; n * olen];
        match self.r.spec.clone() {
            LayerSpec::Conv { .. } | LayerSpec::Pointwise { .. } => {
                let (win, g) = geometry(&self.r).expect("validated");
                let k = win.kernel_h * win.kernel_w * i.c;
                let p = o.h * o.w;
                self.cache.resize(n * p * k, 0.0);
                for b in 0..n {
                    let col = &mut self.cache[b * p * k..(b + 1) * p * k];
                    im2col(&x[b * ilen..(b + 1) * ilen], i, &win, &g, o, col);
                }
                // One GEMM for the whole batch: [n·P × K] · [K × OC].
                gemm(n * p, k, o.c, &self.cache, k as isize, 1, &self.params[0].value, 1, k as isize, 0.0, &mut y);
                for row in y.chunks_exact_mut(o.c) {
                    row.iter_mut().zip(&self.params[1].value).for_each(|(v, b)| *v += b);
                }
            }
            LayerSpec::Depthwise { multiplier, .. } => {
                let (win, g) = geometry(&self.r).expect("validated");
                let w = &self.params[0].value;
                for b in 0..n {
                    depthwise_taps(i, o, &win, &g, multiplier, |oi, ii, wi| {
                        y[b * olen + oi] += w[wi] * x[b * ilen + ii];
                    });
                    for row in y[b * olen..(b + 1) * olen].chunks_exact_mut(o.c) {
                        row.iter_mut().zip(&self.params[1].value).for_each(|(v, bb)| *v += bb);
                    }
                }
            }
            LayerSpec::Dense { units, .. } => {
                gemm(n, ilen, units, x, ilen as isize, 1, &self.params[0].value, 1, ilen as isize, 0.0, &mut y);
                for row in y.chunks_exact_mut(units) {
                    row.iter_mut().zip(&self.params[1].value).for_each(|(v, b)| *v += b);
                }
            }
            LayerSpec::Relu => y.iter_mut().zip(x).for_each(|(v, &a)| *v = a.max(0.0)),
            LayerSpec::Relu6 => y.iter_mut().zip(x).for_each(|(v, &a)| *v = a.clamp(0.0, 6.0)),
            LayerSpec::MaxPool { .. } | LayerSpec::AvgPool { .. } | LayerSpec::L2Pool { .. } => {
                let (win, g) = geometry(&self.r).expect("validated");
                self.cache_idx = vec![0; n * olen];
                for b in 0..n {
                    pool_windows(i, o, &win, &g, |oi, taps| {
                        for ch in 0..i.c {
                            let vals = taps.iter().map(|&t| x[b * ilen + t * i.c + ch]);
                            let out = b * olen + oi * i.c + ch;
                            y[out] = match self.r.spec {
                                LayerSpec::MaxPool { .. } => {
                                    let (mut best, mut at) = (f32::NEG_INFINITY, 0);
                                    for (j, v) in vals.enumerate() {
                                        if v > best {
                                            best = v;
                                            at = j;
                                        }
                                    }
                                    self.cache_idx[out] = (taps[at] * i.c + ch) as u32;
                                    best
                                }
                                LayerSpec::AvgPool { .. } => vals.sum::<f32>() / taps.len() as f32,
                                _ => (vals.map(|v| v * v).sum::<f32>() / taps.len() as f32).sqrt(),
                            };
                        }
                    });
                }
            }
            LayerSpec::GlobalAvgPool => {
                let hw = i.h * i.w;
                for b in 0..n {
                    for p in 0..hw {
                        for ch in 0..i.c {
                            y[b * i.c + ch] += x[b * ilen + p * i.c + ch] / hw as f32;
                        }
                    }
                }
            }
            LayerSpec::Dropout { rate } => {
                if train && rate > 0.0 {
                    let keep = 1.0 - rate;
                    self.cache = (0..x.len()).map(|_| if rng.chance(keep) { 1.0 / keep } else { 0.0 }).collect();
                    y.iter_mut().zip(x).zip(&self.cache).for_each(|((v, &a), &m)| *v = a * m);
                } else {
                    y.copy_from_slice(x);
                }
            }
            LayerSpec::Flatten | LayerSpec::Softmax => y.copy_from_slice(x),
            LayerSpec::Residual { .. } => {
                let mut a = x.to_vec();
                for c in &mut self.children {
                    c.need_input_grad = true;
                    a = c.forward(a, n, train, rng);
                }
                y.iter_mut().zip(a.iter().zip(x)).for_each(|(v, (&inner, &skip))| *v = inner + skip);
            }
        }
        apply_act(fused(&self.r.spec), &mut y);
        if train {
            // Keep only what backward reads: the output for activation/L2 gradients.
            let needs_output = fused(&self.r.spec) != Act::None || matches!(self.r.spec, LayerSpec::L2Pool { .. });
            if needs_output {
                self.output.clear();
                self.output.extend_from_slice(&y);
            }
            self.input = x_owned;
        }
        y
    }

    /// Backward pass: accumulates parameter gradients, returns the input gradient.
    pub fn backward(&mut self, dy: &mut [f32], n: usize) -> Vec<f32> {
        let (i, o) = (self.r.input, self.r.output);
        let (ilen, olen) = (i.len(), o.len());
        act_grad(fused(&self.r.spec), &self.output, dy);
        let x = &self.input;
        let mut dx = vec![0.0f32; n * ilen];
        match self.r.spec.clone() {
            LayerSpec::Conv { .. } | LayerSpec::Pointwise { .. } => {
                let (win, g) = geometry(&self.r).expect("validated");
                let k = win.kernel_h * win.kernel_w * i.c;
                let p = o.h * o.w;
                // Whole-batch GEMMs: dW += dYᵀ·col, dcol = dY·W.
                gemm(o.c, n * p, k, dy, 1, o.c as isize, &self.cache, k as isize, 1, 1.0, &mut self.params[0].grad);
                for row in dy.chunks_exact(o.c) {
                    self.params[1].grad.iter_mut().zip(row).for_each(|(g, d)| *g += d);
                }
                if self.need_input_grad {
                    self.dcol.resize(n * p * k, 0.0);
                    gemm(n * p, o.c, k, dy, o.c as isize, 1, &self.params[0].value, k as isize, 1, 0.0, &mut self.dcol);
                    for b in 0..n {
                        col2im(
                            &self.dcol[b * p * k..(b + 1) * p * k],
                            i,
                            &win,
                            &g,
                            o,
                            &mut dx[b * ilen..(b + 1) * ilen],
                        );
                    }
                }
            }
            LayerSpec::Depthwise { multiplier, .. } => {
                let (win, g) = geometry(&self.r).expect("validated");
                let w = self.params[0].value.clone();
                let mut gw = std::mem::take(&mut self.params[0].grad);
                for b in 0..n {
                    depthwise_taps(i, o, &win, &g, multiplier, |oi, ii, wi| {
                        let d = dy[b * olen + oi];
                        gw[wi] += d * x[b * ilen + ii];
                        dx[b * ilen + ii] += d * w[wi];
                    });
                    for row in dy[b * olen..(b + 1) * olen].chunks_exact(o.c) {
                        self.params[1].grad.iter_mut().zip(row).for_each(|(g, d)| *g += d);
                    }
                }
                self.params[0].grad = gw;
            }
            LayerSpec::Dense { units, .. } => {
                gemm(units, n, ilen, dy, 1, units as isize, x, ilen as isize, 1, 1.0, &mut self.params[0].grad);
                for row in dy.chunks_exact(units) {
                    self.params[1].grad.iter_mut().zip(row).for_each(|(g, d)| *g += d);
                }
                gemm(n, units, ilen, dy, units as isize, 1, &self.params[0].value, ilen as isize, 1, 0.0, &mut dx);
            }
            LayerSpec::Relu => {
                dx.iter_mut().zip(dy.iter()).zip(x).for_each(|((g, &d), &a)| *g = if a > 0.0 { d } else { 0.0 })
            }
            LayerSpec::Relu6 => dx
                .iter_mut()
                .zip(dy.iter())
                .zip(x)
                .for_each(|((g, &d), &a)| *g = if a > 0.0 && a < 6.0 { d } else { 0.0 }),
            LayerSpec::MaxPool { .. } => {
                for b in 0..n {
                    for oi in 0..olen {
                        dx[b * ilen + self.cache_idx[b * olen + oi] as usize] += dy[b * olen + oi];
                    }
                }
            }
            LayerSpec::AvgPool { .. } | LayerSpec::L2Pool { .. } => {
                let (win, g) = geometry(&self.r).expect("validated");
                let l2 = matches!(self.r.spec, LayerSpec::L2Pool { .. });
                let yv = &self.output;
                for b in 0..n {
                    pool_windows(i, o, &win, &g, |oi, taps| {
                        for ch in 0..i.c {
                            let out = b * olen + oi * i.c + ch;
                            let cnt = taps.len() as f32;
                            for &t in taps {
                                let at = b * ilen + t * i.c + ch;
                                dx[at] += if l2 {
                                    if yv[out] > 0.0 {
                                        dy[out] * x[at] / (cnt * yv[out])
                                    } else {
                                        0.0
                                    }
                                } else {
                                    dy[out] / cnt
                                };
                            }
                        }
                    });
                }
            }
            LayerSpec::GlobalAvgPool => {
                let hw = i.h * i.w;
                for b in 0..n {
                    for p in 0..hw {
                        for ch in 0..i.c {
                            dx[b * ilen + p * i.c + ch] = dy[b * i.c + ch] / hw as f32;
                        }
                    }
                }
            }
            LayerSpec::Dropout { .. } => {
                if self.cache.len() == dx.len() {
                    dx.iter_mut().zip(dy.iter()).zip(&self.cache).for_each(|((g, &d), &m)| *g = d * m);
                } else {
                    dx.copy_from_slice(dy);
                }
            }
            LayerSpec::Flatten | LayerSpec::Softmax => dx.copy_from_slice(dy),
            LayerSpec::Residual { .. } => {
                // d(x + f(x)) = dy + f'(x)ᵀ dy
                let mut d = dy.to_vec();
                for c in self.children.iter_mut().rev() {
                    d = c.backward(&mut d, n);
                }
                dx.iter_mut().zip(d.iter().zip(dy.iter())).for_each(|(g, (&a, &b))| *g = a + b);
            }
        }
        dx
    }
}

/// Calls `f(col_offset, input_offset)` for every in-bounds tap of every output position, where
/// `col_offset` indexes the im2col matrix `[P][kh·kw·c]` and `input_offset` the image; each
/// pair names a run of `c` values. Taps in padding are skipped (zero in the real domain, as in
/// the runtime).
fn for_each_tap(i: Shape, win: &Window, g: &Geometry, o: Shape, mut f: impl FnMut(usize, usize)) {
    let k = win.kernel_h * win.kernel_w * i.c;
    for oy in 0..o.h {
        for ox in 0..o.w {
            let row = (oy * o.w + ox) * k;
            for ky in 0..win.kernel_h {
                let iy = (oy * win.stride_h + ky * win.dilation_h) as isize - g.y.pad_before as isize;
                if iy < 0 || iy >= i.h as isize {
                    continue;
                }
                for kx in 0..win.kernel_w {
                    let ix = (ox * win.stride_w + kx * win.dilation_w) as isize - g.x.pad_before as isize;
                    if ix < 0 || ix >= i.w as isize {
                        continue;
                    }
                    f(row + (ky * win.kernel_w + kx) * i.c, (iy as usize * i.w + ix as usize) * i.c);
                }
            }
        }
    }
}

/// Builds the im2col matrix `[P][kh·kw·c]`; taps in padding stay zero.
fn im2col(x: &[f32], i: Shape, win: &Window, g: &Geometry, o: Shape, col: &mut [f32]) {
    col.iter_mut().for_each(|v| *v = 0.0);
    for_each_tap(i, win, g, o, |c, s| col[c..c + i.c].copy_from_slice(&x[s..s + i.c]));
}

/// Adds the im2col gradient back onto the input gradient.
fn col2im(dcol: &[f32], i: Shape, win: &Window, g: &Geometry, o: Shape, dx: &mut [f32]) {
    for_each_tap(i, win, g, o, |c, s| dx[s..s + i.c].iter_mut().zip(&dcol[c..c + i.c]).for_each(|(a, b)| *a += b));
}

/// Calls `f(output_index, input_index, weight_index)` for every in-bounds depthwise tap.
fn depthwise_taps(i: Shape, o: Shape, win: &Window, g: &Geometry, m: usize, mut f: impl FnMut(usize, usize, usize)) {
    for oy in 0..o.h {
        for ox in 0..o.w {
            for ky in 0..win.kernel_h {
                let iy = (oy * win.stride_h + ky * win.dilation_h) as isize - g.y.pad_before as isize;
                if iy < 0 || iy >= i.h as isize {
                    continue;
                }
                for kx in 0..win.kernel_w {
                    let ix = (ox * win.stride_w + kx * win.dilation_w) as isize - g.x.pad_before as isize;
                    if ix < 0 || ix >= i.w as isize {
                        continue;
                    }
                    for ic in 0..i.c {
                        for mm in 0..m {
                            let oc = ic * m + mm;
                            f(
                                (oy * o.w + ox) * o.c + oc,
                                (iy as usize * i.w + ix as usize) * i.c + ic,
                                (ky * win.kernel_w + kx) * o.c + oc,
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Calls `f(output_pixel, in_bounds_pixels)` for each pooling window (pixels as `y·W + x`).
fn pool_windows(i: Shape, o: Shape, win: &Window, g: &Geometry, mut f: impl FnMut(usize, &[usize])) {
    let mut taps = Vec::with_capacity(win.kernel_h * win.kernel_w);
    for oy in 0..o.h {
        for ox in 0..o.w {
            taps.clear();
            for ky in 0..win.kernel_h {
                let iy = (oy * win.stride_h + ky) as isize - g.y.pad_before as isize;
                for kx in 0..win.kernel_w {
                    let ix = (ox * win.stride_w + kx) as isize - g.x.pad_before as isize;
                    if iy >= 0 && ix >= 0 && (iy as usize) < i.h && (ix as usize) < i.w {
                        taps.push(iy as usize * i.w + ix as usize);
                    }
                }
            }
            f(oy * o.w + ox, &taps);
        }
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

    /// Number of classes.
    pub fn num_classes(&self) -> usize {
        self.layers.last().map(|l| l.r.output.c).unwrap_or(0)
    }

    /// Input elements per image.
    pub fn input_len(&self) -> usize {
        self.spec.input.iter().product()
    }

    /// Predicted classes for a data set, in batches (no dropout).
    pub fn predict(&mut self, images: &[f32], batch: usize) -> Vec<usize> {
        let il = self.input_len();
        let k = self.num_classes();
        let mut rng = Rng::new(0);
        let mut out = Vec::with_capacity(images.len() / il);
        for chunk in images.chunks(batch * il) {
            let n = chunk.len() / il;
            let logits = self.forward(chunk, n, false, &mut rng);
            out.extend(logits.chunks_exact(k).map(argmax));
        }
        out
    }
}

fn collect_params<'a>(layers: &'a [Layer], out: &mut Vec<&'a Param>) {
    for l in layers {
        out.extend(l.params.iter());
        collect_params(&l.children, out);
    }
}

fn collect_params_mut<'a>(layers: &'a mut [Layer], out: &mut Vec<&'a mut Param>) {
    for l in layers {
        out.extend(l.params.iter_mut());
        collect_params_mut(&mut l.children, out);
    }
}

impl Layer {
    /// `true` if the layer or any inner layer has trainable parameters.
    pub fn has_params(&self) -> bool {
        !self.params.is_empty() || self.children.iter().any(Layer::has_params)
    }

    /// Freezes or unfreezes the layer and all inner layers.
    pub fn set_frozen(&mut self, frozen: bool) {
        self.params.iter_mut().for_each(|p| p.frozen = frozen);
        self.children.iter_mut().for_each(|c| c.set_frozen(frozen));
    }

    /// `true` if every parameter of the layer (and inner layers) is frozen.
    pub fn is_frozen(&self) -> bool {
        self.has_params()
            && self.params.iter().all(|p| p.frozen)
            && self.children.iter().all(|c| !c.has_params() || c.is_frozen())
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

/// Softmax cross-entropy: returns the mean loss and writes `d loss / d logits` (already / n).
pub fn softmax_cross_entropy(logits: &[f32], labels: &[u8], k: usize, grad: &mut [f32]) -> f32 {
    let n = labels.len();
    let mut loss = 0.0;
    for (b, row) in logits.chunks_exact(k).enumerate() {
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
        let y = labels[b] as usize;
        loss += -(row[y] - max - sum.ln());
        for (j, g) in grad[b * k..(b + 1) * k].iter_mut().enumerate() {
            let p = (row[j] - max).exp() / sum;
            *g = (p - if j == y { 1.0 } else { 0.0 }) / n as f32;
        }
    }
    loss / n as f32
}
