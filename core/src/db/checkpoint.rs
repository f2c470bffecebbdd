//! Store checkpoints: a consistent copy of the store that opens as a store.
//!
//! A checkpoint is built in a temporary directory, every file and the directory are
//! synced, and only then is it renamed into place and its parent synced: a crash or a
//! failure leaves either no checkpoint or a complete one, never a half directory under
//! the checkpoint's name. Everything goes through the store's `FileSystem`.

use std::path::{Path, PathBuf};

use super::{Db, Shared};
use crate::error::{Error, Result};
use crate::fs::FileSystem;
use crate::manifest::ManifestWriter;
use crate::table::FileNo;

/// Name of the directory periodic checkpoints are built in (it never counts as one).
pub(super) const PERIODIC_TMP: &str = "checkpoint.tmp";

impl Db {
    /// Writes a consistent copy of the store into `target` (which must not exist or be
    /// empty): tables are hard-linked (copied where the file system cannot link), the
    /// manifest is written afresh and the WAL is copied. Opening `target` gives the
    /// store as of some moment during the call, with every write acknowledged before
    /// the call started.
    ///
    /// The copy is built in a sibling directory `.{name}.checkpoint-tmp`, synced, and
    /// renamed onto `target`, so `target` never holds half a checkpoint. This needs a
    /// file system that renames directories (the OS does).
    ///
    /// Flushes and compactions wait while the copy is made; writes do not.
    pub fn checkpoint_to(&self, target: impl AsRef<Path>) -> Result<()> {
        self.check_poison()?;
        let target = target.as_ref();
        let name = target.file_name().ok_or_else(|| {
            Error::InvalidArgument(format!("checkpoint target {} has no name", target.display()))
        })?;
        let tmp = target.with_file_name(format!(".{}.checkpoint-tmp", name.to_string_lossy()));
        checkpoint_into(&self.shared, target, &tmp)
    }
}

/// Builds a checkpoint in `tmp` and renames it onto `target`.
pub(super) fn checkpoint_into(s: &Shared, target: &Path, tmp: &Path) -> Result<()> {
    let fs = &*s.fs;
    if fs.exists(target)? && !fs.list_dir(target)?.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "checkpoint target {} exists and is not empty",
            target.display()
        )));
    }
    let parent = parent_of(target);
    fs.create_dir_all(&parent)?;
    // A temporary directory left by an earlier failure or crash is emptied and reused.
    clear_dir(fs, tmp)?;
    fs.create_dir_all(tmp)?;
    if let Err(e) = build(s, tmp) {
        if let Err(c) = clear_dir(fs, tmp) {
            tracing::warn!(dir = %tmp.display(), error = %c, "could not clear a failed checkpoint");
        }
        return Err(e);
    }
    fs.rename(tmp, target)?;
    fs.sync_dir(&parent)?;
    tracing::info!(target = %target.display(), "checkpoint written");
    Ok(())
}

/// Writes the checkpoint's files into `dir` and syncs them and the directory.
fn build(s: &Shared, dir: &Path) -> Result<()> {
    let fs = &*s.fs;
    // Holding the version set keeps the table set, the manifest and the WAL's
    // checkpoint still (flush and compaction install under it).
    let vs = s.versions.lock();
    // Buffered writes acknowledged before the call must be in the copy.
    s.wal.sync()?;
    for (_, meta) in vs.state.live_tables() {
        let name = meta.file_no.table_file_name();
        fs.hard_link(&s.dir.join(&name), &dir.join(&name))?;
    }
    let mut state = vs.state.clone();
    let number = FileNo(state.next_file_no.0);
    state.next_file_no = FileNo(number.0 + 1);
    s.wal.copy_to(fs, dir)?;
    drop(vs);
    // Syncs the manifest, `CURRENT` and the directory; the copies were synced by
    // `copy_file`, the links are entries that the directory sync covers.
    ManifestWriter::create(fs, dir, number, &state)?;
    fs.sync_dir(dir)
}

fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Removes every file in `dir` (a checkpoint holds no subdirectories) and syncs it;
/// a missing `dir` is already clear.
fn clear_dir(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    if !fs.exists(dir)? {
        return Ok(());
    }
    for name in fs.list_dir(dir)? {
        fs.remove_file(&dir.join(name))?;
    }
    fs.sync_dir(dir)
}

/// True for the names periodic checkpoints are renamed to (Unix milliseconds).
pub(super) fn is_checkpoint_name(name: &str) -> bool {
    name.len() == 16 && name.bytes().all(|b| b.is_ascii_digit())
}

/// Keeps the newest `keep` checkpoints under `dir`, through the store's `FileSystem`.
///
/// An old checkpoint is first renamed onto the (empty or absent) build directory, so it
/// stops counting as a checkpoint at once, then its files are removed. The seam has no
/// directory removal, so the emptied directory stays as the next checkpoint's build
/// directory instead of accumulating.
pub(super) fn prune(s: &Shared, dir: &Path, keep: usize) {
    let fs = &*s.fs;
    let Ok(mut names) = fs.list_dir(dir) else { return };
    names.retain(|n| is_checkpoint_name(n));
    names.sort();
    let excess = names.len().saturating_sub(keep);
    let tmp = dir.join(PERIODIC_TMP);
    for name in names.into_iter().take(excess) {
        let path = dir.join(&name);
        let result = clear_dir(fs, &tmp)
            .and_then(|()| fs.rename(&path, &tmp))
            .and_then(|()| fs.sync_dir(dir))
            .and_then(|()| clear_dir(fs, &tmp));
        if let Err(e) = result {
            tracing::warn!(dir = %path.display(), error = %e, "could not delete an old checkpoint");
        }
    }
}
