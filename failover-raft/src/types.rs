//! The replicated data: the register's value, the commands that change it, and the raft
//! type configuration that ties them to openraft.

use std::fmt;
use std::io::Cursor;

use serde::{Deserialize, Serialize};

/// A raft node's identity. Node ids are chosen by the operator and never reused.
pub type NodeId = u64;

/// Largest value the register accepts, in bytes. The register holds a small authority
/// record; anything larger is refused so a log entry always fits a network frame.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;

/// The register's contents: opaque bytes and the version that wrote them.
///
/// A fresh register is at version 0 with an empty value; every applied compare-and-set
/// increases the version by exactly one.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Versioned {
    /// Incremented by every applied compare-and-set; never decreases.
    pub version: u64,
    /// The bytes the last applied compare-and-set wrote (opaque to this crate).
    pub value: Vec<u8>,
}

/// What a voter is for. Both kinds vote alike; the role is recorded in the replicated
/// membership so that whoever decides promotions can tell a witness from a data node.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// A node that runs a Strata store and may become primary.
    #[default]
    Data,
    /// A tie-breaking voter that runs no store and is never a primary candidate.
    Witness,
}

/// A voter as recorded in the raft membership: where to reach it and what it is for.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    /// The `host:port` its raft listener accepts connections on.
    pub addr: String,
    /// Data node or witness.
    pub role: Role,
}

impl Member {
    /// A data node reachable at `addr`.
    pub fn data(addr: impl fmt::Display) -> Self {
        Self { addr: addr.to_string(), role: Role::Data }
    }

    /// A witness reachable at `addr`.
    pub fn witness(addr: impl fmt::Display) -> Self {
        Self { addr: addr.to_string(), role: Role::Witness }
    }
}

/// A change proposed to the register (the raft log's application payload).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// Write `value` as version `expected_version + 1` if the register is at
    /// `expected_version`; otherwise change nothing.
    CompareAndSet {
        /// The version the proposer read.
        expected_version: u64,
        /// The new value.
        value: Vec<u8>,
    },
}

/// The state machine's answer to one applied log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Applied {
    /// True when the entry was a compare-and-set whose expected version matched.
    pub changed: bool,
    /// The register after the entry was applied.
    pub current: Versioned,
}

openraft::declare_raft_types!(
    /// The openraft type configuration of the register.
    pub TypeConfig:
        D = Command,
        R = Applied,
        NodeId = NodeId,
        Node = Member,
        SnapshotData = Cursor<Vec<u8>>,
);

/// The openraft instance type of the register.
pub(crate) type Raft = openraft::Raft<TypeConfig>;
/// A raft log entry of the register.
pub(crate) type Entry = openraft::Entry<TypeConfig>;
/// A raft log id.
pub(crate) type LogId = openraft::LogId<NodeId>;
/// openraft's storage error for this configuration.
pub(crate) type StorageError = openraft::StorageError<NodeId>;
