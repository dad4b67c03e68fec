//! Host throughput of each kernel (MACs or elements per second), the baseline for optimisation.
//! Run: `cargo bench --bench kernels`. Compare the 1×1 fast path with the reference on the same
//! shape in the same run: absolute numbers on a shared machine are noisy, ratios are not.

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use microcnn::conv::{conv2d_1x1_i8, conv2d_i8_fast, conv2d_i8_reference, ConvParams, ConvWeights};
use microcnn::dense::{dense_i8, DenseParams, DenseWeights};
use microcnn::depthwise::{depthwise_conv2d_i8, depthwise_conv2d_i8_reference};
use microcnn::pool::{avg_pool2d_i8, l2_pool2d_i8, max_pool2d_i8, L2PoolParams, PoolParams};
use microcnn::softmax::{softmax_i8, SoftmaxParams};
use microcnn::{ActivationRange, Padding, Requant, Shape, Window};

fn data(n: usize, seed: u32) -> Vec<i8> {
    (0..n).map(|i| ((i as u32).wrapping_mul(2654435761).wrapping_add(seed) >> 24) as i8).collect()
}

fn conv_params(padding: Padding) -> ConvParams {
    ConvParams {
        stride_h: 1,
        stride_w: 1,
        dilation_h: 1,
        dilation_w: 1,
        padding,
        input_zero_point: -3,
        output_zero_point: 5,
        activation: ActivationRange::relu(5),
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("kernels");
    g.sample_size(20);
    let rq = vec![Requant::new(1_500_000_000, -9); 32];
    let bias = vec![100; 32];

    // 3×3 convolution, 28×28×8 → 28×28×16 (SAME).
    let xs = Shape::image(28, 28, 8);
    let x = data(xs.len(), 1);
    let f = data(16 * 3 * 3 * 8, 2);
    let w =
        ConvWeights { filter: &f, filter_shape: Shape::new(16, 3, 3, 8), bias: Some(&bias[..16]), requant: &rq[..16] };
    let mut out = vec![0; 28 * 28 * 16];
    g.throughput(Throughput::Elements((28 * 28 * 16 * 9 * 8) as u64));
    g.bench_function("conv3x3_28x28x8_to_16 reference (MAC/s)", |b| {
        b.iter(|| conv2d_i8_reference(&conv_params(Padding::Same), &w, black_box(&x), xs, &mut out).unwrap())
    });
    g.bench_function("conv3x3_28x28x8_to_16 fast (MAC/s)", |b| {
        b.iter(|| conv2d_i8_fast(&conv_params(Padding::Same), &w, black_box(&x), xs, &mut out).unwrap())
    });

    // 1×1 convolution, 14×14×32 → 14×14×32: fast path vs reference.
    let xs = Shape::image(14, 14, 32);
    let x = data(xs.len(), 3);
    let f = data(32 * 32, 4);
    let w = ConvWeights { filter: &f, filter_shape: Shape::new(32, 1, 1, 32), bias: Some(&bias), requant: &rq };
    let mut out = vec![0; 14 * 14 * 32];
    g.throughput(Throughput::Elements((14 * 14 * 32 * 32) as u64));
    g.bench_function("conv1x1_14x14x32 reference (MAC/s)", |b| {
        b.iter(|| conv2d_i8_reference(&conv_params(Padding::Valid), &w, black_box(&x), xs, &mut out).unwrap())
    });
    g.bench_function("conv1x1_14x14x32 fast path (MAC/s)", |b| {
        b.iter(|| conv2d_1x1_i8(&conv_params(Padding::Valid), &w, black_box(&x), xs, &mut out).unwrap())
    });

    // Depthwise 3×3, 28×28×16, multiplier 1.
    let xs = Shape::image(28, 28, 16);
    let x = data(xs.len(), 5);
    let f = data(9 * 16, 6);
    let w =
        ConvWeights { filter: &f, filter_shape: Shape::new(1, 3, 3, 16), bias: Some(&bias[..16]), requant: &rq[..16] };
    let mut out = vec![0; xs.len()];
    g.throughput(Throughput::Elements((xs.len() * 9) as u64));
    g.bench_function("depthwise3x3_28x28x16 reference (MAC/s)", |b| {
        b.iter(|| {
            depthwise_conv2d_i8_reference(&conv_params(Padding::Same), 1, &w, black_box(&x), xs, &mut out).unwrap()
        })
    });
    g.bench_function("depthwise3x3_28x28x16 fast (MAC/s)", |b| {
        b.iter(|| depthwise_conv2d_i8(&conv_params(Padding::Same), 1, &w, black_box(&x), xs, &mut out).unwrap())
    });

    // Dense 800 → 64.
    let x = data(800, 7);
    let wt = data(800 * 64, 8);
    let bias64 = vec![10; 64];
    let dw = DenseWeights { weights: &wt, units: 64, bias: Some(&bias64), requant: &[Requant::new(1_500_000_000, -9)] };
    let dp = DenseParams { input_zero_point: 1, output_zero_point: -2, activation: ActivationRange::NONE };
    let mut out = vec![0; 64];
    g.throughput(Throughput::Elements(800 * 64));
    g.bench_function("dense_800_to_64 (MAC/s)", |b| {
        b.iter(|| dense_i8(&dp, &dw, black_box(&x), Shape::vector(1, 800), &mut out).unwrap())
    });

    // Pools on 24×24×16, 2×2 stride 2.
    let xs = Shape::image(24, 24, 16);
    let x = data(xs.len(), 9);
    let mut out = vec![0; 12 * 12 * 16];
    let pp = PoolParams { window: Window::square(2, 2, Padding::Valid), activation: ActivationRange::NONE };
    g.throughput(Throughput::Elements(xs.len() as u64));
    g.bench_function("maxpool2x2_24x24x16 (elem/s)", |b| {
        b.iter(|| max_pool2d_i8(&pp, black_box(&x), xs, &mut out).unwrap())
    });
    g.bench_function("avgpool2x2_24x24x16 (elem/s)", |b| {
        b.iter(|| avg_pool2d_i8(&pp, black_box(&x), xs, &mut out).unwrap())
    });
    let lp = L2PoolParams {
        window: pp.window,
        input_zero_point: 0,
        output_zero_point: -128,
        requant: Requant { multiplier: 1 << 30, shift: 1 },
        activation: ActivationRange::NONE,
    };
    g.bench_function("l2pool2x2_24x24x16 (elem/s)", |b| {
        b.iter(|| l2_pool2d_i8(&lp, black_box(&x), xs, &mut out).unwrap())
    });

    // Softmax over 10 classes.
    let x = data(10, 10);
    let mut out = vec![0; 10];
    let sp = SoftmaxParams::new(0.1, 1.0, SoftmaxParams::OUTPUT_SCALE, SoftmaxParams::OUTPUT_ZERO_POINT).unwrap();
    g.throughput(Throughput::Elements(10));
    g.bench_function("softmax_10 (elem/s)", |b| b.iter(|| softmax_i8(&sp, black_box(&x), 10, &mut out).unwrap()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
