//! Criterion `compaction`: MB/s of one L0→L1 compaction on the default stack.
//!
//! Each sample builds a store (untimed) holding three 8 MiB memtables' worth of L0
//! tables with overlapping random keys, writes a fourth memtable, and times its flush
//! plus the compaction that the fourth L0 table triggers (L0 + L1 merged into L1).
//! Throughput is the bytes of tables the compaction read.
#![expect(missing_docs, reason = "criterion_group! generates undocumented items")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use strata_compaction_leveled::{LeveledOptions, LeveledPolicy};
use strata_core::{Db, DbOptions, Durability};

const MEMTABLE: usize = 8 << 20;

fn open(dir: &std::path::Path) -> Db {
    let policy = LeveledPolicy::new(LeveledOptions {
        target_file_size: 16 << 20,
        ..LeveledOptions::default()
    })
    .expect("options");
    strata_plugins::default_builder(dir)
        .with_compaction_policy(Arc::new(policy))
        .with_options(DbOptions {
            memtable_size_bytes: MEMTABLE,
            compaction_threads: 1,
            ..DbOptions::default()
        })
        .open()
        .expect("open")
}

fn fill_one_memtable(db: &Db, rng: &mut SmallRng) {
    let mut value = [0u8; 200];
    let start = db.stats().rotations;
    while db.stats().rotations == start {
        for _ in 0..1000 {
            let k = format!("user{:016x}", rng.gen_range(0..200_000u64));
            rng.fill(&mut value[..]);
            db.put(k.as_bytes(), &value, Durability::Buffered).expect("put");
        }
    }
}

/// Builds the store and returns (seconds of flush + compaction, bytes compacted).
fn one_round(seed: u64) -> (Duration, u64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = open(dir.path());
    let mut rng = SmallRng::seed_from_u64(seed);
    for _ in 0..3 {
        fill_one_memtable(&db, &mut rng);
        db.flush().expect("flush");
    }
    fill_one_memtable(&db, &mut rng);
    let before = db.stats().compaction_read_bytes;
    let t0 = Instant::now();
    db.flush().expect("flush");
    db.wait_for_background().expect("compaction");
    let elapsed = t0.elapsed();
    (elapsed, db.stats().compaction_read_bytes - before)
}

fn compaction(c: &mut Criterion) {
    let (_, bytes) = one_round(0);
    let mut g = c.benchmark_group("compaction");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(20));
    g.bench_function("l0_to_l1_4x8MiB", |b| {
        b.iter_custom(|iters| (0..iters).map(|i| one_round(i + 1).0).sum())
    });
    g.finish();
}

criterion_group!(benches, compaction);
criterion_main!(benches);
