//! The QEMU classification and golden programs: the shared support crate's pieces, the stack
//! reserve the link-time RAM check uses, and the classification app's `main`.

#![no_std]

pub use microcnn_fw_support::{exit, InstructionCounter, StackMeter};

include!(concat!(env!("OUT_DIR"), "/stack_reserve.rs"));

/// The most frequent class of a class map (the lowest of equals). Not inlined: its counts would
/// otherwise stay in `main`'s frame during every inference.
#[inline(never)]
pub fn majority_class(map: &[u8], classes: usize) -> usize {
    let mut counts = [0usize; 256];
    for &c in map {
        counts[c as usize] += 1;
    }
    (0..classes.min(256)).rev().max_by_key(|&c| counts[c]).unwrap_or(0)
}

/// Prints the box a localization model found: its class and the box decoded from the four int8
/// numbers after the class scores (`box_scale` = one step as a fraction of the image side).
#[inline(never)]
pub fn print_box(image: usize, label: &str, q: &[i8], box_scale: f32, zero_point: i8, input: microcnn::Shape) {
    let Some(&[a, b, c, d]) = q.first_chunk::<4>() else {
        defmt::error!("image {=usize}: the output has no box", image);
        return;
    };
    let fmt = microcnn::postprocess::BoxFormat::CxCyWh;
    match microcnn::postprocess::decode_box([a, b, c, d], box_scale, zero_point, fmt, input.w, input.h) {
        Ok(r) => defmt::info!(
            "image {=usize}: {=str} in box x {=f32}..{=f32}, y {=f32}..{=f32} (pixels)",
            image,
            label,
            r.x0,
            r.x1,
            r.y0,
            r.y1
        ),
        Err(e) => defmt::error!("image {=usize}: box decoding failed: {}", image, e),
    }
}

/// Prints the object centres a FOMO heat map (`[h, w, classes]`, softmax scores, background
/// channel 0) holds: local maxima scoring at least 0.5, with their class and cell.
#[inline(never)]
pub fn print_centres(image: usize, heat: &[i8], shape: [usize; 3], labels: &[&str]) {
    let p = microcnn::postprocess::PeakParams { threshold: 0, background: Some(0) };
    let s = microcnn::Shape::image(shape[0], shape[1], shape[2]);
    match microcnn::postprocess::find_peaks_i8::<8>(heat, s, &p) {
        Ok(r) => {
            defmt::info!("image {=usize}: {=usize} object centre(s)", image, r.total);
            for q in &r.peaks {
                defmt::info!(
                    "  {=str} at cell ({=usize}, {=usize}), score {=u8}/255",
                    labels.get(q.class).copied().unwrap_or("?"),
                    q.y,
                    q.x,
                    (q.score as i16 + 128) as u8
                );
            }
        }
        Err(e) => defmt::error!("image {=usize}: peak finding failed: {}", image, e),
    }
}

/// Prints a class map as text, at most 32 columns (each character the most frequent class of
/// its block): `.` for class 0 (background), otherwise the first character of the class's name
/// (its number when the name does not start with a visible ASCII character).
#[inline(never)]
pub fn print_class_map(map: &[u8], h: usize, w: usize, labels: &[&str]) {
    let step = w.div_ceil(32).max(1);
    // Characters are about twice as tall as wide: take twice as many pixels per row.
    let step_y = 2 * step;
    defmt::info!("class map {=usize}x{=usize} (one character per {=usize}x{=usize} pixels):", h, w, step_y, step);
    let mut y = 0;
    while y < h {
        let mut line = [b' '; 32];
        for (k, x) in (0..w).step_by(step).enumerate().take(32) {
            let mut counts = [0u16; 36];
            for yy in y..(y + step_y).min(h) {
                for xx in x..(x + step).min(w) {
                    counts[(map[yy * w + xx] as usize).min(35)] += 1;
                }
            }
            let c = (0..36).rev().max_by_key(|&c| counts[c]).unwrap_or(0);
            let first = labels.get(c).and_then(|l| l.bytes().next()).filter(|b| b.is_ascii_graphic());
            line[k] = match (c, first) {
                (0, _) => b'.',
                (_, Some(b)) => b,
                (1..=9, None) => b'0' + c as u8,
                _ => b'a' + (c - 10) as u8,
            };
        }
        let n = w.div_ceil(step).min(32);
        defmt::info!("  {=str}", core::str::from_utf8(&line[..n]).unwrap_or("?"));
        y += step_y;
    }
}

/// Defines the `main` of a classification app for a generated model module `$model` and its
/// test vectors `$vectors`: runs every embedded test image, prints each prediction, checks each
/// output against the host's bit for bit, reports accuracy and per-layer instruction counts, and
/// exits non-zero on any mismatch. A model whose output is a map (segmentation) gets a per-pixel
/// class map, printed as text for the first image; its prediction is the map's majority class.
/// A localization model (`classify_app!(model, vectors, Some(model::BOX_SCALE))`) also prints the
/// box it found in each image.
#[macro_export]
macro_rules! classify_app {
    ($model:ident, $vectors:ident) => {
        $crate::classify_app!($model, $vectors, None);
    };
    ($model:ident, $vectors:ident, $box_scale:expr) => {
        #[cortex_m_rt::entry]
        fn main() -> ! {
            use $model as model;
            use $vectors as vectors;
            let stack = $crate::StackMeter::paint();
            let Some(p) = cortex_m::Peripherals::take() else { $crate::exit(false) };
            let counter = $crate::InstructionCounter::new(p.SYST);
            // A compile-time-initialised static: the arena lives in .bss, where the linker's RAM
            // check counts it, and is never built on the stack first (as `singleton!` would,
            // which overflows a small stack without a link error).
            static ARENA: static_cell::ConstStaticCell<[i8; model::ARENA_BYTES]> =
                static_cell::ConstStaticCell::new([0; model::ARENA_BYTES]);
            let Some(arena) = ARENA.try_take() else { $crate::exit(false) };
            // Static, not on the stack: a segmentation map's scores are kilobytes.
            static SCORES: static_cell::ConstStaticCell<[i8; model::OUTPUT_LEN]> =
                static_cell::ConstStaticCell::new([0; model::OUTPUT_LEN]);
            let Some(scores) = SCORES.try_take() else { $crate::exit(false) };
            // A map output (segmentation, heat map): one class per pixel, from its channels.
            const PIXELS: usize = model::OUTPUT_LEN / model::NUM_CLASSES;
            static MAP: static_cell::ConstStaticCell<[u8; PIXELS]> = static_cell::ConstStaticCell::new([0; PIXELS]);
            let Some(map) = MAP.try_take() else { $crate::exit(false) };
            let mut per_layer = [0u64; model::LAYER_NAMES.len()];
            let (mut correct, mut mismatches, mut total) = (0usize, 0usize, 0u64);
            defmt::info!(
                "model {=str}: {=usize} layers, arena {=usize} B, weights {=usize} B, {=usize} test images",
                model::LAYER_NAMES[0],
                model::LAYER_NAMES.len(),
                model::ARENA_BYTES,
                model::WEIGHT_BYTES,
                vectors::COUNT
            );
            for i in 0..vectors::COUNT {
                let start = counter.ticks();
                let mut last = start;
                let r = model::run_observed(&vectors::IMAGES[i], arena, scores, |l| {
                    let now = counter.ticks();
                    per_layer[l] += counter.instructions(last, now);
                    last = now;
                });
                total += counter.instructions(start, last);
                if let Err(e) = r {
                    defmt::error!("image {=usize}: runtime error {}", i, e);
                    $crate::exit(false);
                }
                let pred = if PIXELS > 1 {
                    if microcnn::postprocess::argmax_map_i8(scores, model::NUM_CLASSES, map).is_err() {
                        $crate::exit(false);
                    }
                    if model::TASK == "detect" {
                        $crate::print_centres(i, scores, model::OUTPUT_SHAPE, &model::LABELS);
                    } else if i == 0 {
                        $crate::print_class_map(map, model::OUTPUT_SHAPE[0], model::OUTPUT_SHAPE[1], &model::LABELS);
                    }
                    $crate::majority_class(map, model::NUM_CLASSES)
                } else {
                    // A localization model's box follows its class scores.
                    let (classes, rest) = scores.split_at(model::NUM_CLASSES.min(scores.len()));
                    let best = microcnn::classify::argmax_i8(classes).unwrap_or(0);
                    let box_scale: Option<f32> = $box_scale;
                    if let Some(bs) = box_scale {
                        let label = model::LABELS.get(best).copied().unwrap_or("?");
                        $crate::print_box(i, label, rest, bs, model::OUTPUT_ZERO_POINT, model::INPUT_SHAPE);
                    }
                    best
                };
                let label = vectors::LABELS[i] as usize;
                let exact = *scores == vectors::EXPECTED[i];
                correct += (pred == label) as usize;
                mismatches += (!exact) as usize;
                defmt::info!(
                    "image {=usize}: predicted {=str}, true {=str}{=str}",
                    i,
                    model::LABELS[pred],
                    model::LABELS[label],
                    if exact { "" } else { "  <-- OUTPUT DIFFERS FROM HOST" }
                );
            }
            let n = vectors::COUNT.max(1) as u64;
            if counter.available() {
                defmt::info!("instructions per SysTick tick: {=u32}", counter.instructions_per_tick());
                for (l, name) in model::LAYER_NAMES.iter().enumerate() {
                    defmt::info!("PERF layer {=str} {=u64}", name, per_layer[l] / n);
                }
                defmt::info!("PERF inference {=u64}", total / n);
            } else {
                defmt::warn!("SysTick does not run on this machine: no instruction counts");
            }
            let stack_used = stack.used();
            defmt::info!("PERF stack {=usize}", stack_used);
            if stack_used > $crate::STACK_RESERVE {
                defmt::error!(
                    "the stack used {=usize} B, more than the {=usize} B the link-time RAM check reserves",
                    stack_used,
                    $crate::STACK_RESERVE
                );
                $crate::exit(false);
            }
            defmt::info!(
                "RESULT accuracy {=usize}/{=usize}, outputs bit-exact with host: {=usize}/{=usize}",
                correct,
                vectors::COUNT,
                vectors::COUNT - mismatches,
                vectors::COUNT
            );
            $crate::exit(mismatches == 0)
        }
    };
}
