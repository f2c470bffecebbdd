//! Point lookups on a memory-mapped table of 300k entries (16-byte keys, 100–200-byte
//! values, 54 MB, so most lookups miss the CPU caches): hits, misses (absent keys
//! inside the key range, mostly rejected by the bloom filter), hits on the same data
//! LZ4-compressed, and hits on a 10k-entry table that stays cached.
#![expect(missing_docs, reason = "criterion_group! generates undocumented items")]

use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use strata_core::fs::{OpenMode, OsFileSystem};
use strata_core::{FileNo, SeqNo, Table, TableFormat, ValueKind};
use strata_sstable_mmap::{Compression, MmapTable, MmapTableFormat, MmapTableOptions};

const ENTRIES: u64 = 300_000;
/// A table small enough (1.8 MB) to stay in the CPU caches: the lookup's CPU cost.
const SMALL_ENTRIES: u64 = 10_000;

/// `user` and 12 decimal digits, written into a stack buffer so that producing a probe
/// key costs no cache miss of its own.
fn key(mut i: u64) -> [u8; 16] {
    let mut k = *b"user000000000000";
    for d in k[4..].iter_mut().rev() {
        *d = b'0' + (i % 10) as u8;
        i /= 10;
    }
    k
}

fn value(i: u64) -> Vec<u8> {
    let len = 100 + (i.wrapping_mul(0x9E37_79B9) % 101) as usize;
    (0..len).map(|j| (i as usize).wrapping_mul(31).wrapping_add(j * 7) as u8).collect()
}

fn build(dir: &std::path::Path, n: u64, compression: Compression, entries: u64) -> Arc<MmapTable> {
    let fs = OsFileSystem::shared();
    let path = dir.join(FileNo(n).table_file_name());
    let format = MmapTableFormat::new(MmapTableOptions::default().with_compression(compression));
    let mut b = format
        .builder(fs.open(&path, OpenMode::CreateNew).expect("create"), FileNo(n))
        .expect("builder");
    for i in 0..entries {
        // Even numbers only, so odd ones are absent keys inside the key range.
        b.add(&key(2 * i), SeqNo(i + 1), ValueKind::Put, &value(i)).expect("add");
    }
    b.finish().expect("finish");
    format
        .open_table(fs.open(&path, OpenMode::ReadOnly).expect("open"), FileNo(n))
        .expect("open table")
}

/// A cheap pseudo-random walk over `0..n`, so lookups do not follow file order.
fn next(state: &mut u64, n: u64) -> u64 {
    *state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
    (*state >> 33) % n
}

fn get(c: &mut Criterion) {
    let dir =
        tempfile::tempdir_in(std::env::current_dir().unwrap_or_else(|_| std::env::temp_dir()))
            .expect("tempdir");
    let plain = build(dir.path(), 1, Compression::None, ENTRIES);
    let lz4 = build(dir.path(), 2, Compression::Lz4, ENTRIES);
    let small_dir = dir.path().join("small");
    std::fs::create_dir(&small_dir).expect("mkdir");
    let small = build(&small_dir, 3, Compression::None, SMALL_ENTRIES);
    let mut g = c.benchmark_group("sstable_get");
    g.throughput(Throughput::Elements(1));
    let cases = [
        ("hit", &plain, ENTRIES, 0),
        ("miss", &plain, ENTRIES, 1),
        ("hit_lz4", &lz4, ENTRIES, 0),
        ("hit_cached_10k", &small, SMALL_ENTRIES, 0),
    ];
    for (name, table, entries, odd) in cases {
        let mut state = 42u64;
        g.bench_function(BenchmarkId::from_parameter(name), |bench| {
            bench.iter(|| {
                let k = key(2 * next(&mut state, entries) + odd);
                let found = table.get(&k, SeqNo::MAX).expect("get");
                debug_assert_eq!(found.is_some(), odd == 0);
                std::hint::black_box(found)
            });
        });
    }
    g.finish();
    println!(
        "table: {} entries, {} blocks, {} bytes (lz4: {} bytes)",
        plain.meta().entries,
        plain.block_count(),
        plain.meta().size_bytes,
        lz4.meta().size_bytes
    );
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = get
}
criterion_main!(benches);
