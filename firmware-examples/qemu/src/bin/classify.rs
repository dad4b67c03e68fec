//! A generated model on real test images, in QEMU: by default the example Fashion-MNIST model
//! (models/fashion); set `MICROCNN_MODEL=<folder>` at build time to run another emitted model.
#![no_std]
#![no_main]

use microcnn_qemu as _;

include!(concat!(env!("OUT_DIR"), "/model_mod.rs"));

microcnn_qemu::classify_app!(model, vectors, BOX_SCALE);
