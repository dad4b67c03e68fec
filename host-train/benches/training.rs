//! Training throughput of the default (LeNet-sized) model, next to PyTorch in the same run.
//!
//! `cargo bench -p host-train --bench training` — trains epochs of 3,200 images (batch 64, Adam,
//! dropout active) with microcnn's trainer and with PyTorch (tools/bench_torch.py, the same
//! network) on 1 thread and on all cores. The two are interleaved round by round, so on a
//! shared, noisy machine both see the same interference; each side's best round is compared
//! (the best round is the one least disturbed by other load). Prints images/s and the ratios.
//! PyTorch is optional (`pip install torch`); without it only microcnn's figures are printed.

use host_train::data::Dataset;
use host_train::model::spec::ModelSpec;
use host_train::rng::Rng;
use host_train::train::checkpoint::Progress;
use host_train::train::net::Net;
use host_train::train::{train, Optimizer, Schedule, TrainConfig};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Instant;

const IMAGES: usize = 3200;
const ROUNDS: usize = 5;

/// A PyTorch process answering `IMAGES THREADS` requests with one timed epoch each.
struct Torch {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Torch {
    fn start() -> Option<Self> {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tools/bench_torch.py");
        let mut child = Command::new("python3")
            .args([script, "--serve"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .ok()?;
        let out = BufReader::new(child.stdout.take()?);
        Some(Torch { child, out })
    }

    fn epoch(&mut self, threads: usize) -> Option<f64> {
        writeln!(self.child.stdin.as_mut()?, "{IMAGES} {threads}").ok()?;
        let mut line = String::new();
        self.out.read_line(&mut line).ok()?;
        line.split_whitespace().nth(2)?.parse().ok()
    }
}

fn main() {
    let mut rng = Rng::new(1);
    let data = Dataset {
        images: (0..IMAGES * 784).map(|_| rng.f32()).collect(),
        labels: (0..IMAGES).map(|i| (i % 10) as u8).collect(),
        h: 28,
        w: 28,
        c: 1,
        classes: vec![],
        ..Default::default()
    };
    let spec = ModelSpec::from_toml(include_str!("../../models/fashion/model.toml")).unwrap();
    let cfg = TrainConfig {
        epochs: 1,
        batch: 64,
        lr: 2e-3,
        optimizer: Optimizer::Adam,
        schedule: Schedule::Constant,
        weight_decay: 0.0,
        seed: 1,
        augment: Default::default(),
        checkpoint: None,
        progress: false,
        threads: 1,
        object_weight: 1.0,
        box_weight: 1.0,
    };
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut torch = Torch::start();
    let mut thread_counts = vec![1];
    if cores > 1 {
        thread_counts.push(cores);
    }
    for threads in thread_counts {
        let cfg = TrainConfig { threads, ..cfg.clone() };
        let (mut ours, mut theirs): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            let mut net = Net::new(spec.clone(), 1).unwrap();
            let t0 = Instant::now();
            train(&mut net, &data, None, &cfg, Progress::default()).unwrap();
            ours.push(IMAGES as f64 / t0.elapsed().as_secs_f64());
            match torch.as_mut().and_then(|t| t.epoch(threads)) {
                Some(v) => theirs.push(v),
                None => torch = None,
            }
        }
        let best = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
        let s = if threads == 1 { "" } else { "s" };
        let list = |v: &[f64]| v.iter().map(|x| format!("{x:.0}")).collect::<Vec<_>>().join(" ");
        println!("microcnn images/s: {:.0} threads: {threads}   (rounds: {})", best(&ours), list(&ours));
        if theirs.len() == ROUNDS {
            println!("torch    images/s: {:.0} threads: {threads}   (rounds: {})", best(&theirs), list(&theirs));
            println!(
                "ratio microcnn / torch, {threads} thread{s} each: {:.2} (best rounds)",
                best(&ours) / best(&theirs)
            );
        } else {
            println!("PyTorch not available (pip install torch) — no comparison");
        }
    }
}
