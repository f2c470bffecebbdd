//! Decisions as data, and the rules that pick them from a record and a view.

use super::node::{ClusterView, NodeId, NodeReport};
use super::record::{AuthorityRecord, Change, PossibleLoss};
use crate::error::{Error, Result};
use crate::types::{Epoch, SeqNo};

/// What a policy's [`decide`](super::FailoverPolicy::decide) says to do next. The
/// caller commits it with [`FailoverPolicy::compare_and_set`](super::FailoverPolicy)
/// ([`Decision::change`]), which checks it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to change.
    Nothing,
    /// The primary is alive but in-sync member `node` stopped reporting: remove it
    /// (in the primary's `epoch`) so the primary can acknowledge again.
    ShrinkInSync {
        /// The silent member.
        node: NodeId,
        /// The record's epoch.
        epoch: Epoch,
    },
    /// The primary is gone: `node`, the reachable in-sync member with the highest
    /// (epoch, last sequence), becomes primary at `epoch` (the record's + 1), starting
    /// at `first_seq` (its last sequence + 1).
    Promote {
        /// The new primary.
        node: NodeId,
        /// The record's epoch + 1.
        epoch: Epoch,
        /// Its last sequence + 1.
        first_seq: SeqNo,
    },
    /// The primary is gone and no in-sync member may replace it: the cluster stays
    /// without a primary until one returns or an operator forces a promotion.
    Unavailable {
        /// Why nobody is eligible, for operators.
        reason: String,
    },
}

impl Decision {
    /// The change to commit for this decision (`None` for `Nothing` and `Unavailable`).
    pub fn change(&self) -> Option<Change> {
        match self {
            Decision::Nothing | Decision::Unavailable { .. } => None,
            Decision::ShrinkInSync { node, epoch } => {
                Some(Change::ShrinkInSync { node: node.clone(), epoch: *epoch })
            }
            Decision::Promote { node, epoch, first_seq } => {
                Some(Change::Promote { node: node.clone(), epoch: *epoch, first_seq: *first_seq })
            }
        }
    }
}

/// The in-sync member that may be promoted: among the members of `record.in_sync`
/// heard from within the grace period whose epoch is not newer than the record's (an
/// epoch the authority never granted is not trusted), the one with the highest
/// (epoch, last sequence); ties go to the smallest node id. `Err` says why nobody
/// qualifies.
pub fn promotion_candidate(
    record: &AuthorityRecord,
    view: &ClusterView,
) -> Result<(NodeId, NodeReport), String> {
    let grace = record.lease.grace;
    let mut best: Option<(&NodeId, &NodeReport)> = None;
    let mut skipped = Vec::new();
    for node in &record.in_sync {
        let Some(report) = view.reachable(node, grace) else {
            skipped.push(format!("{node} is unreachable"));
            continue;
        };
        if report.epoch > record.epoch {
            skipped.push(format!(
                "{node} reports epoch {} which the authority (at {}) never granted",
                report.epoch, record.epoch
            ));
            continue;
        }
        // Members are visited in node-id order, so a strictly-greater test keeps the
        // smallest id among equal positions.
        if best.is_none_or(|(_, b)| report.position() > b.position()) {
            best = Some((node, report));
        }
    }
    match best {
        Some((node, report)) => Ok((node.clone(), *report)),
        None if record.in_sync.is_empty() => {
            Err("the in-sync set is empty: no replica is known to hold every acknowledged \
                 write"
                .to_owned())
        }
        None => Err(format!("no in-sync member is eligible: {}", skipped.join("; "))),
    }
}

/// The decision of an automatic policy, as a pure function of the record and the
/// view (the rule [`FailoverPolicy::decide`](super::FailoverPolicy::decide) documents):
///
/// - The primary was heard from within the grace period: the first in-sync member (by
///   node id) that was not is removed ([`Decision::ShrinkInSync`]); otherwise
///   [`Decision::Nothing`].
/// - The primary was not: [`promotion_candidate`] is promoted at the record's epoch + 1
///   from its last sequence + 1 ([`Decision::Promote`]), or, with no candidate,
///   [`Decision::Unavailable`].
pub fn automatic_decision(record: &AuthorityRecord, view: &ClusterView) -> Decision {
    let grace = record.lease.grace;
    if view.reachable(&record.primary, grace).is_some() {
        return match record.in_sync.iter().find(|m| view.reachable(m, grace).is_none()) {
            Some(node) => Decision::ShrinkInSync { node: node.clone(), epoch: record.epoch },
            None => Decision::Nothing,
        };
    }
    let Some(epoch) = record.epoch.checked_next() else {
        return Decision::Unavailable { reason: format!("epoch {} is the last one", record.epoch) };
    };
    match promotion_candidate(record, view) {
        Ok((node, report)) => Decision::Promote { node, epoch, first_seq: report.last_seq.next() },
        Err(reason) => Decision::Unavailable {
            reason: format!("primary {} is unreachable and {reason}", record.primary),
        },
    }
}

/// Plans an operator's forced promotion of `node` (in sync or not): the change to
/// commit and what it may lose, to show the operator before committing. `node` must
/// have reported within the grace period (its last sequence decides where the new
/// epoch starts); otherwise `Error::NotEligible`.
pub fn plan_forced_promotion(
    record: &AuthorityRecord,
    view: &ClusterView,
    node: &NodeId,
) -> Result<(Change, PossibleLoss)> {
    let grace = record.lease.grace;
    let Some(report) = view.reachable(node, grace) else {
        return Err(Error::NotEligible {
            node: node.clone(),
            reason: format!(
                "it was not heard from within the grace period ({grace:?}), so where its log \
                 ends is unknown"
            ),
        });
    };
    let epoch = record.epoch.checked_next().ok_or_else(|| {
        Error::InvalidArgument(format!("epoch {} is the last one there is", record.epoch))
    })?;
    let highest_reported = view
        .reports
        .values()
        .filter(|r| r.silent_for < grace)
        .map(|r| r.last_seq)
        .max()
        .unwrap_or(report.last_seq);
    let loss = PossibleLoss {
        was_in_sync: record.in_sync.contains(node) || *node == record.primary,
        kept_up_to: report.last_seq,
        highest_reported,
        unreachable_in_sync: record
            .in_sync
            .iter()
            .filter(|m| *m != node && view.reachable(m, grace).is_none())
            .cloned()
            .collect(),
    };
    let change = Change::ForcePromote {
        node: node.clone(),
        epoch,
        first_seq: report.last_seq.next(),
        possible_loss: loss.clone(),
    };
    Ok((change, loss))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::failover::LeaseSettings;

    fn report(epoch: u64, last: u64, silent_ms: u64) -> NodeReport {
        NodeReport {
            epoch: Epoch(epoch),
            last_seq: SeqNo(last),
            durable_seq: SeqNo(last),
            silent_for: Duration::from_millis(silent_ms),
        }
    }

    fn record() -> AuthorityRecord {
        let mut r =
            AuthorityRecord::initial(1, "p", Epoch(5), SeqNo(100), LeaseSettings::default());
        r.in_sync = ["a".into(), "b".into(), "c".into()].into();
        r
    }

    #[test]
    fn a_live_primary_drops_silent_members_only() {
        let r = record();
        let view = ClusterView::new()
            .with("p", report(5, 150, 0))
            .with("a", report(5, 150, 10))
            .with("b", report(5, 150, 5_000))
            .with("c", report(5, 150, 10));
        assert_eq!(
            automatic_decision(&r, &view),
            Decision::ShrinkInSync { node: "b".into(), epoch: Epoch(5) }
        );
        let view = view.with("b", report(5, 150, 10));
        assert_eq!(automatic_decision(&r, &view), Decision::Nothing);
    }

    #[test]
    fn a_lost_primary_is_replaced_by_the_most_advanced_reachable_member() {
        let r = record();
        let view = ClusterView::new()
            .with("a", report(5, 140, 10))
            .with("b", report(5, 150, 10))
            .with("c", report(5, 160, 5_000))
            .with("x", report(5, 999, 10));
        assert_eq!(
            automatic_decision(&r, &view),
            Decision::Promote { node: "b".into(), epoch: Epoch(6), first_seq: SeqNo(151) }
        );
    }

    #[test]
    fn without_an_eligible_member_the_cluster_is_unavailable_and_force_reports_loss() {
        let r = record();
        let view = ClusterView::new().with("x", report(5, 130, 10)).with("a", report(5, 150, 900));
        assert!(matches!(automatic_decision(&r, &view), Decision::Unavailable { .. }));
        let (change, loss) = plan_forced_promotion(&r, &view, &"x".into()).expect("plan");
        assert!(!loss.was_in_sync);
        assert_eq!(loss.kept_up_to, SeqNo(130));
        assert_eq!(loss.unreachable_in_sync.len(), 3);
        assert!(loss.to_string().contains("may be lost"), "{loss}");
        let next = r.apply(&change).expect("forced promotion commits");
        assert_eq!((next.primary.as_str(), next.epoch), ("x", Epoch(6)));
        assert!(plan_forced_promotion(&r, &view, &"a".into()).is_err());
    }

    #[test]
    fn ties_go_to_the_smallest_id_and_ungranted_epochs_are_not_trusted() {
        let r = record();
        let view = ClusterView::new()
            .with("a", report(5, 150, 10))
            .with("b", report(5, 150, 10))
            .with("c", report(6, 900, 10));
        let (node, _) = promotion_candidate(&r, &view).expect("candidate");
        assert_eq!(node.as_str(), "a");
    }
}
