//! The default embedded stack: file WAL, skiplist memtable, mmap'd SSTables and leveled
//! compaction on the OS file system — plus the small-sized variants tests use.

use std::path::Path;
use std::sync::Arc;

use strata_compaction_leveled::{LeveledOptions, LeveledPolicy};
use strata_core::fs::FileSystem;
use strata_core::{DbBuilder, DbOptions};
use strata_memtable_skiplist::SkipListFactory;
use strata_sstable_mmap::{MmapTableFormat, MmapTableOptions};
use strata_wal_file::{FileWalFactory, FileWalOptions};

/// A builder for the default stack in `dir`: `wal = "file"`, `memtable = "skiplist"`,
/// `table = "mmap"`, `compaction = "leveled"`, every option at its default.
pub fn default_builder(dir: impl AsRef<Path>) -> DbBuilder {
    DbBuilder::new(dir.as_ref())
        .with_wal(Arc::new(FileWalFactory::default()))
        .with_memtable(Arc::new(SkipListFactory))
        .with_table_format(Arc::new(MmapTableFormat::default()))
        .with_compaction_policy(Arc::new(leveled(LeveledOptions::default())))
}

/// The default stack with explicit WAL options and file system.
pub fn builder_with(
    dir: impl AsRef<Path>,
    fs: Arc<dyn FileSystem>,
    wal: FileWalOptions,
) -> DbBuilder {
    default_builder(dir).with_file_system(fs).with_wal(Arc::new(FileWalFactory::new(wal)))
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
    builder_with(dir, fs, FileWalOptions::default().with_segment_size_bytes(16 * 1024))
        .with_compaction_policy(Arc::new(leveled(tiny_leveled(base))))
        .with_table_format(Arc::new(MmapTableFormat::new(MmapTableOptions {
            block_size: 256,
            ..MmapTableOptions::default()
        })))
        .with_options(DbOptions {
            memtable_size_bytes: memtable,
            compaction_threads: 1,
            ..DbOptions::default()
        })
}

fn leveled(options: LeveledOptions) -> LeveledPolicy {
    match LeveledPolicy::new(options) {
        Ok(p) => p,
        // The options above are constants that validate; a failure is a bug here.
        Err(e) => panic!("built-in leveled options are invalid: {e}"),
    }
}
