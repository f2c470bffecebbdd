//! Automatic, fenced failover: nodes with real stores on disk, loopback TCP, and one
//! in-process authority shared by every node (the harness's `MemoryAuthority`, with
//! automatic decisions, or the manual policy). Each node reaches the authority through
//! its own [`Reach`], which a test can cut to put that node out of the authority's
//! reach.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strata_core::batch::BatchIter;
use strata_core::fs::{FileSystem, OsFileSystem};
use strata_core::{
    AuthorityRecord, Change, ClusterView, DbOptions, Decision, Durability, Epoch, FailoverPolicy,
    Lease, LeaseSettings, NodeId, SeqNo, WalBatch, WriteBatch,
};
use strata_harness::conformance::failover::memory::MemoryAuthority;
use strata_harness::history::{self, Event, FinalNode, History, LogEntry, OpId};
use strata_harness::sim_fs::SimFileSystem;
use strata_harness::stack::tiny_builder;
use strata_replication::{Error, FailoverConfig, Mode, Node, NodeConfig, OpenStore, RoleConfig};

mod common;
use common::{log_of, start_proxy, wait_for};

const CLUSTER: u64 = 0xC1A5;

/// One node's way to the shared authority; `cut` makes it unreachable from that node.
#[derive(Debug)]
struct Reach {
    inner: Arc<dyn FailoverPolicy>,
    cut: AtomicBool,
}

impl Reach {
    fn check(&self) -> strata_core::Result<()> {
        if self.cut.load(Ordering::Acquire) {
            return Err(strata_core::Error::io(
                "reach",
                "the authority",
                std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "partitioned"),
            ));
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl FailoverPolicy for Reach {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn decide(&self, record: &AuthorityRecord, view: &ClusterView) -> Decision {
        self.inner.decide(record, view)
    }
    async fn record(&self) -> strata_core::Result<AuthorityRecord> {
        self.check()?;
        self.inner.record().await
    }
    async fn compare_and_set(
        &self,
        expected_version: u64,
        change: Change,
    ) -> strata_core::Result<AuthorityRecord> {
        self.check()?;
        self.inner.compare_and_set(expected_version, change).await
    }
    async fn renew_lease(&self, node: &NodeId, epoch: Epoch) -> strata_core::Result<Lease> {
        self.check()?;
        self.inner.renew_lease(node, epoch).await
    }
}

fn settings() -> LeaseSettings {
    LeaseSettings::new(
        Duration::from_millis(40),
        Duration::from_millis(250),
        Duration::from_millis(450),
    )
    .expect("valid settings")
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr")
}

fn opener(dir: &Path) -> OpenStore {
    let dir = dir.to_path_buf();
    Arc::new(move |replica_of: Option<String>| {
        let mut b = tiny_builder(&dir, OsFileSystem::shared(), 64 << 20, 64 * 1024);
        let o: &mut DbOptions = b.options_mut();
        o.replica_of = replica_of;
        b.open()
    })
}

/// A cluster of named nodes sharing one authority.
struct Cluster {
    _root: tempfile::TempDir,
    authority: Arc<dyn FailoverPolicy>,
    names: Vec<String>,
    dirs: Vec<PathBuf>,
    addrs: Vec<SocketAddr>,
    /// What each node uses as the others' addresses (a proxy can stand in).
    peers: Vec<BTreeMap<NodeId, String>>,
    reach: Vec<Arc<Reach>>,
    nodes: Vec<Option<Node>>,
    mode: Mode,
}

impl Cluster {
    fn new(n: usize, mode: Mode, authority: Arc<dyn FailoverPolicy>) -> Cluster {
        let root = tempfile::tempdir().expect("tempdir");
        let names: Vec<String> = (1..=n).map(|i| format!("n{i}")).collect();
        let dirs = names.iter().map(|n| root.path().join(n)).collect();
        let addrs: Vec<SocketAddr> = (0..n).map(|_| free_addr()).collect();
        let all: BTreeMap<NodeId, String> = names
            .iter()
            .zip(&addrs)
            .map(|(n, a)| (NodeId::new(n.clone()), a.to_string()))
            .collect();
        let reach = (0..n)
            .map(|_| Arc::new(Reach { inner: Arc::clone(&authority), cut: AtomicBool::new(false) }))
            .collect();
        Cluster {
            _root: root,
            authority,
            names,
            dirs,
            addrs,
            peers: vec![all; n],
            reach,
            nodes: (0..n).map(|_| None).collect(),
            mode,
        }
    }

    fn start(&mut self, i: usize) {
        let mut c = NodeConfig::new(self.names[i].clone(), self.addrs[i], RoleConfig::Primary);
        c.mode = self.mode;
        c.heartbeat = Duration::from_millis(20);
        c.reconnect = Duration::from_millis(30);
        let policy: Arc<dyn FailoverPolicy> = self.reach[i].clone();
        c.failover = Some(FailoverConfig::new(policy, self.peers[i].clone()));
        // The port may still be held by the previous incarnation's last threads.
        let mut node = None;
        wait_for("the node to start", || {
            match Node::start(c.clone(), &self.dirs[i], opener(&self.dirs[i])) {
                Ok(n) => node = Some(n),
                Err(e) => eprintln!("start {}: {e}", self.names[i]),
            }
            node.is_some()
        });
        self.nodes[i] = node;
    }

    fn stop(&mut self, i: usize) {
        if let Some(n) = self.nodes[i].take() {
            n.stop();
        }
    }

    fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("running")
    }

    fn index(&self, name: &NodeId) -> usize {
        self.names.iter().position(|n| n == name.as_str()).expect("a known node")
    }

    fn record(&self) -> AuthorityRecord {
        block_on(self.authority.record()).expect("record")
    }

    fn in_sync(&self, names: &[&str]) -> bool {
        let want: BTreeSet<NodeId> = names.iter().map(|n| NodeId::new(*n)).collect();
        self.record().in_sync == want
    }
}

fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread().build().expect("runtime").block_on(f)
}

fn memory(primary: &str) -> Arc<dyn FailoverPolicy> {
    let initial = AuthorityRecord::initial(CLUSTER, primary, Epoch(0), SeqNo(1), settings());
    Arc::new(MemoryAuthority::new(initial).expect("authority"))
}

fn batch(op: OpId) -> WriteBatch {
    let mut b = WriteBatch::new();
    b.put(format!("op-{:08}", op.0), format!("value-{}", op.0));
    b
}

/// Writes operation `op` at `node` and records its invoke and outcome.
fn write(h: &History, node: &Node, name: &str) -> (OpId, Result<SeqNo, Error>) {
    let op = h.next_op();
    h.record(Event::Invoke { op, node: name.to_owned() });
    let r = node.write(&batch(op));
    match &r {
        Ok(seq) => {
            let epoch = node.db().map_or(Epoch::ZERO, |db| db.epoch());
            h.record(Event::Ok { op, node: name.to_owned(), epoch, seq: *seq });
        }
        // Refused before anything was written.
        Err(e @ Error::Store(strata_core::Error::NotPrimary { .. })) => {
            h.record(Event::Fail { op, reason: e.to_string() });
        }
        Err(e) => h.record(Event::Unknown { op, reason: e.to_string() }),
    }
    (op, r)
}

fn has_op(node: &Node, op: OpId) -> bool {
    node.db()
        .and_then(|db| db.get(format!("op-{:08}", op.0).as_bytes()).ok().flatten())
        .is_some_and(|v| v.as_ref() == format!("value-{}", op.0).as_bytes())
}

fn final_node(name: &str, node: &Node) -> FinalNode {
    let db = node.db().expect("db");
    let log = log_of(&db)
        .into_iter()
        .map(|b| {
            let op = BatchIter::new(&b.payload).flatten().find_map(|o| {
                std::str::from_utf8(o.key).ok()?.strip_prefix("op-")?.parse().ok().map(OpId)
            });
            LogEntry {
                seq: b.first_seq,
                epoch: b.epoch,
                op,
                digest: u64::from(crc32fast::hash(&b.payload)),
            }
        })
        .collect();
    let status = node.status();
    FinalNode {
        name: name.to_owned(),
        epoch: Epoch(status.epoch),
        primary: status.role == "primary",
        log,
    }
}

fn is_primary(node: &Node) -> bool {
    node.status().role == "primary"
}

#[test]
fn a_stopped_primary_is_replaced_by_an_in_sync_replica_holding_every_acknowledged_write() {
    let mut c = Cluster::new(3, Mode::Sync, memory("n1"));
    for i in 0..3 {
        c.start(i);
    }
    let h = History::new();
    wait_for("n2 and n3 to join the in-sync set", || c.in_sync(&["n2", "n3"]));
    let before = c.record();
    assert_eq!(before.primary.as_str(), "n1");
    let status = c.node(0).status();
    assert_eq!(status.policy.as_deref(), Some("memory"));
    assert_eq!(status.authority_epoch, before.epoch.0);
    assert!(status.lease_remaining_millis.is_some(), "{status:?}");
    h.record(Event::EpochSeen { node: "n1".into(), epoch: before.epoch });
    let mut acked = Vec::new();
    for _ in 0..150 {
        let (op, r) = write(&h, c.node(0), "n1");
        acked.push((op, r.expect("the primary acknowledges")));
    }

    c.stop(0); // the primary is gone
    wait_for("another node to be promoted", || c.record().primary.as_str() != "n1");
    let after = c.record();
    assert_eq!(after.epoch, Epoch(before.epoch.0 + 1), "a promotion bumps the epoch by one");
    assert!(before.in_sync.contains(&after.primary), "only an in-sync member is promoted");
    h.record(Event::Promoted {
        node: after.primary.to_string(),
        epoch: after.epoch,
        in_sync: before.in_sync.iter().map(ToString::to_string).collect(),
        forced: false,
    });
    let np = c.index(&after.primary);
    wait_for("the new primary to take over", || is_primary(c.node(np)));
    assert_eq!(
        c.node(np).db().expect("db").epoch(),
        after.epoch,
        "it writes in the record's epoch"
    );
    for (op, _) in &acked {
        assert!(has_op(c.node(np), *op), "acknowledged {op} is on the new primary");
    }
    for _ in 0..50 {
        let (_, r) = write(&h, c.node(np), &c.names[np].clone());
        r.expect("the new primary acknowledges");
    }

    // The old primary comes back: it follows the new one and acknowledges nothing.
    c.start(0);
    let new_addr = c.addrs[np].to_string();
    wait_for("the old primary to follow the new one", || {
        c.node(0).status().primary.as_deref() == Some(new_addr.as_str())
    });
    let (_, r) = write(&h, c.node(0), "n1");
    match r {
        Err(Error::Store(strata_core::Error::NotPrimary { primary })) => {
            assert_eq!(primary, new_addr)
        }
        other => panic!("the old primary must redirect, got {other:?}"),
    }
    let last = c.node(np).db().expect("db").visible_seq();
    wait_for("every node to converge", || {
        (0..3).all(|i| c.node(i).db().is_some_and(|db| db.visible_seq() == last))
    });
    let finals: Vec<FinalNode> = (0..3).map(|i| final_node(&c.names[i], c.node(i))).collect();
    let violations = history::check(&h.events(), &finals, &history::Mode::Sync);
    assert!(violations.is_empty(), "{violations:#?}");
}

#[test]
fn a_primary_cut_off_from_the_authority_stops_acknowledging_when_its_lease_lapses() {
    let mut c = Cluster::new(2, Mode::Async, memory("n1"));
    c.start(0);
    c.start(1);
    let h = History::new();
    wait_for("n1 to be primary", || is_primary(c.node(0)));
    for _ in 0..20 {
        write(&h, c.node(0), "n1").1.expect("acknowledged under the lease");
    }
    c.reach[0].cut.store(true, Ordering::Release);
    // Writes go on until the lease runs out; from then on none is acknowledged.
    let mut failed = None;
    wait_for("the lease to lapse", || {
        let (op, r) = write(&h, c.node(0), "n1");
        if let Err(e) = r {
            failed = Some((op, e));
        }
        failed.is_some()
    });
    let (_, e) = failed.expect("failed");
    assert!(matches!(e, Error::Store(strata_core::Error::LeaseExpired { .. })), "{e}");
    for _ in 0..20 {
        let (op, r) = write(&h, c.node(0), "n1");
        assert!(r.is_err(), "nothing is acknowledged without a lease");
        assert!(!has_op(c.node(0), op), "nor written");
    }
    assert!(c.node(0).status().lease_remaining_millis == Some(0));
    // Its replicas still hear it, so nobody is promoted; back in reach it renews.
    assert_eq!(c.record().primary.as_str(), "n1");
    c.reach[0].cut.store(false, Ordering::Release);
    wait_for("the lease to be renewed", || write(&h, c.node(0), "n1").1.is_ok());
}

#[test]
fn a_partitioned_primary_is_fenced_redirects_writes_and_truncates_its_diverged_tail() {
    let mut c = Cluster::new(3, Mode::Async, memory("n1"));
    // n2 and n3 reach n1 only through a proxy that the test severs.
    let proxy = start_proxy(c.addrs[0]);
    for i in 1..3 {
        c.peers[i].insert(NodeId::new("n1"), proxy.addr().to_string());
    }
    c.start(0);
    c.start(1);
    c.start(2);
    let h = History::new();
    wait_for("n1 to be primary", || is_primary(c.node(0)));
    wait_for("n2 and n3 to join the in-sync set", || c.in_sync(&["n2", "n3"]));
    let mut last = SeqNo::ZERO;
    for _ in 0..50 {
        last = write(&h, c.node(0), "n1").1.expect("acknowledged");
    }
    wait_for("the replicas to catch up", || {
        (1..3).all(|i| c.node(i).db().is_some_and(|db| db.visible_seq() >= last))
    });
    // A partition: no new connection gets through, and the live ones break.
    proxy.refuse(true);
    proxy.sever();
    // n1 keeps its lease (the authority is in reach) and acknowledges writes the
    // replicas never receive, until a replica is promoted and n1's renewal is fenced.
    let mut diverged = Vec::new();
    let mut refusal = None;
    wait_for("n1 to be fenced", || {
        match write(&h, c.node(0), "n1") {
            (op, Ok(_)) => diverged.push(op),
            (_, Err(e)) => refusal = Some(e),
        }
        refusal.is_some()
    });
    let record = c.record();
    assert_ne!(record.primary.as_str(), "n1");
    let np = c.index(&record.primary);
    let new_addr = c.addrs[np].to_string();
    match refusal.expect("refused") {
        Error::Store(strata_core::Error::NotPrimary { primary }) => assert_eq!(primary, new_addr),
        // The lease may lapse first if a renewal fails for a moment; the redirect follows.
        Error::Store(strata_core::Error::LeaseExpired { .. }) => wait_for("a redirect", || {
            matches!(write(&h, c.node(0), "n1").1,
                Err(Error::Store(strata_core::Error::NotPrimary { ref primary })) if *primary == new_addr)
        }),
        other => panic!("expected NotPrimary naming {new_addr}, got {other}"),
    }
    assert!(!diverged.is_empty(), "n1 acknowledged writes its replicas did not get");
    wait_for("the new primary to take writes", || is_primary(c.node(np)));
    let mut last = SeqNo::ZERO;
    for _ in 0..20 {
        last = write(&h, c.node(np), &c.names[np].clone()).1.expect("new primary acknowledges");
    }
    wait_for("n1 to follow the new primary", || {
        c.node(0).db().is_some_and(|db| db.visible_seq() == last)
            && c.node(0).status().primary.as_deref() == Some(new_addr.as_str())
    });
    let (old, new) = (c.node(0).db().expect("db"), c.node(np).db().expect("db"));
    assert_eq!(log_of(&old), log_of(&new), "the diverged tail was truncated");
    for op in &diverged {
        assert!(!has_op(c.node(0), *op), "{op} was in the diverged tail");
    }
}

#[test]
fn a_stopped_in_sync_replica_leaves_the_in_sync_set_and_writes_continue() {
    let mut c = Cluster::new(3, Mode::Sync, memory("n1"));
    for i in 0..3 {
        c.start(i);
    }
    let h = History::new();
    wait_for("n2 and n3 to join the in-sync set", || c.in_sync(&["n2", "n3"]));
    for _ in 0..20 {
        write(&h, c.node(0), "n1").1.expect("acknowledged");
    }
    c.stop(2);
    // The write waits for n3 until the authority removed it, then is acknowledged.
    let (op, r) = write(&h, c.node(0), "n1");
    r.expect("acknowledged once n3 left the in-sync set");
    assert!(c.in_sync(&["n2"]), "{:?}", c.record().in_sync);
    assert!(has_op(c.node(1), op), "and on every remaining member");
    assert_eq!(c.record().primary.as_str(), "n1");
    c.start(2);
    wait_for("n3 to rejoin", || c.in_sync(&["n2", "n3"]));
    let (op, r) = write(&h, c.node(0), "n1");
    r.expect("acknowledged");
    assert!(has_op(c.node(2), op), "n3 has it durable");
}

#[test]
fn the_manual_policy_never_promotes_on_its_own_but_an_operator_can() {
    let adir = tempfile::tempdir().expect("tempdir");
    let initial = AuthorityRecord::initial(CLUSTER, "n1", Epoch(0), SeqNo(1), settings());
    let manual =
        strata_failover_manual::ManualPolicy::create(OsFileSystem::shared(), adir.path(), initial)
            .expect("manual authority");
    let mut c = Cluster::new(2, Mode::Sync, Arc::new(manual));
    c.start(0);
    c.start(1);
    let h = History::new();
    wait_for("n2 to join the in-sync set", || c.in_sync(&["n2"]));
    let mut acked = Vec::new();
    for _ in 0..20 {
        let (op, r) = write(&h, c.node(0), "n1");
        r.expect("acknowledged");
        acked.push(op);
    }
    let before = c.record();
    c.stop(0);
    // Several grace periods pass: nothing moves on its own.
    std::thread::sleep(settings().grace * 4);
    assert_eq!(c.record(), before, "the manual policy decided nothing");
    assert!(!is_primary(c.node(1)));
    assert!(matches!(
        c.node(1).write(&batch(h.next_op())),
        Err(Error::Store(strata_core::Error::NotPrimary { .. }))
    ));
    // The operator promotes the in-sync replica.
    let epoch = c.node(1).promote().expect("operator promotion");
    assert_eq!(epoch, Epoch(before.epoch.0 + 1));
    assert_eq!(c.record().primary.as_str(), "n2");
    assert!(is_primary(c.node(1)));
    for op in acked {
        assert!(has_op(c.node(1), op));
    }
    // Alone, with an in-sync set that is empty and min_in_sync 1, n2 cannot acknowledge
    // synchronous writes; the manual policy's answer is an operator's, so check only
    // that n2 holds a lease in its epoch.
    let status = c.node(1).status();
    assert_eq!(status.authority_epoch, epoch.0);
    wait_for("n2's lease", || c.node(1).status().lease_remaining_millis.is_some_and(|m| m > 0));
}

/// A replica leaving and rejoining the in-sync set over and over while synchronous writes
/// wait for it. The primary's join path once held its lease lock while taking the
/// replication sets, which a waiting writer holds while it checks the lease: a deadlock
/// after which the primary acknowledged nothing and answered no status request (found by
/// `strata bench failover`). The writers run on detached threads, so a primary that hangs
/// fails the test instead of hanging it.
#[test]
fn a_replica_rejoining_while_sync_writes_wait_does_not_deadlock_the_primary() {
    let mut c = Cluster::new(3, Mode::Sync, memory("n1"));
    for i in 0..3 {
        c.start(i);
    }
    wait_for("n2 and n3 to join the in-sync set", || c.in_sync(&["n2", "n3"]));
    let n1 = Arc::new(c.nodes[0].take().expect("n1 runs"));
    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (n1, stop, acked) = (Arc::clone(&n1), Arc::clone(&stop), Arc::clone(&acked));
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Acquire) {
                    i += 1;
                    let mut b = WriteBatch::new();
                    b.put(format!("w{w}-{i:08}"), "v");
                    if n1.write(&b).is_ok() {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let mut hung = None;
    for round in 0..40 {
        // Refused now and then (the set is changing): the next round tries again.
        let _ = n1.remove_replica("n3");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !c.in_sync(&["n2", "n3"]) {
            if Instant::now() >= deadline {
                hung = Some(round);
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        if hung.is_some() {
            break;
        }
    }
    stop.store(true, Ordering::Release);
    if let Some(round) = hung {
        let acks = acked.load(Ordering::Relaxed);
        // A deadlocked node cannot be stopped: leave it and its writers to the process's end.
        std::mem::forget(writers);
        std::mem::forget(n1);
        std::mem::forget(c);
        panic!(
            "n3 never rejoined in round {round} ({acks} writes acknowledged): the primary hangs"
        );
    }
    for w in writers {
        w.join().expect("writer");
    }
    assert!(acked.load(Ordering::Relaxed) > 0, "writes were acknowledged meanwhile");
}

/// How the node of [`promoted_with_an_unsynced_tail`] is promoted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Promotion {
    /// By its own failover thread, once its primary has been silent past the grace.
    Automatic,
    /// By an operator (`Node::promote`).
    Operator,
    /// By an operator's forced promotion (`Node::force_promote`).
    Forced,
    /// By itself at start: named primary in an epoch its store already wrote in (a
    /// restart after its process died with the tail still in the OS's cache), it takes
    /// the next epoch through the authority.
    Restart,
}

/// The shared authority, seen by one node whose file system loses power the moment a
/// promotion commits: what the store had not synced by then is gone, as if the machine
/// went down right after the authority answered. Without `automatic` it decides
/// nothing, so only an operator promotes.
struct PowerCutAtPromotion {
    inner: Arc<dyn FailoverPolicy>,
    automatic: bool,
    sim: SimFileSystem,
    /// The file system as it is after the cut (set once).
    after: Arc<Mutex<Option<SimFileSystem>>>,
}

impl std::fmt::Debug for PowerCutAtPromotion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PowerCutAtPromotion").field("automatic", &self.automatic).finish()
    }
}

#[async_trait::async_trait]
impl FailoverPolicy for PowerCutAtPromotion {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn decide(&self, record: &AuthorityRecord, view: &ClusterView) -> Decision {
        if self.automatic { self.inner.decide(record, view) } else { Decision::Nothing }
    }
    async fn record(&self) -> strata_core::Result<AuthorityRecord> {
        self.inner.record().await
    }
    async fn compare_and_set(
        &self,
        expected_version: u64,
        change: Change,
    ) -> strata_core::Result<AuthorityRecord> {
        let promotion = matches!(change, Change::Promote { .. } | Change::ForcePromote { .. });
        let next = self.inner.compare_and_set(expected_version, change).await?;
        if promotion {
            let mut after = self.after.lock().expect("lock");
            if after.is_none() {
                *after = Some(self.sim.crash());
            }
        }
        Ok(next)
    }
    async fn renew_lease(&self, node: &NodeId, epoch: Epoch) -> strata_core::Result<Lease> {
        self.inner.renew_lease(node, epoch).await
    }
}

/// A node holding a visible but unsynced tail (written, not yet fsynced) is promoted,
/// and loses power the moment the promotion commits. The record's epoch must start no
/// later than right after what its log still holds, so that on restart it starts that
/// epoch; a promotion that claimed the unsynced tail left a record its log no longer
/// reaches, and the node refused to start ("its log ends at ...").
fn promoted_with_an_unsynced_tail(how: Promotion) {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("n1");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let sim = SimFileSystem::new();
    sim.create_dir_all(&dir).expect("mkdir");
    let open_on = |fs: &SimFileSystem, replica_of: Option<String>| {
        let mut b = tiny_builder(&dir, fs.shared(), 64 << 20, 64 * 1024);
        b.options_mut().replica_of = replica_of;
        b.open()
    };
    let write_batch = |db: &strata_core::Db, i: u64| {
        let b = batch(OpId(i));
        let last = db.write(&b, Durability::Buffered).expect("write");
        WalBatch {
            first_seq: SeqNo(last.0 + 1 - u64::from(b.count())),
            count: b.count(),
            payload: bytes::Bytes::copy_from_slice(b.as_bytes()),
            epoch: db.epoch(),
        }
    };
    // n1's store: 20 batches, the first half synced, the second only visible.
    let (store, epoch, synced) = if how == Promotion::Restart {
        // n1 was the primary and wrote them itself; its process died (the tail stays
        // in the OS's cache) and it restarts as the record's primary.
        let db = open_on(&sim, None).expect("open n1");
        let mut synced = SeqNo::ZERO;
        for i in 0..20u64 {
            write_batch(&db, i);
            if i == 9 {
                db.sync_wal().expect("sync");
                synced = db.visible_seq();
            }
        }
        // A restarted node's store opens as a replica until the authority's epoch.
        db.demote("n1");
        let epoch = db.epoch();
        (db, epoch, synced)
    } else {
        // The old primary, n0, wrote them; n1, its in-sync replica, applied them.
        let primary_fs = SimFileSystem::new();
        primary_fs.create_dir_all(Path::new("/n0")).expect("mkdir");
        let primary = tiny_builder(Path::new("/n0"), primary_fs.shared(), 64 << 20, 64 * 1024)
            .open()
            .expect("n0");
        let batches: Vec<WalBatch> = (0..20u64).map(|i| write_batch(&primary, i)).collect();
        let replica = open_on(&sim, Some("n0".into())).expect("open n1");
        for (i, b) in batches.iter().enumerate() {
            replica.apply_replicated(b, Durability::Buffered).expect("apply");
            if i == 9 {
                replica.sync_wal().expect("sync");
            }
        }
        (replica, primary.epoch(), batches[9].last_seq())
    };
    assert_eq!(store.durable_seq(), synced, "the tail is not synced yet");
    assert!(store.visible_seq() > synced, "the tail is visible");

    let mut initial = if how == Promotion::Restart {
        AuthorityRecord::initial(CLUSTER, "n1", epoch, SeqNo(1), settings())
    } else {
        AuthorityRecord::initial(CLUSTER, "n0", epoch, SeqNo(1), settings())
    };
    if how != Promotion::Restart {
        initial.in_sync.insert(NodeId::new("n1"));
    }
    let authority: Arc<dyn FailoverPolicy> =
        Arc::new(MemoryAuthority::new(initial.clone()).expect("authority"));
    let after = Arc::new(Mutex::new(None));
    let cutter: Arc<dyn FailoverPolicy> = Arc::new(PowerCutAtPromotion {
        inner: Arc::clone(&authority),
        automatic: how == Promotion::Automatic,
        sim: sim.clone(),
        after: Arc::clone(&after),
    });
    // n0 is gone: nothing listens at its address.
    let peers: BTreeMap<NodeId, String> = [("n0", free_addr()), ("n1", free_addr())]
        .map(|(n, a)| (NodeId::new(n), a.to_string()))
        .into();
    let config = |policy: Arc<dyn FailoverPolicy>| {
        let listen = peers[&NodeId::new("n1")].parse().expect("addr");
        let mut c = NodeConfig::new("n1", listen, RoleConfig::Primary);
        c.mode = Mode::Sync;
        c.heartbeat = Duration::from_millis(20);
        c.reconnect = Duration::from_millis(30);
        c.failover = Some(FailoverConfig::new(policy, peers.clone()));
        c
    };
    // The node opens n1's store as it stands (its unsynced tail included).
    let open: OpenStore = {
        let db = store.clone();
        Arc::new(move |_: Option<String>| Ok(db.clone()))
    };
    drop(store);
    // The node's own start of its epoch after the commit fails (its file system lost
    // power), so that outcome is not looked at.
    let node = Node::start(config(cutter), &dir, open);
    if let Ok(node) = &node {
        match how {
            Promotion::Automatic | Promotion::Restart => {}
            Promotion::Operator => drop(node.promote()),
            Promotion::Forced => drop(node.force_promote()),
        }
    } else {
        assert_eq!(how, Promotion::Restart, "n1 starts as a replica: {node:?}");
    }
    wait_for("the promotion to commit (and the power cut)", || {
        after.lock().expect("lock").is_some()
    });
    if let Ok(node) = node {
        node.stop();
    }
    let record = block_on(authority.record()).expect("record");
    assert_eq!(record.primary.as_str(), "n1", "{how:?}: the promotion committed");
    assert_eq!(Some(record.epoch), epoch.checked_next(), "{how:?}");

    // What n1's log holds after the power loss reaches the sequence before the
    // record's first one.
    let after = after.lock().expect("lock").take().expect("the file system after the cut");
    let held = open_on(&after, Some("n0".into())).expect("reopen n1").visible_seq();
    assert!(held >= synced, "{how:?}: the synced half survives");
    assert!(
        held.next() >= record.epoch_first_seq,
        "{how:?}: the authority starts epoch {} at {}, but after the power loss n1's log ends \
         at {held}",
        record.epoch,
        record.epoch_first_seq
    );

    // n1 restarts on what survived and starts the record's epoch.
    let reopen: OpenStore = {
        let (dir, after) = (dir.clone(), after.clone());
        Arc::new(move |replica_of: Option<String>| {
            let mut b = tiny_builder(&dir, after.shared(), 64 << 20, 64 * 1024);
            b.options_mut().replica_of = replica_of;
            b.open()
        })
    };
    let mut node = None;
    wait_for("n1 to restart", || {
        match Node::start(config(Arc::clone(&authority)), &dir, Arc::clone(&reopen)) {
            Ok(n) => node = Some(n),
            // The port may still be held by the previous incarnation's last threads.
            Err(Error::Io { op: "bind", .. }) => {}
            Err(e) => panic!("{how:?}: n1 does not restart: {e}"),
        }
        node.is_some()
    });
    let node = node.expect("started");
    wait_for("n1 to be primary", || is_primary(&node));
    assert_eq!(
        node.db().expect("db").epoch(),
        record.epoch,
        "{how:?}: it writes in the record's epoch"
    );
    node.stop();
}

#[test]
fn an_automatic_promotion_with_an_unsynced_tail_survives_power_loss_right_after_it_commits() {
    promoted_with_an_unsynced_tail(Promotion::Automatic);
}

#[test]
fn an_operator_promotion_with_an_unsynced_tail_survives_power_loss_right_after_it_commits() {
    promoted_with_an_unsynced_tail(Promotion::Operator);
}

#[test]
fn a_forced_promotion_with_an_unsynced_tail_survives_power_loss_right_after_it_commits() {
    promoted_with_an_unsynced_tail(Promotion::Forced);
}

#[test]
fn a_restarted_primary_taking_a_new_epoch_with_an_unsynced_tail_survives_power_loss() {
    promoted_with_an_unsynced_tail(Promotion::Restart);
}
