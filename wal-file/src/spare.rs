//! The spare segment (see [`FileWalOptions::spare_segment`]): a file of written zeros,
//! prepared off the write path, that the next rotation takes as its new segment by
//! writing a header into it and renaming it.
//!
//! A spare is never part of the log. Its name (`wal_spare_<hex>.tmp`) is neither a
//! segment's nor a temporary segment's, so open and `check_dir` pass over it; a spare a
//! crash left behind is removed by the next build. Once taken it is renamed to the new
//! segment's temporary name before any record is written into it, so every crash state
//! is one a rotation without a spare also leaves (see `PendingRotation`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex};
use strata_core::fs::{File, FileSystem, OpenMode, WritebackPacer};
use strata_core::{Result, SeqNo};

use crate::format::{encode_header, is_spare_file_name, spare_file_name};
use crate::options::FileWalOptions;

/// Zeros are written, and the log's closing looked for, in steps of this many bytes.
const STEP_BYTES: u64 = 1 << 20;

/// The log's spare: at most one ready, at most one being written.
#[derive(Debug, Default)]
pub(crate) struct SpareSlot {
    state: Mutex<State>,
    /// Signalled when a build ends.
    built: Condvar,
}

#[derive(Debug, Default)]
struct State {
    ready: Option<(PathBuf, Arc<dyn File>)>,
    building: bool,
    /// The log closed: no new build starts, one in flight stops at its next step.
    closed: bool,
}

impl SpareSlot {
    /// The ready spare, if any, as the segment starting at `next`: its header written
    /// (for a segment created `created_len` long) and the file renamed to `tmp`. Any
    /// failure sets it aside, and the caller creates the segment as without a spare:
    /// nothing of the log was touched.
    pub(crate) fn take(
        &self,
        fs: &dyn FileSystem,
        next: SeqNo,
        created_len: u64,
        tmp: &Path,
    ) -> Option<Arc<dyn File>> {
        // Held across the rename, so a build that starts next finds the file under its
        // new name and never removes it as a leftover.
        let mut state = self.state.lock();
        let (path, file) = state.ready.take()?;
        let taken = (|| {
            file.write_all_at(&encode_header(next, created_len), 0)?;
            fs.rename(&path, tmp)
        })();
        match taken {
            Ok(()) => Some(file),
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e,
                    "spare WAL segment not usable; creating the next segment in line");
                remove_quietly(fs, &path);
                None
            }
        }
    }

    /// Whether a spare is ready to be taken.
    pub(crate) fn is_ready(&self) -> bool {
        self.state.lock().ready.is_some()
    }

    /// Writes a spare on a new thread, unless one is ready, being written, or the log
    /// closed.
    pub(crate) fn start(
        self: &Arc<Self>,
        fs: Arc<dyn FileSystem>,
        dir: PathBuf,
        options: FileWalOptions,
    ) {
        let slot = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("strata-wal-spare".into())
            .spawn(move || slot.build(&*fs, &dir, &options));
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no thread for the spare WAL segment; rotations create segments in line");
        }
    }

    /// Writes a spare on this thread, unless one is ready, being written, or the log
    /// closed. A failure is logged, not returned: the next rotation creates its
    /// segment in line.
    pub(crate) fn build(&self, fs: &dyn FileSystem, dir: &Path, options: &FileWalOptions) {
        {
            let mut state = self.state.lock();
            if state.building || state.ready.is_some() || state.closed {
                return;
            }
            state.building = true;
        }
        let written = self.write(fs, dir, options);
        let mut state = self.state.lock();
        state.building = false;
        match written {
            Ok(Some(spare)) if !state.closed => state.ready = Some(spare),
            Ok(Some((path, _))) => remove_quietly(fs, &path),
            Ok(None) => {}
            Err(e) => tracing::warn!(dir = %dir.display(), error = %e,
                "could not prepare a spare WAL segment; the next rotation creates its segment in line"),
        }
        self.built.notify_all();
    }

    /// The log is closing: stops a build in flight (waiting at most one step of it) and
    /// removes the ready spare, so a closed log leaves no spare and no thread writing.
    pub(crate) fn close(&self, fs: &dyn FileSystem) {
        let mut state = self.state.lock();
        state.closed = true;
        while state.building {
            self.built.wait(&mut state);
        }
        if let Some((path, _)) = state.ready.take() {
            remove_quietly(fs, &path);
        }
    }

    /// Removes spares left behind, then writes a new one: `segment_size_bytes` of zeros
    /// (preallocated first, so its extents are contiguous), fdatasynced. A failure, or
    /// the log closing meanwhile (`Ok(None)`), removes the new file.
    fn write(
        &self,
        fs: &dyn FileSystem,
        dir: &Path,
        options: &FileWalOptions,
    ) -> Result<Option<(PathBuf, Arc<dyn File>)>> {
        for name in fs.list_dir(dir)? {
            if is_spare_file_name(&name) {
                let path = dir.join(&name);
                if let Err(e) = fs.remove_file(&path)
                    && fs.exists(&path)?
                {
                    return Err(e);
                }
            }
        }
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let nonce = (u64::from(std::process::id()) << 32) ^ NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(spare_file_name(nonce));
        let file = fs.open(&path, OpenMode::CreateNew)?;
        // `Ok(false)`: the log closed meanwhile.
        let filled = (|| {
            let size = options.segment_size_bytes;
            if options.preallocate {
                file.allocate(size)?;
            }
            let mut pacer = WritebackPacer::new(options.writeback_bytes, 0);
            let mut at = 0;
            while at < size {
                if self.state.lock().closed {
                    return Ok(false);
                }
                let to = (at + STEP_BYTES).min(size);
                crate::wal::write_zeros(&*file, at, to)?;
                pacer.after_write(&*file, to)?;
                at = to;
            }
            file.sync_data().map(|()| true)
        })();
        match filled {
            Ok(true) => Ok(Some((path, file))),
            Ok(false) => {
                remove_quietly(fs, &path);
                Ok(None)
            }
            Err(e) => {
                remove_quietly(fs, &path);
                Err(e)
            }
        }
    }
}

fn remove_quietly(fs: &dyn FileSystem, path: &Path) {
    if let Err(e) = fs.remove_file(path) {
        tracing::debug!(file = %path.display(), error = %e, "spare WAL segment not removed");
    }
}
