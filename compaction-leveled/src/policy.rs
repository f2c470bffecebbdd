//! The leveled policy itself.

use std::cmp::Ordering;
use std::collections::HashSet;

use strata_core::compaction::hull;
use strata_core::{
    CompactionInput, CompactionPolicy, CompactionTask, FileNo, LevelsView, Result, TableMeta,
};

use crate::keys::{LevelIndex, show, show_bytes};
use crate::options::LeveledOptions;

/// The leveled [`CompactionPolicy`] (name `"leveled"`).
///
/// # Decision
///
/// Every level gets a score ([`LeveledPolicy::level_scores`]): L0's is
/// `max(tables / l0_trigger_files, bytes / l0_max_bytes)`, Ln's is
/// `bytes / max_bytes_for_level_in(view, n)` (the static target, or with
/// [`LeveledOptions::dynamic_level_bytes`] one derived from the bottom level). Levels
/// scoring at least 1.0 need compaction; the last level never compacts down. The
/// policy tries them from the highest score down (ties: the shallower level first)
/// and returns the first task it can form without touching a busy table, or `None`
/// when no level needs compaction or every one that does is blocked by busy tables.
///
/// - **L0 task**: the L0 tables to merge are every not-busy L0 table older (smaller
///   `max_seq`) than the oldest busy L0 table — all of L0 when none is busy. Only that
///   oldest suffix keeps newer versions above older ones. Add every L1 table overlapping
///   their key range; output L1. No task if the set is empty or an L1 table it needs is
///   busy.
/// - **Ln task** (n ≥ 1): one Ln table plus every Ln+1 table overlapping it; output
///   Ln+1. Candidates that are busy or need a busy Ln+1 table are skipped.
///
/// # Which Ln table
///
/// The candidate with the **smallest overlap ratio**: bytes of Ln+1 it overlaps divided
/// by its own size (RocksDB's `kMinOverlappingRatio`). A compaction of Ln exists to
/// move bytes out of Ln; the Ln+1 bytes it must rewrite along the way are pure write
/// amplification, and this ratio is exactly the rewrite cost per byte moved, so
/// minimising it minimises write amplification. A policy must be pure, so LevelDB's
/// round-robin cursor is not available; the ratio needs no state. Ties (common with
/// sequential keys: a table beyond the end of Ln+1 overlaps nothing) go to the larger
/// tombstone share (pushing deletes towards the last level, where they are dropped),
/// then to the smaller key (oldest data first for time-ordered keys), then the smaller
/// file number. Candidates whose task would exceed `max_compaction_bytes` are used
/// only when no candidate fits under it.
///
/// # Moves and drops
///
/// - **Drops first.** Before anything else, the not-busy tables of the shallowest level
///   holding any that [`LevelsView::is_droppable`] accepts (every entry a tombstone,
///   nothing below it in its key range) are dropped in one task: they cost no I/O and
///   only take space. Such a drop may be returned while the tree is within its targets.
/// - **Trivial moves.** When the chosen Ln table overlaps nothing in Ln+1, the task is a
///   [`strata_core::compaction::TaskKind::Move`]: the table is re-filed in Ln+1 by a manifest edit,
///   not rewritten. The same for an L0 task whose tables overlap neither each other nor
///   any L1 table (sequential keys: each flush holds ids above the previous one's). One
///   exception: a table holding tombstones is merged (alone) rather than moved into the
///   last level, because only a merge purges tombstones that have nothing left below
///   them, and nothing compacts the last level later.
///
/// # Busy tables and scores
///
/// Scores are computed from the view alone; tables already being compacted count
/// towards their level. A level whose excess is already being compacted may therefore
/// get a second task in parallel. That costs some extra work, never correctness: the
/// tasks touch disjoint tables and key ranges.
#[derive(Clone, Debug)]
pub struct LeveledPolicy {
    opts: LeveledOptions,
}

impl LeveledPolicy {
    /// A policy with `opts`, after [`LeveledOptions::validate`].
    pub fn new(opts: LeveledOptions) -> Result<Self> {
        opts.validate()?;
        Ok(LeveledPolicy { opts })
    }

    /// The options the policy runs with.
    pub fn options(&self) -> &LeveledOptions {
        &self.opts
    }

    /// Static target size of `level` in bytes: `l0_max_bytes` for L0,
    /// `l1_max_bytes × level_size_multiplier^(level−1)` below it (saturating at
    /// `u64::MAX`). Defined for any level number; the last level of the tree has this
    /// nominal size too but never compacts down.
    ///
    /// This ignores [`LeveledOptions::dynamic_level_bytes`], which needs the tree's
    /// shape: the targets the policy actually uses come from
    /// [`LeveledPolicy::max_bytes_for_level_in`].
    pub fn max_bytes_for_level(&self, level: usize) -> u64 {
        if level == 0 {
            return self.opts.l0_max_bytes;
        }
        let mut max = self.opts.l1_max_bytes;
        for _ in 1..level {
            max = max.saturating_mul(self.opts.level_size_multiplier);
            if max == u64::MAX {
                break;
            }
        }
        max
    }

    /// Target size of `level` in bytes for the tree `view`: the one
    /// [`LeveledPolicy::level_scores`] and [`CompactionPolicy::pick`] compare against.
    ///
    /// With [`LeveledOptions::dynamic_level_bytes`] off, or while no level deeper than
    /// L1 holds bytes, this is [`LeveledPolicy::max_bytes_for_level`]. Otherwise let
    /// `d ≥ 2` be the deepest level below `levels` whose tables total more than 0 bytes
    /// (levels of `view` beyond `levels` are ignored) and `B` its bytes:
    ///
    /// - `Ld` gets `max(B, max_bytes_for_level(d))`. The bottom is where the data lives,
    ///   so it is not pushed down merely for existing; it still compacts into `Ld+1`
    ///   (score 1.0) once it reaches its static target, unless it is the last level.
    /// - `Ll`, `1 ≤ l < d`, gets `max(B / multiplier^(d−l), floor)` (integer division)
    ///   with `floor` = [`LeveledPolicy::dynamic_level_floor`].
    /// - L0 and the levels below `d` keep their static targets.
    ///
    /// Every target is positive (the options are validated), so every score is finite.
    /// When data first reaches a new bottom level, the levels above it are suddenly far
    /// over their derived targets and drain into it until they fit: a one-time rewrite
    /// of about the old bottom's bytes, the price of keeping the ×multiplier shape.
    pub fn max_bytes_for_level_in(&self, view: &LevelsView, level: usize) -> u64 {
        self.target(self.bottom(view), level)
    }

    /// The smallest dynamic target of a level between L1 and the bottom:
    /// `max(l0_max_bytes, target_file_size)` (40 MiB with the defaults).
    ///
    /// Without a floor a small bottom level would give the levels above it tiny
    /// targets (L2 = 1 MiB makes L1's 100 KiB), and every L0 compaction would be
    /// followed at once by L1 → L2 tasks each rewriting L2 — the levels would stop
    /// batching work and write amplification would explode while the tree is small.
    /// The floor keeps two properties of a sane leveled tree:
    ///
    /// - L1 can take what one L0 compaction brings (L0 compacts at `l0_max_bytes`),
    ///   the usual advice for sizing L1 next to L0;
    /// - a level can hold at least one full output table (`target_file_size`): a target
    ///   below one table would be exceeded by any task writing into the level.
    ///
    /// With the defaults this equals `l1_max_bytes / multiplier`, the smallest base
    /// level RocksDB allows with dynamic level bytes. The floor only matters while the
    /// bottom is small (below `floor × multiplier^(d−1)`), and then costs at most
    /// `floor` bytes per level above the bottom.
    pub fn dynamic_level_floor(&self) -> u64 {
        self.opts.l0_max_bytes.max(self.opts.target_file_size)
    }

    /// One score per level of the tree (`levels` entries, L0 first): how full the level
    /// is relative to its target, `≥ 1.0` meaning "needs compaction".
    ///
    /// L0 scores `max(tables / l0_trigger_files, bytes / l0_max_bytes)`; Ln scores
    /// `bytes / max_bytes_for_level_in(view, n)`. The last level's score is reported for
    /// information only: it never triggers a compaction (with dynamic targets it is at
    /// most 1.0 whenever it is the bottom). Levels of `view` beyond `levels` are
    /// ignored.
    #[allow(clippy::cast_precision_loss)] // scores are ratios; 2^53 bytes is plenty
    pub fn level_scores(&self, view: &LevelsView) -> Vec<f64> {
        let bottom = self.bottom(view);
        (0..self.opts.levels)
            .map(|level| {
                let bytes = view.level_bytes(level) as f64 / self.target(bottom, level) as f64;
                if level == 0 {
                    let files = view.level_len(0) as f64 / self.opts.l0_trigger_files as f64;
                    files.max(bytes)
                } else {
                    bytes
                }
            })
            .collect()
    }

    /// The level the dynamic targets derive from and its bytes: the deepest level in
    /// `2..levels` holding more than 0 bytes. `None` when dynamic targets are off or
    /// only L0/L1 hold data (the static targets apply).
    fn bottom(&self, view: &LevelsView) -> Option<(usize, u64)> {
        if !self.opts.dynamic_level_bytes {
            return None;
        }
        (2..self.opts.levels)
            .rev()
            .map(|l| (l, total(level(view, l).iter().map(|t| t.size_bytes))))
            .find(|&(_, bytes)| bytes > 0)
    }

    /// Target of `level` given the result of [`LeveledPolicy::bottom`].
    fn target(&self, bottom: Option<(usize, u64)>, level: usize) -> u64 {
        let fixed = self.max_bytes_for_level(level);
        match bottom {
            Some((d, bytes)) if level == d => bytes.max(fixed),
            Some((d, bytes)) if (1..d).contains(&level) => {
                let mut derived = bytes;
                for _ in level..d {
                    derived /= self.opts.level_size_multiplier;
                    if derived == 0 {
                        break;
                    }
                }
                derived.max(self.dynamic_level_floor())
            }
            _ => fixed,
        }
    }

    fn task(
        &self,
        inputs: Vec<CompactionInput>,
        output_level: usize,
        reason: String,
    ) -> CompactionTask {
        CompactionTask::merge(
            inputs.into_iter().filter(|i| !i.tables.is_empty()).collect(),
            output_level,
            self.opts.target_file_size,
            reason,
        )
    }

    /// The droppable, not-busy tables of the shallowest level that has any.
    fn pick_drop(&self, view: &LevelsView, busy: &HashSet<FileNo>) -> Option<CompactionTask> {
        (0..self.opts.levels).find_map(|l| {
            let tables: Vec<&TableMeta> = level(view, l)
                .iter()
                .filter(|t| !busy.contains(&t.file_no) && view.is_droppable(l, t))
                .collect();
            if tables.is_empty() {
                return None;
            }
            let reason = format!(
                "dropping {} L{l} tables ({}) whose every entry is a tombstone with nothing below it",
                tables.len(),
                show_bytes(total(tables.iter().map(|t| t.size_bytes))),
            );
            Some(CompactionTask::dropping(l, tables.iter().map(|t| t.file_no).collect(), reason))
        })
    }

    fn pick_l0(
        &self,
        view: &LevelsView,
        busy: &HashSet<FileNo>,
        score: f64,
    ) -> Option<CompactionTask> {
        let l0 = level(view, 0);
        // Every table we read must come with all older ones, so nothing at or above the
        // oldest busy table (ties included) can be taken.
        let oldest_busy = l0.iter().filter(|t| busy.contains(&t.file_no)).map(|t| t.max_seq).min();
        let take: Vec<&TableMeta> = l0
            .iter()
            .filter(|t| !busy.contains(&t.file_no) && oldest_busy.is_none_or(|b| t.max_seq < b))
            .collect();
        if take.is_empty() {
            return None;
        }
        let l1 = LevelIndex::new(level(view, 1));
        let overlap =
            hull(take.iter().copied()).map_or_else(Vec::new, |(lo, hi)| l1.overlapping(lo, hi));
        if overlap.iter().any(|&i| busy.contains(&l1.tables()[i].file_no)) {
            return None;
        }
        let l0_bytes = total(take.iter().map(|t| t.size_bytes));
        let why = format!(
            "L0 has {} tables (trigger {}) and {} (max {}), score {score:.2}",
            view.level_len(0),
            self.opts.l0_trigger_files,
            show_bytes(view.level_bytes(0)),
            show_bytes(self.opts.l0_max_bytes),
        );
        if overlap.is_empty() && pairwise_disjoint(&take) {
            let reason = format!(
                "{why}: moving {} L0 tables ({}) that overlap neither each other nor L1 into L1",
                take.len(),
                show_bytes(l0_bytes),
            );
            let tables = take.iter().map(|t| t.file_no).collect();
            return Some(CompactionTask::moving(0, tables, reason));
        }
        let l1_bytes = total(overlap.iter().map(|&i| l1.tables()[i].size_bytes));
        let reason = format!(
            "{why}: merging {} L0 tables ({}) with {} overlapping L1 tables ({}) into L1",
            take.len(),
            show_bytes(l0_bytes),
            overlap.len(),
            show_bytes(l1_bytes),
        );
        let inputs = vec![
            CompactionInput { level: 0, tables: take.iter().map(|t| t.file_no).collect() },
            CompactionInput {
                level: 1,
                tables: overlap.iter().map(|&i| l1.tables()[i].file_no).collect(),
            },
        ];
        Some(self.task(inputs, 1, reason))
    }

    fn pick_ln(
        &self,
        view: &LevelsView,
        busy: &HashSet<FileNo>,
        n: usize,
        score: f64,
    ) -> Option<CompactionTask> {
        let target = self.max_bytes_for_level_in(view, n);
        let src = level(view, n);
        let dst = LevelIndex::new(level(view, n + 1));
        let mut best: Option<Candidate<'_>> = None;
        for t in src {
            if busy.contains(&t.file_no) {
                continue;
            }
            let overlap = if t.entries == 0 {
                Vec::new()
            } else {
                dst.overlapping(&t.smallest_key, &t.largest_key)
            };
            if overlap.iter().any(|&i| busy.contains(&dst.tables()[i].file_no)) {
                continue;
            }
            let overlap_bytes = total(overlap.iter().map(|&i| dst.tables()[i].size_bytes));
            let over_cap = self
                .opts
                .max_compaction_bytes
                .is_some_and(|cap| t.size_bytes.saturating_add(overlap_bytes) > cap);
            let cand = Candidate { table: t, overlap, overlap_bytes, over_cap };
            if best.as_ref().is_none_or(|b| cand.cmp(b) == Ordering::Less) {
                best = Some(cand);
            }
        }
        let best = best?;
        let t = best.table;
        let into_last = n + 1 == self.opts.levels - 1;
        if best.overlap.is_empty() && !(into_last && t.tombstones > 0) {
            let reason = format!(
                "L{n} holds {}, target {} (score {score:.2}): moving table {} [{}..{}] ({}) into L{}, where nothing overlaps it",
                show_bytes(view.level_bytes(n)),
                show_bytes(target),
                t.file_no,
                show(&t.smallest_key),
                show(&t.largest_key),
                show_bytes(t.size_bytes),
                n + 1,
            );
            return Some(CompactionTask::moving(n, vec![t.file_no], reason));
        }
        let reason = format!(
            "L{n} holds {}, target {}{} (score {score:.2}): moving table {} [{}..{}] ({}) into L{} with {} overlapping tables ({}){}",
            show_bytes(view.level_bytes(n)),
            show_bytes(target),
            if target == self.max_bytes_for_level(n) {
                String::new()
            } else {
                format!(" (dynamic; static {})", show_bytes(self.max_bytes_for_level(n)))
            },
            t.file_no,
            show(&t.smallest_key),
            show(&t.largest_key),
            show_bytes(t.size_bytes),
            n + 1,
            best.overlap.len(),
            show_bytes(best.overlap_bytes),
            if best.over_cap { "; every candidate exceeds max_compaction_bytes" } else { "" },
        );
        let inputs = vec![
            CompactionInput { level: n, tables: vec![t.file_no] },
            CompactionInput {
                level: n + 1,
                tables: best.overlap.iter().map(|&i| dst.tables()[i].file_no).collect(),
            },
        ];
        Some(self.task(inputs, n + 1, reason))
    }
}

impl Default for LeveledPolicy {
    /// The policy with [`LeveledOptions::default`].
    fn default() -> Self {
        LeveledPolicy { opts: LeveledOptions::default() }
    }
}

impl CompactionPolicy for LeveledPolicy {
    fn name(&self) -> &'static str {
        "leveled"
    }

    fn levels(&self) -> usize {
        self.opts.levels
    }

    fn pick(&self, view: &LevelsView, busy: &HashSet<FileNo>) -> Option<CompactionTask> {
        if let Some(task) = self.pick_drop(view, busy) {
            return Some(task);
        }
        let scores = self.level_scores(view);
        let last = self.opts.levels - 1;
        let mut order: Vec<usize> = (0..last).filter(|&l| scores[l] >= 1.0).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        order.into_iter().find_map(|l| {
            if l == 0 {
                self.pick_l0(view, busy, scores[0])
            } else {
                self.pick_ln(view, busy, l, scores[l])
            }
        })
    }
}

/// The tables of `level` in `view` (none if the view is shallower).
fn level(view: &LevelsView, level: usize) -> &[TableMeta] {
    view.level(level)
}

/// True when no two of `tables` overlap (empty tables overlap nothing).
fn pairwise_disjoint(tables: &[&TableMeta]) -> bool {
    tables
        .iter()
        .enumerate()
        .all(|(i, a)| tables[i + 1..].iter().all(|b| !b.overlaps(&a.smallest_key, &a.largest_key)))
}

/// Sum of sizes, saturating: a damaged view must not make the policy panic.
fn total(sizes: impl Iterator<Item = u64>) -> u64 {
    sizes.fold(0, u64::saturating_add)
}

/// One Ln table considered for an Ln → Ln+1 task.
struct Candidate<'a> {
    table: &'a TableMeta,
    /// Positions of the Ln+1 tables it overlaps.
    overlap: Vec<usize>,
    overlap_bytes: u64,
    over_cap: bool,
}

impl Candidate<'_> {
    /// `Less` means "better". Exact integer arithmetic, so the order is deterministic.
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.table, other.table);
        // overlap_a / size_a  vs  overlap_b / size_b, cross-multiplied.
        let ratio = |o: u64, s: u64| u128::from(o) * u128::from(s.max(1));
        // tombstones_a / entries_a  vs  tombstones_b / entries_b, larger share first.
        let share = |t: u64, e: u64| u128::from(t) * u128::from(e.max(1));
        self.over_cap
            .cmp(&other.over_cap)
            .then_with(|| {
                ratio(self.overlap_bytes, b.size_bytes)
                    .cmp(&ratio(other.overlap_bytes, a.size_bytes))
            })
            .then_with(|| share(b.tombstones, a.entries).cmp(&share(a.tombstones, b.entries)))
            .then_with(|| a.smallest_key.cmp(&b.smallest_key))
            .then_with(|| a.file_no.cmp(&b.file_no))
    }
}
