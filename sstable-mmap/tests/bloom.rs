//! The bloom filter's false-positive rate, measured with 100k keys and 100k absent
//! probes, for the default setting (through a real table) and for a sparser one.

mod common;

use common::{Env, put};
use strata_sstable_mmap::{BloomFilter, DEFAULT_BLOOM_BITS_PER_KEY, MmapTableOptions};

const KEYS: usize = 100_000;

fn present(i: usize) -> Vec<u8> {
    format!("user:{i:010}").into_bytes()
}

/// Absent keys of the same shape as the present ones, so a weak hash cannot hide.
fn absent(i: usize) -> Vec<u8> {
    format!("user:{:010}", KEYS + i).into_bytes()
}

#[test]
fn default_table_filter_stays_below_one_percent() {
    let env = Env::sim();
    let entries: Vec<_> = (0..KEYS).map(|i| put(present(i), i as u64 + 1, b"v")).collect();
    env.build(MmapTableOptions::default(), 1, &entries);
    let table = env.open(1).expect("open");
    assert!(
        (0..KEYS).all(|i| table.may_contain(&present(i))),
        "a bloom filter has no false negatives"
    );
    let probes: Vec<Vec<u8>> = (0..KEYS).map(absent).collect();
    let rate = table.filter().measure_false_positive_rate(probes.iter().map(|k| &k[..]));
    let theory = BloomFilter::theoretical_false_positive_rate(DEFAULT_BLOOM_BITS_PER_KEY);
    println!(
        "default ({DEFAULT_BLOOM_BITS_PER_KEY} bits/key): measured {rate:.4}, theory {theory:.4}"
    );
    assert!(rate < 0.01, "false-positive rate {rate} must stay below 1 %");
    assert!(
        rate > theory * 0.5,
        "rate {rate} implausibly far below theory {theory}: probes not absent?"
    );
}

#[test]
fn sparser_filter_matches_the_theoretical_rate() {
    let keys: Vec<Vec<u8>> = (0..KEYS).map(present).collect();
    let probes: Vec<Vec<u8>> = (0..KEYS).map(absent).collect();
    for (bits, ceiling) in [(5u32, 0.12), (8, 0.03), (16, 0.002)] {
        let f = BloomFilter::from_keys(keys.iter().map(|k| &k[..]), bits);
        let rate = f.measure_false_positive_rate(probes.iter().map(|k| &k[..]));
        let theory = BloomFilter::theoretical_false_positive_rate(bits);
        println!(
            "{bits} bits/key, {} hashes: measured {rate:.4}, theory {theory:.4}",
            f.hash_count()
        );
        assert!(rate < ceiling, "{bits} bits/key: rate {rate} above {ceiling}");
        assert!(
            (theory * 0.6..=theory * 1.4).contains(&rate),
            "{bits} bits/key: measured {rate} is far from theory {theory}"
        );
    }
}

#[test]
fn random_keys_have_the_same_rate() {
    use rand::{Rng, SeedableRng, rngs::SmallRng};
    let mut rng = SmallRng::seed_from_u64(7);
    let mut key = || -> Vec<u8> { (0..rng.gen_range(1..40)).map(|_| rng.r#gen::<u8>()).collect() };
    let keys: Vec<Vec<u8>> = (0..KEYS).map(|_| key()).collect();
    let f = BloomFilter::from_keys(keys.iter().map(|k| &k[..]), DEFAULT_BLOOM_BITS_PER_KEY);
    let set: std::collections::HashSet<&Vec<u8>> = keys.iter().collect();
    let probes: Vec<Vec<u8>> = (0..KEYS).map(|_| key()).filter(|k| !set.contains(k)).collect();
    let rate = f.measure_false_positive_rate(probes.iter().map(|k| &k[..]));
    assert!(rate < 0.01, "random keys: rate {rate}");
}
