//! Convolution and 1×1 (pointwise) convolution: im2col + SGEMM, with three im2col layouts.

use super::{add_bias, bias_grad, gemm_strided, weight_and_bias, Op, Pass};
use crate::model::spec::{LayerSpec, Resolved};
use crate::rng::Rng;
use crate::train::net::{geometry, Param};
use microcnn::shape::{tap_range, Geometry};
use microcnn::{Shape, Window};

/// A convolution layer's reusable buffers.
#[derive(Clone, Debug, Default)]
pub struct Conv {
    /// The im2col matrix of the current chunk of images.
    col: Vec<f32>,
    /// Its gradient (allocating it per batch costs page faults).
    dcol: Vec<f32>,
}

impl Op for Conv {
    fn params(&self, r: &Resolved, rng: &mut Rng) -> Vec<Param> {
        let (i, o) = (r.input, r.output);
        let (kh, kw) = match &r.spec {
            LayerSpec::Conv { kernel, .. } => kernel.hw(),
            _ => (1, 1),
        };
        let k = kh * kw * i.c;
        weight_and_bias(r, vec![o.c, kh, kw, i.c], k, o.c, rng)
    }

    fn forward(&mut self, p: Pass, x: &[f32], _train: bool, _rng: &mut Rng) -> Vec<f32> {
        let (r, n) = (p.r, p.n);
        let (i, o) = (r.input, r.output);
        let olen = o.len();
        let (win, g) = geometry(r).expect("validated");
        let k = win.kernel_h * win.kernel_w * i.c;
        let pix = o.h * o.w;
        // Start from the bias; chunks of images small enough for the im2col matrix to stay in
        // cache, one GEMM per chunk: [m·P × K] · [K × OC], added on (beta = 1).
        let mut y = vec![0.0f32; n * olen];
        add_bias(&mut y, &p.params[1].value);
        let layout = ColLayout::of(r, &win, &g);
        let chunk = conv_chunk(n, pix * k);
        for b0 in (0..n).step_by(chunk) {
            let m = chunk.min(n - b0);
            let col = im2col_chunk(&mut self.col, layout, x, b0, m, (i, o), &win, &g);
            let w = (&p.params[0].value[..], 1, k as isize);
            let yc = &mut y[b0 * olen..(b0 + m) * olen];
            gemm_strided(m * pix, k, o.c, col, w, 1.0, (yc, o.c as isize, 1));
        }
        y
    }

    fn backward(&mut self, p: Pass, x: &[f32], dy: &[f32], need_dx: bool) -> Vec<f32> {
        let (r, n) = (p.r, p.n);
        let (i, o) = (r.input, r.output);
        let (ilen, olen) = (i.len(), o.len());
        let (win, g) = geometry(r).expect("validated");
        let k = win.kernel_h * win.kernel_w * i.c;
        let pix = o.h * o.w;
        let mut dx = vec![0.0f32; n * ilen];
        let (wp, bp) = p.params.split_at_mut(1);
        bias_grad(&mut bp[0].grad, dy);
        // Per chunk (the im2col matrix is rebuilt from the stored input rather than kept for the
        // whole batch): dW += dYᵀ·col, dcol = dY·W, then col2im.
        let layout = ColLayout::of(r, &win, &g);
        let chunk = conv_chunk(n, pix * k);
        for b0 in (0..n).step_by(chunk) {
            let m = chunk.min(n - b0);
            let dyc = &dy[b0 * olen..(b0 + m) * olen];
            let col = im2col_chunk(&mut self.col, layout, x, b0, m, (i, o), &win, &g);
            gemm_strided(o.c, m * pix, k, (dyc, 1, o.c as isize), col, 1.0, (&mut wp[0].grad, k as isize, 1));
            if !need_dx {
                continue;
            }
            let w = (&wp[0].value[..], k as isize, 1);
            let dxc = &mut dx[b0 * ilen..(b0 + m) * ilen];
            let (rs, cs) = layout.strides(m * pix, k);
            let dyc = (dyc, o.c as isize, 1);
            if layout == ColLayout::Direct {
                gemm_strided(m * pix, o.c, k, dyc, w, 0.0, (dxc, rs, cs));
                continue;
            }
            self.dcol.resize(m * pix * k, 0.0);
            let dc = &mut self.dcol[..m * pix * k];
            gemm_strided(m * pix, o.c, k, dyc, w, 0.0, (&mut *dc, rs, cs));
            if layout == ColLayout::Tap {
                col2im_taps(dc, m, i, &win, &g, o, dxc);
            } else {
                for (dcb, dxb) in dc.chunks_exact(pix * k).zip(dxc.chunks_exact_mut(ilen)) {
                    col2im(dcb, i, &win, &g, o, dxb);
                }
            }
        }
        dx
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
pub(super) fn im2col(x: &[f32], i: Shape, win: &Window, g: &Geometry, o: Shape, col: &mut [f32]) {
    for_each_run(i, win, g, o, |at, src, len| match src {
        Some(s) => col[at..at + len].copy_from_slice(&x[s..s + len]),
        None => col[at..at + len].fill(0.0),
    });
}

/// Adds the im2col gradient back onto the input gradient.
pub(super) fn col2im(dcol: &[f32], i: Shape, win: &Window, g: &Geometry, o: Shape, dx: &mut [f32]) {
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

#[cfg(test)]
mod tests {
    use super::super::assert_gradients;

    #[test]
    fn gradients_conv_same_rect_stride_relu6() {
        assert_gradients("[[layers]]\ntype = \"conv\"\nfilters = 3\nkernel = [3, 2]\nstride = [2, 1]\npadding = \"same\"\nactivation = \"relu6\"", [7, 6, 2]);
    }

    /// More than 4 input channels: the pixel-major im2col layout.
    #[test]
    fn gradients_conv_many_channels_pixel_major_path() {
        let widen = "[[layers]]\ntype = \"pointwise\"\nfilters = 6\n";
        assert_gradients(&format!("{widen}[[layers]]\ntype = \"conv\"\nfilters = 3\nkernel = [3, 2]\nstride = [2, 1]\npadding = \"same\"\nactivation = \"relu6\""), [7, 6, 2]);
        assert_gradients(
            &format!(
                "{widen}[[layers]]\ntype = \"conv\"\nfilters = 2\nkernel = 2\ndilation = 2\npadding = [1, 0, 1, 1]"
            ),
            [7, 6, 2],
        );
    }

    #[test]
    fn gradients_conv_explicit_padding_dilation() {
        assert_gradients(
            "[[layers]]\ntype = \"conv\"\nfilters = 2\nkernel = 2\ndilation = 2\npadding = [1, 0, 1, 1]",
            [7, 6, 2],
        );
    }

    /// 1×1 convolutions: stride 1 reads the input as the matrix (no im2col), stride 2 does not.
    #[test]
    fn gradients_pointwise() {
        assert_gradients("[[layers]]\ntype = \"pointwise\"\nfilters = 4\nactivation = \"relu\"", [7, 6, 2]);
        assert_gradients("[[layers]]\ntype = \"pointwise\"\nfilters = 3\nstride = 2", [7, 7, 2]);
    }
}
