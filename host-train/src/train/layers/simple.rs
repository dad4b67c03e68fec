//! Parameter-free element-wise layers: ReLU / ReLU6 as layers of their own, dropout, and the
//! layers that leave values alone while training (flatten, and a final softmax, which the loss
//! applies).

use super::{Op, Pass};
use crate::model::spec::LayerSpec;
use crate::rng::Rng;

/// `clamp(x, 0, hi)`: ReLU (`hi` = ∞) or ReLU6.
#[derive(Clone, Debug)]
pub struct Clamp(pub f32);

impl Op for Clamp {
    fn forward(&mut self, _p: Pass, x: &[f32], _train: bool, _rng: &mut Rng) -> Vec<f32> {
        x.iter().map(|&a| a.clamp(0.0, self.0)).collect()
    }

    fn backward(&mut self, _p: Pass, x: &[f32], dy: &[f32], _need_dx: bool) -> Vec<f32> {
        dy.iter().zip(x).map(|(&d, &a)| if a > 0.0 && a < self.0 { d } else { 0.0 }).collect()
    }
}

/// Inverted dropout: while training, zeroes each value with the layer's rate and scales the
/// others by 1 / (1 − rate); at inference the identity.
#[derive(Clone, Debug, Default)]
pub struct Dropout {
    /// The last training batch's multipliers (0 or 1 / keep).
    mask: Vec<f32>,
}

impl Op for Dropout {
    fn forward(&mut self, p: Pass, x: &[f32], train: bool, rng: &mut Rng) -> Vec<f32> {
        let LayerSpec::Dropout { rate } = p.r.spec else { unreachable!("a dropout layer") };
        self.mask.clear();
        if !train || rate <= 0.0 {
            return x.to_vec();
        }
        let keep = 1.0 - rate;
        self.mask = (0..x.len()).map(|_| if rng.chance(keep) { 1.0 / keep } else { 0.0 }).collect();
        x.iter().zip(&self.mask).map(|(&a, &m)| a * m).collect()
    }

    fn backward(&mut self, _p: Pass, _x: &[f32], dy: &[f32], _need_dx: bool) -> Vec<f32> {
        if self.mask.len() == dy.len() {
            dy.iter().zip(&self.mask).map(|(&d, &m)| d * m).collect()
        } else {
            dy.to_vec()
        }
    }
}

/// Passes values and gradients through unchanged.
#[derive(Clone, Debug)]
pub struct Identity;

impl Op for Identity {
    fn forward(&mut self, _p: Pass, x: &[f32], _train: bool, _rng: &mut Rng) -> Vec<f32> {
        x.to_vec()
    }

    fn backward(&mut self, _p: Pass, _x: &[f32], dy: &[f32], _need_dx: bool) -> Vec<f32> {
        dy.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::super::assert_gradients;
    use crate::rng::Rng;
    use crate::train::net::Net;

    #[test]
    fn gradients_relu_and_relu6() {
        assert_gradients(
            "[[layers]]\ntype = \"pointwise\"\nfilters = 4\n[[layers]]\ntype = \"relu\"\n[[layers]]\ntype = \"relu6\"",
            [7, 6, 2],
        );
    }

    /// Dropout keeps about `1 − rate` of the values, scales them by `1 / (1 − rate)`, passes
    /// the gradient through the same mask, and is the identity at inference.
    #[test]
    fn dropout_masks_scale_and_gradients() {
        let spec = "name = \"d\"\ninput = [10, 10, 10]\n[[layers]]\ntype = \"dropout\"\nrate = 0.25\n[[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"dense\"\nunits = 2\n";
        let mut net = Net::new(crate::model::spec::ModelSpec::from_toml(spec).unwrap(), 1).unwrap();
        let x = vec![2.0f32; 1000];
        let y = net.layers[0].forward(x.clone(), 1, true, &mut Rng::new(3));
        let kept = y.iter().filter(|&&v| v != 0.0).count();
        assert!((700..800).contains(&kept), "kept {kept} of 1000");
        assert!(y.iter().all(|&v| v == 0.0 || (v - 2.0 / 0.75).abs() < 1e-6));
        let dx = net.layers[0].backward(&mut vec![1.0; 1000], 1);
        assert!(dx.iter().zip(&y).all(|(&g, &v)| (g == 0.0) == (v == 0.0)));
        assert_eq!(net.layers[0].forward(x.clone(), 1, false, &mut Rng::new(3)), x);
    }
}
