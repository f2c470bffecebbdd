//! The write-ahead log contract.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::error::Result;
use crate::fs::FileSystem;
use crate::types::{Durability, Epoch, SeqNo};

/// One committed batch as the log returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalBatch {
    /// Sequence of the batch's first operation.
    pub first_seq: SeqNo,
    /// Number of operations; they hold `first_seq ..= first_seq + count - 1`.
    pub count: u32,
    /// The encoded operations (see [`crate::batch`]).
    pub payload: Bytes,
    /// The epoch of the incarnation that wrote the batch ([`Epoch::ZERO`] for logs
    /// written before epochs were recorded).
    pub epoch: Epoch,
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
    /// Intact records found after the torn tail that were dropped with it because
    /// nothing shows they were ever durable (unsynced writes that reached the disk out
    /// of order before a power loss). Zero in every other case.
    pub dropped_unsynced_records: u64,
    /// The epoch this incarnation writes in.
    pub epoch: Epoch,
    /// Set when open found a truncation that a crash interrupted: the log ends after
    /// this sequence (the cut is finished at the first append).
    pub pending_truncation: Option<SeqNo>,
}

/// Where one epoch's batches start: the log's durable epoch history is a list of these,
/// oldest first (like Kafka's leader-epoch checkpoint).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochStart {
    /// The epoch.
    pub epoch: Epoch,
    /// The first sequence written in it (every later epoch starts after it).
    pub first_seq: SeqNo,
}

/// What a store's epoch history says about a position `(epoch, last)` that a reader
/// (a resuming subscriber, a replica) holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryCheck {
    /// Every sequence up to `last` that the reader holds under `epoch` is also what the
    /// store holds: continue from `last + 1`.
    Consistent,
    /// The store rewrote `from ..= to` after the reader saw them: what the reader holds
    /// for those sequences is not what the store holds now (a crash lost them before
    /// they were durable and a later incarnation wrote other batches there, or they no
    /// longer exist). Continue from `from`, discarding what was seen for the range.
    Rewritten {
        /// First sequence the reader holds that the store does not.
        from: SeqNo,
        /// Last such sequence (the reader's `last`).
        to: SeqNo,
        /// The epoch the store's history continued in at `from`.
        store_epoch: Epoch,
    },
    /// The reader's epoch is the store's current one, and the reader holds sequences
    /// after `log_last`, where the store's log ends: nothing was rewritten, this store
    /// is behind (a replica still catching up with its primary) and will hold them, as
    /// written in that epoch, once it has them.
    Behind {
        /// The last sequence the store's log holds.
        log_last: SeqNo,
    },
    /// The reader's epoch is newer than any the store knows: the position comes from
    /// another store or another history, and nothing can be matched.
    UnknownEpoch {
        /// The store's current epoch.
        store_epoch: Epoch,
    },
}

/// Checks a reader's position `(epoch, last)` against an epoch `history` (oldest first,
/// as [`Wal::epoch_history`] returns it) whose log currently ends at `log_last`.
///
/// Epoch `e` covers the sequences from its first sequence up to the first sequence of
/// the next epoch in the history minus one (the current epoch: up to `log_last`). A
/// reader at `(e, last)` is consistent when `last` lies inside what `e` covers, and
/// [`HistoryCheck::Behind`] when `e` is the current epoch and `last` beyond the log;
/// positions in epochs older than the retained history are taken as consistent when
/// they end before the oldest retained epoch starts (nothing can contradict them).
pub fn history_check(
    history: &[EpochStart],
    log_last: SeqNo,
    epoch: Epoch,
    last: SeqNo,
) -> HistoryCheck {
    let current = history.last().map_or(Epoch::ZERO, |e| e.epoch);
    if epoch > current {
        return HistoryCheck::UnknownEpoch { store_epoch: current };
    }
    // The end of what `epoch` covers: just before the first later epoch that wrote.
    let next = history.iter().find(|e| e.epoch > epoch);
    let end = match next {
        Some(n) => SeqNo(n.first_seq.0.saturating_sub(1)),
        None => log_last,
    };
    if last <= end {
        return HistoryCheck::Consistent;
    }
    if next.is_none() {
        // `epoch` is the current one (no later epoch wrote): the log has not got there.
        return HistoryCheck::Behind { log_last };
    }
    let from = end.next();
    let store_epoch =
        history.iter().rev().find(|e| e.first_seq <= from).or(next).map_or(current, |e| e.epoch);
    HistoryCheck::Rewritten { from, to: last, store_epoch }
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
/// - `read_from(seq)` yields, in order, every appended batch whose last sequence is
///   `>= seq` — written, not necessarily durable yet (replication overlaps a replica's
///   fsync with the writer's; subscribers that must see only durable batches bound the
///   reader by [`durable_seq`](Wal::durable_seq), as `Db::read_log_from` does) — and
///   `Error::SequenceUnavailable` if `seq` was already deleted by `checkpoint`. Its
///   reader can wait for batches appended later (tailing). A reader pins its position:
///   `checkpoint` keeps what it still has to read, up to the log's retention limit for
///   readers; a reader cut off past that limit gets `Error::SequenceUnavailable`.
/// - `durable_seq()` is the last sequence known to be on stable storage; it never
///   exceeds `last_seq()` and never decreases (except through `truncate_after`).
/// - Every batch carries the epoch it was written in; each opening of the log for
///   writing starts a new epoch, recorded durably (in [`epoch_history`](Wal::epoch_history))
///   before the first batch of that epoch is written, so an epoch is never reused,
///   also across crashes.
/// - Replication (a replica's log holds the primary's batches at the primary's
///   sequences and epochs): `append_replicated(batch)` appends a batch that starts at
///   exactly `last_seq() + 1` with its own epoch; a batch that starts later is
///   `Error::SequenceGap` (nothing written); a batch already held with the same epoch,
///   count and bytes is accepted again without writing (a reconnect re-sends what the
///   replica has); one held differently is `Error::Diverged`; an epoch older than the
///   newest in the history is `Error::StaleEpoch`. A batch of a newer epoch first
///   records that epoch in the history, durably, at the batch's first sequence.
/// - `truncate_after(seq)` removes every batch after `seq` (a batch boundary) and every
///   history entry that starts after it, so that a diverged tail can be replaced by
///   the primary's; a power loss at any point during it leaves either the old log or
///   the truncated one, never a mix and never a refusal to open.
/// - `start_epoch(epoch)` makes later local appends write in `epoch` (promotion): it
///   must be newer than every epoch in the history and is recorded durably before the
///   call returns, so a restart never hands it out again.
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
    /// The last sequence on stable storage; see the trait contract.
    fn durable_seq(&self) -> SeqNo;
    /// The epoch this incarnation of the log writes in.
    fn epoch(&self) -> Epoch;
    /// The durable epoch history, oldest first, ending with the current epoch once it
    /// has written a batch (epochs that wrote nothing are left out).
    fn epoch_history(&self) -> Vec<EpochStart>;
    /// A reader over committed batches, starting at the batch holding `from`.
    fn read_from(&self, from: SeqNo) -> Result<Box<dyn WalReader>>;
    /// Everything `<= seq` is persisted elsewhere; see the trait contract.
    fn checkpoint(&self, seq: SeqNo) -> Result<()>;
    /// What opening the log found.
    fn recovery(&self) -> WalRecovery;
    /// The files holding the log right now, oldest first (for `strata inspect`).
    fn files(&self) -> Result<Vec<PathBuf>>;

    /// Appends a batch shipped from a primary at its own sequence and epoch; see the
    /// trait contract. The default refuses: a log that cannot hold another log's
    /// sequences cannot serve as a replica.
    fn append_replicated(&self, batch: &WalBatch, durability: Durability) -> Result<()> {
        let _ = (batch, durability);
        Err(crate::error::Error::Unsupported { component: "wal", capability: "replicated appends" })
    }

    /// Removes every batch after `seq`; see the trait contract. The default refuses.
    fn truncate_after(&self, seq: SeqNo) -> Result<()> {
        let _ = seq;
        Err(crate::error::Error::Unsupported { component: "wal", capability: "truncation" })
    }

    /// Makes later appends write in `epoch`, recorded durably; see the trait contract.
    /// The default refuses.
    fn start_epoch(&self, epoch: Epoch) -> Result<()> {
        let _ = epoch;
        Err(crate::error::Error::Unsupported { component: "wal", capability: "starting an epoch" })
    }

    /// Copies the log into `dir` (a store checkpoint's directory) as it stood at one
    /// moment during the call: every batch appended before the call, no part of a
    /// batch appended during it. The default copies every file of
    /// [`files`](Wal::files) whole, which is such a copy only while nothing appends; a
    /// log whose writers keep running during the copy overrides it.
    fn copy_to(&self, fs: &dyn FileSystem, dir: &std::path::Path) -> Result<()> {
        for file in self.files()? {
            if let Some(name) = file.file_name() {
                crate::fs::copy_file(fs, &file, &dir.join(name))?;
            }
        }
        Ok(())
    }
}

/// Sequential reader over a log's committed batches.
///
/// A log truncated with [`Wal::truncate_after`] while a reader is open: a reader that
/// had not read past the cut carries on with what follows it; one that had fails with
/// `Error::Diverged { seq, .. }`, naming the first sequence to read again (with a new
/// reader) — what it handed out from `seq` on no longer exists.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn history() -> Vec<EpochStart> {
        // Epoch 1 wrote 1..=5, epoch 3 from 6 on; the log ends at 8.
        vec![
            EpochStart { epoch: Epoch(1), first_seq: SeqNo(1) },
            EpochStart { epoch: Epoch(3), first_seq: SeqNo(6) },
        ]
    }

    #[test]
    fn history_check_tells_consistent_rewritten_behind_and_unknown_apart() {
        let check = |epoch, last| history_check(&history(), SeqNo(8), Epoch(epoch), SeqNo(last));
        assert_eq!(check(1, 5), HistoryCheck::Consistent);
        assert_eq!(check(3, 8), HistoryCheck::Consistent);
        // Epoch 1 (or 2, which this history never held) past 5: epoch 3 wrote there.
        let rewritten =
            HistoryCheck::Rewritten { from: SeqNo(6), to: SeqNo(7), store_epoch: Epoch(3) };
        assert_eq!(check(1, 7), rewritten);
        assert_eq!(check(2, 7), rewritten);
        // The current epoch past the log's end: not rewritten, the store is behind.
        assert_eq!(check(3, 12), HistoryCheck::Behind { log_last: SeqNo(8) });
        assert_eq!(check(4, 1), HistoryCheck::UnknownEpoch { store_epoch: Epoch(3) });
    }
}
