//! Criterion benches of the file WAL: single appends, batched appends and N-thread
//! group commit.
#![expect(missing_docs, reason = "criterion_group! generates undocumented items")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use strata_core::fs::OsFileSystem;
use strata_core::{Durability, Wal, WriteBatch};
use strata_wal_file::{FileWal, FileWalOptions};

fn open() -> (tempfile::TempDir, Arc<FileWal>) {
    let dir =
        tempfile::tempdir_in(std::env::current_dir().unwrap_or_else(|_| std::env::temp_dir()))
            .expect("tempdir");
    let wal = FileWal::open(OsFileSystem::shared(), dir.path(), FileWalOptions::default())
        .expect("open WAL");
    (dir, Arc::new(wal))
}

fn batch(entries: usize) -> WriteBatch {
    let mut b = WriteBatch::new();
    for i in 0..entries {
        b.put(format!("key-{i:012}"), [0x5au8; 200]);
    }
    b
}

fn single(c: &mut Criterion) {
    let mut g = c.benchmark_group("wal_append/single");
    let b = batch(1);
    for d in [Durability::Buffered, Durability::Sync] {
        let (_dir, wal) = open();
        g.throughput(Throughput::Elements(1));
        g.bench_function(BenchmarkId::from_parameter(format!("{d:?}")), |bench| {
            bench.iter(|| wal.append(b.as_bytes(), b.count(), d).expect("append"));
        });
    }
    g.finish();
}

fn batched(c: &mut Criterion) {
    let mut g = c.benchmark_group("wal_append/batch");
    for entries in [16usize, 128] {
        let b = batch(entries);
        let (_dir, wal) = open();
        g.throughput(Throughput::Elements(entries as u64));
        g.bench_function(BenchmarkId::new("Buffered", entries), |bench| {
            bench.iter(|| {
                wal.append(b.as_bytes(), b.count(), Durability::Buffered).expect("append")
            });
        });
    }
    g.finish();
}

fn group_commit(c: &mut Criterion) {
    let mut g = c.benchmark_group("wal_append/group_commit");
    g.sample_size(10);
    for threads in [1usize, 4, 16] {
        let b = Arc::new(batch(1));
        let (_dir, wal) = open();
        g.throughput(Throughput::Elements(threads as u64));
        // One iteration = every thread makes one Sync append; group commit lets them
        // share fdatasyncs, so elements/s grows with the thread count.
        g.bench_function(BenchmarkId::new("Sync", threads), |bench| {
            bench.iter_custom(|iters| {
                let start = Instant::now();
                std::thread::scope(|s| {
                    for _ in 0..threads {
                        let (wal, b) = (Arc::clone(&wal), Arc::clone(&b));
                        s.spawn(move || {
                            for _ in 0..iters {
                                wal.append(b.as_bytes(), b.count(), Durability::Sync)
                                    .expect("append");
                            }
                        });
                    }
                });
                start.elapsed()
            });
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = single, batched, group_commit
}
criterion_main!(benches);
