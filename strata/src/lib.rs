//! # Strata
//!
//! An embeddable, log-structured (LSM) key-value store for latency-critical event data
//! — orders, trades, account updates — that streams every commit to subscribers. Writes
//! are durable batches with a per-batch choice of `Sync` (on stable storage, group
//! commit) or `Buffered` (in the OS, survives a process crash); reads see consistent
//! snapshots; the commit log is the stream, readable live, from history and resumably.
//!
//! It is **not** a server or a SQL database: it is a library in your process, one
//! process per store directory (a `LOCK` file enforces it). Standbys follow a primary
//! through WAL shipping (feature `replication`); failover is manual.
//!
//! ```
//! use std::{sync::Arc, time::Duration};
//! use strata::stream::{CommitStream, LocalTransport, decode_batch};
//! use strata::transport::{Delivery, PublisherOptions, SubscriberOptions, Transport};
//! use strata::{Durability, SeqNo, WriteBatch};
//!
//! let dir = tempfile::tempdir()?;
//! let db = Arc::new(strata::open(dir.path())?); // file WAL, skiplist, mmap tables, leveled
//!
//! // Every commit, in order, to subscribers (in-process here; TCP, iceoryx2 and
//! // WebSocket come with the `tcp`, `iceoryx` and `websocket` features).
//! let bus = LocalTransport::new();
//! let mut subscriber = bus.subscriber("commits", &SubscriberOptions::default())?;
//! let publisher = bus.publisher("commits", &PublisherOptions::default())?;
//! let stream = CommitStream::start(Arc::clone(&db), publisher, SeqNo(1))?;
//!
//! let mut batch = WriteBatch::new();
//! batch.put(b"order/42", b"buy 3 @ 101").put(b"order/43", b"sell 1 @ 102");
//! db.write(&batch, Durability::Sync)?; // on stable storage when it returns
//! let snapshot = db.snapshot();
//! db.delete(b"order/42", Durability::Buffered)?; // in the OS when it returns
//! assert_eq!(db.get_at(b"order/42", &snapshot)?.as_deref(), Some(&b"buy 3 @ 101"[..]));
//! assert_eq!(db.get(b"order/42")?, None);
//!
//! let mut ops = Vec::new(); // every put and delete, in commit order, with its sequence
//! while ops.len() < 3 {
//!     let mut frames = Vec::new(); // one frame per committed batch
//!     subscriber.wait(Duration::from_secs(5), &mut |delivery| {
//!         if let Delivery::Frame { header, payload } = delivery {
//!             frames.push((header.seq, payload.to_vec()));
//!         }
//!     })?;
//!     assert!(!frames.is_empty(), "the commit stream stalled");
//!     for (seq, payload) in frames {
//!         ops.extend(decode_batch(seq, &payload)?);
//!     }
//! }
//! assert_eq!((ops[2].seq, &ops[2].key[..]), (3, &b"order/42"[..]));
//! stream.stop()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Where to go from here
//!
//! - **Opening a store.** [`open`] uses the default stack with every option at its
//!   default; [`Options`] changes the engine's and the components' options
//!   (`Options::new().with_memtable_size_bytes(64 << 20).open(dir)`).
//! - **Custom stacks.** Every component sits behind a trait ([`Wal`], [`MemTable`],
//!   [`TableFormat`], [`CompactionPolicy`], the [`fs::FileSystem`] seam). [`builder`]
//!   returns a [`DbBuilder`] holding the default components; replace any of them with
//!   `with_wal`, `with_memtable`, `with_table_format`, `with_compaction_policy` or
//!   `with_file_system`. The components that ship with Strata are in [`components`];
//!   [`StackConfig`] assembles a stack by name from TOML, including plugins loaded from
//!   shared libraries ([`plugins`]).
//! - **Durability and failure rules** are in [`Durability`], [`Db`] and the README.
//! - **Streaming** ([`stream`], feature `stream`, on by default): the commit stream,
//!   subscriber tiers (real-time, delayed, historical, resumable), a reliable
//!   publisher, and the exchange messages.
//!
//! # Cargo features
//!
//! | feature | default | adds |
//! |---|---|---|
//! | `stream` | yes | [`stream`]: commit stream, subscriber tiers, exchange messages, in-process transport |
//! | `tcp` | no | `tcp`: the TCP transport |
//! | `iceoryx` | no | `iceoryx`: the iceoryx2 shared-memory transport (Linux) |
//! | `websocket` | no | `websocket`: the WebSocket gateway (implies `stream`) |
//! | `replication` | no | `replication`: WAL shipping to replicas, sync or async |
#![forbid(unsafe_code)]

use std::path::Path;

pub use strata_core::{
    BatchIter, BatchOp, CompactionPolicy, Db, DbBuilder, DbIter, DbOptions, DbStats, Durability,
    Epoch, Error, LogBound, MemTable, MemTableFactory, OpenReport, PeriodicCheckpoint, Result,
    SeqNo, Snapshot, Table, TableFormat, Wal, WalFactory, WalReader, WriteBatch,
};
pub use strata_core::{fs, transport};
pub use strata_plugins::{StackConfig, default_stack_toml};

/// The options of a store on the default stack: the engine's own ([`DbOptions`]) and
/// those of its components — the file WAL, the mmap table format and the leveled
/// compaction policy. [`Options::open`] opens a store with them; [`open`] is
/// `Options::new().open(dir)`.
///
/// This is [`strata_plugins::DefaultStack`], the one definition of the default stack
/// (the `strata` binary and the default stack file use it too).
///
/// ```
/// let dir = tempfile::tempdir()?;
/// let db = strata::Options::new()
///     .with_memtable_size_bytes(16 << 20)
///     .with_wal(strata::components::FileWalOptions::default().with_segment_size_bytes(8 << 20))
///     .open(dir.path())?;
/// db.put(b"k", b"v", strata::Durability::Sync)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub type Options = strata_plugins::DefaultStack;

/// Opens (or creates) the store in `dir` on the default stack — the segmented file WAL,
/// the skiplist memtable, mmap'd SSTables and leveled compaction — with every option at
/// its default.
///
/// Fails with [`Error::Locked`] when another process (or another [`Db`] in this one)
/// has the store open, and with [`Error::Corruption`] naming the file and offset when
/// the store is damaged; a failed open leaves the directory as it was.
pub fn open(dir: impl AsRef<Path>) -> Result<Db> {
    builder(dir).open()
}

/// A builder for the store in `dir` holding the default stack's components with their
/// default options; replace any component or option before
/// [`open`](DbBuilder::open)ing it.
///
/// ```
/// use std::sync::Arc;
/// use strata::components::{TieredOptions, TieredPolicy};
///
/// let dir = tempfile::tempdir()?;
/// let db = strata::builder(dir.path())
///     .with_compaction_policy(Arc::new(TieredPolicy::new(TieredOptions::default())?))
///     .open()?;
/// assert_eq!(db.compaction_policy(), "tiered");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn builder(dir: impl AsRef<Path>) -> DbBuilder {
    strata_plugins::default_builder(dir)
}

/// The components that ship with Strata, for custom stacks: the default ones (file
/// WAL, skiplist memtable, mmap tables, leveled compaction) and the alternatives
/// (vector memtable for mostly-increasing keys, size-tiered compaction for write-heavy
/// data).
pub mod components {
    pub use strata_compaction_leveled::{LeveledOptions, LeveledPolicy};
    pub use strata_compaction_tiered::{TieredOptions, TieredPolicy};
    pub use strata_memtable_skiplist::SkipListFactory;
    pub use strata_memtable_vector::VectorFactory;
    pub use strata_sstable_mmap::{Compression, MmapTableFormat, MmapTableOptions};
    pub use strata_wal_file::{FileWalFactory, FileWalOptions};
}

/// Stacks assembled by name, and plugin libraries loaded at run time (see
/// [`StackConfig`] and `docs/writing-a-plugin.md`).
pub mod plugins {
    pub use strata_plugins::{
        ComponentConfig, PluginError, PluginInfo, PluginKind, PluginSource, StackConfig,
        default_stack_toml, load_library, plugin_names, plugins,
    };
}

/// Streaming (feature `stream`, on by default): the commit stream, the subscriber tiers,
/// the reliable publisher, the exchange messages and the in-process transport. See
/// [`strata_stream`].
#[cfg(feature = "stream")]
pub mod stream {
    pub use strata_stream::*;
}

/// The TCP transport (feature `tcp`). See [`strata_transport_tcp`].
#[cfg(feature = "tcp")]
pub mod tcp {
    pub use strata_transport_tcp::*;
}

/// The iceoryx2 shared-memory transport (feature `iceoryx`). See
/// [`strata_transport_iceoryx`].
#[cfg(feature = "iceoryx")]
pub mod iceoryx {
    pub use strata_transport_iceoryx::*;
}

/// The WebSocket gateway (feature `websocket`). See [`strata_gateway_ws`].
#[cfg(feature = "websocket")]
pub mod websocket {
    pub use strata_gateway_ws::*;
}

/// WAL shipping to replicas (feature `replication`). See [`strata_replication`].
#[cfg(feature = "replication")]
pub mod replication {
    pub use strata_replication::*;
}
