#!/usr/bin/env python3
"""Run a microcnn-exported model through TensorFlow Lite Micro and record its outputs.

    python3 tools/check_tflite.py models/fashion     # needs: pip install tflite-micro 'numpy<2'

Reads DIR/model.tflite (written by `microcnn export-tflite`) and the quantized test images in
DIR/test_vectors.rs (written by `microcnn emit --test-images`), runs every image through the
TFLM interpreter (the reference for microcontrollers; CMSIS-NN is bit-exact with it), writes
DIR/tflm_outputs.json and reports how many outputs equal microcnn's bit for bit. The Rust test
host-train/tests/tflite_peer.rs compares the committed JSON with microcnn's outputs, so CI
needs no Python.
"""
import datetime
import json
import os
import re
import sys

import numpy as np
from tflite_micro.python.tflite_micro import runtime
import tflite_micro


def arrays(text, name):
    body = re.search(rf"pub static {name}: [^=]+= \[(.*?)\];\n", text, re.S).group(1)
    return [[int(v) for v in row.split(",") if v.strip()] for row in re.findall(r"\[([^\[\]]*)\]", body)]


def main():
    d = sys.argv[1]
    text = open(os.path.join(d, "test_vectors.rs")).read()
    images, expected = arrays(text, "IMAGES"), arrays(text, "EXPECTED")
    # A large arena: TFLM sizes it per model and TRANSPOSE_CONV needs an int32 scratch as large as
    # its output (microcnn gathers instead and needs none).
    interp = runtime.Interpreter.from_file(os.path.join(d, "model.tflite"), arena_size=64 << 20)
    shape = interp.get_input_details(0)["shape"]
    outs = []
    for img in images:
        interp.set_input(np.array(img, dtype=np.int8).reshape(shape), 0)
        interp.invoke()
        outs.append(np.array(interp.get_output(0)).reshape(-1).astype(int).tolist())
        interp.reset()
    same = sum(o == e for o, e in zip(outs, expected))
    with open(os.path.join(d, "tflm_outputs.json"), "w") as f:
        json.dump({
            "provenance": f"tools/check_tflite.py {d}: {len(images)} images of test_vectors.rs through "
                          f"tflite-micro {tflite_micro.__version__} on {datetime.date.today().isoformat()}",
            "outputs": outs,
        }, f)
        f.write("\n")
    print(f"{d}: {same}/{len(images)} outputs bit-exact between microcnn and TFLite Micro")
    sys.exit(0 if same == len(images) else 1)


if __name__ == "__main__":
    main()
