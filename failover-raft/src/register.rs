//! [`RaftRegister`]: one node of the replicated compare-and-set register.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::ServerState;
use openraft::error::{InitializeError, RaftError};
use openraft::metrics::WaitError;
use strata_core::fs::FileLock;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::config::RegisterConfig;
use crate::core::Core;
use crate::error::{Error, Result};
use crate::network::client::{CallError, Network, Peer};
use crate::network::messages::{Request, Response};
use crate::network::server::{ServerLimits, serve};
use crate::storage;
use crate::types::{Member, NodeId, Raft, Versioned};

/// What a node is doing in the raft group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NodeState {
    /// Not a voter (not initialized, or not in the membership).
    Learner,
    /// Following a leader.
    Follower,
    /// Running for leader.
    Candidate,
    /// The leader: serves reads and compare-and-sets.
    Leader,
    /// Shutting down.
    Shutdown,
}

/// A snapshot of a node's raft status, from its own (possibly stale) point of view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    /// This node.
    pub node_id: NodeId,
    /// Its state.
    pub state: NodeState,
    /// The raft term it is in.
    pub term: u64,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// Index of its last log entry.
    pub last_log_index: Option<u64>,
    /// Index of the last entry its state machine applied.
    pub last_applied_index: Option<u64>,
    /// The voters of the last membership it knows, with their addresses and roles.
    pub voters: BTreeMap<NodeId, Member>,
}

/// This node's own view of the register, without asking anyone: possibly stale, never
/// ahead of what was committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalView {
    /// The register as this node last applied it.
    pub value: Versioned,
    /// When this node applied that change, on its own monotonic clock (after a restart:
    /// when replaying its log or installing a snapshot reached it). `None` while it has
    /// applied nothing since it started.
    pub changed_at: Option<Instant>,
    /// Index of the last raft entry applied.
    pub last_applied_index: Option<u64>,
}

/// One node of the replicated compare-and-set register (see the [crate docs](crate)).
///
/// Dropping it without [`shutdown`](Self::shutdown) stops its listener and lets the raft
/// task end on its own; `shutdown` waits for it.
pub struct RaftRegister {
    core: Core,
    local_addr: SocketAddr,
    server: JoinHandle<()>,
    nudger: JoinHandle<()>,
    lock: Option<Box<dyn FileLock>>,
    routes: Arc<BTreeMap<NodeId, String>>,
}

impl std::fmt::Debug for RaftRegister {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftRegister")
            .field("node_id", &self.core.node_id)
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

fn node_state(s: ServerState) -> NodeState {
    match s {
        ServerState::Learner => NodeState::Learner,
        ServerState::Follower => NodeState::Follower,
        ServerState::Candidate => NodeState::Candidate,
        ServerState::Leader => NodeState::Leader,
        ServerState::Shutdown => NodeState::Shutdown,
    }
}

impl RaftRegister {
    /// Opens the node's raft directory (creating it if new), binds its listener and starts
    /// its raft task. Must be called inside a tokio runtime; the node's tasks run there.
    ///
    /// A damaged raft directory is an [`Error::Storage`] naming the file and offset, and
    /// nothing is started. A new node does nothing until [`initialize`](Self::initialize)
    /// is called on one member (or it is a member of an initialized group).
    pub async fn start(config: RegisterConfig) -> Result<Self> {
        let raft_config = Arc::new(config.raft_config()?);
        let fs = config.fs.clone();
        let dir = config.data_dir.clone();
        let opened =
            tokio::task::spawn_blocking(move || storage::open(fs, &dir)).await.map_err(|e| {
                Error::Stopped { reason: format!("opening the raft directory panicked: {e}") }
            })??;
        let listener = TcpListener::bind(config.listen_addr).await.map_err(|source| {
            Error::Network { op: "bind", addr: config.listen_addr.to_string(), source }
        })?;
        let local_addr = listener.local_addr().map_err(|source| Error::Network {
            op: "local_addr",
            addr: config.listen_addr.to_string(),
            source,
        })?;
        let routes = Arc::new(config.routes.clone());
        let network = Network {
            max_frame_bytes: config.max_frame_bytes,
            backoff: config.heartbeat_interval,
            routes: Arc::clone(&routes),
        };
        let state = opened.state_machine.shared();
        let raft =
            Raft::new(config.node_id, raft_config, network, opened.log, opened.state_machine)
                .await
                .map_err(|e| Error::Stopped { reason: format!("raft failed to start: {e}") })?;
        // The metrics start out blank and are filled by the raft task; wait until they
        // show the term loaded from disk, so `status()` right after a restart is not
        // mistaken for a node that forgot its vote.
        let fatal = |e: openraft::error::Fatal<NodeId>| Error::Stopped {
            reason: format!("raft failed to start: {e}"),
        };
        let term =
            raft.with_raft_state(|st| st.vote_ref().leader_id().get_term()).await.map_err(fatal)?;
        raft.wait(Some(config.request_timeout))
            .metrics(|m| m.current_term >= term, "metrics report the state loaded from disk")
            .await
            .map_err(|e| Error::Stopped {
                reason: format!("raft did not report its loaded state: {e}"),
            })?;
        let core = Core {
            raft,
            node_id: config.node_id,
            state,
            request_timeout: config.request_timeout,
            max_frame_bytes: config.max_frame_bytes,
        };
        let limits = ServerLimits {
            max_frame_bytes: config.max_frame_bytes,
            // Peers send at least a heartbeat per interval; a connection silent for far
            // longer is dead or not a peer.
            idle_timeout: (config.election_timeout_max * 20).max(Duration::from_secs(10)),
            max_connections: 256,
        };
        let server = tokio::spawn(serve(listener, core.clone(), limits));
        let nudger = tokio::spawn(crate::nudge::nudge_elections(
            core.raft.clone(),
            config.node_id,
            config.heartbeat_interval,
            config.election_timeout_min,
            config.election_timeout_max,
        ));
        tracing::info!(node = config.node_id, addr = %local_addr, dir = %config.data_dir.display(), "raft register started");
        Ok(Self { core, local_addr, server, nudger, lock: Some(opened.lock), routes })
    }

    /// This node's id.
    pub fn node_id(&self) -> NodeId {
        self.core.node_id
    }

    /// The address the node's listener is bound to (the OS-assigned port when the config
    /// asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Forms a new group with `members` as its voters (this node among them). Call it on
    /// one node of a new group; the others learn the membership from it. A node that
    /// already belongs to a group refuses with [`Error::Initialize`].
    pub async fn initialize(&self, members: BTreeMap<NodeId, Member>) -> Result<()> {
        if !members.contains_key(&self.core.node_id) {
            return Err(Error::InvalidArgument(format!(
                "node {} initializes a group it is not a member of",
                self.core.node_id
            )));
        }
        match self.core.raft.initialize(members).await {
            Ok(()) => Ok(()),
            Err(RaftError::APIError(InitializeError::NotAllowed(e))) => {
                Err(Error::Initialize { reason: e.to_string() })
            }
            Err(RaftError::APIError(InitializeError::NotInMembers(e))) => {
                Err(Error::Initialize { reason: e.to_string() })
            }
            Err(RaftError::Fatal(f)) => Err(Error::Stopped { reason: f.to_string() }),
        }
    }

    /// A linearizable read of the register: it reflects every compare-and-set that
    /// completed before it began. Served by the leader (a follower forwards it once);
    /// fails with [`Error::NotLeader`] or [`Error::NoQuorum`] when no leader can confirm
    /// it still leads.
    pub async fn read(&self) -> Result<Versioned> {
        match self.core.read_local().await {
            Err(Error::NotLeader { leader_addr: Some(addr), leader: Some(leader), .. })
                if leader != self.core.node_id =>
            {
                self.forward("read", self.route(leader, &addr), &Request::Read).await
            }
            other => other,
        }
    }

    /// Writes `value` as version `expected_version + 1` if, and only if, the register is
    /// at `expected_version`, and returns the register as written.
    ///
    /// A register at another version refuses with [`Error::VersionMismatch`] carrying the
    /// current version, and nothing is written. Of several compare-and-sets with the same
    /// expected version, at most one succeeds. A follower forwards the request once to the
    /// leader. After an [`Error::Timeout`] the write may still be applied: read to find out.
    pub async fn compare_and_set(
        &self,
        expected_version: u64,
        value: Vec<u8>,
    ) -> Result<Versioned> {
        // A copy is kept in case the request must be forwarded to the leader.
        match self.core.compare_and_set_local(expected_version, value.clone()).await {
            Err(Error::NotLeader { leader_addr: Some(addr), leader: Some(leader), .. })
                if leader != self.core.node_id =>
            {
                let req = Request::CompareAndSet { expected_version, value };
                self.forward("compare_and_set", self.route(leader, &addr), &req).await
            }
            other => other,
        }
    }

    /// Where this node reaches `peer`, whose membership address is `addr`.
    fn route<'a>(&'a self, peer: NodeId, addr: &'a str) -> &'a str {
        self.routes.get(&peer).map_or(addr, String::as_str)
    }

    async fn forward(&self, op: &'static str, addr: &str, req: &Request) -> Result<Versioned> {
        let mut peer = Peer::new(addr.to_string(), self.core.max_frame_bytes);
        match peer.call(req, self.core.request_timeout).await {
            Ok(Response::Client(Ok(v))) => Ok(v),
            Ok(Response::Client(Err(f))) => Err(f.into_error(op, addr)),
            Ok(other) => Err(Error::Protocol {
                addr: addr.to_string(),
                reason: format!("answered a forwarded {op} with a {} response", other.kind()),
            }),
            Err(CallError::Connect(source)) => {
                Err(Error::Network { op: "forward", addr: addr.to_string(), source })
            }
            Err(CallError::Failed(reason)) => {
                Err(Error::Protocol { addr: addr.to_string(), reason })
            }
        }
    }

    /// The leader this node knows of (from its metrics; may be stale — use it to route,
    /// not to decide).
    pub fn leader(&self) -> Option<NodeId> {
        self.core.raft.metrics().borrow().current_leader
    }

    /// Waits until this node knows of a leader, for at most `timeout`.
    pub async fn wait_for_leader(&self, timeout: Duration) -> Result<NodeId> {
        match self
            .core
            .raft
            .wait(Some(timeout))
            .metrics(|m| m.current_leader.is_some(), "a leader is known")
            .await
        {
            Ok(m) => {
                m.current_leader.ok_or(Error::Timeout { op: "wait_for_leader", after: timeout })
            }
            Err(WaitError::Timeout(..)) => {
                Err(Error::Timeout { op: "wait_for_leader", after: timeout })
            }
            Err(WaitError::ShuttingDown) => {
                Err(Error::Stopped { reason: "the raft node is shutting down".into() })
            }
        }
    }

    /// This node's raft status.
    pub fn status(&self) -> Status {
        let m = self.core.raft.metrics().borrow().clone();
        let voters: BTreeMap<NodeId, Member> = {
            let membership = m.membership_config.membership();
            membership
                .voter_ids()
                .filter_map(|id| membership.get_node(&id).map(|n| (id, n.clone())))
                .collect()
        };
        Status {
            node_id: m.id,
            state: node_state(m.state),
            term: m.current_term,
            leader: m.current_leader,
            last_log_index: m.last_log_index,
            last_applied_index: m.last_applied.map(|l| l.index),
            voters,
        }
    }

    /// The register as this node last applied it, without a round trip (not
    /// linearizable: use [`read`](Self::read) to decide anything).
    pub fn local(&self) -> LocalView {
        let st = self.core.state.lock();
        LocalView {
            value: st.current.clone(),
            changed_at: st.changed_at,
            last_applied_index: st.last_applied.map(|l| l.index),
        }
    }

    /// Stops the node: its listener and connections, then its raft task (waiting for it),
    /// then releases the directory lock. Durable state stays on disk for a restart.
    pub async fn shutdown(mut self) -> Result<()> {
        self.server.abort();
        self.nudger.abort();
        let res = self.core.raft.shutdown().await;
        self.lock.take();
        res.map_err(|e| Error::Stopped { reason: format!("raft task ended abnormally: {e}") })
    }
}

impl Drop for RaftRegister {
    fn drop(&mut self) {
        self.server.abort();
        self.nudger.abort();
    }
}
