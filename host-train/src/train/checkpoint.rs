//! Checkpoints as safetensors: every parameter (and, for resuming, the optimiser moments) as an
//! f32 tensor, with the model description, epoch and step in the metadata. Written atomically
//! ([`crate::files::fsio`]); read with every tensor's name, shape and values checked.

use crate::model::spec::ModelSpec;
use crate::train::net::Net;
use anyhow::{bail, Context, Result};
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::path::Path;

/// Training progress stored beside the weights.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Progress {
    /// Completed epochs.
    pub epoch: usize,
    /// Optimiser steps taken.
    pub step: u64,
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Saves the network (and optimiser state) to `path`, atomically.
pub fn save(net: &Net, progress: Progress, path: &Path) -> Result<()> {
    crate::files::fsio::write_atomic(path, &to_bytes(net, progress)?)
}

/// The checkpoint file's bytes: the network (and optimiser state) as safetensors.
pub fn to_bytes(net: &Net, progress: Progress) -> Result<Vec<u8>> {
    let mut owned: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for p in net.params() {
        owned.push((p.name.clone(), p.dims.clone(), f32_bytes(&p.value)));
        owned.push((format!("{}.adam_m", p.name), p.dims.clone(), f32_bytes(&p.m)));
        owned.push((format!("{}.adam_v", p.name), p.dims.clone(), f32_bytes(&p.v)));
    }
    let views: Vec<(String, TensorView)> = owned
        .iter()
        .map(|(n, d, b)| Ok((n.clone(), TensorView::new(Dtype::F32, d.clone(), b)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    let mut meta = HashMap::new();
    meta.insert("format".to_string(), "microcnn-checkpoint-1".to_string());
    meta.insert("model".to_string(), net.spec.to_toml());
    meta.insert("epoch".to_string(), progress.epoch.to_string());
    meta.insert("step".to_string(), progress.step.to_string());
    let bytes = safetensors::serialize(views, &Some(meta))?;
    canonical_header(&bytes)
}

/// Rewrites a safetensors file's JSON header with its keys sorted: the crate writes the
/// metadata in hash-map order, which differs from run to run, so the same weights would not
/// always give the same bytes. The header stays padded with spaces to a multiple of 8 bytes.
fn canonical_header(bytes: &[u8]) -> Result<Vec<u8>> {
    let Some((len, rest)) = bytes.split_first_chunk::<8>() else { bail!("safetensors output without a header") };
    let (header, data) =
        rest.split_at_checked(u64::from_le_bytes(*len) as usize).context("short safetensors header")?;
    // serde_json's objects are sorted maps, so parsing and writing back sorts every key.
    let value: serde_json::Value = serde_json::from_slice(header)?;
    let mut header = serde_json::to_vec(&value)?;
    header.resize(header.len().next_multiple_of(8), b' ');
    let mut out = Vec::with_capacity(8 + header.len() + data.len());
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(data);
    Ok(out)
}

/// Loads a checkpoint: the network it describes with its weights, and the progress.
pub fn load(path: &Path) -> Result<(Net, Progress)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read checkpoint {}", path.display()))?;
    from_bytes(&bytes, &path.display().to_string())
}

/// Parses checkpoint bytes; `name` (the file) starts every error message.
///
/// Checks: a readable safetensors header, microcnn's metadata (a valid model description, and
/// `epoch`/`step` numbers if present), every tensor the model needs with the right type and
/// shape, and finite values (a diverged run's NaN weights are refused here, not quantized).
pub fn from_bytes(bytes: &[u8], name: &str) -> Result<(Net, Progress)> {
    let (_, header) = safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| anyhow::anyhow!("{name}: not a safetensors checkpoint (corrupt or truncated): {e}"))?;
    let meta = header.metadata().clone().unwrap_or_default();
    let Some(model) = meta.get("model") else {
        bail!("{name}: safetensors file without a microcnn model description in its metadata");
    };
    let spec = ModelSpec::from_toml(model).with_context(|| format!("{name}: bad model description"))?;
    spec.resolve().with_context(|| format!("{name}: invalid model description"))?;
    let st = safetensors::SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow::anyhow!("{name}: corrupt safetensors data: {e}"))?;
    let mut net = Net::new(spec, 0).with_context(|| format!("{name}: invalid model description"))?;
    for p in net.params_mut() {
        for (suffix, dst) in [("", &mut p.value), (".adam_m", &mut p.m), (".adam_v", &mut p.v)] {
            let tname = format!("{}{suffix}", p.name);
            let t = st.tensor(&tname).with_context(|| format!("{name}: tensor {tname} missing"))?;
            if t.dtype() != Dtype::F32 || t.shape() != p.dims.as_slice() {
                bail!("{name}: tensor {tname} is {:?} {:?}, the model needs F32 {:?}", t.dtype(), t.shape(), p.dims);
            }
            *dst = t.data().chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
            if let Some(i) = dst.iter().position(|v| !v.is_finite()) {
                bail!(
                    "{name}: tensor {tname} holds {} at index {i}: the run that wrote it diverged; retrain with a lower --lr",
                    dst[i]
                );
            }
        }
    }
    let number = |key: &str| -> Result<u64> {
        match meta.get(key) {
            None => Ok(0),
            Some(v) => v.parse().with_context(|| format!("{name}: metadata `{key}` = {v:?} is not a whole number")),
        }
    };
    let epoch = usize::try_from(number("epoch")?).context("epoch out of range")?;
    Ok((net, Progress { epoch, step: number("step")? }))
}
