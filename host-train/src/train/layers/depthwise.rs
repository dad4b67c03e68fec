//! Depthwise convolution (channel multiplier `m`: output channel `c·m + j` reads input channel c).

use super::{bias_grad, weight_and_bias, Op, Pass};
use crate::model::spec::{LayerSpec, Resolved};
use crate::rng::Rng;
use crate::train::net::{geometry, Param};
use microcnn::shape::{tap_range, Geometry};
use microcnn::{Shape, Window};

/// Depthwise convolution (no state between passes).
#[derive(Clone, Debug)]
pub struct Depthwise;

fn multiplier(r: &Resolved) -> usize {
    match r.spec {
        LayerSpec::Depthwise { multiplier, .. } => multiplier,
        _ => unreachable!("a depthwise layer"),
    }
}

impl Op for Depthwise {
    fn params(&self, r: &Resolved, rng: &mut Rng) -> Vec<Param> {
        let (kh, kw) = match &r.spec {
            LayerSpec::Depthwise { kernel, .. } => kernel.hw(),
            _ => unreachable!("a depthwise layer"),
        };
        let oc = r.output.c;
        weight_and_bias(r, vec![1, kh, kw, oc], kh * kw, oc, rng)
    }

    fn forward(&mut self, p: Pass, x: &[f32], _train: bool, _rng: &mut Rng) -> Vec<f32> {
        let (i, o) = (p.r.input, p.r.output);
        let (win, g) = geometry(p.r).expect("validated");
        let (w, bias) = (&p.params[0].value, &p.params[1].value);
        let (ic, oc, m) = (i.c, o.c, multiplier(p.r));
        let mut y = vec![0.0f32; p.n * o.len()];
        for (xb, yb) in x.chunks_exact(i.len()).zip(y.chunks_exact_mut(o.len())) {
            // Whole channel rows per tap.
            windows(i, o, &win, &g, |out, inp, wt| {
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
            super::add_bias(yb, bias);
        }
        y
    }

    fn backward(&mut self, p: Pass, x: &[f32], dy: &[f32], _need_dx: bool) -> Vec<f32> {
        let (i, o) = (p.r.input, p.r.output);
        let (win, g) = geometry(p.r).expect("validated");
        let (ilen, olen) = (i.len(), o.len());
        let (ic, oc, m) = (i.c, o.c, multiplier(p.r));
        let (wp, bp) = p.params.split_at_mut(1);
        let (w, gw) = (&wp[0].value, &mut wp[0].grad);
        let mut dx = vec![0.0f32; p.n * ilen];
        for ((xb, dxb), dyb) in x.chunks_exact(ilen).zip(dx.chunks_exact_mut(ilen)).zip(dy.chunks_exact(olen)) {
            windows(i, o, &win, &g, |out, inp, wt| {
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
        }
        bias_grad(&mut bp[0].grad, dy);
        dx
    }
}

/// Calls `f(output_offset, input_offset, weight_offset)` for every output pixel and every
/// in-bounds kernel tap of its window, in `(oy, ox, ky, kx)` order. Offsets are to the first
/// channel: `(oy·W' + ox)·C_out`, `(iy·W + ix)·C_in` and `(ky·kw + kx)·C_out`.
fn windows(i: Shape, o: Shape, win: &Window, g: &Geometry, mut f: impl FnMut(usize, usize, usize)) {
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

#[cfg(test)]
mod tests {
    use super::super::assert_gradients;

    #[test]
    fn gradients_depthwise_multiplier_2() {
        assert_gradients(
            "[[layers]]\ntype = \"depthwise\"\nkernel = 3\nmultiplier = 2\npadding = [1, 1, 0, 1]\nactivation = \"relu\"",
            [7, 6, 2],
        );
    }

    #[test]
    fn gradients_depthwise_stride_2_same() {
        assert_gradients(
            "[[layers]]\ntype = \"depthwise\"\nkernel = [3, 2]\nstride = 2\npadding = \"same\"",
            [7, 6, 3],
        );
    }
}
