//! Composing a [`Db`] from trait objects.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::compaction::CompactionPolicy;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::fs::{FileSystem, OsFileSystem};
use crate::memtable::MemTableFactory;
use crate::table::TableFormat;
use crate::wal::WalFactory;

/// Default size at which the active memtable is rotated: 128 MiB.
pub const DEFAULT_MEMTABLE_SIZE_BYTES: usize = 128 * 1024 * 1024;

/// Periodic store checkpoints (see [`Db::checkpoint_to`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeriodicCheckpoint {
    /// Directory that receives one sub-directory per checkpoint, named by the
    /// checkpoint's Unix time in milliseconds.
    pub dir: PathBuf,
    /// Time between checkpoints. Default: 30 minutes.
    pub interval: Duration,
    /// How many checkpoints to keep; older ones are deleted. Default: 2.
    pub keep: usize,
}

impl PeriodicCheckpoint {
    /// Every 30 minutes into `dir`, keeping the last 2.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into(), interval: Duration::from_secs(30 * 60), keep: 2 }
    }
}

/// Options the engine itself reads (components take their own options).
#[derive(Clone, Debug)]
pub struct DbOptions {
    /// Memory (as accounted by the memtable) at which the active memtable becomes
    /// immutable and a fresh one takes over. Default: 128 MiB.
    pub memtable_size_bytes: usize,
    /// Writes stop while this many immutable memtables wait for their flush, which
    /// bounds memory at about `(max_immutable_memtables + 1) × memtable_size_bytes`.
    /// Default: 4.
    pub max_immutable_memtables: usize,
    /// Each write is delayed by `slowdown_delay` while L0 holds at least this many
    /// tables. Default: 8.
    pub l0_slowdown_tables: usize,
    /// Writes stop while L0 holds at least this many tables. Default: 12.
    pub l0_stop_tables: usize,
    /// Delay per write in the slowdown state. Default: 1 ms.
    pub slowdown_delay: Duration,
    /// Threads running compaction tasks. Default: one less than the machine's cores,
    /// between 1 and 4, so the foreground keeps a core.
    pub compaction_threads: usize,
    /// A manifest bigger than this is rewritten as one snapshot edit. Default: 16 MiB.
    pub max_manifest_bytes: u64,
    /// How much the background threads (flush, compaction, periodic checkpoints) raise
    /// their own nice value when they start (Linux, per thread; 0 to 19), so that on a
    /// busy machine the scheduler runs the embedder's writers first and a writer is not
    /// descheduled for a slice behind a compaction. They still get every idle core.
    /// Elsewhere it is ignored. Default: 0 (unchanged).
    pub background_nice: i32,
    /// Optional periodic checkpoints. Default: off.
    pub periodic_checkpoint: Option<PeriodicCheckpoint>,
    /// Open as a replica of the primary at this address: client writes fail with
    /// `Error::NotPrimary` naming it, and batches arrive through
    /// [`Db::apply_replicated`](crate::Db::apply_replicated) until
    /// [`Db::promote`](crate::Db::promote). Default: `None` (a primary).
    pub replica_of: Option<String>,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self {
            memtable_size_bytes: DEFAULT_MEMTABLE_SIZE_BYTES,
            max_immutable_memtables: 4,
            l0_slowdown_tables: 8,
            l0_stop_tables: 12,
            slowdown_delay: Duration::from_millis(1),
            compaction_threads: std::thread::available_parallelism()
                .map_or(1, |n| n.get().saturating_sub(1))
                .clamp(1, 4),
            max_manifest_bytes: 16 << 20,
            background_nice: 0,
            periodic_checkpoint: None,
            replica_of: None,
        }
    }
}

impl DbOptions {
    /// Rejects settings that cannot work, naming the option.
    pub fn validate(&self) -> Result<()> {
        let fail = |m: &str| Err(Error::Config(m.to_owned()));
        if self.memtable_size_bytes == 0 {
            return fail("memtable_size_bytes must be greater than 0");
        }
        if self.max_immutable_memtables == 0 {
            return fail("max_immutable_memtables must be at least 1");
        }
        if self.l0_slowdown_tables == 0 || self.l0_stop_tables < self.l0_slowdown_tables {
            return fail(
                "l0_slowdown_tables must be >= 1 and l0_stop_tables >= l0_slowdown_tables",
            );
        }
        if self.compaction_threads == 0 {
            return fail("compaction_threads must be at least 1");
        }
        if !(0..=19).contains(&self.background_nice) {
            return fail("background_nice must be between 0 and 19 (it only lowers priority)");
        }
        if let Some(p) = &self.periodic_checkpoint {
            if p.interval.is_zero() {
                return fail("periodic_checkpoint.interval must be greater than 0");
            }
            if p.keep == 0 {
                return fail("periodic_checkpoint.keep must be at least 1");
            }
        }
        Ok(())
    }
}

/// Assembles a store from components: a file system, a WAL, a memtable factory, a table
/// format and a compaction policy.
///
/// ```no_run
/// # fn demo(wal: std::sync::Arc<dyn strata_core::WalFactory>,
/// #         mem: std::sync::Arc<dyn strata_core::MemTableFactory>,
/// #         tables: std::sync::Arc<dyn strata_core::TableFormat>,
/// #         policy: std::sync::Arc<dyn strata_core::CompactionPolicy>) -> strata_core::Result<()> {
/// let db = strata_core::DbBuilder::new("/var/lib/strata")
///     .with_wal(wal)
///     .with_memtable(mem)
///     .with_table_format(tables)
///     .with_compaction_policy(policy)
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
    format: Option<Arc<dyn TableFormat>>,
    policy: Option<Arc<dyn CompactionPolicy>>,
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
            format: None,
            policy: None,
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

    /// The table format. Required.
    pub fn with_table_format(mut self, format: Arc<dyn TableFormat>) -> Self {
        self.format = Some(format);
        self
    }

    /// The compaction policy. Required.
    pub fn with_compaction_policy(mut self, policy: Arc<dyn CompactionPolicy>) -> Self {
        self.policy = Some(policy);
        self
    }

    /// Rotation size of the active memtable. Default: 128 MiB.
    pub fn with_memtable_size_bytes(mut self, bytes: usize) -> Self {
        self.options.memtable_size_bytes = bytes;
        self
    }

    /// Replaces all engine options.
    pub fn with_options(mut self, options: DbOptions) -> Self {
        self.options = options;
        self
    }

    /// The engine options as set so far.
    pub fn options_mut(&mut self) -> &mut DbOptions {
        &mut self.options
    }

    /// Opens (or creates) the store: takes the LOCK, reads the manifest, opens the
    /// tables, opens the WAL and replays its tail, starts the background threads.
    pub fn open(self) -> Result<Db> {
        let missing = |what: &str, call: &str| {
            Error::Config(format!("no {what} configured: call DbBuilder::{call}"))
        };
        let wal = self.wal.ok_or_else(|| missing("WAL", "with_wal"))?;
        let memtable = self.memtable.ok_or_else(|| missing("memtable", "with_memtable"))?;
        let format = self.format.ok_or_else(|| missing("table format", "with_table_format"))?;
        let policy =
            self.policy.ok_or_else(|| missing("compaction policy", "with_compaction_policy"))?;
        self.options.validate()?;
        Db::open_with(super::open::Components {
            dir: self.dir,
            fs: self.fs,
            wal,
            memtables: memtable,
            format,
            policy,
            options: self.options,
        })
    }
}
