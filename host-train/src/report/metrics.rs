//! Each task's metric, for the float network and for the int8 model alike: accuracy for
//! classification; precision, recall and F1 of matched object centres for detection; pixel
//! accuracy and mean IoU for segmentation; class accuracy, mean IoU and the share of boxes with
//! IoU ≥ 0.5 for localization.
//!
//! Detection scores the model's int8 heat map with the runtime's own peak finder
//! ([`microcnn::postprocess::find_peaks_i8`]) — what the device runs — and the float network's
//! softmax probabilities quantized to the same int8 scale (1/256, zero point −128) first, so both
//! are judged by one rule.

use crate::data::Dataset;
use crate::model::spec::Task;
use crate::model::spec::{BOX_OUTPUTS, BOX_UNITS};
use crate::rng::Rng;
use crate::train::net::Net;
use microcnn::postprocess::{decode_box, find_peaks_i8, BBox, BoxFormat, PeakParams};
use microcnn::Shape;

/// How far (in cells, either axis) a predicted centre may be from a true one to match it.
pub const MATCH_CELLS: usize = 1;

/// The most peaks read from one heat map.
pub const MAX_PEAKS: usize = 64;

/// Matched centres.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Detections {
    /// Predicted centres matching a true object of the same class within [`MATCH_CELLS`].
    pub true_pos: usize,
    /// Predicted centres matching none.
    pub false_pos: usize,
    /// True objects no prediction matched.
    pub false_neg: usize,
}

impl Detections {
    /// `tp / (tp + fp)` (1 with no predictions).
    pub fn precision(&self) -> f32 {
        let d = self.true_pos + self.false_pos;
        if d == 0 {
            1.0
        } else {
            self.true_pos as f32 / d as f32
        }
    }

    /// `tp / (tp + fn)` (1 with no objects).
    pub fn recall(&self) -> f32 {
        let d = self.true_pos + self.false_neg;
        if d == 0 {
            1.0
        } else {
            self.true_pos as f32 / d as f32
        }
    }

    /// Harmonic mean of precision and recall.
    pub fn f1(&self) -> f32 {
        let (p, r) = (self.precision(), self.recall());
        if p + r == 0.0 {
            0.0
        } else {
            2.0 * p * r / (p + r)
        }
    }
}

/// The true centre cells `(row, column, class)` of image `i` on the data set's grid.
pub fn true_centres(d: &Dataset, i: usize) -> Vec<(usize, usize, usize)> {
    d.objects.get(i).map_or_else(Vec::new, |objs| {
        objs.iter()
            .map(|o| {
                let (gy, gx) = crate::data::scenes::centre_cell(o, d.h, d.w, d.grid);
                (gy, gx, o.class + 1)
            })
            .collect()
    })
}

/// Greedy matching, strongest prediction first: each takes the nearest unmatched true centre of
/// its class within [`MATCH_CELLS`] (Chebyshev distance).
pub fn match_centres(pred: &[(usize, usize, usize, i8)], truth: &[(usize, usize, usize)]) -> Detections {
    let mut order: Vec<usize> = (0..pred.len()).collect();
    order.sort_by_key(|&j| (std::cmp::Reverse(pred[j].3), pred[j].0, pred[j].1));
    let mut used = vec![false; truth.len()];
    let mut d = Detections::default();
    for j in order {
        let (y, x, c, _) = pred[j];
        let best = truth
            .iter()
            .enumerate()
            .filter(|(t, &(ty, tx, tc))| {
                !used[*t] && tc == c && ty.abs_diff(y) <= MATCH_CELLS && tx.abs_diff(x) <= MATCH_CELLS
            })
            .min_by_key(|(_, &(ty, tx, _))| ty.abs_diff(y).max(tx.abs_diff(x)));
        match best {
            Some((t, _)) => {
                used[t] = true;
                d.true_pos += 1;
            }
            None => d.false_pos += 1,
        }
    }
    d.false_neg = used.iter().filter(|&&u| !u).count();
    d
}

/// The peaks of one int8 heat map `[gh, gw, k]` (background channel 0) at `threshold`.
pub fn peaks(heat: &[i8], grid: [usize; 2], k: usize, threshold: i8) -> Vec<(usize, usize, usize, i8)> {
    let p = PeakParams { threshold, background: Some(0) };
    match find_peaks_i8::<MAX_PEAKS>(heat, Shape::image(grid[0], grid[1], k), &p) {
        Ok(r) => r.peaks.iter().map(|q| (q.y, q.x, q.class, q.score)).collect(),
        Err(_) => Vec::new(),
    }
}

/// Detection scores of int8 heat maps (one per image of `d`, as the model outputs them).
pub fn detect_scores(outputs: &[Vec<i8>], d: &Dataset, k: usize, threshold: i8) -> Detections {
    let mut total = Detections::default();
    for (i, heat) in outputs.iter().enumerate() {
        let m = match_centres(&peaks(heat, d.grid, k, threshold), &true_centres(d, i));
        total.true_pos += m.true_pos;
        total.false_pos += m.false_pos;
        total.false_neg += m.false_neg;
    }
    total
}

/// The float network's outputs, per image.
pub fn float_outputs(net: &mut Net, d: &Dataset) -> Vec<Vec<f32>> {
    let il = net.input_len();
    let ol = net.output_len();
    let mut rng = Rng::new(0);
    let mut out = Vec::with_capacity(d.len());
    for chunk in d.images.chunks(64 * il) {
        let n = chunk.len() / il;
        out.extend(net.forward(chunk, n, false, &mut rng).chunks_exact(ol).map(<[f32]>::to_vec));
    }
    out
}

/// The float network's outputs as int8 softmax probabilities (`q = round(256·p) − 128`), per
/// image: the scale the int8 model's softmax writes.
pub fn float_outputs_q(net: &mut Net, d: &Dataset) -> Vec<Vec<i8>> {
    let k = net.num_classes();
    softmax_q(&float_outputs(net, d), k)
}

/// Float outputs (rows of `k` logits) as int8 softmax probabilities, `q = round(256·p) − 128`.
pub fn softmax_q(outputs: &[Vec<f32>], k: usize) -> Vec<Vec<i8>> {
    let one = |img: &Vec<f32>| -> Vec<i8> {
        let mut q = Vec::with_capacity(img.len());
        for row in img.chunks_exact(k) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let sum: f32 = row.iter().map(|v| (v - max).exp()).sum();
            q.extend(
                row.iter().map(|v| ((v - max).exp() / sum * 256.0).round().clamp(0.0, 255.0) as i32 as i8 ^ i8::MIN),
            );
        }
        q
    };
    outputs.iter().map(one).collect()
}

/// Localization results: class accuracy and how well the boxes overlap the true ones.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Localized {
    /// Images scored.
    pub images: usize,
    /// Images whose class is right.
    pub right: usize,
    /// Sum over images of the IoU of the predicted box with the true one.
    pub iou_sum: f64,
    /// Images whose box has IoU ≥ 0.5.
    pub hits: usize,
}

impl Localized {
    /// Share of images classified right.
    pub fn accuracy(&self) -> f32 {
        self.right as f32 / self.images.max(1) as f32
    }

    /// Mean IoU of the predicted boxes.
    pub fn mean_iou(&self) -> f32 {
        (self.iou_sum / self.images.max(1) as f64) as f32
    }

    /// Share of boxes with IoU ≥ 0.5.
    pub fn hit_rate(&self) -> f32 {
        self.hits as f32 / self.images.max(1) as f32
    }

    fn add(&mut self, class: usize, bbox: BBox, truth: &crate::data::Object) {
        let [x0, y0, x1, y1] = truth.bbox;
        let iou = bbox.iou(&BBox { x0, y0, x1, y1 });
        self.images += 1;
        self.right += (class == truth.class) as usize;
        self.iou_sum += iou as f64;
        self.hits += (iou >= 0.5) as usize;
    }
}

/// A float box (cx, cy, w, h in [`BOX_UNITS`] of the side) in pixels of an `h × w` image,
/// clamped to it — the runtime's rule for the int8 outputs ([`decode_box`]).
pub fn box_from_units(v: &[f32], h: usize, w: usize) -> BBox {
    let f = [0, 1, 2, 3].map(|i| v.get(i).copied().unwrap_or(0.0) / BOX_UNITS);
    microcnn::postprocess::box_from_fractions(f, BoxFormat::CxCyWh, w, h).unwrap_or(BBox {
        x0: 0.0,
        y0: 0.0,
        x1: 0.0,
        y1: 0.0,
    })
}

/// Scores the float network's localization outputs (`k` class scores, then the box).
pub fn localize_scores_f32(outputs: &[Vec<f32>], d: &Dataset, k: usize) -> Localized {
    let mut s = Localized::default();
    for (o, truth) in outputs.iter().zip(&d.objects) {
        if let (Some(t), true) = (truth.first(), o.len() == k + BOX_OUTPUTS) {
            s.add(crate::train::net::argmax(&o[..k]), box_from_units(&o[k..], d.h, d.w), t);
        }
    }
    s
}

/// Scores int8 localization outputs with the runtime's own decoding (the first class on ties,
/// [`decode_box`] with the output's `scale` / [`BOX_UNITS`] and zero point).
pub fn localize_scores_i8(outputs: &[Vec<i8>], (scale, zp): (f32, i8), d: &Dataset, k: usize) -> Localized {
    let mut s = Localized::default();
    for (o, truth) in outputs.iter().zip(&d.objects) {
        let (Some(t), true) = (truth.first(), o.len() == k + BOX_OUTPUTS) else { continue };
        let class = microcnn::classify::argmax_i8(&o[..k]).unwrap_or(0);
        let q = [o[k], o[k + 1], o[k + 2], o[k + 3]];
        if let Ok(b) = decode_box(q, scale / BOX_UNITS, zp, BoxFormat::CxCyWh, d.w, d.h) {
            s.add(class, b, t);
        }
    }
    s
}

/// One line for localization results.
pub fn localize_line(s: &Localized) -> String {
    format!(
        "class accuracy {:.2}%, mean IoU {:.3}, IoU ≥ 0.5 for {:.1}% of {} images",
        100.0 * s.accuracy(),
        s.mean_iou(),
        100.0 * s.hit_rate(),
        s.images
    )
}

/// The float network's task line: for detection and segmentation its softmax quantized as the
/// int8 model's is (so both are judged by one rule), for localization its float boxes.
pub fn float_summary_line(net: &mut Net, d: &Dataset) -> String {
    let k = net.num_classes();
    if net.spec.task == Task::Localize {
        return localize_line(&localize_scores_f32(&float_outputs(net, d), d, k));
    }
    let outs = float_outputs_q(net, d);
    summary_line(net.spec.task, &outs, (1.0 / 256.0, -128), d, k)
}

/// Per-position confusion matrix `[true][predicted]` of per-position outputs (`k` scores each).
pub fn confusion_i8(outputs: &[Vec<i8>], d: &Dataset, k: usize) -> Vec<Vec<usize>> {
    let mut cm = vec![vec![0usize; k]; k];
    for (i, o) in outputs.iter().enumerate() {
        for (row, &t) in o.chunks_exact(k).zip(d.target_block(i)) {
            let p = microcnn::classify::argmax_i8(row).unwrap_or(0);
            if let Some(cell) = cm.get_mut(t as usize).and_then(|r| r.get_mut(p)) {
                *cell += 1;
            }
        }
    }
    cm
}

/// Pixel accuracy and mean IoU over the classes that occur (in the truth or the prediction).
pub fn segment_scores(cm: &[Vec<usize>]) -> (f32, f32) {
    let total: usize = cm.iter().flatten().sum();
    let right: usize = (0..cm.len()).map(|c| cm[c][c]).sum();
    let mut ious = Vec::new();
    for c in 0..cm.len() {
        let row: usize = cm[c].iter().sum();
        let col: usize = cm.iter().map(|r| r[c]).sum();
        let union = row + col - cm[c][c];
        if union > 0 {
            ious.push(cm[c][c] as f32 / union as f32);
        }
    }
    let miou = if ious.is_empty() { 0.0 } else { ious.iter().sum::<f32>() / ious.len() as f32 };
    (right as f32 / total.max(1) as f32, miou)
}

/// One line with the task's metric for `outputs` (int8, one per image of `d`, quantized with
/// `out_q` = (scale, zero point)).
pub fn summary_line(task: Task, outputs: &[Vec<i8>], out_q: (f32, i8), d: &Dataset, k: usize) -> String {
    match task {
        Task::Localize => localize_line(&localize_scores_i8(outputs, out_q, d, k)),
        Task::Classify => {
            let cm = confusion_i8(outputs, d, k);
            let (acc, _) = segment_scores(&cm);
            format!("accuracy {:.2}%", 100.0 * acc)
        }
        Task::Detect => {
            let s = detect_scores(outputs, d, k, 0);
            format!(
                "centres within {MATCH_CELLS} cell, class right, score ≥ 0.5: precision {:.3}, recall {:.3}, F1 {:.3} ({} true, {} false, {} missed of {} objects)",
                s.precision(),
                s.recall(),
                s.f1(),
                s.true_pos,
                s.false_pos,
                s.false_neg,
                s.true_pos + s.false_neg
            )
        }
        Task::Segment => {
            let (acc, miou) = segment_scores(&confusion_i8(outputs, d, k));
            format!("pixel accuracy {:.2}%, mean IoU {:.3} ({k} classes with the background)", 100.0 * acc, miou)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_counts_each_object_once() {
        let truth = [(2, 2, 1), (5, 5, 3)];
        // One exact, one a cell off, one duplicate of the first, one of the wrong class.
        let pred = [(2, 2, 1, 100), (6, 4, 3, 50), (3, 3, 1, 40), (5, 5, 2, 90)];
        let d = match_centres(&pred, &truth);
        assert_eq!(d, Detections { true_pos: 2, false_pos: 2, false_neg: 0 });
        assert!((d.f1() - 2.0 / 3.0).abs() < 1e-6);
        let none = match_centres(&[], &truth);
        assert_eq!((none.recall(), none.f1()), (0.0, 0.0));
        // Two cells away does not match.
        assert_eq!(match_centres(&[(4, 2, 1, 9)], &[(2, 2, 1)]).true_pos, 0);
    }

    #[test]
    fn segmentation_scores_from_the_confusion_matrix() {
        let cm = vec![vec![8, 2], vec![0, 10]];
        let (acc, miou) = segment_scores(&cm);
        assert!((acc - 0.9).abs() < 1e-6);
        assert!((miou - (0.8 + 10.0 / 12.0) / 2.0).abs() < 1e-6);
    }
}
