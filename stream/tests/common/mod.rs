//! Test support: the default store stack (the same components as
//! `strata_harness::stack::default_builder`).

#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use strata_compaction_leveled::{LeveledOptions, LeveledPolicy};
use strata_core::{Db, DbBuilder};
use strata_memtable_skiplist::SkipListFactory;
use strata_sstable_mmap::MmapTableFormat;
use strata_wal_file::{FileWalFactory, FileWalOptions};

pub fn builder(dir: &Path) -> DbBuilder {
    DbBuilder::new(dir)
        .with_wal(Arc::new(FileWalFactory::default()))
        .with_memtable(Arc::new(SkipListFactory))
        .with_table_format(Arc::new(MmapTableFormat::default()))
        .with_compaction_policy(Arc::new(LeveledPolicy::new(LeveledOptions::default()).unwrap()))
}

/// The default stack, keeping up to 1 GiB of checkpointed WAL segments so that
/// subscribers can resume from the log after the store flushed.
pub fn builder_retaining(dir: &Path) -> DbBuilder {
    builder(dir).with_wal(Arc::new(FileWalFactory::new(
        FileWalOptions::default()
            .with_retention_bytes(1 << 30)
            // Preallocated (the default), so tailing readers meet zeroed, half-written
            // records while writers append — the case the file WAL's reader must re-read.
            .with_segment_size_bytes(1 << 20),
    )))
}

pub fn open(dir: &Path) -> Arc<Db> {
    Arc::new(builder_retaining(dir).open().unwrap())
}
