//! `microcnn` — train a small CNN on your images, quantize it to int8 and emit Rust for a
//! microcontroller. Run `microcnn --help`, or `microcnn <command> --help` for each step.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use host_train::data::augment::Augment;
use host_train::data::{self, Dataset};
use host_train::files::fsio::Outputs;
use host_train::model::spec::{ModelSpec, Task};
use host_train::report::plot;
use host_train::train::checkpoint::{self, Progress};
use host_train::train::net::Net;
use host_train::train::transfer;
use host_train::train::{self, Optimizer, Schedule, TrainConfig};
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
        /// Detection and segmentation: write `overlay-NNN.png` pictures of the first
        /// `--overlays` test images into this folder (true vs predicted centres or class maps).
        #[arg(long)]
        overlay_dir: Option<PathBuf>,
        /// How many overlay pictures.
        #[arg(long, default_value_t = 8)]
        overlays: usize,
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
        calibration: host_train::graph::Calibration,
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
        /// Write DIR/test_vectors.rs from the inputs of a .npy batch instead (for imported
        /// models, which come without a data set): the host's outputs as expected values.
        #[arg(long, conflicts_with = "test_images")]
        test_inputs: Option<PathBuf>,
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
    /// Import a fully int8 TensorFlow Lite model (from Keras, PyTorch through litert-torch,
    /// Edge Impulse…) as DIR/quantized.json and DIR/report.txt, so `emit`, `export-tflite` and
    /// the QEMU apps take it like a trained model. Prints a per-layer summary; refuses, listing
    /// every unsupported operator, anything it cannot run exactly as TFLite Micro does.
    Import {
        /// The .tflite file.
        model: PathBuf,
        /// Output folder.
        #[arg(long)]
        out: PathBuf,
        /// Model name (a Rust identifier; default: the file name).
        #[arg(long)]
        name: Option<String>,
    },
    /// Run a batch through the runtime kernels on the host: DIR/quantized.json on the items of
    /// a .npy (int8 as is, float quantized with the model's input parameters), writing the int8
    /// outputs (or, with --float, the dequantized ones) as a .npy of shape [N, outputs].
    Run {
        /// Folder holding quantized.json.
        #[arg(long)]
        model_dir: PathBuf,
        /// Input batch (.npy).
        #[arg(long)]
        input: PathBuf,
        /// Output file (.npy).
        #[arg(long)]
        output: PathBuf,
        /// Write dequantized float32 outputs instead of int8.
        #[arg(long)]
        float: bool,
    },
    /// Run the same .npy batch through microcnn (DIR/quantized.json) and through TensorFlow
    /// Lite Micro (MODEL.tflite, with Python's `tflite-micro`) and compare every output element.
    Compare {
        /// Folder holding quantized.json.
        #[arg(long)]
        model_dir: PathBuf,
        /// The .tflite file TFLM runs.
        #[arg(long)]
        tflite: PathBuf,
        /// Input batch (.npy).
        #[arg(long)]
        input: PathBuf,
        /// Python interpreter with tflite-micro.
        #[arg(long, default_value = "python3")]
        python: String,
        /// Also compare every layer's output tensor (on the first item whose outputs differ, or
        /// item 0) and name the first layer that differs: a layer-by-layer debugger.
        #[arg(long)]
        layers: bool,
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
    /// Build a localization / detection / segmentation data set from a classification one:
    /// objects scaled and placed at random on larger canvases, written as PNG images with YOLO
    /// boxes, COCO annotations (boxes and centres) and PNG class masks. Seeded: the same command
    /// gives the same files. Writes nothing unless every file was made.
    MakeDataset {
        #[command(flatten)]
        data: DataArgs,
        /// Output folder (new or empty).
        #[arg(long)]
        out: PathBuf,
        /// Canvas side in pixels.
        #[arg(long, default_value_t = 64)]
        canvas: usize,
        /// Training canvases.
        #[arg(long, default_value_t = 4000)]
        train: usize,
        /// Test canvases.
        #[arg(long, default_value_t = 1000)]
        test: usize,
        /// Fewest objects per canvas.
        #[arg(long, default_value_t = 1)]
        min_objects: usize,
        /// Most objects per canvas.
        #[arg(long, default_value_t = 1)]
        max_objects: usize,
        /// Smallest scale of a 28×28 object.
        #[arg(long, default_value_t = 0.8)]
        min_scale: f32,
        /// Largest scale.
        #[arg(long, default_value_t = 1.5)]
        max_scale: f32,
        /// Background of the canvases.
        #[arg(long, value_enum, default_value_t = host_train::data::scenes::Background::Clutter)]
        background: host_train::data::scenes::Background,
        /// Seed of every random choice.
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
    /// Use a detection / segmentation data set instead (`make-dataset`'s layout: images/, COCO
    /// annotations/ or YOLO labels/, masks/), for a model with `task = "detect"` or `"segment"`.
    #[arg(long, conflicts_with_all = ["folder", "csv"])]
    scenes: Option<PathBuf>,
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
    /// Detection and segmentation: loss weight of cells/pixels labelled with an object, against 1
    /// for the background (FOMO weights objects up because they are a few cells among many).
    #[arg(long, default_value_t = 1.0)]
    object_weight: f32,
    /// Localization: loss weight of the box's smooth-L1 distance (in 1/16ths of the image side)
    /// against the class cross-entropy.
    #[arg(long, default_value_t = 1.0)]
    box_weight: f32,
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
    load_data_for(a, input, Task::Classify, [1, 1])
}

/// Loads train and test splits for a model with `task` and output grid `grid`.
fn load_data_for(a: &DataArgs, input: [usize; 3], task: Task, grid: [usize; 2]) -> Result<(Dataset, Option<Dataset>)> {
    if let Some(root) = &a.scenes {
        if task == Task::Classify {
            bail!("--scenes holds boxes and masks: train it with a model whose `task` is \"detect\" or \"segment\"");
        }
        let train = data::scenes::load_scenes(root, "train", task, input, grid)?;
        let test = data::scenes::load_scenes(root, "test", task, input, grid)?;
        return Ok((train, Some(test)));
    }
    if task != Task::Classify {
        bail!("a {task:?} model needs --scenes DIR (boxes or masks; `microcnn make-dataset` makes one)");
    }
    if let Some(csv) = &a.csv {
        if input[0] != input[1] || input[2] != 1 {
            bail!(
                "--csv holds square grey images, but the model input is {}×{}×{}: use --folder for other shapes",
                input[0],
                input[1],
                input[2]
            );
        }
        return Ok((data::load_csv(csv, input[0])?, None));
    }
    if let Some(folder) = &a.folder {
        return Ok((data::load_folder(folder, input[0], input[1], input[2])?, None));
    }
    Ok((data::load_fashion(&a.data, "train")?, Some(data::load_fashion(&a.data, "t10k")?)))
}

/// The files a data source reads (for the "never overwrite an input" check).
fn data_inputs(a: &DataArgs) -> Vec<PathBuf> {
    if let Some(s) = &a.scenes {
        return vec![s.clone()];
    }
    match (&a.csv, &a.folder) {
        (Some(c), _) => vec![c.clone()],
        (_, Some(f)) => vec![f.clone()],
        _ => ["train", "t10k"]
            .iter()
            .flat_map(|s| {
                [a.data.join(format!("{s}-images-idx3-ubyte.gz")), a.data.join(format!("{s}-labels-idx1-ubyte.gz"))]
            })
            .collect(),
    }
}

/// Describes a data source in messages.
fn data_name(a: &DataArgs) -> String {
    if let Some(s) = &a.scenes {
        return s.display().to_string();
    }
    match (&a.csv, &a.folder) {
        (Some(c), _) => c.display().to_string(),
        (_, Some(f)) => f.display().to_string(),
        _ => a.data.display().to_string(),
    }
}

/// Loads both splits and checks them against the model: size, channels and label range, with
/// the source named. The class names of a folder are kept; if the model has names too, they
/// must agree.
fn load_checked(
    a: &DataArgs,
    input: [usize; 3],
    classes: usize,
    model_classes: &[String],
    task: (Task, [usize; 2]),
) -> Result<(Dataset, Option<Dataset>)> {
    let (train_set, test) = load_data_for(a, input, task.0, task.1)?;
    let name = data_name(a);
    let split = |s: &str| {
        if a.csv.is_none() && a.folder.is_none() && a.scenes.is_none() {
            format!(
                "{} ({} split)",
                a.data.join(format!("{s}-*-ubyte.gz")).display(),
                if s == "t10k" { "test" } else { "training" }
            )
        } else {
            name.clone()
        }
    };
    train_set.check_fits(input, classes, &split("train"))?;
    if let Some(t) = &test {
        t.check_fits(input, classes, &split("t10k"))?;
    }
    if a.folder.is_some() && !model_classes.is_empty() && model_classes != train_set.classes.as_slice() {
        bail!(
            "{name}: the folder's classes are {:?} but the model's are {:?}: use the same class folders, or a model trained on them",
            train_set.classes,
            model_classes
        );
    }
    Ok((train_set, test))
}

fn load_spec(path: &Option<PathBuf>) -> Result<ModelSpec> {
    let text = match path {
        Some(p) => std::fs::read_to_string(p).with_context(|| format!("cannot read model file {}", p.display()))?,
        None => DEFAULT_MODEL.to_string(),
    };
    let name = path.as_deref().unwrap_or(Path::new("(built-in)")).display().to_string();
    let spec = ModelSpec::from_toml(&text).with_context(|| format!("model file {name}: invalid description"))?;
    spec.resolve().with_context(|| format!("model file {name}"))?;
    Ok(spec)
}

fn config(o: &OptArgs, aug: Augment, checkpoint: Option<PathBuf>) -> Result<TrainConfig> {
    if o.limit == Some(0) {
        bail!("--limit must be at least 1 (it keeps the first N training images)");
    }
    let cfg = TrainConfig {
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
        object_weight: o.object_weight,
        box_weight: o.box_weight,
    };
    cfg.check()?;
    Ok(cfg)
}

/// Loss, train and test accuracy per epoch as PNG bytes.
fn curves_png(hist: &[train::EpochStats]) -> Result<Vec<u8>> {
    let loss: Vec<f32> = hist.iter().map(|h| h.loss).collect();
    plot::curves(
        &loss,
        &[
            ("train", hist.iter().map(|h| h.train_acc).collect()),
            ("test", hist.iter().filter_map(|h| h.val_acc).collect()),
        ],
        // Detection and segmentation record their own metric too.
        hist.iter().any(|h| h.val_metric.is_some()).then(|| {
            ("test: centre F1, or mean IoU of masks or boxes", hist.iter().filter_map(|h| h.val_metric).collect())
        }),
    )
}

/// The confusion matrix of `net` on `d` (rows: true class) and the accuracy.
fn confusion(net: &mut Net, d: &Dataset) -> (Vec<Vec<usize>>, f32) {
    let k = net.num_classes();
    let pred = net.predict(&d.images, 256);
    let mut cm = vec![vec![0usize; k]; k];
    // Per image, or per cell/pixel of a dense task.
    let truth: &[u8] = if d.targets.is_empty() { &d.labels } else { &d.targets };
    for (p, &l) in pred.iter().zip(truth) {
        // Labels were checked against the class count when the data was loaded.
        if let Some(row) = cm.get_mut(l as usize) {
            if let Some(cell) = row.get_mut(*p) {
                *cell += 1;
            }
        }
    }
    let right = pred.iter().zip(truth).filter(|(p, &l)| **p == l as usize).count();
    (cm, right as f32 / truth.len().max(1) as f32)
}

/// Stages curves, confusion matrix and history in `out`; prints the test accuracy.
fn report(net: &mut Net, hist: &[train::EpochStats], test: &Dataset, dir: &Path, out: &mut Outputs) -> Result<f32> {
    let k = net.num_classes();
    let (cm, acc) = confusion(net, test);
    out.add(dir.join("curves.png"), curves_png(hist)?);
    let names: Vec<String> =
        (0..k).map(|i| net.spec.classes.get(i).cloned().unwrap_or_else(|| i.to_string())).collect();
    out.add(dir.join("confusion.png"), plot::confusion(&cm, &names)?);
    out.add(dir.join("history.json"), serde_json::to_string_pretty(hist)?);
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
    let what = if test.targets.is_empty() { "images" } else { "images (accuracy over every cell/pixel)" };
    println!(
        "\ntest accuracy: {:.2}% on {} {what}   (curves: {}, confusion: {})",
        100.0 * acc,
        test.len(),
        dir.join("curves.png").display(),
        dir.join("confusion.png").display()
    );
    if net.spec.task != Task::Classify {
        println!("test {}: {}", net.spec.task.name(), host_train::report::metrics::float_summary_line(net, test));
    }
    Ok(acc)
}

/// Where a run saves its progress after each epoch, until it finishes and writes `final_path`.
fn partial_path(final_path: &Path) -> PathBuf {
    final_path.with_extension("partial.safetensors")
}

/// The earlier epochs of a resumed run, from `history.json` beside its checkpoint (if their
/// count matches the checkpoint's), so a resumed run's history and curves stay whole.
fn earlier_history(resume: &Path, epochs: usize) -> Vec<train::EpochStats> {
    let path = resume.with_file_name("history.json");
    let Ok(text) = std::fs::read_to_string(path) else { return Vec::new() };
    match serde_json::from_str::<Vec<train::EpochStats>>(&text) {
        Ok(h) if h.len() == epochs && h.iter().enumerate().all(|(i, e)| e.epoch == i + 1) => h,
        _ => Vec::new(),
    }
}

fn cmd_train(a: TrainArgs) -> Result<()> {
    let aug = a.aug.get()?;
    let (mut net, start) = match &a.resume {
        Some(p) => checkpoint::load(p)?,
        None => (Net::new(load_spec(&a.model)?, a.opt.seed)?, Progress::default()),
    };
    let ckpt = a.out.join("model.safetensors");
    let partial = partial_path(&ckpt);
    let cfg = config(&a.opt, aug, Some(partial.clone()))?;
    if start.epoch >= cfg.epochs {
        bail!(
            "{}: already trained for {} epochs and --epochs is {}: raise --epochs to continue; nothing was written",
            a.resume.as_deref().unwrap_or(Path::new("")).display(),
            start.epoch,
            cfg.epochs
        );
    }
    let k = net.num_classes();
    let (mut train_set, test) =
        load_checked(&a.data, net.spec.input, k, &net.spec.classes, (net.spec.task, net.output_grid()))?;
    if net.spec.classes.is_empty() && train_set.classes.len() == k {
        net.spec.classes = train_set.classes.clone();
    }
    if let Some(n) = a.opt.limit {
        train_set = train_set.take(n);
    }
    let mut out = Outputs::new();
    out.forbid_overwriting(data_inputs(&a.data));
    out.forbid_overwriting(a.model.iter());
    for f in ["model.safetensors", "curves.png", "confusion.png", "history.json"] {
        out.add(a.out.join(f), Vec::new());
    }
    out.add(partial.clone(), Vec::new());
    out.check()?;
    println!("{}", host_train::model::spec::summary(&net.spec)?);
    if !train_set.classes.is_empty() {
        println!("classes: {}", train_set.classes.join(", "));
    }
    println!(
        "training on {} images, {} epochs, batch {}, {:?} lr {} (progress saved to {} after each epoch)",
        train_set.len(),
        a.opt.epochs,
        a.opt.batch,
        a.opt.optimizer,
        a.opt.lr,
        partial.display()
    );
    let resumed_from_partial = a.resume.as_deref().is_some_and(|r| host_train::files::fsio::same_file(r, &partial));
    let result = (|| -> Result<()> {
        let mut hist = a.resume.as_deref().map(|p| earlier_history(p, start.epoch)).unwrap_or_default();
        let new = train::train(&mut net, &train_set, test.as_ref(), &cfg, start)?;
        let progress = train::progress_after(start, &cfg, train_set.len());
        hist.extend(new);
        let test = test.unwrap_or_else(|| train_set.clone());
        let mut out = Outputs::new();
        out.forbid_overwriting(data_inputs(&a.data));
        report(&mut net, &hist, &test, &a.out, &mut out)?;
        out.add(ckpt.clone(), checkpoint::to_bytes(&net, progress)?);
        out.commit()?;
        println!("checkpoint: {}", ckpt.display());
        Ok(())
    })();
    if result.is_ok() || !resumed_from_partial {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

fn cmd_finetune(a: FinetuneArgs) -> Result<()> {
    let aug = a.aug.get()?;
    if !(a.unfreeze_lr_scale.is_finite() && a.unfreeze_lr_scale > 0.0) {
        bail!("--unfreeze-lr-scale {} must be a positive number", a.unfreeze_lr_scale);
    }
    let (mut net, _) = checkpoint::load(&a.from)?;
    let ckpt = a.out.join("model.safetensors");
    let partial = partial_path(&ckpt);
    let cfg = config(&a.opt, aug.clone(), Some(partial.clone()))?;
    let (all, test) = load_data(&a.data, net.spec.input)?;
    let name = data_name(&a.data);
    let k = all.num_classes();
    if k > host_train::data::MAX_CLASSES {
        bail!("{name}: {k} classes, more than {}", host_train::data::MAX_CLASSES);
    }
    all.check_fits(net.spec.input, k, &name)?;
    if let Some(t) = &test {
        t.check_fits(net.spec.input, k, &format!("{name} (test split)"))?;
    }
    // Stratified: the first train_count images after a seeded shuffle; the rest is held out.
    let mut idx: Vec<usize> = (0..all.len()).collect();
    host_train::rng::Rng::new(a.opt.seed).shuffle(&mut idx);
    if a.train_count == 0 || a.train_count >= all.len() {
        bail!(
            "--train-count must be between 1 and {} (the data has {} images)",
            all.len().saturating_sub(1),
            all.len()
        );
    }
    let train_set = all.subset(&idx[..a.train_count]);
    let test = test.unwrap_or_else(|| all.subset(&idx[a.train_count..]));
    let before: Vec<(String, Vec<f32>)> = net.params().map(|p| (p.name.clone(), p.value.clone())).collect();
    transfer::replace_head(&mut net, k, all.classes.clone(), a.opt.seed)?;
    transfer::reset_optimizer(&mut net);
    transfer::reinit_last(&mut net, a.reset_last.max(1), a.opt.seed);
    if a.freeze.is_empty() {
        transfer::freeze_all_but_last(&mut net, a.train_last.unwrap_or(1));
    } else {
        transfer::freeze_named(&mut net, &a.freeze)?;
    }
    let mut out = Outputs::new();
    out.forbid_overwriting(data_inputs(&a.data));
    out.forbid_overwriting([&a.from]);
    for f in ["model.safetensors", "curves.png", "confusion.png", "history.json"] {
        out.add(a.out.join(f), Vec::new());
    }
    out.add(partial.clone(), Vec::new());
    out.check()?;
    println!(
        "fine-tuning on {} labelled images, testing on {}; frozen: {}",
        train_set.len(),
        test.len(),
        transfer::frozen_layers(&net).join(", ")
    );
    let result = (|| -> Result<()> {
        let phase1 = a.unfreeze_after.unwrap_or(a.opt.epochs).min(a.opt.epochs);
        let mut hist = Vec::new();
        let mut progress = Progress::default();
        if phase1 > 0 {
            let mut cfg1 = cfg.clone();
            cfg1.epochs = phase1;
            hist = train::train(&mut net, &train_set, Some(&test), &cfg1, progress)?;
            progress = train::progress_after(progress, &cfg1, train_set.len());
        }
        for p in net.params().filter(|p| p.frozen) {
            match before.iter().find(|(n, _)| n == &p.name) {
                Some((_, orig)) if orig == &p.value => {}
                _ => bail!("internal error: frozen layer {} changed during fine-tuning", p.name),
            }
        }
        if phase1 < a.opt.epochs {
            transfer::unfreeze_all(&mut net);
            transfer::reset_optimizer(&mut net);
            println!("unfreezing all layers, learning rate ×{}", a.unfreeze_lr_scale);
            let mut cfg2 = cfg.clone();
            cfg2.lr *= a.unfreeze_lr_scale;
            cfg2.check()?;
            // The second phase restarts the optimiser, so its step count starts again at 0.
            let start = Progress { epoch: phase1, step: 0 };
            hist.extend(train::train(&mut net, &train_set, Some(&test), &cfg2, start)?);
            progress = train::progress_after(start, &cfg2, train_set.len());
        }
        let mut out = Outputs::new();
        out.forbid_overwriting(data_inputs(&a.data));
        out.forbid_overwriting([&a.from]);
        let acc = report(&mut net, &hist, &test, &a.out, &mut out)?;
        out.add(ckpt.clone(), checkpoint::to_bytes(&net, progress)?);
        out.commit()?;
        if a.compare_scratch {
            let mut scratch = Net::new(net.spec.clone(), a.opt.seed)?;
            let mut cfg = cfg.clone();
            cfg.checkpoint = None;
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
    })();
    let _ = std::fs::remove_file(&partial);
    result
}

fn run(cli: Cli) -> Result<()> {
    match cli.cmd {
        Cmd::Summary { model } => print!("{}", host_train::model::spec::summary(&load_spec(&model)?)?),
        Cmd::Train(a) => cmd_train(a)?,
        Cmd::Finetune(a) => cmd_finetune(a)?,
        Cmd::Evaluate { checkpoint: ckpt, confusion: cpath, overlay_dir, overlays, data } => {
            let mut out = Outputs::new();
            out.forbid_overwriting([&ckpt]);
            out.forbid_overwriting(data_inputs(&data));
            if let Some(p) = &cpath {
                host_train::files::fsio::require_extension(p, "png", "--confusion")?;
                out.add(p.clone(), Vec::new());
            }
            if overlays == 0 || overlays > 1000 {
                bail!("--overlays must be from 1 to 1000");
            }
            if let Some(dir) = &overlay_dir {
                for i in 0..overlays {
                    out.add(dir.join(format!("overlay-{i:03}.png")), Vec::new());
                }
            }
            out.check()?;
            let (mut net, _) = checkpoint::load(&ckpt)?;
            let k = net.num_classes();
            let (train_set, test) =
                load_checked(&data, net.spec.input, k, &net.spec.classes, (net.spec.task, net.output_grid()))?;
            let d = test.unwrap_or(train_set);
            // The outputs were checked above; stage only the files this data set gives.
            let mut out = Outputs::new();
            out.forbid_overwriting([&ckpt]);
            out.forbid_overwriting(data_inputs(&data));
            let (cm, acc) = confusion(&mut net, &d);
            println!("accuracy: {:.2}% on {} images", 100.0 * acc, d.len());
            let names: Vec<String> =
                (0..k).map(|i| net.spec.classes.get(i).cloned().unwrap_or_else(|| i.to_string())).collect();
            if net.spec.task == Task::Localize {
                use host_train::report::metrics;
                let outs = metrics::float_outputs(&mut net, &d);
                println!(
                    "{}: {}",
                    net.spec.task.name(),
                    metrics::localize_line(&metrics::localize_scores_f32(&outs, &d, k))
                );
                if let Some(dir) = &overlay_dir {
                    for (i, o) in outs.iter().enumerate().take(overlays.min(d.len())) {
                        let class = host_train::train::net::argmax(&o[..k]);
                        let b = metrics::box_from_units(&o[k..], d.h, d.w);
                        let png =
                            plot::localization_overlay(d.image(i), d.h, d.w, &d.objects[i][0], (class, b), &names, 4)?;
                        out.add(dir.join(format!("overlay-{i:03}.png")), png);
                    }
                }
            } else if net.spec.task != Task::Classify {
                use host_train::report::metrics;
                let outs = metrics::float_outputs_q(&mut net, &d);
                println!(
                    "{}: {}",
                    net.spec.task.name(),
                    metrics::summary_line(net.spec.task, &outs, (1.0 / 256.0, -128), &d, k)
                );
                if let Some(dir) = &overlay_dir {
                    for (i, o) in outs.iter().enumerate().take(overlays.min(d.len())) {
                        let png = if net.spec.task == Task::Detect {
                            let p: Vec<(usize, usize, usize, f32)> = metrics::peaks(o, d.grid, k, 0)
                                .into_iter()
                                .map(|(y, x, c, s)| (y, x, c, (s as f32 + 128.0) / 256.0))
                                .collect();
                            plot::detection_overlay(d.image(i), d.h, d.w, d.grid, &d.objects[i], &p, &names, 4)?
                        } else {
                            let mut map = vec![0u8; d.positions()];
                            microcnn::postprocess::argmax_map_i8(o, k, &mut map).map_err(|e| anyhow::anyhow!("{e}"))?;
                            plot::segmentation_overlay(
                                d.image(i),
                                d.h,
                                d.w,
                                d.grid,
                                d.target_block(i),
                                &map,
                                &names,
                                3,
                            )?
                        };
                        out.add(dir.join(format!("overlay-{i:03}.png")), png);
                    }
                }
            } else if overlay_dir.is_some() {
                bail!("--overlay-dir is for localization, detection and segmentation models");
            }
            if let Some(path) = &cpath {
                out.add(path.clone(), plot::confusion(&cm, &names)?);
                println!("wrote {}", path.display());
            }
            if let Some(dir) = &overlay_dir {
                println!("wrote {} overlay pictures to {}", overlays.min(d.len()), dir.display());
            }
            if cpath.is_some() || overlay_dir.is_some() {
                out.commit()?;
            }
        }
        Cmd::Quantize { checkpoint: ckpt, data, calibration, calib_count, max_accuracy_drop, test_limit, out: dir } => {
            if calib_count == 0 {
                bail!("--calib-count must be at least 1");
            }
            if test_limit == Some(0) {
                bail!("--test-limit must be at least 1");
            }
            if let Some(m) = max_accuracy_drop {
                if !(m.is_finite() && m >= 0.0) {
                    bail!("--max-accuracy-drop {m} must be zero or a positive number of points");
                }
            }
            let mut out = Outputs::new();
            out.forbid_overwriting([&ckpt]);
            out.forbid_overwriting(data_inputs(&data));
            out.add(dir.join("quantized.json"), Vec::new());
            out.add(dir.join("report.txt"), Vec::new());
            out.check()?;
            let (mut net, _) = checkpoint::load(&ckpt)?;
            let k = net.num_classes();
            let (train_set, test) =
                load_checked(&data, net.spec.input, k, &net.spec.classes, (net.spec.task, net.output_grid()))?;
            let mut test = test.unwrap_or_else(|| train_set.clone());
            if let Some(n) = test_limit {
                test = test.take(n);
            }
            let calib = train_set.take(calib_count);
            let source = format!(
                "checkpoint {}, {:?} calibration on {} training images",
                ckpt.display(),
                calibration,
                calib.len()
            );
            let q = host_train::graph::quantize(&mut net, &calib, calibration, source)?;
            q.validate().context("the quantized model is inconsistent (a bug: please report it)")?;
            let float_acc = train::accuracy(&mut net, &test);
            let (int8_acc, int8_outputs) = host_train::graph::evaluate(&q, &test)?;
            let mut rep = host_train::report::table(&q, Some((float_acc, int8_acc, test.len())));
            if q.task != Task::Classify {
                use host_train::report::metrics::{float_summary_line, summary_line};
                let kc = q.class_count();
                let last = q.layers.last().map_or(q.input_q, |l| l.output_q);
                rep.push_str(&format!(
                    "{} on {} test images: float {}\n{} on {} test images: int8  {}\n",
                    q.task.name(),
                    test.len(),
                    float_summary_line(&mut net, &test),
                    q.task.name(),
                    test.len(),
                    summary_line(q.task, &int8_outputs, (last.scale, last.zero_point), &test, kc)
                ));
            }
            print!("{rep}");
            if let Some(max) = max_accuracy_drop {
                let drop = 100.0 * (float_acc - int8_acc);
                if drop > max {
                    bail!("int8 accuracy is {drop:.2} points below float, more than --max-accuracy-drop {max}: try --calibration minmax, more --calib-count, or retrain. Nothing was written.");
                }
            }
            out.add(dir.join("quantized.json"), serde_json::to_string(&q)?);
            out.add(dir.join("report.txt"), rep);
            out.commit()?;
            println!("wrote {} and {}", dir.join("quantized.json").display(), dir.join("report.txt").display());
        }
        Cmd::Emit { model_dir, check, max_flash, max_ram, test_images, test_inputs, data } => {
            if test_images == Some(0) {
                bail!("--test-images must be at least 1");
            }
            let (q, code) = host_train::report::emit_cmd(&model_dir, check, max_flash, max_ram)?;
            let mut out = Outputs::new();
            out.forbid_overwriting([model_dir.join("quantized.json")]);
            out.forbid_overwriting(data_inputs(&data));
            if let Some(code) = code {
                out.add(model_dir.join("model.rs"), code);
            }
            if let Some(n) = test_images {
                let (train_set, test) = load_checked(
                    &data,
                    q.input,
                    q.class_count(),
                    &[],
                    (q.task, [q.output_shape()[0], q.output_shape()[1]]),
                )?;
                let test = test.unwrap_or(train_set).take(n);
                let (text, acc) = host_train::report::test_vectors(&q, &test)?;
                out.add(model_dir.join("test_vectors.rs"), text);
                println!("test vectors: {} images, host int8 accuracy {:.1}%", test.len(), 100.0 * acc);
            }
            if let Some(path) = &test_inputs {
                out.forbid_overwriting([path]);
                let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
                let items = host_train::files::npy::read_inputs(&bytes, &path.display().to_string(), &q)?;
                let name = path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
                out.add(
                    model_dir.join("test_vectors.rs"),
                    host_train::report::test_vectors_from_inputs(&q, &items, &name)?,
                );
                println!("test vectors: {} inputs from {}", items.len(), path.display());
            }
            let paths: Vec<String> = out.paths().map(|p| p.display().to_string()).collect();
            out.commit()?;
            for p in paths {
                println!(
                    "wrote {p} ({} bytes of flash for weights, arena {} bytes)",
                    host_train::report::flash_bytes(&q),
                    q.plan().bytes
                );
            }
        }
        Cmd::ExportTflite { model_dir, check } => {
            let q = host_train::report::load_qmodel(&model_dir)?;
            let bytes = host_train::files::tflite_export::export(&q)?;
            let path = model_dir.join("model.tflite");
            if check {
                if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
                    bail!("{} differs from what export-tflite writes now: regenerate it", path.display());
                }
                println!("{}: up to date", path.display());
            } else {
                host_train::files::fsio::write_atomic(&path, &bytes)?;
                println!("wrote {} ({} bytes)", path.display(), bytes.len());
            }
        }
        Cmd::Import { model, out: dir, name } => {
            // Without --name: what a microcnn export recorded, else the file name as an identifier.
            let stem = model.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
            let id: String =
                stem.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
            let default_name = if id.starts_with(|c: char| c.is_ascii_alphabetic()) { id } else { format!("m_{id}") };
            let mut out = Outputs::new();
            out.forbid_overwriting([&model]);
            out.add(dir.join("quantized.json"), Vec::new());
            out.add(dir.join("report.txt"), Vec::new());
            out.check()?;
            let meta = std::fs::metadata(&model).with_context(|| format!("cannot read {}", model.display()))?;
            if meta.len() > host_train::files::tflite_import::MAX_FILE_BYTES as u64 {
                bail!("{}: {} bytes is larger than a TFLite flatbuffer can be", model.display(), meta.len());
            }
            let bytes = std::fs::read(&model).with_context(|| format!("cannot read {}", model.display()))?;
            let imported = host_train::files::tflite_import::import_tflite(&bytes, name.as_deref(), &default_name)
                .with_context(|| format!("{}", model.display()))?;
            let q = imported.model;
            let mut rep = host_train::report::table(&q, None);
            // TFLite Micro's arena for the same file, when its Python package is here.
            match host_train::files::compare::tflm_arena_bytes(&model, "python3") {
                Ok(tflm) => rep.push_str(&format!(
                    "TFLite Micro's arena for this file: {tflm} bytes (its recording allocator); microcnn's: {} bytes ({})\n",
                    q.plan().bytes,
                    if q.plan().bytes <= tflm { "not more" } else { "MORE" }
                )),
                Err(e) => rep.push_str(&format!("TFLite Micro's arena: not measured ({e:#})\n")),
            }
            for note in &imported.notes {
                rep.push_str(&format!("note: {note}\n"));
            }
            print!("{rep}");
            out.add(dir.join("quantized.json"), serde_json::to_string(&q)?);
            out.add(dir.join("report.txt"), rep);
            out.commit()?;
            println!("wrote {} and {}", dir.join("quantized.json").display(), dir.join("report.txt").display());
        }
        Cmd::Run { model_dir, input, output, float } => {
            host_train::files::fsio::require_extension(&output, "npy", "--output")?;
            let mut out = Outputs::new();
            out.forbid_overwriting([&input, &model_dir.join("quantized.json")]);
            out.add(output.clone(), Vec::new());
            out.check()?;
            let q = host_train::report::load_qmodel(&model_dir)?;
            let bytes = std::fs::read(&input).with_context(|| format!("cannot read {}", input.display()))?;
            let items = host_train::files::npy::read_inputs(&bytes, &input.display().to_string(), &q)?;
            let plan = q.plan();
            let mut arena = vec![0i8; plan.bytes];
            let width = q.num_classes();
            let mut rows = Vec::with_capacity(items.len());
            for (k, x) in items.iter().enumerate() {
                let mut y = vec![0i8; width];
                q.run_planned(&plan, x, &mut arena, &mut y)
                    .map_err(|e| anyhow::anyhow!("item {k}: runtime error: {e}"))?;
                rows.push(y);
            }
            let last = q.layers.last().map(|l| l.output_q).unwrap_or(q.input_q);
            let npy = if float {
                host_train::files::npy::write_f32(&rows, width, last.scale, last.zero_point)?
            } else {
                host_train::files::npy::write_i8(&rows, width)?
            };
            out.add(output.clone(), npy);
            out.commit()?;
            println!(
                "wrote {} ({} × {width} {})",
                output.display(),
                rows.len(),
                if float { "float32" } else { "int8" }
            );
        }
        Cmd::Compare { model_dir, tflite, input, python, layers } => {
            let q = host_train::report::load_qmodel(&model_dir)?;
            let c = host_train::files::compare::compare(&q, &tflite, &input, &python)?;
            let (mut equal, mut total) = (0, 0);
            for (k, (e, n)) in c.items.iter().enumerate() {
                println!("item {k}: {e}/{n} outputs equal to TFLite Micro");
                equal += e;
                total += n;
            }
            println!("{equal}/{total} output elements equal");
            if layers {
                let bytes = std::fs::read(&tflite).with_context(|| format!("cannot read {}", tflite.display()))?;
                let imported = host_train::files::tflite_import::import_tflite(&bytes, None, "compared")
                    .with_context(|| format!("{}", tflite.display()))?;
                let same_graph = imported.model.layers.len() == q.layers.len()
                    && imported
                        .model
                        .layers
                        .iter()
                        .zip(&q.layers)
                        .all(|(a, b)| a.output == b.output && a.from == b.from);
                if !same_graph {
                    bail!(
                        "--layers: {} is not the model in {} (a different graph); import it again",
                        tflite.display(),
                        model_dir.display()
                    );
                }
                let item = c.first_difference.as_ref().map_or(0, |d| d.0);
                match host_train::files::compare::first_layer_difference(&q, &tflite, &input, item, &imported.tflite_tensors, &python)? {
                    None => println!("item {item}: every layer's output ({} tensors) equal to TFLite Micro's", q.layers.len()),
                    Some(d) => println!(
                        "item {item}: first difference at layer {} (`{}`, {}), element {}: microcnn {}, TFLite Micro {}",
                        d.layer,
                        q.layers[d.layer].name,
                        host_train::report::op_label(&q.layers[d.layer]),
                        d.index,
                        d.ours,
                        d.tflm
                    ),
                }
            }
            if let Some((k, i, ours, tflm)) = c.first_difference {
                bail!("item {k}, output {i}: microcnn {ours}, TFLite Micro {tflm}");
            }
        }
        Cmd::PlotHistory { history, out: png } => {
            host_train::files::fsio::require_extension(&png, "png", "--out")?;
            let mut out = Outputs::new();
            out.forbid_overwriting([&history]);
            out.add(png.clone(), Vec::new());
            out.check()?;
            let text =
                std::fs::read_to_string(&history).with_context(|| format!("cannot read {}", history.display()))?;
            let hist: Vec<train::EpochStats> = serde_json::from_str(&text)
                .with_context(|| format!("{}: not a training history", history.display()))?;
            if hist.is_empty() {
                bail!("{}: the history has no epochs", history.display());
            }
            if hist.iter().any(|h| !(h.loss.is_finite() && h.train_acc.is_finite())) {
                bail!("{}: the history holds non-finite values", history.display());
            }
            out.add(png.clone(), curves_png(&hist)?);
            out.commit()?;
            println!("wrote {}", png.display());
        }
        Cmd::AugmentPreview { data, aug, out: png, images, seed } => {
            host_train::files::fsio::require_extension(&png, "png", "--out")?;
            if images == 0 || images > 64 {
                bail!("--images must be from 1 to 64");
            }
            let mut out = Outputs::new();
            out.forbid_overwriting(data_inputs(&data));
            out.add(png.clone(), Vec::new());
            out.check()?;
            let aug = aug.get()?;
            let (d, _) = load_data(&data, [28, 28, 1])?;
            if d.is_empty() {
                bail!("{}: no images", data_name(&data));
            }
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
            out.add(png.clone(), plot::image_grid(&tiles, d.h, d.w, d.c, 8, 3)?);
            out.commit()?;
            println!("wrote {} (each row: original, then 7 augmented versions)", png.display());
        }
        Cmd::MakeDataset {
            data,
            out: dir,
            canvas,
            train,
            test,
            min_objects,
            max_objects,
            min_scale,
            max_scale,
            background,
            seed,
        } => {
            use host_train::data::scenes;
            let recipe = scenes::Recipe {
                canvas,
                train,
                test,
                min_objects,
                max_objects,
                min_scale,
                max_scale,
                background,
                seed,
            };
            recipe.check()?;
            scenes::check_out_dir(&dir)?;
            let (train_src, test_src) = load_data(&data, [28, 28, 1])?;
            // A CSV or folder has one split (often sorted by class): every fifth image gives the
            // test canvases' objects, so both halves see every class.
            let (train_src, test_src) = match test_src {
                Some(t) => (train_src, t),
                None => {
                    let n = train_src.len();
                    if n < 10 {
                        bail!("{}: {n} images; at least 10 are needed to split", data_name(&data));
                    }
                    let (b, a): (Vec<usize>, Vec<usize>) = (0..n).partition(|i| i % 5 == 4);
                    (train_src.subset(&a), train_src.subset(&b))
                }
            };
            let (files, summary) = scenes::generate(&train_src, &test_src, &recipe, &data_name(&data))?;
            let mut out = Outputs::new();
            out.forbid_overwriting(data_inputs(&data));
            for (rel, bytes) in files {
                out.add(dir.join(rel), bytes);
            }
            out.check()?;
            out.commit()?;
            println!("wrote {} ({summary}; recipe in {})", dir.display(), dir.join("dataset.toml").display());
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    host_train::files::fsio::install_signal_cleanup();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
