//! The float network used for training: forward and backward passes whose padding, pooling
//! windows and L2 semantics come from the runtime's geometry code, so what is trained is what
//! runs. Convolution and dense use im2col + `matrixmultiply`'s SGEMM.

use crate::model::spec::{Act, LayerSpec, ModelSpec, Resolved};
use crate::rng::Rng;
use anyhow::Result;
use microcnn::shape::{tap_range, Geometry};
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
    /// Reused buffer: a convolution's im2col chunk, or dropout's keep mask.
    cache: Vec<f32>,
    /// The last training batch's input (what backward reads).
    input: Vec<f32>,
    /// The last training batch's output, kept for L2 pooling only.
    output: Vec<f32>,
    /// Where a fused ReLU/ReLU6 let the gradient through (1) or cut it (0).
    act_mask: Vec<u8>,
    /// Max pooling: which tap of each window held the maximum.
    argmax: Vec<u32>,
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

/// `C[m×n] = beta·C + A[m×k]·B[k×n]`, C row-major.
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
    gemm_strided(m, k, n, (a, ars, acs), (b, brs, bcs), beta, (c, n as isize, 1));
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

std::thread_local! {
    static CHUNK_FLOATS: std::cell::Cell<usize> = const { std::cell::Cell::new(1 << 18) };
}

/// Sets, for the calling thread, how many floats of im2col matrix a convolution builds at once
/// (default 2¹⁸ = 1 MiB, to stay in cache). Tests set 1 to force one image per chunk.
#[doc(hidden)]
pub fn set_im2col_chunk_floats(floats: usize) {
    CHUNK_FLOATS.with(|c| c.set(floats));
}

/// Images per im2col chunk: enough rows for an efficient GEMM, few enough to stay in cache.
fn conv_chunk(n: usize, per_image: usize) -> usize {
    (CHUNK_FLOATS.with(|c| c.get()) / per_image.max(1)).clamp(1, n.max(1))
}

/// How a convolution's im2col matrix `[m·P × K]` (`K = kh·kw·c`) is laid out for a chunk of `m`
/// images.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ColLayout {
    /// 1×1, stride 1, no padding: the input itself is the matrix.
    Direct,
    /// Row per output pixel (`[m·P][K]`); kernel rows are runs of `kw·c` input values.
    Pixel,
    /// Column per kernel tap (`[K][m·P]`), for inputs with few channels: a tap's values along an
    /// output row are one strided run of the input, instead of many runs of `kw·c` values.
    Tap,
}

impl ColLayout {
    fn of(r: &Resolved, win: &Window, g: &Geometry) -> Self {
        let one = |k: usize, s: usize, pad: usize| k == 1 && s == 1 && pad == 0;
        if one(win.kernel_h, win.stride_h, g.y.pad_before)
            && one(win.kernel_w, win.stride_w, g.x.pad_before)
            && (r.input.h, r.input.w) == (r.output.h, r.output.w)
        {
            ColLayout::Direct
        } else if r.input.c <= 4 {
            ColLayout::Tap
        } else {
            ColLayout::Pixel
        }
    }

    /// (row, column) strides of the `[m·P × K]` matrix.
    fn strides(self, mp: usize, k: usize) -> (isize, isize) {
        match self {
            ColLayout::Tap => (1, mp as isize),
            _ => (k as isize, 1),
        }
    }
}

/// Builds the im2col matrix of images `b0..b0 + m` of `x` (in `cache` unless the layout is
/// `Direct`) and returns it with its strides.
#[allow(clippy::too_many_arguments)]
fn im2col_chunk<'a>(
    cache: &'a mut Vec<f32>,
    layout: ColLayout,
    x: &'a [f32],
    b0: usize,
    m: usize,
    (i, o): (Shape, Shape),
    win: &Window,
    g: &Geometry,
) -> (&'a [f32], isize, isize) {
    let (p, k) = (o.h * o.w, win.kernel_h * win.kernel_w * i.c);
    let (rs, cs) = layout.strides(m * p, k);
    let xs = &x[b0 * i.len()..(b0 + m) * i.len()];
    if layout == ColLayout::Direct {
        return (xs, rs, cs);
    }
    cache.resize(m * p * k, 0.0);
    let col = &mut cache[..m * p * k];
    if layout == ColLayout::Tap {
        im2col_taps(xs, m, i, win, g, o, col);
    } else {
        for (xb, cb) in xs.chunks_exact(i.len()).zip(col.chunks_exact_mut(p * k)) {
            im2col(xb, i, win, g, o, cb);
        }
    }
    (col, rs, cs)
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
            input: Vec::new(),
            output: Vec::new(),
            act_mask: Vec::new(),
            argmax: Vec::new(),
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
        // Convolutions start from their bias; everything else from zero.
        let mut y = match &self.r.spec {
            LayerSpec::Conv { .. } | LayerSpec::Pointwise { .. } => {
                let bias = &self.params[1].value;
                let mut y = Vec::with_capacity(n * olen);
                (0..n * o.h * o.w).for_each(|_| y.extend_from_slice(bias));
                y
            }
            _ => vec![0.0f32; n * olen],
        };
        match self.r.spec.clone() {
            LayerSpec::Conv { .. } | LayerSpec::Pointwise { .. } => {
                let (win, g) = geometry(&self.r).expect("validated");
                let k = win.kernel_h * win.kernel_w * i.c;
                let p = o.h * o.w;
                // Chunks of images small enough for the im2col matrix to stay in cache; one GEMM
                // per chunk: [m·P × K] · [K × OC], added to the bias (beta = 1).
                let layout = ColLayout::of(&self.r, &win, &g);
                let chunk = conv_chunk(n, p * k);
                for b0 in (0..n).step_by(chunk) {
                    let m = chunk.min(n - b0);
                    let col = im2col_chunk(&mut self.cache, layout, x, b0, m, (i, o), &win, &g);
                    let w = (&self.params[0].value[..], 1, k as isize);
                    let yc = &mut y[b0 * olen..(b0 + m) * olen];
                    gemm_strided(m * p, k, o.c, col, w, 1.0, (yc, o.c as isize, 1));
                }
            }
            LayerSpec::Depthwise { multiplier, .. } => {
                let (win, g) = geometry(&self.r).expect("validated");
                let w = &self.params[0].value;
                let (ic, oc, m) = (i.c, o.c, multiplier);
                for (xb, yb) in x.chunks_exact(ilen).zip(y.chunks_exact_mut(olen)) {
                    // Whole channel rows per tap (output channel `c·m + j` reads input channel c).
                    depthwise_windows(i, o, &win, &g, |out, inp, wt| {
                        let (yr, xr, wr) = (&mut yb[out..out + oc], &xb[inp..inp + ic], &w[wt..wt + oc]);
                        if m == 1 {
                            yr.iter_mut().zip(xr).zip(wr).for_each(|((y, &xv), &wv)| *y += wv * xv);
                        } else {
                            for (ch, &xv) in xr.iter().enumerate() {
                                for j in ch * m..(ch + 1) * m {
                                    yr[j] += wr[j] * xv;
                                }
                            }
                        }
                    });
                    for row in yb.chunks_exact_mut(oc) {
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
                let c = i.c;
                let kind = &self.r.spec;
                self.argmax.clear();
                self.argmax.resize(y.len(), 0);
                for ((xb, yb), ab) in
                    x.chunks_exact(ilen).zip(y.chunks_exact_mut(olen)).zip(self.argmax.chunks_exact_mut(olen))
                {
                    // Whole channel rows per tap, so the channel loops vectorise.
                    pool_windows(i, o, &win, &g, |oi, taps| {
                        let out = &mut yb[oi * c..(oi + 1) * c];
                        let rows = taps.iter().map(|&t| &xb[t * c..(t + 1) * c]);
                        match kind {
                            LayerSpec::MaxPool { .. } => {
                                out.fill(f32::NEG_INFINITY);
                                for row in rows.clone() {
                                    out.iter_mut().zip(row).for_each(|(o, &v)| *o = if v > *o { v } else { *o });
                                }
                                // Which tap of the window holds the maximum (the first, when
                                // several do: taps are visited last to first).
                                let arg = &mut ab[oi * c..(oi + 1) * c];
                                for (j, row) in rows.enumerate().rev() {
                                    for ((a, &o), &v) in arg.iter_mut().zip(&*out).zip(row) {
                                        *a = if v == o { j as u32 } else { *a };
                                    }
                                }
                            }
                            _ => {
                                let l2 = matches!(kind, LayerSpec::L2Pool { .. });
                                for row in rows {
                                    out.iter_mut().zip(row).for_each(|(o, &v)| *o += if l2 { v * v } else { v });
                                }
                                let cnt = taps.len() as f32;
                                out.iter_mut().for_each(|o| *o = if l2 { (*o / cnt).sqrt() } else { *o / cnt });
                            }
                        }
                    });
                }
            }
            LayerSpec::Upsample { factor } => {
                // Each output pixel copies input pixel (y / f, x / f): whole channel rows.
                let c = i.c;
                for (xb, yb) in x.chunks_exact(ilen).zip(y.chunks_exact_mut(olen)) {
                    for (oy, row) in yb.chunks_exact_mut(o.w * c).enumerate() {
                        for (ox, px) in row.chunks_exact_mut(c).enumerate() {
                            let src = ((oy / factor) * i.w + ox / factor) * c;
                            px.copy_from_slice(&xb[src..src + c]);
                        }
                    }
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
            LayerSpec::Skip { .. } => {
                let mut a = x.to_vec();
                for c in &mut self.children {
                    c.need_input_grad = true;
                    a = c.forward(a, n, train, rng);
                }
                // Per pixel: the inner channels, then the input's.
                let (ci, cx) = (o.c - i.c, i.c);
                for ((dst, inner), skip) in y.chunks_exact_mut(o.c).zip(a.chunks_exact(ci)).zip(x.chunks_exact(cx)) {
                    dst[..ci].copy_from_slice(inner);
                    dst[ci..].copy_from_slice(skip);
                }
            }
        }
        apply_act(fused(&self.r.spec), &mut y, train.then_some(&mut self.act_mask));
        if train {
            // Keep only what backward reads: the output for L2 gradients.
            if matches!(self.r.spec, LayerSpec::L2Pool { .. }) {
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
        if fused(&self.r.spec) != Act::None {
            act_grad(&self.act_mask, dy);
        }
        let x = &self.input;
        let mut dx = vec![0.0f32; n * ilen];
        match self.r.spec.clone() {
            LayerSpec::Conv { .. } | LayerSpec::Pointwise { .. } => {
                let (win, g) = geometry(&self.r).expect("validated");
                let k = win.kernel_h * win.kernel_w * i.c;
                let p = o.h * o.w;
                for row in dy.chunks_exact(o.c) {
                    self.params[1].grad.iter_mut().zip(row).for_each(|(g, d)| *g += d);
                }
                // Per chunk (the im2col matrix is rebuilt from the stored input rather than kept
                // for the whole batch): dW += dYᵀ·col, dcol = dY·W, then col2im.
                let x = std::mem::take(&mut self.input);
                let mut gw = std::mem::take(&mut self.params[0].grad);
                let mut dcol = std::mem::take(&mut self.dcol);
                let layout = ColLayout::of(&self.r, &win, &g);
                let chunk = conv_chunk(n, p * k);
                for b0 in (0..n).step_by(chunk) {
                    let m = chunk.min(n - b0);
                    let dyc = &dy[b0 * olen..(b0 + m) * olen];
                    let col = im2col_chunk(&mut self.cache, layout, &x, b0, m, (i, o), &win, &g);
                    gemm_strided(o.c, m * p, k, (dyc, 1, o.c as isize), col, 1.0, (&mut gw, k as isize, 1));
                    if !self.need_input_grad {
                        continue;
                    }
                    let w = (&self.params[0].value[..], k as isize, 1);
                    let dxc = &mut dx[b0 * ilen..(b0 + m) * ilen];
                    let (rs, cs) = layout.strides(m * p, k);
                    let dyc = (dyc, o.c as isize, 1);
                    if layout == ColLayout::Direct {
                        gemm_strided(m * p, o.c, k, dyc, w, 0.0, (dxc, rs, cs));
                        continue;
                    }
                    dcol.resize(m * p * k, 0.0);
                    let dc = &mut dcol[..m * p * k];
                    gemm_strided(m * p, o.c, k, dyc, w, 0.0, (&mut *dc, rs, cs));
                    if layout == ColLayout::Tap {
                        col2im_taps(dc, m, i, &win, &g, o, dxc);
                    } else {
                        for (dcb, dxb) in dc.chunks_exact(p * k).zip(dxc.chunks_exact_mut(ilen)) {
                            col2im(dcb, i, &win, &g, o, dxb);
                        }
                    }
                }
                self.params[0].grad = gw;
                self.dcol = dcol;
                self.input = x;
            }
            LayerSpec::Depthwise { multiplier, .. } => {
                let (win, g) = geometry(&self.r).expect("validated");
                let (wp, bp) = self.params.split_at_mut(1);
                let (w, gw, gb) = (&wp[0].value, &mut wp[0].grad, &mut bp[0].grad);
                let (ic, oc, m) = (i.c, o.c, multiplier);
                for ((xb, dxb), dyb) in x.chunks_exact(ilen).zip(dx.chunks_exact_mut(ilen)).zip(dy.chunks_exact(olen)) {
                    depthwise_windows(i, o, &win, &g, |out, inp, wt| {
                        let d = &dyb[out..out + oc];
                        let (xr, dxr) = (&xb[inp..inp + ic], &mut dxb[inp..inp + ic]);
                        let (wr, gr) = (&w[wt..wt + oc], &mut gw[wt..wt + oc]);
                        if m == 1 {
                            for ((((g, &dv), &xv), dxv), &wv) in gr.iter_mut().zip(d).zip(xr).zip(dxr).zip(wr) {
                                *g += dv * xv;
                                *dxv += dv * wv;
                            }
                        } else {
                            for ch in 0..ic {
                                for j in ch * m..(ch + 1) * m {
                                    gr[j] += d[j] * xr[ch];
                                    dxr[ch] += d[j] * wr[j];
                                }
                            }
                        }
                    });
                    for row in dyb.chunks_exact(oc) {
                        gb.iter_mut().zip(row).for_each(|(g, d)| *g += d);
                    }
                }
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
                // The gradient goes to the tap holding the window's maximum (the first of equal
                // maxima, recorded by the forward pass).
                let (win, g) = geometry(&self.r).expect("validated");
                let c = i.c;
                for b in 0..n {
                    let dxb = &mut dx[b * ilen..(b + 1) * ilen];
                    let (ab, dyb) = (&self.argmax[b * olen..(b + 1) * olen], &dy[b * olen..(b + 1) * olen]);
                    pool_windows(i, o, &win, &g, |oi, taps| {
                        for ch in 0..c {
                            // (A window lying wholly in padding has no taps and no gradient.)
                            if let Some(&t) = taps.get(ab[oi * c + ch] as usize) {
                                dxb[t * c + ch] += dyb[oi * c + ch];
                            }
                        }
                    });
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
            LayerSpec::Upsample { factor } => {
                // The input pixel's gradient is the sum over the f × f outputs that copied it.
                let c = i.c;
                for (dxb, dyb) in dx.chunks_exact_mut(ilen).zip(dy.chunks_exact(olen)) {
                    for (oy, row) in dyb.chunks_exact(o.w * c).enumerate() {
                        for (ox, px) in row.chunks_exact(c).enumerate() {
                            let dst = ((oy / factor) * i.w + ox / factor) * c;
                            dxb[dst..dst + c].iter_mut().zip(px).for_each(|(g, &d)| *g += d);
                        }
                    }
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
            LayerSpec::Skip { .. } => {
                // The inner channels' gradient goes back through the inner layers; the input's
                // channels pass theirs straight to the input.
                let (ci, cx) = (o.c - i.c, i.c);
                let mut d: Vec<f32> = dy.chunks_exact(o.c).flat_map(|px| px[..ci].iter().copied()).collect();
                for c in self.children.iter_mut().rev() {
                    d = c.backward(&mut d, n);
                }
                for ((g, inner), px) in dx.chunks_exact_mut(cx).zip(d.chunks_exact(cx)).zip(dy.chunks_exact(o.c)) {
                    g.iter_mut().zip(inner.iter().zip(&px[ci..])).for_each(|(g, (&a, &b))| *g = a + b);
                }
            }
        }
        dx
    }
}

/// Walks the im2col matrix `[P][kh·kw·c]` row by row and calls `f(col_offset, source, len)` for
/// runs that together cover every row exactly once: `source` is `Some(input_offset)` for `len`
/// values copied from the image, `None` for `len` zeros (taps in padding, zero in the real domain
/// as in the runtime). Without horizontal dilation the in-bounds taps of one kernel row are one
/// contiguous run in both the matrix and the image.
fn for_each_run(i: Shape, win: &Window, g: &Geometry, o: Shape, mut f: impl FnMut(usize, Option<usize>, usize)) {
    let (c, kw) = (i.c, win.kernel_w);
    let k = win.kernel_h * kw * c;
    for oy in 0..o.h {
        let y0 = (oy * win.stride_h) as isize - g.y.pad_before as isize;
        let (ky0, ky1) = tap_range(y0, win.kernel_h, win.dilation_h, i.h);
        for ox in 0..o.w {
            let row = (oy * o.w + ox) * k;
            let x0 = (ox * win.stride_w) as isize - g.x.pad_before as isize;
            let (lo, hi) = tap_range(x0, kw, win.dilation_w, i.w);
            for ky in 0..win.kernel_h {
                let at = row + ky * kw * c;
                if ky < ky0 || ky >= ky1 || lo >= hi {
                    f(at, None, kw * c);
                    continue;
                }
                let iy = (y0 + (ky * win.dilation_h) as isize) as usize;
                let src = |kx: usize| (iy * i.w + (x0 + (kx * win.dilation_w) as isize) as usize) * c;
                if lo > 0 {
                    f(at, None, lo * c);
                }
                if win.dilation_w == 1 {
                    f(at + lo * c, Some(src(lo)), (hi - lo) * c);
                } else {
                    for kx in lo..hi {
                        f(at + kx * c, Some(src(kx)), c);
                    }
                }
                if hi < kw {
                    f(at + hi * c, None, (kw - hi) * c);
                }
            }
        }
    }
}

/// Builds the im2col matrix `[P][kh·kw·c]`; taps in padding are zero. Every value is written
/// once (no clearing pass over the whole matrix).
fn im2col(x: &[f32], i: Shape, win: &Window, g: &Geometry, o: Shape, col: &mut [f32]) {
    for_each_run(i, win, g, o, |at, src, len| match src {
        Some(s) => col[at..at + len].copy_from_slice(&x[s..s + len]),
        None => col[at..at + len].fill(0.0),
    });
}

/// Adds the im2col gradient back onto the input gradient.
fn col2im(dcol: &[f32], i: Shape, win: &Window, g: &Geometry, o: Shape, dx: &mut [f32]) {
    for_each_run(i, win, g, o, |at, src, len| {
        if let Some(s) = src {
            dx[s..s + len].iter_mut().zip(&dcol[at..at + len]).for_each(|(a, b)| *a += b);
        }
    });
}

/// Walks the tap-major im2col matrix: for every kernel tap `t = (ky·kw + kx)·c + ci` and
/// output row `oy`, calls `f(t, oy, run)`. `run` is `None` when the whole output row reads
/// padding, else `(lo, hi, base, step)`: output columns `lo..hi` read input offset
/// `base + ox·step` (within one image), the others read padding.
fn for_each_tap_row(
    i: Shape,
    win: &Window,
    g: &Geometry,
    o: Shape,
    mut f: impl FnMut(usize, usize, Option<(usize, usize, isize, usize)>),
) {
    let c = i.c;
    for ky in 0..win.kernel_h {
        for kx in 0..win.kernel_w {
            let dx = (kx * win.dilation_w) as isize - g.x.pad_before as isize;
            let ok = |ox: usize| {
                let ix = (ox * win.stride_w) as isize + dx;
                ix >= 0 && ix < i.w as isize
            };
            let lo = (0..o.w).find(|&ox| ok(ox)).unwrap_or(o.w);
            let hi = (lo..o.w).find(|&ox| !ok(ox)).unwrap_or(o.w);
            for ci in 0..c {
                let t = (ky * win.kernel_w + kx) * c + ci;
                for oy in 0..o.h {
                    let iy = (oy * win.stride_h + ky * win.dilation_h) as isize - g.y.pad_before as isize;
                    if iy < 0 || iy >= i.h as isize || lo >= hi {
                        f(t, oy, None);
                    } else {
                        let base = (iy * i.w as isize + dx) * c as isize + ci as isize;
                        f(t, oy, Some((lo, hi, base, win.stride_w * c)));
                    }
                }
            }
        }
    }
}

/// Builds the tap-major im2col matrix `col[t·(m·P) + b·P + p]` of `m` images.
fn im2col_taps(x: &[f32], m: usize, i: Shape, win: &Window, g: &Geometry, o: Shape, col: &mut [f32]) {
    let p = o.h * o.w;
    for_each_tap_row(i, win, g, o, |t, oy, run| {
        for b in 0..m {
            let at = t * m * p + b * p + oy * o.w;
            let dst = &mut col[at..at + o.w];
            let Some((lo, hi, base, step)) = run else {
                dst.fill(0.0);
                continue;
            };
            let xb = &x[b * i.len()..(b + 1) * i.len()];
            dst[..lo].fill(0.0);
            dst[hi..].fill(0.0);
            // `base + lo·step` is in bounds by construction of `lo..hi`.
            let s0 = (base + (lo * step) as isize) as usize;
            if step == 1 {
                dst[lo..hi].copy_from_slice(&xb[s0..s0 + hi - lo]);
            } else {
                dst[lo..hi].iter_mut().zip(xb[s0..].iter().step_by(step)).for_each(|(d, v)| *d = *v);
            }
        }
    });
}

/// Adds a tap-major im2col gradient (see [`im2col_taps`]) back onto the input gradient.
fn col2im_taps(dcol: &[f32], m: usize, i: Shape, win: &Window, g: &Geometry, o: Shape, dx: &mut [f32]) {
    let p = o.h * o.w;
    for_each_tap_row(i, win, g, o, |t, oy, run| {
        let Some((lo, hi, base, step)) = run else { return };
        let s0 = (base + (lo * step) as isize) as usize;
        for b in 0..m {
            let at = t * m * p + b * p + oy * o.w;
            let src = &dcol[at + lo..at + hi];
            let db = &mut dx[b * i.len()..(b + 1) * i.len()];
            db[s0..].iter_mut().step_by(step).zip(src).for_each(|(d, v)| *d += v);
        }
    });
}

/// Calls `f(output_offset, input_offset, weight_offset)` for every output pixel and every
/// in-bounds kernel tap of its window, in `(oy, ox, ky, kx)` order. Offsets are to the first
/// channel: `(oy·W' + ox)·C_out`, `(iy·W + ix)·C_in` and `(ky·kw + kx)·C_out`.
fn depthwise_windows(i: Shape, o: Shape, win: &Window, g: &Geometry, mut f: impl FnMut(usize, usize, usize)) {
    for oy in 0..o.h {
        let y0 = (oy * win.stride_h) as isize - g.y.pad_before as isize;
        let (ky0, ky1) = tap_range(y0, win.kernel_h, win.dilation_h, i.h);
        for ox in 0..o.w {
            let x0 = (ox * win.stride_w) as isize - g.x.pad_before as isize;
            let (kx0, kx1) = tap_range(x0, win.kernel_w, win.dilation_w, i.w);
            for ky in ky0..ky1 {
                let iy = (y0 + (ky * win.dilation_h) as isize) as usize;
                for kx in kx0..kx1 {
                    let ix = (x0 + (kx * win.dilation_w) as isize) as usize;
                    f((oy * o.w + ox) * o.c, (iy * i.w + ix) * i.c, (ky * win.kernel_w + kx) * o.c);
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
/// Each label scores one row of `k` logits: one per image for classification, one per cell or
/// pixel for a dense task.
pub fn softmax_cross_entropy(logits: &[f32], labels: &[u8], k: usize, grad: &mut [f32]) -> f32 {
    weighted_cross_entropy(logits, labels, k, None, grad)
}

/// Localization's loss for a batch: softmax cross-entropy of the class scores (the first `k` of
/// each row of `k + 4`) plus `box_weight` × the smooth-L1 (Huber, δ = 1) distance of the last 4
/// from `boxes` (the targets in the same units), averaged over the 4 numbers. Returns the mean
/// loss and writes its gradient (already / n) into `grad`.
pub fn localize_loss(
    out: &[f32],
    labels: &[u8],
    boxes: &[[f32; 4]],
    k: usize,
    box_weight: f32,
    grad: &mut [f32],
) -> f32 {
    let n = labels.len();
    let stride = k + 4;
    let mut loss = 0.0;
    for (b, row) in out.chunks_exact(stride).enumerate() {
        let g = &mut grad[b * stride..(b + 1) * stride];
        loss += weighted_cross_entropy(&row[..k], &labels[b..b + 1], k, None, &mut g[..k]);
        for (j, (&p, &t)) in row[k..].iter().zip(&boxes[b]).enumerate() {
            let d = p - t;
            let (l, dl) = if d.abs() < 1.0 { (0.5 * d * d, d) } else { (d.abs() - 0.5, d.signum()) };
            loss += box_weight * l / 4.0;
            g[k + j] = box_weight * dl / 4.0;
        }
        g.iter_mut().for_each(|v| *v /= n as f32);
    }
    loss / n as f32
}

/// [`softmax_cross_entropy`] with a weight per true class (FOMO's weighting of object cells
/// against the background): the mean over rows of `w[y] · CE`, and its gradient.
pub fn weighted_cross_entropy(
    logits: &[f32],
    labels: &[u8],
    k: usize,
    weights: Option<&[f32]>,
    grad: &mut [f32],
) -> f32 {
    let n = labels.len();
    let mut loss = 0.0;
    for (b, row) in logits.chunks_exact(k).enumerate() {
        let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
        let y = labels[b] as usize;
        let wy = weights.map_or(1.0, |w| w[y]);
        loss += -wy * (row[y] - max - sum.ln());
        for (j, g) in grad[b * k..(b + 1) * k].iter_mut().enumerate() {
            let p = (row[j] - max).exp() / sum;
            *g = wy * (p - if j == y { 1.0 } else { 0.0 }) / n as f32;
        }
    }
    loss / n as f32
}
