//! `microcnn compare`: the same inputs through microcnn's runtime kernels and through TensorFlow
//! Lite Micro (its Python package, `pip install tflite-micro`), element by element.

use crate::graph::QModel;
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

/// The TFLM side of `--layers`: one item with every tensor preserved, the listed tensors saved
/// as `.npy` files in a folder.
const TFLM_LAYERS_SCRIPT: &str = r#"
import sys
import numpy as np
from tflite_micro.python.tflite_micro import runtime
model, inputs, item, outputs, ids = sys.argv[1:6]
interp = runtime.Interpreter.from_file(
    model, intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
details = interp.get_input_details(0)
shape, dtype = details["shape"], details["dtype"]
x = np.load(inputs).reshape(-1, int(np.prod(shape)))[int(item)]
interp.set_input(x.reshape(shape).astype(dtype), 0)
interp.invoke()
for t in ids.split(","):
    data = np.array(interp.GetTensor(int(t), 0)["tensor_data"]).reshape(-1).astype(np.int8)
    np.save(f"{outputs}/t{t}.npy", data)
"#;

/// TFLite Micro's arena for `tflite`: its recording allocator's "Arena allocation head" (every
/// activation tensor, input and output included), printed by `print_allocations`.
///
/// # Errors
///
/// Python or `tflite-micro` missing, or TFLM refusing the file.
pub fn tflm_arena_bytes(tflite: &Path, python: &str) -> Result<usize> {
    let script = "import sys\nfrom tflite_micro.python.tflite_micro import runtime\nruntime.Interpreter.from_file(sys.argv[1]).print_allocations()\n";
    let run = Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(tflite)
        .output()
        .with_context(|| format!("cannot run `{python}` (needs `pip install tflite-micro`)"))?;
    let text = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    if !run.status.success() {
        bail!("TensorFlow Lite Micro could not load {}: {}", tflite.display(), text.trim_end());
    }
    text.lines()
        .find(|l| l.contains("Arena allocation head"))
        .and_then(|l| l.split_whitespace().rev().nth(1))
        .and_then(|v| v.parse().ok())
        .context("TFLM printed no arena figure")
}

/// Where microcnn and TFLM first part ways inside the graph.
pub struct LayerDifference {
    /// Layer index.
    pub layer: usize,
    /// Element index in its output.
    pub index: usize,
    /// microcnn's value.
    pub ours: i8,
    /// TFLM's value.
    pub tflm: i8,
}

/// `compare --layers`: runs input `item` of the batch through microcnn (every tensor kept) and
/// through TFLM with all tensors preserved, and returns the first layer (in execution order)
/// whose output differs, or `None` when every layer's tensor is equal. `tflite_tensors` maps
/// each of the model's tensors to the flatbuffer's (from the importer).
///
/// # Errors
///
/// As [`compare`].
pub fn first_layer_difference(
    q: &QModel,
    tflite: &Path,
    input: &Path,
    item: usize,
    tflite_tensors: &[usize],
    python: &str,
) -> Result<Option<LayerDifference>> {
    let bytes = std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
    let items = super::npy::read_inputs(&bytes, &input.display().to_string(), q)?;
    let x = items.get(item).with_context(|| format!("{}: no item {item}", input.display()))?;
    let ours = q.run_tensors(x).map_err(|e| anyhow::anyhow!("item {item}: runtime error: {e}"))?;
    let dir = tempfile::tempdir().context("cannot create a temporary folder")?;
    let folder = dir.path();
    let ids: Vec<String> = tflite_tensors[1..].iter().map(|t| t.to_string()).collect();
    let run = Command::new(python)
        .arg("-c")
        .arg(TFLM_LAYERS_SCRIPT)
        .arg(tflite)
        .arg(input)
        .arg(item.to_string())
        .arg(folder)
        .arg(ids.join(","))
        .output()
        .with_context(|| {
            format!("cannot run `{python}`: compare needs Python 3 with `pip install tflite-micro numpy`")
        })?;
    if !run.status.success() {
        bail!(
            "TensorFlow Lite Micro failed on {}:\n{}",
            tflite.display(),
            String::from_utf8_lossy(&run.stderr).trim_end()
        );
    }
    for (layer, &t) in tflite_tensors.iter().enumerate().skip(1) {
        let data =
            std::fs::read(folder.join(format!("t{t}.npy"))).with_context(|| format!("TFLM kept no tensor {t}"))?;
        let tflm: Vec<i8> =
            npyz::NpyFile::new(&data[..]).and_then(|f| f.into_vec()).context("TFLM's tensors are unreadable")?;
        let mine = &ours[layer];
        if tflm.len() != mine.len() {
            bail!("layer {}: TFLM's tensor {t} has {} values, microcnn's {}", layer - 1, tflm.len(), mine.len());
        }
        if let Some(i) = mine.iter().zip(&tflm).position(|(a, b)| a != b) {
            return Ok(Some(LayerDifference { layer: layer - 1, index: i, ours: mine[i], tflm: tflm[i] }));
        }
    }
    Ok(None)
}

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
    let plan = q.plan();
    let mut arena = vec![0i8; plan.bytes];
    let mut out = Comparison { items: Vec::new(), first_difference: None };
    for (k, (x, want)) in items.iter().zip(tflm.chunks_exact(n_out)).enumerate() {
        let mut y = vec![0i8; n_out];
        q.run_planned(&plan, x, &mut arena, &mut y).map_err(|e| anyhow::anyhow!("item {k}: runtime error: {e}"))?;
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
