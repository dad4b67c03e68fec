//! Nearest-neighbour upsampling by an integer factor (TFLite's RESIZE_NEAREST_NEIGHBOR with
//! `align_corners` and `half_pixel_centers` off).

use super::{Op, Pass};
use crate::model::spec::{LayerSpec, Resolved};
use crate::rng::Rng;

/// Upsampling (no state between passes).
#[derive(Clone, Debug)]
pub struct Upsample;

fn factor(r: &Resolved) -> usize {
    match r.spec {
        LayerSpec::Upsample { factor } => factor,
        _ => unreachable!("an upsample layer"),
    }
}

/// Calls `f(output_offset, input_offset)` for every output pixel of one image: output pixel
/// (y, x) copies input pixel (y / f, x / f).
fn pixels(r: &Resolved, mut f: impl FnMut(usize, usize)) {
    let (i, o, k) = (r.input, r.output, factor(r));
    for oy in 0..o.h {
        for ox in 0..o.w {
            f((oy * o.w + ox) * o.c, ((oy / k) * i.w + ox / k) * i.c);
        }
    }
}

impl Op for Upsample {
    fn forward(&mut self, p: Pass, x: &[f32], _train: bool, _rng: &mut Rng) -> Vec<f32> {
        let (i, o, c) = (p.r.input, p.r.output, p.r.input.c);
        let mut y = vec![0.0f32; p.n * o.len()];
        for (xb, yb) in x.chunks_exact(i.len()).zip(y.chunks_exact_mut(o.len())) {
            pixels(p.r, |dst, src| yb[dst..dst + c].copy_from_slice(&xb[src..src + c]));
        }
        y
    }

    fn backward(&mut self, p: Pass, _x: &[f32], dy: &[f32], _need_dx: bool) -> Vec<f32> {
        // An input pixel's gradient is the sum over the f × f outputs that copied it.
        let (i, o, c) = (p.r.input, p.r.output, p.r.input.c);
        let mut dx = vec![0.0f32; p.n * i.len()];
        for (dxb, dyb) in dx.chunks_exact_mut(i.len()).zip(dy.chunks_exact(o.len())) {
            pixels(p.r, |from, to| dxb[to..to + c].iter_mut().zip(&dyb[from..from + c]).for_each(|(g, &d)| *g += d));
        }
        dx
    }
}

#[cfg(test)]
mod tests {
    use super::super::assert_gradients;

    #[test]
    fn gradients_upsample() {
        assert_gradients("[[layers]]\ntype = \"conv\"\nfilters = 3\nkernel = 3\nstride = 2\npadding = \"same\"\n[[layers]]\ntype = \"upsample\"\nfactor = 3\n[[layers]]\ntype = \"conv\"\nfilters = 2\nkernel = 3\nstride = 2\npadding = \"same\"", [7, 6, 2]);
    }
}
