//! Pooling: max, average and L2 over windows (padding taps excluded, as in the runtime), and
//! global average pooling.

use super::{Op, Pass};
use crate::model::spec::LayerSpec;
use crate::rng::Rng;
use crate::train::net::geometry;
use microcnn::shape::Geometry;
use microcnn::{Shape, Window};

/// Max pooling; remembers which tap of each window held the maximum.
#[derive(Clone, Debug, Default)]
pub struct MaxPool {
    argmax: Vec<u32>,
}

impl Op for MaxPool {
    fn forward(&mut self, p: Pass, x: &[f32], _train: bool, _rng: &mut Rng) -> Vec<f32> {
        let (i, o) = (p.r.input, p.r.output);
        let (win, g) = geometry(p.r).expect("validated");
        let c = i.c;
        let mut y = vec![0.0f32; p.n * o.len()];
        self.argmax.clear();
        self.argmax.resize(y.len(), 0);
        for ((xb, yb), ab) in
            x.chunks_exact(i.len()).zip(y.chunks_exact_mut(o.len())).zip(self.argmax.chunks_exact_mut(o.len()))
        {
            // Whole channel rows per tap, so the channel loops vectorise.
            windows(i, o, &win, &g, |oi, taps| {
                let out = &mut yb[oi * c..(oi + 1) * c];
                let rows = taps.iter().map(|&t| &xb[t * c..(t + 1) * c]);
                out.fill(f32::NEG_INFINITY);
                for row in rows.clone() {
                    out.iter_mut().zip(row).for_each(|(o, &v)| *o = if v > *o { v } else { *o });
                }
                // Which tap of the window holds the maximum (the first, when several do: taps
                // are visited last to first).
                let arg = &mut ab[oi * c..(oi + 1) * c];
                for (j, row) in rows.enumerate().rev() {
                    for ((a, &o), &v) in arg.iter_mut().zip(&*out).zip(row) {
                        *a = if v == o { j as u32 } else { *a };
                    }
                }
            });
        }
        y
    }

    fn backward(&mut self, p: Pass, _x: &[f32], dy: &[f32], _need_dx: bool) -> Vec<f32> {
        // The gradient goes to the tap holding the window's maximum (the first of equal maxima,
        // recorded by the forward pass).
        let (i, o) = (p.r.input, p.r.output);
        let (win, g) = geometry(p.r).expect("validated");
        let (c, ilen, olen) = (i.c, i.len(), o.len());
        let mut dx = vec![0.0f32; p.n * ilen];
        for ((dxb, ab), dyb) in dx.chunks_exact_mut(ilen).zip(self.argmax.chunks_exact(olen)).zip(dy.chunks_exact(olen))
        {
            windows(i, o, &win, &g, |oi, taps| {
                for ch in 0..c {
                    // (A window lying wholly in padding has no taps and no gradient.)
                    if let Some(&t) = taps.get(ab[oi * c + ch] as usize) {
                        dxb[t * c + ch] += dyb[oi * c + ch];
                    }
                }
            });
        }
        dx
    }
}

/// Average pooling, or L2 pooling (root of the mean square), which keeps its output for the
/// backward pass.
#[derive(Clone, Debug, Default)]
pub struct AvgPool {
    output: Vec<f32>,
}

impl Op for AvgPool {
    fn forward(&mut self, p: Pass, x: &[f32], train: bool, _rng: &mut Rng) -> Vec<f32> {
        let (i, o) = (p.r.input, p.r.output);
        let (win, g) = geometry(p.r).expect("validated");
        let l2 = matches!(p.r.spec, LayerSpec::L2Pool { .. });
        let c = i.c;
        let mut y = vec![0.0f32; p.n * o.len()];
        for (xb, yb) in x.chunks_exact(i.len()).zip(y.chunks_exact_mut(o.len())) {
            windows(i, o, &win, &g, |oi, taps| {
                let out = &mut yb[oi * c..(oi + 1) * c];
                for &t in taps {
                    let row = &xb[t * c..(t + 1) * c];
                    out.iter_mut().zip(row).for_each(|(o, &v)| *o += if l2 { v * v } else { v });
                }
                let cnt = taps.len() as f32;
                out.iter_mut().for_each(|o| *o = if l2 { (*o / cnt).sqrt() } else { *o / cnt });
            });
        }
        if train && l2 {
            self.output.clone_from(&y);
        }
        y
    }

    fn backward(&mut self, p: Pass, x: &[f32], dy: &[f32], _need_dx: bool) -> Vec<f32> {
        let (i, o) = (p.r.input, p.r.output);
        let (win, g) = geometry(p.r).expect("validated");
        let l2 = matches!(p.r.spec, LayerSpec::L2Pool { .. });
        let (c, ilen, olen) = (i.c, i.len(), o.len());
        let yv = &self.output;
        let mut dx = vec![0.0f32; p.n * ilen];
        for b in 0..p.n {
            windows(i, o, &win, &g, |oi, taps| {
                let cnt = taps.len() as f32;
                for ch in 0..c {
                    let out = b * olen + oi * c + ch;
                    for &t in taps {
                        let at = b * ilen + t * c + ch;
                        dx[at] += match l2 {
                            // d sqrt(Σx²/n) / dx = x / (n · y); zero where the window is all zero.
                            true if yv[out] > 0.0 => dy[out] * x[at] / (cnt * yv[out]),
                            true => 0.0,
                            false => dy[out] / cnt,
                        };
                    }
                }
            });
        }
        dx
    }
}

/// Global average pooling: one mean per channel.
#[derive(Clone, Debug)]
pub struct GlobalAvgPool;

impl Op for GlobalAvgPool {
    fn forward(&mut self, p: Pass, x: &[f32], _train: bool, _rng: &mut Rng) -> Vec<f32> {
        let (c, hw) = (p.r.input.c, p.r.input.h * p.r.input.w);
        let mut y = vec![0.0f32; p.n * c];
        for (xb, yb) in x.chunks_exact(hw * c).zip(y.chunks_exact_mut(c)) {
            for px in xb.chunks_exact(c) {
                yb.iter_mut().zip(px).for_each(|(y, &v)| *y += v / hw as f32);
            }
        }
        y
    }

    fn backward(&mut self, p: Pass, _x: &[f32], dy: &[f32], _need_dx: bool) -> Vec<f32> {
        let (c, hw) = (p.r.input.c, p.r.input.h * p.r.input.w);
        let mut dx = vec![0.0f32; p.n * hw * c];
        for (dxb, dyb) in dx.chunks_exact_mut(hw * c).zip(dy.chunks_exact(c)) {
            for px in dxb.chunks_exact_mut(c) {
                px.iter_mut().zip(dyb).for_each(|(g, &d)| *g = d / hw as f32);
            }
        }
        dx
    }
}

/// Calls `f(output_pixel, in_bounds_pixels)` for each pooling window (pixels as `y·W + x`).
fn windows(i: Shape, o: Shape, win: &Window, g: &Geometry, mut f: impl FnMut(usize, &[usize])) {
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

#[cfg(test)]
mod tests {
    use super::super::assert_gradients;
    use crate::train::net::Net;

    const WIDEN: &str = "[[layers]]\ntype = \"pointwise\"\nfilters = 4\n";

    #[test]
    fn gradients_max_pool() {
        assert_gradients(
            &format!("{WIDEN}[[layers]]\ntype = \"max_pool\"\nsize = 3\nstride = 1\npadding = \"same\""),
            [7, 6, 2],
        );
        assert_gradients(&format!("{WIDEN}[[layers]]\ntype = \"max_pool\"\nsize = 2"), [8, 6, 2]);
    }

    #[test]
    fn gradients_avg_and_l2_pool() {
        assert_gradients(
            &format!("{WIDEN}[[layers]]\ntype = \"avg_pool\"\nsize = 2\nstride = 1\npadding = \"same\""),
            [7, 6, 2],
        );
        assert_gradients(&format!("{WIDEN}[[layers]]\ntype = \"l2_pool\"\nsize = 2\nstride = 1"), [7, 6, 2]);
    }

    #[test]
    fn gradients_global_avg_pool() {
        assert_gradients(&format!("{WIDEN}[[layers]]\ntype = \"global_avg_pool\""), [7, 6, 2]);
    }

    /// Max pooling hands each window's gradient to its first maximum when several taps tie, and to
    /// nothing else.
    #[test]
    fn max_pool_gradient_goes_to_the_first_of_tied_maxima() {
        let spec = "name = \"tie\"\ninput = [2, 4, 2]\n[[layers]]\ntype = \"max_pool\"\nsize = 2\n[[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"dense\"\nunits = 2\n";
        let mut net = Net::new(crate::model::spec::ModelSpec::from_toml(spec).unwrap(), 1).unwrap();
        // Two 2×2 windows, two channels (layout y, x, c). Window 0: channel 0 ties everywhere at 1,
        // channel 1 has its maximum 5 at the last tap. Window 1: channel 0 ties at 3 on taps 1 and 2.
        #[rustfmt::skip]
        let x = vec![
            1.0, 0.0,   1.0, 0.0,   0.0, 0.0,   3.0, 0.0,
            1.0, 0.0,   1.0, 5.0,   3.0, 0.0,   2.0, 9.0,
        ];
        let y = net.layers[0].forward(x, 1, true, &mut crate::rng::Rng::new(0));
        assert_eq!(y, vec![1.0, 5.0, 3.0, 9.0]);
        let dx = net.layers[0].backward(&mut [10.0, 20.0, 30.0, 40.0], 1);
        #[rustfmt::skip]
        let want = vec![
            10.0, 0.0,   0.0, 0.0,    0.0, 0.0,   30.0, 0.0,
            0.0, 0.0,    0.0, 20.0,   0.0, 0.0,   0.0, 40.0,
        ];
        assert_eq!(dx, want);
    }
}
