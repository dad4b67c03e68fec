//! PNG figures drawn with `plotters` and the DejaVu Sans font (embedded by the `dejavu` crate, so
//! no system font is needed): training curves with titled, numbered axes and a legend, and a
//! confusion matrix with class names and counts.

use anyhow::{anyhow, Result};
use image::{Rgb, RgbImage};
use plotters::prelude::*;
use plotters::style::FontStyle;

/// The font family every figure uses, registered once from the embedded DejaVu Sans.
const FONT: &str = "sans-serif";

fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Only fails for bytes that are not a font; these are DejaVu Sans.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
    });
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the figure failed: {e:?}")
}

fn encode(img: &RgbImage) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut bytes), image::ImageFormat::Png)?;
    Ok(bytes)
}

/// Draws into a `w × h` RGB canvas with `draw`, then encodes it as PNG.
fn figure(
    w: u32,
    h: u32,
    draw: impl FnOnce(DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>) -> Result<()>,
) -> Result<Vec<u8>> {
    register_font();
    let mut buf = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(plot_err)?;
        draw(root.clone())?;
        root.present().map_err(plot_err)?;
    }
    let img = RgbImage::from_raw(w, h, buf).ok_or_else(|| anyhow!("figure buffer of the wrong size"))?;
    encode(&img)
}

/// A curve: legend label, `(epoch, value)` points, colour.
type Series = (String, Vec<(f32, f32)>, RGBColor);

/// One titled line chart over epochs: numbered axes, each series `(label, points, colour)` with
/// its legend entry.
#[allow(clippy::too_many_arguments)]
fn panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    title: &str,
    y_desc: &str,
    epochs: usize,
    y: std::ops::Range<f32>,
    series: Vec<Series>,
    legend_at: SeriesLabelPosition,
) -> Result<()> {
    let mut c = ChartBuilder::on(area)
        .caption(title, (FONT, 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(1f32..epochs.max(2) as f32, y)
        .map_err(plot_err)?;
    c.configure_mesh()
        .x_desc("epoch")
        .y_desc(y_desc)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 14))
        .x_labels(epochs.min(12))
        .x_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(plot_err)?;
    for (label, pts, col) in series {
        c.draw_series(LineSeries::new(pts.clone(), col.stroke_width(2)))
            .map_err(plot_err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2)));
        c.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, col.filled()))).map_err(plot_err)?;
    }
    c.configure_series_labels()
        .position(legend_at)
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_err)
}

/// Points `(epoch, scale · value)` of per-epoch values (non-finite ones left out).
fn per_epoch(vals: &[f32], scale: f32) -> Vec<(f32, f32)> {
    vals.iter().enumerate().filter(|(_, v)| v.is_finite()).map(|(i, &v)| (i as f32 + 1.0, scale * v)).collect()
}

/// Training curves: the loss per epoch on the left, accuracies (`(name, values in 0–1)`) in
/// percent in the middle, and a task's metric (`(name, values in 0–1)`: centre F1, mean IoU) on
/// the right when given; each panel titled, with numbered axes and a legend.
pub fn curves(loss: &[f32], accuracies: &[(&str, Vec<f32>)], metric: Option<(&str, Vec<f32>)>) -> Result<Vec<u8>> {
    let epochs = loss.len().max(accuracies.iter().map(|a| a.1.len()).max().unwrap_or(0)).max(1);
    let width = if metric.is_some() { 1440 } else { 960 };
    figure(width, 400, |root| {
        let (left, rest) = root.split_horizontally(480);
        let (middle, right) = rest.split_horizontally(480);
        let top = loss.iter().copied().filter(|v| v.is_finite()).fold(1e-6f32, f32::max) * 1.05;
        let red = RGBColor(200, 60, 40);
        let series = vec![("training loss".to_string(), per_epoch(loss, 1.0), red)];
        panel(&left, "loss", "mean training loss", epochs, 0.0..top, series, SeriesLabelPosition::UpperRight)?;
        let all = accuracies.iter().flat_map(|a| a.1.iter().copied()).filter(|v| v.is_finite());
        let lo = (all.fold(1.0f32, f32::min) * 100.0 - 2.0).clamp(0.0, 98.0).floor();
        let colours = [RGBColor(40, 90, 200), RGBColor(30, 160, 60), RGBColor(150, 60, 170)];
        let series = accuracies
            .iter()
            .enumerate()
            .map(|(k, (name, vals))| {
                let last = vals.last().map(|v| format!(" ({:.2} % last)", 100.0 * v)).unwrap_or_default();
                (format!("{name}{last}"), per_epoch(vals, 100.0), colours[k % colours.len()])
            })
            .collect();
        panel(&middle, "accuracy", "accuracy (%)", epochs, lo..100.0, series, SeriesLabelPosition::LowerRight)?;
        if let Some((name, vals)) = &metric {
            let last = vals.last().map(|v| format!(" ({v:.3} last)")).unwrap_or_default();
            let series = vec![(format!("test{last}"), per_epoch(vals, 1.0), RGBColor(150, 60, 170))];
            panel(&right, name, name, epochs, 0.0..1.0, series, SeriesLabelPosition::LowerRight)?;
        }
        Ok(())
    })
}

/// A confusion matrix: rows the true class, columns the predicted one, both named; each cell
/// shaded by its share of the row (blue on the diagonal, red off it) and labelled with its count.
pub fn confusion(matrix: &[Vec<usize>], names: &[String]) -> Result<Vec<u8>> {
    let k = matrix.len().max(1);
    let label = |i: usize| -> String {
        let n = names.get(i).cloned().unwrap_or_else(|| i.to_string());
        if n.chars().count() > 12 {
            n.chars().take(11).chain(std::iter::once('…')).collect()
        } else {
            n
        }
    };
    let cell = (560 / k as u32).clamp(24, 64);
    let side = cell * k as u32;
    figure(side + 170, side + 150, |root| {
        let mut c = ChartBuilder::on(&root)
            .caption("confusion matrix (test set)", (FONT, 20))
            .margin(12)
            .x_label_area_size(50)
            .y_label_area_size(110)
            .build_cartesian_2d((0..k).into_segmented(), (0..k).into_segmented())
            .map_err(plot_err)?;
        for (i, row) in matrix.iter().enumerate() {
            let total = row.iter().sum::<usize>().max(1) as f32;
            for (j, &v) in row.iter().enumerate() {
                let f = (v as f32 / total).sqrt();
                let shade = (255.0 * (1.0 - f)) as u8;
                let col = if i == j { RGBColor(shade, shade, 255) } else { RGBColor(255, shade, shade) };
                let y = k - 1 - i;
                let (x0, y0) = (SegmentValue::Exact(j), SegmentValue::Exact(y));
                let (x1, y1) = (SegmentValue::Exact(j + 1), SegmentValue::Exact(y + 1));
                c.draw_series(std::iter::once(Rectangle::new([(x0, y0), (x1.clone(), y1.clone())], col.filled())))
                    .map_err(plot_err)?;
                let text_col = if f > 0.6 { WHITE } else { BLACK };
                let size = if v >= 10_000 { 10 } else { 12 };
                let (a, b) =
                    (c.backend_coord(&(SegmentValue::Exact(j), y1)), c.backend_coord(&(x1, SegmentValue::Exact(y))));
                let digits = v.to_string().len() as i32;
                root.draw(&Text::new(
                    v.to_string(),
                    ((a.0 + b.0) / 2 - digits * size / 4, (a.1 + b.1) / 2 - size / 2),
                    (FONT, size).into_font().color(&text_col),
                ))
                .map_err(plot_err)?;
            }
        }
        // Labels last, so no cell covers them.
        c.configure_mesh()
            .disable_mesh()
            .x_desc("predicted class")
            .y_desc("true class")
            .axis_desc_style((FONT, 14))
            .x_labels(k)
            .y_labels(k)
            .x_label_style((FONT, 11))
            .y_label_style((FONT, 12))
            // Column names as wide as a cell allows (about 6.5 pixels a character).
            .x_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) if *i < k => {
                    let n = label(*i);
                    let fit = (cell as usize / 7).max(2);
                    if n.chars().count() > fit {
                        n.chars().take(fit - 1).chain(std::iter::once('…')).collect()
                    } else {
                        n
                    }
                }
                _ => String::new(),
            })
            // Row 0 at the top, as a matrix is read.
            .y_label_formatter(&|v| match v {
                SegmentValue::CenterOf(i) if *i < k => label(k - 1 - *i),
                _ => String::new(),
            })
            .draw()
            .map_err(plot_err)?;
        Ok(())
    })
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

/// A palette for class maps: background black, then distinct colours.
fn class_colour(c: usize) -> RGBColor {
    const P: [(u8, u8, u8); 12] = [
        (0, 0, 0),
        (230, 25, 75),
        (60, 180, 75),
        (255, 225, 25),
        (0, 130, 200),
        (245, 130, 48),
        (145, 30, 180),
        (70, 240, 240),
        (240, 50, 230),
        (210, 245, 60),
        (250, 190, 212),
        (0, 128, 128),
    ];
    let (r, g, b) = P[if c == 0 { 0 } else { 1 + (c - 1) % 11 }];
    RGBColor(r, g, b)
}

/// Overlays for a detection image: the grey `h × w` image scaled ×`zoom`, true boxes in green
/// with their class, the true centre cells outlined green, and predicted centres (cell, class,
/// score 0–1) as red squares with labels; a legend line at the top.
#[allow(clippy::too_many_arguments)]
pub fn detection_overlay(
    image: &[f32],
    h: usize,
    w: usize,
    grid: [usize; 2],
    truth: &[crate::data::Object],
    predicted: &[(usize, usize, usize, f32)],
    names: &[String],
    zoom: u32,
) -> Result<Vec<u8>> {
    let (iw, ih) = (w as u32 * zoom, h as u32 * zoom);
    let name = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
    figure(iw, ih + 24, |root| {
        let (top, body) = root.split_vertically(24);
        top.draw(&Text::new("green: true box + centre cell   red: predicted centre (score)", (4, 5), (FONT, 13)))
            .map_err(plot_err)?;
        draw_grey(&body, image, h, w, zoom)?;
        let (cw, ch) = (iw as f32 / grid[1] as f32, ih as f32 / grid[0] as f32);
        let z = zoom as f32;
        for o in truth {
            let [a, b, c, d] = o.bbox.map(|v| v * z);
            body.draw(&Rectangle::new([(a as i32, b as i32), (c as i32, d as i32)], GREEN.stroke_width(2)))
                .map_err(plot_err)?;
            body.draw(&Text::new(
                name(o.class + 1),
                (a as i32 + 2, b as i32 + 2),
                (FONT, 14).into_font().color(&GREEN),
            ))
            .map_err(plot_err)?;
            let (gy, gx) = crate::data::scenes::centre_cell(o, h, w, grid);
            let (x0, y0) = ((gx as f32 * cw) as i32, (gy as f32 * ch) as i32);
            body.draw(&Rectangle::new([(x0, y0), (x0 + cw as i32, y0 + ch as i32)], GREEN.mix(0.6).stroke_width(1)))
                .map_err(plot_err)?;
        }
        for &(gy, gx, c, score) in predicted {
            let (x0, y0) = ((gx as f32 * cw) as i32, (gy as f32 * ch) as i32);
            body.draw(&Rectangle::new(
                [(x0 + 2, y0 + 2), (x0 + cw as i32 - 2, y0 + ch as i32 - 2)],
                RED.stroke_width(2),
            ))
            .map_err(plot_err)?;
            body.draw(&Text::new(
                format!("{} {:.2}", name(c), score),
                (x0 + 2, y0 + ch as i32 - 14),
                (FONT, 12).into_font().color(&RED),
            ))
            .map_err(plot_err)?;
        }
        Ok(())
    })
}

/// Draws a grey `h × w` image, each pixel a `zoom × zoom` square.
fn draw_grey(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    image: &[f32],
    h: usize,
    w: usize,
    zoom: u32,
) -> Result<()> {
    for y in 0..h {
        for x in 0..w {
            let v = (image[y * w + x].clamp(0.0, 1.0) * 255.0) as u8;
            let (x0, y0) = ((x as u32 * zoom) as i32, (y as u32 * zoom) as i32);
            area.draw(&Rectangle::new([(x0, y0), (x0 + zoom as i32, y0 + zoom as i32)], RGBColor(v, v, v).filled()))
                .map_err(plot_err)?;
        }
    }
    Ok(())
}

/// A localization overlay: the image with the true box (green, its class) and the predicted box
/// (red, its class and the IoU with the true one).
pub fn localization_overlay(
    image: &[f32],
    h: usize,
    w: usize,
    truth: &crate::data::Object,
    predicted: (usize, microcnn::postprocess::BBox),
    names: &[String],
    zoom: u32,
) -> Result<Vec<u8>> {
    let (iw, ih) = (w as u32 * zoom, h as u32 * zoom);
    let name = |c: usize| names.get(c).cloned().unwrap_or_else(|| c.to_string());
    let [tx0, ty0, tx1, ty1] = truth.bbox;
    let (class, b) = predicted;
    let iou = b.iou(&microcnn::postprocess::BBox { x0: tx0, y0: ty0, x1: tx1, y1: ty1 });
    figure(iw, ih + 24, |root| {
        let (top, body) = root.split_vertically(24);
        top.draw(&Text::new(format!("green: true box   red: predicted (IoU {iou:.2})"), (4, 5), (FONT, 13)))
            .map_err(plot_err)?;
        draw_grey(&body, image, h, w, zoom)?;
        let z = zoom as f32;
        let boxes = [([tx0, ty0, tx1, ty1], truth.class, GREEN, 2), ([b.x0, b.y0, b.x1, b.y1], class, RED, -16)];
        for (bb, c, colour, text_dy) in boxes {
            let [a, b0, c1, d] = bb.map(|v| v * z);
            body.draw(&Rectangle::new([(a as i32, b0 as i32), (c1 as i32, d as i32)], colour.stroke_width(2)))
                .map_err(plot_err)?;
            // The true class inside the box's top, the predicted one under the box (inside its
            // bottom when the box reaches the image's lower edge).
            let ty = if text_dy > 0 {
                b0 as i32 + text_dy
            } else if d as i32 + 18 <= ih as i32 {
                d as i32 + 2
            } else {
                d as i32 - 18
            };
            body.draw(&Text::new(name(c), (a as i32 + 2, ty), (FONT, 14).into_font().color(&colour)))
                .map_err(plot_err)?;
        }
        Ok(())
    })
}

/// Segmentation overlays: the image, the true class map and the predicted one side by side
/// (each `gh × gw` map scaled to the image), coloured by class, with a legend of class names.
#[allow(clippy::too_many_arguments)]
pub fn segmentation_overlay(
    image: &[f32],
    h: usize,
    w: usize,
    grid: [usize; 2],
    truth: &[u8],
    predicted: &[u8],
    names: &[String],
    zoom: u32,
) -> Result<Vec<u8>> {
    let (pw, ph) = (w as u32 * zoom, h as u32 * zoom);
    let k = names.len().max(1);
    figure(3 * pw + 20, ph + 60, |root| {
        let (panels, legend) = root.split_vertically(ph + 24);
        let cols = panels.split_evenly((1, 3));
        for (p, (title, map)) in
            cols.iter().zip([("image", None), ("true classes", Some(truth)), ("predicted", Some(predicted))])
        {
            p.draw(&Text::new(title, (4, 4), (FONT, 14))).map_err(plot_err)?;
            let (gh, gw) = (grid[0], grid[1]);
            for y in 0..h {
                for x in 0..w {
                    let col = match map {
                        None => {
                            let v = (image[y * w + x].clamp(0.0, 1.0) * 255.0) as u8;
                            RGBColor(v, v, v)
                        }
                        Some(m) => class_colour(m[(y * gh / h) * gw + x * gw / w] as usize),
                    };
                    let (x0, y0) = ((x as u32 * zoom) as i32, (y as u32 * zoom) as i32 + 22);
                    p.draw(&Rectangle::new([(x0, y0), (x0 + zoom as i32, y0 + zoom as i32)], col.filled()))
                        .map_err(plot_err)?;
                }
            }
        }
        let mut x = 4;
        for (c, name) in names.iter().enumerate().take(k).skip(1) {
            legend.draw(&Rectangle::new([(x, 8), (x + 12, 20)], class_colour(c).filled())).map_err(plot_err)?;
            legend.draw(&Text::new(name.clone(), (x + 16, 7), (FONT, 13))).map_err(plot_err)?;
            x += 24 + 8 * name.chars().count().min(12) as i32;
        }
        Ok(())
    })
}
