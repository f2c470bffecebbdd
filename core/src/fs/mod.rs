//! The I/O seam: every file the WAL and tables touch goes through [`FileSystem`].
//!
//! The default is the operating system ([`OsFileSystem`]); the test harness wraps or
//! replaces it to count fsyncs, drop unsynced data (power loss), tear writes and inject
//! errors. A component that bypasses this seam cannot be crash-tested.

mod os;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

pub use os::OsFileSystem;

use crate::error::Result;

/// How [`FileSystem::open`] treats an existing or missing file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Create a new file for reading and writing; fail if it already exists (so creating
    /// a file can never truncate one that holds data).
    CreateNew,
    /// Open an existing file for reading and writing; fail if it is missing.
    ReadWrite,
    /// Open an existing file for reading only; fail if it is missing.
    ReadOnly,
}

/// A directory tree the store lives in.
///
/// Contract, for every implementation:
/// - A file's data survives a power loss only once [`File::sync_data`] returned `Ok`
///   after the write; a newly created, renamed or removed directory entry survives only
///   once [`FileSystem::sync_dir`] on its parent returned `Ok`.
/// - Every error names the path and operation (`Error::Io`).
/// - `lock` is exclusive across processes: while one guard lives, another `lock` on the
///   same path fails with `Error::Locked`.
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// Opens `path` as `mode` says.
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Arc<dyn File>>;
    /// Atomically renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> Result<()>;
    /// Lists the names (not paths) of the entries in `dir`, in no particular order.
    fn list_dir(&self, dir: &Path) -> Result<Vec<String>>;
    /// Creates `dir` and its missing parents.
    fn create_dir_all(&self, dir: &Path) -> Result<()>;
    /// Makes the entries of `dir` (creations, renames, removals) durable.
    fn sync_dir(&self, dir: &Path) -> Result<()>;
    /// True when `path` exists.
    fn exists(&self, path: &Path) -> Result<bool>;
    /// Takes the exclusive lock on `path` (created if missing) until the guard drops.
    fn lock(&self, path: &Path) -> Result<Box<dyn FileLock>>;
    /// Makes `to` a new name for the immutable file `from` (a hard link where the file
    /// system has them). The default copies the bytes and syncs the copy, which is what
    /// a caller must assume: `to` is durable once the parent directory is synced.
    fn hard_link(&self, from: &Path, to: &Path) -> Result<()> {
        copy_file(self, from, to)
    }
}

/// Copies `from` to the new file `to` through `fs` and syncs the copy.
pub fn copy_file<F: FileSystem + ?Sized>(fs: &F, from: &Path, to: &Path) -> Result<()> {
    let src = fs.open(from, OpenMode::ReadOnly)?;
    let dst = fs.open(to, OpenMode::CreateNew)?;
    let len = src.len()?;
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    while off < len {
        let want = usize::try_from((len - off).min(buf.len() as u64)).unwrap_or(buf.len());
        let chunk = buf.get_mut(..want).unwrap_or_default();
        read_exact_at(&*src, chunk, off)?;
        dst.write_all_at(chunk, off)?;
        off += want as u64;
    }
    dst.sync_data()
}

/// An open file addressed by offset, so one handle can be shared by a writer and a
/// concurrent syncer or reader.
///
/// Contract: `write_all_at` either writes every byte or returns an error; `read_at`
/// returns fewer bytes than asked only at end of file; `sync_data` returning `Ok` means
/// every byte written before the call is on stable storage, and returning `Err` means
/// nothing can be assumed about unsynced bytes (callers must not retry and trust it).
#[expect(clippy::len_without_is_empty, reason = "a file's length is a size, not a collection's")]
pub trait File: Send + Sync + fmt::Debug {
    /// Reads up to `buf.len()` bytes at `offset`; returns how many were read (0 at EOF).
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize>;
    /// Writes all of `buf` at `offset`, extending the file if needed.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> Result<()>;
    /// Flushes the file's data (and the metadata needed to read it) to stable storage.
    fn sync_data(&self) -> Result<()>;
    /// The file's current length in bytes.
    fn len(&self) -> Result<u64>;
    /// Truncates or extends (with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> Result<()>;
    /// Reserves space so that the file is at least `len` bytes long, filled with zeros
    /// (fallocate where supported), without changing existing bytes.
    fn allocate(&self, len: u64) -> Result<()>;
    /// Asks the OS to start writing `[offset, offset + len)` to storage without waiting
    /// for it (Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`). A hint that keeps dirty
    /// data from piling up until the next `sync_data`; it promises nothing about
    /// durability. The default does nothing.
    fn start_writeback(&self, offset: u64, len: u64) -> Result<()> {
        let _ = (offset, len);
        Ok(())
    }
    /// The path this file was opened with (for error messages).
    fn path(&self) -> &Path;
    /// The OS file descriptor behind this file, when there is one, so a reader can map
    /// it into memory (`mmap`). File systems that are not the OS (the simulated one in
    /// the harness) return `None`, and readers fall back to `read_at`.
    fn as_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
}

/// Holds an exclusive lock; dropping it releases the lock.
pub trait FileLock: Send + Sync + fmt::Debug {}

/// Reads exactly `buf.len()` bytes at `offset`, or returns a corruption error saying the
/// file ended early.
pub fn read_exact_at(file: &dyn File, buf: &mut [u8], offset: u64) -> Result<()> {
    let mut done = 0usize;
    while done < buf.len() {
        let rest = buf.get_mut(done..).unwrap_or_default();
        let n = file.read_at(rest, offset + done as u64)?;
        if n == 0 {
            return Err(crate::Error::corruption(
                file.path(),
                offset + done as u64,
                format!("file ends {} bytes before the expected {}", buf.len() - done, buf.len()),
            ));
        }
        done += n;
    }
    Ok(())
}

/// Paces [`File::start_writeback`] for a file written front to back: once `every`
/// bytes (0: never) were written past the point where writeback last started, starts
/// it for them, so the file never piles up much more dirty data than that for its next
/// `sync_data`. Used by the WAL and the table builder.
///
/// Writeback stays `every` bytes behind the write position, on a page boundary (as
/// RocksDB's `bytes_per_sync` stays 1 MiB behind): a page under writeback is locked
/// and, on devices that need stable pages, cannot change until its write completes, so
/// a hint that reached the page being appended to made the next append wait for the
/// disk (`__filemap_get_folio <- ext4_da_write_begin` in `perf sched`, 2026-12-08).
#[derive(Clone, Copy, Debug)]
pub struct WritebackPacer {
    every: u64,
    started_to: u64,
}

impl WritebackPacer {
    /// A pacer for a file whose bytes before `from` need no writeback from it.
    pub fn new(every: u64, from: u64) -> Self {
        Self { every, started_to: from }
    }

    /// `file` now holds written bytes up to `written_to`: starts their writeback if
    /// they are due.
    pub fn after_write(&mut self, file: &dyn File, written_to: u64) -> Result<()> {
        const PAGE: u64 = 4096;
        let to = written_to.saturating_sub(self.every) / PAGE * PAGE;
        if self.every == 0 || to.saturating_sub(self.started_to) < self.every {
            return Ok(());
        }
        file.start_writeback(self.started_to, to - self.started_to)?;
        self.started_to = to;
        Ok(())
    }
}

/// Reads the whole file into memory.
pub fn read_all(file: &dyn File) -> Result<Vec<u8>> {
    let len = file.len()?;
    let len_usize = usize::try_from(len).map_err(|_| {
        crate::Error::corruption(file.path(), 0, format!("file of {len} bytes is too large"))
    })?;
    let mut buf = vec![0u8; len_usize];
    read_exact_at(file, &mut buf, 0)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file that only records the writeback hints it gets.
    #[derive(Debug, Default)]
    struct Hints(parking_lot::Mutex<Vec<(u64, u64)>>);

    impl File for Hints {
        fn read_at(&self, _: &mut [u8], _: u64) -> Result<usize> {
            Ok(0)
        }
        fn write_all_at(&self, _: &[u8], _: u64) -> Result<()> {
            Ok(())
        }
        fn sync_data(&self) -> Result<()> {
            Ok(())
        }
        fn len(&self) -> Result<u64> {
            Ok(0)
        }
        fn set_len(&self, _: u64) -> Result<()> {
            Ok(())
        }
        fn allocate(&self, _: u64) -> Result<()> {
            Ok(())
        }
        fn start_writeback(&self, offset: u64, len: u64) -> Result<()> {
            self.0.lock().push((offset, len));
            Ok(())
        }
        fn path(&self) -> &Path {
            Path::new("hints")
        }
    }

    /// Appends of odd sizes: every hint is page aligned, covers what the previous one
    /// left off, and ends at least `every` bytes behind the write position — never on
    /// the page being appended to.
    #[test]
    fn writeback_hints_stay_a_whole_interval_behind_on_page_boundaries() {
        let every = 64 * 1024;
        let file = Hints::default();
        let mut pacer = WritebackPacer::new(every, 100);
        let mut written = 100u64;
        let mut behind = Vec::new();
        for i in 0..5000u64 {
            written += 37 + (i * 7919) % 1500;
            let before = file.0.lock().len();
            pacer.after_write(&file, written).expect("hint");
            if file.0.lock().len() > before {
                let (offset, len) = *file.0.lock().last().expect("a hint");
                behind.push(written - (offset + len));
            }
        }
        let hints = file.0.lock().clone();
        assert!(hints.len() as u64 >= written / every - 3, "{} hints", hints.len());
        let mut expected_start = 100;
        for (offset, len) in &hints {
            assert_eq!(*offset, expected_start, "hints are contiguous");
            assert_eq!((offset + len) % 4096, 0, "hints end on a page boundary");
            assert!(*len >= every, "a hint covers at least `every` bytes");
            expected_start = offset + len;
        }
        assert!(behind.iter().all(|b| *b >= every), "a hint reached the write position");
        let mut none = WritebackPacer::new(0, 0);
        none.after_write(&file, 1 << 30).expect("no hint");
        assert_eq!(file.0.lock().len(), hints.len(), "every = 0 gives no hint");
    }
}
