//! The `microcnn` binary: bad input gives a clear error and writes nothing; image folders load.

use std::process::Command;

fn microcnn(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_microcnn")).args(args).output().expect("run microcnn")
}

#[test]
fn bad_model_file_fails_before_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("bad.toml");
    std::fs::write(
        &model,
        "name = \"bad\"\ninput = [7, 7, 1]\n[[layers]]\ntype = \"conv\"\nname = \"c\"\nfilters = 2\nkernel = 3\nstride = 3\n[[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"dense\"\nunits = 2\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let o =
        microcnn(&["train", "--model", model.to_str().unwrap(), "--data", fixtures, "--out", out.to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("layer `c`") && err.contains("4/3"), "{err}");
    assert!(!out.exists(), "a failed command must not create its output folder");
}

#[test]
fn missing_dataset_says_how_to_install_it() {
    let dir = tempfile::tempdir().unwrap();
    let o =
        microcnn(&["train", "--data", dir.path().to_str().unwrap(), "--out", dir.path().join("o").to_str().unwrap()]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("apt-get install dataset-fashion-mnist"), "{err}");
}

#[test]
fn summary_prints_the_table() {
    let o = microcnn(&["summary"]);
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("conv1") && s.contains("65162 parameters"), "{s}");
}

#[test]
fn image_folders_load_resized_with_sorted_class_names() {
    let dir = tempfile::tempdir().unwrap();
    for (class, shade) in [("cat", 40u8), ("dog", 200u8)] {
        let d = dir.path().join(class);
        std::fs::create_dir(&d).unwrap();
        for i in 0..3 {
            let img = image::RgbImage::from_pixel(10 + i, 12, image::Rgb([shade, shade, shade]));
            img.save(d.join(format!("{i}.png"))).unwrap();
        }
    }
    std::fs::write(dir.path().join("dog/readme.txt"), "not an image").unwrap();
    let grey = host_train::data::load_folder(dir.path(), 8, 8, 1).unwrap();
    assert_eq!((grey.len(), grey.h, grey.w, grey.c), (6, 8, 8, 1));
    assert_eq!(grey.classes, vec!["cat", "dog"]);
    assert_eq!(grey.labels, vec![0, 0, 0, 1, 1, 1]);
    assert!((grey.image(0)[0] - 40.0 / 255.0).abs() < 0.01 && (grey.image(5)[10] - 200.0 / 255.0).abs() < 0.01);
    let rgb = host_train::data::load_folder(dir.path(), 4, 5, 3).unwrap();
    assert_eq!(rgb.image(0).len(), 4 * 5 * 3);
    std::fs::write(dir.path().join("cat/broken.png"), b"\x89PNG garbage").unwrap();
    let e = format!("{:#}", host_train::data::load_folder(dir.path(), 8, 8, 1).unwrap_err());
    assert!(e.contains("broken.png"), "{e}");
}

#[test]
fn plot_history_draws_a_png() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c.png");
    let hist = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/tiny/history.json");
    let o = microcnn(&["plot-history", "--history", hist, "--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let img = image::open(&out).unwrap();
    assert_eq!((img.width(), img.height()), (960, 400));
}

/// The detection path from the command line: make a data set from the 300-image fixture, train
/// a tiny FOMO model for an epoch, evaluate it with overlay pictures; a classifier's overlays and
/// a second make-dataset over the first are refused without writing anything.
/// A Fashion-MNIST folder in `dir` (train and t10k: the 300-image fixture) for make-dataset.
fn fashion_source(dir: &std::path::Path) -> std::path::PathBuf {
    let src = dir.join("fashion");
    std::fs::create_dir_all(&src).unwrap();
    let fx = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    for split in ["train", "t10k"] {
        for (kind, idx) in [("images", "idx3"), ("labels", "idx1")] {
            std::fs::copy(
                format!("{fx}/fashion-300-{kind}-{idx}-ubyte.gz"),
                src.join(format!("{split}-{kind}-{idx}-ubyte.gz")),
            )
            .unwrap();
        }
    }
    src
}

#[test]
fn make_dataset_train_and_evaluate_a_detector() {
    let dir = tempfile::tempdir().unwrap();
    let src = fashion_source(dir.path());
    let p = |q: &std::path::Path| q.to_str().unwrap().to_string();
    let scenes = dir.path().join("scenes");
    let o = microcnn(&[
        "make-dataset",
        "--data",
        &p(&src),
        "--out",
        &p(&scenes),
        "--canvas",
        "48",
        "--train",
        "60",
        "--test",
        "10",
        "--max-objects",
        "2",
        "--max-scale",
        "1.2",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let again = microcnn(&["make-dataset", "--data", &p(&src), "--out", &p(&scenes), "--train", "5"]);
    assert!(!again.status.success() && String::from_utf8_lossy(&again.stderr).contains("not an empty folder"));
    let model = dir.path().join("fomo.toml");
    std::fs::write(
        &model,
        "name = \"f\"\ninput = [48, 48, 1]\ntask = \"detect\"\n[[layers]]\ntype = \"conv\"\nfilters = 4\nkernel = 3\nstride = 4\npadding = \"same\"\nactivation = \"relu\"\n[[layers]]\ntype = \"pointwise\"\nfilters = 11\n[[layers]]\ntype = \"softmax\"\n",
    )
    .unwrap();
    let run = dir.path().join("run");
    let o = microcnn(&[
        "train",
        "--model",
        &p(&model),
        "--scenes",
        &p(&scenes),
        "--epochs",
        "1",
        "--quiet",
        "--object-weight",
        "5",
        "--augment",
        "fashion",
        "--out",
        &p(&run),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stdout).contains("F1"));
    let ov = dir.path().join("ov");
    let ckpt = run.join("model.safetensors");
    let o = microcnn(&[
        "evaluate",
        "--checkpoint",
        &p(&ckpt),
        "--scenes",
        &p(&scenes),
        "--overlay-dir",
        &p(&ov),
        "--overlays",
        "3",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for i in 0..3 {
        let img = image::open(ov.join(format!("overlay-{i:03}.png"))).unwrap();
        assert_eq!(img.width(), 48 * 4);
    }
    // A classifier has no overlays: refused, nothing written.
    let ov2 = dir.path().join("ov2");
    let tiny = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/tiny/model.safetensors");
    let o = microcnn(&["evaluate", "--checkpoint", tiny, "--data", &p(&src), "--overlay-dir", &p(&ov2)]);
    assert!(!o.status.success() && !ov2.exists(), "{}", String::from_utf8_lossy(&o.stderr));
    // A detection model without --scenes is told what it needs.
    let o = microcnn(&["evaluate", "--checkpoint", &p(&ckpt), "--data", &p(&src)]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs --scenes"), "{}", String::from_utf8_lossy(&o.stderr));
}

/// Localization from end to end on a tiny data set: one box per canvas, a dense head of class
/// scores and a box, trained, scored (mean IoU), drawn, quantized and emitted with its box scale.
#[test]
fn make_dataset_train_quantize_and_emit_a_localizer() {
    let dir = tempfile::tempdir().unwrap();
    let src = fashion_source(dir.path());
    let p = |q: &std::path::Path| q.to_str().unwrap().to_string();
    let scenes = dir.path().join("scenes");
    let args = ["make-dataset", "--data", &p(&src), "--out", &p(&scenes), "--canvas", "40", "--train", "64"];
    let o = microcnn(&[&args[..], &["--test", "16", "--max-scale", "1.2", "--background", "noise"]].concat());
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let model = dir.path().join("loc.toml");
    let layers = "[[layers]]\ntype = \"conv\"\nfilters = 4\nkernel = 3\nstride = 4\npadding = \"same\"\nactivation = \"relu\"\n[[layers]]\ntype = \"flatten\"\n[[layers]]\ntype = \"dense\"\nunits = 14\n";
    std::fs::write(&model, format!("name = \"loc\"\ninput = [40, 40, 1]\ntask = \"localize\"\n{layers}")).unwrap();
    let run = dir.path().join("run");
    let o = microcnn(&[
        "train",
        "--model",
        &p(&model),
        "--scenes",
        &p(&scenes),
        "--epochs",
        "2",
        "--quiet",
        "--augment",
        "fashion",
        "--out",
        &p(&run),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("mean IoU") && stdout.contains("class accuracy"), "{stdout}");
    let ckpt = run.join("model.safetensors");
    let ov = dir.path().join("ov");
    let o = microcnn(&["evaluate", "--checkpoint", &p(&ckpt), "--scenes", &p(&scenes), "--overlay-dir", &p(&ov)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(image::open(ov.join("overlay-000.png")).unwrap().width(), 40 * 4);
    let q = dir.path().join("q");
    let o = microcnn(&["quantize", "--checkpoint", &p(&ckpt), "--scenes", &p(&scenes), "--out", &p(&q)]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(stdout.contains("localize on 16 test images: int8  class accuracy"), "{stdout}");
    let o = microcnn(&["emit", "--model-dir", &p(&q), "--test-images", "4", "--scenes", &p(&scenes)]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let code = std::fs::read_to_string(q.join("model.rs")).unwrap();
    assert!(code.contains("pub const TASK: &str = \"localize\";"));
    assert!(code.contains("pub const NUM_CLASSES: usize = 10;") && code.contains("pub const BOX_SCALE: f32"));
    // Two objects on a canvas: a localize model is told it learns one box per image.
    let multi = dir.path().join("multi");
    let o = microcnn(
        &[&args[..4], &[&p(&multi), "--canvas", "40", "--train", "8", "--max-scale", "1.2", "--max-objects", "3"]]
            .concat(),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = microcnn(&["train", "--model", &p(&model), "--scenes", &p(&multi), "--epochs", "1", "--out", &p(&run)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("exactly one box per image"), "{err}");
    // Ending a localize model in softmax is refused by the model check.
    std::fs::write(
        &model,
        format!("name = \"loc\"\ninput = [40, 40, 1]\ntask = \"localize\"\n{layers}[[layers]]\ntype = \"softmax\"\n"),
    )
    .unwrap();
    let o = microcnn(&["summary", "--model", &p(&model)]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot end in softmax"));
}
