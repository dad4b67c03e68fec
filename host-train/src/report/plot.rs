//! PNG figures without a plotting stack: training curves and a confusion-matrix heat map,
//! drawn straight into an `image` buffer (people would rather look than read).

use anyhow::Result;
use image::{Rgb, RgbImage};

fn line(img: &mut RgbImage, (x0, y0): (f32, f32), (x1, y1): (f32, f32), c: Rgb<u8>) {
    let n = ((x1 - x0).abs().max((y1 - y0).abs()) as usize).max(1);
    for i in 0..=n {
        let t = i as f32 / n as f32;
        let (x, y) = (x0 + (x1 - x0) * t, y0 + (y1 - y0) * t);
        for (dx, dy) in [(0, 0), (1, 0), (0, 1)] {
            let (px, py) = (x as i32 + dx, y as i32 + dy);
            if px >= 0 && py >= 0 && (px as u32) < img.width() && (py as u32) < img.height() {
                img.put_pixel(px as u32, py as u32, c);
            }
        }
    }
}

/// A 3×5 pixel font for the few characters the figures need (each row is 3 bits, MSB left).
fn glyph(c: char) -> [u8; 5] {
    match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 3, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 2, 2],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '%' => [5, 1, 2, 4, 5],
        '.' => [0, 0, 0, 0, 2],
        ':' => [0, 2, 0, 2, 0],
        '-' => [0, 0, 7, 0, 0],
        '/' => [1, 1, 2, 4, 4],
        '(' => [1, 2, 2, 2, 1],
        ')' => [4, 2, 2, 2, 4],
        'a' => [0, 7, 1, 7, 7],
        'c' => [0, 7, 4, 4, 7],
        'e' => [7, 5, 7, 4, 7],
        'h' => [4, 4, 7, 5, 5],
        'i' => [2, 0, 2, 2, 2],
        'l' => [6, 2, 2, 2, 7],
        'n' => [0, 6, 5, 5, 5],
        'o' => [0, 7, 5, 5, 7],
        'p' => [7, 5, 7, 4, 4],
        'r' => [0, 7, 4, 4, 4],
        's' => [7, 4, 7, 1, 7],
        't' => [2, 7, 2, 2, 3],
        'u' => [0, 5, 5, 5, 7],
        'x' => [0, 5, 2, 2, 5],
        'm' => [0, 7, 7, 5, 5],
        'd' => [1, 1, 7, 5, 7],
        'g' => [7, 5, 7, 1, 7],
        'y' => [5, 5, 7, 1, 7],
        'f' => [3, 2, 7, 2, 2],
        'b' => [4, 4, 7, 5, 7],
        'k' => [4, 5, 6, 5, 5],
        'v' => [0, 5, 5, 5, 2],
        'w' => [0, 5, 5, 7, 7],
        _ => [0; 5],
    }
}

/// Draws `text` with its top-left corner at `(x, y)`, each font pixel `scale`×`scale`.
pub fn text(img: &mut RgbImage, x: u32, y: u32, text: &str, scale: u32, c: Rgb<u8>) {
    for (i, ch) in text.chars().enumerate() {
        let g = glyph(ch.to_ascii_lowercase());
        for (row, bits) in g.iter().enumerate() {
            for col in 0..3 {
                if bits >> (2 - col) & 1 == 1 {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            let (px, py) = (x + (i as u32 * 4 + col) * scale + dx, y + row as u32 * scale + dy);
                            if px < img.width() && py < img.height() {
                                img.put_pixel(px, py, c);
                            }
                        }
                    }
                }
            }
        }
    }
}

fn encode(img: &RgbImage) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)?;
    Ok(bytes)
}

/// Curves on a 0–1 vertical scale over epochs: each series `(name, values, colour)`, with a
/// legend, 0–100 % axis labels and the epoch count; grid lines every 10 %. Loss is normalised to
/// its maximum by the caller.
pub fn curves(series: &[(&str, Vec<f32>, [u8; 3])]) -> Result<Vec<u8>> {
    let (w, h, m) = (640u32, 400u32, 30f32);
    let mut img = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    let grey = Rgb([90, 90, 90]);
    text(&mut img, 2, m as u32 - 2, "100%", 1, grey);
    text(&mut img, 6, h - m as u32 - 2, "0%", 1, grey);
    let epochs = series.iter().map(|s| s.1.len()).max().unwrap_or(0);
    text(&mut img, w - 150, h - 20, &format!("epochs 1-{epochs}"), 2, grey);
    for (i, (name, vals, col)) in series.iter().enumerate() {
        let last = vals.last().map(|v| format!(" {:.1}%", 100.0 * v)).unwrap_or_default();
        let label = if *name == "loss" { "loss (scaled)".to_string() } else { format!("{name}{last}") };
        text(&mut img, 60 + 190 * i as u32, 8, &label, 2, Rgb(*col));
    }
    for g in 0..=10 {
        let y = m + (h as f32 - 2.0 * m) * g as f32 / 10.0;
        line(&mut img, (m, y), (w as f32 - m, y), Rgb([225, 225, 225]));
    }
    line(&mut img, (m, m), (m, h as f32 - m), Rgb([0, 0, 0]));
    line(&mut img, (m, h as f32 - m), (w as f32 - m, h as f32 - m), Rgb([0, 0, 0]));
    for (_, vals, col) in series {
        let n = vals.len().max(2) - 1;
        let pt = |i: usize, v: f32| {
            (m + (w as f32 - 2.0 * m) * i as f32 / n as f32, h as f32 - m - (h as f32 - 2.0 * m) * v.clamp(0.0, 1.0))
        };
        for i in 1..vals.len() {
            line(&mut img, pt(i - 1, vals[i - 1]), pt(i, vals[i]), Rgb(*col));
        }
        if vals.len() == 1 {
            let (x, y) = pt(0, vals[0]);
            line(&mut img, (x - 3.0, y), (x + 3.0, y), Rgb(*col));
        }
    }
    encode(&img)
}

/// A confusion matrix as a heat map: row = true class, column = predicted (both numbered);
/// darker = more. Correct predictions (the diagonal) are blue, mistakes red.
pub fn confusion(matrix: &[Vec<usize>]) -> Result<Vec<u8>> {
    let k = matrix.len().max(1);
    let cell = (480 / k).max(8) as u32;
    let m = 16u32; // margin for the class numbers
    let mut img = RgbImage::from_pixel(m + cell * k as u32 + 2, m + cell * k as u32 + 2, Rgb([255, 255, 255]));
    let grey = Rgb([90, 90, 90]);
    for i in 0..k {
        let label = i.to_string();
        text(&mut img, m + i as u32 * cell + cell / 2 - 3, 4, &label, 2, grey); // predicted (columns)
        text(&mut img, 2, m + i as u32 * cell + cell / 2 - 5, &label, 2, grey); // true (rows)
    }
    for (i, row) in matrix.iter().enumerate() {
        let total = row.iter().sum::<usize>().max(1) as f32;
        for (j, &v) in row.iter().enumerate() {
            let f = (v as f32 / total).sqrt();
            let shade = (255.0 * (1.0 - f)) as u8;
            let col = if i == j { Rgb([shade, shade, 255]) } else { Rgb([255, shade, shade]) };
            for y in 1..cell {
                for x in 1..cell {
                    img.put_pixel(m + j as u32 * cell + x, m + i as u32 * cell + y, col);
                }
            }
        }
    }
    encode(&img)
}

/// Saves a grid of `h × w × c` images (values in [0, 1]), `cols` per row, scaled up ×`zoom`.
pub fn image_grid(images: &[Vec<f32>], h: usize, w: usize, c: usize, cols: usize, zoom: usize) -> Result<Vec<u8>> {
    let rows = images.len().div_ceil(cols);
    let (gw, gh) = ((cols * (w * zoom + 2)) as u32, (rows * (h * zoom + 2)) as u32);
    let mut img = RgbImage::from_pixel(gw, gh, Rgb([40, 40, 40]));
    for (n, im) in images.iter().enumerate() {
        let (ox, oy) = ((n % cols) * (w * zoom + 2) + 1, (n / cols) * (h * zoom + 2) + 1);
        for y in 0..h * zoom {
            for x in 0..w * zoom {
                let at = ((y / zoom) * w + x / zoom) * c;
                let px = |ch: usize| (im[at + if c == 3 { ch } else { 0 }].clamp(0.0, 1.0) * 255.0) as u8;
                img.put_pixel((ox + x) as u32, (oy + y) as u32, Rgb([px(0), px(1), px(2)]));
            }
        }
    }
    encode(&img)
}
