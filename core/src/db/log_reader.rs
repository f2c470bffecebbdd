//! Log readers for subscribers: the commit log, bounded by what the store keeps.
//!
//! The WAL's own reader yields every batch once it is written — before its fdatasync
//! and before it is visible. A subscriber fed from there could hold a batch that a
//! power loss or a failed fsync takes away, and a resumed subscriber would then skip
//! the batches a later incarnation wrote under the same sequences. [`BoundedLogReader`]
//! hands out a batch only once it is visible, and with [`LogBound::Durable`] (the
//! default of [`Db::read_log_from`](super::Db::read_log_from)) only once it is durable.
//! [`LogBound::Written`] is the WAL's own bound, for a primary's replication: its
//! replicas must not wait for the primary's fdatasync (which a `Sync` write finishes
//! before it becomes visible) to receive a batch.
//!
//! A `Buffered` write becomes durable when something syncs the log. A durable-bound
//! reader that reaches a visible batch that is not durable yet syncs the log itself
//! (one group-commit fdatasync, shared with `Sync` writers, covering everything written
//! so far), so subscribers of a `Buffered` workload keep up without a background timer,
//! at no cost when nobody reads, and `next_batch` still returns every visible batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::types::SeqNo;
use crate::wal::{WalBatch, WalReader};

use super::Shared;

/// How far a log reader from [`Db::read_log_from_with`](super::Db::read_log_from_with)
/// may read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum LogBound {
    /// Batches that are visible and on stable storage: a subscriber never holds what
    /// the store may lose. The default.
    #[default]
    Durable,
    /// Batches as soon as they are visible, before their fdatasync (lowest latency). A
    /// power loss may take back what such a reader saw; the store's epoch tells a
    /// resuming reader so (see [`Db::check_history`](super::Db::check_history)).
    Visible,
    /// Batches as soon as they are written to the log: before their fdatasync and
    /// before readers of this store can see them (a `Sync` write becomes visible only
    /// after its fdatasync). For a primary shipping its log to replicas, which then
    /// write and sync their copy while the primary syncs its own. A power loss or a
    /// failed fdatasync may take back what such a reader saw, as with `Visible`; a
    /// replica learns so from the epochs when it reconnects and truncates.
    Written,
}

/// A WAL reader that hands out a batch only within its [`LogBound`].
pub(crate) struct BoundedLogReader {
    inner: Box<dyn WalReader>,
    shared: Arc<Shared>,
    bound: LogBound,
    /// A batch read from the WAL but not yet within the bound.
    held: Option<WalBatch>,
    /// The first sequence not handed out yet.
    next: SeqNo,
    /// The visible sequence's resets (truncations) when `held` could last be trusted.
    resets: u64,
}

impl std::fmt::Debug for BoundedLogReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoundedLogReader")
            .field("bound", &self.bound)
            .field("next", &self.next)
            .field("held", &self.held.as_ref().map(|b| b.first_seq))
            .finish_non_exhaustive()
    }
}

impl BoundedLogReader {
    pub(crate) fn new(
        inner: Box<dyn WalReader>,
        shared: Arc<Shared>,
        bound: LogBound,
        from: SeqNo,
    ) -> Self {
        let resets = shared.visible.resets();
        Self { inner, shared, bound, held: None, next: from.max(SeqNo(1)), resets }
    }

    /// Makes everything written so far durable, as `Db::sync_wal` does (a failure
    /// poisons the store).
    fn sync(&self) -> Result<()> {
        self.shared.check_poison()?;
        self.shared.wal.sync().inspect_err(|e| {
            self.shared.poison(format!("WAL sync for a log reader failed: {e}"));
        })
    }
}

impl WalReader for BoundedLogReader {
    fn next_batch(&mut self) -> Result<Option<WalBatch>> {
        if self.bound == LogBound::Written {
            // Everything the log holds is within the bound: no visibility to wait for.
            let batch = self.inner.next_batch()?;
            if let Some(b) = &batch {
                self.next = b.last_seq().next();
            }
            return Ok(batch);
        }
        let resets = self.shared.visible.resets();
        if resets != self.resets {
            self.resets = resets;
            if self.held.take().is_some() {
                // The batch read ahead of visibility may be one the truncation removed;
                // nothing from it on was handed out, so the caller reads again there.
                return Err(Error::Diverged {
                    seq: self.next,
                    reason: format!(
                        "the log was truncated while this reader held batch {} unread; \
                         read again from {}",
                        self.next, self.next
                    ),
                });
            }
        }
        if self.held.is_none() {
            self.held = self.inner.next_batch()?;
        }
        let Some(last) = self.held.as_ref().map(WalBatch::last_seq) else {
            return Ok(None);
        };
        if last > self.shared.visible.current() {
            return Ok(None);
        }
        if self.bound == LogBound::Durable && self.shared.wal.durable_seq() < last {
            // Visible but not durable: a `Buffered` write nobody synced yet.
            self.sync()?;
        }
        self.next = last.next();
        Ok(self.held.take())
    }

    fn wait_next(&mut self, timeout: Duration) -> Result<Option<WalBatch>> {
        if self.bound == LogBound::Written {
            // The log's own tailing wakes on each append.
            let batch = self.inner.wait_next(timeout)?;
            match &batch {
                Some(b) => self.next = b.last_seq().next(),
                None => self.shared.check_poison()?,
            }
            return Ok(batch);
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(b) = self.next_batch()? {
                return Ok(Some(b));
            }
            let target = self.held.as_ref().map_or(self.next, WalBatch::last_seq);
            if !self.shared.visible.wait_visible_until(target.0, deadline) {
                self.shared.check_poison()?;
                return Ok(None);
            }
            if Instant::now() >= deadline {
                return self.next_batch();
            }
        }
    }
}
