//! # strata-replication
//!
//! Ships a primary's write-ahead log to replicas over TCP.
//!
//! - A [`Node`] is a primary or a replica. A replica connects to its primary and says
//!   which epoch and sequence it holds; the primary checks that position against its
//!   epoch history and answers with a plan: follow from the next sequence, truncate a
//!   diverged tail first, or bootstrap from a checkpoint when its log no longer holds
//!   the position. Then batches stream with their sequences and epochs; the replica
//!   applies them through [`strata_core::Db::apply_replicated`] (which refuses gaps,
//!   divergence and stale epochs) and acknowledges what it has made durable.
//! - [`Mode::Async`]: a write is acknowledged once durable on the primary.
//!   [`Mode::Sync`]: once durable on the primary *and* on every member of the in-sync
//!   set (at least `min_in_sync` of them); the primary's fdatasync and the replicas'
//!   round trip overlap. A member that goes away stays in the set, so the primary stops
//!   acknowledging until an operator removes it ([`Node::remove_replica`]) — never
//!   silent loss. Replicas join the set on their own once caught up.
//! - The in-sync set and the cluster id are small durable files in the store
//!   directory ([`files`]); a replica whose store carries another cluster's id is
//!   refused.
//! - Every node answers operator requests ([`AdminRequest`]) on its listener: status,
//!   remove a replica, promote.
//! - With a [`FailoverConfig`] (an authority, [`strata_core::FailoverPolicy`]) failover
//!   is automatic and fenced: the authority record says who is primary, the primary
//!   acknowledges only under its lease, the in-sync set lives in the record, and
//!   replicas promote an in-sync member when the primary goes silent ([`failover`]).
//!
//! Framing and messages: [`wire`].
#![deny(unsafe_op_in_unsafe_fn)]
#![forbid(unsafe_code)]

mod bootstrap;
mod error;
pub mod failover;
pub mod files;
mod node;
mod primary;
mod replica;
mod status;
pub mod wire;

pub use error::{Error, Result};
pub use failover::FailoverConfig;
pub use node::{Mode, Node, NodeConfig, OpenStore, RoleConfig, admin_request};
pub use status::{ReplicaStatus, Status};
pub use wire::AdminRequest;
