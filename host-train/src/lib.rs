//! Host side of microcnn: data loading, augmentation, training, transfer learning,
//! post-training int8 quantization and code generation for the `microcnn` runtime.

#![deny(unsafe_code)]

pub mod augment;
pub mod builder;
pub mod checkpoint;
pub mod data;
pub mod emit;
pub mod fsio;
pub mod model_io;
pub mod net;
pub mod plot;
pub mod quantize;
pub mod report;
pub mod rng;
pub mod spec;
/// `export-tflite` (kept under its old path).
pub use model_io::tflite_export as tflite;
pub mod train;
pub mod transfer;
