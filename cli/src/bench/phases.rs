//! The measured phases of `strata bench`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use hdrhistogram::Histogram;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};
use strata_bench::workload::{ExchangeWorkload, WorkloadConfig};
use strata_core::fs::OsFileSystem;
use strata_core::{Db, Durability, MemTableFactory, SeqNo, ValueKind, Wal, WriteBatch};
use strata_wal_file::{FileWal, FileWalOptions};

use super::report::{Latency, Reopen, Replay, StoreStats};
use super::{BenchArgs, Stack};

/// Keys kept for the read phases.
const READ_SAMPLE: usize = 1 << 20;
const PROGRESS_EVERY: u64 = 256;

pub fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let style =
        ProgressStyle::with_template("{msg:>24} [{bar:40}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(what.to_string());
    bar
}

fn histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 3)?)
}

/// Inserts into one skiplist memtable (16 B random keys, 200 B values, 1 thread), and
/// the same keys and values into a bare `crossbeam_skiplist::SkipMap<Vec<u8>, Vec<u8>>`
/// in the same run: the cost of the skiplist itself, as the reference.
pub fn memtable_inserts(
    memtables: &dyn MemTableFactory,
    n: u64,
    seed: u64,
) -> anyhow::Result<Vec<Latency>> {
    let value = [0x42u8; 200];
    let mut out = Vec::new();
    for reference in [false, true] {
        let mem = memtables.create();
        let raw = crossbeam_skiplist::SkipMap::new();
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut hist = histogram()?;
        let name = if reference { "memtable ref: raw SkipMap" } else { "memtable insert 16B/200B" };
        let bar = progress(n, name);
        let mut key = [0u8; 16];
        let started = Instant::now();
        for i in 0..n {
            rng.fill_bytes(&mut key);
            let t = Instant::now();
            if reference {
                raw.insert((key.to_vec(), u64::MAX - i), value.to_vec());
            } else {
                mem.insert(&key, SeqNo(i + 1), ValueKind::Put, &value);
            }
            hist.record(t.elapsed().as_nanos() as u64)?;
            if i % PROGRESS_EVERY == 0 {
                bar.set_position(i);
            }
        }
        let elapsed = started.elapsed();
        bar.finish_and_clear();
        out.push(Latency::from_hist(name, 1, 1, &hist, n, elapsed));
    }
    Ok(out)
}

/// Runs write and read phases against one open store.
pub struct Runner {
    db: Option<Db>,
    args: BenchArgs,
    phase: usize,
    read_keys: Vec<Bytes>,
    stack: Stack,
}

impl Runner {
    pub fn new(db: Db, args: BenchArgs, stack: Stack) -> Self {
        Self { db: Some(db), args, phase: 0, read_keys: Vec::new(), stack }
    }

    fn db(&self) -> anyhow::Result<&Db> {
        self.db.as_ref().context("the store is closed")
    }

    /// `threads` writers each commit batches of `batch` generated entries until
    /// `total_ops` batches are done or `limit` elapses.
    pub fn writes(
        &mut self,
        name: &str,
        threads: usize,
        batch: usize,
        total_ops: u64,
        durability: Durability,
        limit: Option<Duration>,
    ) -> anyhow::Result<Latency> {
        self.phase += 1;
        let db = self.db()?.clone();
        let per_thread =
            total_ops / threads as u64 + u64::from(!total_ops.is_multiple_of(threads as u64));
        let bar_len = if total_ops == u64::MAX {
            limit.map_or(0, |l| l.as_millis() as u64)
        } else {
            total_ops
        };
        let label = format!("{name} {threads}w");
        let bar = progress(bar_len, &label);
        let timed = total_ops == u64::MAX;
        let done = Arc::new(AtomicU64::new(0));
        let keep_keys = self.read_keys.len() < READ_SAMPLE;
        let started = Instant::now();
        let deadline = limit.map(|l| started + l);
        let results = std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let db = db.clone();
                    let bar = bar.clone();
                    let done = Arc::clone(&done);
                    let config = WorkloadConfig {
                        seed: self.args.seed ^ (self.phase as u64) << 32,
                        value_size: self.args.value_size,
                        ..WorkloadConfig::default()
                    };
                    let writer_index = self.phase * 64 + t;
                    s.spawn(move || -> anyhow::Result<(Histogram<u64>, Vec<Bytes>)> {
                        let mut wl = ExchangeWorkload::for_writer(config, writer_index);
                        let mut hist = histogram()?;
                        let mut keys = Vec::new();
                        let mut b = WriteBatch::with_capacity(batch * 320);
                        for i in 0..per_thread {
                            if deadline.is_some_and(|d| Instant::now() >= d) {
                                break;
                            }
                            b.clear();
                            wl.fill_batch(&mut b, batch);
                            let t0 = Instant::now();
                            db.write(&b, durability)?;
                            hist.record(t0.elapsed().as_nanos() as u64)?;
                            if keep_keys && t == 0 && keys.len() < READ_SAMPLE {
                                keys.extend(
                                    b.iter()
                                        .filter_map(|op| op.ok())
                                        .map(|op| Bytes::copy_from_slice(op.key)),
                                );
                            }
                            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                            if i % 64 == 0 {
                                if timed {
                                    bar.set_position(started.elapsed().as_millis() as u64);
                                } else {
                                    bar.set_position(n);
                                }
                            }
                        }
                        Ok((hist, keys))
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
        let mut hist = histogram()?;
        for (h, keys) in results {
            hist.add(&h)?;
            if self.read_keys.len() < READ_SAMPLE {
                self.read_keys.extend(keys);
            }
        }
        let ops = done.load(Ordering::Relaxed);
        Ok(Latency::from_hist(name, threads, batch, &hist, ops, elapsed))
    }

    /// Point reads of written keys ([`Reads::Hit`]) or of keys never written.
    pub fn reads(&mut self, name: &str, kind: Reads) -> anyhow::Result<Latency> {
        let db = self.db()?.clone();
        anyhow::ensure!(!self.read_keys.is_empty(), "no keys were written to read back");
        let n = self.args.reads;
        let mut rng = SmallRng::seed_from_u64(self.args.seed ^ 0x5eed);
        let mut hist = histogram()?;
        let bar = progress(n, name);
        let mut miss = [0u8; 13];
        miss[0] = b'z'; // no exchange key starts with 'z'
        let mut in_range = Vec::with_capacity(64);
        let started = Instant::now();
        let mut found = 0u64;
        for i in 0..n {
            let t0;
            let got = match kind {
                Reads::Hit => {
                    let key = &self.read_keys[rng.gen_range(0..self.read_keys.len())];
                    t0 = Instant::now();
                    db.get(key)?
                }
                Reads::Miss => {
                    rng.fill_bytes(&mut miss[1..]);
                    t0 = Instant::now();
                    db.get(&miss)?
                }
                Reads::MissInRange => {
                    // A written key plus one zero byte sorts right after it, before the
                    // next written key: inside the key range of the tables holding it,
                    // so only the filter (or a block search) can reject it. Exchange
                    // keys of one kind all have one length, so it was never written.
                    let key = &self.read_keys[rng.gen_range(0..self.read_keys.len())];
                    in_range.clear();
                    in_range.extend_from_slice(key);
                    in_range.push(0);
                    t0 = Instant::now();
                    db.get(&in_range)?
                }
            };
            hist.record(t0.elapsed().as_nanos() as u64)?;
            found += u64::from(got.is_some());
            if i % PROGRESS_EVERY == 0 {
                bar.set_position(i);
            }
        }
        let elapsed = started.elapsed();
        bar.finish_and_clear();
        if kind == Reads::Hit {
            anyhow::ensure!(found == n, "{} of {n} written keys were not found", n - found);
        } else {
            anyhow::ensure!(found == 0, "{found} keys that were never written were found");
        }
        Ok(Latency::from_hist(name, 1, 1, &hist, n, elapsed))
    }

    pub fn store_stats(&self) -> StoreStats {
        let (stats, dir) = match &self.db {
            Some(db) => (db.stats(), db.dir().to_path_buf()),
            None => {
                return StoreStats {
                    visible_seq: 0,
                    memtables: 0,
                    memtable_mib: 0.0,
                    memtable_entries: 0,
                    wal_mib_on_disk: 0.0,
                };
            }
        };
        let wal_bytes: u64 = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.file_name().to_string_lossy().starts_with("wal_"))
                    .filter_map(|e| e.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0);
        StoreStats {
            visible_seq: stats.visible_seq.0,
            memtables: stats.memtables,
            memtable_mib: stats.memtable_bytes as f64 / (1 << 20) as f64,
            memtable_entries: stats.memtable_entries,
            wal_mib_on_disk: wal_bytes as f64 / (1 << 20) as f64,
        }
    }

    /// Closes the store and opens it again, replaying the WAL into memtables.
    pub fn reopen(&mut self, dir: &Path) -> anyhow::Result<Reopen> {
        let before = self.db()?.stats().visible_seq;
        self.db = None;
        let bar = ProgressBar::new_spinner();
        bar.set_message("reopening (WAL replay)");
        bar.enable_steady_tick(Duration::from_millis(100));
        let started = Instant::now();
        let db = self.stack.builder(dir)?.open()?;
        let seconds = started.elapsed().as_secs_f64();
        bar.finish_and_clear();
        anyhow::ensure!(
            db.stats().visible_seq == before,
            "reopen lost writes: visible sequence {} before, {} after",
            before,
            db.stats().visible_seq
        );
        let r = db.open_report().clone();
        let mib = r.replayed_bytes as f64 / (1 << 20) as f64;
        self.db = Some(db);
        Ok(Reopen {
            seconds,
            replayed_batches: r.replayed_batches,
            replayed_ops: r.replayed_ops,
            replayed_mib: mib,
            replay_mib_per_sec: mib / r.replay_time.as_secs_f64().max(1e-9),
        })
    }
}

/// Writes a log of `mib` MiB, then measures opening it and reading every batch back.
pub fn wal_replay(dir: &Path, mib: u64) -> anyhow::Result<Replay> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    let fs = OsFileSystem::shared();
    let target = mib << 20;
    let mut rng = SmallRng::seed_from_u64(7);
    let mut batch = WriteBatch::new();
    let bar = progress(target, "writing log for replay");
    let started = Instant::now();
    {
        let wal = FileWal::open(Arc::clone(&fs), dir, FileWalOptions::default())?;
        let mut written = 0u64;
        let mut key = [0u8; 16];
        let mut value = vec![0u8; 200];
        while written < target {
            batch.clear();
            for _ in 0..16 {
                rng.fill_bytes(&mut key);
                rng.fill_bytes(&mut value[..8]);
                batch.put(key, &value);
            }
            wal.append(batch.as_bytes(), batch.count(), Durability::Buffered)?;
            written += batch.as_bytes().len() as u64 + 20;
            bar.set_position(written);
        }
        wal.sync()?;
    }
    let write_seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();

    let t = Instant::now();
    let wal = FileWal::open(Arc::clone(&fs), dir, FileWalOptions::default())?;
    let open_seconds = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut reader = wal.read_from(SeqNo(1))?;
    let (mut batches, mut bytes) = (0u64, 0u64);
    while let Some(b) = reader.next_batch()? {
        batches += 1;
        bytes += b.payload.len() as u64 + 20;
    }
    let read_seconds = t.elapsed().as_secs_f64();
    drop(reader);
    drop(wal);
    std::fs::remove_dir_all(dir).ok();
    let log_mib = bytes as f64 / (1 << 20) as f64;
    Ok(Replay {
        log_mib,
        write_seconds,
        open_seconds,
        read_seconds,
        read_mib_per_sec: log_mib / read_seconds.max(1e-9),
        batches,
    })
}

/// Which keys a read phase asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    /// Keys that were written.
    Hit,
    /// Keys outside every written key range (the key bounds alone reject them).
    Miss,
    /// Unwritten keys inside the written key ranges (only the filter rejects them).
    MissInRange,
}
