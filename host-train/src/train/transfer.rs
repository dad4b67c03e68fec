//! Transfer learning: keep a trained model's feature layers, replace the classifier head for a
//! new number of classes, and freeze layers by name or all but the last N.

use crate::model::spec::LayerSpec;
use crate::rng::Rng;
use crate::train::net::{Layer, Net};
use anyhow::{bail, Result};

/// Replaces the last dense layer with a freshly initialised one of `classes` units (and new
/// class names); the layers before it keep their trained weights.
pub fn replace_head(net: &mut Net, classes: usize, names: Vec<String>, seed: u64) -> Result<()> {
    let Some(pos) = net.spec.layers.iter().rposition(|l| matches!(l, LayerSpec::Dense { .. })) else {
        bail!("the model has no dense layer to replace");
    };
    if let LayerSpec::Dense { units, .. } = &mut net.spec.layers[pos] {
        *units = classes;
    }
    net.spec.classes = names;
    let resolved = net.spec.resolve()?;
    let mut rng = Rng::new(seed);
    // Layers after the head (softmax) have no weights; rebuild them and the head.
    for (i, r) in resolved.into_iter().enumerate().skip(pos) {
        net.layers[i] = Layer::new(r, &mut rng);
    }
    Ok(())
}

/// Freezes the named layers.
pub fn freeze_named(net: &mut Net, names: &[String]) -> Result<()> {
    for n in names {
        let Some(l) = net.layers.iter_mut().find(|l| &l.r.name == n) else {
            let known: Vec<&str> = net.layers.iter().filter(|l| l.has_params()).map(|l| l.r.name.as_str()).collect();
            bail!("no layer named `{n}` to freeze; layers with weights: {}", known.join(", "));
        };
        l.set_frozen(true);
    }
    Ok(())
}

/// Freezes every weighted layer except the last `n`.
pub fn freeze_all_but_last(net: &mut Net, n: usize) {
    let weighted: Vec<usize> = net.layers.iter().enumerate().filter(|(_, l)| l.has_params()).map(|(i, _)| i).collect();
    let keep = weighted.len().saturating_sub(n);
    for &i in &weighted[..keep] {
        net.layers[i].set_frozen(true);
    }
}

/// Unfreezes everything.
pub fn unfreeze_all(net: &mut Net) {
    net.params_mut().for_each(|p| p.frozen = false);
}

/// Names of frozen layers.
pub fn frozen_layers(net: &Net) -> Vec<String> {
    net.layers.iter().filter(|l| l.is_frozen()).map(|l| l.r.name.clone()).collect()
}

/// Clears the optimiser moments so fine-tuning starts a fresh optimiser (the pre-training
/// moments, with a restarted bias correction, would otherwise throw the weights far off).
pub fn reset_optimizer(net: &mut Net) {
    for p in net.params_mut() {
        p.m.iter_mut().for_each(|v| *v = 0.0);
        p.v.iter_mut().for_each(|v| *v = 0.0);
    }
}

/// Re-initialises the last `n` weighted layers (beyond the head that [`replace_head`] already
/// renewed), keeping only the earlier feature extractor from pre-training.
pub fn reinit_last(net: &mut Net, n: usize, seed: u64) {
    let weighted: Vec<usize> = net.layers.iter().enumerate().filter(|(_, l)| l.has_params()).map(|(i, _)| i).collect();
    let mut rng = Rng::new(seed ^ 0x5EED);
    for &i in weighted.iter().rev().take(n) {
        let r = net.layers[i].r.clone();
        net.layers[i] = Layer::new(r, &mut rng);
    }
}
