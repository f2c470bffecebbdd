//! Strata's failover authority: a small replicated compare-and-set register on
//! [openraft](https://docs.rs/openraft/0.9.25).
//!
//! **What it is.** Every voter runs a [`RaftRegister`]. Together they hold one
//! [`Versioned`] value — opaque bytes (for the policy: the encoded authority record {cluster id,
//! epoch, primary, in-sync set, lease settings}) and a version — that changes only by
//! [`compare_and_set`](RaftRegister::compare_and_set) through the raft leader, and is read
//! linearizably by [`read`](RaftRegister::read). A group of 2f+1 voters survives f
//! failures; the voters are the data nodes, or two data nodes plus a witness (a
//! [`Role::Witness`] voter runs no store; the role is recorded in the membership).
//!
//! Each node keeps its raft log, vote, committed/purged ids and snapshot in a directory
//! of its own (separate from the data WAL) through Strata's `FileSystem` seam: fsynced
//! before openraft is told, checksummed, a torn log tail cut off at open and damage
//! anywhere else refused with the file and offset. Nodes talk over plain TCP with
//! length-prefixed, checksummed frames.
//!
//! **The `raft` failover policy.** [`RaftPolicy`] is Strata's default automatic
//! [`FailoverPolicy`](strata_core::FailoverPolicy): the register holds the encoded
//! [`AuthorityRecord`](strata_core::AuthorityRecord), every change is a read, the rules of
//! [`AuthorityRecord::apply`](strata_core::AuthorityRecord::apply) and a compare-and-set
//! of the register, and leases are granted from linearizable reads (the type's
//! documentation gives the safety argument and its clock assumption). [`RaftFactory`]
//! makes it from one voter's [`RaftSettings`] (or the stack configuration's
//! [`RaftOptions`]).
//!
//! **What it is not.** It is not on the write path and holds no user data. The
//! replication node does not use it yet: nothing here sends heartbeats, builds the
//! [`ClusterView`](strata_core::ClusterView) or runs the detect → decide → commit loop.
//! It does not change membership after the group is formed, and its network has no
//! authentication or encryption (run it on a trusted network).
//!
//! ```no_run
//! # async fn demo() -> strata_failover_raft::Result<()> {
//! use std::collections::BTreeMap;
//! use strata_failover_raft::{Member, RaftRegister, RegisterConfig};
//!
//! let node = RaftRegister::start(RegisterConfig::new(1, "127.0.0.1:7301".parse().unwrap(), "/var/lib/strata/raft")).await?;
//! // Once, on one node of a new group (the others run `start` with their own ids):
//! node.initialize(BTreeMap::from([
//!     (1, Member::data("10.0.0.1:7301")),
//!     (2, Member::data("10.0.0.2:7301")),
//!     (3, Member::witness("10.0.0.3:7301")),
//! ])).await?;
//! let now = node.read().await?;
//! let next = node.compare_and_set(now.version, b"epoch 7, primary 2".to_vec()).await?;
//! assert_eq!(next.version, now.version + 1);
//! node.shutdown().await
//! # }
//! ```

mod config;
mod core;
mod error;
mod network;
mod nudge;
mod policy;
mod register;
mod settings;
mod storage;
mod types;

pub use config::{MIN_FRAME_BYTES, RegisterConfig};
pub use error::{Error, Result};
pub use policy::{RaftFactory, RaftPolicy};
pub use register::{LocalView, NodeState, RaftRegister, Status};
pub use settings::{RaftOptions, RaftSettings, VoterOptions, VoterRole};
pub use types::{MAX_VALUE_BYTES, Member, NodeId, Role, Versioned};
