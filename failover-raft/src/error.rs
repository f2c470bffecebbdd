//! The one error type of the crate.

use std::time::Duration;

use crate::types::NodeId;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the failover authority.
///
/// Callers match on the variant, never on the message text. Variants carry what a person
/// (or a failover policy) needs to act: the current version of a refused compare-and-set,
/// the leader to retry at, the file and offset of damaged data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A compare-and-set was refused because the register holds another version. Nothing
    /// was written; re-read, decide again, and retry with `current` as the expected version.
    #[error(
        "compare-and-set expected version {expected} but the register is at version {current}; nothing was written"
    )]
    VersionMismatch {
        /// The version the caller expected.
        expected: u64,
        /// The version the register holds.
        current: u64,
    },
    /// This node is not the leader and the request could not be forwarded to one. Retry at
    /// the leader, if one is named, or later (an election may be under way).
    #[error("node {node} is not the raft leader; the leader is {}", describe_leader(*.leader, .leader_addr.as_deref()))]
    NotLeader {
        /// The node that refused.
        node: NodeId,
        /// The leader it knows of, if any.
        leader: Option<NodeId>,
        /// The leader's address, if known.
        leader_addr: Option<String>,
    },
    /// The leader could not reach a quorum of voters to confirm it is still the leader, so
    /// a linearizable read could not be served.
    #[error("no quorum: {reason}")]
    NoQuorum {
        /// What openraft reported (which voters answered).
        reason: String,
    },
    /// An operation did not complete in time. A timed-out compare-and-set may still be
    /// applied later: read the register to find out.
    #[error("{op} did not complete within {after:?}")]
    Timeout {
        /// The operation (`"read"`, `"compare_and_set"`, ...).
        op: &'static str,
        /// How long it waited.
        after: Duration,
    },
    /// The raft log, vote or snapshot files could not be read or written, or are damaged
    /// (a [`strata_core::Error::Corruption`] names the file and byte offset).
    #[error("raft storage: {0}")]
    Storage(#[from] strata_core::Error),
    /// Binding or using a network socket failed.
    #[error("{op} on {addr} failed: {source}")]
    Network {
        /// The operation (`"bind"`, `"connect"`, `"forward"`, ...).
        op: &'static str,
        /// The local or remote address.
        addr: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A peer answered a forwarded request with something this node cannot use.
    #[error("peer {addr} answered with an error: {reason}")]
    Protocol {
        /// The peer.
        addr: String,
        /// What was wrong with the answer.
        reason: String,
    },
    /// The configuration or an argument was rejected before anything was done.
    #[error("invalid configuration or argument: {0}")]
    InvalidArgument(String),
    /// `initialize` was refused: the node already belongs to a cluster, or the member list
    /// does not include it.
    #[error("cannot initialize the raft group: {reason}")]
    Initialize {
        /// What openraft reported.
        reason: String,
    },
    /// The raft node stopped (shut down, or a storage failure made it stop to protect the
    /// log); restart it from its directory.
    #[error("the raft node has stopped: {reason}")]
    Stopped {
        /// Why it stopped.
        reason: String,
    },
}

fn describe_leader(leader: Option<NodeId>, addr: Option<&str>) -> String {
    match (leader, addr) {
        (Some(id), Some(addr)) => format!("node {id} at {addr}"),
        (Some(id), None) => format!("node {id} (address unknown)"),
        _ => "unknown (an election may be under way)".to_string(),
    }
}
