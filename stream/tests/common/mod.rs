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

/// The default stack with small WAL segments deleted as soon as a flush checkpoints
/// them, so the log's start moves forward (for resumes from before it).
pub fn builder_pruning(dir: &Path) -> DbBuilder {
    builder(dir).with_wal(Arc::new(FileWalFactory::new(
        FileWalOptions::default()
            .with_retention_bytes(0)
            .with_preallocate(false)
            .with_zero_ahead_bytes(0)
            .with_segment_size_bytes(16 << 10),
    )))
}

/// The oldest sequence the store's log still holds (1 while nothing was deleted).
pub fn oldest_in_log(db: &Db) -> u64 {
    match db.read_log_from(strata_core::SeqNo(1)) {
        Ok(_) => 1,
        Err(strata_core::Error::SequenceUnavailable { oldest, .. }) => oldest.0,
        Err(e) => panic!("reading the log: {e}"),
    }
}

/// Flushes the store and waits until the flush's WAL checkpoint deleted the oldest
/// segments (the checkpoint runs right after the flush installs its table).
pub fn flush_until_log_starts_after(db: &Db, seq: u64) -> u64 {
    db.flush().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let oldest = oldest_in_log(db);
        if oldest > seq {
            return oldest;
        }
        assert!(std::time::Instant::now() < deadline, "the log still starts at {oldest}");
        std::thread::yield_now();
    }
}
