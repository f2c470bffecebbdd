//! The `decide` checks: random records and views, every decision held against a
//! model of the rules written independently of strata-core's helpers.

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;
use strata_core::{
    AuthorityRecord, ClusterView, Decision, Epoch, LeaseSettings, NodeId, NodeReport, SeqNo,
};

use super::Subject;
use crate::conformance::runner::{CheckResult, ensure, property};

/// Node names the generators draw from.
pub(super) const NODES: [&str; 6] = ["n0", "n1", "n2", "n3", "n4", "n5"];

/// One generated situation.
#[derive(Clone, Debug)]
pub(super) struct Situation {
    pub record: AuthorityRecord,
    pub view: ClusterView,
}

fn situation() -> impl Strategy<Value = Situation> {
    let settings = LeaseSettings::default();
    (
        0..NODES.len(),
        proptest::collection::vec(any::<bool>(), NODES.len()),
        1u64..6,
        1u64..20,
        proptest::collection::vec(
            (any::<bool>(), 0u8..4, 0u64..30, 0u8..3, any::<bool>()),
            NODES.len(),
        ),
    )
        .prop_map(move |(primary, members, epoch, first, reports)| {
            let mut record =
                AuthorityRecord::initial(7, NODES[primary], Epoch(epoch), SeqNo(first), settings);
            record.version = epoch * 3;
            record.in_sync = NODES
                .iter()
                .zip(&members)
                .filter(|(n, m)| **m && **n != NODES[primary])
                .map(|(n, _)| NodeId::from(*n))
                .collect();
            let mut view = ClusterView::new();
            for (n, (heard, epoch_delta, extra, silence, durable_lags)) in NODES.iter().zip(reports)
            {
                if !heard {
                    continue;
                }
                // Reported epochs around the record's (one may be newer than granted);
                // positions from just before the epoch's start to well after it.
                let e = (epoch + u64::from(epoch_delta)).saturating_sub(2).max(1);
                let last = first.saturating_sub(1) + extra;
                let silent_for = match silence {
                    0 => Duration::ZERO,
                    1 => settings.grace / 2,
                    _ => settings.grace + Duration::from_millis(1),
                };
                let durable = if durable_lags { last.saturating_sub(3) } else { last };
                view.reports.insert(
                    NodeId::from(*n),
                    NodeReport {
                        epoch: Epoch(e),
                        last_seq: SeqNo(last),
                        durable_seq: SeqNo(durable),
                        silent_for,
                    },
                );
            }
            Situation { record, view }
        })
}

fn reachable<'a>(s: &'a Situation, node: &NodeId) -> Option<&'a NodeReport> {
    s.view.reports.get(node).filter(|r| r.silent_for < s.record.lease.grace)
}

/// The members that may be promoted: in sync, reachable, epoch not newer than granted.
fn eligible(s: &Situation) -> Vec<(&NodeId, &NodeReport)> {
    s.record
        .in_sync
        .iter()
        .filter_map(|n| reachable(s, n).map(|r| (n, r)))
        .filter(|(_, r)| r.epoch <= s.record.epoch)
        .collect()
}

fn cases(s: &Subject) -> u32 {
    s.caps.cases
}

fn decide(s: &Subject, sit: &Situation) -> Decision {
    s.decider.decide(&sit.record, &sit.view)
}

pub(super) fn deterministic(s: &Subject) -> CheckResult {
    property(cases(s), situation(), |sit| {
        let a = decide(s, &sit);
        let b = decide(s, &sit);
        ensure!(a == b, "the same record and view gave {a:?}, then {b:?}");
        Ok(())
    })
}

pub(super) fn never_replaces_a_reachable_primary(s: &Subject) -> CheckResult {
    property(cases(s), situation(), |sit| {
        if reachable(&sit, &sit.record.primary).is_none() {
            return Ok(());
        }
        let d = decide(s, &sit);
        ensure!(
            matches!(d, Decision::Nothing | Decision::ShrinkInSync { .. }),
            "the primary {} is reachable, yet decide returned {d:?}",
            sit.record.primary
        );
        Ok(())
    })
}

pub(super) fn shrinks_only_silent_members(s: &Subject) -> CheckResult {
    property(cases(s), situation(), |sit| {
        let Decision::ShrinkInSync { node, epoch } = decide(s, &sit) else { return Ok(()) };
        ensure!(
            reachable(&sit, &sit.record.primary).is_some(),
            "shrink of {node} while the primary is unreachable (only a live primary asks)"
        );
        ensure!(sit.record.in_sync.contains(&node), "shrink of {node}, not an in-sync member");
        ensure!(
            reachable(&sit, &node).is_none(),
            "shrink of {node}, which reported within the grace period"
        );
        ensure!(
            epoch == sit.record.epoch,
            "shrink requested in epoch {epoch}, the record is at {}",
            sit.record.epoch
        );
        Ok(())
    })
}

pub(super) fn promotes_only_the_best_in_sync_member(s: &Subject) -> CheckResult {
    property(cases(s), situation(), |sit| {
        let Decision::Promote { node, first_seq, .. } = decide(s, &sit) else { return Ok(()) };
        let eligible = eligible(&sit);
        let Some((_, report)) = eligible.iter().find(|(n, _)| **n == node) else {
            let names: BTreeSet<&NodeId> = eligible.iter().map(|(n, _)| *n).collect();
            return Err(format!(
                "promoted {node}, which is not a reachable in-sync member with a granted epoch \
                 (eligible: {names:?}, in-sync: {:?})",
                sit.record.in_sync
            ));
        };
        let best = eligible.iter().map(|(_, r)| r.position()).max();
        ensure!(
            Some(report.position()) == best,
            "promoted {node} at {:?}, but an eligible member is at {best:?}",
            report.position()
        );
        ensure!(
            first_seq == report.last_seq.next(),
            "promoted {node} whose log ends at {}, starting the epoch at {first_seq}",
            report.last_seq
        );
        Ok(())
    })
}

pub(super) fn promotes_at_the_next_epoch(s: &Subject) -> CheckResult {
    property(cases(s), situation(), |sit| {
        let Decision::Promote { node, epoch, .. } = decide(s, &sit) else { return Ok(()) };
        ensure!(
            Some(epoch) == sit.record.epoch.checked_next(),
            "promoted {node} at epoch {epoch}; the record is at {} so it must be the next one",
            sit.record.epoch
        );
        Ok(())
    })
}

pub(super) fn fails_over_when_it_should(s: &Subject) -> CheckResult {
    property(cases(s), situation(), |sit| {
        let d = decide(s, &sit);
        let primary_up = reachable(&sit, &sit.record.primary).is_some();
        if !primary_up && !eligible(&sit).is_empty() {
            ensure!(
                matches!(d, Decision::Promote { .. }),
                "the primary is unreachable and a member is eligible, yet decide returned {d:?}"
            );
        }
        let silent = sit.record.in_sync.iter().any(|m| reachable(&sit, m).is_none());
        if primary_up && silent {
            ensure!(
                matches!(d, Decision::ShrinkInSync { .. }),
                "an in-sync member went silent under a live primary, yet decide returned {d:?}"
            );
        }
        Ok(())
    })
}
