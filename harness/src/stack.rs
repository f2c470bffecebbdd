//! The default embedded stack: file WAL + skiplist memtable on the OS file system.

use std::path::Path;
use std::sync::Arc;

use strata_core::DbBuilder;
use strata_core::fs::FileSystem;
use strata_memtable_skiplist::SkipListFactory;
use strata_wal_file::{FileWalFactory, FileWalOptions};

/// A builder for the default stack in `dir`: `wal = "file"`, `memtable = "skiplist"`.
pub fn default_builder(dir: impl AsRef<Path>) -> DbBuilder {
    DbBuilder::new(dir.as_ref())
        .with_wal(Arc::new(FileWalFactory::default()))
        .with_memtable(Arc::new(SkipListFactory))
}

/// The default stack with explicit WAL options and file system (tests use small
/// segments and the simulated file system).
pub fn builder_with(
    dir: impl AsRef<Path>,
    fs: Arc<dyn FileSystem>,
    wal: FileWalOptions,
) -> DbBuilder {
    DbBuilder::new(dir.as_ref())
        .with_file_system(fs)
        .with_wal(Arc::new(FileWalFactory::new(wal)))
        .with_memtable(Arc::new(SkipListFactory))
}
