//! The compaction decision contract.
//!
//! A [`CompactionPolicy`] looks at the shape of the tree and says what to merge next; the
//! engine does the merging, the manifest edit and the file deletion. A policy therefore
//! holds no I/O and no state that the version does not give it.

use std::collections::HashSet;
use std::fmt;

use crate::table::{FileNo, TableMeta};

/// The tables of one version, level by level, as a policy sees them.
///
/// `levels[0]` (L0) holds tables flushed from memtables, newest first (by `max_seq`);
/// their key ranges may overlap. Every deeper level holds tables sorted by
/// `smallest_key` with disjoint key ranges, and for any key its versions in a shallower
/// level are newer than those in a deeper one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LevelsView {
    /// Tables per level.
    pub levels: Vec<Vec<TableMeta>>,
}

impl LevelsView {
    /// Total bytes of the tables in `level` (0 for a level that does not exist).
    pub fn level_bytes(&self, level: usize) -> u64 {
        self.levels.get(level).map_or(0, |l| l.iter().map(|t| t.size_bytes).sum())
    }

    /// Number of tables in `level`.
    pub fn level_len(&self, level: usize) -> usize {
        self.levels.get(level).map_or(0, Vec::len)
    }
}

/// The tables of one level that a task reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactionInput {
    /// The level they are in.
    pub level: usize,
    /// Their file numbers.
    pub tables: Vec<FileNo>,
}

/// One merge for the engine to run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactionTask {
    /// Inputs, shallowest level first. The engine merges them all into `output_level`.
    pub inputs: Vec<CompactionInput>,
    /// Level that receives the output tables.
    pub output_level: usize,
    /// Output files are cut once they reach about this many bytes.
    pub target_file_size: u64,
    /// Why the task was picked, for logs (`"L0 has 4 files (trigger 4)"`).
    pub reason: String,
}

/// Picks the next compaction, as a pure function of the version.
///
/// Contract (what the engine validates and the conformance suite checks):
/// - `pick` never names a table that is not in `view`, nor one in `busy` (being
///   compacted by another task), and names each table at most once.
/// - `output_level` is the deepest input level or the level right below it, and lies
///   below `levels()`.
/// - The task keeps the level invariants: when it reads L0 tables it reads every L0
///   table older than the newest one it reads (so newer versions never sink below
///   older ones); and it reads every table of `output_level` whose key range overlaps
///   the inputs' key range (so that level stays disjoint). Tasks breaking this are
///   rejected by the engine, logged, and counted.
/// - Given the same view and busy set it returns the same answer, and it returns
///   `None` when the tree is within its targets.
pub trait CompactionPolicy: Send + Sync + fmt::Debug {
    /// A short name for reports (`"leveled"`).
    fn name(&self) -> &'static str;
    /// Number of levels the tree may have (L0 included).
    fn levels(&self) -> usize;
    /// The next task, or `None`.
    fn pick(&self, view: &LevelsView, busy: &HashSet<FileNo>) -> Option<CompactionTask>;
}
