//! The compaction decision contract.
//!
//! A [`CompactionPolicy`] looks at the shape of the tree and says what to merge next; the
//! engine does the merging, the manifest edit and the file deletion. A policy therefore
//! holds no I/O and no state that the version does not give it.

use std::collections::HashSet;
use std::fmt;

use crate::table::{FileNo, TableMeta};
use crate::types::SeqNo;

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

/// Checks every contract clause of [`crate::CompactionPolicy::pick`] that the engine
/// relies on; the error says which clause broke.
pub fn validate_task(
    view: &LevelsView,
    busy: &HashSet<FileNo>,
    levels: usize,
    task: &CompactionTask,
) -> std::result::Result<(), String> {
    let mut seen = HashSet::new();
    let mut deepest = 0usize;
    let mut shallowest = usize::MAX;
    let mut lo: Option<&[u8]> = None;
    let mut hi: Option<&[u8]> = None;
    let mut newest_l0: Option<SeqNo> = None;
    if task.inputs.iter().all(|i| i.tables.is_empty()) {
        return Err("the task has no input table".into());
    }
    for input in &task.inputs {
        let Some(level) = view.levels.get(input.level) else {
            return Err(format!("input level L{} does not exist", input.level));
        };
        for no in &input.tables {
            let Some(t) = level.iter().find(|t| t.file_no == *no) else {
                return Err(format!("table {no} is not in L{}", input.level));
            };
            if busy.contains(no) {
                return Err(format!("table {no} is already being compacted"));
            }
            if !seen.insert(*no) {
                return Err(format!("table {no} is named twice"));
            }
            if t.entries > 0 {
                lo = Some(lo.map_or(&*t.smallest_key, |l| l.min(&*t.smallest_key)));
                hi = Some(hi.map_or(&*t.largest_key, |h| h.max(&*t.largest_key)));
            }
            if input.level == 0 {
                newest_l0 = Some(newest_l0.map_or(t.max_seq, |n| n.max(t.max_seq)));
            }
        }
        deepest = deepest.max(input.level);
        shallowest = shallowest.min(input.level);
    }
    let out = task.output_level;
    if out >= levels || !(out == deepest || out == deepest + 1) {
        return Err(format!(
            "output level L{out} must be the deepest input level L{deepest} or the next, \
             below {levels} levels"
        ));
    }
    if let Some(newest) = newest_l0 {
        for t in view.levels.first().into_iter().flatten() {
            if t.max_seq <= newest && !seen.contains(&t.file_no) {
                return Err(format!(
                    "L0 table {} is older than an L0 input but is not an input \
                     (newer versions would sink below older ones)",
                    t.file_no
                ));
            }
        }
    }
    if let (Some(lo), Some(hi)) = (lo, hi) {
        // Every level the data passes into must give up all its overlapping tables, or
        // that level would end up with overlapping ranges or with versions out of order.
        for level in (shallowest + 1).max(1)..=out {
            for t in view.levels.get(level).into_iter().flatten() {
                if t.overlaps(lo, hi) && !seen.contains(&t.file_no) {
                    return Err(format!(
                        "L{level} table {} overlaps the inputs' key range but is not an input",
                        t.file_no
                    ));
                }
            }
        }
    }
    Ok(())
}
