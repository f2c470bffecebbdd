//! Randomized, seeded fault rounds against real processes: three `strata serve` data
//! nodes in sync mode (`min_in_sync` 1) with the raft failover authority, on loopback,
//! with a `FaultProxy` (in this test process) on the links between them.
//!
//! - Replication: node `i` reaches node `j`'s replication listener through
//!   `repl[i][j]` (its `[failover] peers` entry for `j` is that proxy), so every pair
//!   of nodes has its own link in each direction (replica streams, status requests
//!   for the view a failover is decided on).
//! - Raft: per pair too. openraft keeps one address per voter in its replicated
//!   membership (the voters' own listeners here), and each node's `[failover] routes`
//!   gives it its own way to every other voter: node `i` reaches voter `j` through
//!   `raft[i][j]`. A node "cut off from everything" is cut off for replication, status
//!   and raft, in both directions.
//! - The test process itself (status polls, clients, the log reader) talks to each
//!   node's own addresses, not through the proxies: it observes the cluster, it is not
//!   part of a partition.
//!
//! Two client threads write acknowledged puts through `[client]` (`PUT k<op> op<op>`,
//! answered `OK <seq> <epoch>`), follow the typed "not primary" redirects (the address
//! in the refusal is mapped back to a node) and record every invoke, ok, fail and
//! unknown outcome in a `strata_harness::history::History`. Every status poll records
//! the node's epoch (`EpochSeen`), and a node first seen as primary at a new epoch is
//! recorded as `Promoted` with the union of the in-sync sets polled in the epoch
//! before (a promotion is observed, not reported by the authority).
//!
//! Each round a seeded RNG picks one fault: kill -9 of the primary or a replica (then
//! a restart), SIGSTOP of the primary past its lease (then SIGCONT), SIGSTOP of a
//! replica, the primary cut off (see above), a one-way cut, hold/release, delay or
//! flapping of a replica's link to the primary, a double failover (the new primary is
//! killed right after the failover). Then everything heals, stopped nodes continue,
//! dead ones restart, writes must be acknowledged again, the clients pause, the test
//! waits for exactly one primary and every node at the same last sequence (a deadline
//! that fails loudly, no timing assertions), reads every node's log through its
//! gateway (`strata subscribe --from 1`) and runs the history checker in `Mode::Sync`
//! over the whole history. The run ends with a kill -9 of every node, a restart of all
//! of them, one more check and a read-back of every acknowledged write on every node.
//!
//! A double failover may leave no eligible survivor: the new primary started its epoch
//! after a tail (of the old epoch) that the one remaining in-sync member had not
//! received yet, so that member cannot take over without possibly losing what the new
//! primary acknowledged, and the cluster waits (safely) for the killed primary to come
//! back. The round accepts that when, after `STUCK_AFTER`, a node's failover error says
//! a survivor "is not eligible", counts it, and fails on any other missing failover.
//!
//! A node that was primary and steps down in-process truncates its diverged tail (its
//! writes of the old epoch that the new primary never had). These rounds found that its
//! commit stream used to stop there for good, so its gateway served the truncated
//! batches; now the stream publishes again from the cut (a rewind in the newer epoch)
//! and the gateway drops the withdrawn frames. Every check reads each node's log through
//! its gateway, so a node serving a truncated tail fails the round, and a node whose
//! serve log says its commit stream stopped is a violation (`CommitStreamStopped`);
//! the summary counts the rewinds the nodes logged.
//!
//! One `strata subscribe --transport tcp --from 1` given every node's `[tcp]` address
//! runs for the whole test and follows the cluster through every fault (it moves on
//! when its node dies and resumes with the epoch it saw last, which the next node checks
//! against its store's epoch history). Each check waits until it holds the converged
//! last sequence and compares what it holds, after applying the `rewritten` notices it
//! printed, with the primary's log: a different entry it was never told about, a
//! sequence missing without a `gap`, or a frame that does not continue the previous
//! one is a violation.
//!
//! - `STRATA_CLUSTER_ROUNDS=N` runs N rounds (default `DEFAULT_ROUNDS`, for CI).
//! - `STRATA_CLUSTER_SEED=S` (decimal or `0x` hex) replays the fault sequence of a run
//!   (faults and parameters; process timing is the machine's); the seed is printed.
//! - `STRATA_CLUSTER_KEEP_SECS=S` keeps the cluster running S seconds after a violation
//!   (its addresses are printed) to look at it by hand.
//!
//! Every child process is killed (SIGKILL) by a drop guard however the test ends.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_core::{Epoch, SeqNo};
use strata_harness::history::{self, Event, FinalNode, History, LogEntry, OpId};
use strata_harness::proxy::{Direction, FaultProxy};
use strata_harness::seeded::{Rng, env_u64};
use strata_replication::{AdminRequest, Status, admin_request};

const BIN: &str = env!("CARGO_BIN_EXE_strata");
const NODES: usize = 3;
const CLIENTS: usize = 2;
/// Rounds in CI (no environment variable).
const DEFAULT_ROUNDS: u64 = 3;
/// Writes acknowledged before each fault and again after healing.
const PROGRESS: u64 = 10;
/// How long the cluster may take to reach a state (debug builds on 2 busy cores).
const DEADLINE: Duration = Duration::from_secs(120);
/// `[failover]` lease settings (the defaults).
/// How long the survivors of a double failover may take before the round looks for
/// the reason they cannot take over.
const STUCK_AFTER: Duration = Duration::from_secs(20);
const HEARTBEAT_MS: u64 = 100;
const LEASE_MS: u64 = 500;
const GRACE_MS: u64 = 800;

/// A free port below the kernel's ephemeral range (32768 and up), so that no outgoing
/// connection takes it between this check and the node's bind.
fn free_port() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let salt = std::process::id() as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
    loop {
        let mut rng = Rng(salt ^ NEXT.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9e37));
        let addr = format!("127.0.0.1:{}", rng.range(10_000, 32_000));
        if TcpListener::bind(&addr).is_ok() {
            return addr;
        }
    }
}

fn signal(child: &Child, sig: rustix::process::Signal) {
    let pid = rustix::process::Pid::from_raw(i32::try_from(child.id()).unwrap()).unwrap();
    rustix::process::kill_process(pid, sig).unwrap();
}

/// One data node: its addresses, its directory and its process (if running).
struct Node {
    name: String,
    config: PathBuf,
    log: PathBuf,
    repl: String,
    raft: String,
    client: String,
    gateway: String,
    /// Its `[tcp]` commit-stream address (the TCP follower's).
    tcp: String,
    child: Option<Child>,
    /// SIGSTOPped and not continued yet.
    stopped: bool,
    /// Where this incarnation's output starts in `log`.
    log_from: u64,
}

/// The cluster: its nodes and the proxies between them. Dropping it kills every
/// child (SIGKILL works on stopped ones too), then stops the proxies.
struct Cluster {
    nodes: Vec<Node>,
    /// `repl[i][j]`: node `i`'s way to node `j`'s replication listener.
    repl: Vec<Vec<Option<FaultProxy>>>,
    /// `raft[i][j]`: voter `i`'s way to voter `j`'s raft listener (its route).
    raft: Vec<Vec<Option<FaultProxy>>>,
    _tmp: tempfile::TempDir,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

impl Cluster {
    fn new(names: &[String]) -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let mut nodes = Vec::new();
        for name in names {
            let dir = tmp.path().join(name);
            std::fs::create_dir_all(&dir).unwrap();
            nodes.push(Node {
                name: name.clone(),
                config: dir.join("serve.toml"),
                log: dir.join("serve.log"),
                repl: free_port(),
                raft: free_port(),
                client: free_port(),
                gateway: free_port(),
                tcp: free_port(),
                child: None,
                stopped: false,
                log_from: 0,
            });
        }
        let sock = |a: &str| a.to_socket_addrs().unwrap().next().unwrap();
        let repl = (0..NODES)
            .map(|i| {
                (0..NODES)
                    .map(|j| (i != j).then(|| FaultProxy::start(sock(&nodes[j].repl)).unwrap()))
                    .collect()
            })
            .collect();
        let raft = (0..NODES)
            .map(|i| {
                (0..NODES)
                    .map(|j| (i != j).then(|| FaultProxy::start(sock(&nodes[j].raft)).unwrap()))
                    .collect()
            })
            .collect();
        let c = Cluster { nodes, repl, raft, _tmp: tmp };
        for i in 0..NODES {
            std::fs::write(&c.nodes[i].config, c.config(i)).unwrap();
        }
        c
    }

    /// Node `i`'s `serve.toml`: its peers are the proxies `repl[i][_]`; the voters are
    /// listed at their own raft listeners, and its `routes` reach them through the
    /// proxies `raft[i][_]` (see the module docs).
    fn config(&self, i: usize) -> String {
        let n = &self.nodes[i];
        let peers: Vec<String> = (0..NODES)
            .map(|j| {
                let addr = match &self.repl[i][j] {
                    Some(p) => p.addr().to_string(),
                    None => n.repl.clone(),
                };
                format!("{} = \"{addr}\"", self.nodes[j].name)
            })
            .collect();
        let voters: Vec<String> = (0..NODES)
            .map(|j| format!("{{ id = {}, addr = \"{}\" }}", j + 1, self.nodes[j].raft))
            .collect();
        let routes: Vec<String> = (0..NODES)
            .filter_map(|j| {
                let p = self.raft[i][j].as_ref()?;
                Some(format!("{{ id = {}, addr = \"{}\" }}", j + 1, p.addr()))
            })
            .collect();
        format!(
            "[store]\ndir = \"store\"\n\n[gateway]\naddr = \"{gateway}\"\n\n\
             [tcp]\naddr = \"{tcp}\"\nhistory = 200000\nqueue_depth = 65536\n\n\
             [commits]\nvalues = \"raw\"\n\n\
             [replication]\nname = \"{name}\"\nlisten = \"{repl}\"\nmode = \"sync\"\n\
             min_in_sync = 1\n\n[client]\nlisten = \"{client}\"\n\n\
             [failover]\npolicy = \"raft\"\ncluster_id = 4242\nprimary = \"{first}\"\n\
             peers = {{ {peers} }}\nheartbeat_ms = {HEARTBEAT_MS}\nlease_ms = {LEASE_MS}\n\
             grace_ms = {GRACE_MS}\nnode_id = {id}\nlisten = \"{raft}\"\nvoters = [{voters}]\n\
             routes = [{routes}]\n",
            gateway = n.gateway,
            tcp = n.tcp,
            name = n.name,
            repl = n.repl,
            client = n.client,
            first = self.nodes[0].name,
            peers = peers.join(", "),
            id = i + 1,
            raft = n.raft,
            voters = voters.join(", "),
            routes = routes.join(", "),
        )
    }

    /// Every address that names node `j`: its own and every proxy in front of it.
    fn addresses(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for (j, n) in self.nodes.iter().enumerate() {
            out.insert(n.repl.clone(), j);
            for row in &self.repl {
                if let Some(p) = &row[j] {
                    out.insert(p.addr().to_string(), j);
                }
            }
        }
        out
    }

    fn start(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        assert!(n.child.is_none(), "{} already runs", n.name);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&n.log).unwrap();
        n.log_from = log.metadata().unwrap().len();
        let err = log.try_clone().unwrap();
        let child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&n.config)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap();
        n.child = Some(child);
        n.stopped = false;
    }

    fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
        self.nodes[i].stopped = false;
    }

    fn stop(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        signal(n.child.as_ref().unwrap(), rustix::process::Signal::STOP);
        n.stopped = true;
    }

    fn cont(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        if n.stopped {
            signal(n.child.as_ref().unwrap(), rustix::process::Signal::CONT);
            n.stopped = false;
        }
    }

    fn heal(&mut self) {
        for p in self.repl.iter().chain(&self.raft).flatten().flatten() {
            p.heal();
        }
        for i in 0..NODES {
            self.cont(i);
            if self.nodes[i].child.is_none() {
                self.start(i);
            }
        }
    }

    /// What node `i`'s serve log gained since the last call (or its start).
    fn new_log(&mut self, i: usize) -> String {
        let n = &mut self.nodes[i];
        let text = std::fs::read(&n.log).unwrap_or_default();
        let from = usize::try_from(n.log_from).unwrap().min(text.len());
        n.log_from = text.len() as u64;
        String::from_utf8_lossy(&text[from..]).into_owned()
    }

    /// A node the test did not kill that has exited (a zombie: the test reaps only
    /// the children it kills).
    fn exited(&self) -> Option<&str> {
        self.nodes.iter().find_map(|n| {
            let pid = n.child.as_ref()?.id();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok();
            let state =
                stat.as_deref().and_then(|s| s.rsplit_once(')')).map(|(_, r)| r.trim_start());
            let gone = state.is_none_or(|r| r.starts_with('Z') || r.starts_with('X'));
            gone.then_some(n.name.as_str())
        })
    }

    fn link(&self, from: usize, to: usize) -> &FaultProxy {
        self.repl[from][to].as_ref().unwrap()
    }

    /// Voter `from`'s raft route to voter `to`.
    fn raft_link(&self, from: usize, to: usize) -> &FaultProxy {
        self.raft[from][to].as_ref().unwrap()
    }

    fn tail(&self, i: usize) -> String {
        let text = std::fs::read_to_string(&self.nodes[i].log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

fn status(addr: &str) -> Option<Status> {
    let text = admin_request(addr, AdminRequest::Status, Duration::from_millis(700)).ok()?;
    serde_json::from_str(&text).ok()
}

/// What the poller learned about promotions. They are judged here rather than as
/// the checker's `Promoted` events: an observed promotion would often be recorded
/// after the new primary's first acknowledgement, which the checker would read as an
/// epoch used before it was granted.
#[derive(Default)]
struct Observed {
    /// The primary the authority named at each epoch polled.
    primaries: BTreeMap<u64, String>,
    /// The union of the in-sync sets polled at each authority epoch, with that
    /// epoch's primary (eligible again: it holds everything it acknowledged).
    in_sync: BTreeMap<u64, BTreeSet<String>>,
    /// Promotions judged (a new epoch with an earlier one polled).
    promotions: u64,
    /// Promotions of a node outside the previous epoch's polled in-sync set.
    out_of_sync: Vec<String>,
}

/// What the client threads and the controller share.
struct Shared {
    history: History,
    names: Vec<String>,
    clients: Vec<String>,
    /// Any address naming a node (see [`Cluster::addresses`]).
    addr_of: BTreeMap<String, usize>,
    /// The node the poller last saw as primary.
    hint: AtomicUsize,
    /// Clients hold it shared around each request; the controller takes it to pause
    /// them (no write in flight while logs are read).
    gate: RwLock<()>,
    stop: AtomicBool,
    acked: AtomicU64,
    observed: Mutex<Observed>,
    /// Writes answered `OK` whose epoch the node could not name (recorded `Unknown`),
    /// read back at the end all the same.
    acked_no_epoch: Mutex<Vec<OpId>>,
}

impl Shared {
    /// Polls every node, records each answer's epoch (and a new primary as a
    /// promotion) and returns the answers.
    fn poll(&self, c: &Cluster) -> Vec<Option<Status>> {
        let seen: Vec<Option<Status>> =
            c.nodes.iter().map(|n| if n.stopped { None } else { status(&n.repl) }).collect();
        let mut obs = self.observed.lock().unwrap_or_else(PoisonError::into_inner);
        // New authority epochs first, judged against what was polled before them.
        for s in seen.iter().flatten() {
            let Some(primary) = s.authority_primary.clone() else { continue };
            if s.authority_epoch == 0 || obs.primaries.contains_key(&s.authority_epoch) {
                continue;
            }
            obs.primaries.insert(s.authority_epoch, primary.clone());
            let before = obs.in_sync.range(..s.authority_epoch).next_back();
            if let Some((e, set)) = before.map(|(e, set)| (*e, set.clone())) {
                obs.promotions += 1;
                if !set.contains(&primary) {
                    obs.out_of_sync.push(format!(
                        "{primary} promoted to epoch {}; the in-sync set polled at epoch {e} \
                         (with its primary) was {set:?}",
                        s.authority_epoch
                    ));
                }
            }
        }
        for (i, s) in seen.iter().enumerate() {
            let Some(s) = s else { continue };
            self.history.record(Event::EpochSeen { node: s.node.clone(), epoch: Epoch(s.epoch) });
            if s.authority_epoch > 0 {
                let set = obs.in_sync.entry(s.authority_epoch).or_default();
                set.extend(s.in_sync.iter().cloned());
                set.extend(s.authority_primary.iter().cloned());
            }
            if s.role == "primary" && s.lease_remaining_millis.unwrap_or(0) > 0 {
                self.hint.store(i, Ordering::SeqCst);
            }
        }
        seen
    }

    fn pause(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.gate.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The outcome of one request line.
enum Answer {
    /// Never sent (no connection): nothing was written.
    NotSent(String),
    /// Sent, no answer: unknown.
    Lost(String),
    Line(String),
}

fn request(addr: &str, line: &str) -> Answer {
    let sock = addr.to_socket_addrs().unwrap().next().unwrap();
    let stream = match TcpStream::connect_timeout(&sock, Duration::from_secs(1)) {
        Ok(s) => s,
        Err(e) => return Answer::NotSent(format!("connect to {addr}: {e}")),
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let mut w = stream.try_clone().unwrap();
    if let Err(e) = writeln!(w, "{line}") {
        return Answer::Lost(format!("send to {addr}: {e}"));
    }
    let mut answer = String::new();
    match BufReader::new(stream).read_line(&mut answer) {
        Ok(n) if n > 0 => Answer::Line(answer.trim_end().to_owned()),
        Ok(_) => Answer::Lost(format!("{addr} closed the connection")),
        Err(e) => Answer::Lost(format!("no answer from {addr}: {e}")),
    }
}

/// The node to try after `target` failed: the poller's primary, or the next node when
/// that is `target` itself.
fn retarget(s: &Shared, target: usize) -> usize {
    let hint = s.hint.load(Ordering::SeqCst);
    if hint == target { (target + 1) % NODES } else { hint }
}

fn client(s: &Shared) {
    let h = &s.history;
    let mut target = s.hint.load(Ordering::SeqCst);
    while !s.stop.load(Ordering::SeqCst) {
        let gate = s.gate.read().unwrap_or_else(PoisonError::into_inner);
        let op = h.next_op();
        let node = s.names[target].clone();
        h.record(Event::Invoke { op, node: node.clone() });
        let answer = request(&s.clients[target], &format!("PUT k{} op{}", op.0, op.0));
        drop(gate);
        match answer {
            Answer::Line(a) if a.starts_with("OK ") => {
                let mut parts = a.split_whitespace().skip(1);
                let seq = parts.next().and_then(|x| x.parse().ok()).map(SeqNo);
                let epoch = parts.next().and_then(|x| x.parse().ok()).map(Epoch);
                match (seq, epoch) {
                    (Some(seq), Some(epoch)) => {
                        h.record(Event::Ok { op, node, epoch, seq });
                        s.acked.fetch_add(1, Ordering::SeqCst);
                    }
                    _ => {
                        h.record(Event::Unknown { op, reason: format!("{a} (no epoch)") });
                        s.acked_no_epoch.lock().unwrap_or_else(PoisonError::into_inner).push(op);
                    }
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            // Typed refusal of a replica: nothing was written.
            Answer::Line(a) if a.starts_with("ERR this node is a replica") => {
                h.record(Event::Fail { op, reason: a.clone() });
                let named = a.rsplit_once("write to the primary at ").map(|(_, addr)| addr.trim());
                target = named
                    .and_then(|addr| s.addr_of.get(addr).copied())
                    .unwrap_or_else(|| retarget(s, target));
                std::thread::sleep(Duration::from_millis(10));
            }
            Answer::Line(a) => {
                h.record(Event::Unknown { op, reason: a });
                target = retarget(s, target);
                std::thread::sleep(Duration::from_millis(20));
            }
            Answer::NotSent(reason) => {
                h.record(Event::Fail { op, reason });
                target = retarget(s, target);
                std::thread::sleep(Duration::from_millis(20));
            }
            Answer::Lost(reason) => {
                h.record(Event::Unknown { op, reason });
                target = retarget(s, target);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// Stops and joins the client threads however the test ends.
struct Clients {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Drop for Clients {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The faults a round can inject.
#[derive(Clone, Copy, Debug)]
enum Fault {
    /// kill -9 of the primary; restarted at the heal.
    KillPrimary,
    /// kill -9 of a replica for a while; restarted at the heal.
    KillReplica { replica: usize, for_: Duration },
    /// SIGSTOP of the primary until another node is primary, then SIGCONT.
    StopPrimary,
    /// SIGSTOP of a replica for a while (past the grace or not), then SIGCONT.
    StopReplica { replica: usize, for_: Duration },
    /// The primary's replication links cut both ways and its raft listener cut off.
    IsolatePrimary { for_: Duration },
    /// One direction of a replica's replication link to the primary delivers nothing.
    OneWayCut { replica: usize, dir: Direction, for_: Duration },
    /// One direction of a replica's link to the primary is held, then released.
    Hold { replica: usize, dir: Direction, for_: Duration },
    /// A replica's link to the primary and its raft listener are slow.
    Delay { replica: usize, delay: Duration, for_: Duration },
    /// A replica's link to the primary and its raft listener flap.
    Flapping { replica: usize, seed: u64, for_: Duration },
    /// kill -9 of the primary, and of the next one right after the failover (the first
    /// is restarted in between, so the raft group keeps a majority).
    DoubleFailover,
}

impl Fault {
    fn kind(&self) -> &'static str {
        match self {
            Fault::KillPrimary => "kill-primary",
            Fault::KillReplica { .. } => "kill-replica",
            Fault::StopPrimary => "sigstop-primary",
            Fault::StopReplica { .. } => "sigstop-replica",
            Fault::IsolatePrimary { .. } => "isolate-primary",
            Fault::OneWayCut { .. } => "one-way-cut",
            Fault::Hold { .. } => "hold-release",
            Fault::Delay { .. } => "delay",
            Fault::Flapping { .. } => "flapping",
            Fault::DoubleFailover => "double-failover",
        }
    }

    fn pick(rng: &mut Rng) -> Fault {
        // A replica is named by its offset from the primary (1 or 2).
        let replica = 1 + rng.index(2);
        let dir = if rng.next_u64().is_multiple_of(2) { Direction::Up } else { Direction::Down };
        match rng.index(10) {
            0 => Fault::KillPrimary,
            1 => Fault::KillReplica { replica, for_: rng.ms(200, 2000) },
            2 => Fault::StopPrimary,
            3 => Fault::StopReplica { replica, for_: rng.ms(300, 2500) },
            4 => Fault::IsolatePrimary { for_: rng.ms(1500, 3500) },
            5 => Fault::OneWayCut { replica, dir, for_: rng.ms(300, 2500) },
            6 => Fault::Hold { replica, dir, for_: rng.ms(200, 1500) },
            7 => Fault::Delay { replica, delay: rng.ms(5, 80), for_: rng.ms(500, 2500) },
            8 => Fault::Flapping { replica, seed: rng.next_u64(), for_: rng.ms(500, 2500) },
            _ => Fault::DoubleFailover,
        }
    }
}

/// The run: the cluster, the shared state, the seed (for every failure message).
struct Run {
    cluster: Cluster,
    shared: Arc<Shared>,
    seed: u64,
    round: u64,
    fault: Option<Fault>,
    /// Times a node's commit stream published again from a cut (module docs).
    rewinds: std::cell::Cell<u64>,
    /// Double failovers after which no survivor was eligible.
    stuck: std::cell::Cell<u64>,
    /// The TCP subscriber following the cluster (started once the cluster is healthy).
    follower: Option<TcpFollower>,
}

impl Run {
    fn context(&self) -> String {
        let tails: Vec<String> = (0..NODES)
            .map(|i| {
                format!("--- {} log tail:\n{}", self.cluster.nodes[i].name, self.cluster.tail(i))
            })
            .collect();
        format!(
            "seed {:#x} (STRATA_CLUSTER_SEED={:#x}), round {}, fault {:?}\n{}",
            self.seed,
            self.seed,
            self.round,
            self.fault,
            tails.join("\n")
        )
    }

    /// Polls (recording epochs) for `dur`.
    fn sleep_polling(&self, dur: Duration) {
        let end = Instant::now() + dur;
        while Instant::now() < end {
            self.shared.poll(&self.cluster);
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls until `pred` holds for the statuses; fails loudly at the deadline.
    fn wait<T>(&self, what: &str, pred: impl FnMut(&[Option<Status>]) -> Option<T>) -> T {
        match self.wait_within(DEADLINE, pred) {
            Ok(t) => t,
            Err(seen) => panic!("never {what}; last statuses: {seen:#?}\n{}", self.context()),
        }
    }

    /// Polls until `pred` holds for the statuses or `limit` passes (then: the last
    /// statuses).
    fn wait_within<T>(
        &self,
        limit: Duration,
        mut pred: impl FnMut(&[Option<Status>]) -> Option<T>,
    ) -> Result<T, Vec<Option<Status>>> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(dead) = self.cluster.exited() {
                panic!("{dead} exited by itself\n{}", self.context());
            }
            let seen = self.shared.poll(&self.cluster);
            if let Some(t) = pred(&seen) {
                return Ok(t);
            }
            if Instant::now() >= deadline {
                return Err(seen);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Exactly one node reports primary with a lease, the others replica, and the
    /// primary's in-sync set holds both others: (primary, epoch).
    fn wait_healthy(&self) -> (usize, u64) {
        self.wait("one healthy primary with both replicas in sync", |seen| {
            let all: Option<Vec<&Status>> = seen.iter().map(Option::as_ref).collect();
            let all = all?;
            let primaries: Vec<usize> = (0..NODES).filter(|&i| all[i].role == "primary").collect();
            let [p] = primaries.as_slice() else { return None };
            let s = all[*p];
            let leased = s.lease_remaining_millis.unwrap_or(0) > 0;
            (leased && s.in_sync.len() == NODES - 1).then_some((*p, s.epoch))
        })
    }

    /// A node other than `not` is primary, with a lease, above `epoch`.
    fn wait_new_primary(&self, not: usize, epoch: u64) -> (usize, u64) {
        self.wait(&format!("a new primary above epoch {epoch}"), |seen| {
            seen.iter().enumerate().find_map(|(i, s)| {
                let s = s.as_ref()?;
                let leased = s.lease_remaining_millis.unwrap_or(0) > 0;
                (i != not && s.role == "primary" && leased && s.epoch > epoch)
                    .then_some((i, s.epoch))
            })
        })
    }

    /// `n` more writes acknowledged.
    fn wait_progress(&self, n: u64) {
        let target = self.shared.acked.load(Ordering::SeqCst) + n;
        self.wait(&format!("{n} more acknowledged writes"), |_| {
            (self.shared.acked.load(Ordering::SeqCst) >= target).then_some(())
        });
    }

    fn inject(&mut self, fault: Fault) {
        let (p, epoch) = self.wait_healthy();
        let other = |k: usize| (p + k) % NODES;
        match fault {
            Fault::KillPrimary => {
                self.cluster.kill9(p);
                self.wait_new_primary(p, epoch);
            }
            Fault::KillReplica { replica, for_ } => {
                self.cluster.kill9(other(replica));
                self.sleep_polling(for_);
            }
            Fault::StopPrimary => {
                self.cluster.stop(p);
                self.wait_new_primary(p, epoch);
                self.cluster.cont(p);
            }
            Fault::StopReplica { replica, for_ } => {
                self.cluster.stop(other(replica));
                self.sleep_polling(for_);
                self.cluster.cont(other(replica));
            }
            Fault::IsolatePrimary { for_ } => {
                let c = &self.cluster;
                for d in [Direction::Up, Direction::Down] {
                    for j in (0..NODES).filter(|&j| j != p) {
                        c.link(p, j).cut(d);
                        c.link(j, p).cut(d);
                    }
                    for j in (0..NODES).filter(|&j| j != p) {
                        c.raft_link(p, j).cut(d);
                        c.raft_link(j, p).cut(d);
                    }
                }
                self.sleep_polling(for_);
            }
            Fault::OneWayCut { replica, dir, for_ } => {
                self.cluster.link(other(replica), p).cut(dir);
                self.sleep_polling(for_);
            }
            Fault::Hold { replica, dir, for_ } => {
                self.cluster.link(other(replica), p).hold(dir);
                self.sleep_polling(for_);
                self.cluster.link(other(replica), p).release(dir);
            }
            Fault::Delay { replica, delay, for_ } => {
                let c = &self.cluster;
                for d in [Direction::Up, Direction::Down] {
                    c.link(other(replica), p).delay(d, delay);
                    c.raft_link(other(replica), p).delay(d, delay);
                    c.raft_link(p, other(replica)).delay(d, delay);
                }
                self.sleep_polling(for_);
            }
            Fault::Flapping { replica, seed, for_ } => {
                let (lo, hi) = (Duration::from_millis(30), Duration::from_millis(400));
                self.cluster.link(other(replica), p).flapping_for(lo, hi, seed);
                self.cluster.raft_link(other(replica), p).flapping_for(lo, hi, seed ^ 1);
                self.cluster.raft_link(p, other(replica)).flapping_for(lo, hi, seed ^ 2);
                self.sleep_polling(for_);
            }
            Fault::DoubleFailover => {
                self.cluster.kill9(p);
                let (q, e2) = self.wait_new_primary(p, epoch);
                self.cluster.start(p);
                // Right after the failover: the new primary goes too.
                self.cluster.kill9(q);
                // The survivors may have no eligible member: the one in-sync member
                // may not hold yet the tail the killed primary started its epoch after
                // (the cluster then waits for it, safely). Anything else must fail over.
                let new_primary = |seen: &[Option<Status>]| {
                    seen.iter().enumerate().find_map(|(i, s)| {
                        let s = s.as_ref()?;
                        let leased = s.lease_remaining_millis.unwrap_or(0) > 0;
                        (i != q && s.role == "primary" && leased && s.epoch > e2).then_some(i)
                    })
                };
                if let Err(seen) = self.wait_within(STUCK_AFTER, new_primary) {
                    let reason = seen.iter().flatten().find_map(|s| {
                        s.failover_error.clone().filter(|e| e.contains("is not eligible"))
                    });
                    let Some(reason) = reason else {
                        panic!(
                            "no new primary after the double failover, and no node says why; \
                             last statuses: {seen:#?}\n{}",
                            self.context()
                        );
                    };
                    eprintln!(
                        "double failover: no eligible survivor until the killed primary \
                         returns: {reason}"
                    );
                    self.stuck.set(self.stuck.get() + 1);
                }
            }
        }
    }

    /// Node `i` as it stands (`s`), its log read through its gateway.
    fn final_node(&self, i: usize, s: &Status) -> (FinalNode, Vec<String>) {
        let n = &self.cluster.nodes[i];
        let (log, notes) = read_log(&n.gateway, s.last_seq);
        let node = FinalNode {
            name: n.name.clone(),
            epoch: Epoch(s.epoch),
            primary: s.role == "primary",
            log,
        };
        (node, notes)
    }

    /// Pauses the clients, waits until the cluster converged, reads every log and runs
    /// the checker over the whole history; panics with every violation found.
    fn check(&mut self, label: &str) {
        let _paused = self.shared.pause();
        let converged = |this: &Self| {
            this.wait("one primary and every node at the same last sequence", |seen| {
                let all: Option<Vec<&Status>> = seen.iter().map(Option::as_ref).collect();
                let all = all?;
                let primaries = all.iter().filter(|s| s.role == "primary").count();
                let leased = all.iter().any(|s| s.lease_remaining_millis.unwrap_or(0) > 0);
                let same =
                    all.iter().all(|s| s.last_seq == all[0].last_seq && s.epoch == all[0].epoch);
                (primaries == 1 && leased && same).then(|| all.into_iter().cloned().collect())
            })
        };
        let statuses: Vec<Status> = converged(self);
        let mut stopped = Vec::new();
        for i in 0..NODES {
            let text = self.cluster.new_log(i);
            let rewinds = text.matches("the log was truncated under it").count() as u64;
            self.rewinds.set(self.rewinds.get() + rewinds);
            if text.contains("commit stream stopped") {
                stopped.push(format!(
                    "CommitStreamStopped: {} logged that its commit stream stopped",
                    self.cluster.nodes[i].name
                ));
            }
        }
        let (finals, notes): (Vec<FinalNode>, Vec<Vec<String>>) =
            statuses.iter().enumerate().map(|(i, s)| self.final_node(i, s)).unzip();
        let events = self.shared.history.events();
        let mut violations: Vec<String> = history::check(&events, &finals, &history::Mode::Sync)
            .iter()
            .map(ToString::to_string)
            .collect();
        let obs = self.shared.observed.lock().unwrap_or_else(PoisonError::into_inner);
        violations.extend(obs.out_of_sync.iter().map(|v| format!("PromotedOutOfSync: {v}")));
        violations.extend(stopped);
        drop(obs);
        if let (Some(follower), Some(primary)) = (&self.follower, finals.iter().find(|f| f.primary))
        {
            violations.extend(follower.check(&primary.log, statuses[0].last_seq));
        }
        let acked = events.iter().filter(|e| matches!(e, Event::Ok { .. })).count();
        if !violations.is_empty() {
            // Debugging aid: keep the cluster up for a while to look at it.
            if let Some(secs) = env_u64("STRATA_CLUSTER_KEEP_SECS") {
                let nodes: Vec<(&str, &str, &str)> = self
                    .cluster
                    .nodes
                    .iter()
                    .map(|n| (n.name.as_str(), n.client.as_str(), n.gateway.as_str()))
                    .collect();
                eprintln!("{label}: violations; keeping the cluster for {secs} s: {nodes:?}");
                eprintln!("{violations:#?}");
                std::thread::sleep(Duration::from_secs(secs));
            }
            panic!(
                "{label}: {} violation(s):\n{}\nstatuses: {statuses:#?}\nsubscriber notes: \
                 {notes:#?}\n{}",
                violations.len(),
                violations.join("\n"),
                self.context()
            );
        }
        let p = finals.iter().find(|f| f.primary).map_or("?", |f| f.name.as_str());
        eprintln!(
            "{label}: ok — {} events, {acked} acknowledged writes, all present; primary {p} at \
             epoch {}, {} entries on every node",
            events.len(),
            statuses[0].epoch,
            statuses[0].last_seq
        );
    }
}

/// A node's log from sequence 1 to `last`, through `strata subscribe` on its gateway:
/// one entry per sequence, naming the client operation it carries. A
/// `{"rewritten":..}` notice takes back what it names (the checker would otherwise
/// judge entries the node itself replaced). Also returns every line that was not a
/// frame and the subscriber's stderr, for a failure message.
fn read_log(gateway: &str, last: u64) -> (Vec<LogEntry>, Vec<String>) {
    let mut out: Vec<LogEntry> = Vec::new();
    let mut notes = Vec::new();
    if last == 0 {
        return (out, notes);
    }
    let mut child = Command::new(BIN)
        .args(["subscribe", "--transport", "ws", "--topic", "commits", "--from", "1"])
        .args(["--duration", "30", "--addr", gateway])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    struct Kill(Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let guard = Kill(child);
    let errors = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = std::io::Read::read_to_string(&mut { stderr }, &mut text);
        text
    });
    for line in BufReader::new(stdout).lines().map_while(Result::ok) {
        let Ok(v) = serde_json::from_str::<Value>(&line) else {
            notes.push(line);
            continue;
        };
        if let Some(from) = v["rewritten"]["from"].as_u64() {
            out.retain(|e| e.seq.0 < from);
            notes.push(line);
            continue;
        }
        if !push_frame(&v, &mut out) {
            notes.push(line);
            continue;
        }
        if out.last().is_some_and(|e| e.seq.0 >= last) {
            break;
        }
    }
    drop(guard);
    let stderr = errors.join().unwrap_or_default();
    if out.last().is_none_or(|e| e.seq.0 < last) {
        notes.push(format!("stopped before {last}; stderr: {stderr}"));
    }
    out.retain(|e| e.seq.0 <= last);
    (out, notes)
}

/// Appends the entries of a frame line of `strata subscribe` (one per sequence);
/// false if the line is not a frame.
fn push_frame(v: &Value, out: &mut Vec<LogEntry>) -> bool {
    let (Some(epoch), Some(ops)) = (v["epoch"].as_u64(), v["ops"].as_array()) else {
        return false;
    };
    for o in ops {
        let seq = o["seq"].as_u64().unwrap();
        let key = o["key"].as_str().unwrap_or_default();
        let value = o["value"].as_str().unwrap_or_default();
        let op = key
            .strip_prefix('k')
            .and_then(|n| n.parse().ok())
            .filter(|n: &u64| value == format!("op{n}"))
            .map(OpId);
        // The ws gateway and the TCP subscriber render an op alike (one renderer).
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (epoch, o.to_string()).hash(&mut h);
        out.push(LogEntry { seq: SeqNo(seq), epoch: Epoch(epoch), op, digest: h.finish() });
    }
    true
}

/// What the TCP follower printed, as it applies: entries (a `rewritten` notice takes
/// back what it names), ranges announced as gaps, and what broke the rules.
#[derive(Default)]
struct Followed {
    entries: Vec<LogEntry>,
    /// `from .. to` ranges announced by `{"gap":..}` lines.
    gaps: Vec<(u64, u64)>,
    rewinds: u64,
    /// A frame that did not continue right after the previous one (a duplicate, or a
    /// hole nothing announced).
    broken: Vec<String>,
    /// WARN lines of its stderr that say it moved to another node.
    moves: u64,
    stderr_tail: Vec<String>,
    ended: bool,
    /// Checks run, and entries compared with the cluster's log in all of them.
    checks: u64,
    compared: u64,
}

/// `strata subscribe --transport tcp --from 1` given every node's `[tcp]` address, for
/// the whole run: it follows the cluster through every fault, and each check compares
/// what it holds with the converged log.
struct TcpFollower {
    child: Child,
    state: Arc<Mutex<Followed>>,
}

impl Drop for TcpFollower {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TcpFollower {
    fn start(addrs: &[String]) -> TcpFollower {
        let mut child = Command::new(BIN)
            .args(["subscribe", "--transport", "tcp", "--payload", "commits-raw"])
            .args(["--topic", "commits", "--from", "1", "--addr", &addrs.join(",")])
            .env("STRATA_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let state = Arc::new(Mutex::new(Followed::default()));
        let (out, st) = (child.stdout.take().unwrap(), Arc::clone(&state));
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let mut f = st.lock().unwrap_or_else(PoisonError::into_inner);
                let Ok(v) = serde_json::from_str::<Value>(&line) else {
                    f.broken.push(format!("not JSON: {line}"));
                    continue;
                };
                if let Some(from) = v["rewritten"]["from"].as_u64() {
                    f.entries.retain(|e| e.seq.0 < from);
                    f.rewinds += 1;
                    continue;
                }
                if let (Some(from), Some(to)) = (v["gap"]["from"].as_u64(), v["gap"]["to"].as_u64())
                {
                    f.gaps.push((from, to));
                    continue;
                }
                let expected = f.entries.last().map_or(1, |e| e.seq.0 + 1);
                let mut fresh = Vec::new();
                if !push_frame(&v, &mut fresh) {
                    continue;
                }
                let first = fresh.first().map_or(expected, |e| e.seq.0);
                let announced = f.gaps.iter().any(|&(a, b)| a <= expected && first <= b);
                if first != expected && !(first > expected && announced) {
                    f.broken.push(format!("expected sequence {expected}, got {line}"));
                }
                f.entries.extend(fresh);
            }
            st.lock().unwrap_or_else(PoisonError::into_inner).ended = true;
        });
        let (err, st) = (child.stderr.take().unwrap(), Arc::clone(&state));
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut f = st.lock().unwrap_or_else(PoisonError::into_inner);
                if line.contains("moving on to the next server") {
                    f.moves += 1;
                }
                f.stderr_tail.push(line);
                let excess = f.stderr_tail.len().saturating_sub(20);
                f.stderr_tail.drain(..excess);
            }
        });
        TcpFollower { child, state }
    }

    /// Waits until the follower holds `last`, then compares what it holds with `log`
    /// (the converged log): the same entry at every sequence, except in ranges it was
    /// told were gaps. Returns the violations.
    fn check(&self, log: &[LogEntry], last: u64) -> Vec<String> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let mut f = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            let at = f.entries.last().map_or(0, |e| e.seq.0);
            if at >= last || f.ended || Instant::now() > deadline {
                let mut out: Vec<String> =
                    f.broken.iter().map(|b| format!("TcpFollowerBroken: {b}")).collect();
                if at < last {
                    out.push(format!(
                        "TcpFollowerBehind: it holds up to {at}, the cluster {last} (ended: {}); \
                         stderr: {:#?}",
                        f.ended, f.stderr_tail
                    ));
                }
                let held: BTreeMap<u64, &LogEntry> =
                    f.entries.iter().map(|e| (e.seq.0, e)).collect();
                let compared = log.iter().filter(|e| e.seq.0 <= last.min(at)).count() as u64;
                for want in log.iter().filter(|e| e.seq.0 <= last.min(at)) {
                    match held.get(&want.seq.0) {
                        Some(got) if got.epoch == want.epoch && got.digest == want.digest => {}
                        Some(got) => out.push(format!(
                            "TcpFollowerDiverged: at {} it holds epoch {} ({:?}), the cluster \
                             epoch {} ({:?}), and it was never told",
                            want.seq.0, got.epoch.0, got.op, want.epoch.0, want.op
                        )),
                        None if f.gaps.iter().any(|&(a, b)| a <= want.seq.0 && want.seq.0 < b) => {}
                        None => out.push(format!(
                            "TcpFollowerMissing: sequence {} never arrived and no gap said so",
                            want.seq.0
                        )),
                    }
                }
                drop(held);
                f.checks += 1;
                f.compared += compared;
                return out;
            }
            drop(f);
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn summary(&self) -> String {
        let f = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        format!(
            "{} entries held; {} checks compared {} entries with the cluster's log, all equal; \
             moved to another node {} times; {} rewritten notices; {} gaps",
            f.entries.len(),
            f.checks,
            f.compared,
            f.moves,
            f.rewinds,
            f.gaps.len()
        )
    }
}

#[test]
fn fault_rounds_against_real_processes() {
    let rounds = env_u64("STRATA_CLUSTER_ROUNDS").unwrap_or(DEFAULT_ROUNDS);
    let seed = env_u64("STRATA_CLUSTER_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    eprintln!(
        "cluster rounds: {rounds} rounds, seed {seed:#x} (replay: STRATA_CLUSTER_SEED={seed:#x})"
    );
    let started = Instant::now();
    let mut rng = Rng(seed);
    let names: Vec<String> = (1..=NODES).map(|i| format!("n{i}")).collect();
    let mut cluster = Cluster::new(&names);
    let shared = Arc::new(Shared {
        history: History::new(),
        names: names.clone(),
        clients: cluster.nodes.iter().map(|n| n.client.clone()).collect(),
        addr_of: cluster.addresses(),
        hint: AtomicUsize::new(0),
        gate: RwLock::new(()),
        stop: AtomicBool::new(false),
        acked: AtomicU64::new(0),
        observed: Mutex::new(Observed::default()),
        acked_no_epoch: Mutex::new(Vec::new()),
    });
    for i in 0..NODES {
        cluster.start(i);
    }
    let mut run = Run {
        cluster,
        shared: Arc::clone(&shared),
        seed,
        round: 0,
        fault: None,
        rewinds: std::cell::Cell::new(0),
        stuck: std::cell::Cell::new(0),
        follower: None,
    };
    run.wait_healthy();
    let tcp: Vec<String> = run.cluster.nodes.iter().map(|n| n.tcp.clone()).collect();
    run.follower = Some(TcpFollower::start(&tcp));
    let _clients = Clients {
        shared: Arc::clone(&shared),
        threads: (0..CLIENTS)
            .map(|_| {
                let s = Arc::clone(&shared);
                std::thread::spawn(move || client(&s))
            })
            .collect(),
    };

    let mut faults: BTreeMap<&'static str, u64> = BTreeMap::new();
    for round in 0..rounds {
        let fault = Fault::pick(&mut rng);
        run.round = round;
        run.fault = Some(fault);
        *faults.entry(fault.kind()).or_default() += 1;
        eprintln!("round {round}: {fault:?}");
        run.wait_progress(PROGRESS);
        run.inject(fault);
        run.cluster.heal();
        run.wait_healthy();
        run.wait_progress(PROGRESS);
        run.check(&format!("round {round} ({})", fault.kind()));
    }

    // A full restart: every node killed at once, all restarted.
    run.fault = None;
    eprintln!("full restart");
    {
        let _paused = shared.pause();
        for i in 0..NODES {
            run.cluster.kill9(i);
        }
        for i in 0..NODES {
            run.cluster.start(i);
        }
        run.wait_healthy();
    }
    run.wait_progress(PROGRESS);
    run.check("after the full restart");

    // Every acknowledged write reads back on every node.
    let _paused = shared.pause();
    let events = shared.history.events();
    let mut acked: Vec<OpId> = events
        .iter()
        .filter_map(|e| if let Event::Ok { op, .. } = e { Some(*op) } else { None })
        .collect();
    let no_epoch = shared.acked_no_epoch.lock().unwrap_or_else(PoisonError::into_inner).clone();
    acked.extend(&no_epoch);
    for n in &run.cluster.nodes {
        for op in &acked {
            let want = format!("VALUE op{}", op.0);
            match request(&n.client, &format!("GET k{}", op.0)) {
                Answer::Line(a) if a == want => {}
                other => {
                    let got = match other {
                        Answer::Line(a) | Answer::NotSent(a) | Answer::Lost(a) => a,
                    };
                    panic!("{}: k{} reads {got:?}, want {want:?}\n{}", n.name, op.0, run.context())
                }
            }
        }
    }
    let count = |f: fn(&Event) -> bool| events.iter().filter(|e| f(e)).count();
    if let Some(f) = &run.follower {
        eprintln!("tcp follower: {}", f.summary());
    }
    eprintln!(
        "cluster rounds summary: {rounds} rounds + a full restart in {:.1} s, seed {seed:#x}; \
         faults {faults:?}; {} writes invoked, {} acknowledged ({} without an epoch), {} \
         failed, {} unknown; {} promotions observed (each from the previous epoch's in-sync \
         set); {} commit-stream rewinds after a truncated tail; {} double failovers without an \
         eligible survivor; violations 0; every acknowledged write read back on all {NODES} \
         nodes",
        started.elapsed().as_secs_f64(),
        count(|e| matches!(e, Event::Invoke { .. })),
        acked.len(),
        no_epoch.len(),
        count(|e| matches!(e, Event::Fail { .. })),
        count(|e| matches!(e, Event::Unknown { .. })),
        shared.observed.lock().unwrap_or_else(PoisonError::into_inner).promotions,
        run.rewinds.get(),
        run.stuck.get(),
    );
}
