//! Augmentations on real images transform pixels exactly as specified and are reproducible.

mod common;
use host_train::data::augment::Augment;
use host_train::rng::Rng;

fn apply(a: &Augment, img: &[f32], seed: u64) -> Vec<f32> {
    let mut out = vec![0.0; img.len()];
    a.apply(img, &mut out, 28, 28, 1, &mut Rng::new(seed));
    out
}

#[test]
fn identity_settings_copy_exactly() {
    let d = common::fashion300();
    for i in 0..20 {
        assert_eq!(apply(&Augment::default(), d.image(i), i as u64), d.image(i));
    }
    // Rotation by 0 degrees (range zero) is the identity too.
    let zero_rot = Augment { rotate_deg: 0.0, ..Default::default() };
    assert_eq!(apply(&zero_rot, d.image(3), 9), d.image(3));
}

#[test]
fn flips_mirror_pixels_and_twice_is_identity() {
    let d = common::fashion300();
    let h = Augment { hflip: 1.0, ..Default::default() };
    let v = Augment { vflip: 1.0, ..Default::default() };
    let img = d.image(7);
    let once = apply(&h, img, 1);
    for y in 0..28 {
        for x in 0..28 {
            assert_eq!(once[y * 28 + x], img[y * 28 + 27 - x]);
        }
    }
    assert_eq!(apply(&h, &once, 2), img);
    let vo = apply(&v, img, 3);
    assert_eq!(vo[0..28], img[27 * 28..28 * 28]);
    assert_eq!(apply(&v, &vo, 4), img);
}

#[test]
fn pad_then_crop_keeps_size_and_shifts_content() {
    let d = common::fashion300();
    let a = Augment { crop_pad: 3, ..Default::default() };
    let img = d.image(11);
    for seed in 0..20 {
        let out = apply(&a, img, seed);
        assert_eq!(out.len(), 28 * 28, "a crop has the model's input size");
        // The result is the input shifted by some (dx, dy) in −3..=3, zero-filled.
        let found = (-3i32..=3).flat_map(|dy| (-3i32..=3).map(move |dx| (dx, dy))).any(|(dx, dy)| {
            (0..28).all(|y| {
                (0..28).all(|x| {
                    let (sx, sy) = (x - dx, y - dy);
                    let want =
                        if (0..28).contains(&sx) && (0..28).contains(&sy) { img[(sy * 28 + sx) as usize] } else { 0.0 };
                    out[(y * 28 + x) as usize] == want
                })
            })
        });
        assert!(found, "seed {seed}: not an integer shift of the input");
    }
}

#[test]
fn brightness_and_contrast_follow_their_formulas() {
    let d = common::fashion300();
    let img = d.image(5);
    let out = apply(&Augment { brightness: 0.2, ..Default::default() }, img, 8);
    // Find the offset from an unclamped pixel, then check every pixel.
    let (i, _) = img.iter().enumerate().find(|(_, &p)| p > 0.3 && p < 0.7).expect("mid-grey pixel");
    let delta = out[i] - img[i];
    assert!(delta.abs() <= 0.2 + 1e-6);
    for (o, p) in out.iter().zip(img) {
        assert!((o - (p + delta).clamp(0.0, 1.0)).abs() < 1e-6);
    }
    let c = apply(&Augment { contrast: 0.5, ..Default::default() }, img, 9);
    let mean = img.iter().sum::<f32>() / img.len() as f32;
    let k = (c[i] - mean) / (img[i] - mean);
    assert!((0.5..=1.5).contains(&k));
}

#[test]
fn rotation_and_colour_jitter_are_reproducible_under_the_seed() {
    let d = common::fashion300();
    let a = Augment { rotate_deg: 15.0, translate: 0.1, brightness: 0.1, contrast: 0.2, ..Default::default() };
    assert_eq!(apply(&a, d.image(1), 77), apply(&a, d.image(1), 77));
    assert_ne!(apply(&a, d.image(1), 77), apply(&a, d.image(1), 78));
    // A 90° rotation moves the top row to a column (square image, exact pixel centres).
    let r = Augment { rotate_deg: 1e-9, ..Default::default() };
    let out = apply(&r, d.image(2), 1);
    assert!(out.iter().zip(d.image(2)).all(|(a, b)| (a - b).abs() < 1e-4), "a tiny rotation is (nearly) the identity");
}

#[test]
fn rgb_grayscale_makes_channels_equal() {
    let mut rng = Rng::new(1);
    let img: Vec<f32> = (0..8 * 8 * 3).map(|_| rng.f32()).collect();
    let a = Augment { grayscale: 1.0, ..Default::default() };
    let mut out = vec![0.0; img.len()];
    a.apply(&img, &mut out, 8, 8, 3, &mut Rng::new(2));
    for px in out.chunks(3) {
        assert!((px[0] - px[1]).abs() < 1e-6 && (px[1] - px[2]).abs() < 1e-6);
    }
    let hue = Augment { hue: 0.1, saturation: 0.3, ..Default::default() };
    hue.apply(&img, &mut out, 8, 8, 3, &mut Rng::new(3));
    assert!(out.iter().all(|v| (0.0..=1.0).contains(v)));
}

#[test]
fn outline_turns_a_filled_square_into_its_border() {
    // A filled 10×10 square in a 28×28 image.
    let mut img = vec![0.0f32; 784];
    for y in 9..19 {
        for x in 9..19 {
            img[y * 28 + x] = 1.0;
        }
    }
    let a = Augment { outline: 1.0, ..Default::default() };
    let out = apply(&a, &img, 1);
    // Inside the square (two pixels in) and far outside it there is no edge.
    assert_eq!(out[14 * 28 + 14], 0.0);
    assert_eq!(out[2 * 28 + 2], 0.0);
    // The edge pixels light up, the strongest at exactly 1.
    assert!(out[14 * 28 + 9] > 0.5 && out[14 * 28 + 8] > 0.5, "left edge");
    assert!(out.iter().all(|&v| (0.0..=1.0).contains(&v)));
    assert_eq!(out.iter().cloned().fold(0.0, f32::max), 1.0);
    // A blank image stays blank, and on real images the result is reproducible under the seed.
    assert_eq!(apply(&a, &[0.0; 784], 1), vec![0.0; 784]);
    let d = common::fashion300();
    let half = Augment { outline: 0.5, ..Default::default() };
    assert_eq!(apply(&half, d.image(5), 77), apply(&half, d.image(5), 77));
}

/// Boxes, centres and masks move with the pixels: a bright rectangle is augmented as an image,
/// and its moved box must cover exactly the bright pixels (flips and whole-pixel shifts) or
/// enclose them snugly (rotations).
#[test]
fn boxes_and_masks_move_with_the_pixels() {
    use host_train::data::Object;
    use host_train::rng::Rng;
    let (h, w) = (40usize, 48usize);
    let aug = Augment { hflip: 0.5, vflip: 0.5, rotate_deg: 12.0, translate: 0.15, ..Augment::default() };
    let shift = Augment { hflip: 0.5, vflip: 0.5, crop_pad: 6, ..Augment::default() };
    let mut rng = Rng::new(9);
    let mut checked = 0;
    for case in 0..300 {
        let (x0, y0) = (4 + rng.below(20), 4 + rng.below(16));
        let (x1, y1) = (x0 + 4 + rng.below(16), y0 + 4 + rng.below(14));
        let mut img = vec![0.0f32; h * w];
        for y in y0..y1 {
            for x in x0..x1 {
                img[y * w + x] = 1.0;
            }
        }
        let obj = Object { class: 3, bbox: [x0 as f32, y0 as f32, x1 as f32, y1 as f32] };
        let exact = case % 2 == 0;
        let d = if exact { shift.draw(h, w, 1, &mut rng) } else { aug.draw(h, w, 1, &mut rng) };
        let mut out = vec![0.0f32; h * w];
        d.apply(&img, &mut out, h, w, 1);
        let lit: Vec<(usize, usize)> = (0..h * w).filter(|&i| out[i] > 0.5).map(|i| (i % w, i / w)).collect();
        let moved = d.move_objects(&[obj], h, w);
        if lit.is_empty() {
            continue;
        }
        let (px0, py0) = (lit.iter().map(|p| p.0).min().unwrap() as f32, lit.iter().map(|p| p.1).min().unwrap() as f32);
        let (px1, py1) =
            (lit.iter().map(|p| p.0).max().unwrap() as f32 + 1.0, lit.iter().map(|p| p.1).max().unwrap() as f32 + 1.0);
        let Some(m) = moved.first() else {
            // Dropped: its centre left the image or most of it did.
            continue;
        };
        assert_eq!(m.class, 3);
        let [a0, b0, a1, b1] = m.bbox;
        if exact {
            assert_eq!([a0, b0, a1, b1], [px0, py0, px1, py1], "case {case}: {d:?}");
            // The grid label map moves identically (grid = pixels).
            let labels: Vec<u8> = img.iter().map(|&v| v as u8 * 4).collect();
            let g = d.move_grid(&labels, [h, w], h, w);
            let want: Vec<u8> = out.iter().map(|&v| (v > 0.5) as u8 * 4).collect();
            assert_eq!(g, want, "case {case}: mask");
        } else {
            // Encloses every lit pixel, within a pixel of rounding.
            assert!(a0 <= px0 + 1.0 && b0 <= py0 + 1.0 && a1 >= px1 - 1.0 && b1 >= py1 - 1.0, "case {case}");
            // ... and snugly: a 12° rotation grows a box's area by well under 60 %.
            let area = |a: f32, b: f32, c: f32, e: f32| (c - a) * (e - b);
            if px0 > 0.0 && py0 > 0.0 && px1 < w as f32 && py1 < h as f32 {
                assert!(area(a0, b0, a1, b1) <= 1.6 * area(px0, py0, px1, py1) + 8.0, "case {case}");
            }
        }
        checked += 1;
    }
    assert!(checked > 150, "only {checked} cases kept their object");
}

#[test]
fn an_identity_draw_moves_nothing() {
    use host_train::data::Object;
    let d = Augment::default().draw(10, 12, 1, &mut host_train::rng::Rng::new(1));
    let o = [Object { class: 1, bbox: [2.0, 3.0, 7.0, 9.0] }];
    assert_eq!(d.move_objects(&o, 10, 12), o.to_vec());
    let grid: Vec<u8> = (0..30).map(|v| v as u8).collect();
    assert_eq!(d.move_grid(&grid, [5, 6], 10, 12), grid);
}
