//! Fully connected layer: `y = x·Wᵀ + b` over each image's flattened input.

use super::{bias_grad, gemm, weight_and_bias, Op, Pass};
use crate::model::spec::Resolved;
use crate::rng::Rng;
use crate::train::net::Param;

/// Dense layer (no state between passes); weights `[units][depth]`.
#[derive(Clone, Debug)]
pub struct Dense;

impl Op for Dense {
    fn params(&self, r: &Resolved, rng: &mut Rng) -> Vec<Param> {
        let (d, units) = (r.input.len(), r.output.len());
        weight_and_bias(r, vec![units, d], d, units, rng)
    }

    fn forward(&mut self, p: Pass, x: &[f32], _train: bool, _rng: &mut Rng) -> Vec<f32> {
        let (d, units) = (p.r.input.len(), p.r.output.len());
        let mut y = vec![0.0f32; p.n * units];
        let w = (&p.params[0].value[..], 1, d as isize);
        gemm(p.n, d, units, (x, d as isize, 1), w, 0.0, &mut y);
        super::add_bias(&mut y, &p.params[1].value);
        y
    }

    fn backward(&mut self, p: Pass, x: &[f32], dy: &[f32], need_dx: bool) -> Vec<f32> {
        let (d, units, n) = (p.r.input.len(), p.r.output.len(), p.n);
        let (wp, bp) = p.params.split_at_mut(1);
        // dW += dYᵀ·X, db += Σ dY, dX = dY·W.
        gemm(units, n, d, (dy, 1, units as isize), (x, d as isize, 1), 1.0, &mut wp[0].grad);
        bias_grad(&mut bp[0].grad, dy);
        let mut dx = vec![0.0f32; n * d];
        if need_dx {
            gemm(n, units, d, (dy, units as isize, 1), (&wp[0].value, d as isize, 1), 0.0, &mut dx);
        }
        dx
    }
}

#[cfg(test)]
mod tests {
    use super::super::assert_gradients;

    /// Two dense layers (the checker appends the second), with a ReLU between.
    #[test]
    fn gradients_dense() {
        assert_gradients(
            "[[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"dense\"\nunits = 5\nactivation = \"relu\"",
            [3, 2, 2],
        );
    }
}
