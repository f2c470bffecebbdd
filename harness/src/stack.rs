//! The default stack's small-sized variant for tests. The default stack itself is
//! defined once, by [`strata_plugins::DefaultStack`] (`strata::open` and
//! [`strata_plugins::default_builder`] assemble it); the builders here start from it.

use std::path::Path;
use std::sync::Arc;

use strata_compaction_leveled::LeveledOptions;
use strata_core::fs::FileSystem;
use strata_core::{DbBuilder, DbOptions};
use strata_plugins::DefaultStack;
use strata_sstable_mmap::MmapTableOptions;
use strata_wal_file::FileWalOptions;

/// The default stack with explicit WAL options and file system.
pub fn builder_with(
    dir: impl AsRef<Path>,
    fs: Arc<dyn FileSystem>,
    wal: FileWalOptions,
) -> DbBuilder {
    build(DefaultStack::new().with_wal(wal), dir).with_file_system(fs)
}

/// Leveled options scaled down so that a few kilobytes of writes flush and compact
/// through every level: L0 compacts at 4 tables, L1 holds `base` bytes, ×4 per level,
/// output tables of `base / 4`.
pub fn tiny_leveled(base: u64) -> LeveledOptions {
    LeveledOptions {
        l0_trigger_files: 4,
        l0_max_bytes: base,
        l1_max_bytes: base,
        level_size_multiplier: 4,
        target_file_size: (base / 4).max(1),
        ..LeveledOptions::default()
    }
}

/// The default stack scaled down for tests: `memtable` bytes per memtable, tiny leveled
/// sizes from `base`, small WAL segments, on `fs`.
pub fn tiny_builder(
    dir: impl AsRef<Path>,
    fs: Arc<dyn FileSystem>,
    memtable: usize,
    base: u64,
) -> DbBuilder {
    let stack = DefaultStack::new()
        .with_wal(FileWalOptions::default().with_segment_size_bytes(16 * 1024))
        .with_table(MmapTableOptions { block_size: 256, ..MmapTableOptions::default() })
        .with_compaction(tiny_leveled(base))
        .with_engine(DbOptions {
            memtable_size_bytes: memtable,
            compaction_threads: 1,
            ..DbOptions::default()
        });
    build(stack, dir).with_file_system(fs)
}

fn build(stack: DefaultStack, dir: impl AsRef<Path>) -> DbBuilder {
    match stack.builder(dir) {
        Ok(builder) => builder,
        // The options above are derived from constants; a refusal is a bug in this kit
        // (or a `base` too small for any leveled layout), not an input error.
        Err(e) => panic!("the test kit's stack options are invalid: {e}"),
    }
}
