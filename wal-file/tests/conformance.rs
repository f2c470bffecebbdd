//! The WAL conformance suite (`strata_harness::conformance::wal`) on `FileWalFactory`:
//! with tiny segments (so appends, checkpoints and torn tails cross segment files) and
//! with the default preallocation on small segments.

use std::sync::Arc;

use strata_harness::conformance::wal::{self, WalCaps};
use strata_wal_file::{FileWalFactory, FileWalOptions};

#[test]
fn file_wal_with_tiny_segments_conforms() {
    let options = FileWalOptions::default().with_segment_size_bytes(4 * 1024);
    wal::run(Arc::new(FileWalFactory::new(options)), WalCaps::default()).assert_ok();
}

#[test]
fn file_wal_without_preallocation_conforms() {
    let options =
        FileWalOptions::default().with_segment_size_bytes(256 * 1024).with_preallocate(false);
    wal::run(Arc::new(FileWalFactory::new(options)), WalCaps::default()).assert_ok();
}
