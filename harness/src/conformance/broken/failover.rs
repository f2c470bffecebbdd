//! Broken failover policies: a [`MemoryAuthority`] with one fence removed.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use strata_core::failover::automatic_decision;
use strata_core::{
    AuthorityRecord, Change, ClusterView, Decision, Epoch, FailoverPolicy, Lease, NodeId,
    PossibleLoss, Result,
};

use crate::conformance::failover::memory::MemoryAuthority;
use strata_core::FailoverFactory;
use strata_core::fs::FileSystem;

/// The one clause a [`FaultyFailoverPolicy`] breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailoverFault {
    /// `decide` promotes the most advanced reachable node whether or not it is in the
    /// in-sync set, and `compare_and_set` commits such a promotion. Breaks: "only
    /// in-sync members may be promoted".
    PromotesOutOfSync,
    /// `decide` promotes in the record's own epoch, and `compare_and_set` commits a
    /// promotion that keeps the epoch. Breaks: "a promotion is at the record's epoch + 1".
    SkipsEpochBump,
    /// A shrink of the in-sync set takes effect in the leases before it is committed,
    /// and stays when the commit is refused. Breaks: "the primary acknowledges without
    /// a member only once its removal is committed".
    AcksBeforeShrinkCommitted,
    /// Lease renewals and in-sync changes from an older epoch are accepted. Breaks:
    /// "the authority never accepts a lower epoch".
    AcceptsLowerEpoch,
    /// Leases run the replicas' grace period plus the configured lease. Breaks: "a lease
    /// ends before the replicas' grace period".
    LeaseLongerThanGrace,
}

/// A [`MemoryAuthority`] (automatic decisions, rules of `AuthorityRecord::apply`) that
/// breaks exactly one clause, named by its [`FailoverFault`].
#[derive(Debug)]
pub struct FaultyFailoverPolicy {
    inner: MemoryAuthority,
    fault: FailoverFault,
    /// Members removed from leases by a shrink that was not (or not yet) committed
    /// ([`FailoverFault::AcksBeforeShrinkCommitted`]).
    dropped_early: Mutex<BTreeSet<NodeId>>,
}

impl FaultyFailoverPolicy {
    /// An authority holding `initial` with `fault`.
    pub fn new(initial: AuthorityRecord, fault: FailoverFault) -> Result<Self> {
        Ok(Self {
            inner: MemoryAuthority::new(initial)?,
            fault,
            dropped_early: Mutex::new(BTreeSet::new()),
        })
    }
}

#[async_trait::async_trait]
impl FailoverPolicy for FaultyFailoverPolicy {
    fn name(&self) -> &'static str {
        fault_name(self.fault)
    }

    fn decide(&self, record: &AuthorityRecord, view: &ClusterView) -> Decision {
        let decision = automatic_decision(record, view);
        match (self.fault, decision) {
            (FailoverFault::SkipsEpochBump, Decision::Promote { node, first_seq, .. }) => {
                Decision::Promote { node, epoch: record.epoch, first_seq }
            }
            (
                FailoverFault::PromotesOutOfSync,
                d @ (Decision::Promote { .. } | Decision::Unavailable { .. }),
            ) => {
                let grace = record.lease.grace;
                let best = view
                    .reports
                    .iter()
                    .filter(|(n, r)| {
                        **n != record.primary && r.silent_for < grace && r.epoch <= record.epoch
                    })
                    .max_by_key(|(n, r)| (r.position(), std::cmp::Reverse(*n)));
                match (best, record.epoch.checked_next()) {
                    (Some((node, r)), Some(epoch)) => Decision::Promote {
                        node: node.clone(),
                        epoch,
                        first_seq: r.last_seq.next(),
                    },
                    _ => d,
                }
            }
            (_, d) => d,
        }
    }

    async fn record(&self) -> Result<AuthorityRecord> {
        self.inner.record().await
    }

    async fn compare_and_set(
        &self,
        expected_version: u64,
        change: Change,
    ) -> Result<AuthorityRecord> {
        let current = self.inner.record().await?;
        match (self.fault, &change) {
            (FailoverFault::PromotesOutOfSync, Change::Promote { node, epoch, first_seq })
                if *node != current.primary && !current.in_sync.contains(node) =>
            {
                let forced = Change::ForcePromote {
                    node: node.clone(),
                    epoch: *epoch,
                    first_seq: *first_seq,
                    possible_loss: PossibleLoss::default(),
                };
                self.inner.compare_and_set(expected_version, forced).await
            }
            (FailoverFault::SkipsEpochBump, Change::Promote { node, epoch, first_seq })
                if *epoch == current.epoch =>
            {
                let bumped = Change::Promote {
                    node: node.clone(),
                    epoch: Epoch(epoch.0 + 1),
                    first_seq: *first_seq,
                };
                let mut next = current.apply(&bumped)?;
                next.epoch = *epoch;
                self.inner.overwrite(expected_version, next.clone())?;
                Ok(next)
            }
            (FailoverFault::AcksBeforeShrinkCommitted, Change::ShrinkInSync { node, .. }) => {
                // The bug: the primary stops waiting for the member first and commits
                // after, without undoing it when the commit is refused.
                self.dropped_early.lock().insert(node.clone());
                self.inner.compare_and_set(expected_version, change).await
            }
            (FailoverFault::AcceptsLowerEpoch, Change::ShrinkInSync { node, epoch })
                if *epoch < current.epoch =>
            {
                let change = Change::ShrinkInSync { node: node.clone(), epoch: current.epoch };
                self.inner.compare_and_set(expected_version, change).await
            }
            (FailoverFault::AcceptsLowerEpoch, Change::JoinInSync { node, epoch })
                if *epoch < current.epoch =>
            {
                let change = Change::JoinInSync { node: node.clone(), epoch: current.epoch };
                self.inner.compare_and_set(expected_version, change).await
            }
            _ => {
                let next = self.inner.compare_and_set(expected_version, change.clone()).await?;
                if let Change::JoinInSync { node, .. } = &change {
                    self.dropped_early.lock().remove(node);
                }
                Ok(next)
            }
        }
    }

    async fn renew_lease(&self, node: &NodeId, epoch: Epoch) -> Result<Lease> {
        let started = Instant::now();
        let current = self.inner.record().await?;
        match self.fault {
            FailoverFault::AcceptsLowerEpoch if epoch < current.epoch => Ok(Lease {
                holder: node.clone(),
                epoch,
                version: current.version,
                in_sync: current.in_sync,
                expires_at: started + current.lease.lease,
            }),
            FailoverFault::LeaseLongerThanGrace => {
                let mut lease = current.grant_lease(node, epoch, started)?;
                lease.expires_at += current.lease.grace;
                Ok(lease)
            }
            FailoverFault::AcksBeforeShrinkCommitted => {
                let mut lease = current.grant_lease(node, epoch, started)?;
                let dropped = self.dropped_early.lock();
                lease.in_sync.retain(|m| !dropped.contains(m));
                Ok(lease)
            }
            _ => current.grant_lease(node, epoch, started),
        }
    }
}

/// Makes [`FaultyFailoverPolicy`]s with one fault for the suite (in memory: run it
/// with [`FailoverCaps::restart`](crate::conformance::failover::FailoverCaps) off).
#[derive(Debug, Clone, Copy)]
pub struct FaultyFailoverFactory(pub FailoverFault);

#[async_trait::async_trait]
impl FailoverFactory for FaultyFailoverFactory {
    fn name(&self) -> &'static str {
        fault_name(self.0)
    }

    async fn create(
        &self,
        _fs: Arc<dyn FileSystem>,
        _dir: &Path,
        initial: AuthorityRecord,
    ) -> Result<Arc<dyn FailoverPolicy>> {
        Ok(Arc::new(FaultyFailoverPolicy::new(initial, self.0)?))
    }

    async fn open(&self, _fs: Arc<dyn FileSystem>, _dir: &Path) -> Result<Arc<dyn FailoverPolicy>> {
        Err(strata_core::Error::Unsupported { component: "failover=broken", capability: "restart" })
    }
}

fn fault_name(fault: FailoverFault) -> &'static str {
    match fault {
        FailoverFault::PromotesOutOfSync => "broken-promotes-out-of-sync",
        FailoverFault::SkipsEpochBump => "broken-skips-epoch-bump",
        FailoverFault::AcksBeforeShrinkCommitted => "broken-acks-before-shrink-committed",
        FailoverFault::AcceptsLowerEpoch => "broken-accepts-lower-epoch",
        FailoverFault::LeaseLongerThanGrace => "broken-lease-longer-than-grace",
    }
}
