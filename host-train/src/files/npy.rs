//! NumPy `.npy` batches in and out of `microcnn run` and `compare` (through the `npyz` crate).
//!
//! An input holds `N` items of the model's input size, as int8 (used as they are) or float32 /
//! float64 (quantized with the model's input scale and zero point, as TFLite's QUANTIZE does):
//! shape `[N, H, W, C]`, `[N, H·W·C]`, or one item's `[H, W, C]`.

use crate::graph::QModel;
use anyhow::{anyhow, bail, Context, Result};

/// The items of `bytes` (a `.npy` file called `what`) as int8 model inputs.
///
/// # Errors
///
/// Not a `.npy` file, a shape that is not a whole number of inputs, a header that promises more
/// data than the file holds, or an element type other than int8, float32 and float64.
pub fn read_inputs(bytes: &[u8], what: &str, q: &QModel) -> Result<Vec<Vec<i8>>> {
    let npy = npyz::NpyFile::new(bytes).with_context(|| format!("{what}: not a NumPy .npy file"))?;
    let shape = npy.shape().to_vec();
    let descr = npy.dtype().descr();
    let item: usize = q.input.iter().product();
    let total = shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .and_then(|t| usize::try_from(t).ok())
        .ok_or_else(|| anyhow!("{what}: shape {shape:?} is too large"))?;
    if total == 0 || total % item != 0 {
        bail!(
            "{what}: shape {shape:?} holds {total} values, not a whole number of {}×{}×{} inputs ({item} values each)",
            q.input[0],
            q.input[1],
            q.input[2]
        );
    }
    let width = match descr.trim_matches(|c| c == '\'' || c == '"') {
        "|i1" => 1,
        "<f4" => 4,
        "<f8" => 8,
        "|u1" => bail!("{what}: uint8 data; give int8 (already quantized) or float32 (real values) inputs"),
        other => bail!("{what}: element type {other:?}; microcnn takes int8, float32 or float64"),
    };
    // The header promises `total` values: refuse before allocating if the file cannot hold them.
    if total.checked_mul(width).is_none_or(|n| n > bytes.len()) {
        bail!(
            "{what}: the header promises {total} values of {width} bytes, more than the file's {} bytes",
            bytes.len()
        );
    }
    let (scale, zp) = (q.input_q.scale, q.input_q.zero_point);
    let values: Vec<i8> = match width {
        1 => npy.into_vec::<i8>().with_context(|| format!("{what}: unreadable int8 data"))?,
        4 => npy
            .into_vec::<f32>()
            .with_context(|| format!("{what}: unreadable float32 data"))?
            .into_iter()
            .map(|x| microcnn::quant::quantize_f32(x, scale, zp))
            .collect(),
        _ => npy
            .into_vec::<f64>()
            .with_context(|| format!("{what}: unreadable float64 data"))?
            .into_iter()
            .map(|x| microcnn::quant::quantize_f32(x as f32, scale, zp))
            .collect(),
    };
    if let Some(bad) = values.len().checked_sub(total).filter(|&d| d != 0) {
        bail!("{what}: {bad} values more than the shape says");
    }
    Ok(values.chunks_exact(item).map(<[i8]>::to_vec).collect())
}

/// `values` (`N·width` of them) as a `.npy` of shape `[N, width]` and `T`'s NumPy type.
fn write<T: npyz::AutoSerialize>(n: usize, width: usize, values: impl IntoIterator<Item = T>) -> Result<Vec<u8>> {
    use npyz::WriterBuilder;
    let mut buf = Vec::new();
    let mut w =
        npyz::WriteOptions::new().default_dtype().shape(&[n as u64, width as u64]).writer(&mut buf).begin_nd()?;
    w.extend(values)?;
    w.finish()?;
    Ok(buf)
}

/// `rows` as an int8 `.npy` of shape `[N, width]`.
pub fn write_i8(rows: &[Vec<i8>], width: usize) -> Result<Vec<u8>> {
    write(rows.len(), width, rows.iter().flatten().copied())
}

/// `rows` dequantized (`scale · (q − zp)`) as a float32 `.npy` of shape `[N, width]`.
pub fn write_f32(rows: &[Vec<i8>], width: usize, scale: f32, zp: i8) -> Result<Vec<u8>> {
    write(rows.len(), width, rows.iter().flatten().map(|&v| microcnn::quant::dequantize_i8(v, scale, zp)))
}
