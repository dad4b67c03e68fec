#!/usr/bin/env python3
"""Generate the golden int8 kernel cases in tests/golden/ from TensorFlow Lite Micro.

For each named case this script builds a one-layer Keras model, converts it to a fully int8
.tflite flatbuffer with a representative data set, reads every parameter back out of the
flatbuffer (scales, zero points, weights, biases, strides, padding, fused activation), runs
random int8 inputs through the TensorFlow Lite Micro interpreter (the MCU reference; CMSIS-NN
is bit-exact with it) and writes inputs, parameters and outputs as JSON.

    pip install tensorflow-cpu tflite-micro 'numpy<2'
    python3 tools/gen_golden.py            # rewrites tests/golden/*.json

The Rust tests (tests/golden.rs) and the QEMU firmware read the JSON; neither needs Python.
"""
import datetime
import json
import os
import sys
import tempfile
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tensorflow.lite.python import schema_py_generated as schema  # noqa: E402
from tflite_micro.python.tflite_micro import runtime  # noqa: E402
import tflite_micro  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden")
OPS = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
ACT = {0: "none", 1: "relu", 3: "relu6"}
PAD = {0: "same", 1: "valid"}


def convert(model_fn, input_shapes, rep_fn):
    specs = [tf.TensorSpec(s, tf.float32) for s in input_shapes]
    fn = tf.function(model_fn, input_signature=specs)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()])
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep_fn
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    return conv.convert()


def tensor_info(model, sg, idx):
    t = sg.tensors[idx]
    q = t.quantization
    info = {"shape": [int(d) for d in t.shape]}
    if q is not None and q.scale is not None:
        info["scales"] = [float(np.float32(s)) for s in q.scale]
        info["zero_points"] = [int(z) for z in q.zeroPoint]
    buf = model.buffers[t.buffer].data
    if buf is not None and len(buf):
        dt = {schema.TensorType.INT8: np.int8, schema.TensorType.INT32: np.int32}[t.type]
        info["data"] = np.frombuffer(bytes(bytearray(buf)), dtype=dt).tolist()
    return info


def describe(flatbuffer):
    model = schema.ModelT.InitFromPackedBuf(bytearray(flatbuffer), 0)
    sg = model.subgraphs[0]
    ops = []
    for op in sg.operators:
        oc = model.operatorCodes[op.opcodeIndex]
        code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
        ops.append((OPS[code], op))
    names = [n for n, _ in ops]
    assert len(ops) == 1, f"expected one op, converter produced {names}"
    name, op = ops[0]
    d = {"tflite_op": name}
    d["inputs"] = [tensor_info(model, sg, i) if i >= 0 else None for i in op.inputs]
    d["output"] = tensor_info(model, sg, op.outputs[0])
    o = op.builtinOptions
    if o is not None:
        for field in ["padding", "strideH", "strideW", "dilationHFactor", "dilationWFactor", "filterHeight",
                      "filterWidth", "depthMultiplier", "fusedActivationFunction", "beta", "keepDims"]:
            if hasattr(o, field):
                v = getattr(o, field)
                if field == "padding":
                    v = PAD[v]
                elif field == "fusedActivationFunction":
                    v = ACT[v]
                elif field == "beta":
                    v = float(v)
                else:
                    v = int(v)
                d[field] = v
    return d


def run_tflm(flatbuffer, inputs):
    with tempfile.NamedTemporaryFile(suffix=".tflite", delete=False) as f:
        f.write(flatbuffer)
        path = f.name
    try:
        interp = runtime.Interpreter.from_file(path)
        outs = []
        for sample in inputs:
            for i, x in enumerate(sample):
                interp.set_input(x, i)
            interp.invoke()
            outs.append(np.array(interp.get_output(0)).astype(np.int32).reshape(-1).tolist())
            interp.reset()
        return outs
    finally:
        os.unlink(path)


def quantize(x, scale, zp):
    q = np.floor(x / scale + 0.5) + zp  # any rounding: these are just test inputs
    return np.clip(q, -128, 127).astype(np.int8)


class Case:
    def __init__(self, name, layer_fn, shapes, low=-1.0, high=1.0, test_gain=1.0, dup_channel=False, samples=3):
        self.name, self.layer_fn, self.shapes = name, layer_fn, shapes
        self.low, self.high, self.test_gain, self.dup = low, high, test_gain, dup_channel
        self.samples = samples

    def data(self, rng, n, gain=1.0):
        out = []
        for _ in range(n):
            xs = []
            for s in self.shapes:
                x = rng.uniform(self.low, self.high, size=s).astype(np.float32) * gain
                if self.dup:
                    x[..., 1] = x[..., 0]
                xs.append(x)
            out.append(xs)
        return out


def build(case, seed):
    rng = np.random.default_rng(seed)
    tf.keras.utils.set_random_seed(seed)
    layer = case.layer_fn()
    ins = [tf.keras.Input(batch_size=s[0], shape=s[1:]) for s in case.shapes]
    out = layer(ins if len(ins) > 1 else ins[0])
    model = tf.keras.Model(ins, out)
    # Non-zero biases, and for the positive-shift case weights that nearly cancel.
    for w in model.weights:
        v = w.numpy()
        if "bias" in w.name:
            w.assign(rng.uniform(-0.5, 0.5, v.shape).astype(np.float32))
        elif case.dup and v.ndim == 4:
            v[:, :, 1, :] = -v[:, :, 0, :] * 0.98
            w.assign(v)
    calib = case.data(rng, 64)

    def rep():
        for xs in calib:
            yield xs

    fb = convert(lambda *a: model(list(a) if len(a) > 1 else a[0]), case.shapes, rep)
    desc = describe(fb)
    float_tests = case.data(rng, case.samples, case.test_gain)
    q_inputs = []
    for xs in float_tests:
        sample = []
        for t, x in zip(desc["inputs"], xs):
            sample.append(quantize(x, t["scales"][0], t["zero_points"][0]))
        q_inputs.append(sample)
    # Make the extremes appear: the first sample saturates one element each way.
    for arr in q_inputs[0]:
        flat = arr.reshape(-1)
        flat[0], flat[-1] = -128, 127
    expected = run_tflm(fb, q_inputs)
    desc["samples"] = [{"inputs": [x.reshape(-1).astype(np.int32).tolist() for x in s], "expected": e}
                       for s, e in zip(q_inputs, expected)]
    return desc


L = tf.keras.layers
CASES = [
    # Convolution: kernels 1x1/3x3/5x5/rectangular, strides 1/2/3, same/valid, odd/even sizes.
    Case("conv_1x1_same", lambda: L.Conv2D(5, 1, padding="same"), [(1, 6, 6, 3)]),
    Case("conv_1x1_stride2_valid_odd", lambda: L.Conv2D(7, 1, strides=2, padding="valid"), [(1, 9, 9, 6)]),
    Case("conv_1x1_stride2_same_even", lambda: L.Conv2D(3, 1, strides=2, padding="same"), [(1, 8, 8, 5)]),
    Case("conv_3x3_same_odd_relu", lambda: L.Conv2D(4, 3, padding="same", activation="relu"), [(1, 7, 7, 3)]),
    Case("conv_3x3_same_even_stride2", lambda: L.Conv2D(6, 3, strides=2, padding="same"), [(1, 8, 8, 2)]),
    Case("conv_3x3_valid_stride2_odd", lambda: L.Conv2D(5, 3, strides=2, padding="valid"), [(1, 9, 9, 5)]),
    Case("conv_3x3_same_stride3", lambda: L.Conv2D(3, 3, strides=3, padding="same"), [(1, 10, 10, 3)]),
    Case("conv_5x5_valid_relu", lambda: L.Conv2D(6, 5, padding="valid", activation="relu"), [(1, 12, 12, 1)]),
    Case("conv_5x5_same_stride3_relu6", lambda: L.Conv2D(5, 5, strides=3, padding="same", activation="relu6"),
         [(1, 11, 11, 3)]),
    Case("conv_rect_3x1_stride2x1", lambda: L.Conv2D(4, (3, 1), strides=(2, 1), padding="same"), [(1, 9, 6, 3)]),
    Case("conv_rect_1x5_valid", lambda: L.Conv2D(3, (1, 5), padding="valid"), [(1, 5, 9, 2)]),
    Case("conv_dilation2_valid", lambda: L.Conv2D(4, 3, dilation_rate=2, padding="valid"), [(1, 11, 11, 2)]),
    Case("conv_dilation2_same", lambda: L.Conv2D(3, 3, dilation_rate=2, padding="same"), [(1, 8, 8, 3)]),
    Case("conv_zp_min_positive_inputs", lambda: L.Conv2D(5, 3, padding="same", activation="relu"), [(1, 6, 6, 3)],
         low=0.0, high=6.0),
    Case("conv_zp_max_negative_inputs", lambda: L.Conv2D(5, 3, padding="valid"), [(1, 6, 6, 3)], low=-4.0, high=0.0),
    Case("conv_positive_shift", lambda: L.Conv2D(3, 1, padding="valid"), [(1, 5, 5, 2)], dup_channel=True),
    Case("conv_saturating", lambda: L.Conv2D(4, 3, padding="same"), [(1, 6, 6, 3)], test_gain=4.0),
    Case("conv_batch2", lambda: L.Conv2D(3, 3, strides=2, padding="same"), [(2, 7, 7, 2)]),
    # Windows of K_h·K_w·C_in > 512 taps: more than one column block of the blocked kernels,
    # odd channel counts, every padding and a dilation.
    Case("conv_3x3_k576_same", lambda: L.Conv2D(6, 3, padding="same"), [(1, 5, 5, 64)]),
    Case("conv_5x5_k600_17ch_same", lambda: L.Conv2D(17, 5, padding="same"), [(1, 5, 5, 24)]),
    Case("conv_7x7_k637_same_relu", lambda: L.Conv2D(5, 7, padding="same", activation="relu"), [(1, 8, 8, 13)]),
    Case("conv_5x5_k1250_stride2_valid_relu6",
         lambda: L.Conv2D(5, 5, strides=2, padding="valid", activation="relu6"), [(1, 7, 7, 50)]),
    Case("conv_3x3_k1539_dilation2_same", lambda: L.Conv2D(3, 3, dilation_rate=2, padding="same"), [(1, 4, 4, 171)]),
    Case("conv_1x1_k700_stride2", lambda: L.Conv2D(3, 1, strides=2, padding="valid"), [(1, 3, 3, 700)]),
    Case("dense_k1100", lambda: L.Dense(6), [(1, 1100)]),
    # Depthwise with multipliers 1 and 2.
    Case("dw_3x3_m1_same", lambda: L.DepthwiseConv2D(3, padding="same"), [(1, 7, 7, 5)]),
    Case("dw_3x3_m2_valid_stride2", lambda: L.DepthwiseConv2D(3, strides=2, depth_multiplier=2, padding="valid"),
         [(1, 9, 9, 3)]),
    Case("dw_5x5_m1_same_stride3_relu", lambda: L.DepthwiseConv2D(5, strides=3, padding="same", activation="relu"),
         [(1, 11, 11, 6)]),
    Case("dw_rect_3x5_m2_same_even", lambda: L.DepthwiseConv2D((3, 5), depth_multiplier=2, padding="same"),
         [(1, 8, 10, 3)]),
    Case("dw_3x3_relu6_saturating", lambda: L.DepthwiseConv2D(3, padding="same", activation="relu6"),
         [(1, 6, 6, 4)], test_gain=3.0),
    Case("dw_dilation2", lambda: L.DepthwiseConv2D(3, dilation_rate=2, padding="valid"), [(1, 9, 9, 2)]),
    # Pooling.
    Case("maxpool_2x2_s2_valid", lambda: L.MaxPooling2D(2, 2, padding="valid"), [(1, 8, 8, 3)]),
    Case("maxpool_3x3_s2_same_odd", lambda: L.MaxPooling2D(3, 2, padding="same"), [(1, 7, 7, 5)]),
    Case("avgpool_2x2_s2_valid", lambda: L.AveragePooling2D(2, 2, padding="valid"), [(1, 8, 8, 3)]),
    Case("avgpool_3x3_s1_same", lambda: L.AveragePooling2D(3, 1, padding="same"), [(1, 6, 6, 4)]),
    Case("avgpool_3x3_s3_same_even", lambda: L.AveragePooling2D(3, 3, padding="same"), [(1, 10, 10, 2)]),
    Case("global_avg_pool", lambda: L.GlobalAveragePooling2D(keepdims=True), [(1, 5, 5, 6)]),
    Case("global_avg_pool_7x7", lambda: L.GlobalAveragePooling2D(keepdims=True), [(1, 7, 7, 10)], low=-3, high=1),
    Case("global_avg_pool_4x6_positive", lambda: L.GlobalAveragePooling2D(keepdims=True), [(1, 4, 6, 5)],
         low=0.0, high=2.0),
    # Dense.
    Case("dense_basic", lambda: L.Dense(7), [(1, 20)]),
    Case("dense_relu_wide", lambda: L.Dense(10, activation="relu"), [(1, 147)]),
    Case("dense_zp_min", lambda: L.Dense(5), [(1, 33)], low=0.0, high=3.0),
    # Add of two tensors with different scales.
    Case("add_diff_scales", lambda: L.Add(), [(1, 4, 4, 3), (1, 4, 4, 3)]),
    Case("add_batch2_wide_ranges", lambda: L.Add(), [(2, 3, 5, 7), (2, 3, 5, 7)], low=-6.0, high=2.0),
    Case("global_avg_pool_14x14", lambda: L.GlobalAveragePooling2D(keepdims=True), [(1, 14, 14, 8)], low=-1, high=5),
    # Softmax, standalone activations.
    Case("softmax_10", lambda: L.Softmax(), [(1, 10)], low=-4.0, high=4.0),
    Case("softmax_wide_range", lambda: L.Softmax(), [(1, 13)], low=-30.0, high=30.0),
    Case("softmax_rows", lambda: L.Softmax(), [(1, 3, 7)], low=-2.0, high=2.0),
    Case("relu_standalone", lambda: L.ReLU(), [(1, 4, 4, 3)], low=-2.0, high=3.0),
    Case("relu6_standalone", lambda: L.ReLU(max_value=6.0), [(1, 4, 4, 3)], low=-3.0, high=9.0),
]


def main():
    only = set(sys.argv[1:])
    os.makedirs(OUT, exist_ok=True)
    for case in CASES:
        if only and case.name not in only:
            continue
        seed = zlib.crc32(case.name.encode()) % 1_000_000  # stable per name: regenerating one case reproduces it
        d = build(case, seed)
        d["name"] = case.name
        d["provenance"] = (
            f"tools/gen_golden.py case {case.name!r} seed {seed}: one-layer Keras model converted to "
            f"full int8 by tensorflow {tf.__version__}, outputs from tflite-micro {tflite_micro.__version__} "
            f"(TFLM reference kernels) on {datetime.date.today().isoformat()}. Regenerate: "
            f"pip install tensorflow-cpu tflite-micro 'numpy<2' && python3 tools/gen_golden.py {case.name}")
        with open(os.path.join(OUT, case.name + ".json"), "w") as f:
            json.dump(d, f, separators=(",", ":"))
            f.write("\n")
        print(f"{case.name:34s} {d['tflite_op']}")


if __name__ == "__main__":
    main()
