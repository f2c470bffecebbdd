//! The authority record and the changes that move it, checked in one place.

use std::collections::BTreeSet;
use std::fmt;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::lease::{Lease, LeaseSettings};
use super::node::NodeId;
use crate::error::{Error, Result};
use crate::types::{Epoch, SeqNo};

/// The small record the authority holds: who is primary, in which epoch, who is in
/// sync. Every change is a compare-and-set on `version`
/// ([`FailoverPolicy::compare_and_set`](super::FailoverPolicy::compare_and_set)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorityRecord {
    /// The cluster this record governs (the replication layer's cluster id).
    pub cluster: u64,
    /// Bumped by one on every committed change; a fresh record is version 1.
    pub version: u64,
    /// The primary's epoch: every batch it writes carries it.
    pub epoch: Epoch,
    /// The first sequence of `epoch`: where replicas whose tail diverged truncate to
    /// (they keep everything before it).
    pub epoch_first_seq: SeqNo,
    /// The node that may take writes and hold the lease.
    pub primary: NodeId,
    /// The replicas (never the primary) that hold every acknowledged write. In
    /// synchronous mode the primary acknowledges a write only once every member has it
    /// durable. Only members may be promoted (without an operator's override).
    pub in_sync: BTreeSet<NodeId>,
    /// Heartbeat, lease and grace durations.
    pub lease: LeaseSettings,
}

impl AuthorityRecord {
    /// The first record of a cluster: `primary` writes in `epoch`, which starts at
    /// `epoch_first_seq` (the last entry of its store's epoch history), nobody is in
    /// sync yet, version 1.
    pub fn initial(
        cluster: u64,
        primary: impl Into<NodeId>,
        epoch: Epoch,
        epoch_first_seq: SeqNo,
        lease: LeaseSettings,
    ) -> Self {
        Self {
            cluster,
            version: 1,
            epoch,
            epoch_first_seq,
            primary: primary.into(),
            in_sync: BTreeSet::new(),
            lease,
        }
    }

    /// Checks the record's own invariants: version ≥ 1, valid lease settings, the
    /// primary not in its own in-sync set. An authority refuses to start from (or
    /// load) a record that fails this.
    pub fn validate(&self) -> Result<()> {
        if self.version == 0 {
            return Err(Error::InvalidArgument("an authority record's version starts at 1".into()));
        }
        self.lease.validate()?;
        if self.in_sync.contains(&self.primary) {
            return Err(Error::InvalidArgument(format!(
                "the primary {} cannot be a member of its own in-sync set",
                self.primary
            )));
        }
        Ok(())
    }

    /// The record after `change`, at `version + 1`, or the error that refuses it. This
    /// is the one place the rules of a change live; every authority commits exactly
    /// what it returns (a compare-and-set store applies it to the record it holds at
    /// the expected version):
    ///
    /// - A change naming an epoch lower than the record's comes from a deposed primary:
    ///   `Error::Fenced`. One naming a higher epoch than it may (the record's for
    ///   in-sync changes, the record's + 1 for promotions) is `Error::WrongEpoch`.
    /// - [`Change::ShrinkInSync`] removes a member; [`Change::JoinInSync`] adds a
    ///   replica that is not the primary and not yet a member. Otherwise
    ///   `Error::NotEligible`.
    /// - [`Change::Promote`] names a member of the in-sync set (or the primary itself,
    ///   which takes a new epoch after a restart) at exactly `epoch + 1`, starting at
    ///   or after the current epoch's first sequence. The new primary leaves the
    ///   in-sync set; the old one is no longer in it (it rejoins after catching up).
    /// - [`Change::ForcePromote`] names any node at `epoch + 1` and empties the in-sync
    ///   set: nobody is known to hold the new primary's history. It is an operator's
    ///   request and carries the [`PossibleLoss`] the operator was shown.
    pub fn apply(&self, change: &Change) -> Result<AuthorityRecord> {
        let mut next = self.clone();
        next.version = self.version.checked_add(1).ok_or_else(|| {
            Error::InvalidArgument("the authority record's version is exhausted".into())
        })?;
        match change {
            Change::ShrinkInSync { node, epoch } => {
                self.check_current_epoch(*epoch)?;
                if !next.in_sync.remove(node) {
                    return Err(self.not_eligible(node, "it is not in the in-sync set"));
                }
            }
            Change::JoinInSync { node, epoch } => {
                self.check_current_epoch(*epoch)?;
                if *node == self.primary {
                    return Err(self.not_eligible(node, "it is the primary"));
                }
                if !next.in_sync.insert(node.clone()) {
                    return Err(self.not_eligible(node, "it is already in the in-sync set"));
                }
            }
            Change::Promote { node, epoch, first_seq } => {
                self.check_next_epoch(*epoch)?;
                if *node != self.primary && !self.in_sync.contains(node) {
                    return Err(self.not_eligible(
                        node,
                        "it is not in the in-sync set, so it may lack acknowledged writes \
                         (an operator can force it with Change::ForcePromote)",
                    ));
                }
                if *first_seq < self.epoch_first_seq || *first_seq == SeqNo::ZERO {
                    return Err(self.not_eligible(
                        node,
                        &format!(
                            "its new epoch would start at {first_seq}, before {} where the \
                             current epoch {} starts: an in-sync member holds that much",
                            self.epoch_first_seq, self.epoch
                        ),
                    ));
                }
                next.in_sync.remove(node);
                next.promote(node, *epoch, *first_seq);
            }
            Change::ForcePromote { node, epoch, first_seq, possible_loss: _ } => {
                self.check_next_epoch(*epoch)?;
                if *first_seq == SeqNo::ZERO {
                    return Err(
                        self.not_eligible(node, "a new epoch starts at sequence 1 or later")
                    );
                }
                next.in_sync.clear();
                next.promote(node, *epoch, *first_seq);
            }
        }
        Ok(next)
    }

    /// The lease `node`, writing in `epoch`, gets from this record for a renewal that
    /// started at `started`: the rules of
    /// [`FailoverPolicy::renew_lease`](super::FailoverPolicy::renew_lease). A lower
    /// epoch is `Error::Fenced` (checked first: a deposed primary is told so, whoever
    /// is primary now), a node other than the primary `Error::NotEligible`, a higher
    /// epoch `Error::WrongEpoch`. The lease ends `lease.lease` after `started` and names
    /// this record's version and in-sync set.
    pub fn grant_lease(&self, node: &NodeId, epoch: Epoch, started: Instant) -> Result<Lease> {
        if epoch < self.epoch {
            return Err(self.fenced(epoch));
        }
        if *node != self.primary {
            return Err(self.not_eligible(
                node,
                &format!("only the primary holds a lease, and the primary is {}", self.primary),
            ));
        }
        self.check_current_epoch(epoch)?;
        Ok(Lease {
            holder: node.clone(),
            epoch,
            version: self.version,
            in_sync: self.in_sync.clone(),
            expires_at: started + self.lease.lease,
        })
    }

    fn promote(&mut self, node: &NodeId, epoch: Epoch, first_seq: SeqNo) {
        self.primary = node.clone();
        self.epoch = epoch;
        self.epoch_first_seq = first_seq;
    }

    /// `Ok` when `epoch` is the record's; `Fenced` below, `WrongEpoch` above.
    pub fn check_current_epoch(&self, epoch: Epoch) -> Result<()> {
        if epoch < self.epoch {
            return Err(self.fenced(epoch));
        }
        if epoch > self.epoch {
            return Err(Error::WrongEpoch { got: epoch, expected: self.epoch });
        }
        Ok(())
    }

    /// `Ok` when `epoch` is the record's + 1 (a promotion's epoch).
    fn check_next_epoch(&self, epoch: Epoch) -> Result<()> {
        let expected = self.epoch.checked_next().ok_or_else(|| {
            Error::InvalidArgument(format!("epoch {} is the last one there is", self.epoch))
        })?;
        if epoch < self.epoch {
            return Err(self.fenced(epoch));
        }
        if epoch != expected {
            return Err(Error::WrongEpoch { got: epoch, expected });
        }
        Ok(())
    }

    /// The error for a request made in `epoch`, older than the record's.
    pub fn fenced(&self, epoch: Epoch) -> Error {
        Error::Fenced { epoch, current: self.epoch, primary: self.primary.clone() }
    }

    fn not_eligible(&self, node: &NodeId, reason: &str) -> Error {
        Error::NotEligible { node: node.clone(), reason: reason.to_owned() }
    }
}

/// One change to the authority record, committed by
/// [`FailoverPolicy::compare_and_set`](super::FailoverPolicy::compare_and_set) and
/// checked by [`AuthorityRecord::apply`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Change {
    /// `node` leaves the in-sync set: the primary stopped hearing its acknowledgements
    /// (or an operator removes it). Requested in the primary's `epoch`. The primary
    /// acknowledges no further write without `node` until this is committed.
    ShrinkInSync {
        /// The member to remove.
        node: NodeId,
        /// The epoch of the primary asking (a deposed primary's request is fenced).
        epoch: Epoch,
    },
    /// `node`, caught up, joins the in-sync set. Requested by the primary in its
    /// `epoch`, which already waits for `node`'s acknowledgements before it asks
    /// (waiting for more replicas is always safe; counting one that is not yet waited
    /// for is not).
    JoinInSync {
        /// The replica to add.
        node: NodeId,
        /// The epoch of the primary asking.
        epoch: Epoch,
    },
    /// `node`, an in-sync member, becomes primary at `epoch` (the record's + 1); its
    /// log continues at `first_seq` (its last sequence + 1), where replicas with a
    /// diverged tail truncate to.
    Promote {
        /// The new primary.
        node: NodeId,
        /// The new epoch: the record's + 1.
        epoch: Epoch,
        /// The new epoch's first sequence.
        first_seq: SeqNo,
    },
    /// An operator makes `node` primary although it may lack acknowledged writes (no
    /// in-sync member is reachable). Never produced by a policy's `decide`.
    ForcePromote {
        /// The new primary.
        node: NodeId,
        /// The new epoch: the record's + 1.
        epoch: Epoch,
        /// The new epoch's first sequence (the node's last sequence + 1).
        first_seq: SeqNo,
        /// What the operator was told may be lost.
        possible_loss: PossibleLoss,
    },
}

impl Change {
    /// The node the change is about.
    pub fn node(&self) -> &NodeId {
        match self {
            Change::ShrinkInSync { node, .. }
            | Change::JoinInSync { node, .. }
            | Change::Promote { node, .. }
            | Change::ForcePromote { node, .. } => node,
        }
    }
}

/// What a forced promotion may lose, as the operator is told before confirming it
/// ([`plan_forced_promotion`](super::plan_forced_promotion)).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PossibleLoss {
    /// Whether the promoted node was an in-sync member (then nothing acknowledged is
    /// lost, only its rank among members was overridden).
    pub was_in_sync: bool,
    /// The promoted node's last sequence: acknowledged writes after it are lost.
    pub kept_up_to: SeqNo,
    /// The highest last sequence any reachable node reported (a lower bound of what
    /// was written; the old primary may have acknowledged more).
    pub highest_reported: SeqNo,
    /// In-sync members that were unreachable: they may hold acknowledged writes the
    /// promoted node lacks, and will be truncated to its history when they return.
    pub unreachable_in_sync: BTreeSet<NodeId>,
}

impl fmt::Display for PossibleLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.was_in_sync {
            return write!(
                f,
                "the node is in the in-sync set: it holds every acknowledged write (up to {})",
                self.kept_up_to
            );
        }
        write!(
            f,
            "the node is not in the in-sync set: acknowledged writes after {} may be lost",
            self.kept_up_to
        )?;
        if self.highest_reported > self.kept_up_to {
            write!(
                f,
                " (reachable nodes report writes up to {}, and the old primary may have \
                 acknowledged more)",
                self.highest_reported
            )?;
        }
        if !self.unreachable_in_sync.is_empty() {
            let names: Vec<&str> = self.unreachable_in_sync.iter().map(NodeId::as_str).collect();
            write!(
                f,
                "; unreachable in-sync members {} may hold them and will be truncated",
                names.join(", ")
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AuthorityRecord {
        let mut r = AuthorityRecord::initial(7, "p", Epoch(3), SeqNo(10), LeaseSettings::default());
        r.in_sync = ["a".into(), "b".into()].into();
        r
    }

    #[test]
    fn promotion_bumps_the_epoch_by_one_and_needs_membership() {
        let r = record();
        let p = Change::Promote { node: "a".into(), epoch: Epoch(4), first_seq: SeqNo(21) };
        let next = r.apply(&p).expect("valid promotion");
        assert_eq!((next.version, next.epoch, next.epoch_first_seq), (2, Epoch(4), SeqNo(21)));
        assert_eq!(next.primary, NodeId::new("a"));
        assert_eq!(next.in_sync, ["b".into()].into());

        let same = Change::Promote { node: "a".into(), epoch: Epoch(3), first_seq: SeqNo(21) };
        assert!(matches!(r.apply(&same), Err(Error::WrongEpoch { expected: Epoch(4), .. })));
        let old = Change::Promote { node: "a".into(), epoch: Epoch(2), first_seq: SeqNo(21) };
        assert!(matches!(r.apply(&old), Err(Error::Fenced { .. })));
        let out = Change::Promote { node: "z".into(), epoch: Epoch(4), first_seq: SeqNo(21) };
        assert!(matches!(r.apply(&out), Err(Error::NotEligible { .. })));
        let early = Change::Promote { node: "a".into(), epoch: Epoch(4), first_seq: SeqNo(9) };
        assert!(matches!(r.apply(&early), Err(Error::NotEligible { .. })));
    }

    #[test]
    fn forced_promotion_takes_anyone_and_empties_the_in_sync_set() {
        let r = record();
        let f = Change::ForcePromote {
            node: "z".into(),
            epoch: Epoch(4),
            first_seq: SeqNo(5),
            possible_loss: PossibleLoss::default(),
        };
        let next = r.apply(&f).expect("forced");
        assert_eq!(next.primary, NodeId::new("z"));
        assert!(next.in_sync.is_empty());
    }

    #[test]
    fn in_sync_changes_need_the_current_epoch() {
        let r = record();
        let shrink = Change::ShrinkInSync { node: "a".into(), epoch: Epoch(3) };
        assert_eq!(r.apply(&shrink).expect("shrink").in_sync, ["b".into()].into());
        let stale = Change::ShrinkInSync { node: "a".into(), epoch: Epoch(2) };
        assert!(matches!(r.apply(&stale), Err(Error::Fenced { current: Epoch(3), .. })));
        let ahead = Change::ShrinkInSync { node: "a".into(), epoch: Epoch(4) };
        assert!(matches!(r.apply(&ahead), Err(Error::WrongEpoch { .. })));
        let absent = Change::ShrinkInSync { node: "z".into(), epoch: Epoch(3) };
        assert!(matches!(r.apply(&absent), Err(Error::NotEligible { .. })));
        let join = Change::JoinInSync { node: "c".into(), epoch: Epoch(3) };
        assert_eq!(r.apply(&join).expect("join").in_sync.len(), 3);
        let primary = Change::JoinInSync { node: "p".into(), epoch: Epoch(3) };
        assert!(matches!(r.apply(&primary), Err(Error::NotEligible { .. })));
    }

    #[test]
    fn leases_go_to_the_primary_in_its_epoch_only() {
        let r = record();
        let now = Instant::now();
        let lease = r.grant_lease(&"p".into(), Epoch(3), now).expect("primary");
        assert_eq!(lease.expires_at, now + r.lease.lease);
        assert_eq!((lease.version, &lease.in_sync), (r.version, &r.in_sync));
        assert!(matches!(
            r.grant_lease(&"a".into(), Epoch(3), now),
            Err(Error::NotEligible { .. })
        ));
        assert!(matches!(r.grant_lease(&"a".into(), Epoch(2), now), Err(Error::Fenced { .. })));
        assert!(matches!(r.grant_lease(&"p".into(), Epoch(4), now), Err(Error::WrongEpoch { .. })));
    }

    #[test]
    fn records_check_their_invariants() {
        let r = record();
        r.validate().expect("valid");
        let mut bad = r.clone();
        bad.in_sync.insert("p".into());
        assert!(bad.validate().is_err());
    }
}
