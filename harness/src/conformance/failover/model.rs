//! A model of the authority record, written from the trait's rustdoc independently of
//! `AuthorityRecord::apply`, and the random operation sequences run against it.

use std::time::Instant;

use proptest::prelude::*;
use strata_core::{
    AuthorityRecord, Change, Epoch, Error, LeaseSettings, NodeId, PossibleLoss, SeqNo,
};

use super::decide::NODES;
use super::{Subject, fresh};
use crate::conformance::runner::{CheckResult, Ctx, ensure, property};

/// What kind of answer an operation gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Ok,
    Stale,
    Fenced,
    WrongEpoch,
    NotEligible,
}

fn kind_of<T>(r: &Result<T, Error>) -> Result<Kind, String> {
    match r {
        Ok(_) => Ok(Kind::Ok),
        Err(Error::StaleAuthority { .. }) => Ok(Kind::Stale),
        Err(Error::Fenced { .. }) => Ok(Kind::Fenced),
        Err(Error::WrongEpoch { .. }) => Ok(Kind::WrongEpoch),
        Err(Error::NotEligible { .. }) => Ok(Kind::NotEligible),
        Err(other) => Err(format!("unexpected error kind: {other}")),
    }
}

/// Epoch checks shared by the rules: lower is fenced, other than `want` is wrong.
fn epoch_rule(current: Epoch, got: Epoch, want: Epoch) -> Option<Kind> {
    if got < current {
        Some(Kind::Fenced)
    } else if got != want {
        Some(Kind::WrongEpoch)
    } else {
        None
    }
}

/// The model's answer to a compare-and-set.
fn model_cas(r: &AuthorityRecord, expected: u64, c: &Change) -> Result<AuthorityRecord, Kind> {
    if expected != r.version {
        return Err(Kind::Stale);
    }
    let mut n = r.clone();
    n.version += 1;
    let next_epoch = Epoch(r.epoch.0 + 1);
    match c {
        Change::ShrinkInSync { node, epoch } => {
            if let Some(k) = epoch_rule(r.epoch, *epoch, r.epoch) {
                return Err(k);
            }
            if !n.in_sync.remove(node) {
                return Err(Kind::NotEligible);
            }
        }
        Change::JoinInSync { node, epoch } => {
            if let Some(k) = epoch_rule(r.epoch, *epoch, r.epoch) {
                return Err(k);
            }
            if *node == r.primary || !n.in_sync.insert(node.clone()) {
                return Err(Kind::NotEligible);
            }
        }
        Change::Promote { node, epoch, first_seq } => {
            if let Some(k) = epoch_rule(r.epoch, *epoch, next_epoch) {
                return Err(k);
            }
            let member = *node == r.primary || r.in_sync.contains(node);
            if !member || *first_seq < r.epoch_first_seq || first_seq.0 == 0 {
                return Err(Kind::NotEligible);
            }
            n.in_sync.remove(node);
            (n.primary, n.epoch, n.epoch_first_seq) = (node.clone(), *epoch, *first_seq);
        }
        Change::ForcePromote { node, epoch, first_seq, .. } => {
            if let Some(k) = epoch_rule(r.epoch, *epoch, next_epoch) {
                return Err(k);
            }
            if first_seq.0 == 0 {
                return Err(Kind::NotEligible);
            }
            n.in_sync.clear();
            (n.primary, n.epoch, n.epoch_first_seq) = (node.clone(), *epoch, *first_seq);
        }
    }
    Ok(n)
}

/// The model's answer to a lease renewal (the lease fields it must carry).
fn model_lease(r: &AuthorityRecord, node: &NodeId, epoch: Epoch) -> Kind {
    if epoch < r.epoch {
        Kind::Fenced
    } else if *node != r.primary {
        Kind::NotEligible
    } else if epoch > r.epoch {
        Kind::WrongEpoch
    } else {
        Kind::Ok
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// Compare-and-set at the current version + `version_delta - 1`.
    Cas { version_delta: u8, change: ChangeSpec },
    /// Renew for `node` at the current epoch + `epoch_delta - 1`.
    Renew { node: usize, epoch_delta: u8 },
}

#[derive(Clone, Debug)]
enum ChangeSpec {
    Shrink(usize, u8),
    Join(usize, u8),
    Promote(usize, u8, u8),
    Force(usize, u8),
}

fn op() -> impl Strategy<Value = Op> {
    let node = 0..NODES.len();
    let spec = prop_oneof![
        (node.clone(), 0u8..3).prop_map(|(n, e)| ChangeSpec::Shrink(n, e)),
        (node.clone(), 0u8..3).prop_map(|(n, e)| ChangeSpec::Join(n, e)),
        (node.clone(), 0u8..4, 0u8..3).prop_map(|(n, e, f)| ChangeSpec::Promote(n, e, f)),
        (node.clone(), 0u8..4).prop_map(|(n, e)| ChangeSpec::Force(n, e)),
    ];
    let version = prop_oneof![6 => Just(1u8), 1 => Just(0u8), 1 => Just(2u8)];
    prop_oneof![
        3 => (version, spec).prop_map(|(version_delta, change)| Op::Cas { version_delta, change }),
        1 => (node, 0u8..3).prop_map(|(node, epoch_delta)| Op::Renew { node, epoch_delta }),
    ]
}

/// `base + delta - 1`, at least 0.
fn around(base: u64, delta: u8) -> u64 {
    (base + u64::from(delta)).saturating_sub(1)
}

fn change_of(r: &AuthorityRecord, spec: &ChangeSpec) -> Change {
    let e = |d: u8| Epoch(around(r.epoch.0, d));
    let node = |i: usize| NodeId::from(NODES[i % NODES.len()]);
    match *spec {
        ChangeSpec::Shrink(n, d) => Change::ShrinkInSync { node: node(n), epoch: e(d) },
        ChangeSpec::Join(n, d) => Change::JoinInSync { node: node(n), epoch: e(d) },
        ChangeSpec::Promote(n, d, f) => Change::Promote {
            node: node(n),
            epoch: e(d),
            first_seq: SeqNo(around(r.epoch_first_seq.0, f * 4)),
        },
        ChangeSpec::Force(n, d) => Change::ForcePromote {
            node: node(n),
            epoch: e(d),
            first_seq: SeqNo(r.epoch_first_seq.0 + 1),
            possible_loss: PossibleLoss::default(),
        },
    }
}

/// Random sequences of changes and renewals, each answer and each record compared
/// with the model.
pub(super) fn sequences_match_the_model(s: &Subject) -> CheckResult {
    let ops = proptest::collection::vec(op(), 1..24);
    property(s.caps.model_cases, ops, |ops| {
        let dir = tempfile::tempdir().ctx("tempdir")?;
        let mut initial =
            AuthorityRecord::initial(5, "n0", Epoch(2), SeqNo(10), LeaseSettings::default());
        initial.in_sync = ["n1".into(), "n2".into()].into();
        let policy = fresh(s, dir.path(), initial.clone())?;
        let mut model = initial;
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::Cas { version_delta, change } => {
                    let change = change_of(&model, change);
                    let expected = around(model.version, *version_delta);
                    let want = model_cas(&model, expected, &change);
                    let got = s.rt.block_on(policy.compare_and_set(expected, change.clone()));
                    let got_kind = kind_of(&got)?;
                    let want_kind = want.as_ref().map_or_else(|k| *k, |_| Kind::Ok);
                    ensure!(
                        got_kind == want_kind,
                        "op {i}: compare_and_set({expected}, {change:?}) on {model:?}: expected \
                         {want_kind:?}, got {got:?}"
                    );
                    if let (Ok(next), Ok(got)) = (want, got) {
                        ensure!(
                            got == next,
                            "op {i}: {change:?} committed {got:?}, the rules give {next:?}"
                        );
                        model = next;
                    }
                }
                Op::Renew { node, epoch_delta } => {
                    let node = NodeId::from(NODES[*node]);
                    let epoch = Epoch(around(model.epoch.0, *epoch_delta));
                    let got = s.rt.block_on(policy.renew_lease(&node, epoch));
                    let returned = Instant::now();
                    let want = model_lease(&model, &node, epoch);
                    let got_kind = kind_of(&got)?;
                    ensure!(
                        got_kind == want,
                        "op {i}: renew_lease({node}, {epoch}) on {model:?}: expected {want:?}, \
                         got {got:?}"
                    );
                    if let Ok(lease) = got {
                        ensure!(
                            lease.holder == node
                                && lease.epoch == epoch
                                && lease.version == model.version
                                && lease.in_sync == model.in_sync,
                            "op {i}: lease {lease:?} does not name the committed record {model:?}"
                        );
                        ensure!(
                            lease.expires_at <= returned + model.lease.lease,
                            "op {i}: lease runs {:?} past its grant, the settings allow {:?}",
                            lease.expires_at.saturating_duration_since(returned),
                            model.lease.lease
                        );
                    }
                }
            }
            let record = s.rt.block_on(policy.record()).ctx("record")?;
            ensure!(record == model, "op {i}: record() is {record:?}, the model holds {model:?}");
        }
        Ok(())
    })
}
