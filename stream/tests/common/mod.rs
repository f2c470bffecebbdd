//! Test support: the default store stack (`strata_plugins::DefaultStack`) with the WAL
//! settings the subscriber tests need.

#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;

use strata_core::{Db, DbBuilder};
use strata_plugins::DefaultStack;
use strata_wal_file::FileWalOptions;

pub fn builder(dir: &Path) -> DbBuilder {
    strata_plugins::default_builder(dir)
}

fn with_wal(dir: &Path, wal: FileWalOptions) -> DbBuilder {
    DefaultStack::new().with_wal(wal).builder(dir).unwrap()
}

/// The default stack, keeping up to 1 GiB of checkpointed WAL segments so that
/// subscribers can resume from the log after the store flushed.
pub fn builder_retaining(dir: &Path) -> DbBuilder {
    with_wal(
        dir,
        FileWalOptions::default()
            .with_retention_bytes(1 << 30)
            // Preallocated (the default), so tailing readers meet zeroed, half-written
            // records while writers append — the case the file WAL's reader must re-read.
            .with_segment_size_bytes(1 << 20),
    )
}

pub fn open(dir: &Path) -> Arc<Db> {
    Arc::new(builder_retaining(dir).open().unwrap())
}

/// The default stack with small WAL segments deleted as soon as a flush checkpoints
/// them, so the log's start moves forward (for resumes from before it).
pub fn builder_pruning(dir: &Path) -> DbBuilder {
    with_wal(
        dir,
        FileWalOptions::default()
            .with_retention_bytes(0)
            .with_preallocate(false)
            .with_zero_ahead_bytes(0)
            .with_segment_size_bytes(16 << 10),
    )
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
