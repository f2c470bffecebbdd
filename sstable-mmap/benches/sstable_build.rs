//! Building a table of 100k entries (16-byte keys, 150-byte values) on the real file
//! system, `finish` (and so fdatasync) included; reported in MB/s of entry bytes.
#![expect(missing_docs, reason = "criterion_group! generates undocumented items")]

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use strata_core::fs::{OpenMode, OsFileSystem};
use strata_core::{FileNo, SeqNo, TableFormat, ValueKind};
use strata_sstable_mmap::{Compression, MmapTableFormat, MmapTableOptions};

const ENTRIES: u64 = 100_000;
const VALUE_LEN: usize = 150;

fn build(c: &mut Criterion) {
    let dir =
        tempfile::tempdir_in(std::env::current_dir().unwrap_or_else(|_| std::env::temp_dir()))
            .expect("tempdir");
    let fs = OsFileSystem::shared();
    let keys: Vec<Vec<u8>> = (0..ENTRIES).map(|i| format!("user{i:012}").into_bytes()).collect();
    let values: Vec<Vec<u8>> = (0..ENTRIES)
        .map(|i| (0..VALUE_LEN).map(|j| (i as usize * 31 + j * 7) as u8).collect())
        .collect();
    let bytes: u64 = keys.iter().zip(&values).map(|(k, v)| (k.len() + v.len()) as u64).sum();
    let mut g = c.benchmark_group("sstable_build");
    g.throughput(Throughput::Bytes(bytes));
    let mut n = 0u64;
    for compression in [Compression::None, Compression::Lz4] {
        let format =
            MmapTableFormat::new(MmapTableOptions::default().with_compression(compression));
        g.bench_function(BenchmarkId::from_parameter(format!("{compression:?}")), |bench| {
            bench.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let path = dir.path().join(FileNo(n).table_file_name());
                    let file = fs.open(&path, OpenMode::CreateNew).expect("create");
                    let start = Instant::now();
                    let mut b = format.builder(file, FileNo(n)).expect("builder");
                    for (i, (k, v)) in keys.iter().zip(&values).enumerate() {
                        b.add(k, SeqNo(i as u64 + 1), ValueKind::Put, v).expect("add");
                    }
                    std::hint::black_box(b.finish().expect("finish"));
                    total += start.elapsed();
                    fs.remove_file(&path).expect("remove");
                }
                total
            });
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4));
    targets = build
}
criterion_main!(benches);
