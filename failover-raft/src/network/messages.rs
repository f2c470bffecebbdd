//! What travels in the frames: raft RPCs between voters, and client requests a follower
//! forwards to the leader.

use std::time::Duration;

use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::types::{NodeId, TypeConfig, Versioned};

/// A request frame's body.
#[derive(Debug, Serialize, Deserialize)]
pub enum Request {
    /// openraft's AppendEntries.
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// openraft's RequestVote.
    Vote(VoteRequest<NodeId>),
    /// One chunk of a snapshot.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A linearizable read, forwarded by a follower; served only if this node leads.
    Read,
    /// A compare-and-set, forwarded by a follower; served only if this node leads.
    CompareAndSet {
        /// The version the caller expects.
        expected_version: u64,
        /// The new value.
        value: Vec<u8>,
    },
}

/// A response frame's body.
#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    /// Answer to [`Request::AppendEntries`].
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to [`Request::Vote`].
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// Answer to [`Request::InstallSnapshot`].
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    /// Answer to a forwarded [`Request::Read`] or [`Request::CompareAndSet`].
    Client(Result<Versioned, ClientFailure>),
}

impl Response {
    /// The variant's name, for error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::AppendEntries(_) => "AppendEntries",
            Self::Vote(_) => "Vote",
            Self::InstallSnapshot(_) => "InstallSnapshot",
            Self::Client(_) => "Client",
        }
    }
}

/// A forwarded request's failure, as it crosses the wire.
#[derive(Debug, Serialize, Deserialize)]
pub enum ClientFailure {
    /// [`Error::VersionMismatch`].
    VersionMismatch {
        /// Expected version.
        expected: u64,
        /// Current version.
        current: u64,
    },
    /// [`Error::NotLeader`].
    NotLeader {
        /// The refusing node.
        node: NodeId,
        /// The leader it knows of.
        leader: Option<NodeId>,
        /// The leader's address.
        leader_addr: Option<String>,
    },
    /// [`Error::NoQuorum`].
    NoQuorum(String),
    /// [`Error::Timeout`].
    Timeout {
        /// How long the leader waited, in milliseconds.
        after_ms: u64,
    },
    /// [`Error::InvalidArgument`].
    InvalidArgument(String),
    /// [`Error::Stopped`].
    Stopped(String),
    /// Anything else, as text.
    Other(String),
}

impl ClientFailure {
    /// The wire form of a local error.
    pub fn from_error(e: Error) -> Self {
        match e {
            Error::VersionMismatch { expected, current } => {
                Self::VersionMismatch { expected, current }
            }
            Error::NotLeader { node, leader, leader_addr } => {
                Self::NotLeader { node, leader, leader_addr }
            }
            Error::NoQuorum { reason } => Self::NoQuorum(reason),
            Error::Timeout { after, .. } => {
                Self::Timeout { after_ms: u64::try_from(after.as_millis()).unwrap_or(u64::MAX) }
            }
            Error::InvalidArgument(s) => Self::InvalidArgument(s),
            Error::Stopped { reason } => Self::Stopped(reason),
            other => Self::Other(other.to_string()),
        }
    }

    /// The local error for a failure a leader reported for `op`.
    pub fn into_error(self, op: &'static str, leader_addr: &str) -> Error {
        match self {
            Self::VersionMismatch { expected, current } => {
                Error::VersionMismatch { expected, current }
            }
            Self::NotLeader { node, leader, leader_addr } => {
                Error::NotLeader { node, leader, leader_addr }
            }
            Self::NoQuorum(reason) => Error::NoQuorum { reason },
            Self::Timeout { after_ms } => {
                Error::Timeout { op, after: Duration::from_millis(after_ms) }
            }
            Self::InvalidArgument(s) => Error::InvalidArgument(s),
            Self::Stopped(reason) => {
                Error::Stopped { reason: format!("leader at {leader_addr}: {reason}") }
            }
            Self::Other(reason) => Error::Protocol { addr: leader_addr.to_string(), reason },
        }
    }
}
