//! `strata bench failover`: how long a local cluster takes to notice that its primary
//! died and to acknowledge writes again, over several rounds of kill -9.
//!
//! The bench writes the configurations `strata cluster up` writes (sync mode,
//! `min_in_sync = nodes - 2`, a raft authority whose voters are the data nodes, the
//! lease settings of `[failover]` unless overridden) and starts every node as a child
//! process of its own (`strata serve`), in this process's process group: a guard kills
//! them on every way out, and a Ctrl-C or SIGTERM stops the bench, which then kills
//! them.
//!
//! A writer thread keeps one write in flight: `PUT` through the client protocol on a
//! persistent connection to the node it believes is primary, a fresh key each time.
//! A write is acknowledged when the answer is `OK <seq>` (in sync mode: durable on
//! the primary and on its in-sync set). On a refusal naming the primary it goes there;
//! on any other failure it tries the next node.
//!
//! Each round, once the cluster is steady (one primary with a lease, every other node
//! in the authority's in-sync set, the writer acknowledged on the primary):
//!
//! - t0: just before SIGKILL is sent to the primary's process;
//! - detection: t0 → the first status poll (every few ms, of every surviving node)
//!   that shows an authority record at a higher epoch than the killed primary's, i.e.
//!   the promotion of its successor is committed;
//! - failover: t0 → the writer's first acknowledgement from another node;
//! - rejoin (not a target): t0 → the restarted node is back in the authority's in-sync
//!   set (restarted as soon as failover is measured).
//!
//! After the rounds every acknowledged write is read back from the final primary; a
//! write missing or different there fails the bench.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;
use strata_replication::{AdminRequest, Status, admin_request};

use super::report::machine_description;
use crate::local_cluster::{Member, Timings, UpArgs, log_tail, spawn, write_configs};

/// Prefix of every key the writer writes.
const KEY_PREFIX: &str = "bench-failover-";
/// How often the surviving nodes' status is read while waiting for the new record.
const POLL: Duration = Duration::from_millis(5);
/// How long one status request may take.
const STATUS_TIMEOUT: Duration = Duration::from_millis(300);
/// The raft timings the nodes run with: the `[failover]` defaults unless overridden.
/// openraft 0.9 starts an election once the leader's lease (`election_timeout_max`)
/// and then the node's election timeout (drawn once per process from min..max) have
/// passed since it last heard from the leader.
fn raft_timings(t: &Timings) -> String {
    format!(
        "raft heartbeat {} ms, election timeout {}-{} ms",
        t.raft_heartbeat_ms.unwrap_or(crate::failover::DEFAULT_RAFT_HEARTBEAT_MS),
        t.election_timeout_min_ms.unwrap_or(crate::failover::DEFAULT_ELECTION_TIMEOUT_MIN_MS),
        t.election_timeout_max_ms.unwrap_or(crate::failover::DEFAULT_ELECTION_TIMEOUT_MAX_MS)
    )
}
/// Targets (reported against, not asserted).
const DETECTION_TARGET_MS: f64 = 1000.0;
const FAILOVER_P99_TARGET_MS: f64 = 2000.0;

/// Options of `strata bench failover`.
#[derive(Debug, Clone, clap::Args)]
pub struct FailoverArgs {
    /// Data nodes of the cluster (each a `strata serve` child process and a raft
    /// voter).
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Rounds of kill -9 of the primary.
    #[arg(long, default_value_t = 10)]
    pub rounds: usize,
    /// The failover policy. Only `raft` fails over by itself (`manual` waits for an
    /// operator).
    #[arg(long, default_value = "raft", value_parser = ["raft"])]
    pub policy: String,
    /// `[failover] heartbeat_ms` of every node.
    #[arg(long, default_value_t = Timings::default().heartbeat_ms)]
    pub heartbeat_ms: u64,
    /// `[failover] lease_ms` of every node.
    #[arg(long, default_value_t = Timings::default().lease_ms)]
    pub lease_ms: u64,
    /// `[failover] grace_ms` of every node.
    #[arg(long, default_value_t = Timings::default().grace_ms)]
    pub grace_ms: u64,
    /// `[failover] raft_heartbeat_ms` of every node (default: unset, 50).
    #[arg(long)]
    pub raft_heartbeat_ms: Option<u64>,
    /// `[failover] election_timeout_min_ms` of every node (default: unset, 150).
    #[arg(long)]
    pub election_timeout_min_ms: Option<u64>,
    /// `[failover] election_timeout_max_ms` of every node (default: unset, 300).
    #[arg(long)]
    pub election_timeout_max_ms: Option<u64>,
    /// How long the cluster may take to start, and each step of a round (a new
    /// record, a first write, a rejoin), before the bench fails, in seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
    /// Directory for the cluster (default: a temporary directory, removed afterwards;
    /// a given one is kept, with every node's log).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One round.
#[derive(Debug, Clone, Serialize)]
pub struct Round {
    /// 1-based.
    pub round: usize,
    /// The primary that was killed.
    pub killed: String,
    /// The primary the new record names.
    pub new_primary: String,
    /// The killed primary's epoch.
    pub epoch_before: u64,
    /// The new record's epoch.
    pub epoch_after: u64,
    /// The killed primary's lease as its last status before the kill showed it, in ms.
    pub lease_left_ms_at_kill: Option<u64>,
    /// t0 → a surviving node shows the record at a higher epoch.
    pub detection_ms: f64,
    /// t0 → the first write acknowledged by another node.
    pub failover_ms: f64,
    /// t0 → the restarted node is in the authority's in-sync set again.
    pub rejoin_ms: f64,
    /// Writes acknowledged between the end of the previous round and the end of this one.
    pub acknowledged: u64,
}

/// p50 / p99 / max of one measure, nearest rank.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Rounds measured.
    pub n: usize,
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl Summary {
    fn of(values: &[f64]) -> Self {
        let mut v: Vec<f64> = values.to_vec();
        v.sort_by(f64::total_cmp);
        let rank = |q: f64| -> f64 {
            if v.is_empty() {
                return f64::NAN;
            }
            // Nearest rank: the smallest value with at least q of the values at or below it.
            let r = (q * v.len() as f64).ceil() as usize;
            v[r.clamp(1, v.len()) - 1]
        };
        Self {
            n: v.len(),
            min_ms: v.first().copied().unwrap_or(f64::NAN),
            p50_ms: rank(0.50),
            p99_ms: rank(0.99),
            max_ms: v.last().copied().unwrap_or(f64::NAN),
        }
    }
}

/// The writer's totals and the read-back.
#[derive(Debug, Clone, Serialize)]
pub struct Writes {
    /// Writes acknowledged (`OK`).
    pub acknowledged: u64,
    /// Attempts that were not: refused by a replica, a broken connection, a timeout.
    pub not_acknowledged: u64,
    /// Acknowledged writes read back from the final primary with their value.
    pub verified: u64,
    /// Acknowledged writes missing or different there (the bench fails if any).
    pub lost: u64,
    /// The node the read-back asked.
    pub final_primary: String,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct FailoverReport {
    pub strata_version: &'static str,
    pub machine: String,
    pub load_before: String,
    pub load_after: String,
    pub dir: String,
    pub nodes: usize,
    pub policy: String,
    pub mode: &'static str,
    /// The `[failover]` lease settings of every node.
    pub timings: Timings,
    pub raft_timings: String,
    /// What detection and failover measure.
    pub definitions: Vec<&'static str>,
    pub rounds: Vec<Round>,
    pub detection: Summary,
    pub failover: Summary,
    pub rejoin: Summary,
    pub detection_target_ms: f64,
    pub failover_p99_target_ms: f64,
    /// detection p99 < target.
    pub detection_met: bool,
    /// failover p99 < target.
    pub failover_met: bool,
    pub writes: Writes,
    /// Epochs taken besides the one promotion each kill causes (within a round, or
    /// between rounds while nothing was killed): failovers nobody asked for, e.g. a
    /// grace too short for the machine's load.
    pub unplanned_epochs: u64,
}

/// Epochs beyond one per round: within each round and between consecutive rounds.
fn unplanned_epochs(rounds: &[Round]) -> u64 {
    let within: u64 =
        rounds.iter().map(|r| r.epoch_after.saturating_sub(r.epoch_before).saturating_sub(1)).sum();
    let between: u64 =
        rounds.windows(2).map(|w| w[1].epoch_before.saturating_sub(w[0].epoch_after)).sum();
    within + between
}

const DEFINITIONS: [&str; 4] = [
    "t0: just before SIGKILL is sent to the primary's process",
    "detection: t0 -> the first status poll (every 5 ms, of every surviving node) showing \
     the authority record at a higher epoch (the successor's promotion is committed)",
    "failover: t0 -> the first write acknowledged (OK, sync mode) by another node; one \
     write in flight, a fresh key per attempt, redirects followed",
    "rejoin: t0 -> the killed node, restarted once failover is measured, is back in the \
     authority's in-sync set",
];

/// A connection to a node's client address, one request line at a time.
struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn open(addr: &str, timeout: Duration) -> anyhow::Result<Conn> {
        let sock = addr
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {addr}"))?
            .next()
            .with_context(|| format!("{addr} resolves to nothing"))?;
        let stream = TcpStream::connect_timeout(&sock, Duration::from_millis(500))
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_read_timeout(Some(timeout)).context("configure the connection")?;
        stream.set_nodelay(true).context("configure the connection")?;
        let writer = stream.try_clone().context("configure the connection")?;
        Ok(Conn { reader: BufReader::new(stream), writer })
    }

    fn ask(&mut self, line: &str) -> anyhow::Result<String> {
        // One write: the request leaves in one segment.
        self.writer.write_all(format!("{line}\n").as_bytes()).context("send")?;
        let mut answer = String::new();
        self.reader.read_line(&mut answer).context("receive")?;
        if answer.is_empty() {
            bail!("the node closed the connection");
        }
        Ok(answer.trim_end().to_owned())
    }
}

fn value_of(id: u64) -> String {
    format!("v{id}")
}

/// What the writer did so far.
#[derive(Default)]
struct WriterLog {
    /// (key id, node index, when the acknowledgement arrived), in order.
    acked: Vec<(u64, usize, Instant)>,
    not_acknowledged: u64,
    last_error: Option<String>,
}

struct Writer {
    stop: AtomicBool,
    log: Mutex<WriterLog>,
}

impl Writer {
    /// The log (a panic elsewhere while holding it leaves it usable: it only grows).
    fn log(&self) -> MutexGuard<'_, WriterLog> {
        self.log.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The writer thread: one write in flight, following the primary.
fn write_loop(writer: &Writer, clients: &[String], replication: &[String], first: usize) {
    let n = clients.len();
    let mut conns: Vec<Option<Conn>> = (0..n).map(|_| None).collect();
    let mut target = first;
    let mut id = 0u64;
    while !writer.stop.load(Ordering::Acquire) {
        id += 1;
        let line = format!("PUT {KEY_PREFIX}{id} {}", value_of(id));
        let answer = match &mut conns[target] {
            Some(c) => c.ask(&line),
            None => Conn::open(&clients[target], Duration::from_secs(10)).and_then(|mut c| {
                let a = c.ask(&line);
                conns[target] = Some(c);
                a
            }),
        };
        match answer {
            Ok(a) if a.starts_with("OK ") => {
                writer.log().acked.push((id, target, Instant::now()));
                continue;
            }
            Ok(a) => {
                // A refusal naming the primary ("... write to the primary at ADDR").
                let named = a.rsplit(' ').next().and_then(|addr| {
                    replication.iter().position(|r| r == addr.trim_end_matches('.'))
                });
                let mut log = writer.log();
                log.not_acknowledged += 1;
                log.last_error = Some(a);
                drop(log);
                target = match named {
                    Some(j) if j != target => j,
                    _ => (target + 1) % n,
                };
            }
            Err(e) => {
                conns[target] = None;
                let mut log = writer.log();
                log.not_acknowledged += 1;
                log.last_error = Some(format!("{}: {e:#}", clients[target]));
                drop(log);
                target = (target + 1) % n;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The cluster's processes; every one still running is killed when it is dropped.
struct Procs {
    members: Vec<Member>,
    children: Vec<Option<Child>>,
}

impl Procs {
    fn start(&mut self, i: usize) -> anyhow::Result<()> {
        let child = spawn(&self.members[i], false)?;
        self.members[i].pid = Some(child.id());
        self.children[i] = Some(child);
        Ok(())
    }

    /// SIGKILL to node `i`; returns the moment just before it was sent.
    fn kill(&mut self, i: usize) -> anyhow::Result<Instant> {
        let mut child = self.children[i]
            .take()
            .with_context(|| format!("{} is not running", self.members[i].name))?;
        let t0 = Instant::now();
        child.kill().with_context(|| format!("cannot kill {}", self.members[i].name))?;
        child.wait().with_context(|| format!("cannot reap {}", self.members[i].name))?;
        Ok(t0)
    }

    /// An error naming the first node that exited by itself, with the end of its log.
    fn check(&mut self) -> anyhow::Result<()> {
        for (i, c) in self.children.iter_mut().enumerate() {
            let Some(child) = c else { continue };
            if let Some(status) = child.try_wait().context("cannot check a node")? {
                let m = &self.members[i];
                bail!(
                    "{} exited by itself ({status}); the end of {}:\n{}",
                    m.name,
                    m.log.display(),
                    log_tail(&m.log, 3000)
                );
            }
        }
        Ok(())
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for child in self.children.iter_mut().filter_map(Option::take) {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn status(addr: &str) -> Option<Status> {
    let text = admin_request(addr, AdminRequest::Status, STATUS_TIMEOUT).ok()?;
    serde_json::from_str(&text).ok()
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Set once Ctrl-C or SIGTERM arrives.
fn watch_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the signal runtime")?;
    let signals = {
        let _entered = rt.enter();
        crate::serve::StopSignals::install()?
    };
    let set = Arc::clone(&flag);
    std::thread::Builder::new()
        .name("strata-bench-signals".into())
        .spawn(move || {
            rt.block_on(signals.wait(None));
            set.store(true, Ordering::Release);
        })
        .context("cannot start the signal thread")?;
    Ok(flag)
}

/// The state of a run: the processes, the writer, the deadline of each wait.
struct Bench<'a> {
    procs: Procs,
    writer: &'a Writer,
    interrupted: Arc<AtomicBool>,
    timeout: Duration,
    bar: ProgressBar,
}

impl Bench<'_> {
    /// Polls `probe` every `every` until it returns `Some`, failing after the timeout,
    /// when a node exits by itself, or on Ctrl-C / SIGTERM.
    fn wait_for<T>(
        &mut self,
        what: &str,
        every: Duration,
        mut probe: impl FnMut(&mut Self) -> Option<T>,
    ) -> anyhow::Result<T> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(v) = probe(self) {
                return Ok(v);
            }
            if self.interrupted.load(Ordering::Acquire) {
                bail!("interrupted while waiting for {what}");
            }
            self.procs.check()?;
            if Instant::now() >= deadline {
                let (last, acks) = {
                    let log = self.writer.log();
                    let acks = match log.acked.last() {
                        Some((_, node, at)) => format!(
                            "{} acknowledged, the last {:.0} ms ago by {}",
                            log.acked.len(),
                            at.elapsed().as_secs_f64() * 1000.0,
                            self.procs.members[*node].name
                        ),
                        None => "none acknowledged".to_owned(),
                    };
                    (log.last_error.clone(), acks)
                };
                bail!(
                    "timed out after {:?} waiting for {what} (writes: {acks}; the writer's last \
                     error: {}); the nodes now:\n{}the nodes' logs are under {}",
                    self.timeout,
                    last.as_deref().unwrap_or("none"),
                    self.describe(),
                    self.procs.members[0].log.parent().map_or_else(
                        || "the cluster directory".into(),
                        |p| p.parent().unwrap_or(p).display().to_string()
                    )
                );
            }
            std::thread::sleep(every);
        }
    }

    /// Every node's state in a few lines, for an error message.
    fn describe(&self) -> String {
        let mut out = String::new();
        for (i, m) in self.procs.members.iter().enumerate() {
            let state = if self.procs.children[i].is_none() {
                "not running".to_owned()
            } else if let Some(s) = status(self.replication(i)) {
                let replicas: Vec<String> = s
                    .replicas
                    .iter()
                    .map(|r| {
                        format!(
                            "{} connected {} in-sync {} acked {}",
                            r.name, r.connected, r.in_sync, r.acked
                        )
                    })
                    .collect();
                format!(
                    "{} epoch {} last seq {} durable {}; record v{} epoch {} primary {} \
                     in-sync {:?}; lease {:?} ms; replicas [{}]; last error {:?}; failover \
                     error {:?}",
                    s.role,
                    s.epoch,
                    s.last_seq,
                    s.durable_seq,
                    s.authority_version,
                    s.authority_epoch,
                    s.authority_primary.as_deref().unwrap_or("-"),
                    s.in_sync,
                    s.lease_remaining_millis,
                    replicas.join("; "),
                    s.last_error,
                    s.failover_error
                )
            } else {
                "no status answer".to_owned()
            };
            out.push_str(&format!("  {}: {state}\n", m.name));
        }
        out
    }

    fn replication(&self, i: usize) -> &str {
        self.procs.members[i].replication.as_deref().unwrap_or_default()
    }

    /// The node that is primary with a lease, the authority agreeing, and its status.
    fn primary(&self) -> Option<(usize, Status)> {
        (0..self.procs.members.len()).find_map(|i| {
            self.procs.children[i].as_ref()?;
            let s = status(self.replication(i))?;
            let name = &self.procs.members[i].name;
            (s.role == "primary"
                && s.lease_remaining_millis.is_some_and(|l| l > 0)
                && s.authority_primary.as_deref() == Some(name.as_str()))
            .then_some((i, s))
        })
    }

    /// Waits until one primary holds a lease, every other node is in its in-sync set,
    /// and the writer's last acknowledgement came from it after `since`.
    fn steady(&mut self, since: Instant) -> anyhow::Result<(usize, Status)> {
        let n = self.procs.members.len();
        self.wait_for("a steady cluster", Duration::from_millis(20), |b| {
            let (p, s) = b.primary()?;
            let all_in_sync = (0..n)
                .filter(|&i| i != p)
                .all(|i| s.in_sync.iter().any(|m| *m == b.procs.members[i].name));
            let log = b.writer.log();
            let acked_here =
                log.acked.last().is_some_and(|(_, node, at)| *node == p && *at > since);
            (all_in_sync && acked_here).then_some((p, s))
        })
    }

    fn round(&mut self, number: usize) -> anyhow::Result<Round> {
        let acked_before = self.writer.log().acked.len();
        let (p, before) = self.steady(Instant::now())?;
        let killed = self.procs.members[p].name.clone();
        self.bar.set_message(format!("round {number}: kill -9 {killed}"));
        let from = self.writer.log().acked.len();
        let t0 = self.procs.kill(p)?;

        // Detection and failover, watched together.
        let survivors: Vec<usize> = (0..self.procs.members.len()).filter(|&i| i != p).collect();
        let mut detected: Option<(Duration, String, u64)> = None;
        let mut failed_over: Option<Duration> = None;
        self.wait_for(
            "a new authority record and a write acknowledged by another node",
            POLL,
            |b| {
                if detected.is_none() {
                    detected = survivors.iter().find_map(|&i| {
                        let s = status(b.replication(i))?;
                        (s.authority_epoch > before.epoch).then(|| {
                            (
                                t0.elapsed(),
                                s.authority_primary.unwrap_or_default(),
                                s.authority_epoch,
                            )
                        })
                    });
                }
                if failed_over.is_none() {
                    let log = b.writer.log();
                    failed_over = log.acked[from..]
                        .iter()
                        .find(|(_, node, at)| *node != p && *at > t0)
                        .map(|(_, _, at)| at.duration_since(t0));
                }
                match (&detected, failed_over) {
                    (Some(d), Some(f)) => Some((d.clone(), f)),
                    _ => None,
                }
            },
        )
        .map(|_| ())?;
        let (detection, new_primary, epoch_after) =
            detected.context("detection was not measured")?;
        let failover = failed_over.context("failover was not measured")?;

        self.bar.set_message(format!("round {number}: {killed} restarts and catches up"));
        self.procs.start(p)?;
        let new = survivors
            .iter()
            .copied()
            .find(|&i| self.procs.members[i].name == new_primary)
            .with_context(|| format!("the new record names {new_primary}, not a survivor"))?;
        let rejoin = self.wait_for(
            &format!("{killed} to rejoin the in-sync set"),
            Duration::from_millis(20),
            |b| {
                let s = status(b.replication(new))?;
                s.in_sync.contains(&killed).then(|| t0.elapsed())
            },
        )?;
        let acked = self.writer.log().acked.len() - acked_before;
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        Ok(Round {
            round: number,
            killed,
            new_primary,
            epoch_before: before.epoch,
            epoch_after,
            lease_left_ms_at_kill: before.lease_remaining_millis,
            detection_ms: ms(detection),
            failover_ms: ms(failover),
            rejoin_ms: ms(rejoin),
            acknowledged: acked as u64,
        })
    }
}

/// Reads every acknowledged write back from the node at `client`: (verified, lost,
/// the first few lost).
fn read_back(client: &str, acked: &[(u64, usize, Instant)]) -> anyhow::Result<(u64, u64, String)> {
    let mut conn = Conn::open(client, Duration::from_secs(10))?;
    let (mut verified, mut lost) = (0u64, 0u64);
    let mut examples = Vec::new();
    for (id, node, _) in acked {
        let answer = conn
            .ask(&format!("GET {KEY_PREFIX}{id}"))
            .with_context(|| format!("reading back {KEY_PREFIX}{id} from {client}"))?;
        if answer.strip_prefix("VALUE ") == Some(value_of(*id).as_str()) {
            verified += 1;
        } else {
            lost += 1;
            if examples.len() < 5 {
                examples.push(format!(
                    "{KEY_PREFIX}{id} (acknowledged by node {}): {answer}",
                    node + 1
                ));
            }
        }
    }
    Ok((verified, lost, examples.join("; ")))
}

/// Runs the bench and prints its report.
pub fn run(args: &FailoverArgs) -> anyhow::Result<()> {
    anyhow::ensure!((2..=9).contains(&args.nodes), "--nodes must be 2 to 9");
    anyhow::ensure!(args.rounds >= 1, "--rounds must be at least 1");
    let timings = Timings {
        heartbeat_ms: args.heartbeat_ms,
        lease_ms: args.lease_ms,
        grace_ms: args.grace_ms,
        raft_heartbeat_ms: args.raft_heartbeat_ms,
        election_timeout_min_ms: args.election_timeout_min_ms,
        election_timeout_max_ms: args.election_timeout_max_ms,
    };
    strata_core::LeaseSettings::new(
        Duration::from_millis(timings.heartbeat_ms),
        Duration::from_millis(timings.lease_ms),
        Duration::from_millis(timings.grace_ms),
    )
    .context("--heartbeat-ms < --lease-ms < --grace-ms")?;
    let interrupted = watch_signals()?;
    let (_temp, root) = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            anyhow::ensure!(
                std::fs::read_dir(d)
                    .with_context(|| format!("reading {}", d.display()))?
                    .next()
                    .is_none(),
                "{} is not empty; pass an empty --dir",
                d.display()
            );
            (None, d.clone())
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("strata-bench-failover-")
                .tempdir_in(std::env::current_dir().unwrap_or_else(|_| std::env::temp_dir()))
                .context("creating a temporary directory for the cluster")?;
            let root = temp.path().to_path_buf();
            (Some(temp), root)
        }
    };
    let load_before = loadavg();
    let up = UpArgs {
        nodes: args.nodes,
        dir: root.join("cluster"),
        mode: "sync".into(),
        base_port: None,
        witness: false,
        timeout_secs: args.timeout_secs,
    };
    let file = write_configs(&up, timings)?;
    let n = file.members.len();
    let clients: Vec<String> =
        file.members.iter().map(|m| m.client.clone().unwrap_or_default()).collect();
    let replication: Vec<String> =
        file.members.iter().map(|m| m.replication.clone().unwrap_or_default()).collect();

    let bar = ProgressBar::new(args.rounds as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} rounds {msg} ({elapsed})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(Duration::from_millis(120));
    bar.set_message("starting the cluster");

    let writer = Writer { stop: AtomicBool::new(false), log: Mutex::new(WriterLog::default()) };
    let mut bench = Bench {
        procs: Procs { members: file.members, children: (0..n).map(|_| None).collect() },
        writer: &writer,
        interrupted,
        timeout: Duration::from_secs(args.timeout_secs.max(1)),
        bar: bar.clone(),
    };
    let outcome = std::thread::scope(|s| -> anyhow::Result<(Vec<Round>, Writes)> {
        let result = (|| -> anyhow::Result<(Vec<Round>, Writes)> {
            for i in 0..n {
                bench.procs.start(i)?;
            }
            let (first, _) =
                bench.wait_for("a primary with a lease", Duration::from_millis(50), |b| {
                    b.primary()
                })?;
            let (clients, replication, w) = (&clients, &replication, &writer);
            let handle = s.spawn(move || write_loop(w, clients, replication, first));
            let mut rounds = Vec::new();
            for r in 1..=args.rounds {
                rounds.push(bench.round(r)?);
                bench.bar.inc(1);
            }
            bench.bar.set_message("reading every acknowledged write back");
            writer.stop.store(true, Ordering::Release);
            // Its last write is answered (or times out) before it returns.
            handle.join().map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
            let (p, _) =
                bench.wait_for("the final primary", Duration::from_millis(20), |b| b.primary())?;
            let log = writer.log();
            let (verified, lost, examples) = read_back(&clients[p], &log.acked)?;
            let writes = Writes {
                acknowledged: log.acked.len() as u64,
                not_acknowledged: log.not_acknowledged,
                verified,
                lost,
                final_primary: bench.procs.members[p].name.clone(),
            };
            anyhow::ensure!(
                lost == 0,
                "{lost} of {} acknowledged writes are missing or different on the final \
                 primary {}: {examples}",
                writes.acknowledged,
                writes.final_primary
            );
            Ok((rounds, writes))
        })();
        writer.stop.store(true, Ordering::Release);
        result
    });
    bar.finish_and_clear();
    // Every node is killed before the report is printed (and on an error).
    drop(bench);
    let (rounds, writes) = outcome?;
    let col = |f: fn(&Round) -> f64| -> Vec<f64> { rounds.iter().map(f).collect() };
    let detection = Summary::of(&col(|r| r.detection_ms));
    let failover = Summary::of(&col(|r| r.failover_ms));
    let rejoin = Summary::of(&col(|r| r.rejoin_ms));
    let report = FailoverReport {
        strata_version: env!("CARGO_PKG_VERSION"),
        machine: machine_description(),
        load_before,
        load_after: loadavg(),
        dir: root.display().to_string(),
        nodes: args.nodes,
        policy: args.policy.clone(),
        mode: "sync",
        timings,
        raft_timings: raft_timings(&timings),
        definitions: DEFINITIONS.to_vec(),
        detection_met: detection.p99_ms < DETECTION_TARGET_MS,
        failover_met: failover.p99_ms < FAILOVER_P99_TARGET_MS,
        unplanned_epochs: unplanned_epochs(&rounds),
        detection,
        failover,
        rejoin,
        detection_target_ms: DETECTION_TARGET_MS,
        failover_p99_target_ms: FAILOVER_P99_TARGET_MS,
        rounds,
        writes,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report).context("encode the report")?);
    } else {
        report.print_table();
    }
    Ok(())
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

impl FailoverReport {
    /// Prints the report as a table.
    pub fn print_table(&self) {
        let t = &self.timings;
        println!(
            "strata bench failover {} — {} data nodes on loopback, policy {}, mode {}, kill -9 of the primary",
            self.strata_version, self.nodes, self.policy, self.mode
        );
        println!("machine: {}   load {} → {}", self.machine, self.load_before, self.load_after);
        println!(
            "[failover] heartbeat {} ms, lease {} ms, grace {} ms; {}",
            t.heartbeat_ms, t.lease_ms, t.grace_ms, self.raft_timings
        );
        println!(
            "by design: detection ≥ grace ({} ms: a replica acts on the primary's silence), \
             failover ≥ grace + lease ({} ms: the new primary acknowledges nothing until the \
             old lease must have run out)",
            t.grace_ms,
            t.grace_ms + t.lease_ms
        );
        for d in &self.definitions {
            println!("  {d}");
        }
        println!("dir: {}", self.dir);
        println!();
        println!(
            "{:>5} {:>7} {:>7} {:>11} {:>13} {:>12} {:>11} {:>9} {:>7}",
            "round",
            "killed",
            "new",
            "epoch",
            "lease@kill ms",
            "detection ms",
            "failover ms",
            "rejoin ms",
            "writes"
        );
        for r in &self.rounds {
            println!(
                "{:>5} {:>7} {:>7} {:>11} {:>13} {:>12.1} {:>11.1} {:>9.1} {:>7}",
                r.round,
                r.killed,
                r.new_primary,
                format!("{} → {}", r.epoch_before, r.epoch_after),
                r.lease_left_ms_at_kill.map_or_else(|| "-".into(), |l| l.to_string()),
                r.detection_ms,
                r.failover_ms,
                r.rejoin_ms,
                r.acknowledged
            );
        }
        println!();
        println!(
            "{:<10} {:>6} {:>9} {:>9} {:>9} {:>9}",
            "", "rounds", "min ms", "p50 ms", "p99 ms", "max ms"
        );
        for (name, s) in
            [("detection", &self.detection), ("failover", &self.failover), ("rejoin", &self.rejoin)]
        {
            println!(
                "{:<10} {:>6} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                name, s.n, s.min_ms, s.p50_ms, s.p99_ms, s.max_ms
            );
        }
        println!();
        println!(
            "detection p99 {:.1} ms — target < {:.0} ms: {}",
            self.detection.p99_ms,
            self.detection_target_ms,
            verdict(self.detection_met)
        );
        println!(
            "failover p99 {:.1} ms — target < {:.0} ms: {}",
            self.failover.p99_ms,
            self.failover_p99_target_ms,
            verdict(self.failover_met)
        );
        let w = &self.writes;
        println!(
            "writes: {} acknowledged ({} attempts not acknowledged), {} read back from the final \
             primary {}, {} lost",
            w.acknowledged, w.not_acknowledged, w.verified, w.final_primary, w.lost
        );
        println!(
            "unplanned epochs (failovers besides the {} kills): {}",
            self.rounds.len(),
            self.unplanned_epochs
        );
        if self.rounds.len() < 100 {
            println!("(p99 of fewer than 100 rounds is the slowest round)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let s = Summary::of(&[5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!((s.n, s.min_ms, s.p50_ms, s.p99_ms, s.max_ms), (5, 1.0, 3.0, 5.0, 5.0));
        let v: Vec<f64> = (1..=200).map(f64::from).collect();
        let s = Summary::of(&v);
        assert_eq!((s.p50_ms, s.p99_ms, s.max_ms), (100.0, 198.0, 200.0));
        let s = Summary::of(&[7.0]);
        assert_eq!((s.p50_ms, s.p99_ms), (7.0, 7.0));
        assert!(Summary::of(&[]).p50_ms.is_nan());
    }

    fn round(epoch_before: u64, epoch_after: u64) -> Round {
        Round {
            round: 1,
            killed: "n1".into(),
            new_primary: "n2".into(),
            epoch_before,
            epoch_after,
            lease_left_ms_at_kill: None,
            detection_ms: 1.0,
            failover_ms: 1.0,
            rejoin_ms: 1.0,
            acknowledged: 1,
        }
    }

    #[test]
    fn unplanned_epochs_count_every_promotion_besides_the_kills() {
        assert_eq!(unplanned_epochs(&[round(1, 2), round(2, 3), round(3, 4)]), 0);
        // A second promotion inside round 2, a spurious one before round 3.
        assert_eq!(unplanned_epochs(&[round(1, 2), round(2, 4), round(5, 6)]), 2);
        assert_eq!(unplanned_epochs(&[]), 0);
    }
}
