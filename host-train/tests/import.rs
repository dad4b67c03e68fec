//! `microcnn import` against TensorFlow Lite Micro: every committed `.tflite` fixture
//! (tests/fixtures/tflite/, made by tools/gen_import_fixtures.py with the TF converter) is
//! imported and run through the runtime kernels on the fixture's seeded inputs; every output
//! element must equal what TFLM computed.

use host_train::files::tflite_import::import_tflite;
use microcnn::quant::{dequantize_i8, quantize_f32};
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
        let float_io = doc["float_io"].as_bool().unwrap_or(false);
        let out_q = q.layers.last().unwrap().output_q;
        for (k, s) in doc["samples"].as_array().unwrap().iter().enumerate() {
            let values = s["input"].as_array().unwrap();
            // Float inputs are quantized as TFLite's QUANTIZE does (what `microcnn run` does).
            let x: Vec<i8> = if float_io {
                values
                    .iter()
                    .map(|v| quantize_f32(v.as_f64().unwrap() as f32, q.input_q.scale, q.input_q.zero_point))
                    .collect()
            } else {
                values.iter().map(|v| v.as_i64().unwrap() as i8).collect()
            };
            let expected = s["expected"].as_array().unwrap();
            let mut got = vec![0i8; expected.len()];
            q.run(&x, &mut arena, &mut got).unwrap_or_else(|e| panic!("{name} sample {k}: {e}"));
            if float_io {
                // Dequantized as TFLite's DEQUANTIZE does; equal to the bit.
                let got: Vec<u32> =
                    got.iter().map(|&v| dequantize_i8(v, out_q.scale, out_q.zero_point).to_bits()).collect();
                let want: Vec<u32> = expected.iter().map(|v| (v.as_f64().unwrap() as f32).to_bits()).collect();
                assert_eq!(got, want, "{name}: sample {k} differs from TFLite Micro");
            } else {
                let want: Vec<i8> = expected.iter().map(|v| v.as_i64().unwrap() as i8).collect();
                assert_eq!(got, want, "{name}: sample {k} differs from TFLite Micro");
            }
            elements += expected.len();
        }
        assert!(elements > 0);
        // Activation RAM next to TFLM's recording allocator (its arena head holds every
        // activation tensor, the model's input and output included).
        let tflm = doc["tflm_arena_head_bytes"].as_u64().expect("fixture records TFLM's arena head") as usize;
        let ours = q.plan().bytes;
        assert!(ours <= tflm, "{name}: the arena (input and output included) needs {ours} B, TFLM's {tflm} B");
        eprintln!("{name}: arena {ours} B (input and output included), TFLM arena head {tflm} B");
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
        let q = host_train::graph::QModel::from_json(&text, name).unwrap();
        let bytes = host_train::files::tflite_export::export(&q).unwrap();
        assert_eq!(&bytes[4..8], b"TFL3", "file identifier at bytes 4..8");
        let back = import_tflite(&bytes, None, "unnamed").unwrap_or_else(|e| panic!("{name}: {e:#}")).model;
        assert_eq!(back, q, "{name}: import(export(q)) differs from q");
        let regen = "cargo run --release -p host-train -- emit --model-dir <this folder>";
        assert_eq!(
            host_train::files::emit::emit(&back, regen),
            host_train::files::emit::emit(&q, regen),
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
                let back = host_train::files::tflite_export::export(&q).unwrap();
                let again = import_tflite(&back, None, "fuzz").unwrap().model;
                assert_eq!(again, q, "{}: export → import round trip", path.display());
            }
        }
    }
}

/// Hand-broken variants of a fixture, each refused with an error that names the problem.
#[test]
fn broken_models_get_named_errors() {
    use host_train::files::tflite_schema::tflite as fb;
    use planus::ReadAsRoot;
    let (_, good, _) = fixtures().into_iter().find(|(n, _, _)| n == "cnn_residual").unwrap();
    let parsed = || fb::Model::try_from(fb::ModelRef::read_as_root(&good).unwrap()).unwrap();
    let write = |m: &fb::Model| {
        let mut b = planus::Builder::new();
        let mut buf = b.finish(m, None).to_vec();
        // A root offset then the identifier, as TFLite writes them (see tflite_export).
        let root = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) + 4;
        let mut out = root.to_le_bytes().to_vec();
        out.extend_from_slice(b"TFL3");
        out.append(&mut buf.split_off(4));
        out
    };
    assert!(import_tflite(&write(&parsed()), None, "x").is_ok(), "the rewritten fixture imports");
    fn sg(m: &mut fb::Model) -> &mut fb::SubGraph {
        &mut m.subgraphs.as_mut().unwrap()[0]
    }
    type Edit = Box<dyn Fn(&mut fb::Model)>;
    let cases: Vec<(&str, Edit, &str)> = vec![
        (
            "tensor index out of range",
            Box::new(|m| sg(m).operators.as_mut().unwrap()[0].inputs.as_mut().unwrap()[0] = 999),
            "out of range",
        ),
        ("model input out of range", Box::new(|m| sg(m).inputs = Some(vec![-3])), "out of range"),
        ("two inputs", Box::new(|m| sg(m).inputs = Some(vec![0, 1])), "2 inputs"),
        (
            "absurd shape",
            Box::new(|m| sg(m).tensors.as_mut().unwrap()[0].shape = Some(vec![1, i32::MAX, 16, 3])),
            "every dimension must be",
        ),
        (
            "negative shape",
            Box::new(|m| sg(m).tensors.as_mut().unwrap()[0].shape = Some(vec![1, -16, 16, 3])),
            "every dimension must be",
        ),
        ("uint8 input", Box::new(|m| sg(m).tensors.as_mut().unwrap()[0].type_ = fb::TensorType::Uint8), "old-style"),
        ("float input", Box::new(|m| sg(m).tensors.as_mut().unwrap()[0].type_ = fb::TensorType::Float32), "FLOAT32"),
        ("int16 input", Box::new(|m| sg(m).tensors.as_mut().unwrap()[0].type_ = fb::TensorType::Int16), "INT16"),
        (
            "unsupported op",
            Box::new(|m| {
                let codes = m.operator_codes.as_mut().unwrap();
                codes[0].builtin_code = fb::BuiltinOperator::Exp;
                codes[0].deprecated_builtin_code = fb::BuiltinOperator::Exp as i8;
            }),
            "not supported yet",
        ),
        (
            "opcode index out of range",
            Box::new(|m| sg(m).operators.as_mut().unwrap()[0].opcode_index = 77),
            "operator 0",
        ),
        (
            "filter shape inconsistent",
            Box::new(|m| {
                let f = sg(m).operators.as_ref().unwrap()[0].inputs.as_ref().unwrap()[1] as usize;
                sg(m).tensors.as_mut().unwrap()[f].shape = Some(vec![8, 3, 3, 4]);
            }),
            "operator 0",
        ),
        (
            "weights buffer missing",
            Box::new(|m| {
                let f = sg(m).operators.as_ref().unwrap()[0].inputs.as_ref().unwrap()[1] as usize;
                sg(m).tensors.as_mut().unwrap()[f].buffer = 100_000;
            }),
            "buffer",
        ),
        (
            "scale not positive",
            Box::new(|m| {
                sg(m).tensors.as_mut().unwrap()[0].quantization.as_mut().unwrap().scale = Some(vec![f32::NAN]);
            }),
            "not a positive number",
        ),
        (
            "zero point outside int8",
            Box::new(|m| {
                sg(m).tensors.as_mut().unwrap()[0].quantization.as_mut().unwrap().zero_point = Some(vec![300]);
            }),
            "outside int8",
        ),
        ("no operators", Box::new(|m| sg(m).operators = Some(vec![])), "no operators"),
        (
            "two subgraphs",
            Box::new(|m| {
                let s = m.subgraphs.as_ref().unwrap()[0].clone();
                m.subgraphs.as_mut().unwrap().push(s);
            }),
            "2 subgraphs",
        ),
        ("schema version", Box::new(|m| m.version = 2), "version 2"),
    ];
    for (what, edit, needle) in cases {
        let mut m = parsed();
        edit(&mut m);
        match import_tflite(&write(&m), None, "x") {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => {
                let msg = format!("{e:#}");
                assert!(msg.contains(needle), "{what}: error {msg:?} does not say {needle:?}");
            }
        }
    }
    // Every problem at once: two unsupported operators are both listed.
    let mut m = parsed();
    let codes = m.operator_codes.as_mut().unwrap();
    for c in codes.iter_mut().take(2) {
        c.builtin_code = fb::BuiltinOperator::Tanh;
        c.deprecated_builtin_code = fb::BuiltinOperator::Tanh as i8;
    }
    let msg = format!("{:#}", import_tflite(&write(&m), None, "x").unwrap_err());
    assert!(msg.matches("TANH").count() >= 2, "every unsupported operator listed: {msg}");
}

/// Every fixture, branches and concatenations included: `export-tflite` → `import` gives the same
/// model and the same generated code, and the arena plan never lets two tensors that are alive
/// at the same time share a byte (checked pairwise over the DAG's lifetimes).
#[test]
fn imported_graphs_round_trip_and_plan_soundly() {
    for (name, bytes, _) in fixtures() {
        let q = import_tflite(&bytes, None, &name).unwrap().model;
        let back = host_train::files::tflite_export::export(&q).unwrap_or_else(|e| panic!("{name}: export: {e:#}"));
        let again = import_tflite(&back, None, &name).unwrap_or_else(|e| panic!("{name}: re-import: {e:#}")).model;
        assert_eq!(again, q, "{name}: import(export(q)) differs from q");
        assert_eq!(
            host_train::files::emit::emit(&again, "x"),
            host_train::files::emit::emit(&q, "x"),
            "{name}: generated code"
        );
        let plan = q.plan();
        let n = q.layers.len();
        let mut life: Vec<(usize, usize)> = (0..=n).map(|t| (t.saturating_sub(1), t.saturating_sub(1))).collect();
        for i in 0..n {
            for t in q.inputs_of(i) {
                life[t].1 = life[t].1.max(i);
            }
        }
        for a in 0..=n {
            for b in a + 1..=n {
                let alive_together = life[a].0 <= life[b].1 && life[b].0 <= life[a].1;
                let (ra, rb) = (
                    plan.offset[a]..plan.offset[a] + q.tensor_len(a),
                    plan.offset[b]..plan.offset[b] + q.tensor_len(b),
                );
                let overlap = ra.start < rb.end && rb.start < ra.end;
                assert!(!(alive_together && overlap), "{name}: tensors {a} and {b} are alive together and overlap");
                assert!(ra.end <= plan.bytes && rb.end <= plan.bytes);
            }
        }
        assert!(plan.bytes >= plan.peak_live, "{name}: the plan beats its own lower bound?");
    }
}
