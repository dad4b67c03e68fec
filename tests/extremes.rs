//! Extreme arguments for every public runtime function, on the stable toolchain: the same
//! harness the coverage-guided fuzz targets use (`fuzz/`), fed with seeded random bytes. Runs
//! with overflow checks on (`cargo test`), and under Miri with fewer cases (`cargo +nightly miri
//! test --test extremes`). Any panic, any fast path that differs from the reference, or any
//! output written before an error fails it.

mod harness;

/// Cases per check (Miri interprets, so it runs a handful).
const CASES: u64 = if cfg!(miri) { 10 } else { 20_000 };

fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// Runs `check` on `CASES` inputs and returns the share whose main call succeeded, so each
/// test can insist that it exercises the arithmetic, not only the argument checks.
fn run(check: fn(&[u8]) -> bool, salt: u64) -> f64 {
    let mut ok = 0;
    for seed in 0..CASES {
        let data = bytes(seed ^ salt, 16 + (seed as usize % 200));
        ok += check(&data) as u64;
    }
    // The all-zero and all-0xFF inputs, and the empty one.
    check(&[]);
    check(&[0; 256]);
    check(&[0xff; 256]);
    let share = ok as f64 / CASES as f64;
    println!("{share:.3} of the cases ran to completion");
    share
}

#[test]
fn conv_extremes() {
    let share = run(harness::check_conv, 1);
    assert!(share > 0.2 || cfg!(miri), "only {share} of the conv cases got past the argument checks");
}

#[test]
fn depthwise_extremes() {
    let share = run(harness::check_depthwise, 2);
    assert!(share > 0.2 || cfg!(miri), "only {share} of the depthwise cases got past the argument checks");
}

#[test]
fn upsample_extremes() {
    let share = run(harness::check_upsample, 10);
    assert!(share > 0.2 || cfg!(miri), "only {share} of the transpose-conv cases got past the argument checks");
}

#[test]
fn postprocess_extremes() {
    let share = run(harness::check_postprocess, 11);
    assert!(share > 0.2 || cfg!(miri), "only {share} of the post-processing cases got past the argument checks");
}

#[test]
fn dense_extremes() {
    let share = run(harness::check_dense, 3);
    assert!(share > 0.2 || cfg!(miri), "only {share} of the dense cases got past the argument checks");
}

#[test]
fn pool_extremes() {
    let share = run(harness::check_pool, 4);
    assert!(share > 0.2 || cfg!(miri), "only {share} of the pool cases got past the argument checks");
}

#[test]
fn elementwise_extremes() {
    let share = run(harness::check_elementwise, 5);
    assert!(share > 0.2 || cfg!(miri), "only {share} of the elementwise cases got past the argument checks");
}

#[test]
fn quant_extremes() {
    let share = run(harness::check_quant, 6);
    assert!(share > 0.2 || cfg!(miri), "only {share} of the quant cases got past the argument checks");
}

#[test]
fn simd_extremes() {
    let share = run(harness::check_simd, 12);
    assert!(share > 0.9 || cfg!(miri), "only {share} of the SIMD cases ran to completion");
}

#[test]
fn geometry_extremes() {
    let share = run(harness::check_geometry, 7);
    assert!(share > 0.2 || cfg!(miri), "only {share} of the geometry cases got past the argument checks");
}

/// The accumulator headroom bound, both sides: at `MAX_TAPS` products of the largest magnitude
/// (weight −128 against an input 255 steps from its zero point) the sum is exact; one more tap
/// is refused, by dense and by convolution alike.
#[test]
fn accumulator_headroom_boundary_is_exact_on_both_sides() {
    use microcnn::conv::{conv2d_i8, ConvParams, ConvWeights, MAX_TAPS};
    use microcnn::dense::{dense_i8, DenseParams, DenseWeights};
    use microcnn::{ActivationRange, Error, Padding, Shape};
    let depth = if cfg!(miri) { return } else { MAX_TAPS };
    assert_eq!(depth, 65_793);
    let w = vec![-128i8; depth + 1];
    let x = vec![127i8; depth + 1]; // x − zp = 127 − (−128) = 255
                                    // acc = −128 · 255 · 65,793 = −2,147,483,520; × 2^30 · 2^(−24 − 31) = acc / 2^25 = −63.99… → −64.
    let rq = [microcnn::Requant::new(1 << 30, -24)];
    let p = DenseParams { input_zero_point: -128, output_zero_point: 0, activation: ActivationRange::NONE };
    let mut out = [0i8; 1];
    let dw = DenseWeights { weights: &w[..depth], units: 1, bias: None, requant: &rq };
    assert_eq!(dense_i8(&p, &dw, &x[..depth], Shape::vector(1, depth), &mut out), Ok(Shape::vector(1, 1)));
    assert_eq!(out[0], -64, "the exact sum, not a wrapped one");
    out[0] = 0;
    let blocked = microcnn::dense::dense_i8_blocked(&p, &dw, &x[..depth], Shape::vector(1, depth), &mut out);
    assert_eq!((blocked, out[0]), (Ok(Shape::vector(1, 1)), -64), "the SIMD kernel too");
    let dw = DenseWeights { weights: &w, units: 1, bias: None, requant: &rq };
    assert_eq!(dense_i8(&p, &dw, &x, Shape::vector(1, depth + 1), &mut out), Err(Error::TooLarge));
    let cp = ConvParams {
        stride_h: 1,
        stride_w: 1,
        dilation_h: 1,
        dilation_w: 1,
        padding: Padding::Valid,
        input_zero_point: -128,
        output_zero_point: 0,
        activation: ActivationRange::NONE,
    };
    for taps in [depth, depth + 1] {
        // As a 1×1 convolution and as a 3×1 one (the general path).
        for (kh, c) in [(1, taps), (3, taps / 3)] {
            let cw =
                ConvWeights { filter: &w[..kh * c], filter_shape: Shape::new(1, kh, 1, c), bias: None, requant: &rq };
            let r = conv2d_i8(&cp, &cw, &x[..kh * c], Shape::image(kh, 1, c), &mut out);
            let mut out2 = [0i8; 1];
            let r2 = microcnn::conv::conv2d_i8_blocked(&cp, &cw, &x[..kh * c], Shape::image(kh, 1, c), &mut out2);
            assert_eq!(r, r2, "blocked == dispatched, {kh}×1×{c}");
            if r.is_ok() {
                assert_eq!(out[0], out2[0], "blocked == dispatched, {kh}×1×{c}");
            }
            if kh * c <= MAX_TAPS {
                assert_eq!(r, Ok(Shape::image(1, 1, 1)), "{kh}×1×{c}");
                let want = if kh * c == depth { -64 } else { (-128i64 * 255 * (kh * c) as i64 / (1 << 25)) as i8 };
                assert!((out[0] as i64 - want as i64).abs() <= 1, "{kh}×1×{c}: {}", out[0]);
            } else {
                assert_eq!(r, Err(Error::TooLarge), "{kh}×1×{c}");
            }
        }
    }
}

/// Every input a fuzz target once crashed on (`fuzz/regressions/<target>/`), replayed through the
/// same checks on every `cargo test`.
#[test]
fn fuzz_regressions_stay_fixed() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    type Check = fn(&[u8]) -> bool;
    let checks: [(&str, Check); 7] = [
        ("conv", |d| harness::check_upsample(d) | harness::check_conv(d)),
        ("depthwise", harness::check_depthwise),
        ("dense", harness::check_dense),
        ("pool", harness::check_pool),
        ("elementwise", |d| harness::check_postprocess(d) | harness::check_elementwise(d)),
        ("quant", harness::check_quant),
        ("geometry", harness::check_geometry),
    ];
    let mut replayed = 0;
    for (target, check) in checks {
        let Ok(dir) = std::fs::read_dir(root.join(target)) else { continue };
        for entry in dir {
            let path = entry.expect("readable regression folder").path();
            check(&std::fs::read(&path).expect("readable regression input"));
            replayed += 1;
        }
    }
    assert!(replayed >= 1, "the committed regression inputs were not found under {}", root.display());
}
