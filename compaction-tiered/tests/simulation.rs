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
//!   leveled's, for random keys and (by a wide margin) for sequential keys.

mod common;

use std::collections::HashSet;

use common::{Rng, key};
use strata_compaction_leveled::{LeveledOptions, LeveledPolicy};
use strata_compaction_tiered::{TieredOptions, TieredPolicy};
use strata_core::compaction::validate_task;
use strata_core::{CompactionPolicy, CompactionTask, FileNo, LevelsView, SeqNo, TableMeta};

/// Bytes one entry takes in the model.
const ENTRY: u64 = 16;

struct Table {
    meta: TableMeta,
    /// Sorted by key, one version per key.
    entries: Vec<(u32, u64)>,
}

struct Tree {
    levels: Vec<Vec<Table>>,
    next_file: u64,
    next_seq: u64,
    latest: Vec<u64>,
    flushed: u64,
    compacted: u64,
}

impl Tree {
    fn new(levels: usize, keys: u32) -> Self {
        Tree {
            levels: (0..levels).map(|_| Vec::new()).collect(),
            next_file: 1,
            next_seq: 1,
            latest: vec![0; keys as usize],
            flushed: 0,
            compacted: 0,
        }
    }

    fn view(&self) -> LevelsView {
        LevelsView {
            levels: self
                .levels
                .iter()
                .map(|l| l.iter().map(|t| t.meta.clone()).collect())
                .collect(),
        }
    }

    fn table(&mut self, entries: Vec<(u32, u64)>) -> Table {
        let file_no = FileNo(self.next_file);
        self.next_file += 1;
        let meta = TableMeta {
            file_no,
            size_bytes: entries.len() as u64 * ENTRY,
            smallest_key: key(entries.first().map_or(0, |e| e.0)),
            largest_key: key(entries.last().map_or(0, |e| e.0)),
            min_seq: SeqNo(entries.iter().map(|e| e.1).min().unwrap_or(0)),
            max_seq: SeqNo(entries.iter().map(|e| e.1).max().unwrap_or(0)),
            entries: entries.len() as u64,
            tombstones: 0,
        };
        Table { meta, entries }
    }

    fn flush(&mut self, keys: Vec<u32>) {
        let mut keys = keys;
        keys.sort_unstable();
        keys.dedup();
        let entries: Vec<(u32, u64)> = keys
            .into_iter()
            .map(|k| {
                let seq = self.next_seq;
                self.next_seq += 1;
                self.latest[k as usize] = seq;
                (k, seq)
            })
            .collect();
        let t = self.table(entries);
        self.flushed += t.meta.size_bytes;
        self.levels[0].insert(0, t);
    }

    /// Runs `task` as the engine would: newest version of each key wins, outputs cut at
    /// the target size, L0 kept newest first.
    fn apply(&mut self, task: &CompactionTask) {
        let mut merged: Vec<(u32, u64)> = Vec::new();
        for input in &task.inputs {
            for no in &input.tables {
                let level = &mut self.levels[input.level];
                let at = level.iter().position(|t| t.meta.file_no == *no).expect("input exists");
                merged.extend(level.remove(at).entries);
            }
        }
        merged.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        merged.dedup_by_key(|e| e.0);
        let per_file = usize::try_from(task.target_file_size / ENTRY).unwrap_or(usize::MAX).max(1);
        let out = task.output_level;
        for chunk in merged.chunks(per_file) {
            let t = self.table(chunk.to_vec());
            self.compacted += t.meta.size_bytes;
            let level = &mut self.levels[out];
            if out == 0 {
                level.push(t);
                level.sort_by_key(|t| std::cmp::Reverse(t.meta.max_seq));
                continue;
            }
            for other in level.iter() {
                assert!(
                    !other.meta.overlaps(&t.meta.smallest_key, &t.meta.largest_key),
                    "output of `{}` overlaps L{out} table {}",
                    task.reason,
                    other.meta.file_no
                );
            }
            let at = level.partition_point(|o| o.meta.smallest_key < t.meta.smallest_key);
            level.insert(at, t);
        }
    }

    /// Applies tasks until the policy has none; returns how many ran.
    fn settle(&mut self, policy: &dyn CompactionPolicy) -> usize {
        let mut n = 0;
        while let Some(task) = policy.pick(&self.view(), &HashSet::new()) {
            if let Err(why) = validate_task(&self.view(), &HashSet::new(), policy.levels(), &task) {
                panic!("{} broke the contract: {why}: {task:?}", policy.name());
            }
            self.apply(&task);
            n += 1;
            assert!(n < 10_000, "{} never settles", policy.name());
        }
        n
    }

    fn check_reads(&self) {
        // Every 7th key: enough to catch a misplaced run, fast in debug builds.
        for (k, &latest) in self.latest.iter().enumerate().step_by(7) {
            let mut seen = Vec::new();
            for level in &self.levels {
                for t in level {
                    if let Ok(i) = t.entries.binary_search_by_key(&(k as u32), |e| e.0) {
                        seen.push(t.entries[i].1);
                    }
                }
            }
            assert!(
                seen.windows(2).all(|w| w[0] > w[1]),
                "key {k}: versions out of order {seen:?}"
            );
            assert_eq!(seen.first().copied().unwrap_or(0), latest, "key {k}");
        }
    }

    fn stored_entries(&self) -> u64 {
        self.levels.iter().flatten().map(|t| t.meta.entries).sum()
    }

    fn live_keys(&self) -> u64 {
        self.latest.iter().filter(|&&s| s > 0).count() as u64
    }

    fn write_amplification(&self) -> f64 {
        (self.flushed + self.compacted) as f64 / self.flushed as f64
    }
}

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
) -> Tree {
    let mut tree = Tree::new(policy.levels(), keys);
    for (i, batch) in batches.iter().enumerate() {
        tree.flush(batch.clone());
        tree.settle(policy);
        if i % 100 == 0 {
            tree.check_reads();
        }
        if let Some(max) = max_space_amp {
            // Until the bottom outgrows L0's batch the ratio is about that batch.
            if tree.live_keys() > 4 * 120 {
                let amp = tree.stored_entries() as f64 / tree.live_keys() as f64;
                assert!(amp <= max, "flush {i}: space amplification {amp:.2} > {max}");
            }
        }
    }
    tree.check_reads();
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
        tiered_tree.stored_entries() as f64 / tiered_tree.live_keys() as f64,
        leveled_tree.stored_entries() as f64 / leveled_tree.live_keys() as f64,
    );
    assert!(t < l, "tiered {t:.2} should write less than leveled {l:.2}");
}

#[test]
fn sequential_keys_are_written_about_once() {
    const KEYS: u32 = 40_000;
    let batches = flushes(400, KEYS, true);
    let tiered_tree = run(&tiered(), &batches, KEYS, Some(1.0));
    let leveled_tree = run(&leveled(), &batches, KEYS, None);
    let (t, l) = (tiered_tree.write_amplification(), leveled_tree.write_amplification());
    println!("sequential keys: write amplification tiered {t:.2}, leveled {l:.2}");
    assert!(t < 2.5, "tiered wrote {t:.2}x for keys that never overlap");
    assert!(t < l, "tiered {t:.2} should write less than leveled {l:.2}");
}
