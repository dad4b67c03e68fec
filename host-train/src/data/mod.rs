//! Data sets: IDX (MNIST/Fashion-MNIST, gzipped or not), the MNIST CSV format, and folders of
//! PNG/JPEG images with one sub-folder per class. Pixels become `f32` in `[0, 1]`, NHWC.

pub mod augment;
pub mod scenes;

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Decodes a PNG or JPEG with size limits (16,384 pixels a side, 1 GiB), naming the file on error.
pub(crate) fn decode_image(path: &Path) -> Result<image::DynamicImage> {
    let mut r = image::ImageReader::open(path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("cannot read {}", path.display()))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(1 << 14);
    limits.max_image_height = Some(1 << 14);
    limits.max_alloc = Some(1 << 30);
    r.limits(limits);
    r.decode().with_context(|| format!("{}: cannot decode image", path.display()))
}

/// An image's pixels as `c` (1 grey or 3 RGB) channels in `[0, 1]`, row-major.
pub(crate) fn pixels_f32(img: &image::DynamicImage, c: usize) -> Vec<f32> {
    if c == 1 {
        img.to_luma8().pixels().map(|p| p.0[0] as f32 / 255.0).collect()
    } else {
        img.to_rgb8().pixels().flat_map(|p| p.0).map(|v| v as f32 / 255.0).collect()
    }
}

/// Where Debian's `dataset-fashion-mnist` package puts the data.
pub const FASHION_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Fashion-MNIST class names, in label order.
pub const FASHION_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// One labelled object of a detection image: class and box `[x0, y0, x1, y1]` in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Object {
    /// Class index (into the data set's object classes, background excluded).
    pub class: usize,
    /// Left, top, right, bottom, pixels.
    pub bbox: [f32; 4],
}

impl Object {
    /// The box centre `(x, y)` in pixels.
    pub fn centre(&self) -> (f32, f32) {
        ((self.bbox[0] + self.bbox[2]) / 2.0, (self.bbox[1] + self.bbox[3]) / 2.0)
    }
}

/// An in-memory labelled image set.
#[derive(Clone, Debug, Default)]
pub struct Dataset {
    /// `n·h·w·c` pixels in `[0, 1]`.
    pub images: Vec<f32>,
    /// One label per image.
    pub labels: Vec<u8>,
    /// Image height.
    pub h: usize,
    /// Image width.
    pub w: usize,
    /// Channels (1 grey, 3 RGB).
    pub c: usize,
    /// Class names, indexed by label.
    pub classes: Vec<String>,
    /// Dense tasks (detection, segmentation): a label per output position, `grid[0] × grid[1]`
    /// per image in row-major order (0 is the background); empty for classification.
    pub targets: Vec<u8>,
    /// Rows and columns of the target grid (`[1, 1]` or unused for classification).
    pub grid: [usize; 2],
    /// Detection: each image's labelled objects (empty for other tasks).
    pub objects: Vec<Vec<Object>>,
}

impl Dataset {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// `true` when there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixels of image `i`.
    pub fn image(&self, i: usize) -> &[f32] {
        let n = self.h * self.w * self.c;
        &self.images[i * n..(i + 1) * n]
    }

    /// Output positions per image a label is given for: 1 for classification, the grid's cells
    /// for a dense task.
    pub fn positions(&self) -> usize {
        if self.targets.is_empty() {
            1
        } else {
            self.grid[0] * self.grid[1]
        }
    }

    /// The training labels of image `i`: its class, or its grid of per-position labels.
    pub fn target_block(&self, i: usize) -> &[u8] {
        if self.targets.is_empty() {
            std::slice::from_ref(&self.labels[i])
        } else {
            let p = self.positions();
            &self.targets[i * p..(i + 1) * p]
        }
    }

    /// A subset by indices.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let mut images = Vec::with_capacity(idx.len() * self.h * self.w * self.c);
        let mut labels = Vec::with_capacity(idx.len());
        let mut targets = Vec::new();
        let mut objects = Vec::new();
        for &i in idx {
            images.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
            if !self.targets.is_empty() {
                targets.extend_from_slice(self.target_block(i));
            }
            if let Some(o) = self.objects.get(i) {
                objects.push(o.clone());
            }
        }
        Dataset {
            images,
            labels,
            classes: self.classes.clone(),
            targets,
            objects,
            h: self.h,
            w: self.w,
            c: self.c,
            grid: self.grid,
        }
    }

    /// The first `n` images (or all).
    pub fn take(&self, n: usize) -> Dataset {
        let idx: Vec<usize> = (0..n.min(self.len())).collect();
        self.subset(&idx)
    }

    /// Number of classes (the largest label + 1, or the number of names).
    pub fn num_classes(&self) -> usize {
        self.classes.len().max(self.labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0))
    }
}

/// The most bytes a decompressed data file may have: 1 GiB (4 GiB once the pixels are `f32`).
/// IDX files are further bounded by the size their header promises.
pub const MAX_DECOMPRESSED: u64 = 1 << 30;

/// The most classes a data set may have: labels are stored as bytes.
pub const MAX_CLASSES: usize = 256;

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
}

fn is_gzip(raw: &[u8]) -> bool {
    raw.starts_with(&[0x1f, 0x8b])
}

/// Decompresses `raw` if it is gzip, reading at most `limit` bytes: a stream that holds more is
/// an error before more memory is taken (a "gzip bomb" costs at most `limit + 1` bytes).
fn gunzip_bounded(raw: &[u8], limit: u64, name: &str, what: &str) -> Result<Vec<u8>> {
    if !is_gzip(raw) {
        return Ok(raw.to_vec());
    }
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(raw)
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .with_context(|| format!("{name}: corrupt or truncated gzip stream"))?;
    if out.len() as u64 > limit {
        bail!("{name}: the gzip stream holds more than {limit} bytes, more than {what}; the file is corrupt or not what it claims");
    }
    Ok(out)
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The first `n` decompressed bytes of a (possibly gzipped) file: enough to read a header.
fn head(raw: &[u8], n: usize) -> Vec<u8> {
    if !is_gzip(raw) {
        return raw[..n.min(raw.len())].to_vec();
    }
    let mut out = Vec::new();
    // A corrupt stream is reported by the full read; a short head is reported by the caller.
    let _ = flate2::read::GzDecoder::new(raw).take(n as u64).read_to_end(&mut out);
    out
}

/// Reads an IDX image file (magic 0x00000803) and its label file (0x00000801).
pub fn load_idx(images: &Path, labels: &Path) -> Result<Dataset> {
    parse_idx(&read_file(images)?, &read_file(labels)?, &images.display().to_string(), &labels.display().to_string())
}

/// Parses an IDX image file and its label file (each raw or gzipped); `images_name` and
/// `labels_name` start the error messages. Decompression stops at the size the headers promise.
pub fn parse_idx(im_raw: &[u8], lb_raw: &[u8], images_name: &str, labels_name: &str) -> Result<Dataset> {
    let ih = head(im_raw, 16);
    if ih.len() < 16 || be_u32(&ih, 0) != 0x803 {
        bail!("{images_name}: not an IDX image file (expected magic 0x00000803 and a 16-byte header)");
    }
    let lh = head(lb_raw, 8);
    if lh.len() < 8 || be_u32(&lh, 0) != 0x801 {
        bail!("{labels_name}: not an IDX label file (expected magic 0x00000801 and an 8-byte header)");
    }
    let (n, h, w) = (be_u32(&ih, 4) as u64, be_u32(&ih, 8) as u64, be_u32(&ih, 12) as u64);
    if n == 0 || h == 0 || w == 0 {
        bail!("{images_name}: the header says {n} images of {h}×{w}: an empty data set");
    }
    let pixels = n.checked_mul(h).and_then(|v| v.checked_mul(w)).filter(|&v| v <= MAX_DECOMPRESSED);
    let Some(pixels) = pixels else {
        bail!("{images_name}: the header promises {n} images of {h}×{w}, more than {MAX_DECOMPRESSED} bytes: corrupt header");
    };
    let need = 16 + pixels;
    let im = gunzip_bounded(im_raw, need, images_name, "its header promises")?;
    if im.len() as u64 != need {
        bail!(
            "{images_name}: header promises {n} images of {h}×{w} ({need} bytes) but the file has {} bytes — truncated or corrupt",
            im.len()
        );
    }
    let nl = be_u32(&lh, 4) as u64;
    let lb = gunzip_bounded(lb_raw, 8 + n, labels_name, "its image file promises")?;
    if nl != n || lb.len() as u64 != 8 + n {
        bail!(
            "{labels_name}: {nl} labels in a {}-byte file for {n} images — the label file does not match the image file",
            lb.len()
        );
    }
    Ok(Dataset {
        images: im[16..].iter().map(|&p| p as f32 / 255.0).collect(),
        labels: lb[8..].to_vec(),
        h: h as usize,
        w: w as usize,
        c: 1,
        classes: Vec::new(),
        ..Default::default()
    })
}

/// Loads Fashion-MNIST (`train` or `t10k`) from `dir`, with a helpful error when missing.
pub fn load_fashion(dir: &Path, split: &str) -> Result<Dataset> {
    let im = dir.join(format!("{split}-images-idx3-ubyte.gz"));
    let lb = dir.join(format!("{split}-labels-idx1-ubyte.gz"));
    if !im.exists() {
        bail!(
            "Fashion-MNIST not found at {}.\n  Install it with: sudo apt-get install dataset-fashion-mnist\n  (or `cargo xtask setup`), or pass --data DIR with the four *-ubyte.gz files.",
            im.display()
        );
    }
    let mut d = load_idx(&im, &lb)?;
    d.classes = FASHION_CLASSES.iter().map(|s| s.to_string()).collect();
    Ok(d)
}

/// Reads the MNIST CSV format: each line `side²` pixel values (whole numbers 0–255) then the
/// label. The first line is taken as a header only if none of its fields is a number. Images are
/// `side × side` grey; the classes are `0..=largest label`.
pub fn load_csv(path: &Path, side: usize) -> Result<Dataset> {
    parse_csv(&read_file(path)?, side, &path.display().to_string())
}

/// Parses MNIST-format CSV bytes (raw or gzipped, at most [`MAX_DECOMPRESSED`] bytes once
/// decompressed); `name` starts the error messages.
pub fn parse_csv(raw: &[u8], side: usize, name: &str) -> Result<Dataset> {
    let bytes = gunzip_bounded(raw, MAX_DECOMPRESSED, name, "a CSV data set may hold")?;
    let text = String::from_utf8(bytes).map_err(|e| anyhow::anyhow!("{name}: not UTF-8 text ({e})"))?;
    let Some(pixels) = side.checked_mul(side).filter(|&p| p > 0 && p <= 1 << 24) else {
        bail!("{name}: images of {side}×{side} cannot be read from CSV");
    };
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for (ln, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if ln == 0 && fields.iter().all(|f| f.parse::<f64>().is_err()) {
            continue; // a header such as "pixel0,…,label"
        }
        if fields.len() != pixels + 1 {
            bail!("{name}: line {}: {} values, expected {pixels} pixels and a label", ln + 1, fields.len());
        }
        for (i, f) in fields.iter().enumerate() {
            let v: u8 = match f.parse::<u16>() {
                Ok(v) if v <= 255 => v as u8,
                _ => {
                    let what = if i == pixels { "label" } else { "pixel" };
                    bail!("{name}: line {}, field {}: {what} {f:?} is not a whole number from 0 to 255", ln + 1, i + 1);
                }
            };
            if i == pixels {
                labels.push(v);
            } else {
                images.push(v as f32 / 255.0);
            }
        }
    }
    if labels.is_empty() {
        bail!("{name}: no images");
    }
    let k = labels.iter().map(|&l| l as usize + 1).max().unwrap_or(0).max(10);
    Ok(Dataset {
        images,
        labels,
        h: side,
        w: side,
        c: 1,
        classes: (0..k).map(|d| d.to_string()).collect(),
        ..Default::default()
    })
}

/// Checks a class name that may reach generated code (as a string literal) and reports: at
/// most 64 characters, no control characters (a newline would break a line of `model.rs`).
pub fn check_class_name(name: &str, origin: &str) -> Result<()> {
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        bail!(
            "{origin}: class name {name:?} must be 1–64 characters without control characters (newlines, tabs…): rename it"
        );
    }
    Ok(())
}

/// `true` for names a folder listing should skip: hidden entries (`.git`, `.DS_Store`,
/// `.ipynb_checkpoints`) and editor back-ups.
fn hidden(name: &std::ffi::OsStr) -> bool {
    let n = name.to_string_lossy();
    n.starts_with('.') || n.ends_with('~') || n == "__MACOSX"
}

/// Reads `root/<class>/*.{png,jpg,jpeg}`, resizing to `h × w` with `c` channels (1 or 3).
/// Classes are the sub-folder names in sorted order; hidden files and folders are skipped; a
/// class folder without images, more than [`MAX_CLASSES`] classes or a class name with control
/// characters is an error.
pub fn load_folder(root: &Path, h: usize, w: usize, c: usize) -> Result<Dataset> {
    let mut classes: Vec<PathBuf> = std::fs::read_dir(root)
        .with_context(|| format!("cannot list {}", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir() && !p.file_name().is_some_and(hidden))
        .collect();
    classes.sort();
    if classes.is_empty() {
        bail!("{}: no class sub-folders (expected {}/<class>/<image>.png)", root.display(), root.display());
    }
    if classes.len() > MAX_CLASSES {
        bail!(
            "{}: {} class folders, more than the {MAX_CLASSES} classes microcnn supports",
            root.display(),
            classes.len()
        );
    }
    let names: Vec<String> =
        classes.iter().map(|p| p.file_name().unwrap_or_default().to_string_lossy().to_string()).collect();
    for (n, dir) in names.iter().zip(&classes) {
        check_class_name(n, &dir.display().to_string())?;
    }
    let pixels = h.checked_mul(w).and_then(|v| v.checked_mul(c)).filter(|&v| v > 0 && v <= 1 << 26);
    if pixels.is_none() || !(c == 1 || c == 3) || h > 1 << 14 || w > 1 << 14 {
        bail!(
            "{}: cannot load images as {h}×{w}×{c}: the model input must be at most 16384×16384 with 1 or 3 channels",
            root.display()
        );
    }
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for (label, dir) in classes.iter().enumerate() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| !p.file_name().is_some_and(hidden) && p.is_file())
            .collect();
        files.sort();
        let before = labels.len();
        for f in files {
            let ext = f.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
            if !["png", "jpg", "jpeg"].contains(&ext.as_str()) {
                continue;
            }
            let img = decode_image(&f)?.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle);
            images.extend(pixels_f32(&img, c));
            labels.push(label as u8);
        }
        if labels.len() == before {
            bail!("{}: class folder without PNG or JPEG images", dir.display());
        }
    }
    Ok(Dataset { images, labels, h, w, c, classes: names, ..Default::default() })
}

impl Dataset {
    /// Checks that this split fits a model with `input = [h, w, c]` and `classes` outputs:
    /// same image size, at least one image, every label below the class count. `what` names the
    /// split and its source in the message.
    pub fn check_fits(&self, input: [usize; 3], classes: usize, what: &str) -> Result<()> {
        let [h, w, c] = input;
        if self.is_empty() {
            bail!("{what}: no images");
        }
        if (self.h, self.w, self.c) != (h, w, c) {
            bail!(
                "{what}: images are {}×{}×{} but the model expects {h}×{w}×{c}: resize the data or change `input` in the model file",
                self.h,
                self.w,
                self.c
            );
        }
        if let Some((i, &l)) = self.labels.iter().enumerate().find(|(_, &l)| l as usize >= classes) {
            bail!(
                "{what}: image {i} has label {l} but the model has {classes} classes (0–{}): use a model with more outputs or fix the labels",
                classes.saturating_sub(1)
            );
        }
        Ok(())
    }
}
