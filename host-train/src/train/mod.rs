//! Mini-batch training: SGD with momentum or Adam (decoupled weight decay), cosine or step
//! learning-rate schedules, dropout only while training, reproducible under a seed.

pub mod checkpoint;
pub mod layers;
pub mod loss;
pub mod net;
pub mod transfer;

use crate::data::augment::Augment;
use crate::data::Dataset;
use crate::model::spec::{Task, BOX_OUTPUTS, BOX_UNITS};
use crate::rng::Rng;
use crate::train::loss::{localize_loss, weighted_cross_entropy};
use crate::train::net::Net;
use anyhow::{bail, Result};
use checkpoint::Progress;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Instant;

/// The optimiser.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Optimizer {
    /// Adam with decoupled weight decay (AdamW).
    Adam,
    /// SGD with momentum 0.9.
    Sgd,
}

/// Learning-rate schedule over the whole run.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Constant.
    Constant,
    /// Cosine decay to 1 % of the base rate.
    Cosine,
    /// Divide by 10 at 50 % and 75 % of the run.
    Step,
}

/// Everything that controls a training run.
#[derive(Clone, Debug)]
pub struct TrainConfig {
    /// Epochs to run (in total, including resumed ones).
    pub epochs: usize,
    /// Mini-batch size.
    pub batch: usize,
    /// Base learning rate.
    pub lr: f32,
    /// Optimiser.
    pub optimizer: Optimizer,
    /// Schedule.
    pub schedule: Schedule,
    /// Decoupled weight decay.
    pub weight_decay: f32,
    /// Seed for shuffling, dropout and augmentation.
    pub seed: u64,
    /// Augmentation.
    pub augment: Augment,
    /// Save a checkpoint here after each epoch.
    pub checkpoint: Option<PathBuf>,
    /// Show a progress bar.
    pub progress: bool,
    /// Threads: each mini-batch is split into this many equal parts whose gradients are summed
    /// in a fixed order, so a run is reproducible for a given thread count.
    pub threads: usize,
    /// Detection and segmentation: the loss weight of a position labelled with an object class,
    /// against 1 for the background (FOMO's class weighting: objects are a few cells among many).
    pub object_weight: f32,
    /// Localization: the weight of the box's smooth-L1 loss against the class cross-entropy.
    pub box_weight: f32,
}

/// Per-epoch figures.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct EpochStats {
    /// Epoch number (1-based).
    pub epoch: usize,
    /// Mean training loss.
    pub loss: f32,
    /// Training accuracy (with augmentation and dropout).
    pub train_acc: f32,
    /// Validation accuracy, if a validation set was given.
    pub val_acc: Option<f32>,
    /// Training images per second.
    pub images_per_s: f32,
    /// Detection and segmentation: the task's metric on the validation set (centre F1, or mean
    /// IoU), if a validation set was given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_metric: Option<f32>,
}

/// The most memory a training batch's activations may take: 16 GiB.
pub const MAX_BATCH_BYTES: u64 = 16 << 30;

impl TrainConfig {
    /// Checks every hyper-parameter before anything runs: at least one epoch, batch and
    /// thread; a finite, positive learning rate; a finite, non-negative weight decay.
    pub fn check(&self) -> Result<()> {
        if self.epochs == 0 {
            bail!("--epochs must be at least 1");
        }
        if self.batch == 0 || self.batch > 1 << 16 {
            bail!("--batch {} must be from 1 to 65536", self.batch);
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            bail!("--lr {} must be a positive number (for example 0.002)", self.lr);
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            bail!("--weight-decay {} must be zero or a positive number", self.weight_decay);
        }
        if self.threads == 0 || self.threads > 256 {
            bail!("--threads {} must be from 1 to 256", self.threads);
        }
        if !(self.object_weight.is_finite() && self.object_weight > 0.0 && self.object_weight <= 1e4) {
            bail!("--object-weight {} must be a positive number up to 10000", self.object_weight);
        }
        if !(self.box_weight.is_finite() && self.box_weight > 0.0 && self.box_weight <= 1e4) {
            bail!("--box-weight {} must be a positive number up to 10000", self.box_weight);
        }
        Ok(())
    }
}

fn lr_at(cfg: &TrainConfig, t: f32) -> f32 {
    match cfg.schedule {
        Schedule::Constant => cfg.lr,
        Schedule::Cosine => cfg.lr * (0.01 + 0.99 * 0.5 * (1.0 + (std::f32::consts::PI * t).cos())),
        Schedule::Step => {
            cfg.lr
                * if t < 0.5 {
                    1.0
                } else if t < 0.75 {
                    0.1
                } else {
                    0.01
                }
        }
    }
}

/// Applies one optimiser step to every unfrozen parameter and clears the gradients.
pub fn step(net: &mut Net, cfg: &TrainConfig, lr: f32, t: u64) {
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let c1 = 1.0 - b1.powi(t as i32);
    let c2 = 1.0 - b2.powi(t as i32);
    for p in net.params_mut() {
        if p.frozen {
            p.grad.iter_mut().for_each(|g| *g = 0.0);
            continue;
        }
        let decay = if p.name.ends_with(".weight") { cfg.weight_decay } else { 0.0 };
        for i in 0..p.value.len() {
            let g = p.grad[i];
            match cfg.optimizer {
                Optimizer::Adam => {
                    p.m[i] = b1 * p.m[i] + (1.0 - b1) * g;
                    p.v[i] = b2 * p.v[i] + (1.0 - b2) * g * g;
                    let upd = (p.m[i] / c1) / ((p.v[i] / c2).sqrt() + eps);
                    p.value[i] -= lr * (upd + decay * p.value[i]);
                }
                Optimizer::Sgd => {
                    p.m[i] = 0.9 * p.m[i] + g + decay * p.value[i];
                    p.value[i] -= lr * p.m[i];
                }
            }
            p.grad[i] = 0.0;
        }
    }
}

/// What a batch is trained towards: a label per position (per image for classification and
/// localization), and for localization each image's box in [`BOX_UNITS`].
#[derive(Default)]
struct Targets {
    labels: Vec<u8>,
    boxes: Vec<[f32; 4]>,
}

impl Targets {
    fn clear(&mut self) {
        self.labels.clear();
        self.boxes.clear();
    }
}

/// How a loss reads a model's output: the task, its class count, the class weights of a dense
/// task and the box loss's weight.
#[derive(Clone, Copy)]
struct LossSpec<'a> {
    task: Task,
    k: usize,
    weights: Option<&'a [f32]>,
    box_weight: f32,
}

impl LossSpec<'_> {
    /// The mean loss of `out` against `t`, its gradient in `grad`, and how many positions were
    /// classified right.
    fn loss(&self, out: &[f32], t: &Targets, grad: &mut [f32]) -> (f32, usize) {
        let k = self.k;
        let stride = if self.task == Task::Localize { k + BOX_OUTPUTS } else { k };
        let loss = if self.task == Task::Localize {
            localize_loss(out, &t.labels, &t.boxes, k, self.box_weight, grad)
        } else {
            weighted_cross_entropy(out, &t.labels, k, self.weights, grad)
        };
        let right = out
            .chunks_exact(stride)
            .zip(&t.labels)
            .filter(|(r, &l)| crate::train::net::argmax(&r[..k]) == l as usize)
            .count();
        (loss, right)
    }
}

/// A localization target: the box `[x0, y0, x1, y1]` (pixels of an `h × w` image) as centre x,
/// centre y, width and height in [`BOX_UNITS`] of the side.
pub fn box_target(bbox: [f32; 4], h: usize, w: usize) -> [f32; 4] {
    let [x0, y0, x1, y1] = bbox;
    let (sw, sh) = (BOX_UNITS / w as f32, BOX_UNITS / h as f32);
    [(x0 + x1) / 2.0 * sw, (y0 + y1) / 2.0 * sh, (x1 - x0) * sw, (y1 - y0) * sh]
}

/// One data-parallel forward/backward: the batch is split into `replicas.len() + 1` contiguous
/// parts; part 0 runs on this thread with `net`, the others on scoped threads with replicas
/// holding a copy of the current weights. Gradients (each part's mean scaled by its share of the
/// batch) are summed into `net` in part order, so the result does not depend on timing.
fn parallel_step(
    net: &mut Net,
    replicas: &mut [Net],
    x: &[f32],
    t: &Targets,
    il: usize,
    spec: LossSpec,
    rng: &mut Rng,
) -> (f32, usize) {
    let out_len = net.output_len();
    // `t.labels` holds `positions` labels per image.
    let positions = net.output_grid().iter().product::<usize>();
    let n = t.labels.len() / positions;
    let parts = replicas.len() + 1;
    let bounds: Vec<(usize, usize)> = (0..parts).map(|p| (p * n / parts, (p + 1) * n / parts)).collect();
    for r in replicas.iter_mut() {
        for (dst, src) in r.params_mut().zip(net.params()) {
            dst.value.copy_from_slice(&src.value);
            dst.grad.iter_mut().for_each(|g| *g = 0.0);
        }
    }
    let seeds: Vec<u64> = (0..parts).map(|_| rng.next_u64()).collect();
    let run = |model: &mut Net, (a, b): (usize, usize), seed: u64| -> (f32, usize) {
        let m = b - a;
        let mut prng = Rng::new(seed);
        let out = model.forward(&x[a * il..b * il], m, true, &mut prng);
        let mut grad = vec![0.0f32; m * out_len];
        let part = Targets {
            labels: t.labels[a * positions..b * positions].to_vec(),
            boxes: t.boxes.get(a..b).map(<[_]>::to_vec).unwrap_or_default(),
        };
        let (loss, right) = spec.loss(&out, &part, &mut grad);
        let share = m as f32 / n as f32;
        grad.iter_mut().for_each(|g| *g *= share);
        model.backward(grad, m);
        (loss * share, right)
    };
    let results: Vec<(f32, usize)> = std::thread::scope(|s| {
        let handles: Vec<_> = replicas
            .iter_mut()
            .enumerate()
            .map(|(i, r)| {
                let (bnd, seed) = (bounds[i + 1], seeds[i + 1]);
                s.spawn(move || run(r, bnd, seed))
            })
            .collect();
        let first = run(net, bounds[0], seeds[0]);
        std::iter::once(first).chain(handles.into_iter().map(|h| h.join().unwrap_or((f32::NAN, 0)))).collect()
    });
    for r in replicas.iter() {
        for (dst, src) in net.params_mut().zip(r.params()) {
            dst.grad.iter_mut().zip(&src.grad).for_each(|(d, s)| *d += s);
        }
    }
    results.iter().fold((0.0, 0), |(l, c), &(pl, pc)| (l + pl, c + pc))
}

/// The per-class loss weights of a dense task: 1 for the background (class 0), `object_weight`
/// for every object class; `None` (all 1) for classification.
pub fn class_weights(data: &Dataset, k: usize, object_weight: f32) -> Option<Vec<f32>> {
    (!data.targets.is_empty() && object_weight != 1.0)
        .then(|| (0..k).map(|c| if c == 0 { 1.0 } else { object_weight }).collect())
}

/// Accuracy of `net` on `data`: of the images for classification, of the positions (cells,
/// pixels) for a dense task.
pub fn accuracy(net: &mut Net, data: &Dataset) -> f32 {
    let outs = crate::report::metrics::float_outputs(net, data);
    accuracy_of(&outs, data, net.num_classes())
}

/// [`accuracy`] of given float outputs (one per image of `data`; each position's first `k`
/// values are its class scores).
pub fn accuracy_of(outputs: &[Vec<f32>], data: &Dataset, k: usize) -> f32 {
    let (mut right, mut total) = (0usize, 0usize);
    for (i, o) in outputs.iter().enumerate() {
        let truth = data.target_block(i);
        let stride = o.len() / truth.len().max(1);
        for (row, &l) in o.chunks_exact(stride.max(1)).zip(truth) {
            right += (crate::train::net::argmax(&row[..k.min(row.len())]) == l as usize) as usize;
            total += 1;
        }
    }
    right as f32 / total.max(1) as f32
}

/// The task's one-number metric of `net` on `data`: centre F1 for detection, mean IoU for
/// segmentation and localization; `None` for classification (its accuracy is the metric).
pub fn task_metric(net: &mut Net, data: &Dataset) -> Option<f32> {
    let outs = crate::report::metrics::float_outputs(net, data);
    task_metric_of(net.spec.task, &outs, data, net.num_classes())
}

/// [`task_metric`] of given float outputs (one per image of `data`, `k` classes).
pub fn task_metric_of(task: Task, outputs: &[Vec<f32>], data: &Dataset, k: usize) -> Option<f32> {
    use crate::report::metrics;
    match task {
        Task::Classify => None,
        Task::Detect => Some(metrics::detect_scores(&metrics::softmax_q(outputs, k), data, k, 0).f1()),
        Task::Segment => {
            Some(metrics::segment_scores(&metrics::confusion_i8(&metrics::softmax_q(outputs, k), data, k)).1)
        }
        Task::Localize => Some(metrics::localize_scores_f32(outputs, data, k).mean_iou()),
    }
}

/// The name of [`task_metric`]'s number for `task`.
pub fn metric_name(task: Task) -> &'static str {
    match task {
        Task::Classify => "accuracy",
        Task::Detect => "centre F1",
        Task::Segment | Task::Localize => "mean IoU",
    }
}

/// The optimiser step count after training `cfg.epochs` epochs on `n` images from `start`:
/// one step per mini-batch, as [`train`] counts them.
pub fn progress_after(start: Progress, cfg: &TrainConfig, n: usize) -> Progress {
    let per_epoch = n.div_ceil(cfg.batch.max(1)) as u64;
    let epochs = cfg.epochs.saturating_sub(start.epoch) as u64;
    Progress { epoch: cfg.epochs.max(start.epoch), step: start.step + epochs * per_epoch }
}

/// Trains `net` on `train`, evaluating on `val` after each epoch. Resumes from `start`.
pub fn train(
    net: &mut Net,
    train: &Dataset,
    val: Option<&Dataset>,
    cfg: &TrainConfig,
    start: Progress,
) -> Result<Vec<EpochStats>> {
    cfg.check()?;
    if start.epoch >= cfg.epochs {
        bail!(
            "the checkpoint has already been trained for {} epochs, and --epochs is {}: raise --epochs to continue",
            start.epoch,
            cfg.epochs
        );
    }
    if train.is_empty() {
        bail!("the training set is empty");
    }
    let [h, w, c] = net.spec.input;
    if (train.h, train.w, train.c) != (h, w, c) {
        bail!("the data is {}×{}×{} but the model expects {h}×{w}×{c}: resize the data or change `input` in the model file", train.h, train.w, train.c);
    }
    let k = net.num_classes();
    let positions = net.output_grid().iter().product::<usize>();
    if train.positions() != positions {
        bail!(
            "the data has {} labels per image but the model outputs {positions} positions of {k} classes: match the model's output grid to the data (--scenes loads it at the model's output size)",
            train.positions()
        );
    }
    let truth: &[u8] = if train.targets.is_empty() { &train.labels } else { &train.targets };
    if let Some(&bad) = truth.iter().find(|&&l| l as usize >= k) {
        bail!("label {bad} found but the model has only {k} outputs: change the last layer's units or filters");
    }
    let task = net.spec.task;
    if positions > 1 && !cfg.augment.is_identity() && task == Task::Detect && train.objects.len() != train.len() {
        bail!("--augment on a detection set needs its boxes (load it with --scenes)");
    }
    if task == Task::Localize && (train.objects.len() != train.len() || train.objects.iter().any(|o| o.len() != 1)) {
        bail!("a localize model trains on one box per image: load the data with --scenes (make-dataset --objects 1)");
    }
    let weights = class_weights(train, k, cfg.object_weight);
    let spec = LossSpec { task, k, weights: weights.as_deref(), box_weight: cfg.box_weight };
    if let Some(v) = val {
        v.check_fits(net.spec.input, k, "the test split")?;
    }
    // Forward activations, their caches and their gradients, in f32, for a whole batch.
    let per_image = crate::model::spec::activations_per_image(&net.spec.resolve()?);
    let bytes = (per_image as u64).saturating_mul(cfg.batch as u64).saturating_mul(12);
    if bytes > MAX_BATCH_BYTES {
        bail!(
            "a batch of {} needs about {bytes} bytes for activations ({per_image} values per image × 12 bytes), more than {MAX_BATCH_BYTES}: lower --batch",
            cfg.batch
        );
    }
    let il = h * w * c;
    let mut rng = Rng::new(cfg.seed);
    // Advance the stream for already-completed epochs so a resumed run continues reproducibly.
    let mut order: Vec<usize> = (0..train.len()).collect();
    let steps_per_epoch = train.len().div_ceil(cfg.batch) as u64;
    let total = (cfg.epochs as u64 * steps_per_epoch).max(1);
    let mut t = start.step;
    let mut history = Vec::new();
    for epoch in start.epoch..cfg.epochs {
        let mut erng = Rng::new(cfg.seed ^ (epoch as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D));
        order.sort_unstable();
        erng.shuffle(&mut order);
        let bar = if cfg.progress { ProgressBar::new(train.len() as u64) } else { ProgressBar::hidden() };
        bar.set_style(
            ProgressStyle::with_template("epoch {prefix} [{bar:30.cyan/blue}] {pos}/{len} {msg} ({eta})")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix(format!("{}/{}", epoch + 1, cfg.epochs));
        let t0 = Instant::now();
        let (mut loss_sum, mut correct, mut seen, mut seen_positions) = (0.0f64, 0usize, 0usize, 0usize);
        let mut xb = vec![0.0f32; cfg.batch * il];
        // Worker replicas for data-parallel steps (the main thread is worker 0).
        let mut replicas: Vec<Net> = (1..cfg.threads.max(1)).map(|_| net.clone()).collect();
        let out_len = net.output_len();
        let mut grad = vec![0.0f32; cfg.batch * out_len];
        let mut targets = Targets::default();
        for batch in order.chunks(cfg.batch) {
            let n = batch.len();
            targets.clear();
            for (j, &idx) in batch.iter().enumerate() {
                let dst = &mut xb[j * il..(j + 1) * il];
                let drawn = (!cfg.augment.is_identity()).then(|| cfg.augment.draw(h, w, c, &mut erng.fork(idx as u64)));
                // Boxes, centres and masks move with the pixels.
                match (task, drawn) {
                    (_, None) => {
                        dst.copy_from_slice(train.image(idx));
                        targets.labels.extend_from_slice(train.target_block(idx));
                        if task == Task::Localize {
                            targets.boxes.push(box_target(train.objects[idx][0].bbox, h, w));
                        }
                    }
                    (Task::Classify, Some(d)) => {
                        d.apply(train.image(idx), dst, h, w, c);
                        targets.labels.extend_from_slice(train.target_block(idx));
                    }
                    (Task::Detect, Some(d)) => {
                        d.apply(train.image(idx), dst, h, w, c);
                        let moved = d.move_objects(&train.objects[idx], h, w);
                        targets.labels.extend(crate::data::scenes::centre_cells(&moved, h, w, train.grid));
                    }
                    (Task::Segment, Some(d)) => {
                        d.apply(train.image(idx), dst, h, w, c);
                        targets.labels.extend(d.move_grid(train.target_block(idx), train.grid, h, w));
                    }
                    (Task::Localize, Some(d)) => {
                        // An object moved mostly out of the image has no box to learn: keep
                        // the image as it is.
                        let object = &train.objects[idx][0];
                        let bbox = match d.move_objects(std::slice::from_ref(object), h, w).first() {
                            Some(moved) => {
                                d.apply(train.image(idx), dst, h, w, c);
                                moved.bbox
                            }
                            None => {
                                dst.copy_from_slice(train.image(idx));
                                object.bbox
                            }
                        };
                        targets.labels.push(train.labels[idx]);
                        targets.boxes.push(box_target(bbox, h, w));
                    }
                }
            }
            let (loss, right) = if replicas.is_empty() || n < 2 * (replicas.len() + 1) {
                let out = net.forward(&xb[..n * il], n, true, &mut rng);
                let r = spec.loss(&out, &targets, &mut grad[..n * out_len]);
                net.backward(grad[..n * out_len].to_vec(), n);
                r
            } else {
                parallel_step(net, &mut replicas, &xb[..n * il], &targets, il, spec, &mut rng)
            };
            if !loss.is_finite() {
                bail!("training diverged (loss is {loss}) at epoch {}: lower the learning rate (--lr)", epoch + 1);
            }
            correct += right; // positions (images for classification) predicted right
            t += 1;
            step(net, cfg, lr_at(cfg, t as f32 / total as f32), t);
            loss_sum += loss as f64 * n as f64;
            seen += n;
            seen_positions += n * positions;
            bar.inc(n as u64);
            bar.set_message(format!(
                "loss {:.4} acc {:.1}% {:.0} img/s",
                loss_sum / seen as f64,
                100.0 * correct as f32 / seen_positions as f32,
                seen as f32 / t0.elapsed().as_secs_f32()
            ));
        }
        let ips = seen as f32 / t0.elapsed().as_secs_f32();
        bar.finish_and_clear();
        // One forward pass over the validation set for both figures.
        let scores = val.map(|v| {
            let outs = crate::report::metrics::float_outputs(net, v);
            (accuracy_of(&outs, v, k), task_metric_of(task, &outs, v, k))
        });
        let (val_acc, val_metric) = (scores.map(|s| s.0), scores.and_then(|s| s.1));
        let stats = EpochStats {
            epoch: epoch + 1,
            loss: (loss_sum / seen.max(1) as f64) as f32,
            train_acc: correct as f32 / seen_positions.max(1) as f32,
            val_acc,
            images_per_s: ips,
            val_metric,
        };
        if cfg.progress {
            eprintln!(
                "epoch {:>2}/{}: loss {:.4}, train acc {:.2}%{}, {:.0} images/s",
                stats.epoch,
                cfg.epochs,
                stats.loss,
                100.0 * stats.train_acc,
                val_acc.map(|a| format!(", test acc {:.2}%", 100.0 * a)).unwrap_or_default()
                    + &val_metric.map(|m| format!(", test {} {m:.3}", metric_name(net.spec.task))).unwrap_or_default(),
                ips
            );
        }
        history.push(stats);
        if let Some(p) = net.params().find(|p| p.value.iter().any(|v| !v.is_finite())) {
            bail!(
                "training diverged (non-finite weights in {}) at epoch {}: lower the learning rate (--lr)",
                p.name,
                epoch + 1
            );
        }
        if let Some(path) = &cfg.checkpoint {
            checkpoint::save(net, Progress { epoch: epoch + 1, step: t }, path)?;
        }
    }
    Ok(history)
}
