//! Property tests: specialised paths are bit-exact with the reference, L2 pooling is within
//! 1 LSB of float, no parameter makes a kernel panic, and geometry rules hold.

use microcnn::conv::{conv2d_1x1_i8, conv2d_i8, conv2d_i8_fast, conv2d_i8_reference, ConvParams, ConvWeights};
use microcnn::pool::{l2_pool2d_i8, L2PoolParams};
use microcnn::quant::quantize_multiplier;
use microcnn::Requant;

/// Pairs multipliers with shifts.
fn zip_rq(m: &[i32], s: &[i32]) -> Vec<Requant> {
    m.iter().zip(s).map(|(&m, &s)| Requant::new(m, s)).collect()
}
use microcnn::shape::output_size;
use microcnn::{ActivationRange, Error, Padding, Shape, Window};
use proptest::prelude::*;

type ConvCase = (Shape, Shape, usize, usize, i8, i8, Vec<i8>, Vec<i8>, Vec<i32>, Vec<i32>);

fn conv_case() -> impl Strategy<Value = ConvCase> {
    (1usize..3, 1usize..9, 1usize..9, 1usize..7, 1usize..9, 1usize..4, 1usize..4, any::<i8>(), any::<i8>())
        .prop_flat_map(|(n, h, w, ic, oc, sh, sw, zi, zo)| {
            let input = Shape::new(n, h, w, ic);
            let filter = Shape::new(oc, 1, 1, ic);
            (
                Just(input),
                Just(filter),
                Just(sh),
                Just(sw),
                Just(zi),
                Just(zo),
                proptest::collection::vec(any::<i8>(), input.len()),
                proptest::collection::vec(-127i8..=127, filter.len()),
                proptest::collection::vec(-5000i32..5000, oc),
                proptest::collection::vec(-20i32..4, oc),
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 3 } else { 500 }))]

    /// The 1×1 fast path equals the reference for every shape, stride and value.
    #[test]
    fn pointwise_equals_reference((input_shape, filter_shape, sh, sw, zi, zo, x, f, bias, shifts) in conv_case()) {
        let mult: Vec<i32> = shifts.iter().enumerate().map(|(i, _)| (1 << 30) + (i as i32) * 7919).collect();
        let p = ConvParams { stride_h: sh, stride_w: sw, dilation_h: 1, dilation_w: 1, padding: Padding::Same,
            input_zero_point: zi, output_zero_point: zo, activation: ActivationRange::NONE };
        let w = ConvWeights { filter: &f, filter_shape, bias: Some(&bias), requant: &zip_rq(&mult, &shifts) };
        let out_shape = microcnn::conv::conv2d_output_shape(&p, input_shape, filter_shape).unwrap();
        let mut a = vec![0i8; out_shape.len()];
        let mut b = vec![0i8; out_shape.len()];
        let ra = conv2d_i8_reference(&p, &w, &x, input_shape, &mut a);
        let rb = conv2d_1x1_i8(&p, &w, &x, input_shape, &mut b);
        prop_assert_eq!(ra, rb);
        prop_assert_eq!(a, b);
    }

    /// The general fast convolution equals the reference for any kernel, stride, dilation and
    /// padding (including windows that hang over every edge).
    #[test]
    fn fast_conv_equals_reference(n in 1usize..3, h in 1usize..10, w in 1usize..10, ic in 1usize..6, oc in 1usize..5,
                                  kh in 1usize..6, kw in 1usize..6, sh in 1usize..4, sw in 1usize..4,
                                  dh in 1usize..3, dw in 1usize..3, pad in proptest::array::uniform4(0usize..4),
                                  same in any::<bool>(), zi in any::<i8>(), zo in any::<i8>(),
                                  seed in any::<u64>()) {
        let padding = if same { Padding::Same } else { Padding::Explicit { top: pad[0], bottom: pad[1], left: pad[2], right: pad[3] } };
        let p = ConvParams { stride_h: sh, stride_w: sw, dilation_h: dh, dilation_w: dw, padding,
            input_zero_point: zi, output_zero_point: zo, activation: ActivationRange::relu(zo) };
        let input_shape = Shape::new(n, h, w, ic);
        let filter_shape = Shape::new(oc, kh, kw, ic);
        let Ok(out_shape) = microcnn::conv::conv2d_output_shape(&p, input_shape, filter_shape) else { return Ok(()); };
        let mut r = seed;
        let mut next = || { r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); (r >> 33) as i32 };
        let x: Vec<i8> = (0..input_shape.len()).map(|_| next() as i8).collect();
        let f: Vec<i8> = (0..filter_shape.len()).map(|_| (next() % 127) as i8).collect();
        let bias: Vec<i32> = (0..oc).map(|_| next() % 20000).collect();
        let mult: Vec<i32> = (0..oc).map(|_| (1 << 30) + next() % (1 << 29)).collect();
        let shift: Vec<i32> = (0..oc).map(|_| -(next().rem_euclid(12))).collect();
        let wts = ConvWeights { filter: &f, filter_shape, bias: Some(&bias), requant: &zip_rq(&mult, &shift) };
        let mut a = vec![0i8; out_shape.len()];
        let mut b = vec![0i8; out_shape.len()];
        prop_assert_eq!(conv2d_i8_reference(&p, &wts, &x, input_shape, &mut a), Ok(out_shape));
        prop_assert_eq!(conv2d_i8_fast(&p, &wts, &x, input_shape, &mut b), Ok(out_shape));
        prop_assert_eq!(a, b);
    }

    /// The fast depthwise convolution equals the reference for any multiplier, kernel, stride,
    /// dilation and padding.
    #[test]
    fn fast_depthwise_equals_reference(n in 1usize..3, h in 1usize..9, w in 1usize..9, ic in 1usize..70, m in 1usize..4,
                                       kh in 1usize..5, kw in 1usize..5, sh in 1usize..3, sw in 1usize..3,
                                       dh in 1usize..3, dw in 1usize..3, pad in proptest::array::uniform4(0usize..3),
                                       zi in any::<i8>(), seed in any::<u64>()) {
        use microcnn::depthwise::{depthwise_conv2d_i8_fast, depthwise_conv2d_i8_reference};
        let p = ConvParams { stride_h: sh, stride_w: sw, dilation_h: dh, dilation_w: dw,
            padding: Padding::Explicit { top: pad[0], bottom: pad[1], left: pad[2], right: pad[3] },
            input_zero_point: zi, output_zero_point: 3, activation: ActivationRange::NONE };
        let input_shape = Shape::new(n, h, w, ic);
        let filter_shape = Shape::new(1, kh, kw, ic * m);
        let Ok(out_shape) = microcnn::depthwise::depthwise_conv2d_output_shape(&p, m, input_shape, filter_shape) else { return Ok(()); };
        let mut r = seed;
        let mut next = || { r = r.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407); (r >> 33) as i32 };
        let x: Vec<i8> = (0..input_shape.len()).map(|_| next() as i8).collect();
        let f: Vec<i8> = (0..filter_shape.len()).map(|_| (next() % 127) as i8).collect();
        let oc = ic * m;
        let bias: Vec<i32> = (0..oc).map(|_| next() % 20000).collect();
        let mult: Vec<i32> = (0..oc).map(|_| (1 << 30) + next() % (1 << 29)).collect();
        let shift: Vec<i32> = (0..oc).map(|_| -(next().rem_euclid(10))).collect();
        let wts = ConvWeights { filter: &f, filter_shape, bias: Some(&bias), requant: &zip_rq(&mult, &shift) };
        let mut a = vec![0i8; out_shape.len()];
        let mut b = vec![0i8; out_shape.len()];
        prop_assert_eq!(depthwise_conv2d_i8_reference(&p, m, &wts, &x, input_shape, &mut a), Ok(out_shape));
        prop_assert_eq!(depthwise_conv2d_i8_fast(&p, m, &wts, &x, input_shape, &mut b), Ok(out_shape));
        prop_assert_eq!(a, b);
    }

    /// SAME padding equals the explicit padding it resolves to (one code path, two spellings).
    #[test]
    fn same_equals_its_explicit_padding(h in 1usize..10, w in 1usize..10, k in 1usize..5, s in 1usize..4,
                                        seed in any::<u64>()) {
        prop_assume!(k >= s); // otherwise SAME clamps negative padding, which Explicit cannot spell
        let input_shape = Shape::image(h, w, 2);
        let filter_shape = Shape::new(3, k, k, 2);
        let x: Vec<i8> = (0..input_shape.len()).map(|i| (seed.wrapping_mul(i as u64 + 1) >> 7) as i8).collect();
        let f: Vec<i8> = (0..filter_shape.len()).map(|i| ((seed >> 3).wrapping_mul(i as u64 + 3) % 255) as i8).collect();
        let same = ConvParams { stride_h: s, stride_w: s, dilation_h: 1, dilation_w: 1, padding: Padding::Same,
            input_zero_point: 3, output_zero_point: -2, activation: ActivationRange::NONE };
        let g = same.window(k, k).resolve(h, w).unwrap();
        let explicit = ConvParams { padding: Padding::Explicit { top: g.y.pad_before, bottom: g.y.pad_after,
            left: g.x.pad_before, right: g.x.pad_after }, ..same };
        let wts = ConvWeights { filter: &f, filter_shape, bias: None, requant: &[Requant::new(1 << 30, -6); 3] };
        let n = g.y.out * g.x.out * 3;
        let (mut a, mut b) = (vec![0; n], vec![0; n]);
        conv2d_i8(&same, &wts, &x, input_shape, &mut a).unwrap();
        conv2d_i8(&explicit, &wts, &x, input_shape, &mut b).unwrap();
        prop_assert_eq!(a, b);
    }

    /// L2 pooling is within one LSB of the float definition.
    #[test]
    fn l2_pool_within_one_lsb(h in 1usize..9, w in 1usize..9, k in 1usize..4, s in 1usize..3,
                              zi in any::<i8>(), zo in -128i8..0, s_in in 0.001f32..0.1, ratio in 0.3f32..3.0,
                              x in proptest::collection::vec(any::<i8>(), 64 * 3)) {
        let input_shape = Shape::image(h, w, 3);
        let x = &x[..input_shape.len()];
        let s_out = s_in * ratio;
        let p = L2PoolParams { window: Window::square(k, s, Padding::Same), input_zero_point: zi, output_zero_point: zo,
            requant: quantize_multiplier(s_in as f64 / s_out as f64), activation: ActivationRange::NONE };
        let g = p.window.resolve(h, w).unwrap();
        let mut out = vec![0i8; g.y.out * g.x.out * 3];
        l2_pool2d_i8(&p, x, input_shape, &mut out).unwrap();
        for oy in 0..g.y.out { for ox in 0..g.x.out { for c in 0..3 {
            let (mut sum, mut n) = (0f64, 0f64);
            for ky in 0..k { for kx in 0..k {
                let iy = (oy * s + ky) as isize - g.y.pad_before as isize;
                let ix = (ox * s + kx) as isize - g.x.pad_before as isize;
                if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                    let d = (x[(iy as usize * w + ix as usize) * 3 + c] as i32 - zi as i32) as f64 * s_in as f64;
                    sum += d * d; n += 1.0;
                }
            }}
            let want = ((sum / n).sqrt() / s_out as f64).round() + zo as f64;
            let want = want.clamp(-128.0, 127.0);
            let got = out[(oy * g.x.out + ox) * 3 + c] as f64;
            prop_assert!((got - want).abs() <= 1.0, "got {} want {}", got, want);
        }}}
    }

    /// No parameter combination makes the convolution panic: it either runs or returns an error.
    #[test]
    fn conv_never_panics(n in 0usize..3, h in 0usize..7, w in 0usize..7, ic in 0usize..4, oc in 0usize..4,
                         kh in 0usize..5, kw in 0usize..5, sh in 0usize..4, sw in 0usize..4, dh in 0usize..3,
                         top in 0usize..3, left in 0usize..3, zi in any::<i8>(), shift in -40i32..40,
                         xlen in 0usize..300, flen in 0usize..100, olen in 0usize..300) {
        let p = ConvParams { stride_h: sh, stride_w: sw, dilation_h: dh, dilation_w: 1,
            padding: Padding::Explicit { top, bottom: 1, left, right: 0 },
            input_zero_point: zi, output_zero_point: 0, activation: ActivationRange::NONE };
        let x = vec![1i8; xlen];
        let f = vec![1i8; flen];
        let m = vec![1 << 30; oc];
        let s = vec![shift; oc];
        let wts = ConvWeights { filter: &f, filter_shape: Shape::new(oc, kh, kw, ic), bias: None, requant: &zip_rq(&m, &s) };
        let mut out = vec![0i8; olen];
        let _ = conv2d_i8(&p, &wts, &x, Shape::new(n, h, w, ic), &mut out);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 3 } else { 400 }))]

    /// No shape, length or parameter makes the other kernels panic either.
    #[test]
    fn other_kernels_never_panic(n in 0usize..3, h in 0usize..6, w in 0usize..6, c in 0usize..5, k in 0usize..5,
                                 s in 0usize..4, m in 0usize..3, pad in 0usize..4, zp in any::<i8>(),
                                 shift in -40i32..40, mult in any::<i32>(), xlen in 0usize..200, olen in 0usize..200,
                                 units in 0usize..5, depth in 0usize..12) {
        use microcnn::pool::*;
        use microcnn::depthwise::depthwise_conv2d_i8;
        use microcnn::dense::{dense_i8, DenseParams, DenseWeights};
        use microcnn::softmax::{softmax_i8, SoftmaxParams};
        use microcnn::add::{add_i8, AddParams};
        let shape = Shape::new(n, h, w, c);
        let x = vec![-7i8; xlen];
        let mut out = vec![0i8; olen];
        let window = Window { kernel_h: k, kernel_w: k + 1, stride_h: s, stride_w: s.max(1), dilation_h: 1, dilation_w: 1,
            padding: Padding::Explicit { top: pad, bottom: 0, left: 0, right: pad } };
        let act = ActivationRange { min: zp, max: 100 };
        let pp = PoolParams { window, activation: act };
        let _ = max_pool2d_i8(&pp, &x, shape, &mut out);
        let _ = avg_pool2d_i8(&pp, &x, shape, &mut out);
        let rq = microcnn::Requant { multiplier: mult, shift };
        let lp = L2PoolParams { window, input_zero_point: zp, output_zero_point: zp, requant: rq, activation: act };
        let _ = l2_pool2d_i8(&lp, &x, shape, &mut out);
        let mp = MeanParams { input_zero_point: zp, output_zero_point: 0, requant: rq, activation: act };
        let _ = global_avg_pool_i8(&mp, &x, shape, &mut out);
        let f = vec![3i8; k * k * c * m.max(1)];
        let mults = vec![mult; c * m];
        let shifts = vec![shift; c * m];
        let cp = ConvParams { stride_h: s, stride_w: s, dilation_h: 1, dilation_w: 1, padding: window.padding,
            input_zero_point: zp, output_zero_point: 0, activation: act };
        let dw = ConvWeights { filter: &f, filter_shape: Shape::new(1, k, k, c * m), bias: None, requant: &zip_rq(&mults, &shifts) };
        let _ = depthwise_conv2d_i8(&cp, m, &dw, &x, shape, &mut out);
        let wts = vec![1i8; units * depth];
        let dp = DenseParams { input_zero_point: zp, output_zero_point: 0, activation: act };
        let dwt = DenseWeights { weights: &wts, units, bias: None, requant: &zip_rq(&mults, &shifts) };
        let _ = dense_i8(&dp, &dwt, &x, Shape::vector(n, depth), &mut out);
        let sp = SoftmaxParams { input_multiplier: mult, input_left_shift: shift, diff_min: -(zp as i32), output_zero_point: -128 };
        let _ = softmax_i8(&sp, &x, c, &mut out);
        let ap = AddParams { input1_zero_point: zp, input2_zero_point: zp.wrapping_neg(), output_zero_point: 0, left_shift: shift,
            input1: rq, input2: rq, output: rq, activation: act };
        let _ = add_i8(&ap, &x, &x, &mut out);
        let _ = microcnn::classify::argmax_i8(&x);
        let _ = microcnn::classify::top_k_i8::<3>(&x);
    }
}

#[test]
fn fractional_output_is_an_error_not_a_floor() {
    // 7×7 input, 3×3 kernel, stride 3, no padding: (7 − 3)/3 + 1 = 2.33.
    assert_eq!(output_size(7, 3, 3, 1, 0, 0), Err(Error::FractionalOutput { span: 4, stride: 3 }));
    let p = ConvParams {
        stride_h: 3,
        stride_w: 3,
        dilation_h: 1,
        dilation_w: 1,
        padding: Padding::Valid,
        input_zero_point: 0,
        output_zero_point: 0,
        activation: ActivationRange::NONE,
    };
    let f = [1i8; 9];
    let w = ConvWeights {
        filter: &f,
        filter_shape: Shape::new(1, 3, 3, 1),
        bias: None,
        requant: &[Requant::new(1 << 30, 0)],
    };
    let mut out = [0i8; 4];
    assert_eq!(
        conv2d_i8(&p, &w, &[0; 49], Shape::image(7, 7, 1), &mut out),
        Err(Error::FractionalOutput { span: 4, stride: 3 })
    );
    // With one pixel of padding on each side it fits: (7 − 3 + 2)/3 + 1 = 3.
    assert_eq!(output_size(7, 3, 3, 1, 1, 1), Ok(3));
    // Dilation widens the kernel: (9 − 5)/2 + 1 = 3.
    assert_eq!(output_size(9, 3, 2, 2, 0, 0), Ok(3));
    assert_eq!(output_size(4, 5, 1, 1, 0, 0), Err(Error::KernelLargerThanInput));
    assert_eq!(output_size(4, 3, 0, 1, 0, 0), Err(Error::ZeroParameter));
}

#[test]
fn sizes_are_checked_at_compile_time() {
    const OUT: usize = microcnn::const_unwrap!(output_size(28, 5, 1, 1, 0, 0));
    const MEM: microcnn::memory::LayerMemory =
        microcnn::const_unwrap!(microcnn::memory::dense_memory(Shape::vector(1, 64), 10));
    assert_eq!(OUT, 24);
    assert_eq!(MEM.total(), Ok(74));
}

#[test]
fn nothing_is_written_on_error() {
    let p = ConvParams {
        stride_h: 1,
        stride_w: 1,
        dilation_h: 1,
        dilation_w: 1,
        padding: Padding::Valid,
        input_zero_point: 0,
        output_zero_point: 0,
        activation: ActivationRange::NONE,
    };
    let f = [1i8; 9];
    let w = ConvWeights {
        filter: &f,
        filter_shape: Shape::new(1, 3, 3, 1),
        bias: None,
        requant: &[Requant::new(1 << 30, 0)],
    };
    let mut out = [42i8; 5]; // wrong length: needs 4
    assert_eq!(
        conv2d_i8(&p, &w, &[0; 16], Shape::image(4, 4, 1), &mut out),
        Err(Error::LengthMismatch { expected: 4, actual: 5 })
    );
    assert_eq!(out, [42; 5]);
}
