//! An open handle of a [`SimFileSystem`](super::SimFileSystem) file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use parking_lot::MutexGuard;
use strata_core::fs::File;
use strata_core::{Error, Result};

use super::image::{FileData, Node};
use super::state::Inner;
use super::{EBADF, EFBIG, EINVAL, EIO, ENOSPC, errno};

/// Largest file the simulation accepts (a guard against a bogus offset allocating
/// terabytes); larger writes fail with `EFBIG`.
const MAX_FILE_LEN: u64 = 1 << 34;

/// An open handle of a [`SimFileSystem`] file.
pub(super) struct SimFile {
    pub(super) inner: Arc<Inner>,
    pub(super) node: Arc<Node>,
    pub(super) path: PathBuf,
    pub(super) writable: bool,
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile")
            .field("path", &self.path)
            .field("writable", &self.writable)
            .finish()
    }
}

impl SimFile {
    /// Locks the file's data, refusing if the file system crashed (checked under the
    /// file lock; see `crash_with`).
    fn data(&self, op: &'static str) -> Result<MutexGuard<'_, FileData>> {
        let data = self.node.data.lock();
        self.inner.check_alive(op, &self.path)?;
        Ok(data)
    }

    /// Like [`data`](Self::data), and also refuses read-only handles.
    fn data_mut(&self, op: &'static str) -> Result<MutexGuard<'_, FileData>> {
        let data = self.data(op)?;
        if !self.writable {
            return Err(Error::io(op, &self.path, errno(EBADF)));
        }
        Ok(data)
    }

    /// Converts a requested file length, refusing absurd ones.
    fn file_len(&self, op: &'static str, len: u64) -> Result<usize> {
        if len > MAX_FILE_LEN {
            return Err(Error::io(op, &self.path, errno(EFBIG)));
        }
        usize::try_from(len).map_err(|_| Error::io(op, &self.path, errno(EFBIG)))
    }
}

impl File for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        let data = self.data("read")?;
        let Some(src) = usize::try_from(offset).ok().and_then(|o| data.live.get(o..)) else {
            return Ok(0);
        };
        let n = src.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), src.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok(n)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        let mut data = self.data_mut("write")?;
        let n = self.inner.write_count.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= self.inner.write_fail_at.load(Ordering::SeqCst) {
            return Err(Error::io("write", &self.path, errno(ENOSPC)));
        }
        if buf.is_empty() {
            return Ok(());
        }
        let end = offset
            .checked_add(buf.len() as u64)
            .ok_or_else(|| Error::io("write", &self.path, errno(EINVAL)))?;
        let end = self.file_len("write", end)?;
        let start = end - buf.len();
        if data.live.len() < end {
            data.resize_live(end);
        }
        if let Some(dst) = data.live.get_mut(start..end) {
            dst.copy_from_slice(buf);
        }
        data.mark_dirty(start, end);
        Ok(())
    }

    fn sync_data(&self) -> Result<()> {
        let mut data = self.data("fdatasync")?;
        let n = self.inner.sync_data_count.fetch_add(1, Ordering::SeqCst) + 1;
        if n >= self.inner.sync_fail_at.load(Ordering::SeqCst) {
            return Err(Error::io("fdatasync", &self.path, errno(EIO)));
        }
        data.sync();
        Ok(())
    }

    fn len(&self) -> Result<u64> {
        Ok(self.data("stat")?.live.len() as u64)
    }

    fn set_len(&self, len: u64) -> Result<()> {
        let mut data = self.data_mut("truncate")?;
        let len = self.file_len("truncate", len)?;
        data.resize_live(len);
        Ok(())
    }

    fn allocate(&self, len: u64) -> Result<()> {
        let mut data = self.data_mut("fallocate")?;
        let len = self.file_len("fallocate", len)?;
        if len > data.live.len() {
            data.resize_live(len);
        }
        Ok(())
    }

    fn path(&self) -> &Path {
        &self.path
    }
}
