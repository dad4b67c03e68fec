//! Training losses and their gradients with respect to the network output.

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
