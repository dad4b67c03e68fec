//! Model files in and out: the generated Rust ([`emit`]); TensorFlow Lite flatbuffers, read through bindings
//! generated from TFLite's published `schema.fbs` ([`tflite_schema`]) and turned into a
//! [`crate::graph::QModel`] by [`tflite_import`]; [`tflite_export`] writes one back.
//! NumPy batches for `run` and [`compare`] (microcnn against TFLite Micro) go through [`npy`]; every file is written atomically through [`fsio`].

// Generated code. Its `unsafe` is planus's: enum tags and primitives read at offsets the
// planus runtime has bounds-checked (its documented contract); nothing hand-written here is
// unsafe.
#[allow(unsafe_code, clippy::all, clippy::pedantic, missing_docs, dead_code, unused_imports, rustdoc::all)]
#[rustfmt::skip]
pub mod tflite_schema;
pub mod compare;
pub mod emit;
pub mod fsio;
pub mod npy;
pub mod tflite_export;
pub mod tflite_import;
