//! The components that come with Strata, registered by name: `wal = "file"`,
//! `memtable = "skiplist"` and `"vector"`, `table = "mmap"`, `compaction = "leveled"`
//! and `"tiered"`, `failover = "manual"` and `"raft"`.
//!
//! They are registered here rather than in their own crates so that those depend on
//! `strata-core` alone (the registry lives in this crate, which depends on them).
//! Each plugin's options are the fields of the component's options struct, parsed with
//! [`PluginOptions::parse`] and checked by the component's constructor.

use std::sync::Arc;

use strata_compaction_leveled::{LeveledOptions, LeveledPolicy};
use strata_compaction_tiered::{TieredOptions, TieredPolicy};
use strata_core::{CompactionPolicy, FailoverFactory, MemTableFactory, TableFormat, WalFactory};
use strata_failover_manual::ManualFactory;
use strata_failover_raft::{RaftFactory, RaftOptions};
use strata_memtable_skiplist::SkipListFactory;
use strata_memtable_vector::VectorFactory;
use strata_sstable_mmap::{MmapTableFormat, MmapTableOptions};
use strata_wal_file::{FileWalFactory, FileWalOptions};

use crate::registry::{
    BuildError, CompactionPlugin, FailoverPlugin, MemTablePlugin, PluginOptions, TablePlugin,
    WalPlugin, inventory,
};

/// A registration's build function, building a factory of type `F`.
type Build<F> = fn(&PluginOptions) -> Result<Arc<F>, BuildError>;

/// Takes the address of every build function of this module, so that a linker keeps
/// them and the registrations beside them (see `lookup::link_defaults`).
pub(crate) fn link() {
    std::hint::black_box((
        file_wal as Build<dyn WalFactory>,
        skiplist as Build<dyn MemTableFactory>,
        vector as Build<dyn MemTableFactory>,
        mmap_table as Build<dyn TableFormat>,
        leveled as Build<dyn CompactionPolicy>,
        tiered as Build<dyn CompactionPolicy>,
        manual as Build<dyn FailoverFactory>,
        raft as Build<dyn FailoverFactory>,
    ));
}

/// `wal = "file"`: options are the fields of [`FileWalOptions`]
/// (`segment_size_bytes`, `preallocate`, `retention_bytes`).
fn file_wal(options: &PluginOptions) -> Result<Arc<dyn WalFactory>, BuildError> {
    let options: FileWalOptions = options.parse()?;
    Ok(Arc::new(FileWalFactory::new(options)))
}

inventory::submit! {
    WalPlugin {
        name: "file",
        description: "Segmented file WAL with CRC32 records, preallocation and group commit.",
        build: file_wal,
    }
}

/// Refuses any option: a memtable that takes none (the engine's
/// `memtable_size_bytes` decides when it is rotated).
fn no_options(options: &PluginOptions, what: &str) -> Result<(), BuildError> {
    match options.iter().next() {
        Some((key, _)) => Err(BuildError::Option {
            key: key.to_owned(),
            message: format!("unknown option: the {what} memtable takes no options"),
        }),
        None => Ok(()),
    }
}

/// `memtable = "skiplist"`: no options.
fn skiplist(options: &PluginOptions) -> Result<Arc<dyn MemTableFactory>, BuildError> {
    no_options(options, "skiplist")?;
    Ok(Arc::new(SkipListFactory))
}

inventory::submit! {
    MemTablePlugin {
        name: "skiplist",
        description: "Lock-free concurrent memtable on crossbeam-skiplist.",
        build: skiplist,
    }
}

/// `memtable = "vector"`: no options.
fn vector(options: &PluginOptions) -> Result<Arc<dyn MemTableFactory>, BuildError> {
    no_options(options, "vector")?;
    Ok(Arc::new(VectorFactory))
}

inventory::submit! {
    MemTablePlugin {
        name: "vector",
        description: "Append-optimized memtable for sequential keys (order ids, timestamps).",
        build: vector,
    }
}

/// `table = "mmap"`: options are the fields of [`MmapTableOptions`] (`block_size`,
/// `bloom_bits_per_key`, `compression = "none" | "lz4"`), checked with
/// [`MmapTableOptions::validate`].
fn mmap_table(options: &PluginOptions) -> Result<Arc<dyn TableFormat>, BuildError> {
    let options: MmapTableOptions = options.parse()?;
    options.validate()?;
    Ok(Arc::new(MmapTableFormat::new(options)))
}

inventory::submit! {
    TablePlugin {
        name: "mmap",
        description: "Block-based SSTable with bloom filter, sparse index, optional LZ4 and an mmap reader.",
        build: mmap_table,
    }
}

/// `compaction = "leveled"`: options are the fields of [`LeveledOptions`], checked by
/// [`LeveledPolicy::new`]. (`max_compaction_bytes` can be set but not unset:
/// configuration formats have no null.)
fn leveled(options: &PluginOptions) -> Result<Arc<dyn CompactionPolicy>, BuildError> {
    let options: LeveledOptions = options.parse()?;
    Ok(Arc::new(LeveledPolicy::new(options)?))
}

inventory::submit! {
    CompactionPlugin {
        name: "leveled",
        description: "Leveled compaction (LevelDB/RocksDB shape) with dynamic level targets.",
        build: leveled,
    }
}

/// `compaction = "tiered"`: options are the fields of [`TieredOptions`], checked by
/// [`TieredPolicy::new`].
fn tiered(options: &PluginOptions) -> Result<Arc<dyn CompactionPolicy>, BuildError> {
    let options: TieredOptions = options.parse()?;
    Ok(Arc::new(TieredPolicy::new(options)?))
}

inventory::submit! {
    CompactionPlugin {
        name: "tiered",
        description: "Size-tiered (universal) compaction: low write amplification for write-heavy, rarely-read data.",
        build: tiered,
    }
}

/// `failover = "manual"`: no options (where the record lives is the directory the
/// factory is handed).
fn manual(options: &PluginOptions) -> Result<Arc<dyn FailoverFactory>, BuildError> {
    if let Some((key, _)) = options.iter().next() {
        return Err(BuildError::Option {
            key: key.to_owned(),
            message: "unknown option: the manual failover policy takes no options".to_owned(),
        });
    }
    Ok(Arc::new(ManualFactory))
}

inventory::submit! {
    FailoverPlugin {
        name: "manual",
        description: "Manual failover: an operator promotes; the authority record is one checksummed local file.",
        build: manual,
    }
}

/// `failover = "raft"`: the voter's settings, the fields of [`RaftOptions`] —
/// `node_id`, `listen`, `voters = [{ id, addr, role = "data" | "witness" }]` and the
/// optional timings `heartbeat_ms`, `election_timeout_min_ms`,
/// `election_timeout_max_ms`, `request_timeout_ms`, `bootstrap_timeout_ms` — checked by
/// [`RaftOptions::settings`]. (Where the raft log and vote live is the directory the
/// factory is handed.)
fn raft(options: &PluginOptions) -> Result<Arc<dyn FailoverFactory>, BuildError> {
    let options: RaftOptions = options.parse()?;
    Ok(Arc::new(RaftFactory::new(options.settings()?)))
}

inventory::submit! {
    FailoverPlugin {
        name: "raft",
        description: "Automatic failover: the authority record in an openraft group of the voters; leases from linearizable reads.",
        build: raft,
    }
}
