//! The default stack, defined once.
//!
//! [`DefaultStack`] is the single definition of which components a store gets when
//! nobody chooses: the segmented file WAL (`wal = "file"`), the skiplist memtable
//! (`memtable = "skiplist"`), mmap'd SSTables (`table = "mmap"`) and leveled compaction
//! (`compaction = "leveled"`) on the OS file system, each with its own default options,
//! and [`DbOptions::default`] for the engine. Everything else derives from it:
//! [`default_builder`], the plugin names of [`StackConfig::default`](crate::StackConfig)
//! and of a TOML section without `kind` ([`default_plugin`]), the `strata` facade's
//! `Options`, the CLI and the test kit's small-sized variant. [`default_stack_toml`]
//! spells it out as a file (a test keeps the two in step).
//!
//! [`default_stack_toml`]: crate::default_stack_toml

use std::path::Path;
use std::sync::Arc;

use crate::registry::PluginKind;
use strata_compaction_leveled::{LeveledOptions, LeveledPolicy};
use strata_core::{
    CompactionPolicy, Db, DbBuilder, DbOptions, MemTableFactory, Result, TableFormat, WalFactory,
};
use strata_failover_manual::ManualFactory;
use strata_memtable_skiplist::SkipListFactory;
use strata_sstable_mmap::{MmapTableFormat, MmapTableOptions};
use strata_wal_file::{FileWalFactory, FileWalOptions};

/// The default stack with its options: what [`default_builder`] and `strata::open`
/// assemble, with every field at its default.
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let db = strata_plugins::DefaultStack::new()
///     .with_memtable_size_bytes(8 << 20)
///     .open(dir.path())?;
/// db.put(b"k", b"v", strata_core::Durability::Sync)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
#[must_use]
pub struct DefaultStack {
    /// Options of the file WAL (`[wal]`). Default: [`FileWalOptions::default`].
    pub wal: FileWalOptions,
    /// Options of the mmap table format (`[table]`). Default:
    /// [`MmapTableOptions::default`].
    pub table: MmapTableOptions,
    /// Options of the leveled policy (`[compaction]`). Default:
    /// [`LeveledOptions::default`].
    pub compaction: LeveledOptions,
    /// The engine's own options (`[engine]`). Default: [`DbOptions::default`].
    pub engine: DbOptions,
}

impl DefaultStack {
    /// The default stack with every option at its default.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the file WAL's options. Default: [`FileWalOptions::default`].
    pub fn with_wal(mut self, wal: FileWalOptions) -> Self {
        self.wal = wal;
        self
    }

    /// Replaces the table format's options. Default: [`MmapTableOptions::default`].
    pub fn with_table(mut self, table: MmapTableOptions) -> Self {
        self.table = table;
        self
    }

    /// Replaces the leveled policy's options. Default: [`LeveledOptions::default`].
    pub fn with_compaction(mut self, compaction: LeveledOptions) -> Self {
        self.compaction = compaction;
        self
    }

    /// Replaces the engine's options. Default: [`DbOptions::default`].
    pub fn with_engine(mut self, engine: DbOptions) -> Self {
        self.engine = engine;
        self
    }

    /// Sets the memtable size at which the active memtable is rotated. Default: 128 MiB
    /// ([`DbOptions::memtable_size_bytes`]).
    pub fn with_memtable_size_bytes(mut self, bytes: usize) -> Self {
        self.engine.memtable_size_bytes = bytes;
        self
    }

    /// A builder for the store in `dir` with these components and options; nothing is
    /// opened yet. Further `with_*` calls on the builder (a file system, another
    /// component) replace what this stack chose.
    ///
    /// Fails with [`strata_core::Error::Config`] when the compaction options are
    /// inconsistent (see [`LeveledOptions::validate`]).
    pub fn builder(&self, dir: impl AsRef<Path>) -> Result<DbBuilder> {
        let policy = LeveledPolicy::new(self.compaction.clone())?;
        Ok(assemble(dir.as_ref(), self.wal.clone(), self.table, policy, self.engine.clone()))
    }

    /// Opens (or creates) the store in `dir` on this stack.
    pub fn open(&self, dir: impl AsRef<Path>) -> Result<Db> {
        self.builder(dir)?.open()
    }
}

/// A builder for the store in `dir` on the default stack with every option at its
/// default (the same as [`DefaultStack::new`]`.builder(dir)`, which cannot fail then).
pub fn default_builder(dir: impl AsRef<Path>) -> DbBuilder {
    assemble(
        dir.as_ref(),
        FileWalOptions::default(),
        MmapTableOptions::default(),
        LeveledPolicy::default(),
        DbOptions::default(),
    )
}

/// The registered name of the default plugin of `kind` (`file`, `skiplist`, `mmap`,
/// `leveled`): the name of the component [`DefaultStack`] uses.
pub fn default_plugin(kind: PluginKind) -> &'static str {
    match kind {
        PluginKind::Wal => default_wal(FileWalOptions::default()).name(),
        PluginKind::MemTable => default_memtable().name(),
        PluginKind::Table => default_table(MmapTableOptions::default()).name(),
        PluginKind::Compaction => LeveledPolicy::default().name(),
        // Not part of a store's stack (a single node runs no failover); the policy a
        // `[failover]` section without `kind` selects. `raft` needs the voter settings
        // (node id, voters), which have no defaults, so it is chosen by name.
        PluginKind::Failover => strata_core::FailoverFactory::name(&ManualFactory),
    }
}

fn default_wal(options: FileWalOptions) -> FileWalFactory {
    FileWalFactory::new(options)
}

fn default_memtable() -> SkipListFactory {
    SkipListFactory::new()
}

fn default_table(options: MmapTableOptions) -> MmapTableFormat {
    MmapTableFormat::new(options)
}

fn assemble(
    dir: &Path,
    wal: FileWalOptions,
    table: MmapTableOptions,
    policy: LeveledPolicy,
    engine: DbOptions,
) -> DbBuilder {
    let wal: Arc<dyn WalFactory> = Arc::new(default_wal(wal));
    let memtable: Arc<dyn MemTableFactory> = Arc::new(default_memtable());
    let table: Arc<dyn TableFormat> = Arc::new(default_table(table));
    let policy: Arc<dyn CompactionPolicy> = Arc::new(policy);
    DbBuilder::new(dir)
        .with_wal(wal)
        .with_memtable(memtable)
        .with_table_format(table)
        .with_compaction_policy(policy)
        .with_options(engine)
}
