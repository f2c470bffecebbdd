//! Who the nodes are and what the policy hears from them.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::types::{Epoch, SeqNo};

/// The name of one data node of a cluster (`"n1"`, `"replica-east"`): what the
/// authority record, the in-sync set and the replication layer know it by.
///
/// A name, not an address: a node keeps its id when it moves.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct NodeId(pub String);

impl NodeId {
    /// A node id from its name.
    pub fn new(name: impl Into<String>) -> Self {
        Self(name.into())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for NodeId {
    fn from(name: &str) -> Self {
        Self::new(name)
    }
}

/// What one node last said about itself (its heartbeat), and how long ago.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeReport {
    /// The newest epoch the node's log holds.
    pub epoch: Epoch,
    /// The last sequence the node holds (written, maybe not yet durable).
    pub last_seq: SeqNo,
    /// The last sequence the node holds durably (`≤ last_seq`).
    pub durable_seq: SeqNo,
    /// Time since this report arrived: a node whose report is older than the lease
    /// settings' `grace` (or that sent none) is unreachable.
    pub silent_for: Duration,
}

impl NodeReport {
    /// The position promotion ranks nodes by: epoch first, then last sequence.
    pub fn position(&self) -> (Epoch, SeqNo) {
        (self.epoch, self.last_seq)
    }
}

/// Everything a policy observes at one moment: the latest report of every node it
/// heard from. A node without an entry was never heard from (unreachable).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterView {
    /// Latest report per node.
    pub reports: BTreeMap<NodeId, NodeReport>,
}

impl ClusterView {
    /// An empty view (nobody heard from).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) `node`'s report.
    #[must_use]
    pub fn with(mut self, node: impl Into<NodeId>, report: NodeReport) -> Self {
        self.reports.insert(node.into(), report);
        self
    }

    /// `node`'s report, if it was heard from within `grace`.
    pub fn reachable(&self, node: &NodeId, grace: Duration) -> Option<&NodeReport> {
        self.reports.get(node).filter(|r| r.silent_for < grace)
    }
}
