//! The checker against a model cluster: histories the model produces pass; each kind of
//! damage a broken cluster could do is reported under its clause.

use std::collections::BTreeSet;

use proptest::prelude::*;
use strata_core::{Epoch, SeqNo};

use super::*;

/// What the model cluster does next.
#[derive(Clone, Debug)]
enum Step {
    /// A client writes through the primary; every in-sync replica gets it.
    Write,
    /// A client writes through a replica and is refused.
    WriteToReplica(usize),
    /// A write reaches the primary and some in-sync replicas (a bitmask), then its
    /// client loses the connection.
    Unknown(u8),
    /// A replica leaves the in-sync set (through the authority).
    Shrink(usize),
    /// The primary dies; the in-sync member with the longest log takes over.
    Failover,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => Just(Step::Write),
        1 => (0usize..4).prop_map(Step::WriteToReplica),
        2 => any::<u8>().prop_map(Step::Unknown),
        1 => (0usize..4).prop_map(Step::Shrink),
        2 => Just(Step::Failover),
    ]
}

struct Model {
    names: Vec<String>,
    logs: Vec<Vec<LogEntry>>,
    primary: usize,
    epoch: Epoch,
    in_sync: BTreeSet<usize>,
    history: History,
}

impl Model {
    fn new(nodes: usize) -> Self {
        let names: Vec<String> = (0..nodes).map(|i| format!("n{i}")).collect();
        let history = History::new();
        for n in &names {
            history.record(Event::EpochSeen { node: n.clone(), epoch: Epoch(1) });
        }
        Self {
            logs: vec![Vec::new(); nodes],
            primary: 0,
            epoch: Epoch(1),
            in_sync: (1..nodes).collect(),
            names,
            history,
        }
    }

    fn entry(&self, op: OpId) -> LogEntry {
        let seq = SeqNo(self.logs[self.primary].len() as u64 + 1);
        LogEntry { seq, epoch: self.epoch, op: Some(op), digest: op.0.wrapping_mul(0x9e37_79b9) }
    }

    fn run(&mut self, s: &Step) {
        let n = self.names.len();
        match s {
            Step::Write => {
                let op = self.history.next_op();
                let node = self.names[self.primary].clone();
                self.history.record(Event::Invoke { op, node: node.clone() });
                let e = self.entry(op);
                self.logs[self.primary].push(e.clone());
                // A replica receives the primary's log in order, so it holds
                // everything before the write too.
                for r in self.in_sync.clone() {
                    self.logs[r] = self.logs[self.primary].clone();
                }
                self.history.record(Event::Delivered {
                    subscriber: "sub".into(),
                    seq: e.seq,
                    epoch: e.epoch,
                    op: e.op,
                });
                self.history.record(Event::Ok { op, node, epoch: self.epoch, seq: e.seq });
            }
            Step::WriteToReplica(r) => {
                let r = r % n;
                if r == self.primary {
                    return;
                }
                let op = self.history.next_op();
                self.history.record(Event::Invoke { op, node: self.names[r].clone() });
                self.history.record(Event::Fail { op, reason: "NotPrimary".into() });
            }
            Step::Unknown(mask) => {
                let op = self.history.next_op();
                self.history.record(Event::Invoke { op, node: self.names[self.primary].clone() });
                let e = self.entry(op);
                self.logs[self.primary].push(e.clone());
                for r in self.in_sync.clone() {
                    if mask & (1 << r) != 0 {
                        self.logs[r] = self.logs[self.primary].clone();
                    }
                }
                // The primary's subscribers see it once it is durable there.
                self.history.record(Event::Delivered {
                    subscriber: "sub".into(),
                    seq: e.seq,
                    epoch: e.epoch,
                    op: e.op,
                });
                self.history.record(Event::Unknown { op, reason: "connection lost".into() });
            }
            Step::Shrink(r) => {
                self.in_sync.remove(&(r % n));
            }
            Step::Failover => {
                // The in-sync member with the longest log; the rest truncate to it.
                let Some(next) = self.in_sync.iter().copied().max_by_key(|r| self.logs[*r].len())
                else {
                    return;
                };
                let in_sync = self.in_sync.iter().map(|r| self.names[*r].clone()).collect();
                self.epoch = Epoch(self.epoch.0 + 1);
                self.history.record(Event::Promoted {
                    node: self.names[next].clone(),
                    epoch: self.epoch,
                    in_sync,
                    forced: false,
                });
                let keep = self.logs[next].clone();
                let old_len = self.logs[self.primary].len();
                if keep.len() < old_len {
                    self.history.record(Event::TruncationReported {
                        subscriber: "sub".into(),
                        after: SeqNo(keep.len() as u64),
                    });
                }
                self.primary = next;
                for i in 0..n {
                    self.logs[i] = keep.clone();
                    self.history.record(Event::EpochSeen {
                        node: self.names[i].clone(),
                        epoch: self.epoch,
                    });
                }
                self.in_sync = (0..n).filter(|i| *i != next).collect();
            }
        }
    }

    /// Heals: every replica catches up with the primary.
    fn finish(self) -> (Vec<Event>, Vec<FinalNode>) {
        let log = self.logs[self.primary].clone();
        let nodes = self
            .names
            .iter()
            .enumerate()
            .map(|(i, name)| FinalNode {
                name: name.clone(),
                epoch: self.epoch,
                primary: i == self.primary,
                log: log.clone(),
            })
            .collect();
        (self.history.events(), nodes)
    }
}

fn cluster() -> impl Strategy<Value = (Vec<Event>, Vec<FinalNode>)> {
    (2usize..=4, prop::collection::vec(step(), 1..60)).prop_map(|(n, steps)| {
        let mut m = Model::new(n);
        m.run(&Step::Write);
        for s in &steps {
            m.run(s);
        }
        m.finish()
    })
}

fn clauses(events: &[Event], nodes: &[FinalNode], mode: &Mode) -> BTreeSet<Clause> {
    check(events, nodes, mode).into_iter().map(|v| v.clause).collect()
}

fn acked(events: &[Event]) -> Vec<(OpId, SeqNo, Epoch)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Ok { op, seq, epoch, .. } => Some((*op, *seq, *epoch)),
            _ => None,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn histories_of_a_correct_cluster_pass((events, nodes) in cluster()) {
        let found = check(&events, &nodes, &Mode::Sync);
        prop_assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn a_lost_acknowledged_write_is_caught((events, mut nodes) in cluster(), pick in any::<prop::sample::Index>()) {
        let acks = acked(&events);
        let survivors: Vec<_> = acks.iter().filter(|(op, _, _)| nodes[0].log.iter().any(|e| e.op == Some(*op))).collect();
        prop_assume!(!survivors.is_empty());
        let (op, seq, epoch) = **pick.get(&survivors);
        // The cluster drops the write's bytes everywhere and writes another in its place.
        for n in &mut nodes {
            for e in &mut n.log {
                if e.op == Some(op) {
                    e.op = None;
                    e.digest ^= 1;
                }
            }
        }
        prop_assert!(clauses(&events, &nodes, &Mode::Sync).contains(&Clause::AcknowledgedWriteLost));
        // The same loss inside a reported window is excused in async mode.
        let window = UnreplicatedWindow { epoch, after: SeqNo(seq.0 - 1), upto: seq };
        let found = clauses(&events, &nodes, &Mode::Async { unreplicated: vec![window] });
        prop_assert!(!found.contains(&Clause::AcknowledgedWriteLost), "{found:?}");
    }

    #[test]
    fn a_second_acknowledging_node_in_an_epoch_is_caught((mut events, nodes) in cluster()) {
        let Some((op, seq, epoch)) = acked(&events).last().copied() else { unreachable!("the model writes first") };
        events.push(Event::Ok { op, node: "intruder".into(), epoch, seq });
        prop_assert!(clauses(&events, &nodes, &Mode::Sync).contains(&Clause::OnePrimaryPerEpoch));
    }

    #[test]
    fn promotions_out_of_sync_or_without_a_bump_are_caught((mut events, nodes) in cluster(), out_of_sync in any::<bool>()) {
        let i = events.iter().rposition(|e| matches!(e, Event::Promoted { .. }));
        prop_assume!(i.is_some());
        let i = i.unwrap_or_default();
        let Event::Promoted { node, epoch, in_sync, forced } = events[i].clone() else { unreachable!() };
        let expected = if out_of_sync {
            events[i] = Event::Promoted { node: "outsider".into(), epoch, in_sync, forced };
            Clause::PromotedOutOfSync
        } else {
            events[i] = Event::Promoted { node, epoch: Epoch(epoch.0 - 1), in_sync, forced };
            Clause::EpochNotBumped
        };
        prop_assert!(clauses(&events, &nodes, &Mode::Sync).contains(&expected));
    }

    #[test]
    fn a_node_going_back_an_epoch_is_caught((mut events, mut nodes) in cluster(), at_the_end in any::<bool>()) {
        prop_assume!(nodes[0].epoch.0 > 1);
        if at_the_end {
            nodes[1].epoch = Epoch(nodes[1].epoch.0 - 1);
        } else {
            events.push(Event::EpochSeen { node: nodes[1].name.clone(), epoch: Epoch(1) });
        }
        prop_assert!(clauses(&events, &nodes, &Mode::Sync).contains(&Clause::EpochNeverDecreases));
    }

    #[test]
    fn damaged_logs_are_caught((events, mut nodes) in cluster(), pick in any::<prop::sample::Index>(), damage in 0u8..5) {
        let primary = nodes.iter().position(|n| n.primary).unwrap_or_default();
        let replica = (primary + 1) % nodes.len();
        let len = nodes[replica].log.len();
        prop_assume!(len >= 3);
        let i = pick.index(len - 1);
        let expected = match damage {
            0 => {
                nodes[replica].log[i].digest ^= 0xff;
                Clause::PrefixesDiffer
            }
            1 => {
                nodes[replica].log.pop();
                Clause::NotConverged
            }
            2 => {
                nodes[primary].log.remove(i.max(1));
                Clause::MalformedLog
            }
            3 => {
                let op = nodes[primary].log[len - 1].op;
                nodes[primary].log[i].op = op;
                Clause::DuplicateEntry
            }
            _ => {
                nodes[primary].log[i].op = Some(OpId(u64::MAX));
                Clause::PhantomEntry
            }
        };
        prop_assert!(clauses(&events, &nodes, &Mode::Sync).contains(&expected));
    }

    #[test]
    fn subscribers_holding_truncated_or_skipped_batches_are_caught((mut events, nodes) in cluster(), skip in any::<bool>()) {
        let last = nodes[0].log.last().map_or(SeqNo::ZERO, |e| e.seq);
        let (seq, expected) = if skip {
            (SeqNo(last.0 + 5), Clause::SubscriberGap)
        } else {
            (last.next(), Clause::SubscriberSawTruncated)
        };
        events.push(Event::TruncationReported { subscriber: "sub".into(), after: SeqNo(seq.0 - 1) });
        events.push(Event::Delivered { subscriber: "sub".into(), seq, epoch: nodes[0].epoch, op: None });
        if skip {
            events.push(Event::Delivered { subscriber: "sub".into(), seq: SeqNo(seq.0 + 2), epoch: nodes[0].epoch, op: None });
        }
        prop_assert!(clauses(&events, &nodes, &Mode::Sync).contains(&expected));
    }
}

#[test]
fn a_phantom_that_its_client_was_told_failed_is_caught() {
    let mut m = Model::new(3);
    m.run(&Step::Write);
    m.run(&Step::WriteToReplica(1));
    let (events, mut nodes) = m.finish();
    let Some(Event::Fail { op, .. }) = events.iter().find(|e| matches!(e, Event::Fail { .. }))
    else {
        panic!("the model records the refused write");
    };
    for n in &mut nodes {
        n.log.push(LogEntry { seq: SeqNo(2), epoch: Epoch(1), op: Some(*op), digest: 7 });
    }
    let found = check(&events, &nodes, &Mode::Sync);
    assert!(
        found.iter().any(|v| v.clause == Clause::PhantomEntry && v.detail.contains("NotPrimary")),
        "{found:#?}"
    );
}

#[test]
fn two_primaries_after_healing_are_not_converged() {
    let mut m = Model::new(2);
    m.run(&Step::Write);
    let (events, mut nodes) = m.finish();
    nodes[1].primary = true;
    let found: BTreeSet<Clause> =
        check(&events, &nodes, &Mode::Sync).into_iter().map(|v| v.clause).collect();
    assert!(found.contains(&Clause::NotConverged), "{found:?}");
}

#[test]
fn a_log_that_starts_after_an_acknowledged_write_cannot_be_judged() {
    let mut m = Model::new(2);
    m.run(&Step::Write);
    m.run(&Step::Write);
    let (events, mut nodes) = m.finish();
    for n in &mut nodes {
        n.log.remove(0);
    }
    let found: BTreeSet<Clause> =
        check(&events, &nodes, &Mode::Sync).into_iter().map(|v| v.clause).collect();
    assert!(found.contains(&Clause::LogTooShort), "{found:?}");
}
