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
shape = interp.get_input_details(0)["shape"]
x = np.load(inputs)
out = []
for item in x:
    interp.set_input(item.reshape(shape).astype(np.int8), 0)
    interp.invoke()
    out.append(np.array(interp.get_output(0)).astype(np.int8).reshape(-1))
    interp.reset()
np.save(outputs, np.stack(out))
"#;

/// Per-item equality of microcnn's and TFLM's outputs.
pub struct Comparison {
    /// `(equal elements, elements)` per input item.
    pub items: Vec<(usize, usize)>,
    /// The first differing element: `(item, index, microcnn, tflm)`.
    pub first_difference: Option<(usize, usize, i8, i8)>,
}

/// Runs `items` through `q` and through TFLM on `tflite` with `python`.
///
/// # Errors
///
/// Python or `tflite-micro` missing (with the command that installs it), TFLM failing on the
/// file, or outputs of a different size.
pub fn compare(q: &QModel, tflite: &Path, items: &[Vec<i8>], python: &str) -> Result<Comparison> {
    let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
    let (x_path, y_path) = (dir.path().join("x.npy"), dir.path().join("y.npy"));
    let width = q.input.iter().product();
    std::fs::write(&x_path, super::npy::write_i8(items, width)?)?;
    let run =
        Command::new(python).arg("-c").arg(TFLM_SCRIPT).arg(tflite).arg(&x_path).arg(&y_path).output().with_context(
            || format!("cannot run `{python}`: compare needs Python 3 with `pip install tflite-micro numpy`"),
        )?;
    if !run.status.success() {
        let err = String::from_utf8_lossy(&run.stderr);
        if err.contains("No module named") {
            bail!("`{python}` has no tflite-micro: `pip install tflite-micro numpy`, then run compare again");
        }
        bail!("TensorFlow Lite Micro failed on {}:\n{}", tflite.display(), err.trim_end());
    }
    let bytes = std::fs::read(&y_path).context("TFLM wrote no outputs")?;
    let npy = npyz::NpyFile::new(&bytes[..]).context("TFLM's outputs are not a .npy")?;
    let tflm: Vec<i8> = npy.into_vec().context("TFLM's outputs are not int8")?;
    let n_out = q.num_classes();
    if tflm.len() != n_out * items.len() {
        bail!(
            "TFLM gave {} output values for {} items of {n_out}: the model and the file do not match",
            tflm.len(),
            items.len()
        );
    }
    let mut arena = vec![0i8; q.plan().bytes];
    let mut out = Comparison { items: Vec::new(), first_difference: None };
    for (k, (x, want)) in items.iter().zip(tflm.chunks_exact(n_out)).enumerate() {
        let mut got = vec![0i8; n_out];
        q.run(x, &mut arena, &mut got).map_err(|e| anyhow::anyhow!("item {k}: runtime error: {e}"))?;
        let equal = got.iter().zip(want).filter(|(a, b)| a == b).count();
        if out.first_difference.is_none() {
            if let Some(i) = got.iter().zip(want).position(|(a, b)| a != b) {
                out.first_difference = Some((k, i, got[i], want[i]));
            }
        }
        out.items.push((equal, n_out));
    }
    Ok(out)
}
