//! `microcnn compare`: the same inputs through microcnn's runtime kernels and through TensorFlow
//! Lite Micro (its Python package, `pip install tflite-micro`), element by element.

use crate::quantize::QModel;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;

/// The TFLM side: reads the model and an int8 batch, writes TFLM's outputs.
const TFLM_SCRIPT: &str = r#"
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
model, inputs, outputs = sys.argv[1:4]
interp = runtime.Interpreter.from_file(model)
details = interp.get_input_details(0)
shape, dtype = details["shape"], details["dtype"]
x = np.load(inputs)
if (x.dtype == np.int8) != (dtype == np.int8):
    sys.exit(f"the model's input is {np.dtype(dtype).name}, the batch is {x.dtype.name}")
n = int(np.prod(shape))
x = x.reshape(-1, n)
out = []
for item in x:
    interp.set_input(item.reshape(shape).astype(dtype), 0)
    interp.invoke()
    y = np.array(interp.get_output(0))
    out.append(y.reshape(-1).astype(np.float32 if y.dtype == np.float32 else np.int8))
    interp.reset()
np.save(outputs, np.stack(out))
"#;

/// Per-item equality of microcnn's and TFLM's outputs.
pub struct Comparison {
    /// `(equal elements, elements)` per input item.
    pub items: Vec<(usize, usize)>,
    /// The first differing element: `(item, index, microcnn, tflm)`.
    pub first_difference: Option<(usize, usize, String, String)>,
}

/// Runs the batch in `input` (a `.npy`) through `q` and through TFLM on `tflite` with `python`.
/// Float outputs (a model ending in DEQUANTIZE) are compared bit for bit with microcnn's
/// dequantized ones.
///
/// # Errors
///
/// Python or `tflite-micro` missing (with the command that installs it), TFLM failing on the
/// file, or outputs of a different size.
pub fn compare(q: &QModel, tflite: &Path, input: &Path, python: &str) -> Result<Comparison> {
    let bytes = std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
    let items = super::npy::read_inputs(&bytes, &input.display().to_string(), q)?;
    let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
    let y_path = dir.path().join("y.npy");
    let run =
        Command::new(python).arg("-c").arg(TFLM_SCRIPT).arg(tflite).arg(input).arg(&y_path).output().with_context(
            || format!("cannot run `{python}`: compare needs Python 3 with `pip install tflite-micro numpy`"),
        )?;
    if !run.status.success() {
        let err = String::from_utf8_lossy(&run.stderr);
        if err.contains("No module named") {
            bail!("`{python}` has no tflite-micro: `pip install tflite-micro numpy`, then run compare again");
        }
        bail!("TensorFlow Lite Micro failed on {}:\n{}", tflite.display(), err.trim_end());
    }
    let out_bytes = std::fs::read(&y_path).context("TFLM wrote no outputs")?;
    let npy = npyz::NpyFile::new(&out_bytes[..]).context("TFLM's outputs are not a .npy")?;
    let float_out = npy.dtype().descr().contains("f4");
    // Outputs as bit patterns: int8 values, or float32 bits (ours dequantized as TFLite's
    // DEQUANTIZE does), so equality is exact either way.
    let tflm: Vec<u32> = if float_out {
        npy.into_vec::<f32>().context("TFLM's outputs are unreadable")?.iter().map(|v| v.to_bits()).collect()
    } else {
        npy.into_vec::<i8>().context("TFLM's outputs are unreadable")?.iter().map(|&v| v as u32).collect()
    };
    let n_out = q.num_classes();
    if tflm.len() != n_out * items.len() {
        bail!(
            "TFLM gave {} output values for {} items of {n_out}: the model and the file do not match",
            tflm.len(),
            items.len()
        );
    }
    let last = q.layers.last().map(|l| l.output_q).unwrap_or(q.input_q);
    let mut arena = vec![0i8; q.plan().bytes];
    let mut out = Comparison { items: Vec::new(), first_difference: None };
    for (k, (x, want)) in items.iter().zip(tflm.chunks_exact(n_out)).enumerate() {
        let mut y = vec![0i8; n_out];
        q.run(x, &mut arena, &mut y).map_err(|e| anyhow::anyhow!("item {k}: runtime error: {e}"))?;
        let got: Vec<u32> = if float_out {
            y.iter().map(|&v| microcnn::quant::dequantize_i8(v, last.scale, last.zero_point).to_bits()).collect()
        } else {
            y.iter().map(|&v| v as u32).collect()
        };
        let equal = got.iter().zip(want).filter(|(a, b)| a == b).count();
        if out.first_difference.is_none() {
            if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
                let show = |v: u32| if float_out { f32::from_bits(v).to_string() } else { (v as i8).to_string() };
                out.first_difference = Some((k, i, show(got[i]), show(want[i])));
            }
        }
        out.items.push((equal, n_out));
    }
    Ok(out)
}
