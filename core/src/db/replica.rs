//! Replica mode: a store that holds a primary's log at the primary's sequences.
//!
//! A replica's client writes fail with [`Error::NotPrimary`]; batches arrive through
//! [`Db::apply_replicated`], which appends them to the replica's own WAL (refusing gaps,
//! divergence and stale epochs, see [`Wal::append_replicated`](crate::wal::Wal)) and
//! inserts them into its memtables, so flush, compaction, checkpoints, reads and the
//! commit log work as on a primary. [`Db::promote`] turns the replica into a primary at
//! a new epoch; [`Db::demote`] turns a primary into a replica.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use super::{Db, State};
use crate::batch::BatchIter;
use crate::error::{Error, Result};
use crate::types::{Durability, Epoch, SeqNo};
use crate::wal::WalBatch;

/// Whether a store takes client writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    /// Takes client writes and starts an epoch of its own.
    Primary,
    /// Holds another store's log; writes go to `primary`.
    Replica {
        /// Where the primary is (an address, or `"unknown"`).
        primary: String,
    },
}

/// The role, readable on every write with one atomic load.
#[derive(Debug)]
pub(super) struct RoleCell {
    replica: AtomicBool,
    primary: Mutex<String>,
}

impl RoleCell {
    pub(super) fn new(replica_of: Option<String>) -> Self {
        Self {
            replica: AtomicBool::new(replica_of.is_some()),
            primary: Mutex::new(replica_of.unwrap_or_default()),
        }
    }

    pub(super) fn check_primary(&self) -> Result<()> {
        if self.replica.load(Ordering::Acquire) {
            return Err(Error::NotPrimary { primary: self.primary_name() });
        }
        Ok(())
    }

    fn primary_name(&self) -> String {
        let p = self.primary.lock();
        if p.is_empty() { "unknown".to_owned() } else { p.clone() }
    }

    fn get(&self) -> Role {
        if self.replica.load(Ordering::Acquire) {
            Role::Replica { primary: self.primary_name() }
        } else {
            Role::Primary
        }
    }

    fn require_replica(&self, what: &str) -> Result<()> {
        if self.replica.load(Ordering::Acquire) {
            Ok(())
        } else {
            Err(Error::InvalidArgument(format!("{what} is for replicas; this store is a primary")))
        }
    }
}

impl Db {
    /// The last visible sequence (what reads see now; on a replica, what it applied).
    pub fn visible_seq(&self) -> SeqNo {
        self.shared.visible.current()
    }

    /// Primary or replica.
    pub fn role(&self) -> Role {
        self.shared.role.get()
    }

    /// Applies one batch shipped from the primary: appended to this store's WAL at the
    /// batch's own sequence and epoch, then inserted and made visible. A batch this
    /// store already holds identically is accepted again and changes nothing (a
    /// reconnect re-sends it); a gap, other bytes at a held sequence or an older epoch
    /// are refused with `Error::SequenceGap`, `Error::Diverged` or `Error::StaleEpoch`
    /// and change nothing. Only on a replica; one applier at a time.
    pub fn apply_replicated(&self, batch: &WalBatch, durability: Durability) -> Result<()> {
        self.shared.role.require_replica("apply_replicated")?;
        self.check_poison()?;
        // Decode before anything is written: a batch whose operations do not match its
        // count never reaches the log.
        let mut ops = 0u32;
        for op in BatchIter::new(&batch.payload) {
            op.map_err(|e| {
                Error::InvalidArgument(format!(
                    "replicated batch at sequence {} is malformed at byte {}: {}",
                    batch.first_seq, e.offset, e.reason
                ))
            })?;
            ops += 1;
        }
        if ops != batch.count || ops == 0 {
            return Err(Error::InvalidArgument(format!(
                "replicated batch at sequence {} says {} operations but holds {ops}",
                batch.first_seq, batch.count
            )));
        }
        let s = &self.shared;
        if batch.first_seq <= s.wal.last_seq() {
            // Held already (or diverged): the log compares, nothing is inserted twice.
            return s.wal.append_replicated(batch, durability);
        }
        self.stall_if_needed()?;
        let gate = s.gate.read();
        if let Err(e) = s.wal.append_replicated(batch, durability) {
            drop(gate);
            if matches!(
                e,
                Error::SequenceGap { .. } | Error::StaleEpoch { .. } | Error::Diverged { .. }
            ) || matches!(e, Error::InvalidArgument(_))
            {
                return Err(e); // refused before anything was written
            }
            self.poison(format!("replicated WAL append failed: {e}"));
            return Err(e);
        }
        let state = s.state.load();
        drop(gate);
        let mut seq = batch.first_seq;
        for op in BatchIter::new(&batch.payload).flatten() {
            state.active.insert(op.key, seq, op.kind, op.value);
            seq = seq.next();
        }
        if s.visible.publish(batch.first_seq, batch.last_seq()).is_err() {
            return Err(self.poisoned_error());
        }
        if state.active.memory_bytes() >= s.options.memtable_size_bytes {
            self.rotate_if_current(&state.active);
        }
        Ok(())
    }

    /// Turns this replica into the primary: later writes are accepted and written in
    /// `epoch` (by default the newest epoch this store knows plus one), recorded durably
    /// before this returns. Returns the epoch. On a primary it is `Error::InvalidArgument`.
    pub fn promote(&self, epoch: Option<Epoch>) -> Result<Epoch> {
        self.shared.role.require_replica("promote")?;
        let newest = self.epoch_history().last().map_or(Epoch::ZERO, |e| e.epoch);
        let epoch = epoch.unwrap_or(Epoch(newest.0.max(self.shared.wal.epoch().0) + 1));
        self.shared.wal.start_epoch(epoch)?;
        self.shared.role.replica.store(false, Ordering::Release);
        tracing::info!(%epoch, last = %self.shared.wal.last_seq(), "promoted to primary");
        Ok(epoch)
    }

    /// Turns this store into a replica of `primary`: client writes fail from now on
    /// (writes already inside `write` finish). Batches then arrive through
    /// [`apply_replicated`](Self::apply_replicated).
    pub fn demote(&self, primary: impl Into<String>) {
        *self.shared.role.primary.lock() = primary.into();
        self.shared.role.replica.store(true, Ordering::Release);
        tracing::info!("demoted to replica");
    }

    /// Points a replica at another primary (for its `NotPrimary` errors).
    pub fn set_primary(&self, primary: impl Into<String>) {
        *self.shared.role.primary.lock() = primary.into();
    }

    /// Removes every batch after `keep` from this replica (its WAL, memtables and the
    /// visible sequence), so a tail the primary does not have can be replaced by the
    /// primary's. Possible only while those batches are in memtables, not yet flushed
    /// to tables: otherwise `Error::Diverged` says to re-bootstrap from a checkpoint.
    /// Readers holding a snapshot past `keep` keep reading what they saw.
    pub fn truncate_after(&self, keep: SeqNo) -> Result<()> {
        let s = &self.shared;
        s.role.require_replica("truncate_after")?;
        self.check_poison()?;
        let _state_guard = s.state_lock.lock();
        let _gate = s.gate.write();
        if keep >= s.wal.last_seq() {
            return Ok(());
        }
        let current = s.state.load_full();
        let flushed = s.versions.lock().state.flushed_seq;
        let floor = current.immutable.first().map_or(flushed, |m| m.last_seq.max(flushed));
        if keep < floor {
            return Err(Error::Diverged {
                seq: keep.next(),
                reason: format!(
                    "the batches after {keep} are already in flushed tables or a memtable \
                     being flushed (up to {floor}); they cannot be taken back: re-bootstrap \
                     this replica from a checkpoint of the primary"
                ),
            });
        }
        s.wal.truncate_after(keep).inspect_err(|e| {
            self.poison(format!("WAL truncation failed: {e}"));
        })?;
        let active = s.memtables.create();
        let mut reader = s.wal.read_from(floor.next())?;
        while let Some(batch) = reader.next_batch()? {
            if batch.last_seq() <= floor || batch.first_seq > keep {
                continue;
            }
            let mut seq = batch.first_seq;
            for op in BatchIter::new(&batch.payload).flatten() {
                active.insert(op.key, seq, op.kind, op.value);
                seq = seq.next();
            }
        }
        s.state.store(Arc::new(State {
            active,
            immutable: current.immutable.clone(),
            version: Arc::clone(&current.version),
        }));
        s.visible.reset(keep);
        tracing::warn!(%keep, "replica truncated a diverged tail");
        Ok(())
    }
}
