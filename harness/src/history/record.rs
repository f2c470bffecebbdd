//! What a fault test records: events in real-time order, and each node's final log.

use std::collections::BTreeSet;
use std::fmt;

use parking_lot::Mutex;
use strata_core::{Epoch, SeqNo};

/// The identity of one client operation: unique within a history, and written into the
/// operation's bytes so that a log entry names the operation it came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpId(pub u64);

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op{}", self.0)
    }
}

/// One thing a client, an operator or an observer saw.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A client asked `node` to write operation `op`.
    Invoke {
        /// The operation.
        op: OpId,
        /// The node asked.
        node: String,
    },
    /// `node` acknowledged `op` as written at `seq` in `epoch`.
    Ok {
        /// The operation.
        op: OpId,
        /// The node that acknowledged it.
        node: String,
        /// The epoch the node acknowledged in.
        epoch: Epoch,
        /// The sequence the operation got.
        seq: SeqNo,
    },
    /// `op` was definitely not written (the node refused before writing anything, as a
    /// replica or a fenced primary does).
    Fail {
        /// The operation.
        op: OpId,
        /// What the node said.
        reason: String,
    },
    /// The outcome of `op` is unknown (a timeout, a lost connection, a write not yet
    /// replicated): it may or may not be in the log.
    Unknown {
        /// The operation.
        op: OpId,
        /// What the client saw.
        reason: String,
    },
    /// `node` reported that it is at `epoch` (a status poll, or a restart).
    EpochSeen {
        /// The node.
        node: String,
        /// Its epoch.
        epoch: Epoch,
    },
    /// `node` was promoted to primary at `epoch`, chosen while the authority's in-sync
    /// set was `in_sync`.
    Promoted {
        /// The new primary.
        node: String,
        /// Its new epoch.
        epoch: Epoch,
        /// The in-sync set the choice was made from.
        in_sync: BTreeSet<String>,
        /// An operator forced the promotion (and was told of the possible loss).
        forced: bool,
    },
    /// Subscriber `subscriber` received the batch at `seq`.
    Delivered {
        /// The subscriber.
        subscriber: String,
        /// The batch's sequence.
        seq: SeqNo,
        /// The batch's epoch.
        epoch: Epoch,
        /// The operation the batch carries, if it is a client's.
        op: Option<OpId>,
    },
    /// Subscriber `subscriber` was told that history after `after` was truncated, so
    /// whatever it received past `after` is void and the stream resumes at `after + 1`.
    TruncationReported {
        /// The subscriber.
        subscriber: String,
        /// The last sequence that stands.
        after: SeqNo,
    },
}

/// One entry of a node's final log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Its sequence.
    pub seq: SeqNo,
    /// The epoch that wrote it.
    pub epoch: Epoch,
    /// The client operation it carries, or `None` for a batch no client wrote
    /// (set-up writes, for example).
    pub op: Option<OpId>,
    /// A digest of its bytes: equal entries on two nodes have equal digests.
    pub digest: u64,
}

/// A node as it stands after the faults healed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FinalNode {
    /// The node's name.
    pub name: String,
    /// Its epoch.
    pub epoch: Epoch,
    /// It believes it is the primary.
    pub primary: bool,
    /// Its log, in sequence order.
    pub log: Vec<LogEntry>,
}

/// A history under construction, shared by the test's client and observer threads.
///
/// Events are appended under one lock at the moment they happen, so their order is
/// the real-time order the checker relies on (an `Ok` after an `EpochSeen` happened
/// after it).
#[derive(Debug, Default)]
pub struct History {
    events: Mutex<Vec<Event>>,
    next_op: Mutex<u64>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// A fresh operation id.
    pub fn next_op(&self) -> OpId {
        let mut n = self.next_op.lock();
        *n += 1;
        OpId(*n)
    }

    /// Appends `event`.
    pub fn record(&self, event: Event) {
        self.events.lock().push(event);
    }

    /// The events so far, in order.
    pub fn events(&self) -> Vec<Event> {
        self.events.lock().clone()
    }
}
