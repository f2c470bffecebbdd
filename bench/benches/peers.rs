//! Criterion `peers`: the core operations on Strata and its peers (fjall; RocksDB with
//! `--features rocksdb`), same settings ([`PeerConfig::default`]), same keys and values
//! (16 B keys, 200 B values):
//!
//! * `put` — one Buffered put of a fresh key;
//! * `get_hit` / `get_miss` — one point read of a preloaded key / of an absent key
//!   sorting between preloaded keys, on a settled store (tables, not the memtable);
//! * `seek_scan_100` — seek to a random preloaded key and read 100 entries;
//! * `sync_put` — one put with fdatasync.
#![expect(missing_docs, reason = "criterion_group! generates undocumented items")]

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use strata_bench::peers::workloads::{Sizes, key, miss_key, preload};
use strata_bench::peers::{Engine, EngineKind, PeerConfig, open};

/// The allocator of the `strata` binary, so these figures match `strata bench --peers`
/// (every engine in this process uses it alike; see the README's allocator note).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PRELOAD_KEYS: u64 = 100_000;

fn engines() -> Vec<EngineKind> {
    [EngineKind::Strata, EngineKind::Fjall, EngineKind::RocksDb]
        .into_iter()
        .filter(|k| k.available())
        .collect()
}

fn loaded(kind: EngineKind, dir: &std::path::Path) -> Box<dyn Engine> {
    let engine = open(kind, dir, &PeerConfig::default()).expect("open");
    let sizes = Sizes { keys: PRELOAD_KEYS, ..Sizes::default() };
    preload(&*engine, &sizes).expect("preload");
    engine
}

fn peers(c: &mut Criterion) {
    let mut group = c.benchmark_group("peers");
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(2));
    let value = [0x5au8; 200];
    for kind in engines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = loaded(kind, dir.path());
        let mut rng = SmallRng::seed_from_u64(7);
        let mut out = Vec::new();
        group.bench_function(BenchmarkId::new("get_hit", kind), |b| {
            b.iter(|| engine.get(&key(rng.gen_range(0..PRELOAD_KEYS)), &mut out).expect("get"))
        });
        group.bench_function(BenchmarkId::new("get_miss", kind), |b| {
            b.iter(|| engine.get(&miss_key(rng.gen_range(0..PRELOAD_KEYS)), &mut out).expect("get"))
        });
        group.bench_function(BenchmarkId::new("seek_scan_100", kind), |b| {
            b.iter(|| {
                let start = key(rng.gen_range(0..PRELOAD_KEYS - 100));
                engine.scan(&start, 100, &mut |_, _| {}).expect("scan")
            })
        });
        let mut next = PRELOAD_KEYS;
        group.bench_function(BenchmarkId::new("put", kind), |b| {
            b.iter(|| {
                next += 1;
                engine.put(&key(next), &value, false).expect("put")
            })
        });
        group.bench_function(BenchmarkId::new("sync_put", kind), |b| {
            b.iter(|| {
                next += 1;
                engine.put(&key(next), &value, true).expect("sync put")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, peers);
criterion_main!(benches);
