//! Criterion benchmarks for the skiplist memtable.
//!
//! - `memtable_insert`: 16-byte random keys, 200-byte values, one thread, inserting
//!   10 000 versions into a fresh table per iteration (throughput in elements).
//! - `memtable_get`: point lookups that hit, on a table of 100 000 entries.
//! - `memtable_range`: 1 000-entry scans from random start keys on the same table.
//! - `memtable_drop`: dropping a table of 100 000 entries (what a flush does once the
//!   table is on disk; with per-entry buffers, one free per value), with the
//!   allocator the bench binary links (the system one).
#![expect(missing_docs, reason = "criterion_group! generates an undocumented pub fn")]

use std::hint::black_box;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use strata_core::{MemTable, SeqNo, ValueKind};
use strata_memtable_skiplist::SkipListMemTable;

const KEY_LEN: usize = 16;
const VALUE_LEN: usize = 200;
const INSERTS_PER_ITER: usize = 10_000;
const TABLE_ENTRIES: usize = 100_000;

fn random_keys(rng: &mut SmallRng, n: usize) -> Vec<[u8; KEY_LEN]> {
    (0..n)
        .map(|_| {
            let mut key = [0u8; KEY_LEN];
            rng.fill(&mut key[..]);
            key
        })
        .collect()
}

fn filled_table(keys: &[[u8; KEY_LEN]], value: &[u8]) -> Arc<SkipListMemTable> {
    let table = Arc::new(SkipListMemTable::new());
    for (i, key) in keys.iter().enumerate() {
        table.insert(key, SeqNo(i as u64 + 1), ValueKind::Put, value);
    }
    table
}

fn bench_insert(c: &mut Criterion) {
    let mut rng = SmallRng::seed_from_u64(0x5eed);
    let keys = random_keys(&mut rng, INSERTS_PER_ITER);
    let value = [0xabu8; VALUE_LEN];
    let mut group = c.benchmark_group("memtable_insert");
    group.throughput(Throughput::Elements(INSERTS_PER_ITER as u64));
    group.sample_size(20);
    group.bench_function("16B_key_200B_value_1_thread", |b| {
        b.iter_batched(
            SkipListMemTable::new,
            |table| {
                for (i, key) in keys.iter().enumerate() {
                    table.insert(key, SeqNo(i as u64 + 1), ValueKind::Put, &value);
                }
                // Returned so the table is dropped outside the timed section.
                table
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

fn bench_drop(c: &mut Criterion) {
    let mut rng = SmallRng::seed_from_u64(0xd50);
    let keys = random_keys(&mut rng, TABLE_ENTRIES);
    let value = [0x5au8; VALUE_LEN];
    let mut group = c.benchmark_group("memtable_drop");
    group.throughput(Throughput::Elements(TABLE_ENTRIES as u64));
    group.sample_size(10);
    group.bench_function("100k_entries_200B_values", |b| {
        b.iter_batched(|| filled_table(&keys, &value), drop, BatchSize::PerIteration);
    });
    group.finish();
}

fn bench_get(c: &mut Criterion) {
    let mut rng = SmallRng::seed_from_u64(0x6e7);
    let keys = random_keys(&mut rng, TABLE_ENTRIES);
    let table = filled_table(&keys, &[0xcdu8; VALUE_LEN]);
    let mut probes = keys.clone();
    probes.shuffle(&mut rng);

    let mut group = c.benchmark_group("memtable_get");
    group.throughput(Throughput::Elements(1));
    group.bench_function("hit_100k_entries", |b| {
        let mut next = 0usize;
        b.iter(|| {
            let key = &probes[next];
            next = (next + 1) % probes.len();
            let found = table.get(black_box(key), SeqNo::MAX);
            assert!(found.is_some());
            found
        });
    });
    group.finish();
}

fn bench_range(c: &mut Criterion) {
    const SCAN_LEN: usize = 1_000;
    let mut rng = SmallRng::seed_from_u64(0x7a5);
    let keys = random_keys(&mut rng, TABLE_ENTRIES);
    let table = filled_table(&keys, &[0xefu8; VALUE_LEN]);
    // Start keys drawn from all but the last SCAN_LEN keys, so every scan is full length.
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    let mut starts: Vec<Bytes> =
        sorted[..TABLE_ENTRIES - SCAN_LEN].iter().map(|k| Bytes::copy_from_slice(k)).collect();
    starts.shuffle(&mut rng);
    starts.truncate(1_024);

    let mut group = c.benchmark_group("memtable_range");
    group.throughput(Throughput::Elements(SCAN_LEN as u64));
    group.bench_function("scan_1000_of_100k_entries", |b| {
        let mut next = 0usize;
        b.iter(|| {
            let start = starts[next].clone();
            next = (next + 1) % starts.len();
            let scanned = Arc::clone(&table)
                .range((Bound::Included(start), Bound::Unbounded), SeqNo::MAX)
                .take(SCAN_LEN)
                .map(|e| e.value.len())
                .sum::<usize>();
            assert_eq!(scanned, SCAN_LEN * VALUE_LEN);
            scanned
        });
    });
    group.finish();
}

criterion_group!(benches, bench_insert, bench_get, bench_range, bench_drop);
criterion_main!(benches);
