//! Transposed convolution (learned upsampling): the adjoint of a convolution. Its forward pass is
//! a convolution's input-gradient computation (GEMM, then col2im onto the output) and its input
//! gradient is that convolution's forward pass (im2col of the output gradient, then GEMM), over
//! the geometry of a convolution that reads the transposed convolution's output with stride `S`
//! and the runtime's crops as padding — so output row `i·S + k − top` takes input row `i` through
//! tap `k`, as in the int8 kernel.

use super::conv::{col2im, im2col};
use super::{bias_grad, gemm, weight_and_bias, Op, Pass};
use crate::model::spec::{transpose_params, LayerSpec, Resolved};
use crate::rng::Rng;
use crate::train::net::Param;
use microcnn::shape::{AxisGeometry, Geometry};
use microcnn::{Padding, Shape, Window};

/// A transposed convolution's reusable buffers.
#[derive(Clone, Debug, Default)]
pub struct TransposeConv {
    /// The weights as a `[C_in][k_h·k_w·C_out]` matrix (the stored layout is OHWI).
    wc: Vec<f32>,
    /// One image's `[P_in][k_h·k_w·C_out]` column matrix.
    col: Vec<f32>,
}

/// Kernel size, the equivalent convolution's window and geometry.
fn geometry(r: &Resolved) -> ((usize, usize), Window, Geometry) {
    let LayerSpec::TransposeConv { kernel, stride, padding, .. } = &r.spec else {
        unreachable!("a transposed convolution")
    };
    let ((kh, kw), (sh, sw)) = (kernel.hw(), stride.hw());
    let (i, o) = (r.input, r.output);
    let p = transpose_params((sh, sw), *padding, o.h, o.w);
    let filter = Shape::new(o.c, kh, kw, i.c);
    let (top, left) = microcnn::transpose_conv::transpose_conv_crops(&p, i, filter).expect("validated");
    let win = Window {
        kernel_h: kh,
        kernel_w: kw,
        stride_h: sh,
        stride_w: sw,
        dilation_h: 1,
        dilation_w: 1,
        padding: Padding::Valid,
    };
    let axis = |out, pad_before| AxisGeometry { out, pad_before, pad_after: 0 };
    ((kh, kw), win, Geometry { y: axis(i.h, top), x: axis(i.w, left) })
}

impl TransposeConv {
    /// Rebuilds `wc[ic][t·C_out + oc] = w[oc][t][ic]` from the OHWI weights.
    fn permute(&mut self, w: &[f32], taps: usize, ic: usize, oc: usize) {
        self.wc.resize(w.len(), 0.0);
        for (o, filter) in w.chunks_exact(taps * ic).enumerate() {
            for (t, px) in filter.chunks_exact(ic).enumerate() {
                for (c, &v) in px.iter().enumerate() {
                    self.wc[c * taps * oc + t * oc + o] = v;
                }
            }
        }
    }
}

impl Op for TransposeConv {
    fn params(&self, r: &Resolved, rng: &mut Rng) -> Vec<Param> {
        let ((kh, kw), _, _) = geometry(r);
        let (ic, oc) = (r.input.c, r.output.c);
        // Each output sums about kh·kw·ic / (sh·sw) products; He over the taps that reach it.
        let LayerSpec::TransposeConv { stride, .. } = &r.spec else { unreachable!() };
        let (sh, sw) = stride.hw();
        let fan_in = (kh.div_ceil(sh) * kw.div_ceil(sw) * ic).max(1);
        weight_and_bias(r, vec![oc, kh, kw, ic], fan_in, oc, rng)
    }

    fn forward(&mut self, p: Pass, x: &[f32], _train: bool, _rng: &mut Rng) -> Vec<f32> {
        let (i, o) = (p.r.input, p.r.output);
        let ((kh, kw), win, g) = geometry(p.r);
        let (taps, pix) = (kh * kw, i.h * i.w);
        let kc = taps * o.c;
        self.permute(&p.params[0].value, taps, i.c, o.c);
        let mut y = vec![0.0f32; p.n * o.len()];
        self.col.resize(pix * kc, 0.0);
        for (xb, yb) in x.chunks_exact(i.len()).zip(y.chunks_exact_mut(o.len())) {
            // col[P_in × K·C_out] = X[P_in × C_in] · Wc[C_in × K·C_out], scattered onto the output.
            gemm(pix, i.c, kc, (xb, i.c as isize, 1), (&self.wc, kc as isize, 1), 0.0, &mut self.col);
            col2im(&self.col, o, &win, &g, i, yb);
            super::add_bias(yb, &p.params[1].value);
        }
        y
    }

    fn backward(&mut self, p: Pass, x: &[f32], dy: &[f32], need_dx: bool) -> Vec<f32> {
        let (i, o) = (p.r.input, p.r.output);
        let ((kh, kw), win, g) = geometry(p.r);
        let (taps, pix) = (kh * kw, i.h * i.w);
        let kc = taps * o.c;
        self.permute(&p.params[0].value, taps, i.c, o.c);
        let (wp, bp) = p.params.split_at_mut(1);
        bias_grad(&mut bp[0].grad, dy);
        let mut dwc = vec![0.0f32; i.c * kc];
        let mut dx = vec![0.0f32; p.n * i.len()];
        self.col.resize(pix * kc, 0.0);
        for ((xb, dyb), dxb) in x.chunks_exact(i.len()).zip(dy.chunks_exact(o.len())).zip(dx.chunks_exact_mut(i.len()))
        {
            // The output gradient gathered per input pixel and tap (the transposed scatter).
            im2col(dyb, o, &win, &g, i, &mut self.col);
            // dWc[C_in × K·C_out] += Xᵀ · col; dX[P_in × C_in] = col · Wcᵀ.
            gemm(i.c, pix, kc, (xb, 1, i.c as isize), (&self.col, kc as isize, 1), 1.0, &mut dwc);
            if need_dx {
                gemm(pix, kc, i.c, (&self.col, kc as isize, 1), (&self.wc, 1, kc as isize), 0.0, dxb);
            }
        }
        // Back to the OHWI layout of the weights.
        for (o_, filter) in wp[0].grad.chunks_exact_mut(taps * i.c).enumerate() {
            for (t, px) in filter.chunks_exact_mut(i.c).enumerate() {
                for (c, g) in px.iter_mut().enumerate() {
                    *g += dwc[c * kc + t * o.c + o_];
                }
            }
        }
        dx
    }
}

#[cfg(test)]
mod tests {
    use super::super::assert_gradients;
    use crate::model::spec::ModelSpec;
    use crate::rng::Rng;
    use crate::train::net::Net;

    #[test]
    fn gradients_transpose_conv() {
        // 2×2 / 2 doubling, 3×3 / 2 SAME (overlapping taps, a crop before), 3×3 / 1 valid,
        // rectangular kernel and stride with explicit crops.
        for body in [
            "[[layers]]\ntype = \"transpose_conv\"\nfilters = 3\nkernel = 2\nstride = 2\nactivation = \"relu\"",
            "[[layers]]\ntype = \"transpose_conv\"\nfilters = 2\nkernel = 3\nstride = 2\npadding = \"same\"",
            "[[layers]]\ntype = \"transpose_conv\"\nfilters = 2\nkernel = 3",
            "[[layers]]\ntype = \"transpose_conv\"\nfilters = 2\nkernel = [3, 2]\nstride = [2, 3]\npadding = [1, 0, 0, 1]",
        ] {
            assert_gradients(body, [4, 3, 2]);
        }
    }

    /// The float layer is the runtime's int8 kernel before rounding: with weights, inputs and
    /// bias on the quantization grid (scale 1, zero point 0) both give the same integers.
    #[test]
    fn float_forward_is_the_int8_kernel() {
        use microcnn::conv::ConvWeights;
        use microcnn::quant::Requant;
        for (kernel, stride, padding) in
            [(2, 2, "\"valid\""), (3, 2, "\"same\""), (3, 1, "\"valid\""), (4, 2, "[1, 1, 1, 1]")]
        {
            let toml = format!("name = \"t\"\ninput = [3, 4, 2]\ntask = \"segment\"\n[[layers]]\ntype = \"transpose_conv\"\nfilters = 3\nkernel = {kernel}\nstride = {stride}\npadding = {padding}\n");
            let mut net = Net::new(ModelSpec::from_toml(&toml).unwrap(), 1).unwrap();
            let mut rng = Rng::new(7);
            let ints = |n: usize, rng: &mut Rng| -> Vec<f32> { (0..n).map(|_| rng.range(-2.0, 2.0).round()).collect() };
            let l = &mut net.layers[0];
            let (i, o) = (l.r.input, l.r.output);
            l.params[0].value = ints(l.params[0].value.len(), &mut rng);
            l.params[1].value = ints(o.c, &mut rng);
            let x = ints(i.len(), &mut rng);
            let y = l.forward(x.clone(), 1, false, &mut Rng::new(0));
            let LayerSpec::TransposeConv { stride: s, padding: pad, .. } = &l.r.spec else { unreachable!() };
            let p = microcnn::transpose_conv::TransposeConvParams {
                activation: microcnn::quant::ActivationRange::NONE,
                ..super::transpose_params(s.hw(), *pad, o.h, o.w)
            };
            let w8: Vec<i8> = l.params[0].value.iter().map(|&v| v as i8).collect();
            let b32: Vec<i32> = l.params[1].value.iter().map(|&v| v as i32).collect();
            // Multiplier 2^30 with shift 1: requantization by 1.0 (the sums stay far inside int8).
            let rq = vec![Requant { multiplier: 1 << 30, shift: 1 }; o.c];
            let d = &l.params[0].dims;
            let w = ConvWeights {
                filter: &w8,
                filter_shape: microcnn::Shape::new(d[0], d[1], d[2], d[3]),
                bias: Some(&b32),
                requant: &rq,
            };
            let x8: Vec<i8> = x.iter().map(|&v| v as i8).collect();
            let mut y8 = vec![0i8; o.len()];
            microcnn::transpose_conv::transpose_conv2d_i8(&p, &w, &x8, microcnn::Shape::new(1, i.h, i.w, i.c), &mut y8)
                .unwrap();
            let yf: Vec<i8> = y.iter().map(|&v| v.clamp(-128.0, 127.0) as i8).collect();
            assert_eq!(yf, y8, "kernel {kernel} stride {stride} padding {padding}");
        }
    }

    use crate::model::spec::LayerSpec;
}
