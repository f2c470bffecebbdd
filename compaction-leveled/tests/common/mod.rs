//! Helpers shared by the test files (each file uses a subset).
#![allow(dead_code)]

use std::collections::HashSet;

use bytes::Bytes;
use strata_compaction_leveled::LeveledOptions;
use strata_core::{CompactionTask, FileNo, SeqNo, TableMeta};

/// A non-empty table with string keys.
pub fn t(no: u64, lo: &str, hi: &str, size: u64, max_seq: u64) -> TableMeta {
    TableMeta {
        file_no: FileNo(no),
        size_bytes: size,
        smallest_key: Bytes::copy_from_slice(lo.as_bytes()),
        largest_key: Bytes::copy_from_slice(hi.as_bytes()),
        min_seq: SeqNo(max_seq.saturating_sub(5)),
        max_seq: SeqNo(max_seq),
        entries: 10,
        tombstones: 0,
    }
}

/// A table holding no entries (it overlaps nothing).
pub fn empty(no: u64, size: u64) -> TableMeta {
    TableMeta { file_no: FileNo(no), size_bytes: size, ..TableMeta::default() }
}

/// A key as 4 big-endian bytes, so byte order is numeric order.
pub fn key(k: u32) -> Bytes {
    Bytes::copy_from_slice(&k.to_be_bytes())
}

/// Small sizes so a handful of tables fills a level: L0 4 tables or 1000 B, L1 1000 B,
/// L2 10 000 B, L3 last. Dynamic targets are on (the default), with a floor of 1000 B:
/// L1's target stays 1000 B until the bottom below it passes 10 000 B.
pub fn tiny() -> LeveledOptions {
    LeveledOptions {
        levels: 4,
        l0_trigger_files: 4,
        l0_max_bytes: 1000,
        l1_max_bytes: 1000,
        level_size_multiplier: 10,
        dynamic_level_bytes: true,
        target_file_size: 100,
        max_compaction_bytes: None,
    }
}

pub fn busy(nos: &[u64]) -> HashSet<FileNo> {
    nos.iter().map(|&n| FileNo(n)).collect()
}

/// File numbers the task reads from `level`, in task order.
pub fn files(task: &CompactionTask, level: usize) -> Vec<u64> {
    task.inputs
        .iter()
        .filter(|i| i.level == level)
        .flat_map(|i| i.tables.iter().map(|f| f.0))
        .collect()
}

/// Every file number the task reads.
pub fn all_files(task: &CompactionTask) -> Vec<u64> {
    task.inputs.iter().flat_map(|i| i.tables.iter().map(|f| f.0)).collect()
}

/// splitmix64: a tiny deterministic generator for the simulations.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi` (hi > lo).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }

    /// True with probability `num / den`.
    pub fn chance(&mut self, num: u64, den: u64) -> bool {
        self.next() % den < num
    }
}
