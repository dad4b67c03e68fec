//! On-target property test: thousands of random shapes, strides, dilations, paddings, channel
//! counts (not multiples of 4), zero points and extreme values, each run through every
//! optimised kernel this core selects and through the reference kernel, compared element by
//! element; plus the SIMD primitives against their plain-Rust definitions on random words.
//! Runs on the M0, M3, M4 and M33 in QEMU (`qemu/run-all.sh`); any difference fails the run.
#![no_std]
#![no_main]

use microcnn::conv::{conv2d_i8, conv2d_i8_blocked, conv2d_i8_reference, ConvParams, ConvWeights};
use microcnn::dense::{dense_i8, dense_i8_blocked, dense_i8_reference, DenseParams, DenseWeights};
use microcnn::depthwise::{depthwise_conv2d_i8, depthwise_conv2d_i8_blocked, depthwise_conv2d_i8_reference};
use microcnn::pool::{avg_pool2d_i8, avg_pool2d_i8_reference, max_pool2d_i8, max_pool2d_i8_reference, PoolParams};
use microcnn::{simd, ActivationRange, Padding, Requant, Shape, Window};
use microcnn_fw_support::Rng;
use microcnn_qemu::exit;
use static_cell::ConstStaticCell;

const CASES: u32 = 3000;
const IN: usize = 1024;
const FILTER: usize = 2048;
const OUT: usize = 2048;

struct Bufs {
    x: [i8; IN],
    f: [i8; FILTER],
    a: [i8; OUT],
    b: [i8; OUT],
    bias: [i32; 16],
    q: [Requant; 16],
}

static BUFS: ConstStaticCell<Bufs> = ConstStaticCell::new(Bufs {
    x: [0; IN],
    f: [0; FILTER],
    a: [0; OUT],
    b: [0; OUT],
    bias: [0; 16],
    q: [Requant::new(0, 0); 16],
});

fn fill(rng: &mut Rng, v: &mut [i8]) {
    for x in v {
        *x = rng.int8();
    }
}

fn compare(
    what: &str,
    case: u32,
    ra: Result<Shape, microcnn::Error>,
    rb: Result<Shape, microcnn::Error>,
    a: &[i8],
    b: &[i8],
) -> bool {
    if ra != rb {
        defmt::error!("case {=u32} {=str}: results differ: {} vs {}", case, what, ra, rb);
        return false;
    }
    if let Ok(s) = ra {
        let n = s.len();
        if let Some(i) = (0..n).find(|&i| a[i] != b[i]) {
            defmt::error!("case {=u32} {=str}: element {=usize}: {=i8} vs reference {=i8}", case, what, i, b[i], a[i]);
            return false;
        }
    }
    true
}

#[cortex_m_rt::entry]
fn main() -> ! {
    let Some(t) = BUFS.try_take() else { exit(false) };
    let mut rng = Rng(0x9E37_79B9);
    let mut failures = 0u32;
    let mut ran = [0u32; 5];
    // SIMD primitives against their definitions.
    for _ in 0..20_000 {
        let (x, y, z) = (rng.next_u32(), rng.next_u32(), rng.next_u32() as i32);
        let ok = simd::sxtb16(x) == simd::portable::sxtb16(x)
            && simd::sxtb16_ror8(x) == simd::portable::sxtb16_ror8(x)
            && simd::sxtab16(y, x) == simd::portable::sxtab16(y, x)
            && simd::sxtab16_ror8(y, x) == simd::portable::sxtab16_ror8(y, x)
            && simd::smlad(x, y, z) == simd::portable::smlad(x, y, z)
            && simd::max_i8x4(x, y) == simd::portable::max_i8x4(x, y)
            && simd::portable::max_i8x4_swar(x, y) == simd::portable::max_i8x4(x, y)
            && simd::smlabb(x, y, z) == simd::portable::smlabb(x, y, z)
            && simd::smlatt(x, y, z) == simd::portable::smlatt(x, y, z);
        if !ok {
            defmt::error!("SIMD primitive differs from its definition for {=u32:x} {=u32:x} {=i32}", x, y, z);
            failures += 1;
        }
    }
    // The window fold of max and average pooling (words read unchecked on Armv7-M and later)
    // against its bounds-checked plain-Rust twin, with both poolings' steps, on windows that fit
    // and windows that overrun the buffer (both must refuse those and call nothing).
    let mut bytes = [0i8; 256];
    for i in 0..4_000 {
        for b in bytes.iter_mut() {
            *b = rng.int8();
        }
        let (start, rows, cols, quads) = (rng.below(200), rng.below(4), rng.below(4), rng.below(4));
        let (row_step, col_step) = (rng.below(64), rng.below(16));
        let window = (start, (rows, row_step), (cols, col_step), quads);
        let same = if i % 2 == 0 {
            let sum = |(e, o): (u32, u32), v: u32| (simd::sxtab16(e, v), simd::sxtab16_ror8(o, v));
            same_fold(&bytes, window, ((0, 0), sum), |(e, o)| e ^ o.rotate_left(7))
        } else {
            same_fold(&bytes, window, (rng.next_u32(), simd::max_i8x4), |m| m)
        };
        if !same {
            defmt::error!(
                "window fold differs from its definition at {=usize} ({=usize}×{=usize}, {=usize} quads)",
                start,
                rows,
                cols,
                quads
            );
            failures += 1;
        }
    }
    for case in 0..CASES {
        let n = 1 + rng.below(2);
        let (h, w) = (1 + rng.below(8), 1 + rng.below(8));
        let ic = if rng.below(10) == 0 { 40 + rng.below(30) } else { 1 + rng.below(9) };
        let oc = 1 + rng.below(7);
        let (kh, kw) = (1 + rng.below(4), 1 + rng.below(4));
        let padding = match rng.below(4) {
            0 => Padding::Valid,
            1 => Padding::Same,
            2 => Padding::ValidFloor,
            _ => Padding::Explicit { top: rng.below(3), bottom: rng.below(3), left: rng.below(3), right: rng.below(3) },
        };
        let zo = rng.int8();
        let act = match rng.below(3) {
            0 => ActivationRange::NONE,
            1 => ActivationRange::relu(zo),
            _ => {
                let (a, b) = (rng.int8(), rng.int8());
                ActivationRange { min: a.min(b), max: a.max(b) }
            }
        };
        let p = ConvParams {
            stride_h: 1 + rng.below(3),
            stride_w: 1 + rng.below(3),
            dilation_h: 1 + rng.below(2),
            dilation_w: 1 + rng.below(2),
            padding,
            input_zero_point: rng.int8(),
            output_zero_point: zo,
            activation: act,
        };
        // One case in four takes extreme requantizations: biases near and at the i32 limits,
        // multipliers 0, 1 or unnormalised, every shift; these cross the bounds under which the
        // assembly's short requantization is exact (`short_ok`), so both the routines and the
        // Rust paths the kernels fall back to are compared.
        let extreme = rng.below(4) == 0;
        for c in 0..16 {
            if extreme {
                let edges = [i32::MIN, i32::MAX, 1 << 29, -(1 << 29), (1 << 30) - 1, -(1 << 30), 0];
                t.bias[c] = if rng.below(2) == 0 {
                    edges[rng.below(edges.len() as u32)].wrapping_add(rng.below(5) as i32 - 2)
                } else {
                    rng.next_u32() as i32 >> rng.below(32)
                };
                let mults = [0, 1, (rng.next_u32() >> 1) as i32, i32::MAX, 1 << 30];
                t.q[c] = Requant::new(mults[rng.below(mults.len() as u32)], rng.below(62) as i32 - 31);
            } else {
                t.bias[c] = (rng.next_u32() % 200_001) as i32 - 100_000;
                let multiplier = (1 << 30) | (rng.next_u32() >> 2) as i32;
                t.q[c] = Requant::new(multiplier, -(rng.below(14) as i32) + 2);
            }
        }
        let input = Shape::new(n, h, w, ic);
        let filter = Shape::new(oc, kh, kw, ic);
        if input.len() > IN || filter.len() > FILTER {
            continue;
        }
        fill(&mut rng, &mut t.x[..input.len()]);
        fill(&mut rng, &mut t.f[..filter.len()]);
        let x = &t.x[..input.len()];
        if let Ok(os) = microcnn::conv::conv2d_output_shape(&p, input, filter) {
            if os.len() <= OUT {
                let wts = ConvWeights {
                    filter: &t.f[..filter.len()],
                    filter_shape: filter,
                    bias: Some(&t.bias[..oc]),
                    requant: &t.q[..oc],
                };
                let ra = conv2d_i8_reference(&p, &wts, x, input, &mut t.a[..os.len()]);
                let rb = conv2d_i8(&p, &wts, x, input, &mut t.b[..os.len()]);
                failures += !compare("conv", case, ra, rb, &t.a, &t.b) as u32;
                let rb = conv2d_i8_blocked(&p, &wts, x, input, &mut t.b[..os.len()]);
                failures += !compare("conv blocked", case, ra, rb, &t.a, &t.b) as u32;
                ran[0] += ra.is_ok() as u32;
            }
        }
        // Depthwise with a depth multiplier.
        let dm = 1 + rng.below(2);
        let dfilter = Shape::new(1, kh, kw, ic * dm);
        if let Ok(os) = microcnn::depthwise::depthwise_conv2d_output_shape(&p, dm, input, dfilter) {
            if os.len() <= OUT && dfilter.len() <= FILTER && ic * dm <= 16 {
                let wts = ConvWeights {
                    filter: &t.f[..dfilter.len()],
                    filter_shape: dfilter,
                    bias: Some(&t.bias[..ic * dm]),
                    requant: &t.q[..ic * dm],
                };
                let ra = depthwise_conv2d_i8_reference(&p, dm, &wts, x, input, &mut t.a[..os.len()]);
                let rb = depthwise_conv2d_i8(&p, dm, &wts, x, input, &mut t.b[..os.len()]);
                failures += !compare("depthwise", case, ra, rb, &t.a, &t.b) as u32;
                let rb = depthwise_conv2d_i8_blocked(&p, dm, &wts, x, input, &mut t.b[..os.len()]);
                failures += !compare("depthwise blocked", case, ra, rb, &t.a, &t.b) as u32;
                ran[1] += ra.is_ok() as u32;
            }
        }
        // Dense over the same input, flattened, with per-channel or per-tensor quantization.
        let depth = h * w * ic;
        let units = 1 + rng.below(7);
        // Weights at any byte alignment (the DSP routine loads word-aligned rows and takes the
        // taps before the first aligned one separately).
        let skew = rng.below(4);
        if skew + depth * units <= FILTER {
            let nq = if rng.below(2) == 0 { 1 } else { units };
            let dw = DenseWeights {
                weights: &t.f[skew..skew + depth * units],
                units,
                bias: if rng.below(4) == 0 { None } else { Some(&t.bias[..units]) },
                requant: &t.q[..nq],
            };
            let dp = DenseParams { input_zero_point: p.input_zero_point, output_zero_point: zo, activation: act };
            let shape = Shape::new(n, h, w, ic);
            let ra = dense_i8_reference(&dp, &dw, x, shape, &mut t.a[..n * units]);
            let rb = dense_i8(&dp, &dw, x, shape, &mut t.b[..n * units]);
            failures += !compare("dense", case, ra, rb, &t.a, &t.b) as u32;
            let rb = dense_i8_blocked(&dp, &dw, x, shape, &mut t.b[..n * units]);
            failures += !compare("dense blocked", case, ra, rb, &t.a, &t.b) as u32;
            ran[2] += ra.is_ok() as u32;
        }
        // Max and average pooling (the average's division is a reciprocal multiply on the M0).
        let window = Window {
            kernel_h: kh + rng.below(2),
            kernel_w: kw + rng.below(2),
            stride_h: p.stride_h,
            stride_w: p.stride_w,
            dilation_h: 1,
            dilation_w: 1,
            padding,
        };
        if let Ok(os) = microcnn::pool::pool2d_output_shape(&window, input) {
            if os.len() <= OUT {
                let pp = PoolParams { window, activation: act };
                let ra = max_pool2d_i8_reference(&pp, x, input, &mut t.a[..os.len()]);
                let rb = max_pool2d_i8(&pp, x, input, &mut t.b[..os.len()]);
                failures += !compare("max pool", case, ra, rb, &t.a, &t.b) as u32;
                let ra = avg_pool2d_i8_reference(&pp, x, input, &mut t.a[..os.len()]);
                let rb = avg_pool2d_i8(&pp, x, input, &mut t.b[..os.len()]);
                failures += !compare("avg pool", case, ra, rb, &t.a, &t.b) as u32;
                ran[4] += ra.is_ok() as u32;
            }
        }
        ran[3] += 1;
    }
    defmt::info!(
        "RESULT kernel properties: {=u32} failures; {=u32} cases, {=u32} convolutions, {=u32} depthwise, {=u32} dense, {=u32} max + average pools compared with the reference",
        failures,
        ran[3],
        ran[0],
        ran[1],
        ran[2],
        ran[4]
    );
    // A property test that compared nothing proves nothing.
    exit(failures == 0 && ran[0] > CASES / 4 && ran[1] > CASES / 8 && ran[2] > CASES / 4 && ran[4] > CASES / 4)
}

/// Whether the window fold (`simd::fold_windows_x4`: unchecked reads on Armv7-M and later) and
/// its checked twin agree on `window = (start, rows, cols, quads)` with this step: the same
/// answer, the same number of calls and the same values (`digest` of each group's result).
fn same_fold<A: Copy>(
    bytes: &[i8],
    (start, rows, cols, quads): (usize, (usize, usize), (usize, usize), usize),
    (init, step): (A, impl Fn(A, u32) -> A + Copy),
    digest: impl Fn(A) -> u32,
) -> bool {
    let mut seen = [[0u32; 3]; 2];
    let mut n = [0usize; 2];
    let mut log = |k: usize, q: usize, a: A| {
        seen[k][n[k] % 3] ^= (q as u32) ^ digest(a);
        n[k] += 1;
    };
    let fast = simd::fold_windows_x4(bytes, start, rows, cols, quads, (init, step), |q, a| log(0, q, a));
    let plain = simd::portable::fold_windows_x4(bytes, start, rows, cols, quads, (init, step), |q, a| log(1, q, a));
    fast == plain && n[0] == n[1] && seen[0] == seen[1]
}
