//! # strata-core
//!
//! The traits every Strata component implements, the shared types and error, the I/O
//! seam ([`fs::FileSystem`]) and the engine ([`Db`]) that composes the components, and
//! the failover contract ([`FailoverPolicy`]).
//! No default implementation lives here: the file WAL, the skiplist memtable and the
//! others are crates of their own, assembled by [`DbBuilder`].
#![deny(unsafe_op_in_unsafe_fn)]
// One unsafe call, in `fs::os` (sync_file_range, which no safe wrapper offers).
#![deny(unsafe_code)]

pub mod batch;
pub mod compaction;
mod db;
pub mod error;
pub mod failover;
pub mod fs;
pub mod manifest;
pub mod memtable;
pub mod table;
pub mod transport;
pub mod types;
pub mod wal;

pub use batch::{BatchIter, BatchOp, WriteBatch};
pub use compaction::{CompactionInput, CompactionPolicy, CompactionTask, LevelsView};
pub use db::{
    DEFAULT_MEMTABLE_SIZE_BYTES, Db, DbBuilder, DbIter, DbOptions, DbStats, LOCK_FILE, LevelStats,
    LogBound, OpenReport, PeriodicCheckpoint, Role, Snapshot,
};
pub use error::{Error, Result};
pub use failover::{
    AuthorityRecord, Change, ClusterView, Decision, FailoverFactory, FailoverPolicy, Lease,
    LeaseSettings, NodeId, NodeReport, PossibleLoss,
};
pub use memtable::{Entry, EntryIter, KeyRange, Lookup, MemTable, MemTableFactory};
pub use table::{FileNo, Table, TableBuilder, TableFormat, TableIter, TableMeta};
pub use transport::{
    Admission, Delivery, FrameHeader, GapTracker, PublishOrder, PublisherOptions,
    SlowSubscriberPolicy, StreamId, SubscriberOptions, TopicPublisher, TopicSubscriber, Transport,
};
pub use types::{Durability, Epoch, SeqNo, ValueKind, compare_internal};
pub use wal::{
    EpochStart, HistoryCheck, Wal, WalBatch, WalFactory, WalReader, WalRecovery, history_check,
};

/// This crate's version (`CARGO_PKG_VERSION`), which a plugin library's ABI stamp
/// carries.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
