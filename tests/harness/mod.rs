//! One harness for the runtime, shared by the coverage-guided fuzz targets (`fuzz/`) and the
//! stable-toolchain test `tests/extremes.rs` (which also runs under Miri with fewer cases).
//!
//! Each `check_*` function turns arbitrary bytes into arguments for one family of public
//! functions — biased towards the values that break code: 0, 1, `usize::MAX`, `i32::MIN`,
//! −128, the crate's own limits and one past them — calls every implementation, and asserts:
//!
//! - nothing panics (the caller runs it with overflow checks on and off);
//! - fast paths return exactly what the reference returns (the same `Err`, or the same bytes);
//! - an `Err` leaves the output buffer untouched;
//! - results that have a closed form (geometry, tap ranges, requantization) equal it.
//!
//! Buffers are only allocated when the shape's size is small; otherwise a short buffer is
//! passed and the kernel must refuse it.

#![allow(dead_code, clippy::too_many_lines)]

use microcnn::add::{add_i8, AddParams};
use microcnn::conv::{
    conv2d_1x1_i8, conv2d_i8, conv2d_i8_blocked, conv2d_i8_fast, conv2d_i8_reference, is_pointwise, ConvParams,
    ConvWeights, MAX_TAPS,
};
use microcnn::dense::{dense_i8, dense_i8_blocked, dense_i8_reference, DenseParams, DenseWeights};
use microcnn::depthwise::{
    depthwise_conv2d_i8, depthwise_conv2d_i8_blocked, depthwise_conv2d_i8_fast, depthwise_conv2d_i8_reference,
};
use microcnn::pool::{
    avg_pool2d_i8, avg_pool2d_i8_reference, global_avg_pool_i8, isqrt_rounded, l2_pool2d_i8, max_pool2d_i8,
    max_pool2d_i8_reference, L2PoolParams, MeanParams, PoolParams, MAX_WINDOW,
};
use microcnn::resize::{nearest_source, resize_nearest_i8, resize_output_shape, ResizeParams};
use microcnn::shape::MAX_EXTENT;
use microcnn::softmax::{softmax_i8, SoftmaxParams};
use microcnn::transpose_conv::{transpose_conv2d_i8, TransposeConvParams};
use microcnn::{ActivationRange, Error, Padding, Requant, Shape, Window};

/// The most elements the harness allocates for one buffer.
pub const MAX_ALLOC: usize = 1 << 14;

/// A reader of arbitrary bytes; past the end it yields zeros, so every input is usable.
///
/// The first byte picks the mode: a quarter of the inputs are *hostile* (any value may be an
/// extreme), the rest *plausible* (small shapes, valid parameters, exact buffers, random data),
/// so the arithmetic is exercised as hard as the argument checks.
pub struct Input<'a> {
    data: &'a [u8],
    pos: usize,
    hostile: bool,
}

impl<'a> Input<'a> {
    /// Wraps fuzzer bytes.
    pub fn new(data: &'a [u8]) -> Self {
        Input { data, pos: 1, hostile: data.first().is_some_and(|&b| b < 64) }
    }

    /// Whether this input is in hostile mode.
    pub fn hostile(&self) -> bool {
        self.hostile
    }

    /// The next byte (0 past the end).
    pub fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    fn u64(&mut self) -> u64 {
        (self.u32() as u64) << 32 | self.u32() as u64
    }

    /// A boolean.
    pub fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// An `i8`, often an extreme.
    pub fn i8(&mut self) -> i8 {
        match self.byte() % 8 {
            0 => i8::MIN,
            1 => i8::MAX,
            2 => 0,
            3 => -1,
            _ => self.byte() as i8,
        }
    }

    /// A dimension: usually 1–6, sometimes 0, a limit, one past it or `usize::MAX`.
    pub fn dim(&mut self) -> usize {
        if !self.hostile {
            return 1 + (self.byte() % 5) as usize;
        }
        match self.byte() {
            0..=199 => 1 + (self.byte() % 6) as usize,
            200..=209 => 0,
            210..=219 => 7 + (self.byte() % 60) as usize,
            220 => usize::MAX,
            221 => usize::MAX / 2 + 1,
            222 => MAX_EXTENT,
            223 => MAX_EXTENT + 1,
            224 => MAX_TAPS,
            225 => MAX_TAPS + 1,
            226 => 1 << 16,
            227 => (1 << 16) + 1,
            228 => u32::MAX as usize,
            229 => isize::MAX as usize,
            230 => MAX_WINDOW,
            231 => MAX_WINDOW + 1,
            _ => self.u64() as usize,
        }
    }

    /// A small count, 0–8 with an occasional extreme.
    pub fn small(&mut self) -> usize {
        if !self.hostile {
            return (self.byte() % 3) as usize;
        }
        match self.byte() {
            0..=239 => (self.byte() % 4) as usize,
            240 => usize::MAX,
            241 => MAX_EXTENT,
            242 => MAX_EXTENT + 1,
            _ => self.u32() as usize,
        }
    }

    /// An `i32`, often an extreme.
    pub fn i32(&mut self) -> i32 {
        match self.byte() % 10 {
            0 => i32::MIN,
            1 => i32::MAX,
            2 => 0,
            3 => -1,
            4 => 1 << 30,
            5 => (1 << 30) + (self.u32() >> 2) as i32,
            _ => self.u32() as i32,
        }
    }

    /// A shift: mostly TFLite's range, sometimes far outside.
    pub fn shift(&mut self) -> i32 {
        if !self.hostile {
            return (self.byte() % 40) as i32 - 31;
        }
        match self.byte() {
            0..=219 => (self.byte() % 62) as i32 - 31,
            220 => i32::MIN,
            221 => i32::MAX,
            222 => 31,
            223 => -32,
            _ => self.u32() as i32,
        }
    }

    /// A requantization: [`Input::multiplier`] and [`Input::shift`].
    pub fn requant(&mut self) -> Requant {
        Requant { multiplier: self.multiplier(), shift: self.shift() }
    }

    /// A multiplier: mostly a valid Q31 mantissa, sometimes 0, negative or `i32::MIN`.
    pub fn multiplier(&mut self) -> i32 {
        if !self.hostile {
            return (1 << 30) | (self.u32() & 0x3fff_ffff) as i32;
        }
        match self.byte() {
            0..=219 => (1 << 30) | (self.u32() & 0x3fff_ffff) as i32,
            220 => 0,
            221 => i32::MAX,
            222 => i32::MIN,
            _ => self.u32() as i32,
        }
    }

    /// A finite or non-finite `f32`.
    pub fn f32(&mut self) -> f32 {
        match self.byte() % 12 {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => f32::NEG_INFINITY,
            3 => 0.0,
            4 => -0.0,
            5 => f32::MIN_POSITIVE,
            6 => f32::MAX,
            7 => 1e-30,
            _ => f32::from_bits(self.u32()),
        }
    }

    /// An activation range, sometimes inverted.
    pub fn act(&mut self) -> ActivationRange {
        if !self.hostile {
            let (a, b) = (self.i8(), self.i8());
            return match self.byte() % 3 {
                0 => ActivationRange::NONE,
                1 => ActivationRange::relu(a),
                _ => ActivationRange { min: a.min(b), max: a.max(b) },
            };
        }
        match self.byte() % 4 {
            0 => ActivationRange::NONE,
            1 => ActivationRange::relu(self.i8()),
            _ => ActivationRange { min: self.i8(), max: self.i8() },
        }
    }

    /// A padding rule with small or extreme explicit values.
    pub fn padding(&mut self) -> Padding {
        match self.byte() % 4 {
            0 => Padding::Valid,
            1 => Padding::Same,
            2 => Padding::ValidFloor,
            _ => Padding::Explicit { top: self.small(), bottom: self.small(), left: self.small(), right: self.small() },
        }
    }

    /// A shape whose dimensions come from [`Input::dim`]; batch kept small.
    pub fn shape(&mut self) -> Shape {
        let n = if self.byte() < 240 { 1 + (self.byte() % 2) as usize } else { self.dim() };
        if !self.hostile {
            return Shape::new(n, 1 + (self.byte() % 9) as usize, 1 + (self.byte() % 9) as usize, self.dim());
        }
        Shape::new(n, self.dim(), self.dim(), self.dim())
    }

    /// A stride or dilation: 1 most of the time when plausible, any [`Input::dim`] when hostile.
    pub fn step(&mut self) -> usize {
        if !self.hostile {
            return if self.byte() < 160 { 1 } else { 1 + (self.byte() % 3) as usize };
        }
        self.dim()
    }

    /// `len` values (or, when `len` is absurd, a short buffer the callee must refuse). With
    /// probability 1/16 the length is off by one.
    pub fn buffer(&mut self, len: usize) -> Vec<i8> {
        let len = if len > MAX_ALLOC { self.byte() as usize } else { len };
        let len = match self.byte() {
            _ if !self.hostile => len,
            0..=7 => len + 1,
            8..=15 => len.saturating_sub(1),
            _ => len,
        };
        let fill = self.byte() % 4;
        (0..len)
            .map(|i| match fill {
                0 => i8::MIN,
                1 => i8::MAX,
                _ => self.data.get((self.pos + i) % self.data.len().max(1)).copied().unwrap_or(0) as i8,
            })
            .collect()
    }

    /// `n` values from `f`.
    pub fn vec<T>(&mut self, n: usize, mut f: impl FnMut(&mut Self) -> T) -> Vec<T> {
        let n = if n > MAX_ALLOC { self.byte() as usize } else { n };
        let n = match self.byte() {
            _ if !self.hostile => n,
            0..=5 => n + 1,
            6..=11 => n.saturating_sub(1),
            _ => n,
        };
        (0..n).map(|_| f(self)).collect()
    }
}

fn poisoned(len: usize) -> Vec<i8> {
    vec![0x5a; len]
}

/// Asserts that `a` and `b` gave the same result, and that an error wrote nothing.
fn same(what: &str, ra: Result<Shape, Error>, a: &[i8], rb: Result<Shape, Error>, b: &[i8]) {
    assert_eq!(ra, rb, "{what}: results differ");
    if ra.is_ok() {
        assert_eq!(a, b, "{what}: outputs differ");
    } else {
        assert!(a.iter().all(|&v| v == 0x5a), "{what}: wrote output before failing");
        assert!(b.iter().all(|&v| v == 0x5a), "{what}: wrote output before failing");
    }
}

fn output_len(inp: &mut Input<'_>, shape: Result<Shape, Error>) -> usize {
    let hostile = inp.hostile();
    match shape {
        Ok(s) if s.len() <= MAX_ALLOC => match inp.byte() {
            0..=7 if hostile => s.len() + 1,
            _ => s.len(),
        },
        _ => inp.byte() as usize % 8,
    }
}

/// Convolution: reference, general fast path, 1×1 path and dispatcher agree.
pub fn check_conv(data: &[u8]) -> bool {
    let mut inp = Input::new(data);
    let mut input_shape = inp.shape();
    let mut filter_shape = inp.shape();
    // Now and then a window longer than the blocked kernel's 512-byte column: many input
    // channels under a small kernel on a small image.
    if inp.byte() < 20 {
        input_shape =
            Shape::new(1, 1 + inp.byte() as usize % 5, 1 + inp.byte() as usize % 5, 57 + inp.byte() as usize % 200);
        filter_shape.h = 1 + inp.byte() as usize % 3;
        filter_shape.w = 1 + inp.byte() as usize % 3;
    }
    // Now and then more output channels than one block of the blocked kernel (32).
    filter_shape.n = if inp.byte() < 24 { 30 + inp.byte() as usize % 50 } else { inp.dim() };
    if inp.byte() < 200 || !inp.hostile() {
        filter_shape.c = input_shape.c;
    }
    if inp.byte() < 64 {
        filter_shape.h = 1;
        filter_shape.w = 1;
    }
    let p = ConvParams {
        stride_h: inp.step(),
        stride_w: inp.step(),
        dilation_h: inp.step(),
        dilation_w: inp.step(),
        padding: inp.padding(),
        input_zero_point: inp.i8(),
        output_zero_point: inp.i8(),
        activation: inp.act(),
    };
    let x = inp.buffer(input_shape.len());
    let f = inp.buffer(filter_shape.len());
    let oc = filter_shape.n;
    let bias = inp.vec(oc, Input::i32);
    let rq = inp.vec(oc, Input::requant);
    let w = ConvWeights { filter: &f, filter_shape, bias: if inp.bool() { Some(&bias) } else { None }, requant: &rq };
    let olen = output_len(&mut inp, microcnn::conv::conv2d_output_shape(&p, input_shape, filter_shape));
    let (mut a, mut b, mut c) = (poisoned(olen), poisoned(olen), poisoned(olen));
    let ra = conv2d_i8_reference(&p, &w, &x, input_shape, &mut a);
    let rb = conv2d_i8_fast(&p, &w, &x, input_shape, &mut b);
    same("conv fast", ra, &a, rb, &b);
    let rc = conv2d_i8(&p, &w, &x, input_shape, &mut c);
    same("conv dispatch", ra, &a, rc, &c);
    let mut e = poisoned(olen);
    let re = conv2d_i8_blocked(&p, &w, &x, input_shape, &mut e);
    same("conv blocked", ra, &a, re, &e);
    if is_pointwise(&p, filter_shape) {
        let mut d = poisoned(olen);
        let rd = conv2d_1x1_i8(&p, &w, &x, input_shape, &mut d);
        same("conv 1x1", ra, &a, rd, &d);
    } else {
        let mut d = poisoned(olen);
        assert_eq!(conv2d_1x1_i8(&p, &w, &x, input_shape, &mut d), Err(Error::ShapeMismatch));
    }
    let _ = microcnn::memory::conv2d_memory(&p, input_shape, filter_shape);
    ra.is_ok()
}

/// Depthwise convolution: reference, fast path and dispatcher agree.
pub fn check_depthwise(data: &[u8]) -> bool {
    let mut inp = Input::new(data);
    let mut input_shape = inp.shape();
    // Now and then more channels than one block of the blocked kernel (32).
    if inp.byte() < 24 {
        input_shape.c = 30 + inp.byte() as usize % 50;
    }
    let m = if inp.byte() < 230 { 1 + (inp.byte() % 3) as usize } else { inp.dim() };
    let mut filter_shape = inp.shape();
    if inp.byte() < 220 || !inp.hostile() {
        filter_shape.n = 1;
        filter_shape.c = input_shape.c.wrapping_mul(m);
    }
    let p = ConvParams {
        stride_h: inp.step(),
        stride_w: inp.step(),
        dilation_h: inp.step(),
        dilation_w: inp.step(),
        padding: inp.padding(),
        input_zero_point: inp.i8(),
        output_zero_point: inp.i8(),
        activation: inp.act(),
    };
    let x = inp.buffer(input_shape.len());
    let f = inp.buffer(filter_shape.len());
    let oc = filter_shape.c;
    let bias = inp.vec(oc, Input::i32);
    let rq = inp.vec(oc, Input::requant);
    let w = ConvWeights { filter: &f, filter_shape, bias: if inp.bool() { Some(&bias) } else { None }, requant: &rq };
    let shape = microcnn::depthwise::depthwise_conv2d_output_shape(&p, m, input_shape, filter_shape);
    let olen = output_len(&mut inp, shape);
    let (mut a, mut b, mut c) = (poisoned(olen), poisoned(olen), poisoned(olen));
    let ra = depthwise_conv2d_i8_reference(&p, m, &w, &x, input_shape, &mut a);
    let rb = depthwise_conv2d_i8_fast(&p, m, &w, &x, input_shape, &mut b);
    same("depthwise fast", ra, &a, rb, &b);
    let rc = depthwise_conv2d_i8(&p, m, &w, &x, input_shape, &mut c);
    same("depthwise dispatch", ra, &a, rc, &c);
    let mut d = poisoned(olen);
    let rd = depthwise_conv2d_i8_blocked(&p, m, &w, &x, input_shape, &mut d);
    same("depthwise blocked", ra, &a, rd, &d);
    let _ = microcnn::memory::depthwise_conv2d_memory(&p, m, input_shape, filter_shape);
    ra.is_ok()
}

/// Dense: never panics; equals a plain `i64` evaluation of its definition.
pub fn check_dense(data: &[u8]) -> bool {
    let mut inp = Input::new(data);
    let n = if inp.byte() < 240 { 1 + (inp.byte() % 3) as usize } else { inp.dim() };
    let depth = match inp.byte() {
        _ if !inp.hostile() => 1 + (inp.byte() % 70) as usize,
        0..=199 => 1 + (inp.byte() % 40) as usize,
        200..=219 => MAX_TAPS,
        220..=229 => MAX_TAPS + 1,
        _ => inp.dim(),
    };
    let units = if inp.byte() < 220 { 1 + (inp.byte() % 4) as usize } else { inp.dim() };
    let input_shape = if inp.bool() { Shape::vector(n, depth) } else { Shape::new(n, 1, depth, 1) };
    // Big depths only with one unit and one image, so buffers stay small.
    let big = depth > MAX_ALLOC;
    let (n, units) = if big { (1, 1) } else { (n, units) };
    let input_shape = if big { Shape::vector(1, depth) } else { input_shape };
    let x = if big && depth <= MAX_TAPS + 1 { vec![inp.i8(); depth] } else { inp.buffer(input_shape.len()) };
    let wv = inp.i8();
    let wts: Vec<i8> =
        if big && depth <= MAX_TAPS + 1 { vec![wv; depth] } else { inp.buffer(units.saturating_mul(depth)) };
    let per_tensor = inp.bool();
    let nq = if per_tensor { 1 } else { units };
    let bias = inp.vec(units, Input::i32);
    let rq = inp.vec(nq, Input::requant);
    let p = DenseParams { input_zero_point: inp.i8(), output_zero_point: inp.i8(), activation: inp.act() };
    let use_bias = inp.bool();
    let w = DenseWeights { weights: &wts, units, bias: if use_bias { Some(&bias) } else { None }, requant: &rq };
    let olen = n.saturating_mul(units).saturating_add(if inp.byte() < 8 { 1 } else { 0 }).min(MAX_ALLOC);
    let (mut blocked_out, mut dispatch_out) = (poisoned(olen), poisoned(olen));
    let rb = dense_i8_blocked(&p, &w, &x, input_shape, &mut blocked_out);
    let rd = dense_i8(&p, &w, &x, input_shape, &mut dispatch_out);
    let mut out = poisoned(olen);
    let r = dense_i8_reference(&p, &w, &x, input_shape, &mut out);
    same("dense blocked", r, &out, rb, &blocked_out);
    same("dense dispatch", r, &out, rd, &dispatch_out);
    match r {
        Ok(s) => {
            assert_eq!(s, Shape::vector(n, units));
            assert!(depth <= MAX_TAPS, "depth above MAX_TAPS accepted");
            for b in 0..n {
                for u in 0..units {
                    let mut acc: i64 = 0;
                    for d in 0..depth {
                        acc += wts[u * depth + d] as i64 * (x[b * depth + d] as i64 - p.input_zero_point as i64);
                    }
                    assert!(acc.abs() <= i32::MAX as i64, "accumulator headroom");
                    let mut acc = acc as i32;
                    if use_bias {
                        acc = acc.wrapping_add(bias[u]);
                    }
                    let q = if rq.len() == 1 { 0 } else { u };
                    let want =
                        requantize_reference(acc, rq[q].multiplier, rq[q].shift, p.output_zero_point, p.activation);
                    assert_eq!(out[b * units + u], want, "dense element ({b}, {u})");
                }
            }
        }
        Err(_) => assert!(out.iter().all(|&v| v == 0x5a), "dense wrote output before failing"),
    }
    let _ = microcnn::memory::dense_memory(input_shape, units).map(|m| m.total());
    r.is_ok()
}

/// TFLite's requantization written out in `i64`/`i128` for the documented domain.
pub fn requantize_reference(acc: i32, m: i32, shift: i32, zp: i8, act: ActivationRange) -> i8 {
    let left = shift.clamp(0, 31);
    let right = (-(shift as i64)).clamp(0, 31) as u32;
    let x = (acc as i64 * (1i64 << left)) as i32; // wraps like two's-complement C
    let prod = x as i128 * m as i128;
    let high = if x == i32::MIN && m == i32::MIN {
        i32::MAX as i128
    } else {
        let nudge: i128 = if prod >= 0 { 1 << 30 } else { 1 - (1 << 30) };
        (prod + nudge) / (1i128 << 31) // truncates toward zero, as C
    };
    let high = high as i64;
    let y = if right == 0 {
        high
    } else {
        // Round half away from zero.
        let d = 1i64 << right;
        let q = high.div_euclid(d);
        let r = high.rem_euclid(d);
        if r * 2 > d || (r * 2 == d && high >= 0) {
            q + 1
        } else {
            q
        }
    };
    (y + zp as i64).clamp(act.min as i64, act.max as i64) as i8
}

/// Pools: never panic; average and max equal their naive definitions.
pub fn check_pool(data: &[u8]) -> bool {
    let mut inp = Input::new(data);
    let shape = inp.shape();
    let window = Window {
        kernel_h: inp.dim(),
        kernel_w: inp.dim(),
        stride_h: inp.step(),
        stride_w: inp.step(),
        dilation_h: if inp.byte() < 240 { 1 } else { inp.dim() },
        dilation_w: if inp.byte() < 240 { 1 } else { inp.dim() },
        padding: inp.padding(),
    };
    let act = inp.act();
    let x = inp.buffer(shape.len());
    let olen = output_len(&mut inp, microcnn::pool::pool2d_output_shape(&window, shape));
    let pp = PoolParams { window, activation: act };
    let (mut fa, mut fb) = (poisoned(olen), poisoned(olen));
    let ra = max_pool2d_i8_reference(&pp, &x, shape, &mut fa);
    let rb = max_pool2d_i8(&pp, &x, shape, &mut fb);
    same("max pool fast", ra, &fa, rb, &fb);
    let (mut fa, mut fb) = (poisoned(olen), poisoned(olen));
    let ra = avg_pool2d_i8_reference(&pp, &x, shape, &mut fa);
    let rb = avg_pool2d_i8(&pp, &x, shape, &mut fb);
    same("avg pool fast", ra, &fa, rb, &fb);
    let mut out = poisoned(olen);
    let r_max = max_pool2d_i8(&pp, &x, shape, &mut out);
    check_pool_naive("max", r_max, &out, &x, shape, &window, act, |v: &[i8]| {
        v.iter().copied().max().map(|m| m as i32).unwrap_or(0)
    });
    let mut out = poisoned(olen);
    let r_avg = avg_pool2d_i8(&pp, &x, shape, &mut out);
    check_pool_naive("avg", r_avg, &out, &x, shape, &window, act, |v: &[i8]| {
        let s: i64 = v.iter().map(|&x| x as i64).sum();
        let n = v.len() as i64;
        (if s > 0 { (s + n / 2) / n } else { (s - n / 2) / n }) as i32
    });
    if r_max.is_ok() && r_avg.is_err() {
        assert_eq!(r_avg, Err(Error::TooLarge), "avg refuses only windows above MAX_WINDOW");
    }
    let rq = Requant { multiplier: inp.multiplier(), shift: inp.shift() };
    let lp =
        L2PoolParams { window, input_zero_point: inp.i8(), output_zero_point: inp.i8(), requant: rq, activation: act };
    let mut out = poisoned(olen);
    if l2_pool2d_i8(&lp, &x, shape, &mut out).is_err() {
        assert!(out.iter().all(|&v| v == 0x5a), "l2 pool wrote output before failing");
    }
    let mp = MeanParams {
        input_zero_point: inp.i8(),
        output_zero_point: inp.i8(),
        requant: Requant { multiplier: inp.multiplier(), shift: inp.shift() },
        activation: act,
    };
    let mlen = if shape.n.saturating_mul(shape.c) <= MAX_ALLOC { shape.n * shape.c } else { 3 };
    let mut out = poisoned(mlen);
    if global_avg_pool_i8(&mp, &x, shape, &mut out).is_err() {
        assert!(out.iter().all(|&v| v == 0x5a), "mean wrote output before failing");
    }
    let _ = MeanParams::new(inp.f32(), inp.i8(), inp.f32(), inp.i8(), inp.dim(), act);
    let _ = microcnn::memory::pool2d_memory(&window, shape);
    let v = inp.u64();
    let r = isqrt_rounded(v);
    assert!(r <= 1 << 32);
    r_max.is_ok()
}

#[allow(clippy::too_many_arguments)]
fn check_pool_naive(
    what: &str,
    r: Result<Shape, Error>,
    out: &[i8],
    x: &[i8],
    shape: Shape,
    window: &Window,
    act: ActivationRange,
    f: impl Fn(&[i8]) -> i32,
) {
    let Ok(os) = r else {
        assert!(out.iter().all(|&v| v == 0x5a), "{what} pool wrote output before failing");
        return;
    };
    let g = window.resolve(shape.h, shape.w).expect("accepted geometry resolves");
    let mut taps = Vec::new();
    // Input rows/columns inside the window starting at `start` (in padded coordinates minus
    // the leading padding), found by scanning the input axis: no shared code with the kernel.
    let inside = |start: usize, pad: usize, k: usize, len: usize| -> Vec<usize> {
        (0..len).filter(|&i| i + pad >= start && i + pad < start + k).collect()
    };
    for b in 0..os.n {
        for oy in 0..os.h {
            let rows = inside(oy * window.stride_h, g.y.pad_before, window.kernel_h, shape.h);
            for ox in 0..os.w {
                let cols = inside(ox * window.stride_w, g.x.pad_before, window.kernel_w, shape.w);
                for c in 0..os.c {
                    taps.clear();
                    for &iy in &rows {
                        for &ix in &cols {
                            taps.push(x[((b * shape.h + iy) * shape.w + ix) * shape.c + c]);
                        }
                    }
                    assert!(!taps.is_empty(), "{what}: accepted an empty window");
                    let want = act.clamp(f(&taps));
                    assert_eq!(out[((b * os.h + oy) * os.w + ox) * os.c + c], want, "{what} pool element");
                }
            }
        }
    }
}

/// Element-wise kernels, softmax, classification helpers and the parameter builders.
pub fn check_elementwise(data: &[u8]) -> bool {
    let mut inp = Input::new(data);
    let len = if inp.byte() < 250 { inp.byte() as usize % 64 } else { MAX_ALLOC };
    let a = inp.buffer(len);
    let b = inp.buffer(len);
    let olen = if inp.byte() < 16 { len + 1 } else { len };
    let act = inp.act();
    let ap = AddParams {
        input1_zero_point: inp.i8(),
        input2_zero_point: inp.i8(),
        output_zero_point: inp.i8(),
        left_shift: if inp.byte() < 200 { 20 } else { inp.i32() },
        input1: Requant { multiplier: inp.multiplier(), shift: inp.shift() },
        input2: Requant { multiplier: inp.multiplier(), shift: inp.shift() },
        output: Requant { multiplier: inp.multiplier(), shift: inp.shift() },
        activation: act,
    };
    let mut out = poisoned(olen);
    let r_add = add_i8(&ap, &a, &b, &mut out);
    if r_add.is_err() {
        assert!(out.iter().all(|&v| v == 0x5a), "add wrote output before failing");
    }
    let built = AddParams::new(inp.f32(), inp.i8(), inp.f32(), inp.i8(), inp.f32(), inp.i8(), act);
    let _ = add_i8(&built, &a, &b, &mut out);
    // Broadcasting ADD/SUB/MUL: equal shapes give add_i8's bits; any shapes never panic.
    let flat = Shape::new(1, 1, 1, a.len());
    let mut same = poisoned(olen);
    if r_add.is_ok() {
        microcnn::add::add_broadcast_i8(&ap, false, &a, flat, &b, flat, &mut same).expect("same shapes broadcast");
        let mut want = poisoned(olen);
        add_i8(&ap, &a, &b, &mut want).unwrap();
        assert_eq!(same, want, "broadcast add differs from add_i8 on equal shapes");
    }
    let (sa, sb) = (Shape::new(1, inp.dim(), inp.dim(), inp.dim()), Shape::new(1, inp.dim(), inp.dim(), inp.dim()));
    let fit = |s: Shape, v: &[i8]| -> Vec<i8> {
        v.iter().copied().cycle().take(s.checked_len().unwrap_or(0).min(MAX_ALLOC)).collect()
    };
    let (va, vb) = (fit(sa, &a), fit(sb, &b));
    let out_len =
        microcnn::add::broadcast_shape(sa, sb).ok().and_then(|s| s.checked_len().ok()).unwrap_or(1).min(MAX_ALLOC);
    let mut out_b = poisoned(out_len);
    let _ = microcnn::add::add_broadcast_i8(&ap, inp.bool(), &va, sa, &vb, sb, &mut out_b);
    let mp = microcnn::add::MulParams {
        input1_zero_point: inp.i8(),
        input2_zero_point: inp.i8(),
        output_zero_point: inp.i8(),
        output: Requant { multiplier: inp.multiplier(), shift: inp.shift() },
        activation: act,
    };
    let _ = microcnn::add::mul_broadcast_i8(&mp, &va, sa, &vb, sb, &mut out_b);

    let rp = microcnn::activation::ReluParams {
        input_zero_point: inp.i8(),
        output_zero_point: inp.i8(),
        requant: Requant { multiplier: inp.multiplier(), shift: inp.shift() },
        activation: act,
    };
    let mut out = poisoned(olen);
    let _ = microcnn::activation::relu_i8(&rp, &a, &mut out);
    let built = microcnn::activation::ReluParams::new(inp.f32(), inp.i8(), inp.f32(), inp.i8(), inp.bool());
    let _ = microcnn::activation::relu_i8(&built, &a, &mut out);
    let _ = microcnn::activation::relu6_i8(inp.f32(), inp.i8(), &a, &mut out);
    let mut c = a.clone();
    let _ = microcnn::activation::clamp_in_place_i8(act, &mut c);
    let _ = microcnn::activation::dropout_i8(&a, &mut out);

    let depth = inp.dim();
    let raw = |inp: &mut Input| SoftmaxParams {
        input_multiplier: inp.i32(),
        input_left_shift: inp.shift(),
        diff_min: inp.i32(),
        output_zero_point: if inp.byte() < 240 { SoftmaxParams::OUTPUT_ZERO_POINT } else { inp.i8() },
    };
    let sp = if inp.bool() {
        let (s_in, beta) = (inp.f32(), inp.f32());
        let (s_out, zp_out) =
            if inp.byte() < 200 { (SoftmaxParams::OUTPUT_SCALE, -128) } else { (inp.f32(), inp.i8()) };
        match SoftmaxParams::new(s_in, beta, s_out, zp_out) {
            Ok(p) => {
                assert_eq!(p.output_zero_point, -128, "softmax accepted output zero point {zp_out}");
                assert!(
                    (s_out - SoftmaxParams::OUTPUT_SCALE).abs() <= 0.001 * SoftmaxParams::OUTPUT_SCALE,
                    "softmax accepted output scale {s_out}"
                );
                p
            }
            Err(e) => {
                assert_eq!(e, Error::InvalidQuantization);
                let valid_out = zp_out == -128
                    && (s_out - SoftmaxParams::OUTPUT_SCALE).abs() <= 0.001 * SoftmaxParams::OUTPUT_SCALE;
                let valid_in = s_in.is_finite() && s_in > 0.0 && beta.is_finite() && beta > 0.0;
                assert!(!(valid_out && valid_in), "softmax refused valid quantization {s_in} {beta} {s_out}");
                raw(&mut inp)
            }
        }
    } else {
        raw(&mut inp)
    };
    if sp.output_zero_point != -128 {
        let mut out = poisoned(a.len());
        assert_eq!(softmax_i8(&sp, &a, 1, &mut out), Err(Error::InvalidQuantization));
    }
    let mut out = poisoned(olen);
    if softmax_i8(&sp, &a, depth, &mut out).is_err() {
        assert!(out.iter().all(|&v| v == 0x5a), "softmax wrote output before failing");
    }
    check_layout(&mut inp, &a, &b);
    // LOGISTIC/TANH: built parameters and raw hostile ones; a refusal writes nothing.
    use microcnn::activation::{logistic_i8, tanh_i8, SquashParams};
    let sq = match SquashParams::new(inp.f32(), inp.i8()) {
        Ok(p) => p,
        Err(_) => SquashParams {
            input_zero_point: inp.i8(),
            input_range_radius: inp.i32(),
            input_multiplier: inp.multiplier(),
            input_left_shift: inp.shift(),
        },
    };
    let hs = match microcnn::activation::HardSwishParams::new(inp.f32(), inp.i8(), inp.f32(), inp.i8()) {
        Ok(p) => p,
        Err(_) => microcnn::activation::HardSwishParams {
            input_zero_point: inp.i8(),
            output_zero_point: inp.i8(),
            output_multiplier: inp.i32() as i16,
            output_exponent: inp.shift(),
            reluish_multiplier: inp.i32() as i16,
            reluish_exponent: inp.shift(),
        },
    };
    let mut out = poisoned(olen);
    if microcnn::activation::hard_swish_i8(&hs, &a, &mut out).is_err() {
        assert!(out.iter().all(|&v| v == 0x5a), "hard swish wrote output before failing");
    }
    for f in [logistic_i8, tanh_i8] {
        let mut out = poisoned(olen);
        if f(&sq, &a, &mut out).is_err() {
            assert!(out.iter().all(|&v| v == 0x5a), "logistic/tanh wrote output before failing");
        }
    }
    let _ = microcnn::classify::argmax_i8(&a);
    let _ = microcnn::classify::top_k_i8::<1>(&a);
    let _ = microcnn::classify::top_k_i8::<5>(&a);
    if let Ok(t) = microcnn::classify::top_k_i8::<3>(&a) {
        assert!(t.windows(2).all(|w| w[0].1 >= w[1].1), "top-k sorted");
        assert_eq!(t[0].0, microcnn::classify::argmax_i8(&a).unwrap(), "top-1 = argmax");
    }
    r_add.is_ok()
}

/// Padding and concatenation against index-by-index definitions, on hostile shapes too.
fn check_layout(inp: &mut Input, a: &[i8], b: &[i8]) {
    use microcnn::layout::{concat_i8, pad_i8, PadParams};
    let (h, w, c) = (inp.dim(), inp.dim(), inp.dim());
    let side = |inp: &mut Input| if inp.byte() < 250 { (inp.byte() % 4) as usize } else { inp.dim() };
    let p = PadParams {
        before: [side(inp), side(inp), side(inp)],
        after: [side(inp), side(inp), side(inp)],
        value: inp.i8(),
    };
    let shape = Shape::image(h, w, c);
    let input_len = h.checked_mul(w).and_then(|v| v.checked_mul(c));
    let input: Vec<i8> = match input_len {
        Some(n) if n <= a.len() => a[..n].to_vec(),
        _ => a.to_vec(),
    };
    match p.output_shape(shape) {
        Ok(o) if o.checked_len().is_ok_and(|n| n <= MAX_ALLOC) && input_len == Some(input.len()) => {
            let mut out = poisoned(o.len());
            pad_i8(&p, shape, &input, &mut out).expect("valid padding runs");
            // (An empty output has nothing to compare, however many rows it has.)
            for y in 0..if o.is_empty() { 0 } else { o.h } {
                for x in 0..o.w {
                    for k in 0..o.c {
                        let (iy, ix, ik) =
                            (y.wrapping_sub(p.before[0]), x.wrapping_sub(p.before[1]), k.wrapping_sub(p.before[2]));
                        let want = if iy < h && ix < w && ik < c { input[(iy * w + ix) * c + ik] } else { p.value };
                        assert_eq!(out[(y * o.w + x) * o.c + k], want, "pad at ({y}, {x}, {k})");
                    }
                }
            }
        }
        Ok(o) if input_len != Some(input.len()) && o.checked_len().is_ok_and(|n| n <= MAX_ALLOC) => {
            let mut out = poisoned(o.len());
            assert!(pad_i8(&p, shape, &input, &mut out).is_err(), "pad accepted an input of the wrong length");
            assert!(out.iter().all(|&v| v == 0x5a), "pad wrote output before failing");
        }
        Ok(_) => {} // larger than the harness allocates
        Err(e) => {
            assert_eq!(e, Error::TooLarge);
            assert_eq!(pad_i8(&p, shape, &input, &mut poisoned(4)), Err(Error::TooLarge));
        }
    }
    // Transpose: any dims and permutation; a valid one is its own inverse's inverse.
    let perm = [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0], [0, 0, 1]][inp.byte() as usize % 7];
    let dims = [h, w, c];
    let mut t = poisoned(input.len());
    if microcnn::layout::transpose_i8(&input, dims, perm, &mut t).is_ok() {
        let inv = {
            let mut v = [0usize; 3];
            for (k, &p) in perm.iter().enumerate() {
                v[p] = k;
            }
            v
        };
        let mut back = poisoned(input.len());
        microcnn::layout::transpose_i8(&t, [dims[perm[0]], dims[perm[1]], dims[perm[2]]], inv, &mut back).unwrap();
        assert_eq!(back, input, "transpose then its inverse");
    }
    // Concatenation: `outer` blocks of each operand, in turn.
    let outer = inp.dim();
    let total = a.len().saturating_add(b.len());
    let mut out = poisoned(if inp.byte() < 16 { total + 1 } else { total });
    match concat_i8(&[a, b], outer, &mut out) {
        Ok(()) => {
            let (pa, pb) = (a.len() / outer, b.len() / outer);
            for o in 0..if total == 0 { 0 } else { outer } {
                assert_eq!(
                    &out[o * (pa + pb)..o * (pa + pb) + pa],
                    &a[o * pa..(o + 1) * pa],
                    "concat block {o}, first"
                );
                assert_eq!(
                    &out[o * (pa + pb) + pa..(o + 1) * (pa + pb)],
                    &b[o * pb..(o + 1) * pb],
                    "concat block {o}, second"
                );
            }
        }
        Err(_) => {
            let fits = outer != 0 && a.len() % outer == 0 && b.len() % outer == 0 && out.len() == total;
            assert!(!fits, "concat refused a valid call ({outer} blocks of {} + {})", a.len(), b.len());
        }
    }
}

/// Requantization and fixed-point helpers, against their definitions where they have one.
pub fn check_quant(data: &[u8]) -> bool {
    use microcnn::fixedpoint::*;
    use microcnn::quant::*;
    let mut inp = Input::new(data);
    for _ in 0..8 {
        let (x, m, s, zp, act) = (inp.i32(), inp.multiplier(), inp.shift(), inp.i8(), inp.act());
        let got = requantize(x, m, s, zp, act);
        if (0..).contains(&m) && (-31..=30).contains(&s) && act.min <= act.max {
            assert_eq!(got, requantize_reference(x, m, s, zp, act), "requantize({x}, {m}, {s}, {zp})");
        }
        let _ = multiply_by_quantized_multiplier(x, m, s);
        let _ = saturating_rounding_doubling_high_mul(x, m);
        let _ = rounding_divide_by_pot(x, s);
        let _ = Requant { multiplier: m, shift: s }.apply(x);
        let _ = saturating_rounding_multiply_by_pot(x, s);
        let _ = rescale(x, s, inp.shift());
        let _ = exp_on_negative_values(x, inp.shift());
        let _ = one_over_one_plus_x_for_x_in_0_1(x);
        let _ = reciprocal(x, inp.shift());
        let f = inp.f32();
        let r = quantize_multiplier(f as f64 * inp.f32() as f64);
        assert!(r.multiplier >= 0 && (-31..=30).contains(&r.shift), "quantize_multiplier stays in range");
        let _ = quantize_f32(f, inp.f32(), zp);
        let _ = dequantize_i8(zp, f, inp.i8());
        let _ = ActivationRange::relu6(zp, f);
        let _ = ActivationRange::relu(zp);
        let _ = act.clamp(x);
    }
    let n = inp.byte() as usize % 8;
    let ws: Vec<f32> = (0..n).map(|_| inp.f32()).collect();
    let mlen = if inp.byte() < 16 { n + 1 } else { n };
    let mut rq = vec![Requant::new(0, 0); mlen];
    let _ = conv_multipliers(inp.f32(), &ws, inp.f32(), &mut rq);
    let mut out = vec![0i8; if inp.bool() { n } else { n + 1 }];
    let _ = quantize_slice(&ws, inp.f32(), inp.i8(), &mut out);
    let px: Vec<u8> = (0..n).map(|_| inp.byte()).collect();
    let _ = quantize_pixels(&px, inp.f32(), inp.f32(), inp.i8(), &mut out);
    true
}

/// The SIMD building blocks with arbitrary arguments: total, and the dot products and the dense
/// rows routine equal their definitions whenever they accept the slices.
pub fn check_simd(data: &[u8]) -> bool {
    let mut inp = Input::new(data);
    use microcnn::simd;
    let (a, b, z) = (inp.i32() as u32, inp.i32() as u32, inp.i32());
    let _ = (simd::sxtb16(a), simd::sxtb16_ror8(a), simd::sxtab16(a, b), simd::sxtab16_ror8(a, b));
    let _ = (simd::smlad(a, b, z), simd::smlabb(a, b, z), simd::smlatt(a, b, z), simd::max_i8x4(a, b), simd::pair(z));
    let wlen = inp.byte() as usize * 8;
    let xs: Vec<i8> = (0..simd::COLUMN_GAP + 64).map(|i| (i as u8).wrapping_mul(37) as i8).collect();
    let ws: Vec<i8> = (0..wlen).map(|i| (i as u8).wrapping_mul(91) as i8).collect();
    let (stride, quads) = (inp.small().min(1 << 20), inp.small().min(1 << 20));
    let (stride, quads) = if inp.hostile() { (inp.dim(), inp.dim()) } else { (stride, quads) };
    if let Some(r) = simd::dot2x2(&ws, stride, &xs, quads) {
        let t = quads * 4;
        let dot = |w: &[i8], x: &[i8]| w.iter().zip(x).map(|(&a, &b)| a as i32 * b as i32).sum::<i32>();
        let (x0, x1) = (&xs[..t], &xs[simd::COLUMN_GAP..simd::COLUMN_GAP + t]);
        let (w0, w1) = (&ws[..t], &ws[stride..stride + t]);
        assert_eq!(r, [dot(w0, x0), dot(w0, x1), dot(w1, x0), dot(w1, x1)], "dot2x2");
    }
    let off = inp.i8() as i32;
    if let Some(r) = simd::dot4x1(&ws, stride, &xs, quads, -off) {
        let t = quads * 4;
        for (row, &got) in r.iter().enumerate() {
            let want: i32 = ws[row * stride..row * stride + t]
                .iter()
                .zip(&xs[..t])
                .map(|(&a, &b)| a as i32 * (b as i32 - off))
                .sum();
            assert_eq!(got, want, "dot4x1 row {row}");
        }
    }
    // The dense rows routine's safe entry: usually arguments it takes (so its sums and
    // requantization are compared with the definition), with hostile input anything at all
    // (it must refuse or stay in bounds).
    let (rows, xlen, stride, nq, nb, nout, wlen) = if inp.hostile() {
        (inp.dim(), inp.dim().min(4096), inp.dim(), inp.small() % 4, inp.small() % 70, inp.small() % 70, wlen)
    } else {
        let rows = 1 + inp.small() % 6;
        let xlen = 4 + inp.small() % 60;
        let stride = xlen / 4 * 4 + 4 * (inp.small() % 3);
        let nq = if inp.small() % 2 == 0 { 1 } else { rows };
        (rows, xlen, stride, nq, rows, rows, (rows - 1) * stride + xlen)
    };
    let wd: Vec<i8> = (0..wlen).map(|_| inp.i8()).collect();
    let xd: Vec<i8> = (0..xlen).map(|_| inp.i8()).collect();
    let hostile = inp.hostile();
    let quant: Vec<microcnn::Requant> = (0..nq)
        .map(|_| {
            let (m, s) = (inp.i32(), inp.i32());
            if hostile {
                microcnn::Requant::new(m, s % 40)
            } else {
                microcnn::Requant::new(m & i32::MAX, s % 31)
            }
        })
        .collect();
    let bias: Vec<i32> = (0..nb).map(|_| inp.i32()).collect();
    let mut out = vec![0x5a_i8; nout];
    let (zp, act) = (inp.i8(), ActivationRange { min: inp.i8(), max: inp.i8() });
    let o = simd::DenseOut { out: &mut out, quant: &quant, bias: &bias, zp, act };
    // Out-of-range multipliers and shifts leave the outputs unspecified (never unsafe).
    let checked = quant.iter().all(|q| q.multiplier >= 0 && (-31..=30).contains(&q.shift));
    if simd::dense_rows(&wd, stride, rows, &xd, off, o) && checked {
        let t = xd.len() / 4 * 4;
        for (r, &got) in out.iter().enumerate().take(rows) {
            let sum = wd[r * stride..r * stride + t]
                .iter()
                .zip(&xd[..t])
                .fold(bias[r], |a, (&w, &x)| a.wrapping_add(w as i32 * (x as i32 + off)));
            let q = quant.get(r).unwrap_or(&quant[0]);
            assert_eq!(got, microcnn::quant::requantize(sum, q.multiplier, q.shift, zp, act), "dense row {r}");
        }
    }
    true
}

/// Geometry and memory functions: total, and equal to brute force where that is cheap.
pub fn check_geometry(data: &[u8]) -> bool {
    use microcnn::memory::*;
    use microcnn::shape::*;
    let mut inp = Input::new(data);
    let (w, k, s, d, pb, pa) = (inp.dim(), inp.dim(), inp.dim(), inp.dim(), inp.small(), inp.small());
    let r_out = output_size(w, k, s, d, pb, pa);
    match r_out {
        Ok(o) => {
            assert!(o >= 1);
            let k_eff = (k as u128 - 1) * d as u128 + 1;
            let padded = w as u128 + pb as u128 + pa as u128;
            assert!(k_eff <= padded && padded <= MAX_EXTENT as u128);
            assert_eq!((padded - k_eff) % s as u128, 0);
            assert_eq!(o as u128, (padded - k_eff) / s as u128 + 1);
        }
        Err(Error::FractionalOutput { span, stride }) => assert!(stride == s && span % s != 0),
        Err(_) => {}
    }
    for vertical in [true, false] {
        if let Ok(g) = resolve_axis(w, k, s, d, Padding::Same, vertical) {
            assert_eq!(g.out, w.div_ceil(s));
            assert!(g.pad_after >= g.pad_before && g.pad_after - g.pad_before <= 1);
        }
        let _ = resolve_axis(w, k, s, d, inp.padding(), vertical);
    }
    let _ = dilated_kernel(k, d);
    let win = Window {
        kernel_h: k,
        kernel_w: inp.dim(),
        stride_h: s,
        stride_w: inp.dim(),
        dilation_h: d,
        dilation_w: inp.dim(),
        padding: inp.padding(),
    };
    let _ = win.resolve(w, inp.dim());
    // tap_range against brute force over small tap counts.
    let start = match inp.byte() % 4 {
        0 => isize::MIN,
        1 => isize::MAX,
        _ => inp.i32() as isize,
    };
    let start = if inp.bool() { start } else { (inp.byte() as isize) - 128 };
    let (tk, td, tl) =
        (inp.byte() as usize % 12, if inp.bool() { inp.byte() as usize % 5 } else { inp.dim() }, inp.dim());
    let (k0, k1) = tap_range(start, tk, td, tl);
    assert!(k0 <= k1 && k1 <= tk, "tap_range({start}, {tk}, {td}, {tl}) = ({k0}, {k1})");
    let inside: Vec<usize> = (0..tk)
        .filter(|&t| {
            let pos = start as i128 + t as i128 * td as i128;
            pos >= 0 && pos < tl as i128
        })
        .collect();
    assert_eq!(inside.len(), k1 - k0, "tap_range({start}, {tk}, {td}, {tl}) count");
    if let (Some(&first), Some(&last)) = (inside.first(), inside.last()) {
        assert_eq!((first, last + 1), (k0, k1), "tap_range({start}, {tk}, {td}, {tl}) bounds");
    }
    let _ = tap_range(start, inp.dim(), inp.dim(), inp.dim());
    let sh = inp.shape();
    let _ = (sh.checked_len(), sh.len(), sh.item_len(), sh.is_empty(), sh.checked_nonempty_len());
    let _ = sh.expect_len(inp.dim());
    let _ = activation_bytes(sh);
    let _ = dense_memory(sh, inp.dim()).map(|m| m.total());
    let _ = elementwise_memory(sh, inp.dim()).map(|m| m.total());
    let lm = LayerMemory { input_bytes: inp.dim(), output_bytes: inp.dim(), scratch_bytes: inp.dim() };
    let _ = lm.total();
    // arena_io with arbitrary regions.
    let mut arena = vec![0i8; inp.byte() as usize];
    let regions = [(inp.small(), inp.small()), (inp.small(), inp.small())];
    let out = (inp.small(), inp.small());
    if let Ok(([a, b], o)) = arena_io(&mut arena, regions, out) {
        assert_eq!((a.len(), b.len(), o.len()), (regions[0].1, regions[1].1, out.1));
    }
    r_out.is_ok()
}

/// Every runtime check, one after the other on the same bytes.
pub fn check_all(data: &[u8]) {
    check_conv(data);
    check_depthwise(data);
    check_dense(data);
    check_pool(data);
    check_elementwise(data);
    check_quant(data);
    check_geometry(data);
    check_upsample(data);
    check_postprocess(data);
}

/// The scatter TFLite Micro runs for `TRANSPOSE_CONV`, summed in `i64` (cannot overflow): the
/// definition the gathering kernel must equal.
fn transpose_conv_by_scatter(
    p: &TransposeConvParams,
    w: &ConvWeights<'_>,
    input: &[i8],
    s: Shape,
    top: usize,
    left: usize,
) -> Vec<i8> {
    let f = w.filter_shape;
    let mut acc = vec![0i64; s.n * p.out_h * p.out_w * f.n];
    for b in 0..s.n {
        for iy in 0..s.h {
            for ix in 0..s.w {
                for ky in 0..f.h {
                    for kx in 0..f.w {
                        let oy = (iy * p.stride_h + ky) as isize - top as isize;
                        let ox = (ix * p.stride_w + kx) as isize - left as isize;
                        if oy < 0 || ox < 0 || oy >= p.out_h as isize || ox >= p.out_w as isize {
                            continue;
                        }
                        for c in 0..f.n {
                            for i in 0..s.c {
                                let x = input[((b * s.h + iy) * s.w + ix) * s.c + i] as i64 - p.input_zero_point as i64;
                                let wt = w.filter[((c * f.h + ky) * f.w + kx) * s.c + i] as i64;
                                acc[((b * p.out_h + oy as usize) * p.out_w + ox as usize) * f.n + c] += x * wt;
                            }
                        }
                    }
                }
            }
        }
    }
    acc.iter()
        .enumerate()
        .map(|(j, &a)| {
            let c = j % f.n;
            let a = i32::try_from(a).expect("the tap limit keeps every sum inside i32");
            let a = a.wrapping_add(w.bias.map_or(0, |b| b[c]));
            microcnn::quant::requantize(
                a,
                w.requant[c].multiplier,
                w.requant[c].shift,
                p.output_zero_point,
                p.activation,
            )
        })
        .collect()
}

/// TFLite's padding rule for `TRANSPOSE_CONV` along one axis, written out: the padding a forward
/// convolution of the output would need, halved.
fn transpose_crop(padding: Padding, vertical: bool, stride: usize, k: usize, out: usize) -> usize {
    match padding {
        Padding::Explicit { top, left, .. } => {
            if vertical {
                top
            } else {
                left
            }
        }
        Padding::Same => ((out.div_ceil(stride).max(1) - 1) * stride + k).saturating_sub(out) / 2,
        _ => {
            let conv_out = if out >= k { (out - k) / stride + 1 } else { 0 };
            (conv_out.saturating_sub(1) * stride + k).saturating_sub(out) / 2
        }
    }
}

/// Upsampling: `TRANSPOSE_CONV` equals its scatter definition; `RESIZE_NEAREST_NEIGHBOR` copies
/// the pixel its index rule names, with indices in range and non-decreasing. Both write nothing
/// on error.
pub fn check_upsample(data: &[u8]) -> bool {
    let mut inp = Input::new(data);
    let input_shape = inp.shape();
    let mut filter_shape = inp.shape();
    if inp.byte() < 220 || !inp.hostile() {
        filter_shape.c = input_shape.c;
    }
    let (sh, sw) = (inp.step().max(if inp.hostile() { 0 } else { 1 }), inp.step());
    let same = inp.bool();
    let mut p = TransposeConvParams {
        stride_h: sh,
        stride_w: sw,
        out_h: 0,
        out_w: 0,
        padding: if same { Padding::Same } else { Padding::Valid },
        input_zero_point: inp.i8(),
        output_zero_point: inp.i8(),
        activation: inp.act(),
    };
    // The sizes Keras gives (`in·S` for SAME, `(in − 1)·S + K` for VALID), or any.
    let keras = |n: usize, s: usize, k: usize| {
        if same {
            n.saturating_mul(s)
        } else {
            n.saturating_sub(1).saturating_mul(s).saturating_add(k)
        }
    };
    if inp.byte() < 200 {
        p.out_h = keras(input_shape.h, sh, filter_shape.h);
        p.out_w = keras(input_shape.w, sw, filter_shape.w);
    } else {
        p.out_h = inp.dim();
        p.out_w = inp.dim();
        if inp.byte() < 64 {
            p.padding = inp.padding();
        }
    }
    let x = inp.buffer(input_shape.len());
    let f = inp.buffer(filter_shape.len());
    let oc = filter_shape.n;
    let bias = inp.vec(oc, Input::i32);
    let rq = inp.vec(oc, Input::requant);
    let w = ConvWeights { filter: &f, filter_shape, bias: if inp.bool() { Some(&bias) } else { None }, requant: &rq };
    let want = Shape::new(input_shape.n, p.out_h, p.out_w, oc).checked_len().ok();
    let olen =
        output_len(&mut inp, want.map(|_| Shape::new(input_shape.n, p.out_h, p.out_w, oc)).ok_or(Error::TooLarge));
    let mut out = poisoned(olen);
    let r = transpose_conv2d_i8(&p, &w, &x, input_shape, &mut out);
    let ok = r.is_ok();
    match r {
        Ok(s) => {
            assert_eq!(s, Shape::new(input_shape.n, p.out_h, p.out_w, oc));
            let top = transpose_crop(p.padding, true, p.stride_h, filter_shape.h, p.out_h);
            let left = transpose_crop(p.padding, false, p.stride_w, filter_shape.w, p.out_w);
            // The definition costs taps·K_h·K_w per output: only for small cases.
            if s.len() * filter_shape.len() <= 1 << 16 {
                assert_eq!(out, transpose_conv_by_scatter(&p, &w, &x, input_shape, top, left), "transpose conv");
            }
        }
        Err(_) => assert!(out.iter().all(|&v| v == 0x5a), "transpose conv wrote output before failing"),
    }

    let rp = ResizeParams {
        out_h: if inp.byte() < 200 { 1 + inp.byte() as usize % 12 } else { inp.dim() },
        out_w: if inp.byte() < 200 { 1 + inp.byte() as usize % 12 } else { inp.dim() },
        align_corners: inp.byte() < 80,
        half_pixel_centers: inp.byte() < 128,
    };
    let rs = if inp.hostile() {
        inp.shape()
    } else {
        Shape::new(1, 1 + inp.byte() as usize % 12, 1 + inp.byte() as usize % 12, inp.dim())
    };
    let rx = inp.buffer(rs.len());
    let rlen = output_len(&mut inp, resize_output_shape(&rp, rs));
    let mut rout = poisoned(rlen);
    match resize_nearest_i8(&rp, &rx, rs, &mut rout) {
        Ok(os) => {
            let src = |o: usize, i: usize, n: usize| nearest_source(o, i, n, rp.align_corners, rp.half_pixel_centers);
            for (dim_in, dim_out) in [(rs.h, os.h), (rs.w, os.w)] {
                let idx: Vec<usize> = (0..dim_out.min(4096)).map(|o| src(o, dim_in, dim_out)).collect();
                assert!(idx.iter().all(|&i| i < dim_in), "resize index out of range");
                assert!(idx.windows(2).all(|p| p[0] <= p[1]), "resize indices not monotone");
                if dim_in == dim_out && !rp.align_corners {
                    assert!(
                        idx.iter().enumerate().all(|(o, &i)| o == i),
                        "resize to the same size is not the identity"
                    );
                }
            }
            for b in 0..os.n {
                for y in 0..os.h {
                    let iy = src(y, rs.h, os.h);
                    for x in 0..os.w {
                        let ix = src(x, rs.w, os.w);
                        let o = ((b * os.h + y) * os.w + x) * os.c;
                        let i = ((b * rs.h + iy) * rs.w + ix) * rs.c;
                        assert_eq!(rout[o..o + os.c], rx[i..i + rs.c], "resize copies the wrong pixel");
                    }
                }
            }
        }
        Err(_) => assert!(rout.iter().all(|&v| v == 0x5a), "resize wrote output before failing"),
    }
    ok
}

/// Post-processing: the class map equals a naive argmax, peaks equal their definition (checked by
/// brute force over every cell), a decoded box lies inside the image; nothing panics.
pub fn check_postprocess(data: &[u8]) -> bool {
    use microcnn::postprocess::{argmax_map_i8, decode_box, find_peaks_i8, BoxFormat, PeakParams};
    let mut inp = Input::new(data);
    let classes = if inp.hostile() { inp.dim() } else { 1 + inp.byte() as usize % 12 };
    let (h, w) = (1 + inp.byte() as usize % 9, 1 + inp.byte() as usize % 9);
    let want = h.checked_mul(w).and_then(|p| p.checked_mul(classes)).unwrap_or(usize::MAX);
    let heat = inp.buffer(want);
    let mut map = vec![0xa5u8; if inp.byte() < 16 { h * w + 1 } else { h * w }];
    let before = map.clone();
    let ok = match argmax_map_i8(&heat, classes, &mut map) {
        Ok(()) => {
            for (px, &m) in heat.chunks_exact(classes).zip(&map) {
                let best = (0..classes).rev().max_by_key(|&c| px[c]).unwrap();
                assert_eq!(m as usize, best, "argmax map is not the first best class");
            }
            true
        }
        Err(_) => {
            assert_eq!(map, before, "argmax map wrote output before failing");
            false
        }
    };
    let p = PeakParams {
        threshold: inp.i8(),
        background: if inp.bool() { Some(if inp.hostile() { inp.small() } else { 0 }) } else { None },
    };
    let shape = Shape::image(h, w, classes);
    if let Ok(r) = find_peaks_i8::<4>(&heat, shape, &p) {
        let at = |y: usize, x: usize, k: usize| heat[(y * w + x) * classes + k];
        let mut all = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let px = &heat[(y * w + x) * classes..][..classes];
                let class = (0..classes).rev().max_by_key(|&c| px[c]).unwrap();
                let s = px[class];
                let local = (0..h).all(|ny| {
                    (0..w).all(|nx| {
                        ny.abs_diff(y) > 1
                            || nx.abs_diff(x) > 1
                            || at(ny, nx, class) < s
                            || (at(ny, nx, class) == s && (ny, nx) >= (y, x))
                    })
                });
                if Some(class) != p.background && s >= p.threshold && local {
                    all.push((y, x, class, s));
                }
            }
        }
        assert_eq!(r.total, all.len(), "peak count differs from the definition");
        all.sort_by_key(|&(y, x, _, s)| (std::cmp::Reverse(s), y, x));
        let got: Vec<_> = r.peaks.iter().map(|q| (q.y, q.x, q.class, q.score)).collect();
        assert_eq!(got, all.into_iter().take(4).collect::<Vec<_>>(), "kept peaks differ from the definition");
    }
    let q = [inp.i8(), inp.i8(), inp.i8(), inp.i8()];
    let (bw, bh) = (inp.dim(), inp.dim());
    let fmt = if inp.bool() { BoxFormat::CxCyWh } else { BoxFormat::Xyxy };
    if let Ok(b) = decode_box(q, inp.f32(), inp.i8(), fmt, bw, bh) {
        assert!(b.x0 >= 0.0 && b.x0 <= b.x1 && b.x1 <= bw as f32, "box outside the image: {b:?}");
        assert!(b.y0 >= 0.0 && b.y0 <= b.y1 && b.y1 <= bh as f32, "box outside the image: {b:?}");
        let iou = b.iou(&b);
        assert!(iou == 0.0 || (iou - 1.0).abs() < 1e-5, "IoU with itself is {iou}");
    }
    ok
}
