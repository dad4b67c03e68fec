#![allow(dead_code)]
use host_train::data::{load_idx, Dataset};
use std::path::PathBuf;

pub fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// 300 real Fashion-MNIST test images.
pub fn fashion300() -> Dataset {
    let d = fixture_dir();
    load_idx(&d.join("fashion-300-images-idx3-ubyte.gz"), &d.join("fashion-300-labels-idx1-ubyte.gz")).expect("fixture")
}
