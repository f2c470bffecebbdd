//! What `strata status` shows: a node's role, epoch, positions and replicas.

use serde::{Deserialize, Serialize};

/// One replica as its primary sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    /// The replica's name.
    pub name: String,
    /// Its address as the primary sees it.
    pub addr: String,
    /// Whether it is connected now.
    pub connected: bool,
    /// In the in-sync set.
    pub in_sync: bool,
    /// Last sequence it reported durable.
    pub acked: u64,
    /// The primary's last sequence minus `acked`.
    pub lag_seqs: u64,
}

/// A node's state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Status {
    /// The node's name.
    pub node: String,
    /// `"primary"` or `"replica"`.
    pub role: String,
    /// The cluster id (0 before a replica first met its primary).
    pub cluster: u64,
    /// The epoch the node writes in (a primary) or the newest it holds (a replica).
    pub epoch: u64,
    /// Last visible sequence.
    pub last_seq: u64,
    /// Last durable sequence.
    pub durable_seq: u64,
    /// A replica's primary.
    pub primary: Option<String>,
    /// `"sync"` or `"async"` (a primary).
    pub mode: String,
    /// A primary's `min_in_sync`.
    pub min_in_sync: usize,
    /// A primary's in-sync set (with a failover authority, on every node: the
    /// authority record's in-sync set as this node last read it).
    pub in_sync: Vec<String>,
    /// A primary's replicas.
    pub replicas: Vec<ReplicaStatus>,
    /// A replica's lag behind the primary's last sequence, in sequences.
    pub lag_seqs: u64,
    /// A replica's lag in time: how long ago it last held everything the primary had.
    pub lag_millis: u64,
    /// Replicas a primary cut off for lagging past its WAL retention.
    pub cut_off: u64,
    /// Checkpoints a primary sent to bootstrap replicas.
    pub bootstraps: u64,
    /// Of those, transfers that resumed where a broken connection left them.
    pub bootstraps_resumed: u64,
    /// The last error the node's replication met, if any.
    pub last_error: Option<String>,
    /// With a failover authority: the policy's name (`None` without one).
    pub policy: Option<String>,
    /// The authority record as this node last read it: its version, ...
    pub authority_version: u64,
    /// ... its epoch (the primary's), ...
    pub authority_epoch: u64,
    /// ... and the primary it names (a node id).
    pub authority_primary: Option<String>,
    /// A primary's lease: milliseconds until it runs out (0: expired or none held);
    /// `None` on a replica or without an authority.
    pub lease_remaining_millis: Option<u64>,
    /// The last error of the failover thread (reading the record, renewing the lease,
    /// committing a change), if any.
    pub failover_error: Option<String>,
}
