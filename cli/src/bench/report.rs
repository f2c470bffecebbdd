//! The benchmark report: a table for people, JSON for machines.

use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::BenchArgs;

/// Latency percentiles and throughput of one phase.
#[derive(Debug, Clone, Serialize)]
pub struct Latency {
    pub phase: String,
    pub threads: usize,
    pub entries_per_op: usize,
    pub ops: u64,
    pub seconds: f64,
    pub ops_per_sec: f64,
    pub entries_per_sec: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
}

impl Latency {
    pub fn from_hist(
        phase: &str,
        threads: usize,
        entries_per_op: usize,
        hist: &Histogram<u64>,
        ops: u64,
        elapsed: Duration,
    ) -> Self {
        let us = |ns: u64| ns as f64 / 1000.0;
        let seconds = elapsed.as_secs_f64().max(1e-9);
        Self {
            phase: phase.to_string(),
            threads,
            entries_per_op,
            ops,
            seconds,
            ops_per_sec: ops as f64 / seconds,
            entries_per_sec: (ops * entries_per_op as u64) as f64 / seconds,
            mean_us: hist.mean() / 1000.0,
            p50_us: us(hist.value_at_quantile(0.50)),
            p99_us: us(hist.value_at_quantile(0.99)),
            p999_us: us(hist.value_at_quantile(0.999)),
            max_us: us(hist.max()),
        }
    }
}

/// What reopening the store cost.
#[derive(Debug, Clone, Serialize)]
pub struct Reopen {
    pub seconds: f64,
    pub replayed_batches: u64,
    pub replayed_ops: u64,
    pub replayed_mib: f64,
    pub replay_mib_per_sec: f64,
}

/// Raw WAL replay: reading and checksumming every record, without applying it.
#[derive(Debug, Clone, Serialize)]
pub struct Replay {
    pub log_mib: f64,
    pub write_seconds: f64,
    pub open_seconds: f64,
    pub read_seconds: f64,
    pub read_mib_per_sec: f64,
    pub batches: u64,
}

/// Size of the store after the write phases.
#[derive(Debug, Clone, Serialize)]
pub struct StoreStats {
    pub visible_seq: u64,
    pub memtables: usize,
    pub memtable_mib: f64,
    pub memtable_entries: usize,
    pub wal_mib_on_disk: f64,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub strata_version: &'static str,
    pub stack: String,
    pub stack_config: String,
    pub machine: String,
    pub dir: String,
    pub value_size: String,
    pub seed: u64,
    pub floor: Option<Latency>,
    pub phases: Vec<Latency>,
    pub store: Option<StoreStats>,
    pub reopen: Option<Reopen>,
    pub replay: Option<Replay>,
    pub lsm: Option<super::lsm::LsmReport>,
}

impl Report {
    pub fn new(args: &BenchArgs, dir: &Path, stack: &super::Stack) -> Self {
        Self {
            strata_version: env!("CARGO_PKG_VERSION"),
            stack: stack.summary(),
            stack_config: stack.label.clone(),
            machine: machine_description(),
            dir: dir.display().to_string(),
            value_size: args
                .value_size
                .map_or("100-300 B (exchange mix)".into(), |v| format!("{v} B")),
            seed: args.seed,
            floor: None,
            phases: Vec::new(),
            store: None,
            reopen: None,
            replay: None,
            lsm: None,
        }
    }

    pub fn print_table(&self) {
        println!("strata bench {} — {} ({})", self.strata_version, self.stack, self.stack_config);
        println!("machine: {}", self.machine);
        println!("dir: {}   values: {}   seed: {}", self.dir, self.value_size, self.seed);
        println!();
        println!(
            "{:<26} {:>3} {:>5} {:>9} {:>12} {:>12} {:>9} {:>9} {:>9} {:>9}",
            "phase",
            "thr",
            "batch",
            "ops",
            "ops/s",
            "entries/s",
            "p50 µs",
            "p99 µs",
            "p99.9 µs",
            "max µs"
        );
        for l in self.floor.iter().chain(self.phases.iter()) {
            println!(
                "{:<26} {:>3} {:>5} {:>9} {:>12.0} {:>12.0} {:>9.2} {:>9.2} {:>9.2} {:>9.1}",
                l.phase,
                l.threads,
                l.entries_per_op,
                l.ops,
                l.ops_per_sec,
                l.entries_per_sec,
                l.p50_us,
                l.p99_us,
                l.p999_us,
                l.max_us
            );
        }
        println!();
        if let (Some(floor), Some(sync1)) =
            (&self.floor, self.phases.iter().find(|p| p.phase == "write sync" && p.threads == 1))
        {
            println!(
                "sync write, 1 writer: p50 {:.1} µs = {:.2}× the raw fdatasync floor ({:.1} µs)",
                sync1.p50_us,
                sync1.p50_us / floor.p50_us.max(1e-9),
                floor.p50_us
            );
        }
        if let Some(s) = &self.store {
            println!(
                "store: {} entries in {} memtable(s), {:.1} MiB accounted; WAL {:.1} MiB on disk; visible seq {}",
                s.memtable_entries, s.memtables, s.memtable_mib, s.wal_mib_on_disk, s.visible_seq
            );
        }
        if let Some(r) = &self.reopen {
            println!(
                "reopen: {:.3} s, replayed {} batches / {} ops / {:.1} MiB into memtables ({:.0} MiB/s)",
                r.seconds, r.replayed_batches, r.replayed_ops, r.replayed_mib, r.replay_mib_per_sec
            );
        }
        if let Some(r) = &self.replay {
            println!(
                "WAL replay: {:.0} MiB log, {} batches read and checksummed in {:.3} s = {:.0} MiB/s (open {:.3} s, written in {:.1} s)",
                r.log_mib,
                r.batches,
                r.read_seconds,
                r.read_mib_per_sec,
                r.open_seconds,
                r.write_seconds
            );
        }
        if let Some(l) = &self.lsm {
            l.print();
        }
    }
}

pub fn machine_description() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cores} cores, {model}, Linux {}", kernel.trim())
}
