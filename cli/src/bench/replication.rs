//! `strata bench replication`: primary → replica figures in one run, on loopback TCP,
//! with real stores of the default stack in a temporary directory.
//!
//! 1. Async lag — a primary in `Mode::Async` and one replica; writers commit batches of
//!    the exchange workload through `Node::write` (durable on the primary). A thread
//!    reads the replica's `visible_seq` every 20 µs (or, with `--lag-watch log`, tails
//!    its commit log with `read_log_from_with(.., LogBound::Visible)` and `wait_next`)
//!    and timestamps each sequence as it becomes visible there. The lag of
//!    a batch is that timestamp minus the moment the primary's write returned (0 when
//!    the replica had it first; those are counted). Run with 1 writer and with
//!    `--writers`.
//! 2. Sync write latency — a primary in `Mode::Sync` (`min_in_sync` 1) with one in-sync
//!    replica, 1 writer, one entry per write, against a plain store written with
//!    `Durability::Sync` in the same run. The two sides alternate (single, node, node,
//!    single; each half of `--seconds`) so drift of the disk and of the machine's load
//!    hits both alike; the figure is the ratio of the p50s.
//! 3. Group commit — the same pair with `--writers` threads committing `--batch`
//!    entries per write; the figure is the ratio of writes per second.
//! 4. Catch-up — a primary with small memtables is loaded with `--catchup-mib` MiB of
//!    keys+values (Buffered writes on its store: the load is not measured), flushed and
//!    settled so its WAL no longer holds sequence 1; then a fresh replica starts and is
//!    timed until it has received the primary's checkpoint (`Status::bootstraps`),
//!    installed and opened it, and shows the primary's last sequence. The rate is the
//!    size of the store the replica ends up with over that time.
//!
//! Before phase 2 a probe times `write + fdatasync` on the stores' disk alone and with
//! a second one running at once on another file: both stores share that disk here, so
//! its overlap ratio bounds what the sync-mode ratio can reach on this machine.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use serde::Serialize;
use strata_bench::workload::{ExchangeWorkload, WorkloadConfig};
use strata_core::{Db, Durability, LogBound, SeqNo, WriteBatch};
use strata_plugins::OptionValue;
use strata_replication::{Mode, Node, NodeConfig, OpenStore, RoleConfig};

use super::Stack;
use super::phases::progress;
use super::report::{Latency, machine_description};

/// How long setting up a node pair (connection, joining the in-sync set) may take.
const SETUP_LIMIT: Duration = Duration::from_secs(60);

/// Options of `strata bench replication`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReplicationArgs {
    /// Directory for the stores (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Duration of each timed write phase, in seconds (the sync comparisons run each
    /// side twice for half as long: single, node, node, single).
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Writer threads of the many-writer async-lag phase and of the group-commit
    /// comparison.
    #[arg(long, default_value_t = 16)]
    pub writers: usize,
    /// Entries per write in the async-lag and group-commit phases (a matching engine
    /// commits the events of one match together). The 1-writer sync latency
    /// comparison writes one entry per write.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// MiB of keys+values written into the primary before a fresh replica bootstraps
    /// from its checkpoint (0 skips the catch-up phase).
    #[arg(long, default_value_t = 128)]
    pub catchup_mib: u64,
    /// Memtable size of the catch-up primary, in MiB (small, so its WAL is flushed
    /// and deleted and the new replica has to bootstrap from a checkpoint).
    #[arg(long, default_value_t = 8)]
    pub catchup_memtable_mib: u64,
    /// WAL segment size of the catch-up primary, in MiB (the file WAL's default is 64;
    /// a segment is deleted only once flushed and closed, so the load must span
    /// several).
    #[arg(long, default_value_t = 64)]
    pub catchup_segment_mib: u64,
    /// How the async-lag phase sees what the replica applied: `poll` reads
    /// `visible_seq` every 20 µs; `log` tails the replica's commit log
    /// (`LogBound::Visible`, `wait_next`), woken by each batch but reading every batch
    /// back from the WAL — each tail read of the file WAL's reader zeroes and reads a
    /// 1 MiB buffer, which on 2 cores slows the replica it measures.
    #[arg(long, value_enum, default_value_t = LagWatch::Poll)]
    pub lag_watch: LagWatch,
    /// Value size in bytes (default: the exchange mix of 100–300 B).
    #[arg(long)]
    pub value_size: Option<usize>,
    /// Workload seed.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// How the async-lag phase watches the replica (`--lag-watch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LagWatch {
    /// A commit-log reader on the replica, woken as each batch becomes visible.
    Log,
    /// `Db::visible_seq` read every 20 µs.
    Poll,
}

/// Phase 1, for one writer count.
#[derive(Debug, Clone, Serialize)]
pub struct Lag {
    /// The primary's write latency and throughput during the phase.
    pub primary_write: Latency,
    /// Per batch: replica visible − primary's write returned.
    pub lag: Latency,
    /// Batches the replica showed before the primary's write call had returned (lag 0).
    pub replica_first: u64,
    /// From the last write returning to the replica showing it, in ms: how far behind
    /// the replica was when the writers stopped.
    pub drain_ms: f64,
    /// How the replica was watched.
    pub watch: LagWatch,
}

/// Phases 2 and 3: the sync-mode node against a single store with `Durability::Sync`.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The plain store, `Durability::Sync`.
    pub single: Latency,
    /// The `Mode::Sync` primary with one in-sync replica.
    pub node: Latency,
    /// node p50 / single p50.
    pub p50_ratio: f64,
    /// node writes/s / single writes/s.
    pub throughput_ratio: f64,
}

/// Phase 4.
#[derive(Debug, Clone, Serialize)]
pub struct CatchUp {
    /// Keys+values written into the primary, MiB.
    pub written_mib: f64,
    /// Batches written.
    pub batches: u64,
    /// The primary's last sequence, which the replica had to reach.
    pub primary_last_seq: u64,
    /// Files and bytes of the primary's store directory once settled.
    pub primary_store_mib: f64,
    /// Bytes of the replica's store directory once caught up (what was transferred).
    pub transferred_mib: f64,
    /// From starting the replica to it showing the primary's last sequence.
    pub seconds: f64,
    /// transferred bytes / seconds, in MB/s (10^6 bytes).
    pub mb_per_sec: f64,
    /// Checkpoints the primary sent.
    pub bootstraps: u64,
    /// The primary's memtable size, MiB.
    pub memtable_mib: u64,
    /// The primary's WAL segment size, MiB.
    pub segment_mib: u64,
}

/// What the one disk under both stores does with two fdatasyncs at once: on one
/// machine the primary's and the replica's flushes meet in the same device queue,
/// which two hosts would not share.
#[derive(Debug, Clone, Serialize)]
pub struct DiskOverlap {
    /// p50 of `write(256 B) + fdatasync` on one preallocated file, alone.
    pub alone_p50_us: f64,
    /// The same, two threads on two files at once (p50 over both).
    pub together_p50_us: f64,
    /// together / alone: the least the sync-mode ratio can be on this disk.
    pub ratio: f64,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicationReport {
    pub strata_version: &'static str,
    pub stack: String,
    pub machine: String,
    pub load_before: String,
    pub load_after: String,
    pub dir: String,
    pub value_size: String,
    pub seed: u64,
    pub phase_seconds: f64,
    /// Phase 1: with 1 writer, then with `--writers`.
    pub async_lag: Vec<Lag>,
    /// Phase 2.
    pub sync_latency: Comparison,
    /// Phase 3.
    pub group_commit: Comparison,
    /// Phase 4 (absent with `--catchup-mib 0`).
    pub catchup: Option<CatchUp>,
    /// The disk's own overlap of two fdatasyncs, measured before phase 2.
    pub disk_overlap: DiskOverlap,
}

/// `threads` threads, each on a file of its own in `dir`, time `write(256 B) +
/// fdatasync` over and over for `secs`; the p50 over all of them, in µs.
fn fdatasync_p50(dir: &Path, threads: usize, secs: f64) -> anyhow::Result<f64> {
    use std::os::unix::fs::FileExt;
    let until = Instant::now() + Duration::from_secs_f64(secs);
    let hists = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || -> anyhow::Result<Histogram<u64>> {
                    let path = dir.join(format!("fdatasync-probe-{t}"));
                    let file = std::fs::OpenOptions::new()
                        .create(true)
                        .truncate(true)
                        .read(true)
                        .write(true)
                        .open(&path)
                        .with_context(|| format!("creating {}", path.display()))?;
                    // Preallocated and synced once, as the WAL's segments are, so each
                    // fdatasync flushes data only.
                    file.write_all_at(&vec![0u8; 4 << 20], 0)?;
                    file.sync_all()?;
                    let mut hist = histogram()?;
                    let mut offset = 0u64;
                    while Instant::now() < until {
                        let t0 = Instant::now();
                        file.write_all_at(&[0x5a; 256], offset)?;
                        file.sync_data()?;
                        hist.record(t0.elapsed().as_nanos().max(1) as u64)?;
                        offset = (offset + 256) % (4 << 20);
                    }
                    drop(file);
                    std::fs::remove_file(&path).ok();
                    Ok(hist)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow::anyhow!("fdatasync probe thread panicked"))?)
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let mut all = histogram()?;
    for h in &hists {
        all.add(h)?;
    }
    Ok(all.value_at_quantile(0.5) as f64 / 1000.0)
}

fn disk_overlap(dir: &Path) -> anyhow::Result<DiskOverlap> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let alone_p50_us = fdatasync_p50(dir, 1, 1.0)?;
    let together_p50_us = fdatasync_p50(dir, 2, 1.0)?;
    Ok(DiskOverlap {
        alone_p50_us,
        together_p50_us,
        ratio: together_p50_us / alone_p50_us.max(0.001),
    })
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn any_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Opens stores of `stack` in `dir` (as a replica when asked), with `memtable` bytes
/// of memtable when given.
fn opener(stack: &Stack, dir: &Path, memtable: Option<usize>) -> OpenStore {
    let (config, dir) = (stack.config.clone(), dir.to_path_buf());
    Arc::new(move |replica_of: Option<String>| {
        let mut b = config.builder(&dir).map_err(|e| strata_core::Error::Config(e.to_string()))?;
        if let Some(m) = memtable {
            b.options_mut().memtable_size_bytes = m;
        }
        b.options_mut().replica_of = replica_of;
        b.open()
    })
}

fn start_primary(
    stack: &Stack,
    dir: &Path,
    mode: Mode,
    memtable: Option<usize>,
) -> anyhow::Result<Node> {
    let mut c = NodeConfig::new("primary", any_port(), RoleConfig::Primary);
    c.mode = mode;
    c.min_in_sync = 1;
    Node::start(c, dir, opener(stack, dir, memtable))
        .with_context(|| format!("starting a primary in {}", dir.display()))
}

fn start_replica(
    stack: &Stack,
    dir: &Path,
    primary: SocketAddr,
    memtable: Option<usize>,
) -> anyhow::Result<Node> {
    let mut c = NodeConfig::new(
        "replica",
        any_port(),
        RoleConfig::Replica { primary: primary.to_string() },
    );
    c.reconnect = Duration::from_millis(50);
    Node::start(c, dir, opener(stack, dir, memtable))
        .with_context(|| format!("starting a replica in {}", dir.display()))
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while !done() {
        anyhow::ensure!(Instant::now() < deadline, "timed out after {limit:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
    Ok(())
}

/// What a timed group of writers did.
struct Run {
    hist: Histogram<u64>,
    ops: u64,
    elapsed: Duration,
    /// (last sequence of the batch, when its write returned), when asked for.
    returns: Vec<(u64, Instant)>,
    last_seq: u64,
}

/// One writer thread's latencies, writes, returns and last sequence.
type WriterResult = (Histogram<u64>, u64, Vec<(u64, Instant)>, u64);

type WriteFn<'a> = &'a (dyn Fn(&WriteBatch) -> anyhow::Result<SeqNo> + Sync);

/// Options of one timed write run.
struct RunSpec<'a> {
    label: &'a str,
    threads: usize,
    batch: usize,
    limit: Duration,
    /// Distinguishes the runs' generators (seeds and writer indices).
    phase: usize,
    keep_returns: bool,
}

fn run_writers(
    args: &ReplicationArgs,
    spec: &RunSpec<'_>,
    write: WriteFn<'_>,
) -> anyhow::Result<Run> {
    let bar = progress(spec.limit.as_millis() as u64, spec.label);
    let started = Instant::now();
    let deadline = started + spec.limit;
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = (0..spec.threads)
            .map(|t| {
                let bar = bar.clone();
                let config = WorkloadConfig {
                    seed: args.seed ^ ((spec.phase as u64) << 32),
                    value_size: args.value_size,
                    ..WorkloadConfig::default()
                };
                let writer_index = spec.phase * 64 + t;
                let (batch, keep) = (spec.batch, spec.keep_returns);
                s.spawn(move || -> anyhow::Result<WriterResult> {
                    let mut wl = ExchangeWorkload::for_writer(config, writer_index);
                    let mut hist = histogram()?;
                    let mut returns = Vec::new();
                    let mut b = WriteBatch::with_capacity(batch * 320);
                    let (mut ops, mut last) = (0u64, 0u64);
                    loop {
                        let now = Instant::now();
                        if now >= deadline {
                            break;
                        }
                        b.clear();
                        wl.fill_batch(&mut b, batch);
                        let t0 = Instant::now();
                        let seq = write(&b)?;
                        let t1 = Instant::now();
                        hist.record(t1.duration_since(t0).as_nanos().max(1) as u64)?;
                        if keep {
                            returns.push((seq.0, t1));
                        }
                        last = last.max(seq.0);
                        ops += 1;
                        if t == 0 && ops % 8 == 0 {
                            bar.set_position(started.elapsed().as_millis() as u64);
                        }
                    }
                    Ok((hist, ops, returns, last))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| anyhow::anyhow!("writer thread panicked"))?)
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let elapsed = started.elapsed();
    bar.finish_and_clear();
    let mut run = Run { hist: histogram()?, ops: 0, elapsed, returns: Vec::new(), last_seq: 0 };
    for (h, ops, returns, last) in results {
        run.hist.add(&h)?;
        run.ops += ops;
        run.returns.extend(returns);
        run.last_seq = run.last_seq.max(last);
    }
    Ok(run)
}

/// Phase 1 with `threads` writers.
fn async_lag(
    root: &Path,
    stack: &Stack,
    args: &ReplicationArgs,
    threads: usize,
    phase: usize,
) -> anyhow::Result<Lag> {
    let base = root.join(format!("async-{threads}w"));
    let p = start_primary(stack, &base.join("primary"), Mode::Async, None)?;
    let r = start_replica(stack, &base.join("replica"), p.local_addr(), None)?;
    let mut warm = WriteBatch::new();
    warm.put(b"bench-warm-up", b"1");
    let first = p.write(&warm)?;
    wait_until("the replica to apply the first write", SETUP_LIMIT, || {
        r.db().is_some_and(|db| db.visible_seq() >= first)
    })?;
    let rdb = r.db().context("the replica's store is closed")?;
    // Set once the writers are done: the watcher stops when it has seen it.
    let target = AtomicU64::new(u64::MAX);
    let label = format!("async lag {threads}w");
    let (run, seen) = std::thread::scope(|s| -> anyhow::Result<(Run, Vec<(u64, Instant)>)> {
        let watcher = s.spawn(|| -> anyhow::Result<Vec<(u64, Instant)>> {
            let mut log = match args.lag_watch {
                LagWatch::Log => Some(rdb.read_log_from_with(first.next(), LogBound::Visible)?),
                LagWatch::Poll => None,
            };
            let mut seen: Vec<(u64, Instant)> = Vec::with_capacity(1 << 16);
            let mut give_up: Option<Instant> = None;
            loop {
                match &mut log {
                    Some(log) => {
                        if let Some(b) = log.wait_next(Duration::from_millis(20))? {
                            seen.push((b.last_seq().0, Instant::now()));
                        }
                    }
                    None => {
                        let v = rdb.visible_seq().0;
                        if v > seen.last().map_or(first.0, |(s, _)| *s) {
                            seen.push((v, Instant::now()));
                        } else {
                            std::thread::sleep(Duration::from_micros(20));
                        }
                    }
                }
                let t = target.load(Ordering::Acquire);
                if seen.last().map_or(first.0, |(s, _)| *s) >= t {
                    return Ok(seen);
                }
                if t != u64::MAX {
                    let limit = *give_up.get_or_insert_with(|| Instant::now() + SETUP_LIMIT);
                    anyhow::ensure!(
                        Instant::now() < limit,
                        "the replica stopped at sequence {:?}, the primary wrote up to {t}",
                        seen.last().map(|(s, _)| *s)
                    );
                }
            }
        });
        let spec = RunSpec {
            label: &label,
            threads,
            batch: args.batch,
            limit: Duration::from_secs_f64(args.seconds),
            phase,
            keep_returns: true,
        };
        let run = run_writers(args, &spec, &|b| Ok(p.write(b)?));
        target.store(run.as_ref().map_or(first.0, |r| r.last_seq.max(first.0)), Ordering::Release);
        let seen = watcher.join().map_err(|_| anyhow::anyhow!("watcher thread panicked"))??;
        Ok((run?, seen))
    })?;
    drop(rdb);
    r.stop();
    p.stop();
    let mut lag = histogram()?;
    let mut replica_first = 0u64;
    for (seq, returned) in &run.returns {
        let i = seen.partition_point(|(s, _)| s < seq);
        let (_, visible) =
            seen.get(i).with_context(|| format!("the replica never showed sequence {seq}"))?;
        let ns = visible.saturating_duration_since(*returned).as_nanos() as u64;
        replica_first += u64::from(*visible < *returned);
        lag.record(ns.max(1))?;
    }
    let drain_ms = match (run.returns.iter().map(|(_, t)| *t).max(), seen.last()) {
        (Some(end), Some((_, visible))) => {
            visible.saturating_duration_since(end).as_secs_f64() * 1000.0
        }
        _ => 0.0,
    };
    Ok(Lag {
        drain_ms,
        watch: args.lag_watch,
        primary_write: Latency::from_hist(
            "async write (primary)",
            threads,
            args.batch,
            &run.hist,
            run.ops,
            run.elapsed,
        ),
        lag: Latency::from_hist(
            "async lag (replica visible)",
            threads,
            args.batch,
            &lag,
            run.ops,
            run.elapsed,
        ),
        replica_first,
    })
}

/// Phases 2 and 3: single, node, node, single, each for half of `--seconds`.
fn compare(
    args: &ReplicationArgs,
    single: &Db,
    node: &Node,
    threads: usize,
    batch: usize,
    phase: usize,
) -> anyhow::Result<Comparison> {
    let half = Duration::from_secs_f64(args.seconds / 2.0);
    let mut sides = [(histogram()?, 0u64, Duration::ZERO), (histogram()?, 0u64, Duration::ZERO)];
    for (round, side) in [0usize, 1, 1, 0].into_iter().enumerate() {
        let label = if side == 0 {
            format!("single sync {threads}w ({}/4)", round + 1)
        } else {
            format!("sync node {threads}w ({}/4)", round + 1)
        };
        let spec = RunSpec {
            label: &label,
            threads,
            batch,
            limit: half,
            phase: phase + round,
            keep_returns: false,
        };
        let run = if side == 0 {
            run_writers(args, &spec, &|b| Ok(single.write(b, Durability::Sync)?))?
        } else {
            run_writers(args, &spec, &|b| Ok(node.write(b)?))?
        };
        let s = &mut sides[side];
        s.0.add(&run.hist)?;
        s.1 += run.ops;
        s.2 += run.elapsed;
    }
    let single = Latency::from_hist(
        "single-node sync write",
        threads,
        batch,
        &sides[0].0,
        sides[0].1,
        sides[0].2,
    );
    let node = Latency::from_hist(
        "sync-mode node write",
        threads,
        batch,
        &sides[1].0,
        sides[1].1,
        sides[1].2,
    );
    Ok(Comparison {
        p50_ratio: node.p50_us / single.p50_us.max(1e-9),
        throughput_ratio: node.ops_per_sec / single.ops_per_sec.max(1e-9),
        single,
        node,
    })
}

/// Bytes of the regular files under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

fn spinner(what: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Phase 4.
fn catch_up(root: &Path, stack: &Stack, args: &ReplicationArgs) -> anyhow::Result<CatchUp> {
    let base = root.join("catchup");
    let mut stack = stack.clone();
    let segment = i64::try_from(args.catchup_segment_mib << 20).context("--catchup-segment-mib")?;
    stack.config.wal.options = std::mem::take(&mut stack.config.wal.options)
        .with("segment_size_bytes", OptionValue::Integer(segment));
    let stack = &stack;
    let memtable = Some((args.catchup_memtable_mib as usize) << 20);
    let p = start_primary(stack, &base.join("primary"), Mode::Async, memtable)?;
    let pdb = p.db().context("the primary's store is closed")?;
    let target = args.catchup_mib << 20;
    let bar = progress(target >> 20, "catch-up load (MiB)");
    let config = WorkloadConfig {
        seed: args.seed ^ 0x6361_7463,
        value_size: args.value_size,
        ..WorkloadConfig::default()
    };
    let mut wl = ExchangeWorkload::for_writer(config, 4000);
    let mut b = WriteBatch::with_capacity(64 * 320);
    let (mut written, mut batches) = (0u64, 0u64);
    while written < target {
        b.clear();
        wl.fill_batch(&mut b, 64);
        written += b
            .iter()
            .filter_map(Result::ok)
            .map(|op| (op.key.len() + op.value.len()) as u64)
            .sum::<u64>();
        pdb.write(&b, Durability::Buffered)?;
        batches += 1;
        if batches % 64 == 0 {
            bar.set_position(written >> 20);
        }
    }
    bar.finish_and_clear();
    let settle = spinner("catch-up: flushing the primary");
    pdb.sync_wal()?;
    pdb.flush()?;
    pdb.wait_for_background()?;
    settle.finish_and_clear();
    anyhow::ensure!(
        pdb.read_log_from_with(SeqNo(1), LogBound::Visible).is_err(),
        "the primary's WAL still holds sequence 1 after {} MiB with {} MiB memtables and \
         {} MiB WAL segments, so a replica would follow the log instead of bootstrapping: \
         raise --catchup-mib or lower --catchup-memtable-mib / --catchup-segment-mib",
        args.catchup_mib,
        args.catchup_memtable_mib,
        args.catchup_segment_mib
    );
    let last = pdb.visible_seq();
    let primary_store = dir_bytes(&base.join("primary"));

    let wait = spinner("catch-up: replica bootstrapping");
    let started = Instant::now();
    let r = start_replica(stack, &base.join("replica"), p.local_addr(), memtable)?;
    let limit = SETUP_LIMIT + Duration::from_secs(args.catchup_mib / 10);
    wait_until("the new replica to catch up", limit, || {
        r.db().is_some_and(|db| db.visible_seq() >= last)
    })?;
    let seconds = started.elapsed().as_secs_f64();
    wait.finish_and_clear();
    let bootstraps = p.status().bootstraps;
    anyhow::ensure!(bootstraps >= 1, "the replica caught up without a checkpoint: {bootstraps}");
    let transferred = dir_bytes(&base.join("replica"));
    drop(pdb);
    r.stop();
    p.stop();
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    Ok(CatchUp {
        written_mib: mib(written),
        batches,
        primary_last_seq: last.0,
        primary_store_mib: mib(primary_store),
        transferred_mib: mib(transferred),
        seconds,
        mb_per_sec: transferred as f64 / 1e6 / seconds.max(1e-9),
        bootstraps,
        memtable_mib: args.catchup_memtable_mib,
        segment_mib: args.catchup_segment_mib,
    })
}

/// Runs every phase and prints the report.
pub fn run(args: &ReplicationArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.writers >= 1, "--writers must be at least 1");
    anyhow::ensure!(args.batch >= 1, "--batch must be at least 1");
    anyhow::ensure!(args.seconds > 0.0, "--seconds must be positive");
    anyhow::ensure!(
        args.catchup_mib == 0 || args.catchup_memtable_mib >= 1,
        "--catchup-memtable-mib must be at least 1"
    );
    anyhow::ensure!(
        args.catchup_mib == 0 || args.catchup_segment_mib >= 1,
        "--catchup-segment-mib must be at least 1"
    );
    let (_temp, root) = match &args.dir {
        Some(d) => {
            std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
            anyhow::ensure!(
                std::fs::read_dir(d)?.next().is_none(),
                "{} is not empty; pass an empty --dir",
                d.display()
            );
            (None, d.clone())
        }
        None => {
            let temp = tempfile::Builder::new()
                .prefix("strata-bench-replication-")
                .tempdir_in(std::env::current_dir().unwrap_or_else(|_| std::env::temp_dir()))
                .context("creating a temporary directory for the stores")?;
            let root = temp.path().to_path_buf();
            (Some(temp), root)
        }
    };
    let stack = Stack::default_stack();
    let load_before = loadavg();

    let mut async_lag_runs = Vec::new();
    for (i, threads) in [1, args.writers].into_iter().enumerate() {
        if i == 1 && threads == 1 {
            break;
        }
        async_lag_runs.push(async_lag(&root, &stack, args, threads, 1 + i)?);
    }

    let disk_overlap = disk_overlap(&root.join("disk-probe"))?;
    let single = stack.builder(&root.join("single"))?.open()?;
    let p = start_primary(&stack, &root.join("sync").join("primary"), Mode::Sync, None)?;
    let r = start_replica(&stack, &root.join("sync").join("replica"), p.local_addr(), None)?;
    wait_until("the replica to join the in-sync set", SETUP_LIMIT, || {
        p.status().in_sync.iter().any(|n| n == "replica")
    })?;
    let sync_latency = compare(args, &single, &p, 1, 1, 10)?;
    let group_commit = compare(args, &single, &p, args.writers, args.batch, 20)?;
    r.stop();
    p.stop();
    drop(single);

    let catchup = if args.catchup_mib > 0 { Some(catch_up(&root, &stack, args)?) } else { None };

    let report = ReplicationReport {
        strata_version: env!("CARGO_PKG_VERSION"),
        stack: stack.summary(),
        machine: machine_description(),
        load_before,
        load_after: loadavg(),
        dir: root.display().to_string(),
        value_size: args.value_size.map_or("100-300 B (exchange mix)".into(), |v| format!("{v} B")),
        seed: args.seed,
        phase_seconds: args.seconds,
        async_lag: async_lag_runs,
        sync_latency,
        group_commit,
        catchup,
        disk_overlap,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report.print_table();
    }
    Ok(())
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

impl ReplicationReport {
    /// Prints the report as a table.
    pub fn print_table(&self) {
        println!(
            "strata bench replication {} — {} (default), primary and replica on loopback TCP",
            self.strata_version, self.stack
        );
        println!("machine: {}   load {} → {}", self.machine, self.load_before, self.load_after);
        println!(
            "dir: {}   values: {}   seed: {}   {:.1} s per timed phase",
            self.dir, self.value_size, self.seed, self.phase_seconds
        );
        println!();
        println!(
            "{:<28} {:>3} {:>5} {:>8} {:>10} {:>9} {:>9} {:>9} {:>9}",
            "phase", "thr", "batch", "writes", "writes/s", "p50 µs", "p99 µs", "p99.9 µs", "max µs"
        );
        let rows = self.async_lag.iter().flat_map(|l| [&l.primary_write, &l.lag]).chain([
            &self.sync_latency.single,
            &self.sync_latency.node,
            &self.group_commit.single,
            &self.group_commit.node,
        ]);
        for l in rows {
            println!(
                "{:<28} {:>3} {:>5} {:>8} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
                l.phase,
                l.threads,
                l.entries_per_op,
                l.ops,
                l.ops_per_sec,
                l.p50_us,
                l.p99_us,
                l.p999_us,
                l.max_us
            );
        }
        println!();
        for l in &self.async_lag {
            println!(
                "async lag, {} writer(s): p99 {:.1} µs, max {:.1} µs ({} of {} batches visible on the replica before the primary's write returned; {:.1} ms behind when the writers stopped; watched by {}) — target p99 < 1 ms: {}",
                l.lag.threads,
                l.lag.p99_us,
                l.lag.max_us,
                l.replica_first,
                l.lag.ops,
                l.drain_ms,
                match l.watch {
                    LagWatch::Log => "commit-log tail",
                    LagWatch::Poll => "polling visible_seq",
                },
                verdict(l.lag.p99_us < 1000.0)
            );
        }
        let s = &self.sync_latency;
        println!(
            "sync write, 1 writer: node p50 {:.1} µs / single p50 {:.1} µs = {:.2}× — target ≤ 1.3×: {}",
            s.node.p50_us,
            s.single.p50_us,
            s.p50_ratio,
            verdict(s.p50_ratio <= 1.3)
        );
        let d = &self.disk_overlap;
        println!(
            "  this disk: write+fdatasync p50 {:.1} µs alone, {:.1} µs with a second one at once on another file = {:.2}× — both stores share it here, so the primary's and the replica's fdatasyncs queue on one device; that ratio plus a loopback round trip is this machine's floor for the figure above",
            d.alone_p50_us, d.together_p50_us, d.ratio
        );
        let g = &self.group_commit;
        println!(
            "group commit, {} writers × {} entries: node {:.0} writes/s / single {:.0} writes/s = {:.2}× — target ≥ 0.8×: {}",
            g.node.threads,
            g.node.entries_per_op,
            g.node.ops_per_sec,
            g.single.ops_per_sec,
            g.throughput_ratio,
            verdict(g.throughput_ratio >= 0.8)
        );
        if let Some(c) = &self.catchup {
            println!(
                "catch-up from a checkpoint: {:.0} MiB written ({} batches, last seq {}; {} MiB memtables, {} MiB WAL segments), primary store {:.1} MiB; the new replica received {:.1} MiB and reached the primary's last sequence in {:.3} s = {:.0} MB/s ({} checkpoint(s) sent) — target ≥ 200 MB/s: {}",
                c.written_mib,
                c.batches,
                c.primary_last_seq,
                c.memtable_mib,
                c.segment_mib,
                c.primary_store_mib,
                c.transferred_mib,
                c.seconds,
                c.mb_per_sec,
                c.bootstraps,
                verdict(c.mb_per_sec >= 200.0)
            );
        }
    }
}
