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

use super::Dataset;
use crate::rng::Rng;
use anyhow::{bail, Result};
use serde::Serialize;
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

#[derive(Serialize)]
struct CocoImage {
    id: usize,
    file_name: String,
    width: usize,
    height: usize,
}

#[derive(Serialize)]
struct CocoAnnotation {
    id: usize,
    image_id: usize,
    category_id: usize,
    bbox: [f32; 4],
    area: f32,
    iscrowd: u8,
    centre: [f32; 2],
}

#[derive(Serialize)]
struct CocoCategory {
    id: usize,
    name: String,
}

#[derive(Serialize)]
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
}
