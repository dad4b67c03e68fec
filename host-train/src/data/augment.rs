//! Data augmentation on `f32` images in `[0, 1]`, NHWC: one fused pass per image computes the
//! geometric warp (flip, rotation, translation, pad-then-crop) by inverse mapping and applies
//! colour jitter and grayscale while writing. Every choice comes from the caller's seeded
//! [`Rng`], so a run is reproducible.

use crate::rng::Rng;
use serde::{Deserialize, Serialize};

/// Augmentation settings; a probability of 0 or a strength of 0 disables a transform.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Augment {
    /// Probability of a horizontal flip.
    pub hflip: f32,
    /// Probability of a vertical flip.
    pub vflip: f32,
    /// Largest rotation, degrees (uniform in ±).
    pub rotate_deg: f32,
    /// Largest translation, fraction of the side (uniform in ±).
    pub translate: f32,
    /// Pad by this many pixels (zero) then crop back to size at a random offset.
    pub crop_pad: usize,
    /// Brightness jitter: add uniform ±b.
    pub brightness: f32,
    /// Contrast jitter: scale around the mean by uniform 1 ± c.
    pub contrast: f32,
    /// Saturation jitter for RGB: blend with grey by uniform 1 ± s.
    pub saturation: f32,
    /// Hue jitter for RGB: rotate the colour wheel by uniform ±h turns.
    pub hue: f32,
    /// Probability of converting an RGB image to grey (kept as 3 channels).
    pub grayscale: f32,
    /// Probability of replacing the image by its outline (Sobel edge magnitude, scaled to
    /// `[0, 1]`): filled shapes become strokes.
    pub outline: f32,
}

impl Default for Augment {
    fn default() -> Self {
        Augment {
            hflip: 0.0,
            vflip: 0.0,
            rotate_deg: 0.0,
            translate: 0.0,
            crop_pad: 0,
            brightness: 0.0,
            contrast: 0.0,
            saturation: 0.0,
            hue: 0.0,
            grayscale: 0.0,
            outline: 0.0,
        }
    }
}

impl Augment {
    /// Light augmentation suited to Fashion-MNIST (horizontal flips, small shifts).
    pub fn fashion() -> Self {
        Augment { hflip: 0.5, crop_pad: 2, ..Default::default() }
    }

    /// `true` if every transform is disabled.
    pub fn is_identity(&self) -> bool {
        *self == Augment::default()
    }

    /// Augments one `h × w × c` image from `src` into `dst`.
    pub fn apply(&self, src: &[f32], dst: &mut [f32], h: usize, w: usize, c: usize, rng: &mut Rng) {
        let d = self.draw(h, w, c, rng);
        d.apply(src, dst, h, w, c);
    }

    /// Draws one augmentation's random parameters (in the order [`Augment::apply`] always drew
    /// them), so the same geometry can move an image's boxes and masks too.
    pub fn draw(&self, h: usize, w: usize, c: usize, rng: &mut Rng) -> Drawn {
        let flip_x = rng.chance(self.hflip);
        let flip_y = rng.chance(self.vflip);
        let angle = if self.rotate_deg > 0.0 { rng.range(-self.rotate_deg, self.rotate_deg).to_radians() } else { 0.0 };
        let (mut tx, mut ty) = if self.translate > 0.0 {
            (
                rng.range(-self.translate, self.translate) * w as f32,
                rng.range(-self.translate, self.translate) * h as f32,
            )
        } else {
            (0.0, 0.0)
        };
        if self.crop_pad > 0 {
            let p = self.crop_pad as isize;
            tx += (rng.below(2 * self.crop_pad + 1) as isize - p) as f32;
            ty += (rng.below(2 * self.crop_pad + 1) as isize - p) as f32;
        }
        let bright = if self.brightness > 0.0 { rng.range(-self.brightness, self.brightness) } else { 0.0 };
        let contrast = if self.contrast > 0.0 { 1.0 + rng.range(-self.contrast, self.contrast) } else { 1.0 };
        let sat =
            if self.saturation > 0.0 && c == 3 { 1.0 + rng.range(-self.saturation, self.saturation) } else { 1.0 };
        let hue = if self.hue > 0.0 && c == 3 { rng.range(-self.hue, self.hue) } else { 0.0 };
        let grey = c == 3 && rng.chance(self.grayscale);
        // (Drawn only when enabled, so the other presets keep their random streams.)
        let outline = self.outline > 0.0 && rng.chance(self.outline);
        Drawn { flip_x, flip_y, angle, tx, ty, bright, contrast, sat, hue, grey, outline }
    }
}

/// One drawn augmentation: the geometry (flips, rotation about the centre, translation) that
/// moves pixels, boxes and masks alike, and the colour changes that touch pixels only.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Drawn {
    /// Mirror left–right.
    pub flip_x: bool,
    /// Mirror top–bottom.
    pub flip_y: bool,
    /// Rotation in radians.
    pub angle: f32,
    /// Translation in pixels, x.
    pub tx: f32,
    /// Translation in pixels, y.
    pub ty: f32,
    bright: f32,
    contrast: f32,
    sat: f32,
    hue: f32,
    grey: bool,
    outline: bool,
}

impl Drawn {
    /// Where source pixel position `(x, y)` (pixel centres at whole numbers) lands in the
    /// output: the inverse of the map [`Drawn::apply`] samples with.
    pub fn forward(&self, x: f32, y: f32, h: usize, w: usize) -> (f32, f32) {
        let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
        let rx = if self.flip_x { w as f32 - 1.0 - x } else { x };
        let ry = if self.flip_y { h as f32 - 1.0 - y } else { y };
        let (s, co) = self.angle.sin_cos();
        let (dx, dy) = (rx - cx, ry - cy);
        (co * dx - s * dy + cx + self.tx, s * dx + co * dy + cy + self.ty)
    }

    /// The source position output position `(x, y)` samples.
    fn backward(&self, x: f32, y: f32, h: usize, w: usize) -> (f32, f32) {
        let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
        let (s, co) = self.angle.sin_cos();
        let (ux, uy) = (x - self.tx - cx, y - self.ty - cy);
        let (rx, ry) = (co * ux + s * uy + cx, -s * ux + co * uy + cy);
        (if self.flip_x { w as f32 - 1.0 - rx } else { rx }, if self.flip_y { h as f32 - 1.0 - ry } else { ry })
    }

    /// Moves boxes `[x0, y0, x1, y1]` (pixel edges) with the image: the four corners are mapped
    /// and the box is their bounding box, clipped to the image. An object whose centre leaves
    /// the image, or that keeps less than a quarter of its moved box, is dropped.
    pub fn move_objects(&self, objects: &[crate::data::Object], h: usize, w: usize) -> Vec<crate::data::Object> {
        let mut out = Vec::new();
        for o in objects {
            let [x0, y0, x1, y1] = o.bbox;
            // Edges are half a pixel outside the pixel centres at the border.
            let corners = [(x0, y0), (x1, y0), (x0, y1), (x1, y1)].map(|(x, y)| self.forward(x - 0.5, y - 0.5, h, w));
            let (mut a0, mut b0, mut a1, mut b1) = (f32::MAX, f32::MAX, f32::MIN, f32::MIN);
            for (x, y) in corners {
                (a0, b0, a1, b1) = (a0.min(x + 0.5), b0.min(y + 0.5), a1.max(x + 0.5), b1.max(y + 0.5));
            }
            let full = (a1 - a0) * (b1 - b0);
            let (cx, cy) = ((a0 + a1) / 2.0, (b0 + b1) / 2.0);
            let clip = [a0.max(0.0), b0.max(0.0), a1.min(w as f32), b1.min(h as f32)];
            let kept = (clip[2] - clip[0]).max(0.0) * (clip[3] - clip[1]).max(0.0);
            let inside = (0.0..w as f32).contains(&cx) && (0.0..h as f32).contains(&cy);
            if inside && kept >= 0.25 * full {
                out.push(crate::data::Object { class: o.class, bbox: clip });
            }
        }
        out
    }

    /// Moves a `gh × gw` grid of class labels over an `h × w` image (a segmentation target):
    /// each cell takes the label of the source cell its centre comes from (0, the background,
    /// outside) — nearest neighbour, labels are never blended.
    pub fn move_grid(&self, labels: &[u8], grid: [usize; 2], h: usize, w: usize) -> Vec<u8> {
        let [gh, gw] = grid;
        let (sy, sx) = (h as f32 / gh as f32, w as f32 / gw as f32);
        let mut out = vec![0u8; gh * gw];
        for gy in 0..gh {
            for gx in 0..gw {
                let (px, py) = ((gx as f32 + 0.5) * sx - 0.5, (gy as f32 + 0.5) * sy - 0.5);
                let (qx, qy) = self.backward(px, py, h, w);
                let (cx, cy) = (((qx + 0.5) / sx).floor(), ((qy + 0.5) / sy).floor());
                if cx >= 0.0 && cy >= 0.0 && (cx as usize) < gw && (cy as usize) < gh {
                    out[gy * gw + gx] = labels[cy as usize * gw + cx as usize];
                }
            }
        }
        out
    }

    /// Applies the augmentation to one `h × w × c` image.
    pub fn apply(&self, src: &[f32], dst: &mut [f32], h: usize, w: usize, c: usize) {
        let Drawn { flip_x, flip_y, angle, tx, ty, bright, contrast, sat, hue, grey, outline } = *self;
        warp(src, dst, h, w, c, flip_x, flip_y, angle, tx, ty);
        if contrast != 1.0 {
            let mean = dst.iter().sum::<f32>() / dst.len() as f32;
            dst.iter_mut().for_each(|v| *v = (*v - mean) * contrast + mean);
        }
        if bright != 0.0 {
            dst.iter_mut().for_each(|v| *v += bright);
        }
        if c == 3 && (sat != 1.0 || hue != 0.0 || grey) {
            for px in dst.chunks_exact_mut(3) {
                colour(px, sat, hue, grey);
            }
        }
        dst.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
        if outline {
            sobel_outline(dst, h, w, c);
        }
    }
}

/// Replaces each channel by its Sobel gradient magnitude (zero outside the image), scaled so
/// the strongest edge is 1.
fn sobel_outline(img: &mut [f32], h: usize, w: usize, c: usize) {
    let src = img.to_vec();
    let at = |y: isize, x: isize, ch: usize| {
        if y < 0 || x < 0 || y >= h as isize || x >= w as isize {
            0.0
        } else {
            src[(y as usize * w + x as usize) * c + ch]
        }
    };
    let mut peak = 0.0f32;
    for y in 0..h as isize {
        for x in 0..w as isize {
            for ch in 0..c {
                let p = |dy: isize, dx: isize| at(y + dy, x + dx, ch);
                let gx = p(-1, 1) + 2.0 * p(0, 1) + p(1, 1) - p(-1, -1) - 2.0 * p(0, -1) - p(1, -1);
                let gy = p(1, -1) + 2.0 * p(1, 0) + p(1, 1) - p(-1, -1) - 2.0 * p(-1, 0) - p(-1, 1);
                let m = (gx * gx + gy * gy).sqrt();
                img[(y as usize * w + x as usize) * c + ch] = m;
                peak = peak.max(m);
            }
        }
    }
    if peak > 0.0 {
        img.iter_mut().for_each(|v| *v /= peak);
    }
}

/// Inverse-maps every output pixel through flip, rotation about the centre and translation,
/// sampling the source bilinearly (zero outside). Identity parameters copy exactly.
#[allow(clippy::too_many_arguments)]
fn warp(src: &[f32], dst: &mut [f32], h: usize, w: usize, c: usize, fx: bool, fy: bool, angle: f32, tx: f32, ty: f32) {
    let (cy, cx) = ((h as f32 - 1.0) / 2.0, (w as f32 - 1.0) / 2.0);
    let (s, co) = angle.sin_cos();
    let integral = angle == 0.0 && tx.fract() == 0.0 && ty.fract() == 0.0;
    for y in 0..h {
        for x in 0..w {
            // Output (x, y) ← source point: undo translation, then rotation, then flips.
            let (ux, uy) = (x as f32 - tx - cx, y as f32 - ty - cy);
            let (rx, ry) = (co * ux + s * uy + cx, -s * ux + co * uy + cy);
            let sx = if fx { w as f32 - 1.0 - rx } else { rx };
            let sy = if fy { h as f32 - 1.0 - ry } else { ry };
            let out = &mut dst[(y * w + x) * c..(y * w + x + 1) * c];
            if integral {
                let (ix, iy) = (sx.round() as isize, sy.round() as isize);
                if ix >= 0 && iy >= 0 && (ix as usize) < w && (iy as usize) < h {
                    let at = (iy as usize * w + ix as usize) * c;
                    out.copy_from_slice(&src[at..at + c]);
                } else {
                    out.iter_mut().for_each(|v| *v = 0.0);
                }
                continue;
            }
            let (x0, y0) = (sx.floor(), sy.floor());
            let (ax, ay) = (sx - x0, sy - y0);
            for (ch, o) in out.iter_mut().enumerate() {
                let mut acc = 0.0;
                for (dy, wy) in [(0, 1.0 - ay), (1, ay)] {
                    for (dx, wx) in [(0, 1.0 - ax), (1, ax)] {
                        let (px, py) = (x0 as isize + dx, y0 as isize + dy);
                        if px >= 0 && py >= 0 && (px as usize) < w && (py as usize) < h {
                            acc += wx * wy * src[(py as usize * w + px as usize) * c + ch];
                        }
                    }
                }
                *o = acc;
            }
        }
    }
}

/// Saturation, hue rotation (in YIQ space) and grayscale on one RGB pixel.
fn colour(px: &mut [f32], sat: f32, hue_turns: f32, grey: bool) {
    let (r, g, b) = (px[0], px[1], px[2]);
    let y = 0.299 * r + 0.587 * g + 0.114 * b;
    if grey {
        px.iter_mut().for_each(|v| *v = y);
        return;
    }
    let i = 0.596 * r - 0.274 * g - 0.322 * b;
    let q = 0.211 * r - 0.523 * g + 0.312 * b;
    let (s, c) = (hue_turns * std::f32::consts::TAU).sin_cos();
    let (i, q) = ((i * c - q * s) * sat, (i * s + q * c) * sat);
    px[0] = y + 0.956 * i + 0.621 * q;
    px[1] = y - 0.272 * i - 0.647 * q;
    px[2] = y - 1.106 * i + 1.703 * q;
}
