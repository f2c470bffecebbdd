//! Criterion benchmarks: the vector memtable against the skiplist memtable.
//!
//! - `insert_sequential`: 10 000 inserts of 8-byte big-endian ids in increasing order
//!   (the workload the vector memtable is built for), 100-byte values, one thread.
//! - `insert_random`: the same with 16-byte random keys (its worst case).
//! - `insert_4_threads_interleaved`: 4 threads insert ids `t, t+4, t+8, …` at once
//!   (40 000 versions in total): sequential overall, racy at the tail.
//! - `get_sequential`: point lookups that hit, on a table of 100 000 sequential ids.
//!
//! Every insert group runs into a fresh table per iteration. Run with short settings:
//! `cargo bench -p strata-memtable-vector --bench vector -- --warm-up-time 1 --measurement-time 2`.
#![expect(missing_docs, reason = "criterion_group! generates an undocumented pub fn")]

use std::hint::black_box;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use strata_core::{MemTable, SeqNo, ValueKind};
use strata_memtable_skiplist::SkipListMemTable;
use strata_memtable_vector::VectorMemTable;

const VALUE_LEN: usize = 100;
const INSERTS: usize = 10_000;
const TABLE_ENTRIES: u64 = 100_000;

fn sequential_keys(n: usize) -> Vec<Vec<u8>> {
    (0..n as u64).map(|id| (1_000_000 + id).to_be_bytes().to_vec()).collect()
}

fn random_keys(n: usize) -> Vec<Vec<u8>> {
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    (0..n)
        .map(|_| {
            let mut key = vec![0u8; 16];
            rng.fill(&mut key[..]);
            key
        })
        .collect()
}

fn insert_all<M: MemTable>(table: M, keys: &[Vec<u8>], value: &[u8]) -> M {
    for (i, key) in keys.iter().enumerate() {
        table.insert(key, SeqNo(i as u64 + 1), ValueKind::Put, value);
    }
    table
}

fn bench_inserts(c: &mut Criterion, group_name: &str, keys: &[Vec<u8>]) {
    let value = [0xabu8; VALUE_LEN];
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(keys.len() as u64));
    group.bench_function("vector", |b| {
        b.iter_batched(
            VectorMemTable::new,
            |t| insert_all(t, keys, &value),
            BatchSize::PerIteration,
        );
    });
    group.bench_function("skiplist", |b| {
        b.iter_batched(
            SkipListMemTable::new,
            |t| insert_all(t, keys, &value),
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

fn bench_insert_sequential(c: &mut Criterion) {
    bench_inserts(c, "insert_sequential", &sequential_keys(INSERTS));
}

fn bench_insert_random(c: &mut Criterion) {
    bench_inserts(c, "insert_random", &random_keys(INSERTS));
}

type MakeTable = fn() -> Arc<dyn MemTable>;

/// Time for `threads` writers to insert `per_thread` interleaved ids each into `table`.
fn interleaved(table: Arc<dyn MemTable>, threads: u64, per_thread: u64) -> Duration {
    let barrier = Arc::new(Barrier::new(threads as usize + 1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let table = Arc::clone(&table);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                let value = [0xcdu8; VALUE_LEN];
                barrier.wait();
                for i in 0..per_thread {
                    let id = i * threads + t;
                    table.insert(&id.to_be_bytes(), SeqNo(id + 1), ValueKind::Put, &value);
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for h in handles {
        h.join().expect("writer panicked");
    }
    start.elapsed()
}

fn bench_insert_interleaved(c: &mut Criterion) {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 10_000;
    let mut group = c.benchmark_group("insert_4_threads_interleaved");
    group.throughput(Throughput::Elements(THREADS * PER_THREAD));
    let makers: [(&str, MakeTable); 2] = [
        ("vector", || Arc::new(VectorMemTable::new())),
        ("skiplist", || Arc::new(SkipListMemTable::new())),
    ];
    for (name, make) in makers {
        group.bench_function(name, |b| {
            b.iter_custom(|iters| {
                (0..iters).map(|_| interleaved(make(), THREADS, PER_THREAD)).sum()
            });
        });
    }
    group.finish();
}

fn bench_get_sequential(c: &mut Criterion) {
    let keys = sequential_keys(TABLE_ENTRIES as usize);
    let value = [0xefu8; VALUE_LEN];
    let vector = insert_all(VectorMemTable::new(), &keys, &value);
    let skiplist = insert_all(SkipListMemTable::new(), &keys, &value);
    let mut rng = SmallRng::seed_from_u64(0x6e7);
    let probes: Vec<&Vec<u8>> = (0..4_096).map(|_| &keys[rng.gen_range(0..keys.len())]).collect();
    let mut group = c.benchmark_group("get_sequential");
    group.throughput(Throughput::Elements(1));
    let tables: [(&str, &dyn MemTable); 2] = [("vector", &vector), ("skiplist", &skiplist)];
    for (name, table) in tables {
        group.bench_function(name, |b| {
            let mut next = 0usize;
            b.iter(|| {
                let key = probes[next];
                next = (next + 1) % probes.len();
                let found = table.get(black_box(key), SeqNo::MAX);
                assert!(found.is_some());
                found
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench_insert_sequential, bench_insert_random, bench_insert_interleaved, bench_get_sequential
}
criterion_main!(benches);
