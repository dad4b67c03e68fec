//! From a network's output tensor to answers, on the device and without a heap: a per-pixel class
//! map (segmentation), the peaks of a centre heat map (FOMO-style detection) and a decoded box
//! (localization).

use crate::error::{Error, Result};
use crate::shape::Shape;

/// Writes the index of the best class of every pixel of an `[h, w, classes]` score map into
/// `classes_out` (one byte per pixel; the first class on ties, as TFLite's `ARG_MAX`).
///
/// # Errors
///
/// [`Error::InvalidCount`] for zero classes or more than 256; [`Error::LengthMismatch`] if
/// `scores` is not a whole number of pixels or `classes_out` does not have one byte per pixel.
/// Nothing is written on error.
pub fn argmax_map_i8(scores: &[i8], classes: usize, classes_out: &mut [u8]) -> Result<()> {
    if classes == 0 || classes > 256 {
        return Err(Error::InvalidCount);
    }
    if scores.len() % classes != 0 {
        return Err(Error::LengthMismatch { expected: scores.len() - scores.len() % classes, actual: scores.len() });
    }
    let pixels = scores.len() / classes;
    if classes_out.len() != pixels {
        return Err(Error::LengthMismatch { expected: pixels, actual: classes_out.len() });
    }
    for (px, out) in scores.chunks_exact(classes).zip(classes_out.iter_mut()) {
        *out = best_class(px).0 as u8;
    }
    Ok(())
}

/// `(class, score)` of the best entry, the first on ties (`px` is non-empty).
fn best_class(px: &[i8]) -> (usize, i8) {
    let mut best = (0, px[0]);
    for (c, &v) in px.iter().enumerate().skip(1) {
        if v > best.1 {
            best = (c, v);
        }
    }
    best
}

/// One detected object centre: the heat-map cell, its class and its int8 score.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Peak {
    /// Row of the cell in the heat map.
    pub y: usize,
    /// Column of the cell.
    pub x: usize,
    /// Class index (never the background class).
    pub class: usize,
    /// The cell's score for that class (quantized, as the model outputs it).
    pub score: i8,
}

/// How [`find_peaks_i8`] decides what is an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct PeakParams {
    /// The smallest score that counts (compare with the model's quantized output: for a softmax
    /// output, `q = −128 + 256·p`).
    pub threshold: i8,
    /// The background channel, which never yields a peak (FOMO puts it at 0); `None` if every
    /// channel is an object class.
    pub background: Option<usize>,
}

/// The peaks [`find_peaks_i8`] keeps, and how many qualified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Peaks<const N: usize> {
    /// The strongest peaks, best score first (ties in raster order), at most `N`.
    pub peaks: heapless::Vec<Peak, N>,
    /// How many cells qualified; more than `peaks.len()` when some were dropped for room.
    pub total: usize,
}

/// Finds object centres in an `[h, w, classes]` heat map (FOMO's output): a cell is a peak of
/// class `c` when `c` is the cell's best class (first on ties), is not the background, scores at
/// least `p.threshold`, and the score is a local maximum of channel `c` over the 3×3
/// neighbourhood — larger than the neighbours before it in raster order and at least as large as
/// those after, so a plateau yields its first cell, not all of them.
///
/// Keeps the `N` best by score in a `heapless::Vec` (no heap), best first.
///
/// # Errors
///
/// [`Error::InvalidCount`] for zero classes or `N == 0`; [`Error::LengthMismatch`] if `heat`
/// does not hold `shape`; [`Error::ShapeMismatch`] for a batch other than 1 or a background
/// channel out of range.
pub fn find_peaks_i8<const N: usize>(heat: &[i8], shape: Shape, p: &PeakParams) -> Result<Peaks<N>> {
    if shape.c == 0 || N == 0 {
        return Err(Error::InvalidCount);
    }
    if shape.n != 1 || p.background.is_some_and(|b| b >= shape.c) {
        return Err(Error::ShapeMismatch);
    }
    shape.expect_len(heat.len())?;
    let (h, w, c) = (shape.h, shape.w, shape.c);
    let at = |y: usize, x: usize, k: usize| heat[(y * w + x) * c + k];
    let mut out = Peaks { peaks: heapless::Vec::new(), total: 0 };
    for y in 0..h {
        for x in 0..w {
            let (class, score) = best_class(&heat[(y * w + x) * c..(y * w + x + 1) * c]);
            if Some(class) == p.background || score < p.threshold {
                continue;
            }
            let mut peak = true;
            'n: for ny in y.saturating_sub(1)..(y + 2).min(h) {
                for nx in x.saturating_sub(1)..(x + 2).min(w) {
                    let v = at(ny, nx, class);
                    let earlier = (ny, nx) < (y, x);
                    if v > score || (earlier && v == score) {
                        peak = false;
                        break 'n;
                    }
                }
            }
            if !peak {
                continue;
            }
            out.total += 1;
            let found = Peak { y, x, class, score };
            // Insert after every kept peak that scores at least as much (raster order on ties).
            let pos = out.peaks.iter().position(|q| q.score < score).unwrap_or(out.peaks.len());
            if pos >= N {
                continue;
            }
            if out.peaks.is_full() {
                out.peaks.pop();
            }
            // Cannot fail: a slot was freed above if the vector was full.
            let _ = out.peaks.insert(pos, found);
        }
    }
    Ok(out)
}

/// How a box head's four numbers are laid out (each a fraction of the image side, 0..1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum BoxFormat {
    /// Centre x, centre y, width, height.
    CxCyWh,
    /// Left, top, right, bottom.
    Xyxy,
}

/// A box in pixels: `x0 ≤ x1`, `y0 ≤ y1`, inside the image.
#[derive(Clone, Copy, Debug, PartialEq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BBox {
    /// Left edge.
    pub x0: f32,
    /// Top edge.
    pub y0: f32,
    /// Right edge.
    pub x1: f32,
    /// Bottom edge.
    pub y1: f32,
}

impl BBox {
    /// Area in square pixels.
    pub fn area(&self) -> f32 {
        (self.x1 - self.x0) * (self.y1 - self.y0)
    }

    /// Intersection over union with `other` (0 when both are empty).
    pub fn iou(&self, other: &BBox) -> f32 {
        let w = (self.x1.min(other.x1) - self.x0.max(other.x0)).max(0.0);
        let h = (self.y1.min(other.y1) - self.y0.max(other.y0)).max(0.0);
        let inter = w * h;
        let union = self.area() + other.area() - inter;
        if union > 0.0 {
            inter / union
        } else {
            0.0
        }
    }
}

/// Decodes a box head's four int8 outputs (quantization `scale`, `zero_point`) into pixels of a
/// `width × height` image, clamped to it.
///
/// # Errors
///
/// [`Error::InvalidQuantization`] for a scale that is not finite and positive;
/// [`Error::ZeroParameter`] for an empty image.
pub fn decode_box(
    q: [i8; 4],
    scale: f32,
    zero_point: i8,
    format: BoxFormat,
    width: usize,
    height: usize,
) -> Result<BBox> {
    if !(scale.is_finite() && scale > 0.0) {
        return Err(Error::InvalidQuantization);
    }
    if width == 0 || height == 0 {
        return Err(Error::ZeroParameter);
    }
    let v = q.map(|x| (x as i32 - zero_point as i32) as f32 * scale);
    box_from_fractions(v, format, width, height)
}

/// A box head's four real numbers (fractions of the image side, laid out as `format`) in pixels
/// of a `width × height` image, clamped to it: what [`decode_box`] does after dequantizing, for a
/// float model's outputs.
///
/// # Errors
///
/// [`Error::ZeroParameter`] for an empty image.
pub fn box_from_fractions(v: [f32; 4], format: BoxFormat, width: usize, height: usize) -> Result<BBox> {
    if width == 0 || height == 0 {
        return Err(Error::ZeroParameter);
    }
    let (wf, hf) = (width as f32, height as f32);
    let (x0, y0, x1, y1) = match format {
        BoxFormat::CxCyWh => (v[0] - v[2] / 2.0, v[1] - v[3] / 2.0, v[0] + v[2] / 2.0, v[1] + v[3] / 2.0),
        BoxFormat::Xyxy => (v[0], v[1], v[2], v[3]),
    };
    let clamp = |a: f32, side: f32| (a * side).clamp(0.0, side);
    let (x0, x1) = (clamp(x0, wf), clamp(x1, wf));
    let (y0, y1) = (clamp(y0, hf), clamp(y1, hf));
    Ok(BBox { x0: x0.min(x1), y0: y0.min(y1), x1: x0.max(x1), y1: y0.max(y1) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_map_first_on_ties() {
        let mut out = [9u8; 3];
        argmax_map_i8(&[1, 5, 5, -128, -128, -128, 0, 1, 2], 3, &mut out).unwrap();
        assert_eq!(out, [1, 0, 2]);
        assert_eq!(argmax_map_i8(&[1, 2], 0, &mut out), Err(Error::InvalidCount));
        assert_eq!(argmax_map_i8(&[1, 2], 3, &mut out), Err(Error::LengthMismatch { expected: 0, actual: 2 }));
        assert_eq!(argmax_map_i8(&[1, 2, 3], 3, &mut out), Err(Error::LengthMismatch { expected: 1, actual: 3 }));
    }

    #[test]
    fn peaks_are_local_maxima_of_the_best_class() {
        // 3×4 map, 2 channels (0 = background).
        #[rustfmt::skip]
        let heat = [
            9, 0,   0, 50,   0, 50,   0, 10,
            9, 0,   0, 20,   0, 0,    0, 70,
            80, 1,  0, 0,    0, 0,    0, 60,
        ];
        let p = PeakParams { threshold: 15, background: Some(0) };
        let r = find_peaks_i8::<4>(&heat, Shape::image(3, 4, 2), &p).unwrap();
        // (0,1)=50 and (0,2)=50 are a plateau: the first cell only; (1,3)=70 beats (2,3)=60.
        assert_eq!(r.total, 2);
        assert_eq!(
            r.peaks.as_slice(),
            &[Peak { y: 1, x: 3, class: 1, score: 70 }, Peak { y: 0, x: 1, class: 1, score: 50 }]
        );
        let one = find_peaks_i8::<1>(&heat, Shape::image(3, 4, 2), &p).unwrap();
        assert_eq!((one.total, one.peaks.len(), one.peaks[0].score), (2, 1, 70));
        let all = PeakParams { threshold: -128, background: None };
        let r = find_peaks_i8::<8>(&heat, Shape::image(3, 4, 2), &all).unwrap();
        assert!(r.peaks.iter().any(|q| q.class == 0 && q.score == 80));
        assert_eq!(find_peaks_i8::<0>(&heat, Shape::image(3, 4, 2), &p), Err(Error::InvalidCount));
        let bad = PeakParams { background: Some(2), ..p };
        assert_eq!(find_peaks_i8::<2>(&heat, Shape::image(3, 4, 2), &bad), Err(Error::ShapeMismatch));
    }

    #[test]
    fn boxes_decode_and_clamp() {
        // scale 1/256, zp −128: q = −128 + 256·v.
        let b = decode_box([0, 0, -64, -64], 1.0 / 256.0, -128, BoxFormat::CxCyWh, 64, 32).unwrap();
        assert_eq!(b, BBox { x0: 24.0, y0: 12.0, x1: 40.0, y1: 20.0 });
        let c = decode_box([127, 127, 127, 127], 1.0 / 64.0, -128, BoxFormat::Xyxy, 10, 10).unwrap();
        assert_eq!(c, BBox { x0: 10.0, y0: 10.0, x1: 10.0, y1: 10.0 });
        assert!((b.iou(&b) - 1.0).abs() < 1e-6);
        assert_eq!(b.iou(&c), 0.0);
        assert_eq!(decode_box([0; 4], f32::NAN, 0, BoxFormat::Xyxy, 1, 1), Err(Error::InvalidQuantization));
        assert_eq!(decode_box([0; 4], 1.0, 0, BoxFormat::Xyxy, 0, 1), Err(Error::ZeroParameter));
    }
}
