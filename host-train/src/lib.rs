//! Host side of microcnn: everything before the chip. The folders follow the pipeline:
//!
//! ```text
//!  images, labels ──► data ─────────┐            (loaders: IDX, CSV, folders; augment)
//!  model.toml / builder ──► model ──┤            (the layer list: spec, builder)
//!                                   ▼
//!                                 train           (net: forward/backward; SGD/Adam;
//!                                   │              checkpoints; transfer learning)
//!                                   ▼
//!        .tflite ──► files::tflite_import ──► graph ◄── graph::quantize (post-training int8)
//!                                   │          (one DAG of int8 ops; validate; plan the arena;
//!                                   │           exec on the host through the runtime kernels)
//!                                   ├──► files::emit          → model.rs + test vectors (no_std)
//!                                   ├──► files::tflite_export → .tflite
//!                                   ├──► files::compare       ⇄ TensorFlow Lite Micro
//!                                   └──► report               (tables, curves, confusion matrix)
//! ```
//!
//! The `microcnn` CLI (`src/main.rs`) is a thin layer over these modules: each command reads,
//! calls one stage, and writes its outputs atomically ([`files::fsio`]).

#![deny(unsafe_code)]

pub mod data;
pub mod files;
pub mod graph;
pub mod model;
pub mod report;
pub mod rng;
pub mod train;
