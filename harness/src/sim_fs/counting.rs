//! [`CountingFileSystem`]: a [`FileSystem`] wrapper that counts durability calls.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Condvar, Mutex};

use strata_core::Result;
use strata_core::fs::{File, FileLock, FileSystem, OpenMode, OsFileSystem};

#[derive(Debug, Default)]
struct Counts {
    sync_data: AtomicU64,
    sync_dir: AtomicU64,
    writes: AtomicU64,
    writebacks: AtomicU64,
    /// While true, `sync_data` calls wait (see [`CountingFileSystem::hold_syncs`]).
    held: Mutex<bool>,
    released: Condvar,
    waiting: AtomicU64,
    /// While true, `remove_file` calls wait (see [`CountingFileSystem::hold_removes`]).
    removes_held: Mutex<bool>,
    removes_released: Condvar,
    removes_waiting: AtomicU64,
}

/// A [`FileSystem`] wrapper that counts `sync_data`, `sync_dir`, `write_all_at` and
/// `start_writeback` calls made through it (and through every file handle it opened),
/// then delegates to the wrapped file system unchanged.
///
/// It adds no crash model of its own: durability is whatever the wrapped file system
/// provides (the real disk for [`OsFileSystem`]). Counts include calls that failed.
/// Clones share the counters, so a test can give one clone to the store and read the
/// counts from another, e.g. to show that concurrent commits shared one fsync.
#[derive(Clone, Debug)]
pub struct CountingFileSystem {
    inner: Arc<dyn FileSystem>,
    counts: Arc<Counts>,
}

impl CountingFileSystem {
    /// Wraps `inner`, with all counters at zero.
    pub fn new(inner: Arc<dyn FileSystem>) -> Self {
        Self { inner, counts: Arc::new(Counts::default()) }
    }

    /// Wraps the operating system's file system ([`OsFileSystem`]).
    pub fn os() -> Self {
        Self::new(OsFileSystem::shared())
    }

    /// A clone of this wrapper as a shareable trait object (counters shared).
    pub fn shared(&self) -> Arc<dyn FileSystem> {
        Arc::new(self.clone())
    }

    /// Number of `File::sync_data` calls made through handles this wrapper opened.
    pub fn sync_data_count(&self) -> u64 {
        self.counts.sync_data.load(Ordering::SeqCst)
    }

    /// Number of `FileSystem::sync_dir` calls made through this wrapper.
    pub fn sync_dir_count(&self) -> u64 {
        self.counts.sync_dir.load(Ordering::SeqCst)
    }

    /// Number of `File::write_all_at` calls made through handles this wrapper opened.
    pub fn write_count(&self) -> u64 {
        self.counts.writes.load(Ordering::SeqCst)
    }

    /// Number of `File::start_writeback` calls made through handles this wrapper opened.
    pub fn writeback_count(&self) -> u64 {
        self.counts.writebacks.load(Ordering::SeqCst)
    }

    /// From now on every `File::sync_data` waits inside the call until
    /// [`release_syncs`](Self::release_syncs): a test holds an fdatasync "in flight" as
    /// long as it likes, to show what does and does not wait for one.
    pub fn hold_syncs(&self) {
        *self.counts.held.lock() = true;
    }

    /// Lets every held and later `sync_data` through.
    pub fn release_syncs(&self) {
        *self.counts.held.lock() = false;
        self.counts.released.notify_all();
    }

    /// Number of `sync_data` calls waiting in [`hold_syncs`](Self::hold_syncs) now.
    pub fn held_syncs(&self) -> u64 {
        self.counts.waiting.load(Ordering::SeqCst)
    }

    /// From now on every `FileSystem::remove_file` waits inside the call until
    /// [`release_removes`](Self::release_removes): a test holds a deletion in flight to
    /// show what does and does not wait for one.
    pub fn hold_removes(&self) {
        *self.counts.removes_held.lock() = true;
    }

    /// Lets every held and later `remove_file` through.
    pub fn release_removes(&self) {
        *self.counts.removes_held.lock() = false;
        self.counts.removes_released.notify_all();
    }

    /// Number of `remove_file` calls waiting in [`hold_removes`](Self::hold_removes) now.
    pub fn held_removes(&self) -> u64 {
        self.counts.removes_waiting.load(Ordering::SeqCst)
    }

    /// Sets every counter back to zero (for counting one phase of a test).
    pub fn reset_counts(&self) {
        self.counts.sync_data.store(0, Ordering::SeqCst);
        self.counts.sync_dir.store(0, Ordering::SeqCst);
        self.counts.writes.store(0, Ordering::SeqCst);
        self.counts.writebacks.store(0, Ordering::SeqCst);
    }
}

impl FileSystem for CountingFileSystem {
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Arc<dyn File>> {
        let inner = self.inner.open(path, mode)?;
        Ok(Arc::new(CountingFile { inner, counts: self.counts.clone() }))
    }

    fn rename(&self, from: &Path, to: &Path) -> Result<()> {
        self.inner.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> Result<()> {
        let mut held = self.counts.removes_held.lock();
        if *held {
            self.counts.removes_waiting.fetch_add(1, Ordering::SeqCst);
            while *held {
                self.counts.removes_released.wait(&mut held);
            }
            self.counts.removes_waiting.fetch_sub(1, Ordering::SeqCst);
        }
        drop(held);
        self.inner.remove_file(path)
    }

    fn list_dir(&self, dir: &Path) -> Result<Vec<String>> {
        self.inner.list_dir(dir)
    }

    fn create_dir_all(&self, dir: &Path) -> Result<()> {
        self.inner.create_dir_all(dir)
    }

    fn sync_dir(&self, dir: &Path) -> Result<()> {
        self.counts.sync_dir.fetch_add(1, Ordering::SeqCst);
        self.inner.sync_dir(dir)
    }

    fn exists(&self, path: &Path) -> Result<bool> {
        self.inner.exists(path)
    }

    fn lock(&self, path: &Path) -> Result<Box<dyn FileLock>> {
        self.inner.lock(path)
    }
}

/// A file handle opened through a [`CountingFileSystem`].
#[derive(Debug)]
struct CountingFile {
    inner: Arc<dyn File>,
    counts: Arc<Counts>,
}

impl File for CountingFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> Result<usize> {
        self.inner.read_at(buf, offset)
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.counts.writes.fetch_add(1, Ordering::SeqCst);
        self.inner.write_all_at(buf, offset)
    }

    fn sync_data(&self) -> Result<()> {
        self.counts.sync_data.fetch_add(1, Ordering::SeqCst);
        {
            let mut held = self.counts.held.lock();
            if *held {
                self.counts.waiting.fetch_add(1, Ordering::SeqCst);
                while *held {
                    self.counts.released.wait(&mut held);
                }
                self.counts.waiting.fetch_sub(1, Ordering::SeqCst);
            }
        }
        self.inner.sync_data()
    }

    fn len(&self) -> Result<u64> {
        self.inner.len()
    }

    fn set_len(&self, len: u64) -> Result<()> {
        self.inner.set_len(len)
    }

    fn allocate(&self, len: u64) -> Result<()> {
        self.inner.allocate(len)
    }

    fn start_writeback(&self, offset: u64, len: u64) -> Result<()> {
        self.counts.writebacks.fetch_add(1, Ordering::SeqCst);
        self.inner.start_writeback(offset, len)
    }

    fn path(&self) -> &Path {
        self.inner.path()
    }
}

#[cfg(test)]
mod tests {
    use strata_core::fs::read_all;

    use super::*;
    use crate::sim_fs::SimFileSystem;

    fn p(s: &str) -> &Path {
        Path::new(s)
    }

    #[test]
    fn counting_file_system_counts_on_a_real_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let counting = CountingFileSystem::os();
        let fs = counting.shared();
        let path = dir.path().join("f");
        let f = fs.open(&path, OpenMode::CreateNew).expect("create");
        f.write_all_at(b"abc", 0).expect("write");
        f.write_all_at(b"def", 3).expect("write");
        f.sync_data().expect("sync");
        fs.sync_dir(dir.path()).expect("sync dir");
        let g = fs.open(&path, OpenMode::ReadOnly).expect("reopen");
        assert_eq!(read_all(g.as_ref()).expect("read"), b"abcdef");
        g.sync_data().expect("sync via second handle");
        assert_eq!(counting.write_count(), 2);
        assert_eq!(counting.sync_data_count(), 2);
        assert_eq!(counting.sync_dir_count(), 1);
        assert_eq!(std::fs::read(&path).expect("on disk"), b"abcdef");
        // Failed calls count too, and errors pass through untouched.
        assert!(g.write_all_at(b"x", 0).is_err());
        assert_eq!(counting.write_count(), 3);
        counting.reset_counts();
        assert_eq!(
            (counting.write_count(), counting.sync_data_count(), counting.sync_dir_count()),
            (0, 0, 0)
        );
    }

    #[test]
    fn counting_file_system_wraps_the_simulator() {
        let sim = SimFileSystem::new();
        let counting = CountingFileSystem::new(sim.shared());
        counting.create_dir_all(p("/db")).expect("mkdir");
        let f = counting.open(p("/db/f"), OpenMode::CreateNew).expect("create");
        f.write_all_at(b"x", 0).expect("write");
        f.sync_data().expect("sync");
        counting.sync_dir(p("/db")).expect("sync dir");
        assert_eq!((counting.write_count(), counting.sync_data_count()), (1, 1));
        assert_eq!((sim.write_count(), sim.sync_data_count(), sim.sync_dir_count()), (1, 1, 1));
        assert_eq!(sim.crash().read_file("/db/f").expect("f"), b"x");
    }
}
