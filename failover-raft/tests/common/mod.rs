//! Test kit: nodes on real loopback TCP with OS-assigned ports and real directories, each
//! node on a tokio runtime of its own so that killing it (dropping the runtime) stops all
//! its tasks at once, as a crash would.

#![allow(dead_code, reason = "each test file uses a part of the kit")]

pub mod group;

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use strata_failover_raft::{
    Error, Member, NodeId, NodeState, RaftRegister, RegisterConfig, Result, Role,
};
use tokio::runtime::Runtime;

/// How long a test waits for the cluster to do something before failing.
///
/// Generous on purpose: openraft 0.9 draws each node's election timeout once, when the
/// node starts (`EngineConfig::new`), so two survivors whose timeouts lie a few
/// milliseconds apart can split their votes round after round until scheduling jitter
/// separates them. CI saw `two_data_nodes_and_a_witness_survive_losing_any_one` miss a
/// 20 s deadline that way once (2026-12-07), and a local run take 18.5 s; most runs
/// elect within a second. The tests check that a leader is elected, not how fast.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Short raft timings so elections take a few hundred milliseconds.
pub fn config(id: NodeId, addr: SocketAddr, dir: &Path) -> RegisterConfig {
    RegisterConfig::new(id, addr, dir)
        .with_heartbeat_interval(Duration::from_millis(50))
        .with_election_timeout(Duration::from_millis(250), Duration::from_millis(500))
        .with_request_timeout(Duration::from_secs(2))
}

/// One node and the runtime its tasks run on.
pub struct TestNode {
    pub id: NodeId,
    pub dir: PathBuf,
    pub addr: SocketAddr,
    pub snapshot_every: u64,
    rt: Option<Runtime>,
    reg: Option<RaftRegister>,
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime must build")
}

impl TestNode {
    /// Starts node `id` on `addr` (port 0: any) with its raft state in `dir`.
    pub fn start(id: NodeId, addr: SocketAddr, dir: PathBuf, snapshot_every: u64) -> Result<Self> {
        let rt = runtime();
        let cfg = config(id, addr, &dir).with_snapshot_every_entries(snapshot_every);
        let reg = rt.block_on(RaftRegister::start(cfg))?;
        let addr = reg.local_addr();
        Ok(Self { id, dir, addr, snapshot_every, rt: Some(rt), reg: Some(reg) })
    }

    pub fn is_up(&self) -> bool {
        self.reg.is_some()
    }

    pub fn reg(&self) -> &RaftRegister {
        self.reg.as_ref().expect("the node must be running")
    }

    /// Runs `fut` on this node's runtime.
    pub fn run<T>(&self, fut: impl Future<Output = T>) -> T {
        self.rt.as_ref().expect("the node must be running").block_on(fut)
    }

    /// Crash-stops the node: its runtime is dropped with every task on it.
    pub fn kill(&mut self) {
        drop(self.reg.take());
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }

    /// Stops the node cleanly.
    pub fn stop(&mut self) {
        if let Some(reg) = self.reg.take() {
            self.run(reg.shutdown()).expect("a clean shutdown must succeed");
        }
        if let Some(rt) = self.rt.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }

    /// Starts the node again from its directory, on its old address.
    pub fn restart(&mut self) -> Result<()> {
        assert!(!self.is_up(), "stop or kill the node first");
        let again = Self::start(self.id, self.addr, self.dir.clone(), self.snapshot_every)?;
        *self = again;
        Ok(())
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A group of nodes in one temporary directory.
pub struct Cluster {
    pub nodes: Vec<TestNode>,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    /// Starts one node per role (ids 1..), initializes the group on node 1 and waits until
    /// a leader is known.
    pub fn start(roles: &[Role]) -> Self {
        Self::start_with(roles, 1000)
    }

    /// As [`Cluster::start`], snapshotting every `snapshot_every` entries.
    pub fn start_with(roles: &[Role], snapshot_every: u64) -> Self {
        let tmp = tempfile::tempdir().expect("a temporary directory must be created");
        let any: SocketAddr = "127.0.0.1:0".parse().expect("valid address");
        let nodes: Vec<TestNode> = (1..=roles.len() as NodeId)
            .map(|id| {
                TestNode::start(id, any, tmp.path().join(format!("node-{id}")), snapshot_every)
                    .expect("a fresh node must start")
            })
            .collect();
        let members: BTreeMap<NodeId, Member> = nodes
            .iter()
            .zip(roles)
            .map(|(n, role)| (n.id, Member { addr: n.addr.to_string(), role: *role }))
            .collect();
        nodes[0].run(nodes[0].reg().initialize(members)).expect("initialize must succeed");
        let c = Self { nodes, _tmp: tmp };
        c.leader();
        c
    }

    pub fn node(&self, id: NodeId) -> &TestNode {
        self.nodes.iter().find(|n| n.id == id).expect("no such node")
    }

    pub fn node_mut(&mut self, id: NodeId) -> &mut TestNode {
        self.nodes.iter_mut().find(|n| n.id == id).expect("no such node")
    }

    /// Waits until a running node says it is the leader and returns its id.
    pub fn leader(&self) -> NodeId {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(n) = self
                .nodes
                .iter()
                .filter(|n| n.is_up())
                .find(|n| n.reg().status().state == NodeState::Leader)
            {
                return n.id;
            }
            assert!(Instant::now() < deadline, "no leader was elected within {PATIENCE:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Some running node other than `not`.
    pub fn other_than(&self, not: NodeId) -> NodeId {
        self.nodes.iter().find(|n| n.is_up() && n.id != not).expect("another running node").id
    }
}

/// True for errors that a retry after an election can clear.
pub fn transient(e: &Error) -> bool {
    matches!(
        e,
        Error::NotLeader { .. }
            | Error::NoQuorum { .. }
            | Error::Timeout { .. }
            | Error::Network { .. }
            | Error::Protocol { .. }
    )
}

/// Runs `op` until it returns something other than a transient error.
pub fn retry<T>(mut op: impl FnMut() -> Result<T>) -> Result<T> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match op() {
            Err(e) if transient(&e) && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50))
            }
            other => return other,
        }
    }
}

/// Waits until `node`'s state machine has applied `version`.
pub fn wait_applied(node: &TestNode, version: u64) {
    let deadline = Instant::now() + PATIENCE;
    while node.reg().local().value.version < version {
        assert!(Instant::now() < deadline, "node {} did not reach version {version}", node.id);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A compare-and-set through `node`, retried across elections. A retry that finds its own
/// earlier attempt applied (the version moved on to exactly the value it wrote) counts as
/// success, as a real client would count it after re-reading.
pub fn cas(
    node: &TestNode,
    expected: u64,
    value: &[u8],
) -> Result<strata_failover_raft::Versioned> {
    let mut attempted = false;
    retry(|| {
        let r = node.run(node.reg().compare_and_set(expected, value.to_vec()));
        match r {
            Err(Error::VersionMismatch { current, .. }) if attempted && current == expected + 1 => {
                let now = node.run(node.reg().read())?;
                if now.version == expected + 1 && now.value == value {
                    return Ok(now);
                }
                Err(Error::VersionMismatch { expected, current })
            }
            other => {
                attempted = true;
                other
            }
        }
    })
}

/// A linearizable read through `node`, retried across elections.
pub fn read(node: &TestNode) -> Result<strata_failover_raft::Versioned> {
    retry(|| node.run(node.reg().read()))
}
