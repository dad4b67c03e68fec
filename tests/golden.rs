//! Golden cases from TensorFlow Lite Micro (tests/golden/*.json, made by tools/gen_golden.py):
//! every output element must be equal, and every wrong one is printed.

use microcnn_golden::{run, Act, Case, Op, Sample};
use serde_json::Value;
use std::path::Path;

fn leak<T>(v: Vec<T>) -> &'static [T] {
    Box::leak(v.into_boxed_slice())
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array().map(|a| a.iter().map(|x| x.as_i64().expect("integer")).collect()).unwrap_or_default()
}

fn usizes(v: &Value) -> &'static [usize] {
    leak(ints(v).into_iter().map(|x| x as usize).collect())
}

fn quant(t: &Value) -> (f32, i32) {
    (t["scales"][0].as_f64().unwrap_or(0.0) as f32, t["zero_points"][0].as_i64().unwrap_or(0) as i32)
}

/// Parses one golden JSON file into a `'static` case (leaked; fine in a test).
pub fn parse_case(text: &str) -> Case {
    let d: Value = serde_json::from_str(text).expect("valid JSON");
    let op = match d["tflite_op"].as_str().unwrap() {
        "CONV_2D" => Op::Conv,
        "DEPTHWISE_CONV_2D" => Op::DepthwiseConv,
        "MAX_POOL_2D" => Op::MaxPool,
        "AVERAGE_POOL_2D" => Op::AvgPool,
        "MEAN" => Op::Mean,
        "FULLY_CONNECTED" => Op::Dense,
        "ADD" => Op::Add,
        "SOFTMAX" => Op::Softmax,
        "RELU" => Op::Relu,
        "RELU6" => Op::Relu6,
        other => panic!("unsupported op {other}"),
    };
    let inputs = d["inputs"].as_array().unwrap();
    let filter = inputs
        .get(1)
        .filter(|t| !t.is_null() && t.get("data").is_some() && matches!(op, Op::Conv | Op::DepthwiseConv | Op::Dense));
    let bias = inputs.get(2).filter(|t| !t.is_null() && t.get("data").is_some() && filter.is_some());
    let samples: Vec<Sample> = d["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| Sample {
            inputs: leak(
                s["inputs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|x| leak(ints(x).into_iter().map(|v| v as i8).collect()))
                    .collect(),
            ),
            expected: leak(ints(&s["expected"]).into_iter().map(|v| v as i8).collect()),
        })
        .collect();
    let get = |k: &str, default: usize| d.get(k).and_then(Value::as_u64).map(|v| v as usize).unwrap_or(default);
    Case {
        name: Box::leak(d["name"].as_str().unwrap().to_string().into_boxed_str()),
        op,
        input_shape: usizes(&inputs[0]["shape"]),
        input_quant: quant(&inputs[0]),
        input2_quant: if op == Op::Add { quant(&inputs[1]) } else { (0.0, 0) },
        output_shape: usizes(&d["output"]["shape"]),
        output_quant: quant(&d["output"]),
        filter_shape: filter.map(|f| usizes(&f["shape"])).unwrap_or(&[]),
        filter: filter.map(|f| leak(ints(&f["data"]).into_iter().map(|v| v as i8).collect())).unwrap_or(&[]),
        filter_scales: filter
            .map(|f| leak(f["scales"].as_array().unwrap().iter().map(|s| s.as_f64().unwrap() as f32).collect()))
            .unwrap_or(&[]),
        bias: bias.map(|b| leak(ints(&b["data"]).into_iter().map(|v| v as i32).collect())).unwrap_or(&[]),
        stride: [get("strideH", 1), get("strideW", 1)],
        dilation: [get("dilationHFactor", 1), get("dilationWFactor", 1)],
        pool: [get("filterHeight", 1), get("filterWidth", 1)],
        same: d.get("padding").and_then(Value::as_str) == Some("same"),
        depth_multiplier: get("depthMultiplier", 1),
        activation: match d.get("fusedActivationFunction").and_then(Value::as_str) {
            Some("relu") => Act::Relu,
            Some("relu6") => Act::Relu6,
            _ => Act::None,
        },
        samples: leak(samples),
    }
}

fn load_all() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "json"));
    files.sort();
    files.iter().map(|p| parse_case(&std::fs::read_to_string(p).unwrap())).collect()
}

/// Runs every sample of every case; returns a report of all mismatches.
fn check_all(reference: bool) -> (usize, Vec<String>) {
    let cases = load_all();
    assert!(cases.len() >= 43, "expected the committed golden cases, found {}", cases.len());
    let mut failures = Vec::new();
    let mut compared = 0;
    for case in &cases {
        for (si, s) in case.samples.iter().enumerate() {
            let mut out = vec![0i8; s.expected.len()];
            if let Err(e) = run(case, s.inputs, &mut out, reference) {
                failures.push(format!("{} sample {si}: kernel returned {e:?}", case.name));
                continue;
            }
            for (i, (&got, &want)) in out.iter().zip(s.expected).enumerate() {
                compared += 1;
                if got != want {
                    failures.push(format!("{} sample {si} element {i}: got {got}, TFLM {want}", case.name));
                }
            }
        }
    }
    (compared, failures)
}

#[test]
fn golden_cases_match_tflite_micro_exactly() {
    let (compared, failures) = check_all(false);
    for f in &failures {
        eprintln!("{f}");
    }
    assert!(failures.is_empty(), "{} of {compared} elements differ from TFLite Micro", failures.len());
    assert!(compared > 1000);
}

#[test]
fn reference_convolution_matches_too() {
    let (_, failures) = check_all(true);
    assert!(failures.is_empty(), "{failures:#?}");
}
