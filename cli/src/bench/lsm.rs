//! The LSM phases of `strata bench`: a store loaded well past memtable size, so reads
//! go through tables and writes race flushes and compactions.
//!
//! Keys are `user` + 16 hex digits drawn uniformly from a key space half the size of
//! the load, so each key is written about twice (overwrite-heavy, as account state is);
//! with `--load-order sequential` they are ids in increasing order, each written once
//! (as the exchange's order and trade ids are).
//! Measured: load throughput and write latency under background work; write latency
//! while compaction runs next to the same store idle; point reads (hits, misses);
//! seek + 100-entry scans; space and write amplification once settled; compaction
//! throughput per thread; reopen time at that size.

use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::ProgressBar;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use strata_core::{Db, DbStats, Durability};

use super::phases::progress;
use super::report::Latency;
use super::{BenchArgs, Stack};

/// The key order of the LSM load (`--load-order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LoadOrder {
    /// Ids drawn uniformly from a key space half the load: most writes overwrite.
    Random,
    /// Ids in increasing order over a key space the size of the load: each written once
    /// (the probe writes after the load wrap around to the oldest ids).
    Sequential,
}

/// Results of the LSM phases.
#[derive(Debug, Clone, Serialize)]
pub struct LsmReport {
    pub load_order: LoadOrder,
    pub load_ops: u64,
    pub key_space: u64,
    pub memtable_mib: u64,
    pub user_mib_written: f64,
    pub load: Latency,
    pub write_during_compaction: Latency,
    pub write_without_compaction: Latency,
    pub writes_during_compaction: u64,
    pub write_idle: Latency,
    pub p999_busy_over_idle: f64,
    pub settle_seconds: f64,
    pub read_hit: Latency,
    pub read_miss: Latency,
    pub scan_100: Latency,
    pub live_keys: u64,
    pub live_mib: f64,
    pub table_mib: f64,
    pub wal_mib: f64,
    pub space_amplification: f64,
    pub write_amplification: f64,
    pub flushes: u64,
    pub compactions: u64,
    /// Tables moved one level down without a rewrite (trivial moves).
    pub compaction_moves: u64,
    pub compaction_moved_mib: f64,
    /// Tables of tombstones dropped without a rewrite.
    pub compaction_drops: u64,
    pub compaction_read_mib: f64,
    pub compaction_mib_per_sec_per_thread: f64,
    pub stall_slowdowns: u64,
    pub stall_stops: u64,
    pub stall_ms: f64,
    pub levels: Vec<(usize, f64)>,
    pub reopen_seconds: f64,
    pub reopen_tables_seconds: f64,
    pub reopen_replayed_ops: u64,
}

fn key(id: u64) -> [u8; 20] {
    let mut k = *b"user0000000000000000";
    let hex = format!("{id:016x}");
    k[4..].copy_from_slice(hex.as_bytes());
    k
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?)
}

/// Tracks which keys are live and their value sizes, for the space figures.
struct Model {
    value_len: Vec<u16>,
}

impl Model {
    fn live(&self) -> (u64, u64) {
        let keys = self.value_len.iter().filter(|&&l| l > 0).count() as u64;
        let bytes: u64 =
            self.value_len.iter().filter(|&&l| l > 0).map(|&l| 20 + u64::from(l)).sum();
        (keys, bytes)
    }
}

struct Writer<'a> {
    db: &'a Db,
    rng: SmallRng,
    value: Vec<u8>,
    args: &'a BenchArgs,
    key_space: u64,
    user_bytes: u64,
    /// The next id of a sequential load.
    next_id: u64,
}

impl Writer<'_> {
    fn value_len(&mut self) -> usize {
        self.args.value_size.unwrap_or_else(|| self.rng.gen_range(100..=300))
    }

    /// `n` single-entry Buffered writes of random keys; returns their latency, and
    /// separately that of the writes that ran while a compaction was running and of
    /// those that ran while none was.
    fn run(
        &mut self,
        model: &mut Model,
        n: u64,
        bar: &ProgressBar,
    ) -> anyhow::Result<(Histogram<u64>, Histogram<u64>, Histogram<u64>)> {
        let mut hist = histogram()?;
        let mut compacting = histogram()?;
        let mut quiet = histogram()?;
        for i in 0..n {
            let id = match self.args.load_order {
                LoadOrder::Random => self.rng.gen_range(0..self.key_space),
                LoadOrder::Sequential => {
                    self.next_id += 1;
                    (self.next_id - 1) % self.key_space
                }
            };
            let len = self.value_len();
            self.rng.fill(&mut self.value[..len]);
            let k = key(id);
            let busy = self.db.compactions_running() > 0;
            let t0 = Instant::now();
            self.db.put(&k, &self.value[..len], Durability::Buffered)?;
            let ns = t0.elapsed().as_nanos() as u64;
            hist.record(ns)?;
            if busy {
                compacting.record(ns)?;
            } else {
                quiet.record(ns)?;
            }
            if let Some(slot) = model.value_len.get_mut(id as usize) {
                *slot = len as u16;
            }
            self.user_bytes += (k.len() + len) as u64;
            if i % 1024 == 0 {
                bar.set_position(i);
            }
        }
        Ok((hist, compacting, quiet))
    }
}

fn level_summary(stats: &DbStats) -> Vec<(usize, f64)> {
    stats.levels.iter().map(|l| (l.tables, l.bytes as f64 / (1 << 20) as f64)).collect()
}

fn wal_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("wal_"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Opens the store of `stack` in `dir`, with the memtable size of `--memtable-mib`
/// (the phases are scaled by it) and every other engine option from the stack.
fn open(dir: &Path, args: &BenchArgs, stack: &Stack) -> anyhow::Result<Db> {
    let mut builder = stack.builder(dir)?;
    builder.options_mut().memtable_size_bytes = (args.memtable_mib as usize) << 20;
    Ok(builder.open()?)
}

fn wait_background(db: &Db, what: &str) -> anyhow::Result<f64> {
    let bar = ProgressBar::new_spinner();
    bar.set_message(what.to_string());
    bar.enable_steady_tick(Duration::from_millis(100));
    let started = Instant::now();
    db.flush()?;
    db.wait_for_background()?;
    bar.finish_and_clear();
    Ok(started.elapsed().as_secs_f64())
}

/// Runs every LSM phase in `dir`.
pub fn run(dir: &Path, args: &BenchArgs, stack: &Stack) -> anyhow::Result<LsmReport> {
    let key_space = match args.load_order {
        LoadOrder::Random => (args.load_keys / 2).max(1),
        LoadOrder::Sequential => args.load_keys.max(1),
    };
    let mut model = Model { value_len: vec![0; key_space as usize] };
    let db = open(dir, args, stack)?;
    let mut w = Writer {
        db: &db,
        rng: SmallRng::seed_from_u64(args.seed ^ 0x6c73_6d00),
        value: vec![0u8; args.value_size.unwrap_or(300).max(1)],
        args,
        key_space,
        user_bytes: 0,
        next_id: 0,
    };

    let bar = progress(
        args.load_keys,
        match args.load_order {
            LoadOrder::Random => "load (overwrites)",
            LoadOrder::Sequential => "load (sequential ids)",
        },
    );
    let started = Instant::now();
    let (hist, compacting, quiet) = w.run(&mut model, args.load_keys, &bar)?;
    let elapsed = started.elapsed();
    let load = Latency::from_hist("lsm load", 1, 1, &hist, args.load_keys, elapsed);
    // The same load split by whether a compaction was running when the write started:
    // same store, same memtable sizes, only the background differs. (Their ops/s is
    // the load's, apportioned.)
    let share = |h: &Histogram<u64>| elapsed.mul_f64(h.len() as f64 / args.load_keys.max(1) as f64);
    let busy = Latency::from_hist(
        "lsm load, compacting",
        1,
        1,
        &compacting,
        compacting.len(),
        share(&compacting),
    );
    let calm =
        Latency::from_hist("lsm load, no compaction", 1, 1, &quiet, quiet.len(), share(&quiet));
    bar.finish_and_clear();

    let settle_seconds = wait_background(&db, "settling (flush + compaction)")?;
    let probe = args.probe_ops.min(args.load_keys.max(1));
    let bar = progress(probe, "write idle");
    let started = Instant::now();
    let (hist, _, _) = w.run(&mut model, probe, &bar)?;
    let idle = Latency::from_hist("lsm write, idle", 1, 1, &hist, probe, started.elapsed());
    bar.finish_and_clear();
    wait_background(&db, "settling again")?;

    // Reads: hits are drawn from keys the model knows are live; misses from ids past
    // the key space (same prefix, so only the bloom filters keep them cheap).
    let live_ids: Vec<u64> = model
        .value_len
        .iter()
        .enumerate()
        .filter(|(_, l)| **l > 0)
        .map(|(i, _)| i as u64)
        .collect();
    anyhow::ensure!(!live_ids.is_empty(), "the load left no live key");
    let mut rng = SmallRng::seed_from_u64(args.seed ^ 0x7265_6164);
    let mut read_phase = |name: &str, hit: bool| -> anyhow::Result<Latency> {
        let bar = progress(args.reads, name);
        let mut hist = histogram()?;
        let started = Instant::now();
        for i in 0..args.reads {
            let id = live_ids[rng.gen_range(0..live_ids.len())];
            let mut k = key(id).to_vec();
            if !hit {
                // Inside the key range and next to a live key, so that only the bloom
                // filters (not the tables' key ranges) can rule it out.
                k.push(b'~');
            }
            let t0 = Instant::now();
            let got = db.get(&k)?;
            hist.record(t0.elapsed().as_nanos() as u64)?;
            anyhow::ensure!(got.is_some() == hit, "read of key {id} returned {}", got.is_some());
            if i % 1024 == 0 {
                bar.set_position(i);
            }
        }
        bar.finish_and_clear();
        Ok(Latency::from_hist(name, 1, 1, &hist, args.reads, started.elapsed()))
    };
    let read_hit = read_phase("lsm read hit", true)?;
    let read_miss = read_phase("lsm read miss", false)?;

    let scans = (args.reads / 10).max(1);
    let bar = progress(scans, "lsm seek + scan 100");
    let mut hist = histogram()?;
    let started = Instant::now();
    for i in 0..scans {
        let start = key(rng.gen_range(0..key_space));
        let t0 = Instant::now();
        for r in db.scan(&start[..]..).take(100) {
            r?;
        }
        hist.record(t0.elapsed().as_nanos() as u64)?;
        if i % 256 == 0 {
            bar.set_position(i);
        }
    }
    bar.finish_and_clear();
    let scan_100 = Latency::from_hist("lsm seek+scan 100", 1, 100, &hist, scans, started.elapsed());

    let stats = db.stats();
    let (live_keys, live_bytes) = model.live();
    let table_bytes = stats.table_bytes();
    let user_bytes = w.user_bytes;
    let compaction_secs = stats.compaction_micros as f64 / 1e6;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let levels = level_summary(&stats);
    let wal = wal_bytes(dir);
    drop(w);
    drop(db);

    let bar = ProgressBar::new_spinner();
    bar.set_message("reopening at size");
    bar.enable_steady_tick(Duration::from_millis(100));
    let started = Instant::now();
    let db = open(dir, args, stack)?;
    let reopen_seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let report = db.open_report().clone();
    drop(db);

    Ok(LsmReport {
        load_order: args.load_order,
        load_ops: args.load_keys,
        key_space,
        memtable_mib: args.memtable_mib,
        user_mib_written: mib(user_bytes),
        load,
        p999_busy_over_idle: busy.p999_us / calm.p999_us.max(1e-9),
        write_without_compaction: calm,
        writes_during_compaction: busy.ops,
        write_during_compaction: busy,
        write_idle: idle,
        settle_seconds,
        read_hit,
        read_miss,
        scan_100,
        live_keys,
        live_mib: mib(live_bytes),
        table_mib: mib(table_bytes),
        wal_mib: mib(wal),
        space_amplification: table_bytes as f64 / live_bytes.max(1) as f64,
        write_amplification: (stats.flush_bytes + stats.compaction_written_bytes) as f64
            / user_bytes.max(1) as f64,
        flushes: stats.flushes,
        compactions: stats.compactions,
        compaction_moves: stats.compaction_moves,
        compaction_moved_mib: mib(stats.compaction_moved_bytes),
        compaction_drops: stats.compaction_drops,
        compaction_read_mib: mib(stats.compaction_read_bytes),
        compaction_mib_per_sec_per_thread: if compaction_secs > 0.0 {
            mib(stats.compaction_read_bytes) / compaction_secs
        } else {
            0.0
        },
        stall_slowdowns: stats.stall_slowdowns,
        stall_stops: stats.stall_stops,
        stall_ms: stats.stall_micros as f64 / 1000.0,
        levels,
        reopen_seconds,
        reopen_tables_seconds: report.tables_open_time.as_secs_f64(),
        reopen_replayed_ops: report.replayed_ops,
    })
}

impl LsmReport {
    /// Prints the LSM section of the table report.
    pub fn print(&self) {
        println!();
        println!(
            "LSM: {} {} over {} keys ({:.0} MiB of keys+values written), memtable {} MiB",
            self.load_ops,
            match self.load_order {
                LoadOrder::Random => "random writes",
                LoadOrder::Sequential => "sequential writes",
            },
            self.key_space,
            self.user_mib_written,
            self.memtable_mib
        );
        for l in [
            &self.load,
            &self.write_during_compaction,
            &self.write_without_compaction,
            &self.write_idle,
            &self.read_hit,
            &self.read_miss,
            &self.scan_100,
        ] {
            println!(
                "{:<26} {:>9} ops {:>10.0} ops/s   p50 {:>7.2} µs  p99 {:>7.2} µs  p99.9 {:>8.2} µs  max {:>9.1} µs",
                l.phase, l.ops, l.ops_per_sec, l.p50_us, l.p99_us, l.p999_us, l.max_us
            );
        }
        println!(
            "load write p99.9 while a compaction runs / while none runs: {:.2}× ({} of the load's writes ran during a compaction)",
            self.p999_busy_over_idle, self.writes_during_compaction
        );
        println!(
            "space: {} live keys = {:.1} MiB of keys+values; tables {:.1} MiB → space amplification {:.2}× (WAL {:.1} MiB on disk besides)",
            self.live_keys, self.live_mib, self.table_mib, self.space_amplification, self.wal_mib
        );
        println!(
            "write amplification (flush + compaction bytes / user bytes): {:.2}× (+1× for the WAL)",
            self.write_amplification
        );
        println!(
            "background: {} flushes, {} compactions ({} tables / {:.0} MiB moved down without a rewrite, {} dropped) reading {:.0} MiB at {:.0} MiB/s per thread; stalls: {} slowdowns, {} stops, {:.0} ms; settle {:.1} s",
            self.flushes,
            self.compactions,
            self.compaction_moves,
            self.compaction_moved_mib,
            self.compaction_drops,
            self.compaction_read_mib,
            self.compaction_mib_per_sec_per_thread,
            self.stall_slowdowns,
            self.stall_stops,
            self.stall_ms,
            self.settle_seconds
        );
        let levels: Vec<String> = self
            .levels
            .iter()
            .enumerate()
            .filter(|(_, (t, _))| *t > 0)
            .map(|(i, (t, m))| format!("L{i}: {t} tables {m:.1} MiB"))
            .collect();
        println!("levels: {}", levels.join(", "));
        println!(
            "reopen at this size: {:.3} s ({:.3} s manifest + tables, {} ops replayed)",
            self.reopen_seconds, self.reopen_tables_seconds, self.reopen_replayed_ops
        );
    }
}
