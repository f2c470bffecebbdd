//! Log readers for subscribers: the commit log, bounded by what the store keeps.
//!
//! The WAL's own reader yields every batch once it is written — before its fdatasync
//! and before it is visible. A subscriber fed from there could hold a batch that a
//! power loss or a failed fsync takes away, and a resumed subscriber would then skip
//! the batches a later incarnation wrote under the same sequences. [`BoundedLogReader`]
//! hands out a batch only once it is visible, and with [`LogBound::Durable`] (the
//! default of [`Db::read_log_from`](super::Db::read_log_from)) only once it is durable.
//!
//! A `Buffered` write becomes durable when something syncs the log. A durable-bound
//! reader that waits for such a batch syncs the log itself (one group-commit fdatasync,
//! shared with `Sync` writers), so subscribers of a `Buffered` workload keep up without
//! a background timer and at no cost when nobody subscribes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Result;
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
        Self { inner, shared, bound, held: None, next: from.max(SeqNo(1)) }
    }

    /// The last sequence a batch may reach to be handed out now.
    fn limit(&self) -> SeqNo {
        let visible = self.shared.visible.current();
        match self.bound {
            LogBound::Visible => visible,
            LogBound::Durable => visible.min(self.shared.wal.durable_seq()),
        }
    }
}

impl WalReader for BoundedLogReader {
    fn next_batch(&mut self) -> Result<Option<WalBatch>> {
        if self.held.is_none() {
            self.held = self.inner.next_batch()?;
        }
        match &self.held {
            Some(b) if b.last_seq() <= self.limit() => {
                self.next = b.last_seq().next();
                Ok(self.held.take())
            }
            _ => Ok(None),
        }
    }

    fn wait_next(&mut self, timeout: Duration) -> Result<Option<WalBatch>> {
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
            if self.bound == LogBound::Durable && self.shared.wal.durable_seq() < target {
                // Visible but not durable: a `Buffered` write nobody synced yet.
                self.shared.check_poison()?;
                if let Err(e) = self.shared.wal.sync() {
                    self.shared.poison(format!("WAL sync for a subscriber failed: {e}"));
                    return Err(e);
                }
            }
            if Instant::now() >= deadline {
                return self.next_batch();
            }
        }
    }
}
