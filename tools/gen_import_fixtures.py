#!/usr/bin/env python3
"""Make the `.tflite` fixtures for `microcnn import` (host-train/tests/fixtures/tflite/).

Each fixture is a small Keras network converted to full int8 by the TF converter, saved as
NAME.tflite, with NAME.json holding TensorFlow Lite Micro's outputs on seeded int8 inputs
(uniform random, extreme −128/127, smooth ramps) and a provenance line. The Rust tests
(host-train/tests/import.rs) import each file and compare every output element; they need no
Python.

    pip install tensorflow-cpu tflite-micro
    python3 tools/gen_import_fixtures.py            # rewrites every fixture
    python3 tools/gen_import_fixtures.py NAME...    # only these
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
from tflite_micro.python.tflite_micro import runtime  # noqa: E402
import tflite_micro  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "host-train", "tests", "fixtures", "tflite")
L = tf.keras.layers


def cnn_residual():
    x = inp = tf.keras.Input((16, 16, 3), batch_size=1)
    x = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    y = L.DepthwiseConv2D(3, padding="same", activation="relu6")(x)
    y = L.Conv2D(8, 1)(y)
    x = L.Add()([x, y])
    x = L.MaxPooling2D(2)(x)
    x = L.Conv2D(12, 3, strides=2, padding="valid", activation="relu")(x)
    x = L.AveragePooling2D(3, strides=1, padding="same")(x)
    x = L.GlobalAveragePooling2D(keepdims=True)(x)
    x = L.Flatten()(x)
    x = L.Dense(6)(x)
    x = L.Softmax()(x)
    return tf.keras.Model(inp, x)


def lenet_valid():
    x = inp = tf.keras.Input((28, 28, 1), batch_size=1)
    x = L.Conv2D(6, 5, activation="relu")(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Conv2D(16, 5, activation="relu")(x)
    x = L.MaxPooling2D(2)(x)
    x = L.Flatten()(x)
    x = L.Dense(32, activation="relu")(x)
    x = L.Dense(10)(x)
    return tf.keras.Model(inp, x)


def dscnn_float_io():
    """A small DS-CNN keyword-spotter shape on a 49×10 spectrogram, converted with float input
    and output: the converter adds QUANTIZE and DEQUANTIZE at the edges."""
    x = inp = tf.keras.Input((49, 10, 1), batch_size=1)
    x = L.Conv2D(16, (10, 4), strides=(2, 2), padding="same", activation="relu")(x)
    for _ in range(2):
        x = L.DepthwiseConv2D(3, padding="same", activation="relu")(x)
        x = L.Conv2D(16, 1, activation="relu")(x)
    x = L.AveragePooling2D((25, 5))(x)
    x = L.Flatten()(x)
    x = L.Dense(12)(x)
    x = L.Softmax()(x)
    return tf.keras.Model(inp, x)


def resnet8():
    """MLPerf Tiny's ResNet-8 image classifier shape on 32×32×3: three stacks, the second and third
    with a strided 1×1 convolution on the shortcut (a branch that is not a chain), folded
    batch norm."""
    x = inp = tf.keras.Input((32, 32, 3), batch_size=1)
    x = L.Conv2D(16, 3, padding="same")(x)
    x = L.BatchNormalization()(x)
    x = L.Activation("relu")(x)
    for filters, stride in [(16, 1), (32, 2), (64, 2)]:
        y = L.Conv2D(filters, 3, strides=stride, padding="same")(x)
        y = L.BatchNormalization()(y)
        y = L.Activation("relu")(y)
        y = L.Conv2D(filters, 3, padding="same")(y)
        y = L.BatchNormalization()(y)
        if stride != 1:
            x = L.Conv2D(filters, 1, strides=stride, padding="same")(x)
        x = L.Add()([x, y])
        x = L.Activation("relu")(x)
    x = L.AveragePooling2D(8)(x)
    x = L.Flatten()(x)
    x = L.Dense(10)(x)
    x = L.Softmax()(x)
    return tf.keras.Model(inp, x)


def dag_concat_pad():
    """Branches and merges beyond a residual: an inception-style block (three branches joined by
    CONCATENATION on channels), a ZeroPadding2D (PAD) before a VALID convolution, asymmetric
    padding, a concatenation on rows, a second use of an early tensor late in the graph."""
    x = inp = tf.keras.Input((16, 16, 4), batch_size=1)
    stem = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    a = L.Conv2D(4, 1, activation="relu")(stem)
    b = L.Conv2D(6, 3, padding="same", activation="relu")(stem)
    c = L.MaxPooling2D(3, strides=1, padding="same")(stem)
    x = L.Concatenate()([a, b, c])
    x = L.ZeroPadding2D(((1, 2), (0, 1)))(x)
    x = L.Conv2D(8, 3, strides=2, activation="relu")(x)
    skip = L.Conv2D(8, 1, strides=2, padding="same")(stem)
    x = L.Concatenate(axis=1)([x, skip])
    x = L.DepthwiseConv2D(3, padding="same")(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(5)(x)
    return tf.keras.Model(inp, x)


def mobilenet_v1_025():
    """MobileNetV1 with width 0.25 on 96×96×3 (MLPerf Tiny's visual wake words shape), as
    keras.applications builds it: ZeroPadding2D before each strided depthwise convolution,
    ReLU6, a 1×1 convolution as classifier, reshape, softmax."""
    return tf.keras.applications.MobileNet(input_shape=(96, 96, 3), alpha=0.25, weights=None, classes=2)


def fc_autoencoder():
    """MLPerf Tiny's anomaly-detection autoencoder shape: 640 → 4×128 → 8 → 4×128 → 640, dense
    layers with folded batch norm and ReLU."""
    x = inp = tf.keras.Input((640,), batch_size=1)
    for units in [128, 128, 128, 128, 8, 128, 128, 128, 128]:
        x = L.Dense(units)(x)
        x = L.BatchNormalization()(x)
        x = L.Activation("relu")(x)
    x = L.Dense(640)(x)
    return tf.keras.Model(inp, x)


def squash():
    """LOGISTIC and TANH between convolutions, and a binary classifier's sigmoid output."""
    x = inp = tf.keras.Input((12, 12, 3), batch_size=1)
    x = L.Conv2D(8, 3, padding="same")(x)
    x = L.Activation("tanh")(x)
    x = L.DepthwiseConv2D(3, padding="same")(x)
    x = L.Activation("sigmoid")(x)
    x = L.Conv2D(4, 1)(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(1)(x)
    x = L.Activation("sigmoid")(x)
    return tf.keras.Model(inp, x)


def logistic_codes():
    """LOGISTIC alone on 256 values: the ramp sample is every int8 code."""
    inp = tf.keras.Input((256,), batch_size=1)
    return tf.keras.Model(inp, L.Activation("sigmoid")(L.Dense(256)(inp)))


def tanh_codes():
    """TANH alone on 256 values (after a dense layer, so its input scale is the converter's)."""
    inp = tf.keras.Input((256,), batch_size=1)
    return tf.keras.Model(inp, L.Activation("tanh")(L.Dense(256)(inp)))


def requant_leaky():
    """LEAKY_RELU, and a concatenation of branches with very different ranges (the converter
    gives the concatenation one scale and requantizes an operand with an int8→int8 QUANTIZE)."""
    x = inp = tf.keras.Input((10, 10, 3), batch_size=1)
    a = L.Conv2D(4, 3, padding="same")(x)
    a = L.LeakyReLU(negative_slope=0.2)(a)
    b = L.Conv2D(4, 1)(x)
    b = L.Lambda(lambda t: t * 20.0)(b)
    x = L.Concatenate()([a, b])
    x = L.Conv2D(6, 3, strides=2, padding="same")(x)
    x = L.LeakyReLU(negative_slope=0.01)(x)
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(3)(x)
    return tf.keras.Model(inp, x)


def broadcast_ops():
    """ADD, SUB and MUL with broadcasting: a squeeze-and-excitation block (MUL of an H×W×C map by a
    1×1×C gate), a per-channel constant added and multiplied after a ReLU, a row vector
    subtracted, Keras Subtract of two maps."""
    x = inp = tf.keras.Input((8, 8, 6), batch_size=1)
    x = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    s = L.GlobalAveragePooling2D(keepdims=True)(x)
    s = L.Conv2D(4, 1, activation="relu")(s)
    s = L.Conv2D(8, 1, activation="sigmoid")(s)
    x = L.Multiply()([x, s])
    c = np.linspace(-0.5, 0.7, 8).astype(np.float32)
    x = L.Lambda(lambda t: t + c)(x)
    x = L.ReLU()(x)
    x = L.Lambda(lambda t: t * (1.0 + c))(x)
    row = L.Conv2D(8, (8, 1), padding="valid")(x)  # 1×8×8: broadcast over rows
    y = L.Subtract()([x, row])
    z = L.Conv2D(8, 1)(x)
    x = L.Subtract()([y, z])
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(4)(x)
    return tf.keras.Model(inp, x)


def hard_swish_codes():
    """HARD_SWISH alone on 256 values (after a dense layer, so its input scale is the
    converter's): every int8 code in the ramp sample."""
    inp = tf.keras.Input((256,), batch_size=1)
    return tf.keras.Model(inp, L.Activation("hard_swish")(L.Dense(256)(inp)))


def mobilenet_v3_block():
    """A MobileNetV3-style block: expansion 1×1 + hard swish, depthwise + hard swish, squeeze-and-
    excitation with a hard sigmoid gate (MUL), projection, residual ADD."""
    x = inp = tf.keras.Input((12, 12, 8), batch_size=1)
    y = L.Conv2D(24, 1)(x)
    y = L.Activation("hard_swish")(y)
    y = L.DepthwiseConv2D(3, padding="same")(y)
    y = L.Activation("hard_swish")(y)
    s = L.GlobalAveragePooling2D(keepdims=True)(y)
    s = L.Conv2D(8, 1, activation="relu")(s)
    s = L.Conv2D(24, 1, activation="hard_sigmoid")(s)
    y = L.Multiply()([y, s])
    y = L.Conv2D(8, 1)(y)
    x = L.Add()([x, y])
    x = L.GlobalAveragePooling2D()(x)
    x = L.Dense(5)(x)
    return tf.keras.Model(inp, x)


def dense_variants():
    """FULLY_CONNECTED with keep_num_dims (a Keras Dense on a feature map: per pixel), and a
    Dense without bias."""
    x = inp = tf.keras.Input((6, 6, 4), batch_size=1)
    x = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = L.Dense(5, activation="relu")(x)
    x = L.Flatten()(x)
    x = L.Dense(7, use_bias=False)(x)
    return tf.keras.Model(inp, x)


def unet_tiny():
    """A small segmentation encoder–decoder on 32×32×1: learned upsampling (TRANSPOSE_CONV),
    tf.image.resize(method='nearest') (RESIZE_NEAREST_NEIGHBOR, half-pixel centres; Keras 3's
    UpSampling2D converts to TILE instead), skip connections by
    CONCATENATION, and a per-pixel softmax over 11 classes."""
    x = inp = tf.keras.Input((32, 32, 1), batch_size=1)
    e1 = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = L.MaxPooling2D(2)(e1)
    e2 = L.Conv2D(12, 3, padding="same", activation="relu")(x)
    x = L.MaxPooling2D(2)(e2)
    x = L.Conv2D(16, 3, padding="same", activation="relu")(x)
    x = L.Conv2DTranspose(12, 2, strides=2, padding="same", activation="relu")(x)
    x = L.Concatenate()([x, e2])
    x = L.Conv2D(8, 3, padding="same", activation="relu")(x)
    x = L.Lambda(lambda t: tf.image.resize(t, (32, 32), method="nearest"))(x)
    x = L.Concatenate()([x, e1])
    x = L.Conv2D(11, 1)(x)
    x = L.Softmax()(x)
    return tf.keras.Model(inp, x)


def upsample_variants():
    """RESIZE_NEAREST_NEIGHBOR to sizes that are not multiples (up and down, align_corners,
    half-pixel centres, neither) and TRANSPOSE_CONV with 3×3 and 4×4 windows, strides 1–3, SAME
    and VALID, with and without bias, and a window over more than 512 values per output."""
    x = inp = tf.keras.Input((5, 6, 3), batch_size=1)
    a = L.Lambda(lambda t: tf.compat.v1.image.resize_nearest_neighbor(t, (9, 7), align_corners=True))(x)
    b = L.Lambda(lambda t: tf.compat.v1.image.resize_nearest_neighbor(t, (9, 7), half_pixel_centers=True))(x)
    c = L.Lambda(lambda t: tf.compat.v1.image.resize_nearest_neighbor(t, (9, 7)))(x)
    x = L.Concatenate()([a, b, c])
    x = L.Conv2DTranspose(6, 3, strides=2, padding="same", activation="relu")(x)
    x = L.Conv2DTranspose(5, 4, strides=3, padding="valid", use_bias=False)(x)
    x = L.Lambda(lambda t: tf.compat.v1.image.resize_nearest_neighbor(t, (11, 13), half_pixel_centers=True))(x)
    x = L.Conv2DTranspose(4, 3, strides=1, padding="same")(x)
    x = L.Conv2D(64, 1, activation="relu")(x)
    x = L.Conv2DTranspose(3, 3, strides=2, padding="same")(x)
    return tf.keras.Model(inp, x)


def tconv_odd():
    """TRANSPOSE_CONV geometries beyond a doubling: output_padding, unequal strides and windows,
    a window smaller than the stride (outputs no tap reaches get the bias alone), and a resize
    down to fewer rows than the input."""
    x = inp = tf.keras.Input((5, 4, 6), batch_size=1)
    x = L.Conv2DTranspose(5, 3, strides=2, padding="same", output_padding=1)(x)
    x = L.Conv2DTranspose(4, (5, 2), strides=(1, 2), padding="same", activation="relu")(x)
    x = L.Conv2DTranspose(3, 1, strides=3, padding="valid")(x)
    x = L.Lambda(lambda t: tf.compat.v1.image.resize_nearest_neighbor(t, (7, 5), align_corners=True))(x)
    x = L.Conv2DTranspose(2, 4, strides=2, padding="valid", output_padding=1)(x)
    return tf.keras.Model(inp, x)


MODELS = {
    "cnn_residual": cnn_residual,
    "lenet_valid": lenet_valid,
    "dscnn_float_io": dscnn_float_io,
    "resnet8": resnet8,
    "dag_concat_pad": dag_concat_pad,
    "mobilenet_v1_025": mobilenet_v1_025,
    "fc_autoencoder": fc_autoencoder,
    "squash": squash,
    "logistic_codes": logistic_codes,
    "tanh_codes": tanh_codes,
    "requant_leaky": requant_leaky,
    "broadcast_ops": broadcast_ops,
    "hard_swish_codes": hard_swish_codes,
    "mobilenet_v3_block": mobilenet_v3_block,
    "dense_variants": dense_variants,
    "unet_tiny": unet_tiny,
    "upsample_variants": upsample_variants,
    "tconv_odd": tconv_odd,
}
FLOAT_IO = {"dscnn_float_io"}


def convert(model, rng, float_io=False):
    shape = tuple(d or 1 for d in model.inputs[0].shape)

    def rep():
        for _ in range(64):
            yield [rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)]

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    if not float_io:
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    return conv.convert()


def float_inputs(shape, rng):
    n = int(np.prod(shape))
    uniform = [rng.uniform(-1.0, 1.0, size=n) for _ in range(3)]
    extreme = [np.full(n, -1e6), np.full(n, 1e6), np.where(np.arange(n) % 2 == 0, -3.0, 3.0)]
    ramp = np.linspace(-1.0, 1.0, n)
    smooth = [ramp, ramp[::-1].copy(), np.sin(np.arange(n) / 7.0)]
    return [np.asarray(x, dtype=np.float32).reshape(shape) for x in uniform + extreme + smooth]


def inputs(shape, rng):
    n = int(np.prod(shape))
    uniform = [rng.integers(-128, 128, size=n) for _ in range(3)]
    extreme = [np.full(n, -128), np.full(n, 127), np.where(np.arange(n) % 2 == 0, -128, 127)]
    ramp = np.linspace(-128, 127, n).round()
    smooth = [ramp, ramp[::-1].copy(), (np.sin(np.arange(n) / 7.0) * 100).round()]
    return [np.asarray(x, dtype=np.int8).reshape(shape) for x in uniform + extreme + smooth]


def arena_head(path):
    """TFLM's recording allocator's 'Arena allocation head' (its activation plan, input and output
    included), printed by its C++ side (on stderr) in a child process."""
    import subprocess
    code = ("from tflite_micro.python.tflite_micro import runtime; "
            f"runtime.Interpreter.from_file({path!r}).print_allocations()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    out = r.stdout + r.stderr
    for line in out.splitlines():
        if "Arena allocation head" in line:
            return int(line.split()[-2])
    return None


def run_tflm(fb, xs):
    with tempfile.NamedTemporaryFile(suffix=".tflite", delete=False) as f:
        f.write(fb)
        path = f.name
    try:
        head = arena_head(path)
        interp = runtime.Interpreter.from_file(path)
        outs = []
        for x in xs:
            interp.set_input(x, 0)
            interp.invoke()
            y = np.array(interp.get_output(0))
            outs.append(y.reshape(-1).tolist() if y.dtype == np.float32 else y.astype(np.int32).reshape(-1).tolist())
            interp.reset()
        return outs, head
    finally:
        os.unlink(path)


def main():
    only = set(sys.argv[1:])
    os.makedirs(OUT, exist_ok=True)
    for name, make in MODELS.items():
        if only and name not in only:
            continue
        seed = zlib.crc32(name.encode()) % 1_000_000
        rng = np.random.default_rng(seed)
        tf.keras.utils.set_random_seed(seed)
        model = make()
        # Non-zero biases, so the converted model exercises them.
        for w in model.weights:
            if "bias" in w.name or "beta" in w.name:
                w.assign(rng.uniform(-0.3, 0.3, w.shape).astype(np.float32))
            elif "moving_mean" in w.name:
                w.assign(rng.uniform(-0.2, 0.2, w.shape).astype(np.float32))
            elif "moving_variance" in w.name or "gamma" in w.name:
                w.assign(rng.uniform(0.5, 1.5, w.shape).astype(np.float32))
        float_io = name in FLOAT_IO
        fb = convert(model, rng, float_io)
        shape = tuple(d or 1 for d in model.inputs[0].shape)
        xs = float_inputs(shape, rng) if float_io else inputs(shape, rng)
        expected, head = run_tflm(fb, xs)
        with open(os.path.join(OUT, name + ".tflite"), "wb") as f:
            f.write(fb)
        doc = {
            "name": name,
            "provenance": (
                f"tools/gen_import_fixtures.py model {name!r} seed {seed}: Keras model converted to full int8 by "
                f"tensorflow {tf.__version__}; outputs from tflite-micro {tflite_micro.__version__} on "
                f"{datetime.date.today().isoformat()}. Regenerate: pip install tensorflow-cpu tflite-micro && "
                f"python3 tools/gen_import_fixtures.py {name}"),
            "tflm_arena_head_bytes": head,
            "float_io": float_io,
            "samples": [{"input": (x.reshape(-1).tolist() if float_io else x.reshape(-1).astype(np.int32).tolist()), "expected": e}
                        for x, e in zip(xs, expected)],
        }
        with open(os.path.join(OUT, name + ".json"), "w") as f:
            json.dump(doc, f, separators=(",", ":"))
            f.write("\n")
        print(f"{name}: {len(fb)} bytes")


if __name__ == "__main__":
    main()
