//! Picks the memory map for the target's QEMU machine and turns the golden kernel cases
//! (../../tests/golden/*.json, made from TensorFlow Lite Micro) into `static` Rust data.

use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn memory_x(target: &str) -> &'static str {
    match target {
        // micro:bit (nRF51822): 256 KiB flash, 16 KiB RAM.
        t if t.starts_with("thumbv6m") => {
            "MEMORY { FLASH : ORIGIN = 0x00000000, LENGTH = 256K\n RAM : ORIGIN = 0x20000000, LENGTH = 16K }\n"
        }
        // lm3s6965evb: 256 KiB flash, 64 KiB RAM.
        t if t.starts_with("thumbv7m") => {
            "MEMORY { FLASH : ORIGIN = 0x00000000, LENGTH = 256K\n RAM : ORIGIN = 0x20000000, LENGTH = 64K }\n"
        }
        // mps2-an505 (Cortex-M33): code at 0x1000_0000, RAM at 0x3800_0000.
        t if t.starts_with("thumbv8m") => {
            "MEMORY { FLASH : ORIGIN = 0x10000000, LENGTH = 4M\n RAM : ORIGIN = 0x38000000, LENGTH = 2M }\n"
        }
        // mps2-an386 / mps2-an500 (Cortex-M4F / M7): 4 MiB code, 4 MiB RAM.
        _ => "MEMORY { FLASH : ORIGIN = 0x00000000, LENGTH = 4M\n RAM : ORIGIN = 0x20000000, LENGTH = 4M }\n",
    }
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array().map(|a| a.iter().filter_map(Value::as_i64).collect()).unwrap_or_default()
}

fn list<T: std::fmt::Display>(v: impl IntoIterator<Item = T>) -> String {
    let mut s = String::from("&[");
    for x in v {
        let _ = write!(s, "{x},");
    }
    s.push(']');
    s
}

fn f32_of(v: &Value) -> String {
    format!("f32::from_bits(0x{:08x})", (v.as_f64().unwrap_or(0.0) as f32).to_bits())
}

fn golden_rs(dir: &Path) -> String {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).expect("tests/golden").filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    let mut s = String::from("pub static CASES: &[Case] = &[\n");
    for f in &files {
        let d: Value = serde_json::from_str(&std::fs::read_to_string(f).expect("read")).expect("json");
        let op = match d["tflite_op"].as_str().unwrap_or("") {
            "CONV_2D" => "Conv",
            "DEPTHWISE_CONV_2D" => "DepthwiseConv",
            "MAX_POOL_2D" => "MaxPool",
            "AVERAGE_POOL_2D" => "AvgPool",
            "MEAN" => "Mean",
            "FULLY_CONNECTED" => "Dense",
            "ADD" => "Add",
            "SOFTMAX" => "Softmax",
            "RELU" => "Relu",
            "RELU6" => "Relu6",
            other => panic!("unknown op {other}"),
        };
        let ins = d["inputs"].as_array().cloned().unwrap_or_default();
        let weighted = matches!(op, "Conv" | "DepthwiseConv" | "Dense");
        let filter = ins.get(1).filter(|_| weighted);
        let bias = ins.get(2).filter(|t| weighted && !t.is_null() && t.get("data").is_some());
        let q = |t: &Value| format!("({}, {})", f32_of(&t["scales"][0]), t["zero_points"][0].as_i64().unwrap_or(0));
        let get = |k: &str| d.get(k).and_then(Value::as_u64).unwrap_or(1);
        let act = match d.get("fusedActivationFunction").and_then(Value::as_str) {
            Some("relu") => "Relu",
            Some("relu6") => "Relu6",
            _ => "None",
        };
        let mut samples = String::from("&[");
        for smp in d["samples"].as_array().cloned().unwrap_or_default() {
            let inputs: Vec<String> =
                smp["inputs"].as_array().cloned().unwrap_or_default().iter().map(|x| list(ints(x))).collect();
            let _ = write!(
                samples,
                "Sample {{ inputs: &[{}], expected: {} }},",
                inputs.join(","),
                list(ints(&smp["expected"]))
            );
        }
        samples.push(']');
        let _ = writeln!(
            s,
            "Case {{ name: {:?}, op: Op::{op}, input_shape: {}, input_quant: {}, input2_quant: {}, output_shape: {}, output_quant: {}, filter_shape: {}, filter: {}, filter_scales: {}, bias: {}, stride: [{}, {}], dilation: [{}, {}], pool: [{}, {}], same: {}, depth_multiplier: {}, activation: Act::{act}, samples: {samples} }},",
            d["name"].as_str().unwrap_or(""),
            list(ints(&ins[0]["shape"])),
            q(&ins[0]),
            if op == "Add" { q(&ins[1]) } else { "(0.0, 0)".into() },
            list(ints(&d["output"]["shape"])),
            q(&d["output"]),
            filter.map(|f| list(ints(&f["shape"]))).unwrap_or("&[]".into()),
            filter.map(|f| list(ints(&f["data"]))).unwrap_or("&[]".into()),
            filter.map(|f| list(f["scales"].as_array().cloned().unwrap_or_default().iter().map(f32_of))).unwrap_or("&[]".into()),
            bias.map(|b| list(ints(&b["data"]))).unwrap_or("&[]".into()),
            get("strideH"), get("strideW"), get("dilationHFactor"), get("dilationWFactor"),
            get("filterHeight"), get("filterWidth"),
            d.get("padding").and_then(Value::as_str) == Some("same"),
            get("depthMultiplier"),
        );
    }
    s.push_str("];\n");
    s
}

fn main() {
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    let target = std::env::var("TARGET").unwrap_or_default();
    // Reserve stack explicitly: cortex-m-rt lets the stack grow down into .bss unchecked, so a
    // model whose arena does not fit would otherwise link and then corrupt memory at run time.
    // `MICROCNN_STACK_RESERVE` (bytes, default 4096) sets the reserve.
    let reserve: u32 = std::env::var("MICROCNN_STACK_RESERVE").ok().and_then(|v| v.parse().ok()).unwrap_or(4096);
    let memory = format!(
        "{}\n_stack_reserve = {reserve};\nASSERT(ORIGIN(RAM) + LENGTH(RAM) - __ebss >= _stack_reserve, \"microcnn: RAM overflow: static buffers (model arena) + {reserve} B of stack do not fit this chip's RAM\");\n",
        memory_x(&target)
    );
    println!("cargo:rerun-if-env-changed=MICROCNN_STACK_RESERVE");
    std::fs::write(
        out.join("stack_reserve.rs"),
        format!("/// Bytes of stack the link-time RAM check reserves (`MICROCNN_STACK_RESERVE`).\npub const STACK_RESERVE: usize = {reserve};\n"),
    )
    .unwrap();
    std::fs::write(out.join("memory.x"), memory).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    // The classify app runs the model in $MICROCNN_MODEL (a folder with model.rs and
    // test_vectors.rs, as `microcnn emit --test-images` writes it), by default models/fashion.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let model_dir = std::env::var("MICROCNN_MODEL").map(PathBuf::from).unwrap_or_else(|_| repo.join("models/fashion"));
    let model_dir =
        std::fs::canonicalize(&model_dir).unwrap_or_else(|e| panic!("MICROCNN_MODEL={}: {e}", model_dir.display()));
    for f in ["model.rs", "test_vectors.rs"] {
        if !model_dir.join(f).exists() {
            panic!(
                "{} has no {f}: run `microcnn emit --model-dir {} --test-images 50`",
                model_dir.display(),
                model_dir.display()
            );
        }
        println!("cargo:rerun-if-changed={}", model_dir.join(f).display());
    }
    // A localization model's box scale, for the app to decode its box with.
    let model_rs = std::fs::read_to_string(model_dir.join("model.rs")).unwrap_or_default();
    let box_scale = if model_rs.contains("pub const BOX_SCALE: f32") { "Some(model::BOX_SCALE)" } else { "None" };
    std::fs::write(
        out.join("model_mod.rs"),
        format!(
            "#[allow(dead_code)]\n#[path = {:?}]\nmod model;\n#[path = {:?}]\nmod vectors;\n/// The box scale of a localization model.\nconst BOX_SCALE: Option<f32> = {box_scale};\n",
            model_dir.join("model.rs"),
            model_dir.join("test_vectors.rs")
        ),
    )
    .unwrap();
    println!("cargo:rerun-if-env-changed=MICROCNN_MODEL");
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden");
    std::fs::write(out.join("golden_cases.rs"), golden_rs(&golden)).unwrap();
    println!("cargo:rerun-if-changed={}", golden.display());
    println!("cargo:rerun-if-changed=build.rs");
}
