//! Bloom filter probes (10 bits per key) on filters of 100k keys (fits in L2) and 1M
//! keys (1.2 MB, mostly cache misses), for present and absent keys.
#![expect(missing_docs, reason = "criterion_group! generates undocumented items")]

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use strata_sstable_mmap::{BloomFilter, DEFAULT_BLOOM_BITS_PER_KEY};

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

fn probe(c: &mut Criterion) {
    let mut g = c.benchmark_group("bloom_filter");
    g.throughput(Throughput::Elements(1));
    for n in [100_000u64, 1_000_000] {
        let keys: Vec<[u8; 16]> = (0..n).map(key).collect();
        let filter =
            BloomFilter::from_keys(keys.iter().map(|k| &k[..]), DEFAULT_BLOOM_BITS_PER_KEY);
        for (name, first) in [("present", 0), ("absent", n)] {
            let mut state = 7u64;
            g.bench_function(BenchmarkId::new(name, n), |bench| {
                bench.iter(|| {
                    state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    let k = key(first + (state >> 33) % n);
                    std::hint::black_box(filter.may_contain(&k))
                });
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = probe
}
criterion_main!(benches);
