//! Simulation: a model LSM tree whose tables hold real (key, sequence) entries is fed
//! the same flush sequence under the tiered policy and under the leveled policy; after
//! every flush the policy's tasks are applied until it says `None`. Checks:
//!
//! - every task passes `validate_task`, and outputs never overlap a table of an output
//!   level of L1 or deeper;
//! - for every key a top-down read (L0 newest first, then L1, L2, …) meets versions in
//!   strictly decreasing sequence order, the first being the latest written;
//! - space amplification (entries stored / distinct keys) stays within the configured
//!   bound once the tree has a bottom run;
//! - write amplification ((flushed + compacted bytes) / flushed bytes) is lower than
//!   leveled's for random keys; for sequential keys both write about once (leveled
//!   exactly once: its tables go down by trivial moves).

use strata_compaction_leveled::{LeveledOptions, LeveledPolicy};
use strata_compaction_tiered::{TieredOptions, TieredPolicy};
use strata_core::CompactionPolicy;
use strata_harness::conformance::compaction::model::{ModelTree, Rng};

/// Bytes one entry takes in the model.
const ENTRY: u64 = 16;

/// The flushes: `n` memtables of 40..120 keys, random over `keys` or sequential ids.
fn flushes(n: usize, keys: u32, sequential: bool) -> Vec<Vec<u32>> {
    let mut rng = Rng(0x7133_7e4d);
    let mut next_id = 0u32;
    (0..n)
        .map(|_| {
            let len = rng.range(40, 120) as u32;
            if sequential {
                let batch: Vec<u32> = (next_id..next_id + len).collect();
                next_id += len;
                batch
            } else {
                (0..len).map(|_| rng.range(0, u64::from(keys)) as u32).collect()
            }
        })
        .collect()
}

fn tiered() -> TieredPolicy {
    TieredPolicy::new(TieredOptions { target_file_size: 1_600, ..TieredOptions::default() })
        .expect("valid")
}

fn leveled() -> LeveledPolicy {
    LeveledPolicy::new(LeveledOptions {
        l0_trigger_files: 4,
        l0_max_bytes: 4 * 80 * ENTRY,
        l1_max_bytes: 4 * 80 * ENTRY,
        target_file_size: 1_600,
        ..LeveledOptions::default()
    })
    .expect("valid")
}

/// Feeds `batches` to a tree under `policy`, checking reads and (for tiered) space
/// amplification after every settle; returns the tree.
fn run(
    policy: &dyn CompactionPolicy,
    batches: &[Vec<u32>],
    keys: u32,
    max_space_amp: Option<f64>,
) -> ModelTree {
    let mut tree = ModelTree::new(policy.levels(), keys, ENTRY);
    for (i, batch) in batches.iter().enumerate() {
        tree.flush(batch);
        tree.settle(policy, 10_000);
        if i % 100 == 0 {
            tree.check_reads(7);
        }
        if let Some(max) = max_space_amp {
            // Until the bottom outgrows L0's batch the ratio is about that batch.
            if tree.live_keys() > 4 * 120 {
                let amp = tree.space_amplification();
                assert!(amp <= max, "flush {i}: space amplification {amp:.2} > {max}");
            }
        }
    }
    tree.check_reads(7);
    tree
}

#[test]
fn random_keys_lower_write_amplification_than_leveled_with_bounded_space() {
    const KEYS: u32 = 20_000;
    let batches = flushes(600, KEYS, false);
    // Bytes above the bottom <= 200 % of it, and the bottom holds each key at most once.
    let tiered_tree = run(&tiered(), &batches, KEYS, Some(3.0));
    let leveled_tree = run(&leveled(), &batches, KEYS, None);
    let (t, l) = (tiered_tree.write_amplification(), leveled_tree.write_amplification());
    println!(
        "random keys: write amplification tiered {t:.2}, leveled {l:.2}; space amplification tiered {:.2}, leveled {:.2}",
        tiered_tree.space_amplification(),
        leveled_tree.space_amplification(),
    );
    assert!(t < l, "tiered {t:.2} should write less than leveled {l:.2}");
}

/// Keys that only grow: tiered merges each batch of L0 runs once; leveled moves every
/// table down without rewriting it (trivial moves), so it writes each byte exactly once.
#[test]
fn sequential_keys_are_written_about_once() {
    const KEYS: u32 = 40_000;
    let batches = flushes(400, KEYS, true);
    let tiered_tree = run(&tiered(), &batches, KEYS, Some(1.0));
    let leveled_tree = run(&leveled(), &batches, KEYS, None);
    let (t, l) = (tiered_tree.write_amplification(), leveled_tree.write_amplification());
    println!("sequential keys: write amplification tiered {t:.2}, leveled {l:.2}");
    assert!(t < 2.5, "tiered wrote {t:.2}x for keys that never overlap");
    assert!(l < 1.01, "leveled rewrote {l:.2}x for keys that never overlap: no moves?");
    assert_eq!(leveled_tree.merged_bytes, 0, "leveled merged nothing");
    assert!(leveled_tree.moved_tables > 0);
}
