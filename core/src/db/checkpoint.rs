//! Store checkpoints: a consistent copy of the store that opens as a store.

use std::path::Path;

use super::{Db, Shared};
use crate::error::{Error, Result};
use crate::manifest::ManifestWriter;
use crate::table::FileNo;

impl Db {
    /// Writes a consistent copy of the store into `target` (which must not exist or be
    /// empty): tables are hard-linked (copied where the file system cannot link), the
    /// manifest is written afresh and the WAL is copied. Opening `target` gives the
    /// store as of some moment during the call, with every write acknowledged before
    /// the call started.
    ///
    /// Flushes and compactions wait while the copy is made; writes do not.
    pub fn checkpoint_to(&self, target: impl AsRef<Path>) -> Result<()> {
        self.check_poison()?;
        checkpoint_into(&self.shared, target.as_ref())
    }
}

pub(super) fn checkpoint_into(s: &Shared, target: &Path) -> Result<()> {
    let fs = &*s.fs;
    if fs.exists(target)? && !fs.list_dir(target)?.is_empty() {
        return Err(Error::InvalidArgument(format!(
            "checkpoint target {} exists and is not empty",
            target.display()
        )));
    }
    fs.create_dir_all(target)?;
    // Holding the version set keeps the table set, the manifest and the WAL's
    // checkpoint still (flush and compaction install under it).
    let vs = s.versions.lock();
    // Buffered writes acknowledged before the call must be in the copy.
    s.wal.sync()?;
    for (_, meta) in vs.state.live_tables() {
        let name = meta.file_no.table_file_name();
        fs.hard_link(&s.dir.join(&name), &target.join(&name))?;
    }
    let mut state = vs.state.clone();
    let number = FileNo(state.next_file_no.0);
    state.next_file_no = FileNo(number.0 + 1);
    for wal_file in s.wal.files()? {
        let Some(name) = wal_file.file_name() else { continue };
        crate::fs::copy_file(fs, &wal_file, &target.join(name))?;
    }
    drop(vs);
    ManifestWriter::create(fs, target, number, &state)?;
    fs.sync_dir(target)?;
    tracing::info!(target = %target.display(), "checkpoint written");
    Ok(())
}

/// Keeps the newest `keep` checkpoints under `dir`.
pub(super) fn prune(s: &Shared, dir: &Path, keep: usize) {
    let Ok(mut names) = s.fs.list_dir(dir) else { return };
    names.retain(|n| n.len() == 16 && n.bytes().all(|b| b.is_ascii_digit()));
    names.sort();
    let excess = names.len().saturating_sub(keep);
    for name in names.into_iter().take(excess) {
        let path = dir.join(&name);
        if let Err(e) = std::fs::remove_dir_all(&path) {
            tracing::warn!(dir = %path.display(), error = %e, "could not delete an old checkpoint");
        }
    }
}
