//! Data sets: IDX (MNIST/Fashion-MNIST, gzipped or not), the MNIST CSV format, and folders of
//! PNG/JPEG images with one sub-folder per class. Pixels become `f32` in `[0, 1]`, NHWC.

use anyhow::{bail, Context, Result};
use std::io::Read;
use std::path::{Path, PathBuf};

/// Where Debian's `dataset-fashion-mnist` package puts the data.
pub const FASHION_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Fashion-MNIST class names, in label order.
pub const FASHION_CLASSES: [&str; 10] =
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];

/// An in-memory labelled image set.
#[derive(Clone, Debug)]
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

    /// A subset by indices.
    pub fn subset(&self, idx: &[usize]) -> Dataset {
        let mut images = Vec::with_capacity(idx.len() * self.h * self.w * self.c);
        let mut labels = Vec::with_capacity(idx.len());
        for &i in idx {
            images.extend_from_slice(self.image(i));
            labels.push(self.labels[i]);
        }
        Dataset { images, labels, classes: self.classes.clone(), ..*self }
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

fn read_maybe_gz(path: &Path) -> Result<Vec<u8>> {
    let raw = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    if raw.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_end(&mut out)
            .with_context(|| format!("{}: corrupt or truncated gzip stream", path.display()))?;
        Ok(out)
    } else {
        Ok(raw)
    }
}

fn be_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Reads an IDX image file (magic 0x00000803) and its label file (0x00000801).
pub fn load_idx(images: &Path, labels: &Path) -> Result<Dataset> {
    let im = read_maybe_gz(images)?;
    let lb = read_maybe_gz(labels)?;
    if im.len() < 16 || be_u32(&im, 0) != 0x803 {
        bail!("{}: not an IDX image file (expected magic 0x00000803 and a 16-byte header)", images.display());
    }
    if lb.len() < 8 || be_u32(&lb, 0) != 0x801 {
        bail!("{}: not an IDX label file (expected magic 0x00000801 and an 8-byte header)", labels.display());
    }
    let (n, h, w) = (be_u32(&im, 4) as usize, be_u32(&im, 8) as usize, be_u32(&im, 12) as usize);
    let need = 16 + n * h * w;
    if im.len() != need {
        bail!(
            "{}: header promises {n} images of {h}×{w} ({need} bytes) but the file has {} bytes — truncated or corrupt",
            images.display(),
            im.len()
        );
    }
    let nl = be_u32(&lb, 4) as usize;
    if nl != n || lb.len() != 8 + n {
        bail!(
            "{}: {nl} labels in a {}-byte file for {n} images — the label file does not match the image file",
            labels.display(),
            lb.len()
        );
    }
    Ok(Dataset {
        images: im[16..].iter().map(|&p| p as f32 / 255.0).collect(),
        labels: lb[8..].to_vec(),
        h,
        w,
        c: 1,
        classes: Vec::new(),
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

/// Reads the MNIST CSV format: each line 784 pixel values (0–255) then the label; a header line
/// is skipped if it does not parse. Images are `side × side` grey.
pub fn load_csv(path: &Path, side: usize) -> Result<Dataset> {
    let text =
        String::from_utf8(read_maybe_gz(path)?).with_context(|| format!("{}: not UTF-8 text", path.display()))?;
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for (ln, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let vals: Result<Vec<f32>, _> = line.split(',').map(|v| v.trim().parse::<f32>()).collect();
        let Ok(vals) = vals else {
            if ln == 0 {
                continue; // header
            }
            bail!("{}: line {}: not a list of numbers", path.display(), ln + 1);
        };
        if vals.len() != side * side + 1 {
            bail!(
                "{}: line {}: {} values, expected {} pixels and a label",
                path.display(),
                ln + 1,
                vals.len(),
                side * side + 1
            );
        }
        let label = vals[side * side];
        if !(0.0..=255.0).contains(&label) || label.fract() != 0.0 {
            bail!("{}: line {}: label {label} is not a class number", path.display(), ln + 1);
        }
        images.extend(vals[..side * side].iter().map(|&p| (p / 255.0).clamp(0.0, 1.0)));
        labels.push(label as u8);
    }
    if labels.is_empty() {
        bail!("{}: no images", path.display());
    }
    Ok(Dataset { images, labels, h: side, w: side, c: 1, classes: (0..10).map(|d| d.to_string()).collect() })
}

/// Reads `root/<class>/*.{png,jpg,jpeg}`, resizing to `h × w` with `c` channels (1 or 3).
/// Classes are the sub-folder names in sorted order.
pub fn load_folder(root: &Path, h: usize, w: usize, c: usize) -> Result<Dataset> {
    let mut classes: Vec<PathBuf> = std::fs::read_dir(root)
        .with_context(|| format!("cannot list {}", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    classes.sort();
    if classes.is_empty() {
        bail!("{}: no class sub-folders (expected {}/<class>/<image>.png)", root.display(), root.display());
    }
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for (label, dir) in classes.iter().enumerate() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
        files.sort();
        for f in files {
            let ext = f.extension().map(|e| e.to_string_lossy().to_lowercase()).unwrap_or_default();
            if !["png", "jpg", "jpeg"].contains(&ext.as_str()) {
                continue;
            }
            let img = image::open(&f).with_context(|| format!("{}: cannot decode image", f.display()))?;
            let img = img.resize_exact(w as u32, h as u32, image::imageops::FilterType::Triangle);
            if c == 1 {
                images.extend(img.to_luma8().pixels().map(|p| p.0[0] as f32 / 255.0));
            } else {
                images.extend(img.to_rgb8().pixels().flat_map(|p| p.0).map(|v| v as f32 / 255.0));
            }
            labels.push(label as u8);
        }
    }
    Ok(Dataset {
        images,
        labels,
        h,
        w,
        c,
        classes: classes.iter().map(|p| p.file_name().unwrap_or_default().to_string_lossy().to_string()).collect(),
    })
}
