//! Blocks of inner layers: residual (`x + f(x)`) and U-Net skip (`concat(f(x), x)` per pixel).

use super::{Op, Pass};
use crate::model::spec::Resolved;
use crate::rng::Rng;
use crate::train::net::Layer;

/// Builds and runs a block's inner layers.
fn inner_layers(r: &Resolved, rng: &mut Rng) -> Vec<Layer> {
    r.children.iter().map(|c| Layer::new(c.clone(), rng)).collect()
}

fn forward_inner(layers: &mut [Layer], x: &[f32], n: usize, train: bool, rng: &mut Rng) -> Vec<f32> {
    let mut a = x.to_vec();
    for c in layers {
        c.need_input_grad = true;
        a = c.forward(a, n, train, rng);
    }
    a
}

fn backward_inner(layers: &mut [Layer], dy: Vec<f32>, n: usize) -> Vec<f32> {
    let mut d = dy;
    for c in layers.iter_mut().rev() {
        d = c.backward(&mut d, n);
    }
    d
}

/// Residual block: `x + f(x)`, then the block's fused activation.
#[derive(Clone, Debug)]
pub struct Residual {
    layers: Vec<Layer>,
}

impl Residual {
    /// The block with freshly initialised inner layers.
    pub fn new(r: &Resolved, rng: &mut Rng) -> Self {
        Residual { layers: inner_layers(r, rng) }
    }
}

impl Op for Residual {
    fn forward(&mut self, p: Pass, x: &[f32], train: bool, rng: &mut Rng) -> Vec<f32> {
        let mut y = forward_inner(&mut self.layers, x, p.n, train, rng);
        y.iter_mut().zip(x).for_each(|(v, &skip)| *v += skip);
        y
    }

    fn backward(&mut self, p: Pass, _x: &[f32], dy: &[f32], _need_dx: bool) -> Vec<f32> {
        // d(x + f(x)) = dy + f'(x)ᵀ dy
        let mut dx = backward_inner(&mut self.layers, dy.to_vec(), p.n);
        dx.iter_mut().zip(dy).for_each(|(g, &d)| *g += d);
        dx
    }

    fn children(&self) -> &[Layer] {
        &self.layers
    }

    fn children_mut(&mut self) -> &mut [Layer] {
        &mut self.layers
    }
}

/// Skip block: per pixel, the inner layers' channels followed by the block input's.
#[derive(Clone, Debug)]
pub struct Skip {
    layers: Vec<Layer>,
}

impl Skip {
    /// The block with freshly initialised inner layers.
    pub fn new(r: &Resolved, rng: &mut Rng) -> Self {
        Skip { layers: inner_layers(r, rng) }
    }
}

impl Op for Skip {
    fn forward(&mut self, p: Pass, x: &[f32], train: bool, rng: &mut Rng) -> Vec<f32> {
        let (i, o) = (p.r.input, p.r.output);
        let a = forward_inner(&mut self.layers, x, p.n, train, rng);
        let (ci, cx) = (o.c - i.c, i.c);
        let mut y = vec![0.0f32; p.n * o.len()];
        for ((dst, inner), skip) in y.chunks_exact_mut(o.c).zip(a.chunks_exact(ci)).zip(x.chunks_exact(cx)) {
            dst[..ci].copy_from_slice(inner);
            dst[ci..].copy_from_slice(skip);
        }
        y
    }

    fn backward(&mut self, p: Pass, _x: &[f32], dy: &[f32], _need_dx: bool) -> Vec<f32> {
        // The inner channels' gradient goes back through the inner layers; the input's channels
        // pass theirs straight to the input.
        let (i, o) = (p.r.input, p.r.output);
        let (ci, cx) = (o.c - i.c, i.c);
        let d: Vec<f32> = dy.chunks_exact(o.c).flat_map(|px| px[..ci].iter().copied()).collect();
        let mut dx = backward_inner(&mut self.layers, d, p.n);
        for (g, px) in dx.chunks_exact_mut(cx).zip(dy.chunks_exact(o.c)) {
            g.iter_mut().zip(&px[ci..]).for_each(|(g, &d)| *g += d);
        }
        dx
    }

    fn children(&self) -> &[Layer] {
        &self.layers
    }

    fn children_mut(&mut self) -> &mut [Layer] {
        &mut self.layers
    }
}

#[cfg(test)]
mod tests {
    use super::super::assert_gradients;

    #[test]
    fn gradients_residual_block() {
        assert_gradients("[[layers]]\ntype = \"pointwise\"\nfilters = 3\n[[layers]]\ntype = \"residual\"\nactivation = \"relu\"\nlayers = [ { type = \"depthwise\", kernel = 3, padding = \"same\", activation = \"relu6\" }, { type = \"pointwise\", filters = 3 } ]", [7, 6, 2]);
    }

    #[test]
    fn gradients_skip_block() {
        assert_gradients("[[layers]]\ntype = \"pointwise\"\nfilters = 3\n[[layers]]\ntype = \"skip\"\nlayers = [ { type = \"conv\", filters = 2, kernel = 3, padding = \"same\", activation = \"relu\" } ]", [7, 6, 2]);
    }

    /// A two-level U-Net: skip blocks nested, downsampling inside, upsampling back.
    #[test]
    fn gradients_nested_skip_blocks() {
        let unet = r#"
[[layers]]
type = "conv"
filters = 3
kernel = 3
padding = "same"
activation = "relu"
[[layers]]
type = "skip"
[[layers.layers]]
type = "conv"
filters = 4
kernel = 3
stride = 2
padding = "same"
activation = "relu"
[[layers.layers]]
type = "skip"
layers = [ { type = "conv", filters = 2, kernel = 3, stride = 2, padding = "same" }, { type = "upsample", factor = 2 } ]
[[layers.layers]]
type = "upsample"
factor = 2
[[layers]]
type = "pointwise"
filters = 3
"#;
        assert_gradients(unet, [8, 8, 2]);
    }
}
