//! Training throughput of the default (LeNet-sized) model, next to PyTorch in the same run.
//!
//! `cargo bench -p host-train --bench training` — trains one epoch of 6,400 images (batch 64,
//! Adam, dropout active) with microcnn's trainer on 1 thread and on all cores, then runs
//! tools/bench_torch.py with the same network on 1 thread and on all cores, and prints images/s
//! and the ratios at equal thread counts.
//! PyTorch is optional (`pip install torch`); without it only microcnn's figure is printed.

use host_train::checkpoint::Progress;
use host_train::data::Dataset;
use host_train::net::Net;
use host_train::rng::Rng;
use host_train::spec::ModelSpec;
use host_train::train::{train, Optimizer, Schedule, TrainConfig};
use std::process::Command;
use std::time::Instant;

fn main() {
    let images = 6400;
    let mut rng = Rng::new(1);
    let data = Dataset {
        images: (0..images * 784).map(|_| rng.f32()).collect(),
        labels: (0..images).map(|i| (i % 10) as u8).collect(),
        h: 28,
        w: 28,
        c: 1,
        classes: vec![],
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
    };
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut ours = Vec::new();
    for threads in [1, cores] {
        let mut best = 0.0f64;
        for _ in 0..2 {
            let mut net = Net::new(spec.clone(), 1).unwrap();
            let cfg = TrainConfig { threads, ..cfg.clone() };
            let t0 = Instant::now();
            train(&mut net, &data, None, &cfg, Progress::default()).unwrap();
            best = best.max(images as f64 / t0.elapsed().as_secs_f64());
        }
        println!("microcnn images/s: {best:.0} threads: {threads}");
        ours.push(best);
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tools/bench_torch.py");
    for threads in [1, cores] {
        match Command::new("python3").args([script, &images.to_string(), &threads.to_string()]).output() {
            Ok(o) if o.status.success() => {
                let line = String::from_utf8_lossy(&o.stdout).trim().to_string();
                let torch: f64 = line.split_whitespace().nth(2).and_then(|v| v.parse().ok()).unwrap_or(f64::NAN);
                println!("{line}");
                let s = if threads == 1 { "" } else { "s" };
                let mine = if threads == 1 { ours[0] } else { ours[ours.len() - 1] };
                println!("ratio microcnn / torch, {threads} thread{s} each: {:.2}", mine / torch);
            }
            _ => {
                println!("PyTorch not available (pip install torch) — no comparison");
                break;
            }
        }
    }
}
