//! Peer engines for side-by-side benchmarks: Strata's default stack, [fjall] and (with
//! the `rocksdb` cargo feature) RocksDB, behind one small [`Engine`] trait, opened with
//! matched settings from one [`PeerConfig`], and the workloads that drive them
//! ([`workloads`]).
//!
//! # Matched settings
//!
//! | setting | Strata | fjall | RocksDB |
//! |---|---|---|---|
//! | WAL | file WAL, always on | journal, always on | WAL on |
//! | Sync write | `Durability::Sync` (fdatasync, group commit) | batch with `PersistMode::SyncData` | `WriteOptions::set_sync(true)` |
//! | Buffered write | `Durability::Buffered` (write(2), no fsync) | `insert` (journal flushed to the OS, no fsync) | `sync = false` (write(2), no fsync) |
//! | memtable | `memtable_bytes` | `max_memtable_size` | `write_buffer_size` |
//! | block cache | none: tables are mmap'd, the OS page cache holds them | `cache_bytes` | LRU `cache_bytes` |
//! | bloom filter | 10 bits/key | 10 bits/key | 10 bits/key (full filter) |
//! | block size | 4 KiB | 4 KiB | 4 KiB |
//! | compression | none | none | none |
//! | background threads | `background_threads` compaction + 1 flush | `background_threads + 1` workers | `max_background_jobs = background_threads + 1` |
//! | compaction | leveled | leveled | leveled |

mod fjall_engine;
#[cfg(feature = "rocksdb")]
mod rocksdb_engine;
mod strata_engine;
pub mod workloads;

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use fjall_engine::FjallEngine;
#[cfg(feature = "rocksdb")]
pub use rocksdb_engine::RocksDbEngine;
pub use strata_engine::StrataEngine;

/// An error of a peer engine or of the benchmark around it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PeerError {
    /// Strata failed.
    #[error("strata: {0}")]
    Strata(#[from] strata_core::Error),
    /// fjall failed.
    #[error("fjall: {0}")]
    Fjall(#[from] fjall::Error),
    /// RocksDB failed.
    #[cfg(feature = "rocksdb")]
    #[error("rocksdb: {0}")]
    RocksDb(#[from] rocksdb::Error),
    /// A file-system call of the benchmark itself failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A bad request: unknown engine, engine not compiled in, impossible sizes.
    #[error("{0}")]
    Config(String),
    /// Recording a latency failed.
    #[error("latency histogram: {0}")]
    Histogram(String),
    /// A worker thread panicked.
    #[error("a benchmark thread panicked in {0}")]
    Panicked(String),
}

/// Result of peer operations.
pub type Result<T> = std::result::Result<T, PeerError>;

/// Which engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EngineKind {
    /// Strata's default stack (file WAL, skiplist memtable, mmap tables, leveled).
    Strata,
    /// fjall, pure Rust.
    Fjall,
    /// RocksDB through the `rocksdb` crate (only usable with the `rocksdb` feature).
    RocksDb,
}

impl EngineKind {
    /// The engine's name as used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Strata => "strata",
            Self::Fjall => "fjall",
            Self::RocksDb => "rocksdb",
        }
    }

    /// Whether this build can open the engine (RocksDB needs the `rocksdb` feature).
    pub fn available(self) -> bool {
        !matches!(self, Self::RocksDb) || cfg!(feature = "rocksdb")
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for EngineKind {
    type Err = PeerError;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "strata" => Ok(Self::Strata),
            "fjall" => Ok(Self::Fjall),
            "rocksdb" | "rocks" => Ok(Self::RocksDb),
            other => Err(PeerError::Config(format!(
                "unknown engine {other:?} (expected strata, fjall or rocksdb)"
            ))),
        }
    }
}

/// Settings every engine is opened with (see the [module docs](self) for how each maps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerConfig {
    /// Memtable (write buffer) size in bytes.
    pub memtable_bytes: u64,
    /// Block cache in bytes (fjall, RocksDB; Strata reads through mmap).
    pub cache_bytes: u64,
    /// Compaction threads (plus one flush thread / job each).
    pub background_threads: usize,
    /// Bloom filter bits per key.
    pub bloom_bits_per_key: u32,
    /// Data block size in bytes.
    pub block_size: usize,
}

impl Default for PeerConfig {
    fn default() -> Self {
        Self {
            memtable_bytes: 32 << 20,
            cache_bytes: 64 << 20,
            background_threads: 1,
            bloom_bits_per_key: 10,
            block_size: 4096,
        }
    }
}

/// One key-value store under test. Every method may be called from several threads.
pub trait Engine: Send + Sync {
    /// Which engine this is.
    fn kind(&self) -> EngineKind;

    /// Writes one entry; with `sync`, returns once it is durable (fdatasync).
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<()>;

    /// Writes `entries` atomically as one batch; with `sync`, durably.
    fn write_batch(&self, entries: &[(&[u8], &[u8])], sync: bool) -> Result<()>;

    /// Reads `key`; copies its value into `out` (cleared first) and returns true when
    /// present.
    fn get(&self, key: &[u8], out: &mut Vec<u8>) -> Result<bool>;

    /// Seeks to the first key `>= start` and visits up to `limit` entries in key order;
    /// returns how many it visited.
    fn scan(
        &self,
        start: &[u8],
        limit: usize,
        visit: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<usize>;

    /// Flushes memtables and waits until background flushes and compactions are idle.
    fn settle(&self) -> Result<()>;

    /// The directory the engine stores its files in.
    fn dir(&self) -> &Path;

    /// Engine-specific figures worth printing next to a measurement (write stalls,
    /// flushes, compaction bytes, level shape), as `(name, value)`; empty by default.
    fn engine_stats(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
}

/// Opens `kind` in `dir` (created if missing) with `config`.
pub fn open(kind: EngineKind, dir: &Path, config: &PeerConfig) -> Result<Box<dyn Engine>> {
    std::fs::create_dir_all(dir).map_err(|source| PeerError::Io {
        context: format!("creating {}", dir.display()),
        source,
    })?;
    Ok(match kind {
        EngineKind::Strata => Box::new(StrataEngine::open(dir, config)?),
        EngineKind::Fjall => Box::new(FjallEngine::open(dir, config)?),
        #[cfg(feature = "rocksdb")]
        EngineKind::RocksDb => Box::new(RocksDbEngine::open(dir, config)?),
        #[cfg(not(feature = "rocksdb"))]
        EngineKind::RocksDb => {
            return Err(PeerError::Config(
                "this build has no RocksDB: rebuild with `--features rocksdb` \
                 (to link Debian's librocksdb-dev instead of compiling RocksDB, set \
                 ROCKSDB_LIB_DIR=/usr/lib/x86_64-linux-gnu ROCKSDB_INCLUDE_DIR=/usr/include; \
                 see docs/peers.md)"
                    .into(),
            ));
        }
    })
}

/// Bytes allocated on disk by every file under `dir` (`st_blocks × 512`, so sparse or
/// preallocated files count as what they really occupy).
pub fn disk_bytes(dir: &Path) -> Result<u64> {
    Ok(disk_usage(dir)?.total)
}

/// What a store occupies on disk, split into its write-ahead log and everything else.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Bytes allocated by every file (`st_blocks × 512`).
    pub total: u64,
    /// Of which write-ahead log / journal files: Strata's `wal_*.log` (preallocated to
    /// the segment size), fjall's `*.jnl`, RocksDB's `NNNNNN.log`.
    pub wal: u64,
}

fn is_wal_file(name: &str) -> bool {
    (name.starts_with("wal_") && name.ends_with(".log"))
        || name.ends_with(".jnl")
        || name
            .strip_suffix(".log")
            .is_some_and(|stem| !stem.is_empty() && stem.bytes().all(|b| b.is_ascii_digit()))
}

/// Bytes allocated on disk under `dir`, total and write-ahead log (see [`DiskUsage`]).
pub fn disk_usage(dir: &Path) -> Result<DiskUsage> {
    use std::os::unix::fs::MetadataExt;
    let mut usage = DiskUsage::default();
    let mut stack: Vec<PathBuf> = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| PeerError::Io {
            context: format!("listing {}", d.display()),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| PeerError::Io {
                context: format!("listing {}", d.display()),
                source,
            })?;
            let path = entry.path();
            let meta = match std::fs::symlink_metadata(&path) {
                Ok(m) => m,
                // Files deleted by a background compaction while we walk.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(source) => {
                    return Err(PeerError::Io {
                        context: format!("stat {}", path.display()),
                        source,
                    });
                }
            };
            if meta.is_dir() {
                stack.push(path);
            } else {
                let bytes = meta.blocks() * 512;
                usage.total += bytes;
                if is_wal_file(&entry.file_name().to_string_lossy()) {
                    usage.wal += bytes;
                }
            }
        }
    }
    Ok(usage)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn engines() -> Vec<EngineKind> {
        [EngineKind::Strata, EngineKind::Fjall, EngineKind::RocksDb]
            .into_iter()
            .filter(|k| k.available())
            .collect()
    }

    #[test]
    fn every_engine_reads_back_what_it_wrote() {
        for kind in engines() {
            let dir = tempfile::tempdir().unwrap();
            let config = PeerConfig { memtable_bytes: 1 << 20, ..PeerConfig::default() };
            let engine = open(kind, dir.path(), &config).unwrap();
            assert_eq!(engine.kind(), kind);
            for i in 0..2000u32 {
                let key = format!("{i:016}");
                engine.put(key.as_bytes(), &i.to_le_bytes().repeat(8), i % 500 == 0).unwrap();
            }
            let batch: Vec<(Vec<u8>, Vec<u8>)> =
                (0..10u32).map(|i| (format!("b{i:015}").into_bytes(), vec![i as u8; 50])).collect();
            let refs: Vec<(&[u8], &[u8])> =
                batch.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
            engine.write_batch(&refs, true).unwrap();
            engine.put(b"0000000000000007", b"overwritten", false).unwrap();
            let mut out = Vec::new();
            for phase in 0..2 {
                for i in [0u32, 1, 999, 1999] {
                    assert!(engine.get(format!("{i:016}").as_bytes(), &mut out).unwrap());
                    assert_eq!(out, i.to_le_bytes().repeat(8), "{kind} key {i} phase {phase}");
                }
                assert!(engine.get(b"0000000000000007", &mut out).unwrap());
                assert_eq!(out, b"overwritten");
                assert!(engine.get(b"b000000000000009", &mut out).unwrap());
                assert_eq!(out, vec![9u8; 50]);
                assert!(!engine.get(b"0000000000000100x", &mut out).unwrap(), "{kind}");
                assert!(!engine.get(b"zzz", &mut out).unwrap(), "{kind}");
                let mut keys = Vec::new();
                let n = engine
                    .scan(b"0000000000000990", 20, &mut |k, _| keys.push(k.to_vec()))
                    .unwrap();
                assert_eq!(n, 20);
                let want: Vec<Vec<u8>> =
                    (990..1010u32).map(|i| format!("{i:016}").into_bytes()).collect();
                assert_eq!(keys, want, "{kind} scan phase {phase}");
                let tail = engine.scan(b"b000000000000008", 100, &mut |_, _| {}).unwrap();
                assert_eq!(tail, 2, "{kind}");
                // The second pass reads from tables instead of memtables.
                engine.settle().unwrap();
            }
            let usage = disk_usage(engine.dir()).unwrap();
            assert!(usage.total > 0 && usage.wal <= usage.total, "{kind}: {usage:?}");
            // RocksDB's fresh log after a flush may be empty (no blocks yet).
            if kind != EngineKind::RocksDb {
                assert!(usage.wal > 0, "{kind}: no write-ahead log file recognised");
            }
        }
    }

    /// Random puts, overwrites and batches (buffered and synced) against a `BTreeMap`
    /// model, with point reads (hits and misses) and scans from random starts checked
    /// after every step and again after each settle, on every engine compiled in
    /// (RocksDB with the `rocksdb` feature). Values up to 2 KiB into 64 KiB memtables,
    /// so reads cross memtables, flushed tables and compactions.
    #[test]
    fn every_engine_matches_a_model() {
        use rand::rngs::SmallRng;
        use rand::{Rng, SeedableRng};
        use std::collections::BTreeMap;

        const KEYS: u32 = 400;
        let key = |i: u32| format!("{i:016}").into_bytes();
        for kind in engines() {
            let dir = tempfile::tempdir().unwrap();
            let config = PeerConfig { memtable_bytes: 64 << 10, ..PeerConfig::default() };
            let engine = open(kind, dir.path(), &config).unwrap();
            let mut rng = SmallRng::seed_from_u64(7);
            let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
            let mut out = Vec::new();
            for step in 0..3000u32 {
                let value = |rng: &mut SmallRng| {
                    let len = rng.gen_range(0..2048);
                    let fill = rng.r#gen::<u8>();
                    (0..len).map(|i| fill.wrapping_add(i as u8)).collect::<Vec<u8>>()
                };
                match rng.gen_range(0..10) {
                    0..=5 => {
                        let (k, v) = (key(rng.gen_range(0..KEYS)), value(&mut rng));
                        engine.put(&k, &v, rng.gen_range(0..50) == 0).unwrap();
                        model.insert(k, v);
                    }
                    6 => {
                        // Later entries of a batch win over earlier ones with the key.
                        let batch: Vec<(Vec<u8>, Vec<u8>)> = (0..rng.gen_range(1..20))
                            .map(|_| (key(rng.gen_range(0..KEYS)), value(&mut rng)))
                            .collect();
                        let refs: Vec<(&[u8], &[u8])> =
                            batch.iter().map(|(k, v)| (k.as_slice(), v.as_slice())).collect();
                        engine.write_batch(&refs, rng.gen_range(0..10) == 0).unwrap();
                        model.extend(batch);
                    }
                    7 | 8 => {
                        // Keys 0..KEYS+50: some never written.
                        let k = key(rng.gen_range(0..KEYS + 50));
                        let found = engine.get(&k, &mut out).unwrap();
                        match model.get(&k) {
                            Some(v) => assert!(found && out == *v, "{kind} step {step} get"),
                            None => assert!(!found && out.is_empty(), "{kind} step {step} miss"),
                        }
                    }
                    _ => {
                        let mut start = key(rng.gen_range(0..KEYS + 50));
                        if rng.gen_range(0..2) == 0 {
                            // Between real keys.
                            start.push(b'm');
                        }
                        let limit = rng.gen_range(0..40);
                        let mut got = Vec::new();
                        let n = engine
                            .scan(&start, limit, &mut |k, v| got.push((k.to_vec(), v.to_vec())))
                            .unwrap();
                        let want: Vec<(Vec<u8>, Vec<u8>)> = model
                            .range(start..)
                            .take(limit)
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect();
                        assert_eq!(n, want.len(), "{kind} step {step} scan count");
                        assert!(got == want, "{kind} step {step} scan contents");
                    }
                }
                if step % 1000 == 999 {
                    engine.settle().unwrap();
                }
            }
            engine.settle().unwrap();
            let mut all = Vec::new();
            let n = engine
                .scan(b"", usize::MAX, &mut |k, v| all.push((k.to_vec(), v.to_vec())))
                .unwrap();
            assert_eq!(n, model.len(), "{kind} full scan");
            assert!(all.into_iter().eq(model.into_iter()), "{kind} full scan contents");
        }
    }

    #[test]
    fn wal_files_are_recognised_by_name() {
        for wal in ["wal_00000000000000561840.log", "1.jnl", "000004.log"] {
            assert!(is_wal_file(wal), "{wal}");
        }
        for other in ["000015.sst", "LOG", "LOG.old.1700000000", "MANIFEST-000001", ".log"] {
            assert!(!is_wal_file(other), "{other}");
        }
    }

    #[test]
    fn engine_names_parse() {
        assert_eq!("fjall".parse::<EngineKind>().unwrap(), EngineKind::Fjall);
        assert_eq!("RocksDB".parse::<EngineKind>().unwrap(), EngineKind::RocksDb);
        assert!("leveldb".parse::<EngineKind>().is_err());
        if !EngineKind::RocksDb.available() {
            let dir = tempfile::tempdir().unwrap();
            let err = open(EngineKind::RocksDb, dir.path(), &PeerConfig::default());
            assert!(matches!(err, Err(PeerError::Config(_))));
        }
    }
}
