//! Golden cases from TensorFlow Lite Micro (tests/golden/*.json, made by tools/gen_golden.py):
//! every output element must be equal, and every wrong one is printed.

use microcnn_golden::{run, Act, Case, Op, Sample};
use serde_json::Value;
use std::path::Path;

fn ints(v: &Value) -> Vec<i64> {
    v.as_array().map(|a| a.iter().map(|x| x.as_i64().expect("integer")).collect()).unwrap_or_default()
}

fn usizes(v: &Value) -> Vec<usize> {
    ints(v).into_iter().map(|x| x as usize).collect()
}

fn quant(t: &Value) -> (f32, i32) {
    (t["scales"][0].as_f64().unwrap_or(0.0) as f32, t["zero_points"][0].as_i64().unwrap_or(0) as i32)
}

/// One golden JSON file's data, owned; [`Owned::with_case`] lends it out as a [`Case`].
pub struct Owned {
    name: String,
    op: Op,
    input_shape: Vec<usize>,
    input_quant: (f32, i32),
    input2_quant: (f32, i32),
    output_shape: Vec<usize>,
    output_quant: (f32, i32),
    filter_shape: Vec<usize>,
    filter: Vec<i8>,
    filter_scales: Vec<f32>,
    bias: Vec<i32>,
    stride: [usize; 2],
    dilation: [usize; 2],
    pool: [usize; 2],
    same: bool,
    depth_multiplier: usize,
    activation: Act,
    samples: Vec<(Vec<Vec<i8>>, Vec<i8>)>,
}

impl Owned {
    /// Calls `f` with the case borrowing this data (nothing is leaked, so the test is
    /// Miri-clean).
    pub fn with_case<R>(&self, f: impl FnOnce(&Case<'_>) -> R) -> R {
        let inputs: Vec<Vec<&[i8]>> = self.samples.iter().map(|(i, _)| i.iter().map(Vec::as_slice).collect()).collect();
        let samples: Vec<Sample<'_>> =
            inputs.iter().zip(&self.samples).map(|(i, (_, e))| Sample { inputs: i, expected: e }).collect();
        f(&Case {
            name: &self.name,
            op: self.op,
            input_shape: &self.input_shape,
            input_quant: self.input_quant,
            input2_quant: self.input2_quant,
            output_shape: &self.output_shape,
            output_quant: self.output_quant,
            filter_shape: &self.filter_shape,
            filter: &self.filter,
            filter_scales: &self.filter_scales,
            bias: &self.bias,
            stride: self.stride,
            dilation: self.dilation,
            pool: self.pool,
            same: self.same,
            depth_multiplier: self.depth_multiplier,
            activation: self.activation,
            samples: &samples,
        })
    }
}

/// Parses one golden JSON file.
pub fn parse_case(text: &str) -> Owned {
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
    let samples = d["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let ins = s["inputs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| ints(x).into_iter().map(|v| v as i8).collect())
                .collect();
            (ins, ints(&s["expected"]).into_iter().map(|v| v as i8).collect())
        })
        .collect();
    let get = |k: &str, default: usize| d.get(k).and_then(Value::as_u64).map(|v| v as usize).unwrap_or(default);
    Owned {
        name: d["name"].as_str().unwrap().to_string(),
        op,
        input_shape: usizes(&inputs[0]["shape"]),
        input_quant: quant(&inputs[0]),
        input2_quant: if op == Op::Add { quant(&inputs[1]) } else { (0.0, 0) },
        output_shape: usizes(&d["output"]["shape"]),
        output_quant: quant(&d["output"]),
        filter_shape: filter.map(|f| usizes(&f["shape"])).unwrap_or_default(),
        filter: filter.map(|f| ints(&f["data"]).into_iter().map(|v| v as i8).collect()).unwrap_or_default(),
        filter_scales: filter
            .map(|f| f["scales"].as_array().unwrap().iter().map(|s| s.as_f64().unwrap() as f32).collect())
            .unwrap_or_default(),
        bias: bias.map(|b| ints(&b["data"]).into_iter().map(|v| v as i32).collect()).unwrap_or_default(),
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
        samples,
    }
}

fn load_all() -> Vec<Owned> {
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
    // Miri interprets every instruction: there, a third of the cases (every op still appears) and the first sample of each is enough to
    // check for undefined behaviour and leaks.
    let per_case = if cfg!(miri) { 1 } else { usize::MAX };
    // Multiply-accumulates of a case: output elements × taps per output.
    let work = |o: &Owned| {
        let taps = o.filter.len() / o.filter_shape.first().copied().unwrap_or(1).max(1);
        o.output_shape.iter().product::<usize>() * taps.max(1)
    };
    // (Under Miri the long-window cases, up to 10^5 MACs a sample, are left to the native run.)
    for owned in cases.iter().step_by(if cfg!(miri) { 3 } else { 1 }).filter(|o| !cfg!(miri) || work(o) <= 20_000) {
        owned.with_case(|case| {
            for (si, s) in case.samples.iter().enumerate().take(per_case) {
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
        });
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
    assert!(compared > if cfg!(miri) { 100 } else { 1000 });
}

#[test]
fn reference_convolution_matches_too() {
    let (_, failures) = check_all(true);
    assert!(failures.is_empty(), "{failures:#?}");
}
