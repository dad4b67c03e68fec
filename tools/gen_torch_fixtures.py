#!/usr/bin/env python3
"""Make `.tflite` fixtures from PyTorch for `microcnn import` (host-train/tests/fixtures/tflite/).

A small PyTorch CNN is quantized to int8 with PT2E (litert-torch's quantizer: per-channel
symmetric weights, static activations calibrated on seeded data) and converted by litert-torch;
TFLite Micro's outputs on seeded inputs are stored next to it as with gen_import_fixtures.py.

    pip install litert-torch tflite-micro
    python3 tools/gen_torch_fixtures.py
"""
import datetime
import json
import os
import sys
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import litert_torch  # noqa: E402
from litert_torch.quantize import pt2e_quantizer, quant_config  # noqa: E402
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_import_fixtures import OUT, float_inputs, inputs, run_tflm  # noqa: E402
import tflite_micro  # noqa: E402


class TorchCnn(torch.nn.Module):
    """conv → ReLU → depthwise → ReLU6 → 1×1 → residual add → max pool → strided conv → average
    pool → flatten → linear, in PyTorch's NCHW (the converter wraps NHWC kernels in TRANSPOSEs)."""

    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.dw = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = torch.nn.Conv2d(8, 8, 1)
        self.conv2 = torch.nn.Conv2d(8, 12, 3, stride=2, padding=1)
        self.fc = torch.nn.Linear(12, 5)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        y = self.pw(torch.nn.functional.relu6(self.dw(x)))
        x = torch.nn.functional.max_pool2d(x + y, 2)
        x = torch.relu(self.conv2(x))
        x = torch.nn.functional.avg_pool2d(x, 4)
        return self.fc(torch.flatten(x, 1))


def main():
    name = "torch_cnn"
    seed = zlib.crc32(name.encode()) % 1_000_000
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = TorchCnn().eval()
    sample = (torch.randn(1, 3, 16, 16),)
    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))
    m = torch.export.export(model, sample).module()
    m = prepare_pt2e(m, quantizer)
    for _ in range(32):
        m(torch.from_numpy(rng.uniform(-1, 1, size=(1, 3, 16, 16)).astype(np.float32)))
    m = convert_pt2e(m, fold_quantize=False)
    edge = litert_torch.convert(m, sample, quant_config=quant_config.QuantConfig(pt2e_quantizer=quantizer))
    path = os.path.join(OUT, name + ".tflite")
    edge.export(path)
    fb = open(path, "rb").read()
    from tflite_micro.python.tflite_micro import runtime
    d = runtime.Interpreter.from_file(path).get_input_details(0)
    shape, float_io = tuple(d["shape"]), d["dtype"] == np.float32
    xs = float_inputs(shape, rng) if float_io else inputs(shape, rng)
    expected, head = run_tflm(fb, xs)
    doc = {
        "name": name,
        "provenance": (
            f"tools/gen_torch_fixtures.py seed {seed}: PyTorch {torch.__version__} model quantized with PT2E and "
            f"converted by litert-torch; outputs from tflite-micro {tflite_micro.__version__} on "
            f"{datetime.date.today().isoformat()}. Regenerate: pip install litert-torch tflite-micro && "
            f"python3 tools/gen_torch_fixtures.py"),
        "tflm_arena_head_bytes": head,
        "float_io": bool(float_io),
        "samples": [{"input": (x.reshape(-1).tolist() if float_io else x.reshape(-1).astype(np.int32).tolist()), "expected": e}
                    for x, e in zip(xs, expected)],
    }
    with open(os.path.join(OUT, name + ".json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"{name}: {len(fb)} bytes, input {shape}, float I/O {float_io}")


if __name__ == "__main__":
    main()
