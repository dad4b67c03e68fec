//! `microcnn import` against TensorFlow Lite Micro: every committed `.tflite` fixture
//! (tests/fixtures/tflite/, made by tools/gen_import_fixtures.py with the TF converter) is
//! imported and run through the runtime kernels on the fixture's seeded inputs; every output
//! element must equal what TFLM computed.

use host_train::model_io::tflite_import::import_tflite;
use serde_json::Value;
use std::path::Path;

fn fixtures() -> Vec<(String, Vec<u8>, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tflite");
    let mut out = Vec::new();
    let mut names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    names.sort();
    for p in names.into_iter().filter(|p| p.extension().is_some_and(|e| e == "tflite")) {
        let name = p.file_stem().unwrap().to_string_lossy().to_string();
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(p.with_extension("json")).unwrap()).unwrap();
        out.push((name, std::fs::read(&p).unwrap(), expected));
    }
    assert!(out.len() >= 2, "fixtures missing");
    out
}

#[test]
fn imported_models_equal_tflite_micro_element_by_element() {
    for (name, bytes, doc) in fixtures() {
        let imported = import_tflite(&bytes, None, &name).unwrap_or_else(|e| panic!("{name}: {e:#}"));
        let q = &imported.model;
        let mut arena = vec![0i8; q.plan().bytes];
        let mut elements = 0;
        for (k, s) in doc["samples"].as_array().unwrap().iter().enumerate() {
            let x: Vec<i8> = s["input"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap() as i8).collect();
            let want: Vec<i8> = s["expected"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap() as i8).collect();
            let mut got = vec![0i8; want.len()];
            q.run(&x, &mut arena, &mut got).unwrap_or_else(|e| panic!("{name} sample {k}: {e}"));
            assert_eq!(got, want, "{name}: sample {k} differs from TFLite Micro");
            elements += want.len();
        }
        assert!(elements > 0);
        // Activation RAM next to TFLM's recording allocator (its arena head holds every
        // activation tensor, the model's input and output included).
        let tflm = doc["tflm_arena_head_bytes"].as_u64().expect("fixture records TFLM's arena head") as usize;
        let ours = q.plan().bytes;
        let total = ours + q.input.iter().product::<usize>() + q.num_classes();
        assert!(ours <= tflm, "{name}: intermediate tensors need {ours} B, TFLM's whole plan {tflm} B");
        eprintln!(
            "{name}: arena {ours} B (+ input and output {} B outside it), TFLM arena head {tflm} B",
            total - ours
        );
        eprintln!(
            "{name}: {} layers, {elements} output elements equal to TFLM; notes: {:?}",
            q.layers.len(),
            imported.notes
        );
    }
}

#[test]
fn bad_files_are_refused_with_a_reason_never_a_panic() {
    let (_, good, _) = fixtures().remove(0);
    assert!(import_tflite(&[], None, "x").is_err());
    assert!(import_tflite(b"12345678", None, "x").unwrap_err().to_string().contains("TFL3"));
    // Every truncation and a sweep of single-byte corruptions: an error or a model, no panic.
    for len in (0..good.len()).step_by(97) {
        let _ = import_tflite(&good[..len], None, "x");
    }
    for at in (8..good.len()).step_by(13) {
        let mut bad = good.clone();
        bad[at] ^= 0x5a;
        let _ = import_tflite(&bad, None, "x");
    }
}

#[test]
fn committed_models_round_trip_through_export_and_import_to_the_same_code() {
    for name in ["tiny", "fashion"] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models").join(name);
        let text = std::fs::read_to_string(dir.join("quantized.json")).unwrap();
        let q = host_train::quantize::QModel::from_json(&text, name).unwrap();
        let bytes = host_train::tflite::export(&q).unwrap();
        assert_eq!(&bytes[4..8], b"TFL3", "file identifier at bytes 4..8");
        let back = import_tflite(&bytes, None, "unnamed").unwrap_or_else(|e| panic!("{name}: {e:#}")).model;
        assert_eq!(back, q, "{name}: import(export(q)) differs from q");
        let regen = "cargo run --release -p host-train -- emit --model-dir <this folder>";
        assert_eq!(
            host_train::emit::emit(&back, regen),
            host_train::emit::emit(&q, regen),
            "{name}: generated code differs"
        );
    }
}

/// The `.tflite` inputs the loaders fuzz target once failed on (`fuzz/regressions/loaders/`,
/// first byte 4), replayed as the target runs them: import, run, export, import again.
#[test]
fn fuzz_regressions_for_import_stay_fixed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions/loaders");
    let Ok(entries) = std::fs::read_dir(&dir) else { return };
    for e in entries {
        let path = e.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let Some((&which, rest)) = data.split_first() else { continue };
        if which % 6 != 4 {
            continue;
        }
        let mut with_header = vec![0u8; 4];
        with_header.extend_from_slice(b"TFL3");
        with_header.extend_from_slice(rest);
        for bytes in [rest, &with_header[..]] {
            if let Ok(imported) = import_tflite(bytes, None, "fuzz") {
                let q = imported.model;
                let mut arena = vec![0i8; q.plan().bytes];
                let mut scores = vec![0i8; q.num_classes()];
                q.run(&vec![0i8; q.input.iter().product()], &mut arena, &mut scores).unwrap();
                let back = host_train::tflite::export(&q).unwrap();
                let again = import_tflite(&back, None, "fuzz").unwrap().model;
                assert_eq!(again, q, "{}: export → import round trip", path.display());
            }
        }
    }
}
