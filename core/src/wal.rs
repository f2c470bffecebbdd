//! The write-ahead log contract.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::error::Result;
use crate::fs::FileSystem;
use crate::types::{Durability, SeqNo};

/// One committed batch as the log returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalBatch {
    /// Sequence of the batch's first operation.
    pub first_seq: SeqNo,
    /// Number of operations; they hold `first_seq ..= first_seq + count - 1`.
    pub count: u32,
    /// The encoded operations (see [`crate::batch`]).
    pub payload: Bytes,
}

impl WalBatch {
    /// Sequence of the batch's last operation.
    pub fn last_seq(&self) -> SeqNo {
        SeqNo(self.first_seq.0 + u64::from(self.count.max(1)) - 1)
    }
}

/// What opening a log found and did, for logs and `strata inspect`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WalRecovery {
    /// Last sequence found intact (`SeqNo::ZERO` for an empty log).
    pub last_seq: SeqNo,
    /// Set when a torn tail was cut off: the file, the offset it was cut at and the
    /// number of bytes dropped.
    pub truncated_tail: Option<(PathBuf, u64, u64)>,
}

/// A durable, ordered log of write batches.
///
/// Contract (what the conformance suite checks):
/// - `append` assigns the batch the next `count` sequence numbers: dense, starting right
///   after `last_seq()`, and the on-disk order equals sequence order.
/// - `append(_, _, Durability::Sync)` returns `Ok` only once the batch (and every batch
///   before it) is on stable storage; concurrent `Sync` appenders may share one fdatasync
///   (group commit). `Durability::Buffered` returns once the OS holds the bytes.
/// - After any write or sync failure the log is poisoned: this and every later `append`
///   or `sync` returns `Error::Poisoned` (the page cache may have dropped the data, so a
///   retry could not be trusted). Reads keep working.
/// - `read_from(seq)` yields, in order, every committed batch whose last sequence is
///   `>= seq`, and `Error::SequenceUnavailable` if `seq` was already deleted by
///   `checkpoint`. Its reader can wait for batches appended later (tailing).
/// - `checkpoint(seq)` declares that everything `<= seq` is persisted elsewhere; whole
///   segments at or below it may be deleted, but only as far as the retention setting
///   also allows. It never deletes a batch `> seq`.
/// - A reopened log holds exactly the batches that were durable, in order: a torn tail
///   is cut off (and reported in [`WalRecovery`]); damage anywhere else is
///   `Error::Corruption` naming the file and offset, never skipped.
pub trait Wal: Send + Sync + fmt::Debug {
    /// Appends one encoded batch of `count >= 1` operations and returns its first sequence.
    fn append(&self, payload: &[u8], count: u32, durability: Durability) -> Result<SeqNo>;
    /// Makes every appended batch durable (as a `Sync` append would).
    fn sync(&self) -> Result<()>;
    /// The last sequence appended (`SeqNo::ZERO` when empty).
    fn last_seq(&self) -> SeqNo;
    /// A reader over committed batches, starting at the batch holding `from`.
    fn read_from(&self, from: SeqNo) -> Result<Box<dyn WalReader>>;
    /// Everything `<= seq` is persisted elsewhere; see the trait contract.
    fn checkpoint(&self, seq: SeqNo) -> Result<()>;
    /// What opening the log found.
    fn recovery(&self) -> WalRecovery;
    /// The files holding the log right now, oldest first (for store checkpoints, which
    /// copy them, and `strata inspect`).
    fn files(&self) -> Result<Vec<PathBuf>>;
}

/// Sequential reader over a log's committed batches.
pub trait WalReader: Send + fmt::Debug {
    /// The next committed batch, or `None` when the reader caught up with the writer.
    fn next_batch(&mut self) -> Result<Option<WalBatch>>;
    /// Like `next_batch`, but when caught up waits up to `timeout` for a new commit.
    fn wait_next(&mut self, timeout: Duration) -> Result<Option<WalBatch>>;
}

/// Opens (or creates) a log inside a store directory.
pub trait WalFactory: Send + Sync + fmt::Debug {
    /// Opens the log under `dir` through `fs`, recovering what is there.
    fn open(&self, fs: Arc<dyn FileSystem>, dir: &std::path::Path) -> Result<Arc<dyn Wal>>;
    /// A short name for reports (`"file"`).
    fn name(&self) -> &'static str;
}
