//! Training, checkpoints, transfer learning and error handling on small real data.

mod common;
use host_train::model::spec::ModelSpec;
use host_train::rng::Rng;
use host_train::train::checkpoint::{self, Progress};
use host_train::train::loss::softmax_cross_entropy;
use host_train::train::net::Net;
use host_train::train::transfer;
use host_train::train::{self, Optimizer, Schedule, TrainConfig};

const SMALL: &str = r#"
name = "small"
input = [28, 28, 1]
[[layers]]
type = "conv"
name = "c1"
filters = 4
kernel = 3
stride = 2
padding = "same"
activation = "relu"
[[layers]]
type = "max_pool"
size = 2
[[layers]]
type = "dropout"
rate = 0.2
[[layers]]
type = "flatten"
[[layers]]
type = "dense"
name = "head"
units = 10
[[layers]]
type = "softmax"
"#;

fn cfg(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch: 32,
        lr: 5e-3,
        optimizer: Optimizer::Adam,
        schedule: Schedule::Cosine,
        weight_decay: 0.0,
        seed: 3,
        augment: Default::default(),
        checkpoint: None,
        progress: false,
        threads: 1,
        object_weight: 1.0,
        box_weight: 1.0,
    }
}

#[test]
fn training_learns_and_is_reproducible() {
    let d = common::fashion300();
    let spec = ModelSpec::from_toml(SMALL).unwrap();
    let mut a = Net::new(spec.clone(), 1).unwrap();
    let before = train::accuracy(&mut a, &d);
    let h1 = train::train(&mut a, &d, None, &cfg(4), Progress::default()).unwrap();
    let after = train::accuracy(&mut a, &d);
    assert!(after > before + 0.3, "accuracy {before} -> {after}");
    assert!(h1.last().unwrap().loss < h1[0].loss);
    let mut b = Net::new(spec, 1).unwrap();
    let h2 = train::train(&mut b, &d, None, &cfg(4), Progress::default()).unwrap();
    assert_eq!(h1.last().unwrap().loss, h2.last().unwrap().loss, "same seed, same run");
    assert!(a.params().zip(b.params()).all(|(x, y)| x.value == y.value));
}

#[test]
fn data_parallel_training_is_reproducible_and_learns() {
    let d = common::fashion300();
    let spec = ModelSpec::from_toml(SMALL).unwrap();
    let run = || {
        let mut net = Net::new(spec.clone(), 1).unwrap();
        let c = TrainConfig { threads: 2, ..cfg(4) };
        let h = train::train(&mut net, &d, None, &c, Progress::default()).unwrap();
        (net, h)
    };
    let (mut a, ha) = run();
    let (b, hb) = run();
    assert_eq!(ha.last().unwrap().loss, hb.last().unwrap().loss);
    assert!(a.params().zip(b.params()).all(|(x, y)| x.value == y.value), "2-thread runs differ");
    assert!(train::accuracy(&mut a, &d) > 0.5);
}

#[test]
fn saved_then_loaded_gives_identical_outputs_and_resumes() {
    let d = common::fashion300();
    let mut net = Net::new(ModelSpec::from_toml(SMALL).unwrap(), 2).unwrap();
    train::train(&mut net, &d, None, &cfg(1), Progress::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    checkpoint::save(&net, Progress { epoch: 1, step: 10 }, &path).unwrap();
    let (mut loaded, p) = checkpoint::load(&path).unwrap();
    assert_eq!(p, Progress { epoch: 1, step: 10 });
    let mut rng = Rng::new(0);
    let x = &d.images[..20 * 784];
    assert_eq!(net.forward(x, 20, false, &mut rng), loaded.forward(x, 20, false, &mut rng));
    // No temporary file is left behind by the atomic write.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // The same weights always give the same bytes (the header's keys are sorted).
    let first = std::fs::read(&path).unwrap();
    for _ in 0..5 {
        checkpoint::save(&net, Progress { epoch: 1, step: 10 }, &path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), first);
    }
}

#[test]
fn frozen_layers_are_bit_identical_after_fine_tuning() {
    let d = common::fashion300();
    let mut net = Net::new(ModelSpec::from_toml(SMALL).unwrap(), 4).unwrap();
    train::train(&mut net, &d, None, &cfg(1), Progress::default()).unwrap();
    let c1: Vec<Vec<f32>> = net.layers[0].params.iter().map(|p| p.value.clone()).collect();
    // New head for 5 classes (labels folded), everything but the head frozen.
    let mut five = d.clone();
    five.labels.iter_mut().for_each(|l| *l %= 5);
    transfer::replace_head(&mut net, 5, vec![], 9).unwrap();
    transfer::freeze_all_but_last(&mut net, 1);
    assert_eq!(transfer::frozen_layers(&net), vec!["c1".to_string()]);
    let head_before = net.layers[4].params[0].value.clone();
    train::train(&mut net, &five, None, &cfg(2), Progress::default()).unwrap();
    let after: Vec<Vec<f32>> = net.layers[0].params.iter().map(|p| p.value.clone()).collect();
    assert_eq!(c1, after, "frozen weights changed");
    assert_ne!(head_before, net.layers[4].params[0].value, "the head did train");
    assert_eq!(net.num_classes(), 5);
    assert!(transfer::freeze_named(&mut net, &["nope".into()])
        .unwrap_err()
        .to_string()
        .contains("no layer named `nope`"));
}

#[test]
fn impossible_stride_is_reported_with_layer_numbers_and_formula() {
    let bad = SMALL.replace("stride = 2\npadding = \"same\"", "stride = 3\npadding = \"valid\"");
    let err = ModelSpec::from_toml(&bad).unwrap().resolve().unwrap_err().to_string();
    // (28 − 3 + 0)/3 + 1 = 25/3 + 1: not whole.
    assert!(err.contains("layer `c1`"), "{err}");
    assert!(err.contains("25/3"), "{err}");
    assert!(err.contains("(W − K + P)/S + 1"), "{err}");
    let unknown = SMALL.replace("kernel = 3", "kernel = 3\nkernal = 2");
    assert!(ModelSpec::from_toml(&unknown).is_err(), "unknown keys are rejected");
    let no_flatten = SMALL.replace("[[layers]]\ntype = \"flatten\"\n", "");
    let e = ModelSpec::from_toml(&no_flatten).unwrap().resolve().unwrap_err().to_string();
    assert!(e.contains("add a `flatten`"), "{e}");
}

#[test]
fn truncated_or_wrong_data_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read(common::fixture_dir().join("fashion-300-images-idx3-ubyte.gz")).unwrap();
    let truncated = dir.path().join("t-images.gz");
    std::fs::write(&truncated, &src[..src.len() / 2]).unwrap();
    let labels = common::fixture_dir().join("fashion-300-labels-idx1-ubyte.gz");
    let e = format!("{:#}", host_train::data::load_idx(&truncated, &labels).unwrap_err());
    assert!(e.contains("t-images.gz") && (e.contains("truncated") || e.contains("corrupt")), "{e}");
    let e = host_train::data::load_idx(&labels, &labels).unwrap_err().to_string();
    assert!(e.contains("not an IDX image file"), "{e}");
    let csv = dir.path().join("bad.csv");
    std::fs::write(&csv, "1,2,3\n").unwrap();
    let e = host_train::data::load_csv(&csv, 28).unwrap_err().to_string();
    assert!(e.contains("bad.csv") && e.contains("line 1"), "{e}");
    let e = host_train::data::load_fashion(dir.path(), "train").unwrap_err().to_string();
    assert!(e.contains("apt-get install dataset-fashion-mnist"), "{e}");
}

/// Per-position weighted cross-entropy: its gradient is the finite difference of its loss.
#[test]
fn weighted_cross_entropy_gradient() {
    use host_train::train::loss::weighted_cross_entropy;
    let mut rng = Rng::new(3);
    let (k, rows) = (4, 6);
    let logits: Vec<f32> = (0..k * rows).map(|_| rng.range(-2.0, 2.0)).collect();
    let labels = [0u8, 3, 1, 0, 2, 0];
    let w = [1.0f32, 5.0, 5.0, 5.0];
    let mut g = vec![0.0; k * rows];
    weighted_cross_entropy(&logits, &labels, k, Some(&w), &mut g);
    for i in 0..k * rows {
        let mut l = logits.clone();
        let mut scratch = vec![0.0; k * rows];
        l[i] += 1e-3;
        let up = weighted_cross_entropy(&l, &labels, k, Some(&w), &mut scratch);
        l[i] -= 2e-3;
        let down = weighted_cross_entropy(&l, &labels, k, Some(&w), &mut scratch);
        let numeric = (up - down) / 2e-3;
        assert!((g[i] - numeric).abs() < 2e-3, "logit {i}: {} vs {numeric}", g[i]);
    }
    // Unweighted it is the plain cross-entropy.
    let mut a = vec![0.0; k * rows];
    let mut b = vec![0.0; k * rows];
    let la = weighted_cross_entropy(&logits, &labels, k, None, &mut a);
    let lb = softmax_cross_entropy(&logits, &labels, k, &mut b);
    assert_eq!((la, a), (lb, b));
}

/// Localization's loss (cross-entropy of the classes + smooth-L1 of the box): its gradient is
/// the finite difference of its loss, on both sides of the Huber kink and with large errors.
#[test]
fn localize_loss_gradient() {
    use host_train::train::loss::localize_loss;
    let mut rng = Rng::new(9);
    let (k, n) = (3, 5);
    let out: Vec<f32> = (0..(k + 4) * n).map(|_| rng.range(-4.0, 12.0)).collect();
    let labels = [0u8, 2, 1, 1, 0];
    let boxes: Vec<[f32; 4]> = (0..n).map(|_| [0; 4].map(|_| rng.range(0.0, 16.0))).collect();
    let mut g = vec![0.0; out.len()];
    let loss = localize_loss(&out, &labels, &boxes, k, 2.0, &mut g);
    assert!(loss.is_finite() && loss > 0.0);
    for i in 0..out.len() {
        let mut o = out.clone();
        let mut scratch = vec![0.0; out.len()];
        o[i] += 1e-3;
        let up = localize_loss(&o, &labels, &boxes, k, 2.0, &mut scratch);
        o[i] -= 2e-3;
        let down = localize_loss(&o, &labels, &boxes, k, 2.0, &mut scratch);
        let numeric = (up - down) / 2e-3;
        assert!((g[i] - numeric).abs() < 3e-3, "output {i}: {} vs {numeric}", g[i]);
    }
    // A perfect box costs nothing beyond the class term; its gradient there is zero.
    let mut exact = out.clone();
    for (b, t) in boxes.iter().enumerate() {
        exact[b * (k + 4) + k..(b + 1) * (k + 4)].copy_from_slice(t);
    }
    localize_loss(&exact, &labels, &boxes, k, 2.0, &mut g);
    assert!((0..n).all(|b| g[b * (k + 4) + k..(b + 1) * (k + 4)].iter().all(|&v| v == 0.0)));
}

/// The box target, the float decoding and the runtime's int8 decoding agree.
#[test]
fn box_targets_decode_back_to_their_boxes() {
    use host_train::report::metrics::box_from_units;
    use host_train::train::box_target;
    let bbox = [10.0f32, 4.0, 30.0, 60.0];
    let t = box_target(bbox, 64, 48);
    let b = box_from_units(&t, 64, 48);
    for (got, want) in [b.x0, b.y0, b.x1, b.y1].iter().zip(bbox) {
        assert!((got - want).abs() < 1e-4, "{b:?}");
    }
    // Quantized (a step is 1/128 of the side), the runtime's decode_box gives the same box to
    // within a step.
    let scale = 0.125f32;
    let q = t.map(|v| (v / scale).round().clamp(-128.0, 127.0) as i8);
    let d = microcnn::postprocess::decode_box(q, scale / 16.0, 0, microcnn::postprocess::BoxFormat::CxCyWh, 48, 64)
        .unwrap();
    for (got, want) in [d.x0, d.y0, d.x1, d.y1].iter().zip(bbox) {
        assert!((got - want).abs() <= 0.5, "{d:?}");
    }
}

/// A skip block validates its shapes, names its inner layers, and quantizes to requantize +
/// concatenation ops whose int8 outputs follow the float network.
#[test]
fn skip_blocks_validate_and_quantize() {
    let bad = "name = \"s\"\ninput = [8, 8, 1]\ntask = \"segment\"\n[[layers]]\ntype = \"skip\"\nname = \"blk\"\nlayers = [ { type = \"conv\", filters = 2, kernel = 3, stride = 2, padding = \"same\" } ]\n";
    let e = ModelSpec::from_toml(bad).unwrap().resolve().unwrap_err().to_string();
    assert!(e.contains("skip block `blk`") && e.contains("8×8 into 4×4"), "{e}");
    let good = bad.replace(
        "padding = \"same\" }",
        "padding = \"same\", activation = \"relu\" }, { type = \"upsample\", factor = 2 }",
    ) + "[[layers]]\ntype = \"pointwise\"\nfilters = 3\n";
    let spec = ModelSpec::from_toml(&good).unwrap();
    let r = spec.resolve().unwrap();
    assert_eq!((r[0].output.c, r[0].children[0].name.as_str()), (3, "blk.conv1"));
    int8_follows_float(spec, "blk.concat");
}

/// `n` random 8×8×1 images (label 0), seeded.
fn random_images(n: usize, seed: u64) -> host_train::data::Dataset {
    let mut rng = Rng::new(seed);
    host_train::data::Dataset {
        images: (0..n * 64).map(|_| rng.range(0.0, 1.0)).collect(),
        labels: vec![0; n],
        h: 8,
        w: 8,
        c: 1,
        ..Default::default()
    }
}

/// Quantizes a fresh `spec` (8×8×1 input) on random images, checks the graph has a layer named
/// `op`, and that the int8 outputs through the runtime stay within a few output steps of float.
fn int8_follows_float(spec: ModelSpec, op: &str) {
    let mut net = Net::new(spec, 4).unwrap();
    let data = random_images(16, 2);
    let q =
        host_train::graph::quantize(&mut net, &data, host_train::graph::Calibration::Minmax, "test".into()).unwrap();
    q.validate().unwrap();
    let ops: Vec<String> = q.layers.iter().map(|l| l.name.clone()).collect();
    assert!(ops.iter().any(|n| n == op), "{ops:?}");
    // int8 through the runtime against float, dequantized: within a few output steps.
    let out_q = q.layers.last().unwrap().output_q;
    let float = host_train::report::metrics::float_outputs(&mut net, &data);
    let mut arena = vec![0i8; q.plan().bytes];
    let mut y = vec![0i8; q.num_classes()];
    let mut worst = 0.0f32;
    for (i, f) in float.iter().enumerate() {
        q.run(&q.quantize_input(data.image(i)), &mut arena, &mut y).unwrap();
        for (&a, &b) in y.iter().zip(f) {
            worst = worst.max(((a as f32 - out_q.zero_point as f32) * out_q.scale - b).abs() / out_q.scale);
        }
    }
    assert!(worst <= 4.0, "int8 is {worst} output steps from float");
}

/// A decoder with a learned upsampling: transposed convolutions (2×2/2 valid and 3×3/2 same)
/// train, validate, name their layers and quantize to TRANSPOSE_CONV ops that follow float.
#[test]
fn transpose_conv_layers_validate_and_quantize() {
    let bad = "name = \"t\"\ninput = [8, 8, 1]\ntask = \"segment\"\n[[layers]]\ntype = \"transpose_conv\"\nfilters = 2\nkernel = 2\nstride = 2\npadding = [9, 9, 0, 0]\n";
    let e = ModelSpec::from_toml(bad).unwrap().resolve().unwrap_err().to_string();
    assert!(e.contains("transposeconv1") && e.contains("crop less"), "{e}");
    let good = "name = \"t\"\ninput = [8, 8, 1]\ntask = \"segment\"\n[[layers]]\ntype = \"conv\"\nfilters = 4\nkernel = 3\nstride = 2\npadding = \"same\"\nactivation = \"relu\"\n[[layers]]\ntype = \"conv\"\nfilters = 4\nkernel = 3\nstride = 2\npadding = \"same\"\nactivation = \"relu\"\n[[layers]]\ntype = \"transpose_conv\"\nname = \"up1\"\nfilters = 4\nkernel = 3\nstride = 2\npadding = \"same\"\nactivation = \"relu\"\n[[layers]]\ntype = \"transpose_conv\"\nname = \"up2\"\nfilters = 3\nkernel = 2\nstride = 2\n";
    let spec = ModelSpec::from_toml(good).unwrap();
    let r = spec.resolve().unwrap();
    assert_eq!((r[2].output.h, r[3].output.h, r[3].output.c), (4, 8, 3));
    int8_follows_float(spec, "up2");
}

#[test]
fn residual_blocks_validate_and_round_trip() {
    let bad = r#"
name = "r"
input = [8, 8, 2]
[[layers]]
type = "residual"
name = "blk"
layers = [ { type = "conv", filters = 3, kernel = 3, padding = "same" } ]
"#;
    let e = ModelSpec::from_toml(bad).unwrap().resolve().unwrap_err().to_string();
    assert!(e.contains("residual block `blk`") && e.contains("8×8×2 into 8×8×3"), "{e}");
    let good = bad.replace("filters = 3", "filters = 2")
        + "[[layers]]\ntype = \"global_avg_pool\"\n[[layers]]\ntype = \"dense\"\nunits = 4\n";
    let spec = ModelSpec::from_toml(&good).unwrap();
    let r = spec.resolve().unwrap();
    assert_eq!(r[0].children[0].name, "blk.conv1");
    let net = Net::new(spec, 3).unwrap();
    assert!(net.params().any(|p| p.name == "blk.conv1.weight"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.safetensors");
    checkpoint::save(&net, Progress::default(), &path).unwrap();
    let (loaded, _) = checkpoint::load(&path).unwrap();
    assert!(net.params().zip(loaded.params()).all(|(a, b)| a.name == b.name && a.value == b.value));
}

/// A localization head makes class scores and box numbers from one matrix: its dense layers are
/// quantized with one weight scale per unit, and its output range is narrowed to the box values
/// and each image's winning score, so the box keeps its precision through the runtime.
#[test]
fn localize_heads_quantize_per_unit_with_a_narrowed_output() {
    let toml = "name = \"l\"\ninput = [8, 8, 1]\ntask = \"localize\"\nclasses = [\"a\", \"b\", \"c\"]\n[[layers]]\ntype = \"conv\"\nfilters = 4\nkernel = 3\npadding = \"same\"\nactivation = \"relu\"\n[[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"dense\"\nname = \"fc\"\nunits = 8\nactivation = \"relu\"\n[[layers]]\ntype = \"dense\"\nname = \"head\"\nunits = 7\n";
    let mut net = Net::new(ModelSpec::from_toml(toml).unwrap(), 5).unwrap();
    let data = random_images(32, 3);
    let q =
        host_train::graph::quantize(&mut net, &data, host_train::graph::Calibration::Minmax, "test".into()).unwrap();
    q.validate().unwrap();
    for (name, units) in [("fc", 8), ("head", 7)] {
        let l = q.layers.iter().find(|l| l.name == name).unwrap();
        let host_train::graph::QOp::Dense { weight_scales, multiplier, .. } = &l.op else {
            panic!("{name} is not dense")
        };
        assert_eq!((weight_scales.len(), multiplier.len()), (units, units), "{name}");
    }
    let out_q = q.layers.last().unwrap().output_q;
    let float = host_train::report::metrics::float_outputs(&mut net, &data);
    let zp = out_q.zero_point as i32;
    let (lo, hi) = ((-128 - zp) as f32 * out_q.scale, (127 - zp) as f32 * out_q.scale);
    let mut arena = vec![0i8; q.plan().bytes];
    let mut y = vec![0i8; q.num_classes()];
    let (mut narrower, mut worst) = (false, 0.0f32);
    for (i, f) in float.iter().enumerate() {
        let winner = f[..3].iter().copied().fold(f32::MIN, f32::max);
        // Every box value and every winning score inside the range (to a rounding step).
        assert!(
            f[3..].iter().chain([&winner]).all(|&v| v >= lo - out_q.scale && v <= hi + out_q.scale),
            "{f:?} in {lo}..{hi}"
        );
        narrower |= f[..3].iter().any(|&v| v < lo - 2.0 * out_q.scale);
        q.run(&q.quantize_input(data.image(i)), &mut arena, &mut y).unwrap();
        for (&a, &b) in y[3..].iter().zip(&f[3..]) {
            worst = worst.max(((a as f32 - out_q.zero_point as f32) * out_q.scale - b).abs() / out_q.scale);
        }
    }
    assert!(worst <= 4.0, "the int8 box is {worst} output steps from float");
    // The losing scores of a random network reach below the lowest winner: the range was cut.
    assert!(narrower, "the output range was not narrowed below the class scores");
}
