//! Instructions per MAC (pools: per output element) of the runtime kernels on the shapes of the
//! CMSIS-NN comparison in issue 11, with CMSIS-NN's figures for the same core beside them.
//!
//! Data: seeded pseudo-random int8 inputs and weights (−127..=127), random biases, per-channel
//! multipliers in [2^30, 2^31) with shifts −12..=−7, zero points −3 (input) and 5 (output).
//! Counting: QEMU `-icount shift=0` + SysTick (instructions = ticks × the factor measured at
//! start-up, 40 on these machines), so each figure is exact to ±40 instructions per call.
//! Run with `bash bench/run.sh` from `firmware-examples/` (every core, one table).
#![no_std]
#![no_main]

use microcnn::conv::{conv2d_i8, ConvParams, ConvWeights};
use microcnn::dense::{dense_i8, DenseParams, DenseWeights};
use microcnn::depthwise::depthwise_conv2d_i8;
use microcnn::pool::{avg_pool2d_i8, max_pool2d_i8, PoolParams};
use microcnn::{ActivationRange, Padding, Requant, Shape, Window};
use microcnn_fw_support::{exit, InstructionCounter, Rng};
use static_cell::ConstStaticCell;

include!(concat!(env!("OUT_DIR"), "/core.rs"));

/// CMSIS-NN v7 (GCC 12.2 -O2) instructions per MAC (pools: per output) on the M4, M3 and M0,
/// from issue 11's table (exact retired-instruction counts in QEMU 7.2, same shapes).
const CMSIS: [(&str, [f32; 3]); 11] = [
    ("conv 28x28x1 5x5->8 same", [9.30, 10.15, 16.69]),
    ("conv 14x14x8 5x5->16 same", [2.39, 3.40, 7.66]),
    ("conv 32x32x16 3x3->16 same", [2.33, 3.34, 7.56]),
    ("conv 16x16x32 3x3->32 same", [1.93, 2.87, 6.70]),
    ("1x1 conv 16x16x32->64", [2.70, 3.66, 9.06]),
    ("depthwise 3x3 16x16x32 same", [8.07, 9.64, 37.85]),
    ("dense 256->10", [2.12, 3.81, 6.69]),
    ("dense 1024->64", [1.93, 3.41, 6.13]),
    ("max pool 2x2/2 28x28x8", [51.9, 51.9, 186.3]),
    ("avg pool 2x2/2 28x28x8", [53.7, 101.0, 199.5]),
    ("LeNet-size network", [3.90, 4.89, 9.98]),
];

const MAX_ACT: usize = 32 * 32 * 16;
const MAX_W: usize = 64 * 1024;

struct Bufs {
    a: [i8; MAX_ACT],
    b: [i8; MAX_ACT],
    w: [i8; MAX_W],
    w2: [i8; 16 * 5 * 5 * 8],
    w3: [i8; 10 * 784],
    bias: [i32; 64],
    requant: [Requant; 64],
}

static BUFS: ConstStaticCell<Bufs> = ConstStaticCell::new(Bufs {
    a: [0; MAX_ACT],
    b: [0; MAX_ACT],
    w: [0; MAX_W],
    w2: [0; 16 * 5 * 5 * 8],
    w3: [0; 10 * 784],
    bias: [0; 64],
    requant: [Requant::new(0, 0); 64],
});

fn conv_params(padding: Padding, relu: bool) -> ConvParams {
    ConvParams {
        stride_h: 1,
        stride_w: 1,
        dilation_h: 1,
        dilation_w: 1,
        padding,
        input_zero_point: -3,
        output_zero_point: 5,
        activation: if relu { ActivationRange::relu(5) } else { ActivationRange::NONE },
    }
}

/// Prints one row: our figure next to CMSIS-NN's for this core.
fn row(i: usize, instructions: u64, per: u64) {
    let (name, cmsis) = CMSIS[i];
    let ours = instructions as f32 / per as f32;
    let col = match CORE_NAME {
        "M3" => 1,
        "M0" => 2,
        _ => 0,
    };
    defmt::info!(
        "BENCH {=str} | {=str} | {=u64} | {=u64} | {=f32} | {=f32} | {=f32}",
        CORE_NAME,
        name,
        per,
        instructions,
        ours,
        cmsis[col],
        ours / cmsis[col]
    );
}

/// Called before and after every measured call: the address QEMU's instruction-counting plugin
/// (`../shared/tools/qemu-insn-count`) watches for exact counts and per-address profiles.
#[no_mangle]
#[inline(never)]
pub extern "C" fn bench_mark() {
    core::hint::black_box(());
}

#[cortex_m_rt::entry]
fn main() -> ! {
    let Some(p) = cortex_m::Peripherals::take() else { exit(false) };
    let counter = InstructionCounter::new(p.SYST);
    let Some(bufs) = BUFS.try_take() else { exit(false) };
    let mut rng = Rng(0x1234_5678);
    rng.fill_within(&mut bufs.a, 127);
    rng.fill_within(&mut bufs.w, 127);
    rng.fill_within(&mut bufs.w2, 127);
    rng.fill_within(&mut bufs.w3, 127);
    for i in 0..64 {
        bufs.bias[i] = (rng.next_u32() % 20_001) as i32 - 10_000;
        let multiplier = (1 << 30) | (rng.next_u32() >> 2) as i32;
        bufs.requant[i] = Requant::new(multiplier, -7 - (rng.next_u32() % 6) as i32);
    }
    let mut ok = true;
    let mut measure = |i: usize, per: u64, f: &mut dyn FnMut() -> Result<(), microcnn::Error>| {
        bench_mark();
        let t0 = counter.ticks();
        let r = f();
        let t1 = counter.ticks();
        bench_mark();
        if let Err(e) = r {
            defmt::error!("{=str}: {}", CMSIS[i].0, e);
            ok = false;
        }
        row(i, counter.instructions(t0, t1), per);
    };
    // Convolutions: (input h, w, c, kernel, filters).
    for (i, (h, w, c, k, f)) in
        [(28, 28, 1, 5, 8), (14, 14, 8, 5, 16), (32, 32, 16, 3, 16), (16, 16, 32, 3, 32)].into_iter().enumerate()
    {
        let (input, filter) = (Shape::image(h, w, c), Shape::new(f, k, k, c));
        let wts = ConvWeights {
            filter: &bufs.w[..filter.len()],
            filter_shape: filter,
            bias: Some(&bufs.bias[..f]),
            requant: &bufs.requant[..f],
        };
        let p = conv_params(Padding::Same, false);
        let macs = (h * w * f * k * k * c) as u64;
        measure(i, macs, &mut || {
            conv2d_i8(&p, &wts, &bufs.a[..input.len()], input, &mut bufs.b[..h * w * f]).map(|_| ())
        });
    }
    {
        let (input, filter) = (Shape::image(16, 16, 32), Shape::new(64, 1, 1, 32));
        let wts = ConvWeights {
            filter: &bufs.w[..filter.len()],
            filter_shape: filter,
            bias: Some(&bufs.bias[..64]),
            requant: &bufs.requant[..64],
        };
        let p = conv_params(Padding::Valid, false);
        measure(4, 16 * 16 * 64 * 32, &mut || {
            conv2d_i8(&p, &wts, &bufs.a[..input.len()], input, &mut bufs.b[..16 * 16 * 64]).map(|_| ())
        });
    }
    {
        let input = Shape::image(16, 16, 32);
        let wts = ConvWeights {
            filter: &bufs.w[..9 * 32],
            filter_shape: Shape::new(1, 3, 3, 32),
            bias: Some(&bufs.bias[..32]),
            requant: &bufs.requant[..32],
        };
        let p = conv_params(Padding::Same, false);
        measure(5, 16 * 16 * 32 * 9, &mut || {
            depthwise_conv2d_i8(&p, 1, &wts, &bufs.a[..input.len()], input, &mut bufs.b[..input.len()]).map(|_| ())
        });
    }
    for (i, (depth, units)) in [(6, (256, 10)), (7, (1024, 64))] {
        let wts = DenseWeights {
            weights: &bufs.w[..depth * units],
            units,
            bias: Some(&bufs.bias[..units]),
            requant: &bufs.requant[..units],
        };
        let p = DenseParams { input_zero_point: -3, output_zero_point: 5, activation: ActivationRange::NONE };
        measure(i, (depth * units) as u64, &mut || {
            dense_i8(&p, &wts, &bufs.a[..depth], Shape::vector(1, depth), &mut bufs.b[..units]).map(|_| ())
        });
    }
    let pool = PoolParams { window: Window::square(2, 2, Padding::Valid), activation: ActivationRange::NONE };
    let input = Shape::image(28, 28, 8);
    measure(8, 14 * 14 * 8, &mut || {
        max_pool2d_i8(&pool, &bufs.a[..input.len()], input, &mut bufs.b[..14 * 14 * 8]).map(|_| ())
    });
    measure(9, 14 * 14 * 8, &mut || {
        avg_pool2d_i8(&pool, &bufs.a[..input.len()], input, &mut bufs.b[..14 * 14 * 8]).map(|_| ())
    });
    // LeNet-size network: conv 5×5 1→8 same + ReLU, max pool 2, conv 5×5 8→16 same + ReLU,
    // max pool 2, dense 784→10.
    let macs = (28 * 28 * 8 * 25 + 14 * 14 * 16 * 25 * 8 + 784 * 10) as u64;
    let (w1, w2, w3) = (&bufs.w[..8 * 25], &bufs.w2[..], &bufs.w3[..]);
    let (a, b) = (&mut bufs.a, &mut bufs.b);
    let (bias, requant) = (&bufs.bias, &bufs.requant);
    measure(10, macs, &mut || {
        let p = conv_params(Padding::Same, true);
        conv2d_i8(
            &p,
            &ConvWeights {
                filter: w1,
                filter_shape: Shape::new(8, 5, 5, 1),
                bias: Some(&bias[..8]),
                requant: &requant[..8],
            },
            &a[..784],
            Shape::image(28, 28, 1),
            &mut b[..28 * 28 * 8],
        )?;
        max_pool2d_i8(&pool, &b[..28 * 28 * 8], Shape::image(28, 28, 8), &mut a[..14 * 14 * 8])?;
        conv2d_i8(
            &p,
            &ConvWeights {
                filter: w2,
                filter_shape: Shape::new(16, 5, 5, 8),
                bias: Some(&bias[..16]),
                requant: &requant[..16],
            },
            &a[..14 * 14 * 8],
            Shape::image(14, 14, 8),
            &mut b[..14 * 14 * 16],
        )?;
        max_pool2d_i8(&pool, &b[..14 * 14 * 16], Shape::image(14, 14, 16), &mut a[..784])?;
        let dw = DenseWeights { weights: w3, units: 10, bias: Some(&bias[..10]), requant: &requant[..10] };
        let dp = DenseParams { input_zero_point: 5, output_zero_point: -2, activation: ActivationRange::NONE };
        dense_i8(&dp, &dw, &a[..784], Shape::vector(1, 784), &mut b[..10]).map(|_| ())
    });
    exit(ok)
}
