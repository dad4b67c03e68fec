//! The tiny model (models/tiny) that fits a Cortex-M0 with 16 KiB of RAM, in QEMU.
#![no_std]
#![no_main]

use microcnn_qemu as _;

#[allow(dead_code)]
#[rustfmt::skip]
#[path = "../../../../models/tiny/model.rs"]
mod model;
#[rustfmt::skip]
#[path = "../../../../models/tiny/test_vectors.rs"]
mod vectors;

microcnn_qemu::classify_app!(model, vectors);
