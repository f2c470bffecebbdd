//! Composing a [`Db`] from trait objects.

use std::path::PathBuf;
use std::sync::Arc;

use crate::db::Db;
use crate::error::{Error, Result};
use crate::fs::{FileSystem, OsFileSystem};
use crate::memtable::MemTableFactory;
use crate::wal::WalFactory;

/// Default size at which the active memtable is rotated: 128 MiB.
pub const DEFAULT_MEMTABLE_SIZE_BYTES: usize = 128 * 1024 * 1024;

/// Options the engine itself reads (components take their own options).
#[derive(Clone, Debug)]
pub struct DbOptions {
    /// Memory (as accounted by the memtable) at which the active memtable becomes
    /// immutable and a fresh one takes over.
    pub memtable_size_bytes: usize,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self { memtable_size_bytes: DEFAULT_MEMTABLE_SIZE_BYTES }
    }
}

/// Assembles a store from components: a file system, a WAL and a memtable factory.
///
/// ```no_run
/// # fn demo(wal: std::sync::Arc<dyn strata_core::WalFactory>,
/// #         mem: std::sync::Arc<dyn strata_core::MemTableFactory>) -> strata_core::Result<()> {
/// let db = strata_core::DbBuilder::new("/var/lib/strata")
///     .with_wal(wal)
///     .with_memtable(mem)
///     .with_memtable_size_bytes(64 << 20)
///     .open()?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
#[must_use]
pub struct DbBuilder {
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
    wal: Option<Arc<dyn WalFactory>>,
    memtable: Option<Arc<dyn MemTableFactory>>,
    options: DbOptions,
}

impl DbBuilder {
    /// A builder for the store in `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            dir: dir.into(),
            fs: OsFileSystem::shared(),
            wal: None,
            memtable: None,
            options: DbOptions::default(),
        }
    }

    /// The file system every component goes through. Default: [`OsFileSystem`].
    pub fn with_file_system(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.fs = fs;
        self
    }

    /// The write-ahead log. Required.
    pub fn with_wal(mut self, wal: Arc<dyn WalFactory>) -> Self {
        self.wal = Some(wal);
        self
    }

    /// The memtable implementation. Required.
    pub fn with_memtable(mut self, memtable: Arc<dyn MemTableFactory>) -> Self {
        self.memtable = Some(memtable);
        self
    }

    /// Rotation size of the active memtable. Default: 128 MiB.
    pub fn with_memtable_size_bytes(mut self, bytes: usize) -> Self {
        self.options.memtable_size_bytes = bytes;
        self
    }

    /// Opens (or creates) the store: takes the LOCK, opens the WAL and replays it.
    pub fn open(self) -> Result<Db> {
        let wal = self
            .wal
            .ok_or_else(|| Error::Config("no WAL configured: call DbBuilder::with_wal".into()))?;
        let memtable = self.memtable.ok_or_else(|| {
            Error::Config("no memtable configured: call DbBuilder::with_memtable".into())
        })?;
        if self.options.memtable_size_bytes == 0 {
            return Err(Error::Config("memtable_size_bytes must be greater than 0".into()));
        }
        Db::open_with(self.dir, self.fs, wal, memtable, self.options)
    }
}
