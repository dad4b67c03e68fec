//! Bad input against the built `microcnn` binary, as a hostile or careless user would give it.
//!
//! Every case runs in one workspace holding good outputs from an earlier run (a copy of
//! `models/tiny`), data, and the bad files. Each must:
//! - exit with status 1 (an error, not a panic's 101 or a signal);
//! - print no panic text;
//! - name what is wrong (the file or field) and how to fix it — each case lists words its
//!   message must contain;
//! - leave the workspace byte-identical: no pre-existing file changed, no file (not even a
//!   temporary) created.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every file under `root` with its bytes.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx_images(n: u32, h: u32, w: u32, pixels: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 3];
    for x in [n, h, w] {
        v.extend(x.to_be_bytes());
    }
    v.extend_from_slice(pixels);
    v
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 8, 1];
    v.extend((labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

/// A data folder (`train-…`, `t10k-…`) from raw IDX bytes.
fn data_dir(dir: &Path, train: (&[u8], &[u8]), test: (&[u8], &[u8])) {
    std::fs::create_dir_all(dir).unwrap();
    for (split, (im, lb)) in [("train", train), ("t10k", test)] {
        std::fs::write(dir.join(format!("{split}-images-idx3-ubyte.gz")), gzip(im)).unwrap();
        std::fs::write(dir.join(format!("{split}-labels-idx1-ubyte.gz")), gzip(lb)).unwrap();
    }
}

const TINY_TOML: &str = include_str!("../../models/tiny/model.toml");

/// A model file: the tiny model with `edit` applied to its text.
fn model_file(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

struct Case {
    name: String,
    args: Vec<String>,
    expect: Vec<&'static str>,
}

fn case(name: &str, args: &[&str], expect: &[&'static str]) -> Case {
    Case { name: name.into(), args: args.iter().map(|s| s.to_string()).collect(), expect: expect.to_vec() }
}

#[test]
fn bad_input_is_refused_with_a_named_error_and_nothing_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let w = tmp.path();
    let s = |p: &Path| p.display().to_string();
    // Good outputs of an earlier run, which no failing command may touch.
    let good = w.join("good");
    std::fs::create_dir(&good).unwrap();
    for f in std::fs::read_dir(repo().join("models/tiny")).unwrap() {
        let f = f.unwrap().path();
        std::fs::copy(&f, good.join(f.file_name().unwrap())).unwrap();
    }
    let g = s(&good);
    let ckpt = s(&good.join("model.safetensors"));
    // Real data: the 300-image fixture as both splits.
    let fx = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let im = flate2_read(&fx.join("fashion-300-images-idx3-ubyte.gz"));
    let lb = flate2_read(&fx.join("fashion-300-labels-idx1-ubyte.gz"));
    let data = w.join("data");
    data_dir(&data, (&im, &lb), (&im, &lb));
    let d = s(&data);
    let model = model_file(w, "tiny.toml", TINY_TOML);

    let mut cases = vec![
        // Hyper-parameters.
        case("zero epochs", &["train", "--model", &model, "--data", &d, "--out", &g, "--epochs", "0"], &["--epochs"]),
        case("NaN learning rate", &["train", "--model", &model, "--data", &d, "--out", &g, "--lr", "NaN"], &["--lr"]),
        case("negative learning rate", &["train", "--model", &model, "--data", &d, "--out", &g, "--lr=-1"], &["--lr"]),
        case("zero learning rate", &["train", "--model", &model, "--data", &d, "--out", &g, "--lr", "0"], &["--lr"]),
        case("zero batch", &["train", "--model", &model, "--data", &d, "--out", &g, "--batch", "0"], &["--batch"]),
        case("zero limit", &["train", "--model", &model, "--data", &d, "--out", &g, "--limit", "0"], &["--limit"]),
        case(
            "zero threads",
            &["train", "--model", &model, "--data", &d, "--out", &g, "--threads", "0"],
            &["--threads"],
        ),
        case(
            "NaN weight decay",
            &["train", "--model", &model, "--data", &d, "--out", &g, "--weight-decay", "nan"],
            &["--weight-decay"],
        ),
        case(
            "unknown preset",
            &["train", "--model", &model, "--data", &d, "--out", &g, "--augment", "wild"],
            &["wild", "none"],
        ),
        case(
            "finished resume",
            &["train", "--resume", &ckpt, "--data", &d, "--out", &g, "--epochs", "15"],
            &["already trained", "raise --epochs"],
        ),
        case(
            "zero calibration images",
            &["quantize", "--checkpoint", &ckpt, "--data", &d, "--out", &g, "--calib-count", "0"],
            &["--calib-count"],
        ),
        case(
            "negative accuracy gate",
            &["quantize", "--checkpoint", &ckpt, "--data", &d, "--out", &g, "--max-accuracy-drop=-1"],
            &["--max-accuracy-drop"],
        ),
        case("zero test images", &["emit", "--model-dir", &g, "--test-images", "0", "--data", &d], &["--test-images"]),
        case(
            "zero preview images",
            &["augment-preview", "--data", &d, "--images", "0", "--out", &s(&w.join("p.png"))],
            &["--images"],
        ),
        // Outputs that would overwrite inputs.
        case(
            "confusion over checkpoint",
            &["evaluate", "--checkpoint", &ckpt, "--data", &d, "--confusion", &ckpt],
            &[".png"],
        ),
        case(
            "plot over history",
            &["plot-history", "--history", &s(&good.join("history.json")), "--out", &s(&good.join("history.json"))],
            &[".png"],
        ),
    ];

    // Model files.
    let bad_models: Vec<(&str, String, Vec<&'static str>)> = vec![
        (
            "newline in a layer name",
            TINY_TOML.replacen("name = \"conv1\"", "name = \"conv1\\nstatic X: u8 = 0;\"", 1),
            vec!["layer name", "letter"],
        ),
        (
            "name starting with a digit",
            TINY_TOML.replacen("name = \"conv1\"", "name = \"1conv\"", 1),
            vec!["1conv", "letter"],
        ),
        ("hyphen in a name", TINY_TOML.replacen("name = \"conv1\"", "name = \"a-b\"", 1), vec!["a-b"]),
        (
            "names that collide in code",
            TINY_TOML.replacen("name = \"conv1\"", "name = \"conv2_w\"", 1),
            vec!["conv2_w", "CONV2_W"],
        ),
        (
            "name shadowing generated code",
            TINY_TOML.replacen("name = \"conv1\"", "name = \"l0_in\"", 1),
            vec!["L0_IN", "rename"],
        ),
        (
            "newline in the model name",
            TINY_TOML.replacen("name = \"tiny\"", "name = \"tiny\\n//\"", 1),
            vec!["model name"],
        ),
        (
            "control character in a class",
            TINY_TOML.replacen("\"Trouser\"", "\"Trou\\u0007ser\"", 1),
            vec!["class name"],
        ),
        ("duplicate class", TINY_TOML.replacen("\"Trouser\"", "\"Bag\"", 1), vec!["Bag", "twice"]),
        ("zero filters", TINY_TOML.replacen("filters = 8", "filters = 0", 1), vec!["filters", "at least 1"]),
        (
            "a billion filters",
            TINY_TOML.replacen("filters = 8", "filters = 1000000000", 1),
            vec!["conv1", "bytes", "fewer filters"],
        ),
        (
            "absurd input",
            TINY_TOML.replacen("input = [28, 28, 1]", "input = [4294967296, 4294967296, 1]", 1),
            vec!["input", "too large"],
        ),
        ("TOML syntax error", TINY_TOML.replacen("[[layers]]", "[[layers]", 1), vec!["bad.toml"]),
        (
            "unknown field",
            TINY_TOML.replacen("filters = 8", "filters = 8\nfilterz = 3", 1),
            vec!["bad.toml", "filterz"],
        ),
        ("huge stride", TINY_TOML.replacen("stride = 2", "stride = 4294967296", 1), vec!["conv1", "too large"]),
        (
            "stride beyond u64",
            TINY_TOML.replacen("stride = 2", "stride = 18446744073709551616", 1),
            vec!["bad.toml", "line"],
        ),
        (
            "residual blocks nested 500 deep",
            format!(
                "{}\n{}",
                TINY_TOML,
                (1..=500)
                    .map(|d| format!("[[{}]]\ntype = \"residual\"\n", vec!["layers"; d].join(".")))
                    .collect::<String>()
            ),
            vec!["nests", "32"],
        ),
        (
            "inline arrays nested 100000 deep",
            format!("{}\nx = {}{}", TINY_TOML, "[".repeat(100_000), "]".repeat(100_000)),
            vec!["nests"],
        ),
        ("dense of a billion units", TINY_TOML.replacen("units = 10", "units = 1000000000", 1), vec!["bytes"]),
    ];
    assert!(
        TINY_TOML.contains("name = \"conv1\"")
            && TINY_TOML.contains("filters = 8")
            && TINY_TOML.contains("stride = 2")
            && TINY_TOML.contains("units = 10")
    );
    for (name, text, expect) in bad_models {
        let dir = w.join(format!("models/{}", name.replace(' ', "_")));
        std::fs::create_dir_all(&dir).unwrap();
        let m = model_file(&dir, "bad.toml", &text);
        cases.push(Case {
            name: name.into(),
            args: vec!["train", "--model", &m, "--data", &d, "--out", &g, "--epochs", "1"]
                .into_iter()
                .map(String::from)
                .collect(),
            expect,
        });
        cases.push(Case {
            name: format!("{name} (summary)"),
            args: vec!["summary".into(), "--model".into(), m],
            expect: vec![],
        });
    }

    // Data files.
    let mut labels_bad = lb.clone();
    labels_bad[8 + 17] = 200;
    let one = idx_images(1, 28, 28, &[0; 784]);
    let bomb = {
        let mut v = one.clone();
        v.resize(16 + 784 + (32 << 20), 0);
        v
    };
    type Files = (Vec<u8>, Vec<u8>);
    let data_cases: Vec<(&str, Files, Files, Vec<&'static str>)> = vec![
        (
            "test label out of range",
            (im.clone(), lb.clone()),
            (im.clone(), labels_bad),
            vec!["t10k", "label 200", "classes"],
        ),
        (
            "test split of another size",
            (im.clone(), lb.clone()),
            (idx_images(1, 27, 27, &[0; 729]), idx_labels(&[1])),
            vec!["test split", "27×27", "28×28"],
        ),
        (
            "header that overflows",
            (idx_images(u32::MAX, u32::MAX, u32::MAX, &[]), lb.clone()),
            (im.clone(), lb.clone()),
            vec!["train-images", "header promises"],
        ),
        (
            "truncated images",
            (im[..5000].to_vec(), lb.clone()),
            (im.clone(), lb.clone()),
            vec!["train-images", "truncated"],
        ),
        (
            "empty set",
            (idx_images(0, 28, 28, &[]), idx_labels(&[])),
            (im.clone(), lb.clone()),
            vec!["train-images", "empty"],
        ),
        (
            "labels that do not match",
            (im.clone(), idx_labels(&[1, 2, 3])),
            (im.clone(), lb.clone()),
            vec!["train-labels", "does not match"],
        ),
        ("gzip bomb", (bomb, idx_labels(&[1])), (im.clone(), lb.clone()), vec!["train-images", "more than"]),
        (
            "not IDX at all",
            (b"hello".to_vec(), lb.clone()),
            (im.clone(), lb.clone()),
            vec!["train-images", "not an IDX"],
        ),
    ];
    for (name, train, test, expect) in data_cases {
        let dir = w.join(format!("data-{}", name.replace(' ', "_")));
        data_dir(&dir, (&train.0, &train.1), (&test.0, &test.1));
        for cmd in ["train", "quantize", "evaluate"] {
            let mut args: Vec<String> = vec![cmd.into()];
            match cmd {
                "train" => args.extend([
                    "--model".into(),
                    model.clone(),
                    "--out".into(),
                    g.clone(),
                    "--epochs".into(),
                    "1".into(),
                ]),
                "quantize" => args.extend(["--checkpoint".into(), ckpt.clone(), "--out".into(), g.clone()]),
                _ => args.extend(["--checkpoint".into(), ckpt.clone()]),
            }
            args.extend(["--data".into(), s(&dir)]);
            cases.push(Case { name: format!("{name} ({cmd})"), args, expect: expect.clone() });
        }
        cases.push(Case {
            name: format!("{name} (emit --test-images)"),
            args: vec![
                "emit".into(),
                "--model-dir".into(),
                g.clone(),
                "--test-images".into(),
                "5".into(),
                "--data".into(),
                s(&dir),
            ],
            expect: expect.clone(),
        });
    }

    // CSV files.
    let row = |px: &str, label: &str| format!("{}{label}\n", format!("{px},").repeat(784));
    let csv_cases: Vec<(&str, String, Vec<&'static str>)> = vec![
        ("pixel above 255", row("300", "1"), vec!["line 1", "300", "0 to 255"]),
        ("negative pixel", row("-1", "1"), vec!["line 1", "0 to 255"]),
        ("fractional label", row("3", "1.5"), vec!["line 1", "label"]),
        ("bad first line is not a header", format!("{}{}", row("3", "x"), row("3", "1")), vec!["line 1"]),
        ("short line", format!("{}1,2,3\n", row("3", "1")), vec!["line 2", "values"]),
        ("empty file", String::new(), vec!["no images"]),
        ("label beyond the model", row("3", "12"), vec!["label 12", "classes"]),
    ];
    for (name, text, expect) in csv_cases {
        let p = w.join(format!("{}.csv", name.replace(' ', "_")));
        std::fs::write(&p, text).unwrap();
        cases.push(Case {
            name: format!("CSV: {name}"),
            args: vec![
                "quantize".into(),
                "--checkpoint".into(),
                ckpt.clone(),
                "--csv".into(),
                s(&p),
                "--out".into(),
                g.clone(),
            ],
            expect: expect.clone(),
        });
        cases.push(Case {
            name: format!("CSV: {name} (train)"),
            args: vec![
                "train".into(),
                "--model".into(),
                model.clone(),
                "--csv".into(),
                s(&p),
                "--out".into(),
                g.clone(),
                "--epochs".into(),
                "1".into(),
            ],
            expect,
        });
    }

    // Image folders.
    let png = |p: &Path| image::GrayImage::from_pixel(5, 5, image::Luma([9])).save(p).unwrap();
    let folders: Vec<(&str, Vec<&str>, Vec<&'static str>)> = vec![
        ("newline in a class folder", vec!["ok", "bad\nname"], vec!["class name"]),
        ("folder classes differ from the model's", vec!["cat", "dog"], vec!["the folder's classes", "cat"]),
        ("class folder without images", vec!["a", "b/"], vec!["without PNG"]),
    ];
    for (name, classes, expect) in folders {
        let root = w.join(format!("folder-{}", name.replace(' ', "_")));
        for c in &classes {
            let dir = root.join(c.trim_end_matches('/'));
            std::fs::create_dir_all(&dir).unwrap();
            if !c.ends_with('/') {
                png(&dir.join("0.png"));
            }
        }
        cases.push(Case {
            name: format!("folder: {name}"),
            args: vec!["evaluate".into(), "--checkpoint".into(), ckpt.clone(), "--folder".into(), s(&root)],
            expect,
        });
    }
    let many = w.join("folder-257-classes");
    for i in 0..257 {
        std::fs::create_dir_all(many.join(format!("c{i:03}"))).unwrap();
        png(&many.join(format!("c{i:03}/0.png")));
    }
    cases.push(case(
        "257 classes",
        &["train", "--model", &model, "--folder", &s(&many), "--out", &g, "--epochs", "1"],
        &["257", "256"],
    ));

    // Checkpoints.
    let ck_bytes = std::fs::read(good.join("model.safetensors")).unwrap();
    let (mut net, progress) = host_train::train::checkpoint::from_bytes(&ck_bytes, "tiny").unwrap();
    net.params_mut().next().unwrap().value[3] = f32::NAN;
    let nan = host_train::train::checkpoint::to_bytes(&net, progress).unwrap();
    let ck_cases: Vec<(&str, Vec<u8>, Vec<&'static str>)> = vec![
        ("truncated checkpoint", ck_bytes[..1000].to_vec(), vec!["not a safetensors checkpoint"]),
        ("empty checkpoint", Vec::new(), vec!["not a safetensors checkpoint"]),
        ("NaN weights", nan, vec!["conv1.weight", "NaN", "diverged"]),
        (
            "garbage header",
            {
                let mut v = ck_bytes.clone();
                v[8..40].copy_from_slice(&[b'#'; 32]);
                v
            },
            vec!["safetensors"],
        ),
    ];
    for (name, bytes, expect) in ck_cases {
        let p = w.join(format!("{}.safetensors", name.replace(' ', "_")));
        std::fs::write(&p, bytes).unwrap();
        for cmd in ["quantize", "evaluate", "finetune", "train"] {
            let mut args: Vec<String> = vec![cmd.into()];
            match cmd {
                "quantize" => args.extend(["--checkpoint".into(), s(&p), "--out".into(), g.clone()]),
                "evaluate" => args.extend(["--checkpoint".into(), s(&p)]),
                "finetune" => args.extend(["--from".into(), s(&p), "--out".into(), g.clone()]),
                _ => args.extend(["--resume".into(), s(&p), "--out".into(), g.clone(), "--epochs".into(), "20".into()]),
            }
            args.extend(["--data".into(), d.clone()]);
            cases.push(Case { name: format!("{name} ({cmd})"), args, expect: expect.clone() });
        }
    }

    // Hand-edited quantized.json: each edit is refused by emit and export-tflite, naming the field.
    let q: serde_json::Value = serde_json::from_slice(&std::fs::read(good.join("quantized.json")).unwrap()).unwrap();
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let edits: Vec<(&str, Edit, Vec<&'static str>)> = vec![
        (
            "multiplier out of range",
            Box::new(|q| q["layers"][0]["multiplier"][0] = (-5).into()),
            vec!["layers[0]", "multiplier"],
        ),
        ("shift out of range", Box::new(|q| q["layers"][0]["shift"][1] = 99.into()), vec!["layers[0]", "shift"]),
        ("inverted clamp", Box::new(|q| q["layers"][0]["act"] = serde_json::json!([5, -5])), vec!["layers[0]", "act"]),
        ("no layers", Box::new(|q| q["layers"] = serde_json::json!([])), vec!["layers", "empty"]),
        ("skip index out of range", Box::new(|q| set_skip(q, 99)), vec!["skip", "99"]),
        (
            "graph edge to a later tensor",
            Box::new(|q| q["layers"][1]["from"] = 5.into()),
            vec!["layers[1]", "from", "does not exist yet"],
        ),
        ("graph edge to usize::MAX", Box::new(|q| q["layers"][1]["from"] = u64::MAX.into()), vec!["layers[1]", "from"]),
        (
            "graph edge to a tensor of another shape",
            Box::new(|q| q["layers"][2]["from"] = 0.into()),
            vec!["layers[2]", "input"],
        ),
        (
            "weights of the wrong length",
            Box::new(|q| q["layers"][0]["weights"].as_array_mut().unwrap().pop().map(|_| ()).unwrap()),
            vec!["layers[0]", "weights"],
        ),
        (
            "wrong output shape",
            Box::new(|q| q["layers"][0]["output"] = serde_json::json!([14, 14, 9])),
            vec!["layers[0]", "output"],
        ),
        (
            "zero filter dimension",
            Box::new(|q| q["layers"][0]["filter_shape"] = serde_json::json!([8, 0, 3, 1])),
            vec!["layers[0]", "filter_shape"],
        ),
        (
            "newline in a layer name",
            Box::new(|q| q["layers"][1]["name"] = "x\nfn evil() {}".into()),
            vec!["layers[1]", "name"],
        ),
        ("layer names that collide", Box::new(|q| q["layers"][1]["name"] = "CONV1".into()), vec!["CONV1", "rename"]),
        ("newline in a class name", Box::new(|q| q["classes"][0] = "a\nb".into()), vec!["classes[0]"]),
        ("zero scale", Box::new(|q| q["layers"][2]["output_q"]["scale"] = 0.0.into()), vec!["layers[2]", "scale"]),
        ("huge input", Box::new(|q| q["input"] = serde_json::json!([4294967296u64, 4294967296u64, 1])), vec!["input"]),
        ("not JSON", Box::new(|q| *q = "{{{".into()), vec!["quantized.json", "not a quantized model"]),
        (
            "weight out of int8",
            Box::new(|q| q["layers"][0]["weights"][0] = 300.into()),
            vec!["quantized.json", "not a quantized model"],
        ),
    ];
    for (name, edit, expect) in edits {
        let dir = w.join(format!("q-{}", name.replace(' ', "_")));
        std::fs::create_dir(&dir).unwrap();
        let mut v = q.clone();
        edit(&mut v);
        let text = if v.is_string() { v.as_str().unwrap().to_string() } else { serde_json::to_string(&v).unwrap() };
        std::fs::write(dir.join("quantized.json"), text).unwrap();
        // Good earlier outputs beside it.
        std::fs::copy(good.join("model.rs"), dir.join("model.rs")).unwrap();
        std::fs::copy(good.join("model.tflite"), dir.join("model.tflite")).unwrap();
        cases.push(Case {
            name: format!("{name} (emit)"),
            args: vec!["emit".into(), "--model-dir".into(), s(&dir)],
            expect: expect.clone(),
        });
        cases.push(Case {
            name: format!("{name} (export-tflite)"),
            args: vec!["export-tflite".into(), "--model-dir".into(), s(&dir)],
            expect,
        });
    }

    // History files.
    for (name, text, expect) in [
        ("history that is not JSON", "nope", vec!["not a training history"]),
        ("history without epochs", "[]", vec!["no epochs"]),
    ] {
        let p = w.join(format!("{}.json", name.replace(' ', "_")));
        std::fs::write(&p, text).unwrap();
        cases.push(Case {
            name: name.into(),
            args: vec!["plot-history".into(), "--history".into(), s(&p), "--out".into(), s(&good.join("curves.png"))],
            expect,
        });
    }

    let before = snapshot(w);
    let mut failures = Vec::new();
    for c in &cases {
        let o = Command::new(env!("CARGO_BIN_EXE_microcnn")).args(&c.args).output().expect("run microcnn");
        let err = String::from_utf8_lossy(&o.stderr);
        let mut why = Vec::new();
        if o.status.code() != Some(1) {
            why.push(format!("exit status {:?}", o.status));
        }
        if err.contains("panicked") || err.contains("RUST_BACKTRACE") {
            why.push("panic text".into());
        }
        for e in &c.expect {
            if !err.contains(e) {
                why.push(format!("message lacks {e:?}"));
            }
        }
        if !err.contains("error:") {
            why.push("no error message".into());
        }
        let after = snapshot(w);
        if after != before {
            let changed: Vec<String> = after
                .iter()
                .filter(|(p, b)| before.get(*p) != Some(b))
                .map(|(p, _)| format!("{} changed/created", p.display()))
                .chain(before.keys().filter(|p| !after.contains_key(*p)).map(|p| format!("{} removed", p.display())))
                .collect();
            why.push(changed.join(", "));
            // Restore, so one failure does not cascade.
            for (p, b) in &before {
                std::fs::write(p, b).unwrap();
            }
            for p in after.keys().filter(|p| !before.contains_key(*p)) {
                let _ = std::fs::remove_file(p);
            }
        }
        if !why.is_empty() {
            failures.push(format!("{}: {}\n    stderr: {}", c.name, why.join("; "), err.trim()));
        }
    }
    println!("{} bad-input cases", cases.len());
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}

fn set_skip(q: &mut serde_json::Value, to: usize) {
    let layers = q["layers"].as_array_mut().unwrap();
    let add = layers.iter_mut().find(|l| l["op"] == "add").expect("the tiny model has a residual add");
    add["skip"] = to.into();
}

fn flate2_read(p: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(p).unwrap()).read_to_end(&mut out).unwrap();
    out
}
