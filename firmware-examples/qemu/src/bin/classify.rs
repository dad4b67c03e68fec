//! The example Fashion-MNIST model (models/fashion) on real test images, in QEMU.
#![no_std]
#![no_main]

use microcnn_qemu as _;

#[allow(dead_code)]
#[path = "../../../../models/fashion/model.rs"]
mod model;
#[path = "../../../../models/fashion/test_vectors.rs"]
mod vectors;

microcnn_qemu::classify_app!(model, vectors);
