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
fn geometry_extremes() {
    let share = run(harness::check_geometry, 7);
    assert!(share > 0.2 || cfg!(miri), "only {share} of the geometry cases got past the argument checks");
}
