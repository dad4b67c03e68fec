//! Every file the CLI writes goes through here: atomically, and all of a command's outputs
//! together.
//!
//! - Each output is first written to a temporary file in the *same folder* (so the final
//!   `rename` is atomic on every POSIX file system), flushed and `fsync`ed; only then are the
//!   temporaries renamed over their targets, and the folder is `fsync`ed so the renames survive
//!   a power cut.
//! - A command stages *all* its outputs in one [`Outputs`] and commits them at the end: a
//!   failure while writing any of them (a full disk, a missing permission) removes every
//!   temporary and leaves every pre-existing file byte-identical.
//! - Temporaries are deleted on every error path, on unwinding, and on Ctrl-C / `SIGTERM`
//!   ([`install_signal_cleanup`]); only `SIGKILL` or a power cut can leave one behind, and its
//!   name (`.NAME.microcnn-tmp-XXXXXX`) says what it is.
//! - An output may never be one of the command's inputs ([`Outputs::forbid_overwriting`]), so
//!   `--confusion model.safetensors` cannot destroy the checkpoint it reads.

use anyhow::{bail, Context, Result};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Temporary files currently on disk, removed by the signal handler (a set: a data set commits
/// hundreds of thousands of files, so tracking must not be linear per file).
static LIVE_TEMPS: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

fn track(path: &Path) {
    if let Ok(mut live) = LIVE_TEMPS.lock() {
        live.insert(path.to_path_buf());
    }
}

fn untrack(path: &Path) {
    if let Ok(mut live) = LIVE_TEMPS.lock() {
        live.remove(path);
    }
}

/// Installs a Ctrl-C / `SIGTERM` / `SIGHUP` handler that deletes every live temporary file and
/// exits with status 130. Call once at start-up; later calls do nothing.
pub fn install_signal_cleanup() {
    let _ = ctrlc::set_handler(|| {
        if let Ok(live) = LIVE_TEMPS.lock() {
            for p in live.iter() {
                let _ = std::fs::remove_file(p);
            }
        }
        eprintln!("\ninterrupted: no output was changed by the unfinished step");
        std::process::exit(130);
    });
}

/// The folder `path` lives in (`.` for a bare file name).
fn folder_of(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

/// A set of files written together: staged in memory, committed at once.
#[derive(Default)]
pub struct Outputs {
    files: Vec<(PathBuf, Vec<u8>)>,
    /// Where each staged path is in `files`.
    index: HashMap<PathBuf, usize>,
    inputs: Vec<PathBuf>,
}

impl Outputs {
    /// An empty set.
    pub fn new() -> Self {
        Outputs::default()
    }

    /// Records files the command reads: committing fails (writing nothing) if an output is one
    /// of them.
    pub fn forbid_overwriting<P: AsRef<Path>>(&mut self, inputs: impl IntoIterator<Item = P>) {
        self.inputs.extend(inputs.into_iter().map(|p| p.as_ref().to_path_buf()));
    }

    /// Stages `bytes` for `path` (a later call for the same path replaces it).
    pub fn add(&mut self, path: impl Into<PathBuf>, bytes: impl Into<Vec<u8>>) {
        let path = path.into();
        match self.index.get(&path) {
            Some(&i) => self.files[i].1 = bytes.into(),
            None => {
                self.index.insert(path.clone(), self.files.len());
                self.files.push((path, bytes.into()));
            }
        }
    }

    /// The staged paths, in order.
    pub fn paths(&self) -> impl Iterator<Item = &Path> {
        self.files.iter().map(|(p, _)| p.as_path())
    }

    /// Checks that no output is an input and that each output's folder can be written, without
    /// writing anything.
    pub fn check(&self) -> Result<()> {
        for (path, _) in &self.files {
            for input in &self.inputs {
                if same_file(path, input) {
                    bail!(
                        "refusing to write {}: it is an input of this command; choose another output path",
                        path.display()
                    );
                }
            }
            if path.is_dir() {
                bail!("cannot write {}: it is a folder", path.display());
            }
            if path.file_name().is_none() {
                bail!("cannot write {}: not a file path", path.display());
            }
            if let Some(parent) = path.ancestors().skip(1).find(|a| a.exists() && !a.as_os_str().is_empty()) {
                if !parent.is_dir() {
                    bail!("cannot write {}: {} is a file, not a folder", path.display(), parent.display());
                }
            }
        }
        Ok(())
    }

    /// Writes every staged file: all temporaries first, then all renames. On any error every
    /// temporary is removed and no target has changed.
    pub fn commit(self) -> Result<()> {
        self.check()?;
        let mut staged: Vec<(tempfile::TempPath, &Path)> = Vec::new();
        let result = (|| -> Result<()> {
            for (path, bytes) in &self.files {
                let dir = folder_of(path);
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create folder {}", dir.display()))?;
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                let mut tmp = tempfile::Builder::new()
                    .prefix(&format!(".{name}."))
                    .suffix(".microcnn-tmp")
                    .tempfile_in(dir)
                    .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
                track(tmp.path());
                use std::io::Write;
                let written = tmp.write_all(bytes).and_then(|()| tmp.as_file().sync_all());
                if let Err(e) = written {
                    untrack(tmp.path());
                    return Err(e).with_context(|| format!("cannot write {} (disk full?)", path.display()));
                }
                staged.push((tmp.into_temp_path(), path.as_path()));
            }
            Ok(())
        })();
        if let Err(e) = result {
            for (tmp, _) in &staged {
                untrack(tmp);
            }
            return Err(e); // dropping `staged` deletes the temporaries
        }
        let mut dirs: BTreeSet<PathBuf> = BTreeSet::new();
        for (tmp, path) in staged {
            let tmp_path = tmp.to_path_buf();
            untrack(&tmp_path);
            tmp.persist(path).map_err(|e| {
                anyhow::anyhow!("cannot move {} to {}: {}", tmp_path.display(), path.display(), e.error)
            })?;
            dirs.insert(folder_of(path).to_path_buf());
        }
        for dir in dirs {
            // Makes the renames durable; not every platform can open a folder, which is fine.
            if let Ok(d) = std::fs::File::open(&dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

/// Writes one file atomically (see the module docs).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut out = Outputs::new();
    out.add(path, bytes);
    out.commit()
}

/// `true` when `a` and `b` name the same file (after resolving `..` and symbolic links where
/// the files exist).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Checks that `path` ends in `.ext` (case-insensitive), so an output cannot land on an input
/// of another kind by a slip of the keyboard.
pub fn require_extension(path: &Path, ext: &str, what: &str) -> Result<()> {
    let ok = path.extension().is_some_and(|e| e.to_string_lossy().eq_ignore_ascii_case(ext));
    if !ok {
        bail!("{what} {} must end in .{ext}", path.display());
    }
    Ok(())
}
