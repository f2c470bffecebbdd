//! The workloads of `strata bench --peers`, run against any [`Engine`].
//!
//! Keys of the synthetic workloads are 16 ASCII digits (`0000000000000042`), so key
//! order is numeric order; values are `value_size` random bytes (incompressible). Keys
//! that must miss are 15 digits and an `m`: they sort between real keys, so only a
//! filter or a block read can tell they are absent. Every operation's latency is
//! recorded in an HdrHistogram (nanoseconds); key and value generation happens before
//! the clock starts.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use rand::rngs::SmallRng;
use rand::{Rng, RngCore, SeedableRng};

use super::{Engine, PeerError, Result};
use crate::workload::{ExchangeWorkload, Op, WorkloadConfig};

/// Length of the synthetic keys.
pub const KEY_LEN: usize = 16;
/// Entries per batch when preloading a store (not measured).
const PRELOAD_BATCH: usize = 256;

/// One workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Workload {
    /// The exchange workload ([`crate::workload`]): order inserts, trades and account
    /// overwrites, Buffered puts by `threads` writers.
    Exchange,
    /// `keys` Buffered puts in key order, one thread.
    FillSeq,
    /// `keys` Buffered puts of every key once in a shuffled order, one thread.
    FillRandom,
    /// `ops` Buffered puts of uniformly random existing keys into a preloaded store, one
    /// thread.
    Overwrite,
    /// `ops` point reads of uniformly random existing keys by `threads` readers.
    ReadHit,
    /// `ops` point reads of absent keys (sorting between real keys) by `threads` readers.
    ReadMiss,
    /// `scans` seeks to a random key, each followed by reading `scan_len` entries, by
    /// `threads` readers.
    SeekScan,
    /// YCSB A-like: 50% reads, 50% updates of uniformly random existing keys, `threads`
    /// clients.
    YcsbA,
    /// YCSB B-like: 95% reads, 5% updates.
    YcsbB,
    /// `sync_ops` Sync puts by one writer.
    SyncWrite1,
    /// `sync_ops` Sync puts shared by `sync_writers` writers (group commit where the
    /// engine has it).
    SyncWriteN,
}

impl Workload {
    /// Every workload, in the order a run measures them.
    pub const ALL: [Workload; 11] = [
        Workload::Exchange,
        Workload::FillSeq,
        Workload::FillRandom,
        Workload::Overwrite,
        Workload::ReadHit,
        Workload::ReadMiss,
        Workload::SeekScan,
        Workload::YcsbA,
        Workload::YcsbB,
        Workload::SyncWrite1,
        Workload::SyncWriteN,
    ];

    /// The workload's name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Exchange => "exchange",
            Self::FillSeq => "fillseq",
            Self::FillRandom => "fillrandom",
            Self::Overwrite => "overwrite",
            Self::ReadHit => "readrandom-hit",
            Self::ReadMiss => "readrandom-miss",
            Self::SeekScan => "seek+scan",
            Self::YcsbA => "ycsb-a",
            Self::YcsbB => "ycsb-b",
            Self::SyncWrite1 => "sync-write-1w",
            Self::SyncWriteN => "sync-write-Nw",
        }
    }

    /// Whether the workload runs on a store preloaded with `keys` entries.
    pub fn preloaded(self) -> bool {
        matches!(
            self,
            Self::Overwrite
                | Self::ReadHit
                | Self::ReadMiss
                | Self::SeekScan
                | Self::YcsbA
                | Self::YcsbB
        )
    }

    /// Threads the workload uses with `sizes`.
    pub fn threads(self, sizes: &Sizes) -> usize {
        match self {
            Self::FillSeq | Self::FillRandom | Self::Overwrite | Self::SyncWrite1 => 1,
            Self::SyncWriteN => sizes.sync_writers.max(1),
            _ => sizes.threads.max(1),
        }
    }

    /// Measured operations the workload performs with `sizes`.
    pub fn ops(self, sizes: &Sizes) -> u64 {
        match self {
            Self::FillSeq | Self::FillRandom => sizes.keys,
            Self::SeekScan => sizes.scans,
            Self::SyncWrite1 | Self::SyncWriteN => sizes.sync_ops,
            _ => sizes.ops,
        }
    }

    /// Whether the workload writes with `Sync` durability.
    pub fn sync(self) -> bool {
        matches!(self, Self::SyncWrite1 | Self::SyncWriteN)
    }
}

impl std::str::FromStr for Workload {
    type Err = PeerError;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|w| w.name().eq_ignore_ascii_case(s.trim())).ok_or_else(|| {
            let names: Vec<&str> = Self::ALL.iter().map(|w| w.name()).collect();
            PeerError::Config(format!("unknown workload {s:?} (one of {})", names.join(", ")))
        })
    }
}

/// Sizes of a run (the same for every engine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sizes {
    /// Keys filled by fillseq/fillrandom and preloaded for the read and mixed workloads.
    pub keys: u64,
    /// Operations of exchange, overwrite, readrandom and YCSB.
    pub ops: u64,
    /// Seeks of seek+scan.
    pub scans: u64,
    /// Entries read after each seek.
    pub scan_len: usize,
    /// Operations of each Sync write workload.
    pub sync_ops: u64,
    /// Value size of the synthetic workloads, in bytes.
    pub value_size: usize,
    /// Value size of the exchange workload (`None`: its 100–300 B mix).
    pub exchange_value_size: Option<usize>,
    /// Threads of exchange, readrandom, seek+scan and YCSB.
    pub threads: usize,
    /// Writers of the N-writer Sync workload.
    pub sync_writers: usize,
    /// Seed of every random choice.
    pub seed: u64,
}

impl Default for Sizes {
    fn default() -> Self {
        Self {
            keys: 500_000,
            ops: 500_000,
            scans: 50_000,
            scan_len: 100,
            sync_ops: 2_000,
            value_size: 200,
            exchange_value_size: None,
            threads: 2,
            sync_writers: 16,
            seed: 42,
        }
    }
}

/// What one workload measured on one engine.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Latency of every measured operation, in nanoseconds.
    pub hist: Histogram<u64>,
    /// Operations performed.
    pub ops: u64,
    /// Threads that performed them.
    pub threads: usize,
    /// Wall time of the measured part.
    pub elapsed: Duration,
    /// Reads that found their key, or entries visited by scans.
    pub found: u64,
    /// Reads performed (point reads, or seeks).
    pub reads: u64,
    /// Entries written by the measured part.
    pub writes: u64,
}

/// The synthetic key `i`: 16 ASCII digits.
pub fn key(i: u64) -> [u8; KEY_LEN] {
    let mut k = [b'0'; KEY_LEN];
    let mut n = i;
    for b in k.iter_mut().rev() {
        *b = b'0' + (n % 10) as u8;
        n /= 10;
    }
    k
}

/// A key that is never written: the first 15 digits of `i` and `m`, sorting between
/// `key(10 × (i / 10) + 9)` and `key(10 × (i / 10) + 10)`... that is, inside the key range.
pub fn miss_key(i: u64) -> [u8; KEY_LEN] {
    let mut k = key(i);
    k[KEY_LEN - 1] = b'm';
    k
}

/// A bijection of `0..n`: `i ↦ (i × p + offset) mod n` with `p` coprime to `n`.
#[derive(Debug, Clone, Copy)]
struct Shuffle {
    n: u64,
    p: u64,
    offset: u64,
}

impl Shuffle {
    fn new(n: u64, seed: u64) -> Self {
        let n = n.max(1);
        let mut p = 0x9E37_79B9_7F4A_7C15u64 % n;
        while gcd(p, n) != 1 {
            p = (p + 1) % n;
        }
        Self { n, p, offset: seed % n }
    }

    fn at(&self, i: u64) -> u64 {
        ((u128::from(i) * u128::from(self.p) + u128::from(self.offset)) % u128::from(self.n)) as u64
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3)
        .map_err(|e| PeerError::Histogram(e.to_string()))
}

/// Writes every key of `0..sizes.keys` once, in shuffled order, in unmeasured Buffered
/// batches, then waits for the engine to settle.
pub fn preload(engine: &dyn Engine, sizes: &Sizes) -> Result<()> {
    let shuffle = Shuffle::new(sizes.keys, sizes.seed);
    let mut rng = SmallRng::seed_from_u64(sizes.seed ^ 0x5052_454c);
    let mut keys = Vec::with_capacity(PRELOAD_BATCH);
    let mut values = vec![vec![0u8; sizes.value_size]; PRELOAD_BATCH];
    let mut i = 0;
    while i < sizes.keys {
        let n = (sizes.keys - i).min(PRELOAD_BATCH as u64) as usize;
        keys.clear();
        for (j, v) in values.iter_mut().enumerate().take(n) {
            keys.push(key(shuffle.at(i + j as u64)));
            rng.fill_bytes(v);
        }
        let entries: Vec<(&[u8], &[u8])> =
            keys.iter().zip(&values).map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
        engine.write_batch(&entries, false)?;
        i += n as u64;
    }
    engine.settle()
}

/// Per-thread state of a measured loop: prepares an operation (unmeasured), then runs
/// it (measured).
trait Client: Send {
    fn prepare(&mut self, i: u64);
    /// Runs the prepared operation; returns (reads, found, writes).
    fn execute(&mut self, engine: &dyn Engine) -> Result<(u64, u64, u64)>;
}

/// Runs `workload` on `engine` (preloading first when the workload needs it).
pub fn run(engine: &dyn Engine, workload: Workload, sizes: &Sizes) -> Result<Measurement> {
    if sizes.keys == 0 && (workload.preloaded() || matches!(workload, Workload::FillSeq)) {
        return Err(PeerError::Config(format!("{} needs at least one key", workload.name())));
    }
    if workload.preloaded() {
        preload(engine, sizes)?;
    }
    let threads = workload.threads(sizes);
    let total = workload.ops(sizes);
    let seed = sizes.seed ^ ((workload as u64 + 1) << 40);
    let make = |t: usize| -> Box<dyn Client> {
        let rng = SmallRng::seed_from_u64(seed.wrapping_add(t as u64 * 0x9E37_79B9));
        let value = vec![0u8; sizes.value_size];
        let n = sizes.keys.max(1);
        match workload {
            Workload::Exchange => {
                let config = WorkloadConfig {
                    seed,
                    value_size: sizes.exchange_value_size,
                    ..WorkloadConfig::default()
                };
                Box::new(ExchangeClient { wl: ExchangeWorkload::for_writer(config, t), op: None })
            }
            Workload::FillSeq => Box::new(PutClient::new(rng, value, KeyPick::Seq, false)),
            Workload::FillRandom => Box::new(PutClient::new(
                rng,
                value,
                KeyPick::Shuffled(Shuffle::new(n, seed)),
                false,
            )),
            Workload::Overwrite => Box::new(PutClient::new(rng, value, KeyPick::Uniform(n), false)),
            Workload::SyncWrite1 | Workload::SyncWriteN => {
                // Each writer its own key range, so the runs write fresh keys.
                let base = t as u64 * 1_000_000_000;
                Box::new(PutClient::new(rng, value, KeyPick::From(base), true))
            }
            Workload::ReadHit => Box::new(MixedClient::new(rng, value, n, 100, false)),
            Workload::ReadMiss => Box::new(MixedClient::new(rng, value, n, 100, true)),
            Workload::YcsbA => Box::new(MixedClient::new(rng, value, n, 50, false)),
            Workload::YcsbB => Box::new(MixedClient::new(rng, value, n, 95, false)),
            Workload::SeekScan => Box::new(ScanClient {
                rng,
                n,
                len: sizes.scan_len,
                start: key(0),
                limit: sizes.scan_len,
            }),
        }
    };
    measure(engine, workload, threads, total, &make)
}

fn measure(
    engine: &dyn Engine,
    workload: Workload,
    threads: usize,
    total: u64,
    make: &(dyn Fn(usize) -> Box<dyn Client> + Sync),
) -> Result<Measurement> {
    let started = Instant::now();
    let results = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let share = total / threads as u64 + u64::from((t as u64) < total % threads as u64);
                s.spawn(move || -> Result<(Histogram<u64>, u64, u64, u64)> {
                    let mut client = make(t);
                    let mut hist = histogram()?;
                    let (mut reads, mut found, mut writes) = (0, 0, 0);
                    for i in 0..share {
                        client.prepare(i);
                        let t0 = Instant::now();
                        let (r, f, w) = client.execute(engine)?;
                        let ns = t0.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
                        hist.saturating_record(ns.max(1));
                        reads += r;
                        found += f;
                        writes += w;
                    }
                    Ok((hist, reads, found, writes))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().map_err(|_| PeerError::Panicked(workload.name().into()))?)
            .collect::<Result<Vec<_>>>()
    })?;
    let elapsed = started.elapsed();
    let mut hist = histogram()?;
    let (mut reads, mut found, mut writes) = (0, 0, 0);
    for (h, r, f, w) in results {
        hist.add(&h).map_err(|e| PeerError::Histogram(e.to_string()))?;
        reads += r;
        found += f;
        writes += w;
    }
    Ok(Measurement { ops: hist.len(), hist, threads, elapsed, found, reads, writes })
}

struct ExchangeClient {
    wl: ExchangeWorkload,
    op: Option<Op>,
}

impl Client for ExchangeClient {
    fn prepare(&mut self, _i: u64) {
        self.op = Some(self.wl.next_op());
    }

    fn execute(&mut self, engine: &dyn Engine) -> Result<(u64, u64, u64)> {
        if let Some(op) = &self.op {
            engine.put(&op.key, &op.value, false)?;
        }
        Ok((0, 0, 1))
    }
}

enum KeyPick {
    Seq,
    From(u64),
    Shuffled(Shuffle),
    Uniform(u64),
}

struct PutClient {
    rng: SmallRng,
    value: Vec<u8>,
    pick: KeyPick,
    key: [u8; KEY_LEN],
    sync: bool,
}

impl PutClient {
    fn new(rng: SmallRng, value: Vec<u8>, pick: KeyPick, sync: bool) -> Self {
        Self { rng, value, pick, key: key(0), sync }
    }
}

impl Client for PutClient {
    fn prepare(&mut self, i: u64) {
        let k = match &self.pick {
            KeyPick::Seq => i,
            KeyPick::From(base) => base + i,
            KeyPick::Shuffled(s) => s.at(i),
            KeyPick::Uniform(n) => self.rng.gen_range(0..*n),
        };
        self.key = key(k);
        self.rng.fill_bytes(&mut self.value);
    }

    fn execute(&mut self, engine: &dyn Engine) -> Result<(u64, u64, u64)> {
        engine.put(&self.key, &self.value, self.sync)?;
        Ok((0, 0, 1))
    }
}

/// Reads (hits or misses) and, for YCSB, updates.
struct MixedClient {
    rng: SmallRng,
    value: Vec<u8>,
    out: Vec<u8>,
    n: u64,
    read_percent: u32,
    miss: bool,
    key: [u8; KEY_LEN],
    read: bool,
}

impl MixedClient {
    fn new(rng: SmallRng, value: Vec<u8>, n: u64, read_percent: u32, miss: bool) -> Self {
        Self { rng, value, out: Vec::new(), n, read_percent, miss, key: key(0), read: true }
    }
}

impl Client for MixedClient {
    fn prepare(&mut self, _i: u64) {
        let k = self.rng.gen_range(0..self.n);
        self.read = self.read_percent >= 100 || self.rng.gen_range(0..100) < self.read_percent;
        self.key = if self.miss { miss_key(k) } else { key(k) };
        if !self.read {
            self.rng.fill_bytes(&mut self.value);
        }
    }

    fn execute(&mut self, engine: &dyn Engine) -> Result<(u64, u64, u64)> {
        if self.read {
            let found = engine.get(&self.key, &mut self.out)?;
            Ok((1, u64::from(found), 0))
        } else {
            engine.put(&self.key, &self.value, false)?;
            Ok((0, 0, 1))
        }
    }
}

struct ScanClient {
    rng: SmallRng,
    n: u64,
    len: usize,
    start: [u8; KEY_LEN],
    limit: usize,
}

impl Client for ScanClient {
    fn prepare(&mut self, _i: u64) {
        let span = self.n.saturating_sub(self.len as u64).max(1);
        self.start = key(self.rng.gen_range(0..span));
    }

    fn execute(&mut self, engine: &dyn Engine) -> Result<(u64, u64, u64)> {
        let mut bytes = 0usize;
        let visited = engine.scan(&self.start, self.limit, &mut |k, v| {
            bytes = bytes.wrapping_add(k.len() + v.len());
        })?;
        std::hint::black_box(bytes);
        Ok((1, visited as u64, 0))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_numerically_and_misses_fall_between() {
        assert_eq!(&key(42), b"0000000000000042");
        assert!(key(9) < key(10));
        assert!(key(41) < miss_key(41) && miss_key(41) < key(50));
        assert_ne!(miss_key(40), key(40));
    }

    #[test]
    fn shuffle_is_a_permutation() {
        for n in [1u64, 2, 10, 97, 1000, 1024] {
            let s = Shuffle::new(n, 7);
            let mut seen: Vec<u64> = (0..n).map(|i| s.at(i)).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..n).collect::<Vec<_>>(), "n = {n}");
        }
    }

    #[test]
    fn every_workload_counts_what_it_was_asked_on_fjall() {
        every_workload_counts_what_it_was_asked(super::super::EngineKind::Fjall);
    }

    #[cfg(feature = "rocksdb")]
    #[test]
    fn every_workload_counts_what_it_was_asked_on_rocksdb() {
        every_workload_counts_what_it_was_asked(super::super::EngineKind::RocksDb);
    }

    fn every_workload_counts_what_it_was_asked(kind: super::super::EngineKind) {
        let sizes = Sizes {
            keys: 3000,
            ops: 800,
            scans: 50,
            scan_len: 10,
            sync_ops: 20,
            value_size: 64,
            exchange_value_size: None,
            threads: 2,
            sync_writers: 4,
            seed: 1,
        };
        for workload in Workload::ALL {
            let dir = tempfile::tempdir().unwrap();
            let config = super::super::PeerConfig { memtable_bytes: 1 << 20, ..Default::default() };
            let engine = super::super::open(kind, dir.path(), &config).unwrap();
            let m = run(&*engine, workload, &sizes).unwrap();
            assert_eq!(m.ops, workload.ops(&sizes), "{kind} {}", workload.name());
            assert_eq!(m.threads, workload.threads(&sizes));
            match workload {
                Workload::ReadHit => assert_eq!(m.found, m.ops),
                Workload::ReadMiss => assert_eq!(m.found, 0),
                Workload::SeekScan => assert_eq!(m.found, 50 * 10),
                Workload::YcsbA | Workload::YcsbB => {
                    assert_eq!(m.found, m.reads);
                    assert_eq!(m.reads + m.writes, m.ops);
                    assert!(m.writes > 0);
                }
                _ => assert_eq!(m.writes, m.ops),
            }
        }
    }
}
