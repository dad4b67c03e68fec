//! `microcnn` — train a small CNN on your images, quantize it to int8 and emit Rust for a
//! microcontroller. Run `microcnn --help`, or `microcnn <command> --help` for each step.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use host_train::augment::Augment;
use host_train::checkpoint::{self, Progress};
use host_train::data::{self, Dataset};
use host_train::net::Net;
use host_train::spec::ModelSpec;
use host_train::train::{self, Optimizer, Schedule, TrainConfig};
use host_train::{plot, transfer};
use std::path::{Path, PathBuf};

/// The model trained when no `--model` file is given: LeNet-sized, ≈65 k parameters.
pub const DEFAULT_MODEL: &str = include_str!("../../models/fashion/model.toml");

#[derive(Parser)]
#[command(
    name = "microcnn",
    version,
    about = "Train a small CNN, quantize it to int8 and emit Rust for Cortex-M.",
    long_about = "Train a small CNN on your images, quantize it to int8 and emit Rust for Cortex-M.\n\n\
A typical session:\n  \
microcnn summary                       # look at the default model: shapes, parameters, MACs, memory\n  \
microcnn train --epochs 10 --out out/   # train on Fashion-MNIST (apt-get install dataset-fashion-mnist)\n  \
microcnn quantize --checkpoint out/model.safetensors --out out/\n  \
microcnn emit --model-dir out/           # writes out/model.rs for the no_std runtime\n\n\
Bring your own data with --folder DIR (one sub-folder per class) or --csv FILE, and your own\n\
network with --model FILE.toml (see models/fashion/model.toml for the format)."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Print a Keras-style table of a model: output shapes, parameters, MACs, activation bytes.
    Summary {
        /// Model description (TOML). Defaults to the built-in Fashion-MNIST model.
        #[arg(long)]
        model: Option<PathBuf>,
    },
    /// Train a model from scratch (or resume a checkpoint) and evaluate it on the test split.
    Train(TrainArgs),
    /// Transfer learning: start from a trained checkpoint, replace the classifier head, freeze
    /// layers and fine-tune on new data.
    Finetune(FinetuneArgs),
    /// Accuracy of a checkpoint on a data set (and optionally its confusion matrix as a PNG).
    Evaluate {
        /// Checkpoint to evaluate.
        #[arg(long)]
        checkpoint: PathBuf,
        /// Also write the confusion matrix heat map here.
        #[arg(long)]
        confusion: Option<PathBuf>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Post-training int8 quantization: calibrate activation ranges, quantize weights per
    /// channel, and report float vs int8 accuracy (int8 computed by the runtime kernels).
    Quantize {
        /// Trained checkpoint.
        #[arg(long)]
        checkpoint: PathBuf,
        #[command(flatten)]
        data: DataArgs,
        /// Calibration method.
        #[arg(long, value_enum, default_value = "percentile")]
        calibration: host_train::quantize::Calibration,
        /// Training images used for calibration.
        #[arg(long, default_value_t = 1000)]
        calib_count: usize,
        /// Fail if int8 accuracy is more than this many percentage points below float.
        #[arg(long)]
        max_accuracy_drop: Option<f32>,
        /// Evaluate on only the first N test images.
        #[arg(long)]
        test_limit: Option<usize>,
        /// Output folder (writes quantized.json and report.txt).
        #[arg(long, default_value = "out")]
        out: PathBuf,
    },
    /// Generate Rust for the runtime from a quantized model (DIR/quantized.json → DIR/model.rs),
    /// or with --check report drift between the committed file and the generator.
    Emit {
        /// Folder holding quantized.json.
        #[arg(long, default_value = "out")]
        model_dir: PathBuf,
        /// Compare instead of writing; exit non-zero on any difference.
        #[arg(long)]
        check: bool,
        /// Fail if weights exceed this many bytes of flash.
        #[arg(long)]
        max_flash: Option<usize>,
        /// Fail if the arena plus input and output exceed this many bytes of RAM.
        #[arg(long)]
        max_ram: Option<usize>,
        /// Also write DIR/test_vectors.rs: the first N test images, their labels and the host
        /// runtime's expected int8 scores, for on-target bit-exactness checks.
        #[arg(long)]
        test_images: Option<usize>,
        #[command(flatten)]
        data: DataArgs,
    },
    /// Write a quantized model (DIR/quantized.json) as an int8 TensorFlow Lite flatbuffer
    /// (DIR/model.tflite) that Netron, TFLite and TFLite Micro open; `--check` reports drift.
    ExportTflite {
        /// Folder holding quantized.json.
        #[arg(long, default_value = "out")]
        model_dir: PathBuf,
        /// Compare with the committed file instead of writing.
        #[arg(long)]
        check: bool,
    },
    /// Redraw the loss/accuracy curves of a finished run from its history.json.
    PlotHistory {
        /// history.json written by `train` or `finetune`.
        #[arg(long)]
        history: PathBuf,
        /// Output PNG.
        #[arg(long, default_value = "curves.png")]
        out: PathBuf,
    },
    /// Write a PNG grid of augmented training images, to see what the network will see.
    AugmentPreview {
        #[command(flatten)]
        data: DataArgs,
        #[command(flatten)]
        aug: AugArgs,
        /// Output PNG.
        #[arg(long, default_value = "augment-preview.png")]
        out: PathBuf,
        /// Number of source images (each shown with 7 augmented versions).
        #[arg(long, default_value_t = 8)]
        images: usize,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

#[derive(Args, Clone)]
struct DataArgs {
    /// Folder with Fashion-MNIST/MNIST IDX files (`train-…` and `t10k-…`, gzipped or not).
    #[arg(long, default_value = data::FASHION_DIR)]
    data: PathBuf,
    /// Use an MNIST-format CSV file instead (784 pixels then the label per line).
    #[arg(long, conflicts_with = "folder")]
    csv: Option<PathBuf>,
    /// Use a folder of images instead: FOLDER/CLASS_NAME/*.png or *.jpg, resized to the model input.
    #[arg(long)]
    folder: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct AugArgs {
    /// Augmentation preset: `none` (default; best for the default 15-epoch Fashion-MNIST run),
    /// `fashion` (flips + 2-pixel shifts), `digits` (shifts and small rotations, no flips),
    /// `outline` (flips + shifts, and half the images replaced by their edge outline, so filled
    /// shapes also appear as strokes) or `strong` (flips, rotation, translation, colour jitter).
    /// See them with `augment-preview`.
    #[arg(long, default_value = "none")]
    augment: String,
}

impl AugArgs {
    fn get(&self) -> Result<Augment> {
        Ok(match self.augment.as_str() {
            "none" => Augment::default(),
            "fashion" => Augment::fashion(),
            "digits" => Augment { crop_pad: 2, rotate_deg: 8.0, ..Default::default() },
            "outline" => Augment { hflip: 0.5, crop_pad: 2, rotate_deg: 10.0, outline: 0.5, ..Default::default() },
            "strong" => Augment {
                hflip: 0.5,
                crop_pad: 2,
                rotate_deg: 10.0,
                translate: 0.05,
                brightness: 0.1,
                contrast: 0.2,
                saturation: 0.2,
                hue: 0.02,
                grayscale: 0.1,
                ..Default::default()
            },
            other => bail!("unknown augmentation preset `{other}`: use none, fashion, digits, outline or strong"),
        })
    }
}

#[derive(Args, Clone)]
struct OptArgs {
    /// Epochs.
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    /// Mini-batch size.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Base learning rate.
    #[arg(long, default_value_t = 2e-3)]
    lr: f32,
    /// Optimiser.
    #[arg(long, value_enum, default_value = "adam")]
    optimizer: Optimizer,
    /// Learning-rate schedule.
    #[arg(long, value_enum, default_value = "cosine")]
    schedule: Schedule,
    /// Decoupled weight decay.
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f32,
    /// Seed: the same seed gives the same model.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Train on only the first N training images (quick experiments).
    #[arg(long)]
    limit: Option<usize>,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// Training threads (each batch is split between them; results are reproducible for a
    /// given thread count). Defaults to the number of CPU cores.
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args)]
struct TrainArgs {
    /// Model description (TOML); defaults to the built-in Fashion-MNIST model.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Resume from this checkpoint (continues up to --epochs).
    #[arg(long)]
    resume: Option<PathBuf>,
    #[command(flatten)]
    data: DataArgs,
    #[command(flatten)]
    aug: AugArgs,
    #[command(flatten)]
    opt: OptArgs,
    /// Output folder: model.safetensors, curves.png, confusion.png, history.json.
    #[arg(long, default_value = "out")]
    out: PathBuf,
}

#[derive(Args)]
struct FinetuneArgs {
    /// Pre-trained checkpoint.
    #[arg(long)]
    from: PathBuf,
    #[command(flatten)]
    data: DataArgs,
    /// Labelled training images to use (the rest of the set is held out for testing when the
    /// data has no separate test split).
    #[arg(long, default_value_t = 500)]
    train_count: usize,
    /// Freeze these layers (comma-separated names, see `summary`).
    #[arg(long, value_delimiter = ',')]
    freeze: Vec<String>,
    /// Freeze all weighted layers but the last N (default when --freeze is not given: 1).
    #[arg(long)]
    train_last: Option<usize>,
    /// Re-initialise the last N weighted layers (default 1: only the new head); the layers
    /// before them keep their pre-trained weights.
    #[arg(long, default_value_t = 1)]
    reset_last: usize,
    /// Unfreeze everything after this many epochs and continue at a lower learning rate.
    #[arg(long)]
    unfreeze_after: Option<usize>,
    /// Learning-rate factor after unfreezing.
    #[arg(long, default_value_t = 0.1)]
    unfreeze_lr_scale: f32,
    /// Train the same network from scratch on the same images, for comparison.
    #[arg(long)]
    compare_scratch: bool,
    #[command(flatten)]
    aug: AugArgs,
    #[command(flatten)]
    opt: OptArgs,
    /// Output folder.
    #[arg(long, default_value = "out-finetune")]
    out: PathBuf,
}

/// Loads train and test splits for the chosen source.
fn load_data(a: &DataArgs, input: [usize; 3]) -> Result<(Dataset, Option<Dataset>)> {
    if let Some(csv) = &a.csv {
        return Ok((data::load_csv(csv, input[0])?, None));
    }
    if let Some(folder) = &a.folder {
        return Ok((data::load_folder(folder, input[0], input[1], input[2])?, None));
    }
    Ok((data::load_fashion(&a.data, "train")?, Some(data::load_fashion(&a.data, "t10k")?)))
}

fn load_spec(path: &Option<PathBuf>) -> Result<ModelSpec> {
    let text = match path {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("cannot read model file {}", p.display()))?,
        None => DEFAULT_MODEL.to_string(),
    };
    let spec = ModelSpec::from_toml(&text).with_context(|| {
        format!("model file {}: invalid description", path.as_deref().unwrap_or(Path::new("(built-in)")).display())
    })?;
    spec.resolve()?;
    Ok(spec)
}

fn config(o: &OptArgs, aug: Augment, checkpoint: Option<PathBuf>) -> TrainConfig {
    TrainConfig {
        epochs: o.epochs,
        batch: o.batch,
        lr: o.lr,
        optimizer: o.optimizer,
        schedule: o.schedule,
        weight_decay: o.weight_decay,
        seed: o.seed,
        augment: aug,
        checkpoint,
        progress: !o.quiet,
        threads: o.threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)),
    }
}

/// Loss (scaled to its maximum), train and test accuracy per epoch as a PNG.
fn plot_curves(hist: &[train::EpochStats], path: &Path) -> Result<()> {
    let max_loss = hist.iter().map(|h| h.loss).fold(1e-6, f32::max);
    plot::curves(
        &[
            ("loss", hist.iter().map(|h| h.loss / max_loss).collect(), [200, 60, 40]),
            ("train acc", hist.iter().map(|h| h.train_acc).collect(), [40, 90, 200]),
            ("test acc", hist.iter().filter_map(|h| h.val_acc).collect(), [30, 160, 60]),
        ],
        path,
    )
}

/// Writes curves, confusion matrix and history; prints the test accuracy.
fn report(net: &mut Net, hist: &[train::EpochStats], test: &Dataset, out: &Path) -> Result<f32> {
    let k = net.num_classes();
    let pred = net.predict(&test.images, 256);
    let mut cm = vec![vec![0usize; k]; k];
    for (p, &l) in pred.iter().zip(&test.labels) {
        cm[l as usize][*p] += 1;
    }
    let acc = pred.iter().zip(&test.labels).filter(|(p, &l)| **p == l as usize).count() as f32 / test.len() as f32;
    plot_curves(hist, &out.join("curves.png"))?;
    plot::confusion(&cm, &out.join("confusion.png"))?;
    checkpoint::write_atomic(&out.join("history.json"), serde_json::to_string_pretty(hist)?.as_bytes())?;
    let names: Vec<String> =
        (0..k).map(|i| net.spec.classes.get(i).cloned().unwrap_or_else(|| i.to_string())).collect();
    println!("\nconfusion matrix (rows: true class, columns: predicted)");
    print!("{:>12}", "");
    for j in 0..k {
        print!("{j:>5}");
    }
    println!("   recall");
    for (i, row) in cm.iter().enumerate() {
        let n: usize = row.iter().sum();
        print!("{:>12}", names[i].chars().take(11).collect::<String>());
        for v in row {
            print!("{v:>5}");
        }
        println!("   {:5.1}%", 100.0 * row[i] as f32 / n.max(1) as f32);
    }
    println!(
        "\ntest accuracy: {:.2}% on {} images   (curves: {}, confusion: {})",
        100.0 * acc,
        test.len(),
        out.join("curves.png").display(),
        out.join("confusion.png").display()
    );
    Ok(acc)
}

fn cmd_train(a: TrainArgs) -> Result<()> {
    let (mut net, start) = match &a.resume {
        Some(p) => checkpoint::load(p)?,
        None => (Net::new(load_spec(&a.model)?, a.opt.seed)?, Progress::default()),
    };
    let (mut train_set, test) = load_data(&a.data, net.spec.input)?;
    if net.spec.classes.is_empty() && train_set.classes.len() == net.num_classes() {
        net.spec.classes = train_set.classes.clone();
    }
    if let Some(n) = a.opt.limit {
        train_set = train_set.take(n);
    }
    println!("{}", host_train::spec::summary(&net.spec)?);
    println!(
        "training on {} images, {} epochs, batch {}, {:?} lr {}",
        train_set.len(),
        a.opt.epochs,
        a.opt.batch,
        a.opt.optimizer,
        a.opt.lr
    );
    let ckpt = a.out.join("model.safetensors");
    let cfg = config(&a.opt, a.aug.get()?, Some(ckpt.clone()));
    let hist = train::train(&mut net, &train_set, test.as_ref(), &cfg, start)?;
    let test = test.unwrap_or_else(|| train_set.clone());
    report(&mut net, &hist, &test, &a.out)?;
    println!("checkpoint: {}", ckpt.display());
    Ok(())
}

fn cmd_finetune(a: FinetuneArgs) -> Result<()> {
    let (mut net, _) = checkpoint::load(&a.from)?;
    let (all, test) = load_data(&a.data, net.spec.input)?;
    // Stratified: the first train_count images after a seeded shuffle; the rest is held out.
    let mut idx: Vec<usize> = (0..all.len()).collect();
    host_train::rng::Rng::new(a.opt.seed).shuffle(&mut idx);
    if a.train_count == 0 || a.train_count >= all.len() {
        bail!("--train-count must be between 1 and {} (the data has {} images)", all.len() - 1, all.len());
    }
    let train_set = all.subset(&idx[..a.train_count]);
    let test = test.unwrap_or_else(|| all.subset(&idx[a.train_count..]));
    let k = all.num_classes();
    let before: Vec<(String, Vec<f32>)> = net.params().map(|p| (p.name.clone(), p.value.clone())).collect();
    transfer::replace_head(&mut net, k, all.classes.clone(), a.opt.seed)?;
    transfer::reset_optimizer(&mut net);
    transfer::reinit_last(&mut net, a.reset_last.max(1), a.opt.seed);
    if a.freeze.is_empty() {
        transfer::freeze_all_but_last(&mut net, a.train_last.unwrap_or(1));
    } else {
        transfer::freeze_named(&mut net, &a.freeze)?;
    }
    println!(
        "fine-tuning on {} labelled images, testing on {}; frozen: {}",
        train_set.len(),
        test.len(),
        transfer::frozen_layers(&net).join(", ")
    );
    let aug = a.aug.get()?;
    let ckpt = a.out.join("model.safetensors");
    let phase1 = a.unfreeze_after.unwrap_or(a.opt.epochs).min(a.opt.epochs);
    let mut cfg = config(&a.opt, aug.clone(), Some(ckpt.clone()));
    cfg.epochs = phase1;
    let mut hist = train::train(&mut net, &train_set, Some(&test), &cfg, Progress::default())?;
    for p in net.params().filter(|p| p.frozen) {
        let orig = &before.iter().find(|(n, _)| n == &p.name).expect("same layers").1;
        assert!(orig == &p.value, "frozen layer changed");
    }
    if phase1 < a.opt.epochs {
        transfer::unfreeze_all(&mut net);
        transfer::reset_optimizer(&mut net);
        println!("unfreezing all layers, learning rate ×{}", a.unfreeze_lr_scale);
        let mut cfg2 = config(&a.opt, aug.clone(), Some(ckpt.clone()));
        cfg2.lr *= a.unfreeze_lr_scale;
        hist.extend(train::train(&mut net, &train_set, Some(&test), &cfg2, Progress { epoch: phase1, step: 0 })?);
    }
    let acc = report(&mut net, &hist, &test, &a.out)?;
    if a.compare_scratch {
        let mut scratch = Net::new(net.spec.clone(), a.opt.seed)?;
        let cfg = config(&a.opt, aug, None);
        train::train(&mut scratch, &train_set, Some(&test), &cfg, Progress::default())?;
        let s = train::accuracy(&mut scratch, &test);
        println!(
            "\ntransfer: {:.2}%   from scratch on the same {} images: {:.2}%",
            100.0 * acc,
            train_set.len(),
            100.0 * s
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Summary { model } => print!("{}", host_train::spec::summary(&load_spec(&model)?)?),
        Cmd::Train(a) => cmd_train(a)?,
        Cmd::Finetune(a) => cmd_finetune(a)?,
        Cmd::Evaluate { checkpoint, confusion, data } => {
            let (mut net, _) = checkpoint::load(&checkpoint)?;
            let (train_set, test) = load_data(&data, net.spec.input)?;
            let d = test.unwrap_or(train_set);
            let pred = net.predict(&d.images, 256);
            let k = net.num_classes();
            let mut cm = vec![vec![0usize; k]; k];
            for (p, &l) in pred.iter().zip(&d.labels) {
                if (l as usize) < k {
                    cm[l as usize][*p] += 1;
                }
            }
            let right = pred.iter().zip(&d.labels).filter(|(p, &l)| **p == l as usize).count();
            println!("accuracy: {:.2}% on {} images", 100.0 * right as f32 / d.len().max(1) as f32, d.len());
            if let Some(path) = confusion {
                plot::confusion(&cm, &path)?;
                println!("wrote {}", path.display());
            }
        }
        Cmd::Quantize { checkpoint, data, calibration, calib_count, max_accuracy_drop, test_limit, out } => {
            let (mut net, _) = checkpoint::load(&checkpoint)?;
            let (train_set, test) = load_data(&data, net.spec.input)?;
            let mut test = test.unwrap_or_else(|| train_set.clone());
            if let Some(n) = test_limit {
                test = test.take(n);
            }
            let calib = train_set.take(calib_count);
            let source = format!(
                "checkpoint {}, {:?} calibration on {} training images",
                checkpoint.display(),
                calibration,
                calib.len()
            );
            let q = host_train::quantize::quantize(&mut net, &calib, calibration, source)?;
            let float_acc = train::accuracy(&mut net, &test);
            let (int8_acc, _) = host_train::quantize::evaluate(&q, &test)?;
            let rep = host_train::report::table(&q, Some((float_acc, int8_acc, test.len())));
            print!("{rep}");
            checkpoint::write_atomic(&out.join("quantized.json"), serde_json::to_string(&q)?.as_bytes())?;
            checkpoint::write_atomic(&out.join("report.txt"), rep.as_bytes())?;
            println!("wrote {} and {}", out.join("quantized.json").display(), out.join("report.txt").display());
            if let Some(max) = max_accuracy_drop {
                let drop = 100.0 * (float_acc - int8_acc);
                if drop > max {
                    bail!("int8 accuracy is {drop:.2} points below float, more than --max-accuracy-drop {max}: try --calibration minmax, more --calib-count, or retrain");
                }
            }
        }
        Cmd::Emit { model_dir, check, max_flash, max_ram, test_images, data } => {
            let q = host_train::report::emit_cmd(&model_dir, check, max_flash, max_ram)?;
            if let Some(n) = test_images {
                let (train_set, test) = load_data(&data, q.input)?;
                let test = test.unwrap_or(train_set).take(n);
                host_train::report::write_test_vectors(&q, &test, &model_dir.join("test_vectors.rs"))?;
            }
        }
        Cmd::ExportTflite { model_dir, check } => {
            let qpath = model_dir.join("quantized.json");
            let text = std::fs::read_to_string(&qpath)
                .with_context(|| format!("cannot read {} (run `microcnn quantize` first)", qpath.display()))?;
            let q: host_train::quantize::QModel = serde_json::from_str(&text)?;
            let bytes = host_train::tflite::export(&q)?;
            let path = model_dir.join("model.tflite");
            if check {
                if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
                    bail!("{} differs from what export-tflite writes now: regenerate it", path.display());
                }
                println!("{}: up to date", path.display());
            } else {
                checkpoint::write_atomic(&path, &bytes)?;
                println!("wrote {} ({} bytes)", path.display(), bytes.len());
            }
        }
        Cmd::PlotHistory { history, out } => {
            let text =
                std::fs::read_to_string(&history).with_context(|| format!("cannot read {}", history.display()))?;
            let hist: Vec<train::EpochStats> = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a training history", history.display()))?;
            plot_curves(&hist, &out)?;
            println!("wrote {}", out.display());
        }
        Cmd::AugmentPreview { data, aug, out, images, seed } => {
            let (d, _) = load_data(&data, [28, 28, 1])?;
            let aug = aug.get()?;
            let mut rng = host_train::rng::Rng::new(seed);
            let mut tiles = Vec::new();
            for i in 0..images.min(d.len()) {
                tiles.push(d.image(i).to_vec());
                for _ in 0..7 {
                    let mut dst = vec![0.0; d.h * d.w * d.c];
                    aug.apply(d.image(i), &mut dst, d.h, d.w, d.c, &mut rng);
                    tiles.push(dst);
                }
            }
            plot::image_grid(&tiles, d.h, d.w, d.c, 8, 3, &out)?;
            println!("wrote {} (each row: original, then 7 augmented versions)", out.display());
        }
    }
    Ok(())
}
