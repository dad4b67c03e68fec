//! Fuzz target: every host loader on arbitrary bytes — IDX image/label pairs (raw and gzip),
//! MNIST CSV (raw and gzip), safetensors checkpoints, TOML model descriptions and
//! `quantized.json` and `.tflite` flatbuffers (`import`). Each must return `Ok` or an error, never panic or allocate without bound;
//! whatever a loader accepts must be internally consistent (a validated `quantized.json` runs
//! through the host executor and emits code; a resolved model description builds a network).
#![no_main]

use host_train::data;
use host_train::graph::QModel;
use host_train::model::spec::ModelSpec;
use host_train::train::checkpoint;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("in-memory gzip");
    e.finish().expect("in-memory gzip")
}

libfuzzer_sys::fuzz_target!(|input: &[u8]| {
    let Some((&which, rest)) = input.split_first() else { return };
    let gz = which & 0x80 != 0;
    match which % 6 {
        0 => {
            // IDX: split the rest into an image file and a label file.
            let cut = rest.first().map_or(0, |&c| c as usize).min(rest.len().saturating_sub(1));
            let (im, lb) = rest.get(1..).unwrap_or(&[]).split_at(cut.min(rest.len().saturating_sub(1)));
            let (im, lb) = if gz { (gzip(im), gzip(lb)) } else { (im.to_vec(), lb.to_vec()) };
            if let Ok(d) = data::parse_idx(&im, &lb, "images", "labels") {
                assert_eq!(d.images.len(), d.len() * d.h * d.w * d.c);
            }
        }
        1 => {
            let bytes = if gz { gzip(rest) } else { rest.to_vec() };
            for side in [1, 2, 28] {
                if let Ok(d) = data::parse_csv(&bytes, side, "data.csv") {
                    assert_eq!(d.images.len(), d.len() * side * side);
                    assert!(d.images.iter().all(|p| (0.0..=1.0).contains(p)));
                }
            }
        }
        2 => {
            if let Ok((net, _)) = checkpoint::from_bytes(rest, "model.safetensors") {
                assert!(net.params().all(|p| p.value.iter().all(|v| v.is_finite())));
            }
        }
        3 => {
            if let Ok(text) = std::str::from_utf8(rest) {
                if let Ok(spec) = ModelSpec::from_toml(text) {
                    if spec.resolve().is_ok() {
                        let _ = host_train::train::net::Net::new(spec, 1);
                    }
                }
            }
        }
        4 => {
            // A .tflite: the bytes as they are, and behind a valid header so the fuzzer gets past
            // the identifier check quickly.
            let mut with_header = vec![0u8; 4];
            with_header.extend_from_slice(b"TFL3");
            with_header.extend_from_slice(rest);
            for bytes in [rest, &with_header[..]] {
                if let Ok(imported) = host_train::files::tflite_import::import_tflite(bytes, None, "fuzz") {
                    let q = imported.model;
                    let mut arena = vec![0i8; q.plan().bytes];
                    let mut scores = vec![0i8; q.num_classes()];
                    let x = vec![0i8; q.input.iter().product()];
                    q.run(&x, &mut arena, &mut scores).expect("an imported model runs");
                    let back = host_train::files::tflite_export::export(&q).expect("an imported model exports");
                    let again =
                        host_train::files::tflite_import::import_tflite(&back, None, "fuzz").expect("re-import");
                    assert_eq!(again.model, q, "export → import round trip");
                }
            }
        }
        _ => {
            if let Ok(text) = std::str::from_utf8(rest) {
                if let Ok(q) = QModel::from_json(text, "quantized.json") {
                    let plan = q.plan();
                    let mut arena = vec![0i8; plan.bytes];
                    let mut scores = vec![0i8; q.num_classes()];
                    let x = vec![0i8; q.input.iter().product()];
                    q.run(&x, &mut arena, &mut scores).expect("a validated model runs");
                    let _ = host_train::files::emit::emit(&q, "fuzz");
                    let _ = host_train::files::tflite_export::export(&q);
                }
            }
        }
    }
});
