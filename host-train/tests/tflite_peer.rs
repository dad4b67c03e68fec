//! Bit-exactness with the peer: each committed model's `model.tflite` (written by
//! `microcnn export-tflite` from our own quantized weights, scales and zero points) was run
//! through TensorFlow Lite Micro by tools/check_tflite.py; TFLM's outputs, committed in
//! `tflm_outputs.json`, must equal microcnn's (`test_vectors.rs`) element for element.

use std::path::PathBuf;

#[allow(dead_code)]
#[rustfmt::skip]
#[path = "../../models/fashion/test_vectors.rs"]
mod fashion_vectors;
#[allow(dead_code)]
#[rustfmt::skip]
#[path = "../../models/tiny/test_vectors.rs"]
mod tiny_vectors;
#[allow(dead_code)]
#[rustfmt::skip]
#[path = "../../models/segment/test_vectors.rs"]
mod segment_vectors;
#[allow(dead_code)]
#[rustfmt::skip]
#[path = "../../models/localize/test_vectors.rs"]
mod localize_vectors;

fn dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models").join(name)
}

fn tflm_outputs(name: &str) -> Vec<Vec<i8>> {
    let text = std::fs::read_to_string(dir(name).join("tflm_outputs.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o.as_array().unwrap().iter().map(|x| x.as_i64().unwrap() as i8).collect())
        .collect()
}

fn compare<const N: usize>(name: &str, ours: &[[i8; N]]) {
    let tflm = tflm_outputs(name);
    assert_eq!(tflm.len(), ours.len(), "{name}: TFLM ran a different number of images");
    let mut wrong = Vec::new();
    for (i, (t, o)) in tflm.iter().zip(ours).enumerate() {
        for (c, (a, b)) in t.iter().zip(o.iter()).enumerate() {
            if a != b {
                wrong.push(format!("{name} image {i} class {c}: TFLM {a}, microcnn {b}"));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn fashion_outputs_equal_tflite_micro() {
    compare("fashion", &fashion_vectors::EXPECTED);
}

#[test]
fn tiny_outputs_equal_tflite_micro() {
    compare("tiny", &tiny_vectors::EXPECTED);
}

/// The U-Net: skip concatenations with requantized operands, nearest resize, per-pixel softmax.
#[test]
fn segment_unet_outputs_equal_tflite_micro() {
    compare("segment", &segment_vectors::EXPECTED);
}

/// The localizer: class scores and box from one dense head.
#[test]
fn localize_outputs_equal_tflite_micro() {
    compare("localize", &localize_vectors::EXPECTED);
}

#[test]
fn committed_tflite_files_match_the_exporter() {
    for name in ["fashion", "tiny", "segment", "localize"] {
        let q: host_train::graph::QModel =
            serde_json::from_str(&std::fs::read_to_string(dir(name).join("quantized.json")).unwrap()).unwrap();
        let bytes = host_train::files::tflite_export::export(&q).unwrap();
        assert!(std::fs::read(dir(name).join("model.tflite")).unwrap() == bytes, "{name}/model.tflite drifted");
        assert_eq!(&bytes[4..8], b"TFL3");
    }
}
