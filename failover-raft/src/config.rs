//! How a node is started.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use strata_core::fs::{FileSystem, OsFileSystem};

use crate::error::{Error, Result};
use crate::types::{MAX_VALUE_BYTES, NodeId};

/// Smallest accepted [`RegisterConfig::with_max_frame_bytes`]: two entries of the largest
/// value must fit a frame.
pub const MIN_FRAME_BYTES: u32 = 1 << 20;

/// The settings of one node of the register.
///
/// Peers are not part of it: the voters and their addresses are given once to
/// [`RaftRegister::initialize`](crate::RaftRegister::initialize) and are from then on held
/// in the replicated raft membership, so a restarted node finds them in its own log and
/// there is no second list that could disagree.
#[derive(Clone)]
pub struct RegisterConfig {
    pub(crate) node_id: NodeId,
    pub(crate) listen_addr: SocketAddr,
    pub(crate) data_dir: PathBuf,
    pub(crate) fs: Arc<dyn FileSystem>,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) election_timeout_min: Duration,
    pub(crate) election_timeout_max: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) max_frame_bytes: u32,
    pub(crate) snapshot_every_entries: u64,
    pub(crate) routes: BTreeMap<NodeId, String>,
}

impl fmt::Debug for RegisterConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterConfig")
            .field("node_id", &self.node_id)
            .field("listen_addr", &self.listen_addr)
            .field("data_dir", &self.data_dir)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("election_timeout_min", &self.election_timeout_min)
            .field("election_timeout_max", &self.election_timeout_max)
            .field("request_timeout", &self.request_timeout)
            .field("max_frame_bytes", &self.max_frame_bytes)
            .field("snapshot_every_entries", &self.snapshot_every_entries)
            .field("routes", &self.routes)
            .finish_non_exhaustive()
    }
}

impl RegisterConfig {
    /// Node `node_id`, listening on `listen_addr` (port 0: the OS picks one, see
    /// [`RaftRegister::local_addr`](crate::RaftRegister::local_addr)), keeping its raft state
    /// in `data_dir` — a directory of its own, not the data WAL's.
    pub fn new(node_id: NodeId, listen_addr: SocketAddr, data_dir: impl AsRef<Path>) -> Self {
        Self {
            node_id,
            listen_addr,
            data_dir: data_dir.as_ref().to_path_buf(),
            fs: OsFileSystem::shared(),
            heartbeat_interval: Duration::from_millis(100),
            election_timeout_min: Duration::from_millis(400),
            election_timeout_max: Duration::from_millis(800),
            request_timeout: Duration::from_secs(5),
            max_frame_bytes: 16 << 20,
            snapshot_every_entries: 1000,
            routes: BTreeMap::new(),
        }
    }

    /// The file system the raft state is kept through (default: the OS).
    #[must_use]
    pub fn with_fs(mut self, fs: Arc<dyn FileSystem>) -> Self {
        self.fs = fs;
        self
    }

    /// How often the leader sends heartbeats (default 100 ms).
    #[must_use]
    pub fn with_heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = interval;
        self
    }

    /// A follower that hears no leader for a random time in `[min, max)` starts an
    /// election (default 400–800 ms). `min` must exceed the heartbeat interval.
    #[must_use]
    pub fn with_election_timeout(mut self, min: Duration, max: Duration) -> Self {
        self.election_timeout_min = min;
        self.election_timeout_max = max;
        self
    }

    /// How long a read or compare-and-set may take, forwarding included (default 5 s).
    #[must_use]
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Largest network frame sent or accepted (default 16 MiB, at least
    /// [`MIN_FRAME_BYTES`]).
    #[must_use]
    pub fn with_max_frame_bytes(mut self, max: u32) -> Self {
        self.max_frame_bytes = max;
        self
    }

    /// A snapshot is taken (and older entries purged) every this many entries
    /// (default 1000).
    #[must_use]
    pub fn with_snapshot_every_entries(mut self, entries: u64) -> Self {
        self.snapshot_every_entries = entries;
        self
    }

    /// This node reaches node `peer` at `addr` instead of the address the raft
    /// membership records for it (default: none, every peer at its membership address).
    ///
    /// The membership holds one address per node, the same for every member; a route is
    /// this node's own way there (through a NAT, a tunnel or a proxy that sees its peers
    /// at other addresses). It is used for raft messages and for requests forwarded to
    /// the leader, and is not replicated.
    #[must_use]
    pub fn with_route(mut self, peer: NodeId, addr: impl Into<String>) -> Self {
        self.routes.insert(peer, addr.into());
        self
    }

    /// The node's id.
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    /// The raft directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// openraft's configuration for these settings.
    pub(crate) fn raft_config(&self) -> Result<openraft::Config> {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        if self.max_frame_bytes < MIN_FRAME_BYTES {
            return Err(Error::InvalidArgument(format!(
                "max_frame_bytes {} is below the minimum of {MIN_FRAME_BYTES}",
                self.max_frame_bytes
            )));
        }
        // JSON spells a byte as up to 4 characters; leave room for the rest of an entry.
        let entry_bound = 4 * MAX_VALUE_BYTES as u64 + 4096;
        let max_payload_entries = (u64::from(self.max_frame_bytes) / 2 / entry_bound).clamp(1, 64);
        if self.snapshot_every_entries == 0 {
            return Err(Error::InvalidArgument("snapshot_every_entries must be at least 1".into()));
        }
        let config = openraft::Config {
            cluster_name: "strata-failover".into(),
            heartbeat_interval: ms(self.heartbeat_interval),
            election_timeout_min: ms(self.election_timeout_min),
            election_timeout_max: ms(self.election_timeout_max),
            install_snapshot_timeout: ms(self.request_timeout),
            // An AppendEntries frame stays within half the frame limit.
            max_payload_entries,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(self.snapshot_every_entries),
            // A chunk is JSON too: up to 4 characters per byte.
            snapshot_max_chunk_size: u64::from(self.max_frame_bytes / 8),
            max_in_snapshot_log_to_keep: self.snapshot_every_entries.min(100),
            ..Default::default()
        };
        config.validate().map_err(|e| Error::InvalidArgument(format!("raft timing: {e}")))
    }
}
