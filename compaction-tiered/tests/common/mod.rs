//! Helpers shared by the test files (each file uses a subset).
#![allow(dead_code)]

use std::collections::HashSet;

use bytes::Bytes;
use strata_compaction_tiered::TieredOptions;
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

/// A key as 4 big-endian bytes, so byte order is numeric order.
pub fn key(k: u32) -> Bytes {
    Bytes::copy_from_slice(&k.to_be_bytes())
}

/// Small sizes: merge at 4 L0 tables, 100-byte output files, 7 levels.
pub fn tiny() -> TieredOptions {
    TieredOptions { target_file_size: 100, ..TieredOptions::default() }
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
}
