//! `microcnn make-dataset`: a localization / detection / segmentation data set built offline from
//! a classification one. Objects (28×28 Fashion-MNIST or MNIST images) are scaled and placed at
//! random on larger canvases over a noise or clutter background, and every canvas is written with
//! its labels in the formats people already have:
//!
//! ```text
//! OUT/images/{train,test}/00000.png        grey canvases
//! OUT/labels/{train,test}/00000.txt        YOLO: `class cx cy w h` per object, fractions of the side
//! OUT/masks/{train,test}/00000.png         grey label image: 0 background, class k as k + 1
//! OUT/annotations/{train,test}.json        COCO: images, annotations (bbox [x, y, w, h], area,
//!                                          `centre` [x, y]), categories (id k + 1 = class k)
//! OUT/dataset.toml                         the recipe (source, sizes, seed): rerun it to get the same bytes
//! ```
//!
//! Everything derives from one seed; the same command writes the same files.

use super::{Dataset, Object};
use crate::model::spec::Task;
use crate::rng::Rng;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fmt::Write;
use std::path::Path;

/// Background of the canvases.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Background {
    /// Black.
    Plain,
    /// Uniform noise up to 1/6 of full scale.
    Noise,
    /// Noise plus faint fragments of other objects (distractors without a label).
    Clutter,
}

/// What to generate.
#[derive(Clone, Debug, Serialize)]
pub struct Recipe {
    /// Canvas side in pixels (square canvases).
    pub canvas: usize,
    /// Canvases in the training split.
    pub train: usize,
    /// Canvases in the test split.
    pub test: usize,
    /// Fewest objects per canvas (≥ 1).
    pub min_objects: usize,
    /// Most objects per canvas.
    pub max_objects: usize,
    /// Smallest scale of a 28-pixel object.
    pub min_scale: f32,
    /// Largest scale.
    pub max_scale: f32,
    /// Background.
    pub background: Background,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Recipe {
    /// Checks the numbers, naming the option at fault.
    pub fn check(&self) -> Result<()> {
        if !(16..=1024).contains(&self.canvas) {
            bail!("--canvas {}: a side from 16 to 1024 pixels", self.canvas);
        }
        if self.train == 0 || self.train + self.test > 1_000_000 {
            bail!("--train {} --test {}: at least one training canvas and at most 10^6 in all", self.train, self.test);
        }
        if self.min_objects == 0 || self.min_objects > self.max_objects || self.max_objects > 64 {
            bail!("--objects {}..{}: from 1 to 64 objects, min ≤ max", self.min_objects, self.max_objects);
        }
        let (lo, hi) = (self.min_scale, self.max_scale);
        if !(lo.is_finite() && hi.is_finite() && lo > 0.1 && lo <= hi) {
            bail!("--scale {lo}..{hi}: finite, above 0.1, min ≤ max");
        }
        if (28.0 * hi).ceil() as usize > self.canvas {
            bail!("--scale {hi}: a {}-pixel object does not fit a {}-pixel canvas", (28.0 * hi).ceil(), self.canvas);
        }
        Ok(())
    }
}

/// One placed object: class and tight box `[x0, y0, x1, y1)` in pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Placed {
    /// Class index in the source data set.
    pub class: usize,
    /// Left, top, right, bottom (exclusive), pixels.
    pub bbox: [usize; 4],
}

/// One generated canvas.
pub struct Scene {
    /// Grey pixels, row-major, `canvas²`.
    pub pixels: Vec<u8>,
    /// Class map: 0 background, `k + 1` for class `k`.
    pub mask: Vec<u8>,
    /// The objects, in the order drawn (a later one may cover part of an earlier one).
    pub objects: Vec<Placed>,
}

/// A source image scaled by `s` (bilinear), as bytes.
fn scaled(src: &[f32], side: usize, s: f32) -> (Vec<u8>, usize) {
    let n = ((side as f32 * s).round() as usize).max(1);
    let mut out = vec![0u8; n * n];
    let at = |y: isize, x: isize| -> f32 {
        if y < 0 || x < 0 || y >= side as isize || x >= side as isize {
            0.0
        } else {
            src[y as usize * side + x as usize]
        }
    };
    for oy in 0..n {
        for ox in 0..n {
            let fy = (oy as f32 + 0.5) / s - 0.5;
            let fx = (ox as f32 + 0.5) / s - 0.5;
            let (y0, x0) = (fy.floor(), fx.floor());
            let (dy, dx) = (fy - y0, fx - x0);
            let (y0, x0) = (y0 as isize, x0 as isize);
            let v = at(y0, x0) * (1.0 - dy) * (1.0 - dx)
                + at(y0, x0 + 1) * (1.0 - dy) * dx
                + at(y0 + 1, x0) * dy * (1.0 - dx)
                + at(y0 + 1, x0 + 1) * dy * dx;
            out[oy * n + ox] = (v * 255.0).round().clamp(0.0, 255.0) as u8;
        }
    }
    (out, n)
}

/// Pixels at or above this grey value belong to the object (box and mask).
pub const OBJECT_THRESHOLD: u8 = 64;

/// The share of the smaller box that the two boxes have in common (1 when one holds the other).
fn overlap(a: [usize; 4], b: [usize; 4]) -> f32 {
    let w = a[2].min(b[2]).saturating_sub(a[0].max(b[0]));
    let h = a[3].min(b[3]).saturating_sub(a[1].max(b[1]));
    let area = |r: [usize; 4]| (r[2] - r[0]) * (r[3] - r[1]);
    (w * h) as f32 / area(a).min(area(b)).max(1) as f32
}

/// The most of an object's box another object may cover: every object stays mostly visible.
pub const MAX_OVERLAP: f32 = 0.2;

/// Draws one canvas from `source` (28×28 grey objects) with `rng`.
pub fn scene(source: &Dataset, r: &Recipe, rng: &mut Rng) -> Scene {
    let n = r.canvas;
    let mut pixels = vec![0u8; n * n];
    match r.background {
        Background::Plain => {}
        Background::Noise | Background::Clutter => {
            for p in &mut pixels {
                *p = rng.below(43) as u8;
            }
        }
    }
    if r.background == Background::Clutter {
        // Faint 6–10-pixel fragments of random objects: texture a detector must learn to ignore.
        for _ in 0..(n * n) / 400 {
            let img = source.image(rng.below(source.len()));
            let f = 6 + rng.below(5);
            let (sy, sx) = (rng.below(source.h - f), rng.below(source.w - f));
            let (dy, dx) = (rng.below(n - f), rng.below(n - f));
            for y in 0..f {
                for x in 0..f {
                    let v = (img[(sy + y) * source.w + sx + x] * 90.0) as u8;
                    let p = &mut pixels[(dy + y) * n + dx + x];
                    *p = (*p).max(v);
                }
            }
        }
    }
    let mut mask = vec![0u8; n * n];
    let mut objects = Vec::new();
    let want = r.min_objects + rng.below(r.max_objects - r.min_objects + 1);
    for _ in 0..want {
        // Up to 50 tries for a place where no two boxes share more than MAX_OVERLAP of the smaller.
        for _try in 0..50 {
            let k = rng.below(source.len());
            let s = rng.range(r.min_scale, r.max_scale);
            let (obj, side) = scaled(source.image(k), source.w, s);
            // The tight box of the object's pixels inside its square.
            let (mut x0, mut y0, mut x1, mut y1) = (side, side, 0, 0);
            for y in 0..side {
                for x in 0..side {
                    if obj[y * side + x] >= OBJECT_THRESHOLD {
                        (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x + 1), y1.max(y + 1));
                    }
                }
            }
            if x1 == 0 {
                continue; // an empty image
            }
            let (ox, oy) = (rng.below(n - side + 1), rng.below(n - side + 1));
            let bbox = [ox + x0, oy + y0, ox + x1, oy + y1];
            if objects.iter().any(|o: &Placed| overlap(o.bbox, bbox) > MAX_OVERLAP) {
                continue;
            }
            let class = source.labels[k] as usize;
            for y in 0..side {
                for x in 0..side {
                    let v = obj[y * side + x];
                    let at = (oy + y) * n + ox + x;
                    pixels[at] = pixels[at].max(v);
                    if v >= OBJECT_THRESHOLD {
                        mask[at] = class as u8 + 1;
                    }
                }
            }
            objects.push(Placed { class, bbox });
            break;
        }
    }
    Scene { pixels, mask, objects }
}

fn png(pixels: &[u8], side: usize) -> Result<Vec<u8>> {
    let img = image::GrayImage::from_raw(side as u32, side as u32, pixels.to_vec())
        .ok_or_else(|| anyhow::anyhow!("internal: a canvas of the wrong size"))?;
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)?;
    Ok(out.into_inner())
}

#[derive(Serialize, Deserialize)]
struct CocoImage {
    id: usize,
    file_name: String,
    width: usize,
    height: usize,
}

#[derive(Serialize, Deserialize)]
struct CocoAnnotation {
    id: usize,
    image_id: usize,
    category_id: usize,
    bbox: [f32; 4],
    #[serde(default)]
    area: f32,
    #[serde(default)]
    iscrowd: u8,
    #[serde(default)]
    centre: [f32; 2],
}

#[derive(Serialize, Deserialize)]
struct CocoCategory {
    id: usize,
    name: String,
}

#[derive(Serialize, Deserialize)]
struct Coco {
    images: Vec<CocoImage>,
    annotations: Vec<CocoAnnotation>,
    categories: Vec<CocoCategory>,
}

/// One file of a data set: its path relative to the output folder, and its bytes.
pub type DatasetFile = (String, Vec<u8>);

/// Every file of the data set, `(path relative to OUT, bytes)`, and a summary line. `train_src`
/// and `test_src` are the source splits the two halves draw objects from.
pub fn generate(
    train_src: &Dataset,
    test_src: &Dataset,
    r: &Recipe,
    source_name: &str,
) -> Result<(Vec<DatasetFile>, String)> {
    r.check()?;
    for (d, what) in [(train_src, "training"), (test_src, "test")] {
        if d.c != 1 || d.h < 12 || d.w != d.h || d.is_empty() {
            bail!("the {what} source must be square grey images of at least 12 pixels ({}×{}×{})", d.h, d.w, d.c);
        }
    }
    let mut files = Vec::new();
    let mut rng = Rng::new(r.seed);
    let mut counts = Vec::new();
    for (split, src, n) in [("train", train_src, r.train), ("test", test_src, r.test)] {
        let mut coco = Coco {
            images: Vec::new(),
            annotations: Vec::new(),
            categories: src
                .classes
                .iter()
                .enumerate()
                .map(|(k, name)| CocoCategory { id: k + 1, name: name.clone() })
                .collect(),
        };
        let mut split_rng = rng.fork(split.len() as u64);
        let mut objects = 0;
        for i in 0..n {
            let s = scene(src, r, &mut split_rng);
            let stem = format!("{i:05}");
            files.push((format!("images/{split}/{stem}.png"), png(&s.pixels, r.canvas)?));
            files.push((format!("masks/{split}/{stem}.png"), png(&s.mask, r.canvas)?));
            let side = r.canvas as f32;
            let mut yolo = String::new();
            for o in &s.objects {
                let [x0, y0, x1, y1] = o.bbox.map(|v| v as f32);
                let (w, h) = (x1 - x0, y1 - y0);
                let _ = writeln!(
                    yolo,
                    "{} {:.6} {:.6} {:.6} {:.6}",
                    o.class,
                    (x0 + w / 2.0) / side,
                    (y0 + h / 2.0) / side,
                    w / side,
                    h / side
                );
                coco.annotations.push(CocoAnnotation {
                    id: coco.annotations.len() + 1,
                    image_id: i + 1,
                    category_id: o.class + 1,
                    bbox: [x0, y0, w, h],
                    area: w * h,
                    iscrowd: 0,
                    centre: [x0 + w / 2.0, y0 + h / 2.0],
                });
            }
            objects += s.objects.len();
            files.push((format!("labels/{split}/{stem}.txt"), yolo.into_bytes()));
            coco.images.push(CocoImage {
                id: i + 1,
                file_name: format!("images/{split}/{stem}.png"),
                width: r.canvas,
                height: r.canvas,
            });
        }
        files.push((format!("annotations/{split}.json"), serde_json::to_vec(&coco)?));
        counts.push(format!("{split}: {n} canvases, {objects} objects"));
    }
    #[derive(Serialize)]
    struct Manifest<'a> {
        source: &'a str,
        classes: &'a [String],
        recipe: &'a Recipe,
    }
    let manifest = toml::to_string(&Manifest { source: source_name, classes: &train_src.classes, recipe: r })?;
    let header = "# Written by `microcnn make-dataset`; the same recipe and seed give the same files.\n";
    files.push(("dataset.toml".into(), format!("{header}{manifest}").into_bytes()));
    Ok((files, counts.join("; ")))
}

/// Reads one image, decoded with size limits, as `c` channels in `[0, 1]`; it must be `h × w`.
fn read_image(path: &Path, h: usize, w: usize, c: usize) -> Result<Vec<f32>> {
    let img = super::decode_image(path)?;
    if (img.height() as usize, img.width() as usize) != (h, w) {
        bail!("{}: {}×{} pixels, but the model input is {h}×{w}", path.display(), img.height(), img.width());
    }
    Ok(super::pixels_f32(&img, c))
}

/// A label image (PNG, grey or palette: the value is the class, 0 the background), `h × w`.
fn read_mask(path: &Path, h: usize, w: usize, classes: usize) -> Result<Vec<u8>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read {} (the mask of its image)", path.display()))?;
    // Palette PNGs keep their indices only when decoded without expansion: the png crate does that.
    let mut dec = png::Decoder::new(std::io::Cursor::new(&bytes));
    dec.set_transformations(png::Transformations::IDENTITY);
    let mut reader = dec.read_info().with_context(|| format!("{}: not a PNG", path.display()))?;
    let info = reader.info();
    let (iw, ih, colour, depth) = (info.width as usize, info.height as usize, info.color_type, info.bit_depth);
    if (ih, iw) != (h, w) {
        bail!("{}: the mask is {ih}×{iw}, its image {h}×{w}", path.display());
    }
    if depth != png::BitDepth::Eight || !matches!(colour, png::ColorType::Grayscale | png::ColorType::Indexed) {
        bail!(
            "{}: a mask must be an 8-bit grey or palette PNG (class index per pixel), not {colour:?} {depth:?}",
            path.display()
        );
    }
    let mut buf = vec![0u8; reader.output_buffer_size().unwrap_or(0)];
    let frame = reader.next_frame(&mut buf).with_context(|| format!("{}: cannot decode the mask", path.display()))?;
    buf.truncate(frame.buffer_size());
    if let Some((i, &v)) = buf.iter().enumerate().find(|(_, &v)| v as usize >= classes) {
        bail!(
            "{}: pixel ({}, {}) has class {v}, but there are {classes} classes with the background (0–{})",
            path.display(),
            i / w,
            i % w,
            classes - 1
        );
    }
    Ok(buf)
}

/// Reads the `split` (`train` or `test`) of a data set in `make-dataset`'s layout (COCO
/// `annotations/SPLIT.json`, or YOLO `labels/SPLIT/*.txt` with `classes.txt` when there is no
/// JSON; masks in `masks/SPLIT/`) for `task`, with per-position targets on a `grid` (the model's
/// output rows and columns): detection marks the cell of each box centre with its class + 1,
/// segmentation samples the mask at each cell's centre. Every box, class and mask is checked;
/// errors name the file and the entry.
pub fn load_scenes(root: &Path, split: &str, task: Task, input: [usize; 3], grid: [usize; 2]) -> Result<Dataset> {
    let [h, w, c] = input;
    let [gh, gw] = grid;
    if gh == 0 || gw == 0 || gh > h || gw > w {
        bail!("a {gh}×{gw} output grid does not fit a {h}×{w} input");
    }
    let coco_path = root.join("annotations").join(format!("{split}.json"));
    let (images, names) = if coco_path.exists() {
        let text =
            std::fs::read_to_string(&coco_path).with_context(|| format!("cannot read {}", coco_path.display()))?;
        let coco: Coco =
            serde_json::from_str(&text).map_err(|e| anyhow::anyhow!("{}: not COCO JSON ({e})", coco_path.display()))?;
        let mut ids: Vec<usize> = coco.categories.iter().map(|c| c.id).collect();
        ids.sort_unstable();
        if ids != (1..=coco.categories.len()).collect::<Vec<_>>() {
            bail!(
                "{}: category ids must be 1, 2, … {} (0 is the background); found {ids:?}",
                coco_path.display(),
                coco.categories.len()
            );
        }
        let mut names = vec![String::new(); coco.categories.len()];
        for cat in &coco.categories {
            super::check_class_name(&cat.name, &format!("{}: category {}", coco_path.display(), cat.id))?;
            names[cat.id - 1] = cat.name.clone();
        }
        let mut per_image: std::collections::HashMap<usize, Vec<Object>> = std::collections::HashMap::new();
        for (k, a) in coco.annotations.iter().enumerate() {
            let at = || format!("{}: annotations[{k}] (id {})", coco_path.display(), a.id);
            if a.category_id == 0 || a.category_id > names.len() {
                bail!("{}: unknown category_id {} (categories are 1–{})", at(), a.category_id, names.len());
            }
            let [x, y, bw, bh] = a.bbox;
            let inside = x.is_finite()
                && y.is_finite()
                && bw.is_finite()
                && bh.is_finite()
                && bw > 0.0
                && bh > 0.0
                && x >= -0.5
                && y >= -0.5
                && x + bw <= w as f32 + 0.5
                && y + bh <= h as f32 + 0.5;
            if !inside {
                bail!("{}: bbox [{x}, {y}, {bw}, {bh}] is empty or outside the {w}×{h} image", at());
            }
            per_image
                .entry(a.image_id)
                .or_default()
                .push(Object { class: a.category_id - 1, bbox: [x, y, x + bw, y + bh] });
        }
        let images: Vec<(String, Vec<Object>)> = coco
            .images
            .iter()
            .map(|im| {
                if (im.width, im.height) != (w, h) {
                    bail!(
                        "{}: image {} ({}) is {}×{}, the model input {w}×{h}",
                        coco_path.display(),
                        im.id,
                        im.file_name,
                        im.width,
                        im.height
                    );
                }
                Ok((im.file_name.clone(), per_image.remove(&im.id).unwrap_or_default()))
            })
            .collect::<Result<_>>()?;
        if let Some(id) = per_image.keys().next() {
            bail!("{}: annotations refer to image_id {id}, which `images` does not list", coco_path.display());
        }
        (images, names)
    } else {
        let dir = root.join("labels").join(split);
        let classes_txt = root.join("classes.txt");
        let names: Vec<String> = std::fs::read_to_string(&classes_txt)
            .with_context(|| {
                format!(
                    "{} and {} are both missing: give COCO annotations or YOLO labels with class names",
                    coco_path.display(),
                    classes_txt.display()
                )
            })?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect();
        for (i, n) in names.iter().enumerate() {
            super::check_class_name(n, &format!("{} line {}", classes_txt.display(), i + 1))?;
        }
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "txt"))
            .collect();
        files.sort();
        let mut images = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(&f).with_context(|| format!("cannot read {}", f.display()))?;
            let mut objects = Vec::new();
            for (ln, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
                let at = || format!("{} line {}", f.display(), ln + 1);
                let v: Vec<&str> = line.split_whitespace().collect();
                let nums: Option<Vec<f32>> = v.get(1..5).and_then(|s| s.iter().map(|t| t.parse().ok()).collect());
                let (Some(cls), Some(nums), 5) = (v.first().and_then(|t| t.parse::<usize>().ok()), nums, v.len())
                else {
                    bail!("{}: expected `class cx cy w h` (YOLO), got {line:?}", at());
                };
                if cls >= names.len() {
                    bail!("{}: class {cls}, but {} names {} classes", at(), classes_txt.display(), names.len());
                }
                let (cx, cy, bw, bh) = (nums[0], nums[1], nums[2], nums[3]);
                if !(bw > 0.0
                    && bh > 0.0
                    && cx - bw / 2.0 >= -1e-3
                    && cy - bh / 2.0 >= -1e-3
                    && cx + bw / 2.0 <= 1.001
                    && cy + bh / 2.0 <= 1.001)
                {
                    bail!("{}: box ({cx}, {cy}, {bw}, {bh}) is empty or outside the image (fractions 0–1)", at());
                }
                let (x0, y0) = ((cx - bw / 2.0) * w as f32, (cy - bh / 2.0) * h as f32);
                objects.push(Object { class: cls, bbox: [x0, y0, x0 + bw * w as f32, y0 + bh * h as f32] });
            }
            let stem = f.file_stem().unwrap_or_default().to_string_lossy().to_string();
            images.push((format!("images/{split}/{stem}.png"), objects));
        }
        (images, names)
    };
    if images.is_empty() {
        bail!("{}: no images in the {split} split", root.display());
    }
    let k = names.len() + 1;
    if k > 255 {
        bail!("{} classes: at most 254 object classes", names.len());
    }
    // Localization has no background class: its labels are the object classes themselves.
    let localize = task == Task::Localize;
    let classes: Vec<String> =
        if localize { names } else { std::iter::once("background".to_string()).chain(names).collect() };
    let mut d = Dataset { h, w, c, grid, classes, ..Default::default() };
    for (file, objects) in images {
        let path = root.join(&file);
        if localize && objects.len() != 1 {
            bail!(
                "{}: {} has {} objects; a localize model learns exactly one box per image (make-dataset --objects 1)",
                root.display(),
                file,
                objects.len()
            );
        }
        d.images.extend(read_image(&path, h, w, c)?);
        let mut cells = vec![0u8; gh * gw];
        match task {
            Task::Detect => cells = centre_cells(&objects, h, w, grid),
            Task::Segment => {
                let rel = Path::new(&file);
                let stem = rel.file_stem().unwrap_or_default();
                let mask_path = root.join("masks").join(split).join(stem).with_extension("png");
                let mask = read_mask(&mask_path, h, w, k)?;
                for gy in 0..gh {
                    for gx in 0..gw {
                        let y = ((2 * gy + 1) * h) / (2 * gh);
                        let x = ((2 * gx + 1) * w) / (2 * gw);
                        cells[gy * gw + gx] = mask[y * w + x];
                    }
                }
            }
            Task::Localize => {}
            Task::Classify => bail!("--scenes is for the detect, segment and localize tasks"),
        }
        if localize {
            // The class itself (no background), and no per-position targets.
            d.labels.push(objects[0].class as u8);
        } else {
            // The image's label: its first object's class (+1), for tables that want one.
            d.labels.push(objects.first().map_or(0, |o| o.class as u8 + 1));
            d.targets.extend(cells);
        }
        d.objects.push(objects);
    }
    Ok(d)
}

/// A detection target: background (0) everywhere but the cell of each box centre, which holds
/// its class + 1 (a later object takes a shared cell).
pub fn centre_cells(objects: &[Object], h: usize, w: usize, grid: [usize; 2]) -> Vec<u8> {
    let mut cells = vec![0u8; grid[0] * grid[1]];
    for o in objects {
        let (gy, gx) = centre_cell(o, h, w, grid);
        cells[gy * grid[1] + gx] = o.class as u8 + 1;
    }
    cells
}

/// The `(row, column)` of the grid cell an object's box centre falls in (clamped to the grid):
/// the one rule for training targets and for matching predictions.
pub fn centre_cell(o: &Object, h: usize, w: usize, grid: [usize; 2]) -> (usize, usize) {
    let [gh, gw] = grid;
    let (cx, cy) = o.centre();
    let gy = ((cy.max(0.0) * gh as f32 / h as f32) as usize).min(gh - 1);
    let gx = ((cx.max(0.0) * gw as f32 / w as f32) as usize).min(gw - 1);
    (gy, gx)
}

/// Checks that `out` is a new or empty folder (a data set is never written over another).
pub fn check_out_dir(out: &Path) -> Result<()> {
    if out.exists() {
        let empty = std::fs::read_dir(out).map(|mut d| d.next().is_none()).unwrap_or(false);
        if !out.is_dir() || !empty {
            bail!("{}: exists and is not an empty folder; choose a new --out", out.display());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> Dataset {
        // Ten 28×28 "objects": a filled square of side 8 + 2k in the middle, class k.
        let mut images = Vec::new();
        for k in 0..10 {
            let s = 8 + 2 * k;
            let o = (28 - s) / 2;
            for y in 0..28 {
                for x in 0..28 {
                    images.push(if (o..o + s).contains(&y) && (o..o + s).contains(&x) { 1.0 } else { 0.0 });
                }
            }
        }
        Dataset {
            images,
            labels: (0..10).collect(),
            h: 28,
            w: 28,
            c: 1,
            classes: (0..10).map(|d| d.to_string()).collect(),
            ..Default::default()
        }
    }

    fn recipe() -> Recipe {
        Recipe {
            canvas: 64,
            train: 6,
            test: 2,
            min_objects: 1,
            max_objects: 4,
            min_scale: 0.8,
            max_scale: 1.4,
            background: Background::Clutter,
            seed: 5,
        }
    }

    #[test]
    fn boxes_and_masks_agree_with_the_pixels() {
        let src = source();
        let r = recipe();
        let mut rng = Rng::new(1);
        for _ in 0..30 {
            let s = scene(&src, &r, &mut rng);
            assert!(!s.objects.is_empty() && s.objects.len() <= 4);
            for o in &s.objects {
                let [x0, y0, x1, y1] = o.bbox;
                assert!(x0 < x1 && y0 < y1 && x1 <= 64 && y1 <= 64);
                // A square object's box is its mask's extent when nothing covers it.
                let inside = (y0..y1).flat_map(|y| (x0..x1).map(move |x| (y, x)));
                let labelled = inside.filter(|&(y, x)| s.mask[y * 64 + x] == o.class as u8 + 1).count();
                assert!(labelled > 0, "an object without mask pixels");
            }
            // Every mask pixel lies in the box of an object of its class.
            for (i, &m) in s.mask.iter().enumerate() {
                if m > 0 {
                    let (y, x) = (i / 64, i % 64);
                    assert!(s.objects.iter().any(|o| o.class + 1 == m as usize
                        && (o.bbox[0]..o.bbox[2]).contains(&x)
                        && (o.bbox[1]..o.bbox[3]).contains(&y)));
                }
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_files() {
        let src = source();
        let (a, _) = generate(&src, &src, &recipe(), "squares").unwrap();
        let (b, _) = generate(&src, &src, &recipe(), "squares").unwrap();
        assert_eq!(a, b);
        let mut other = recipe();
        other.seed = 6;
        let (c, _) = generate(&src, &src, &other, "squares").unwrap();
        assert_ne!(a, c);
        assert_eq!(a.iter().filter(|(p, _)| p.ends_with(".png")).count(), 2 * 8);
    }

    #[test]
    fn bad_recipes_name_the_option() {
        let mut r = recipe();
        r.max_scale = 3.0;
        assert!(r.check().unwrap_err().to_string().contains("--scale"));
        let mut r = recipe();
        r.min_objects = 0;
        assert!(r.check().unwrap_err().to_string().contains("--objects"));
        let mut r = recipe();
        r.canvas = 8;
        assert!(r.check().unwrap_err().to_string().contains("--canvas"));
    }

    fn write(files: &[(String, Vec<u8>)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (rel, bytes) in files {
            let p = dir.path().join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
        dir
    }

    #[test]
    fn loads_what_it_wrote_for_both_tasks() {
        let src = source();
        let (files, _) = generate(&src, &src, &recipe(), "squares").unwrap();
        let dir = write(&files);
        let d = load_scenes(dir.path(), "train", Task::Detect, [64, 64, 1], [8, 8]).unwrap();
        assert_eq!((d.len(), d.positions(), d.classes.len()), (6, 64, 11));
        // Every object's centre cell carries its class (unless a later object took the cell).
        for i in 0..d.len() {
            let cells = d.target_block(i);
            assert!(cells.iter().filter(|&&c| c > 0).count() <= d.objects[i].len());
            let last = d.objects[i].last().unwrap();
            let (cx, cy) = last.centre();
            assert_eq!(cells[(cy / 8.0) as usize * 8 + (cx / 8.0) as usize] as usize, last.class + 1);
        }
        let s = load_scenes(dir.path(), "test", Task::Segment, [64, 64, 1], [64, 64]).unwrap();
        assert_eq!((s.len(), s.positions()), (2, 64 * 64));
        assert!(s.targets.iter().any(|&t| t > 0));
        // YOLO labels with classes.txt, when there is no COCO file.
        std::fs::remove_file(dir.path().join("annotations/train.json")).unwrap();
        let names: String = (0..10).map(|k| format!("{k}\n")).collect();
        std::fs::write(dir.path().join("classes.txt"), names).unwrap();
        let y = load_scenes(dir.path(), "train", Task::Detect, [64, 64, 1], [8, 8]).unwrap();
        assert_eq!(y.targets, d.targets);
    }

    fn load_err(files: &[(String, Vec<u8>)], task: Task) -> String {
        let dir = write(files);
        format!("{:#}", load_scenes(dir.path(), "train", task, [64, 64, 1], [8, 8]).unwrap_err())
    }

    #[test]
    fn bad_labels_are_named() {
        let src = source();
        let (files, _) = generate(&src, &src, &recipe(), "squares").unwrap();
        let edit = |path: &str, f: &dyn Fn(&str) -> String| -> Vec<(String, Vec<u8>)> {
            files
                .iter()
                .map(|(p, b)| {
                    if p == path {
                        (p.clone(), f(std::str::from_utf8(b).unwrap()).into_bytes())
                    } else {
                        (p.clone(), b.clone())
                    }
                })
                .collect()
        };
        let coco = "annotations/train.json";
        let outside = edit(coco, &|t| {
            let mut v: serde_json::Value = serde_json::from_str(t).unwrap();
            v["annotations"][0]["bbox"] = serde_json::json!([50.0, 50.0, 30.0, 5.0]);
            v.to_string()
        });
        assert!(load_err(&outside, Task::Detect).contains("annotations[0]"), "{}", load_err(&outside, Task::Detect));
        assert!(load_err(&outside, Task::Detect).contains("outside the 64×64 image"));
        let unknown = edit(coco, &|t| {
            let mut v: serde_json::Value = serde_json::from_str(t).unwrap();
            v["annotations"][1]["category_id"] = serde_json::json!(42);
            v.to_string()
        });
        assert!(load_err(&unknown, Task::Detect).contains("unknown category_id 42"));
        assert!(load_err(&edit(coco, &|_| "{".into()), Task::Detect).contains("not COCO JSON"));
        // A mask of the wrong size, and one with a class that does not exist.
        let mut small = files.clone();
        let m = small.iter_mut().find(|(p, _)| p == "masks/train/00000.png").unwrap();
        m.1 = png(&[0u8; 32 * 32], 32).unwrap();
        assert!(load_err(&small, Task::Segment).contains("the mask is 32×32, its image 64×64"));
        let mut bad = files.clone();
        let m = bad.iter_mut().find(|(p, _)| p == "masks/train/00001.png").unwrap();
        m.1 = png(&[200u8; 64 * 64], 64).unwrap();
        assert!(load_err(&bad, Task::Segment).contains("class 200"));
        // YOLO: a line that is not five numbers, a class without a name.
        let mut yolo: Vec<_> = files.iter().filter(|(p, _)| !p.starts_with("annotations")).cloned().collect();
        yolo.push(("classes.txt".into(), b"a\nb\n".to_vec()));
        let e = load_err(&yolo, Task::Detect);
        assert!(e.contains("classes.txt names 2 classes"), "{e}");
        let y = yolo.iter_mut().find(|(p, _)| p == "labels/train/00000.txt").unwrap();
        y.1 = b"0 0.5 0.5\n".to_vec();
        assert!(load_err(&yolo, Task::Detect).contains("expected `class cx cy w h`"));
    }
}
