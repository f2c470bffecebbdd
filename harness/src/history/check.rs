//! The checker: a history and the final logs in, every broken invariant out.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use strata_core::{Epoch, SeqNo};

use super::record::{Event, FinalNode, LogEntry, OpId};

/// Which durability promise the cluster ran under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Every acknowledged write must survive.
    Sync,
    /// Acknowledged writes may be lost, but only inside the windows the cluster
    /// reported when it failed over.
    Async {
        /// The reported windows.
        unreplicated: Vec<UnreplicatedWindow>,
    },
}

/// Writes of `epoch` with sequences in `(after, upto]` that a failover reported it may
/// have lost (what the old primary acknowledged and the new one never received).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnreplicatedWindow {
    /// The old primary's epoch.
    pub epoch: Epoch,
    /// The new primary's last sequence of that history.
    pub after: SeqNo,
    /// The old primary's last acknowledged sequence.
    pub upto: SeqNo,
}

impl UnreplicatedWindow {
    fn covers(&self, epoch: Epoch, seq: SeqNo) -> bool {
        epoch == self.epoch && seq > self.after && seq <= self.upto
    }
}

/// The invariant a [`Violation`] breaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Clause {
    /// Two nodes acknowledged writes in the same epoch.
    OnePrimaryPerEpoch,
    /// A node reported an epoch lower than one it reported before.
    EpochNeverDecreases,
    /// A promotion did not move to an epoch above every earlier one.
    EpochNotBumped,
    /// A node outside the in-sync set was promoted without an operator forcing it.
    PromotedOutOfSync,
    /// An acknowledged write is missing from the final log (or sits at another
    /// sequence or epoch), outside any reported unreplicated window.
    AcknowledgedWriteLost,
    /// A node's log has a gap, a repeated or backwards sequence, or an epoch that goes
    /// down along the sequences.
    MalformedLog,
    /// Two nodes hold different entries at the same sequence.
    PrefixesDiffer,
    /// One operation sits at two sequences.
    DuplicateEntry,
    /// An entry carries an operation no client invoked, or one that definitely failed.
    PhantomEntry,
    /// A subscriber received sequences out of order, twice or with a gap.
    SubscriberGap,
    /// A subscriber holds a batch that is not in the final log and was never told of
    /// the truncation.
    SubscriberSawTruncated,
    /// After healing there is not exactly one primary, or a replica's log differs in
    /// length from the primary's.
    NotConverged,
    /// The final logs no longer hold a sequence the history refers to, so it cannot
    /// be checked (keep more log in the test).
    LogTooShort,
}

/// One broken invariant, with what shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The invariant.
    pub clause: Clause,
    /// The evidence.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.clause, self.detail)
    }
}

/// Checks `events` (in real-time order) and the healed cluster's `nodes` against the
/// invariants in the [module docs](super). Returns every violation found; an empty
/// list means the history is valid.
pub fn check(events: &[Event], nodes: &[FinalNode], mode: &Mode) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut v = |clause, detail: String| out.push(Violation { clause, detail });
    check_epochs(events, nodes, &mut v);
    for n in nodes {
        check_log_shape(n, &mut v);
    }
    let Some(reference) = reference_node(nodes, &mut v) else {
        return out;
    };
    let log = Log::new(&reference.log);
    for n in nodes.iter().filter(|n| n.name != reference.name) {
        check_same_log(reference, n, &mut v);
    }
    check_entries(events, reference, &mut v);
    check_acknowledged(events, reference, &log, mode, &mut v);
    check_subscribers(events, reference, &log, &mut v);
    out
}

/// The final primary's log, indexed by sequence.
struct Log<'a> {
    first: u64,
    entries: &'a [LogEntry],
}

impl<'a> Log<'a> {
    fn new(entries: &'a [LogEntry]) -> Self {
        Self { first: entries.first().map_or(1, |e| e.seq.0), entries }
    }

    /// `Err(())` when the log starts after `seq` (cannot tell), `Ok(None)` when `seq`
    /// is past its end.
    fn at(&self, seq: SeqNo) -> Result<Option<&'a LogEntry>, ()> {
        if seq.0 < self.first {
            return Err(());
        }
        Ok(usize::try_from(seq.0 - self.first)
            .ok()
            .and_then(|i| self.entries.get(i))
            .filter(|e| e.seq == seq))
    }
}

fn check_epochs(events: &[Event], nodes: &[FinalNode], v: &mut impl FnMut(Clause, String)) {
    let mut node_epoch: BTreeMap<&str, Epoch> = BTreeMap::new();
    let mut acked_by: BTreeMap<Epoch, &str> = BTreeMap::new();
    let mut highest: Option<Epoch> = None;
    for (i, e) in events.iter().enumerate() {
        let (node, epoch) = match e {
            Event::Ok { op, node, epoch, seq } => {
                match acked_by.get(epoch) {
                    Some(first) if *first != node.as_str() => v(
                        Clause::OnePrimaryPerEpoch,
                        format!(
                            "event {i}: {node} acknowledged {op} at {seq} in {epoch}, which \
                             {first} acknowledged writes in"
                        ),
                    ),
                    Some(_) => {}
                    None => {
                        acked_by.insert(*epoch, node);
                    }
                }
                (node, *epoch)
            }
            Event::EpochSeen { node, epoch } => (node, *epoch),
            Event::Promoted { node, epoch, in_sync, forced } => {
                if !forced && !in_sync.contains(node) {
                    v(
                        Clause::PromotedOutOfSync,
                        format!(
                            "event {i}: {node} promoted to {epoch} from in-sync set {in_sync:?}"
                        ),
                    );
                }
                if highest.is_some_and(|h| *epoch <= h) {
                    v(
                        Clause::EpochNotBumped,
                        format!(
                            "event {i}: {node} promoted to {epoch}, but {} was already in use",
                            highest.map_or(Epoch::ZERO, |h| h)
                        ),
                    );
                }
                (node, *epoch)
            }
            _ => continue,
        };
        highest = Some(highest.map_or(epoch, |h| h.max(epoch)));
        let last = node_epoch.entry(node).or_insert(epoch);
        if epoch < *last {
            v(
                Clause::EpochNeverDecreases,
                format!("event {i}: {node} is at {epoch} after being at {last}"),
            );
        } else {
            *last = epoch;
        }
    }
    for n in nodes {
        if let Some(last) = node_epoch.get(n.name.as_str())
            && n.epoch < *last
        {
            v(
                Clause::EpochNeverDecreases,
                format!("{} ended at {} after being at {last}", n.name, n.epoch),
            );
        }
    }
}

fn check_log_shape(n: &FinalNode, v: &mut impl FnMut(Clause, String)) {
    for w in n.log.windows(2) {
        if w[1].seq.0 != w[0].seq.0 + 1 {
            v(
                Clause::MalformedLog,
                format!("{}'s log goes from {} to {}", n.name, w[0].seq, w[1].seq),
            );
        }
        if w[1].epoch < w[0].epoch {
            v(
                Clause::MalformedLog,
                format!(
                    "{}'s log has {} at {} after {} at {}",
                    n.name, w[1].epoch, w[1].seq, w[0].epoch, w[0].seq
                ),
            );
        }
    }
}

fn reference_node<'a>(
    nodes: &'a [FinalNode],
    v: &mut impl FnMut(Clause, String),
) -> Option<&'a FinalNode> {
    let primaries: Vec<&FinalNode> = nodes.iter().filter(|n| n.primary).collect();
    if primaries.len() != 1 {
        v(
            Clause::NotConverged,
            format!(
                "{} nodes believe they are primary: {:?}",
                primaries.len(),
                primaries.iter().map(|n| n.name.as_str()).collect::<Vec<_>>()
            ),
        );
    }
    // Without exactly one primary, judge against the most advanced node.
    primaries
        .first()
        .copied()
        .or_else(|| nodes.iter().max_by_key(|n| (n.epoch, n.log.last().map_or(0, |e| e.seq.0))))
}

fn check_same_log(reference: &FinalNode, n: &FinalNode, v: &mut impl FnMut(Clause, String)) {
    let log = Log::new(&reference.log);
    for e in &n.log {
        if let Ok(Some(r)) = log.at(e.seq)
            && r != e
        {
            v(
                Clause::PrefixesDiffer,
                format!(
                    "at {}: {} holds {:?}/{} (digest {:x}), {} holds {:?}/{} (digest {:x})",
                    e.seq, reference.name, r.op, r.epoch, r.digest, n.name, e.op, e.epoch, e.digest
                ),
            );
        }
    }
    let last = |l: &[LogEntry]| l.last().map_or(SeqNo::ZERO, |e| e.seq);
    if last(&n.log) != last(&reference.log) {
        v(
            Clause::NotConverged,
            format!(
                "{} ends at {}, the primary {} at {}",
                n.name,
                last(&n.log),
                reference.name,
                last(&reference.log)
            ),
        );
    }
}

fn check_entries(events: &[Event], reference: &FinalNode, v: &mut impl FnMut(Clause, String)) {
    let mut invoked = BTreeSet::new();
    let mut failed = BTreeMap::new();
    for e in events {
        match e {
            Event::Invoke { op, .. } => {
                invoked.insert(*op);
            }
            Event::Fail { op, reason } => {
                failed.insert(*op, reason.as_str());
            }
            _ => {}
        }
    }
    let mut at: BTreeMap<OpId, SeqNo> = BTreeMap::new();
    for e in &reference.log {
        let Some(op) = e.op else { continue };
        if let Some(first) = at.insert(op, e.seq) {
            v(Clause::DuplicateEntry, format!("{op} is at {first} and at {}", e.seq));
        }
        if !invoked.contains(&op) {
            v(Clause::PhantomEntry, format!("{op} at {} was never invoked", e.seq));
        } else if let Some(reason) = failed.get(&op) {
            v(
                Clause::PhantomEntry,
                format!(
                    "{op} at {} is in the log, but its client was told it failed: {reason}",
                    e.seq
                ),
            );
        }
    }
}

fn check_acknowledged(
    events: &[Event],
    reference: &FinalNode,
    log: &Log<'_>,
    mode: &Mode,
    v: &mut impl FnMut(Clause, String),
) {
    for e in events {
        let Event::Ok { op, node, epoch, seq } = e else { continue };
        let held = match log.at(*seq) {
            Err(()) => {
                v(
                    Clause::LogTooShort,
                    format!(
                        "{op} was acknowledged at {seq}, before {}'s log starts",
                        reference.name
                    ),
                );
                continue;
            }
            Ok(entry) => entry,
        };
        if held.is_some_and(|h| h.op == Some(*op) && h.epoch == *epoch) {
            continue;
        }
        let excused = match mode {
            Mode::Sync => false,
            Mode::Async { unreplicated } => unreplicated.iter().any(|w| w.covers(*epoch, *seq)),
        };
        if !excused {
            v(
                Clause::AcknowledgedWriteLost,
                format!(
                    "{node} acknowledged {op} at {seq} in {epoch}; the final log holds {}",
                    held.map_or("nothing there".to_owned(), |h| format!(
                        "{:?} of {}",
                        h.op, h.epoch
                    ))
                ),
            );
        }
    }
}

/// What a subscriber holds (after the truncations it was told of) and the next sequence
/// it should receive.
type Subscriber = (Vec<(SeqNo, Epoch, Option<OpId>)>, Option<SeqNo>);

fn check_subscribers(
    events: &[Event],
    reference: &FinalNode,
    log: &Log<'_>,
    v: &mut impl FnMut(Clause, String),
) {
    let mut subs: BTreeMap<&str, Subscriber> = BTreeMap::new();
    for (i, e) in events.iter().enumerate() {
        match e {
            Event::Delivered { subscriber, seq, epoch, op } => {
                let (held, next) = subs.entry(subscriber).or_default();
                if let Some(n) = next
                    && n != seq
                {
                    v(
                        Clause::SubscriberGap,
                        format!("event {i}: {subscriber} received {seq}, expected {n}"),
                    );
                }
                *next = Some(seq.next());
                held.push((*seq, *epoch, *op));
            }
            Event::TruncationReported { subscriber, after } => {
                let (held, next) = subs.entry(subscriber).or_default();
                held.retain(|(s, _, _)| s <= after);
                *next = Some(after.next());
            }
            _ => {}
        }
    }
    for (sub, (held, _)) in subs {
        for (seq, epoch, op) in held {
            match log.at(seq) {
                Err(()) => v(
                    Clause::LogTooShort,
                    format!("{sub} received {seq}, before {}'s log starts", reference.name),
                ),
                Ok(Some(e)) if e.epoch == epoch && e.op == op => {}
                Ok(found) => v(
                    Clause::SubscriberSawTruncated,
                    format!(
                        "{sub} received {op:?} of {epoch} at {seq} and was never told it was \
                         truncated; the final log holds {}",
                        found.map_or("nothing there".to_owned(), |e| format!(
                            "{:?} of {}",
                            e.op, e.epoch
                        ))
                    ),
                ),
            }
        }
    }
}
