//! The tiered policy itself.

use std::collections::HashSet;

use strata_core::compaction::hull;
use strata_core::{
    CompactionInput, CompactionPolicy, CompactionTask, FileNo, LevelsView, Result, TableMeta,
};

use crate::options::TieredOptions;

/// The size-tiered ("universal") [`CompactionPolicy`] (name `"tiered"`).
///
/// # Shape
///
/// The tree is a list of *sorted runs*, newest first: every L0 table (newest first),
/// then every non-empty level L1, L2, … as one run each. Data only ever moves from a
/// run into an older one, and a run is rewritten only when it is merged with runs of
/// about its own size, so a byte is rewritten about once per doubling of the data
/// above it instead of once per level per ×10 as in leveled compaction.
///
/// # Decision
///
/// [`CompactionPolicy::pick`] tries, in order:
///
/// 1. **Space amplification.** Let the *bottom* be the deepest non-empty level `Ld`
///    (`d ≥ 1`, below `levels`). When the bytes in L0..Ld−1 exceed
///    `max_space_amplification_percent` of the bottom's bytes, merge everything above
///    the bottom (all L0 tables, all tables of L1..Ld−1) with every bottom table
///    overlapping their key range, into the bottom. (If nothing in the bottom
///    overlaps and a level between is empty, the output lands in the empty level right
///    below the deepest input instead — the contract lets data move one level per
///    task — and the next pick carries it further.)
/// 2. **Run merge.** When L0 holds at least `min_merge_width` tables: take all of L0
///    (the contract's L0 closure makes any other choice a suffix of L0 that still
///    contains the oldest table, and merging only old tables would let the newest
///    pile up), then walk the levels below: the next non-empty level joins the merge
///    while it overlaps the merge's key range and its bytes are at most
///    `(100 + size_ratio_percent) %` of the bytes gathered so far. The output goes to
///    the level right below the deepest input when that level exists and holds no
///    table overlapping the merge's key range (an empty slot, or — with sequential
///    keys — a run whose keys all lie elsewhere, which the output joins without
///    rewriting it); otherwise to the deepest input level. A merge of L0 tables alone
///    that cannot leave L0 writes a single L0 table.
/// 3. Otherwise `None`: L0 is below `min_merge_width` and space amplification within
///    its bound.
///
/// Each level below L0 therefore acts as one bit of a binary counter: `min_merge_width`
/// flushes become a run in L1, the next batch of the same size merges with it into L2,
/// and so on. A full tree (every slot taken) keeps its L0 merges in L0 until they are
/// large enough to join L1, and the space-amplification merge eventually folds
/// everything into the bottom.
///
/// # Read amplification
///
/// A point read visits at most `min_merge_width − 1` L0 tables (plus the one L0 run a
/// full tree may keep there) and one table per level: `levels − 1` runs below L0.
///
/// # Busy tables
///
/// Every task reads all of L0 (or, for a space-amplification merge, everything above
/// the bottom), so while one task runs the next pick is usually `None`. A task is only
/// returned when none of its tables is busy; merges stop walking down at a level
/// holding a busy table.
#[derive(Clone, Debug)]
pub struct TieredPolicy {
    opts: TieredOptions,
}

impl TieredPolicy {
    /// A policy with `opts`, after [`TieredOptions::validate`].
    pub fn new(opts: TieredOptions) -> Result<Self> {
        opts.validate()?;
        Ok(TieredPolicy { opts })
    }

    /// The options the policy runs with.
    pub fn options(&self) -> &TieredOptions {
        &self.opts
    }

    /// Number of sorted runs in `view` that a read may have to visit: one per L0 table
    /// plus one per non-empty level below L0 (levels at or beyond `levels` included).
    pub fn sorted_runs(&self, view: &LevelsView) -> usize {
        view.level_len(0) + view.levels.iter().skip(1).filter(|l| !l.is_empty()).count()
    }

    /// The space amplification estimate the policy compares against
    /// `max_space_amplification_percent`: bytes above the bottom level × 100 / bytes of
    /// the bottom level (the deepest non-empty level below L0), rounded down.
    ///
    /// `None` when no level below L0 holds a table (there is no bottom yet); `u64::MAX`
    /// when the bottom's tables total 0 bytes but something lies above it.
    pub fn space_amplification_percent(&self, view: &LevelsView) -> Option<u64> {
        let bottom = self.bottom(view)?;
        let above = total((0..bottom).map(|l| view.level_bytes(l)));
        let base = view.level_bytes(bottom);
        if base == 0 {
            return Some(if above == 0 { 0 } else { u64::MAX });
        }
        Some(u64::try_from(u128::from(above) * 100 / u128::from(base)).unwrap_or(u64::MAX))
    }

    /// The deepest non-empty level in `1..levels`, if any.
    fn bottom(&self, view: &LevelsView) -> Option<usize> {
        (1..self.opts.levels.min(view.levels.len())).rev().find(|&l| view.level_len(l) > 0)
    }

    fn pick_space_amp(&self, view: &LevelsView, busy: &HashSet<FileNo>) -> Option<CompactionTask> {
        let bottom = self.bottom(view)?;
        let pct = self.space_amplification_percent(view)?;
        if pct <= self.opts.max_space_amplification_percent {
            return None;
        }
        let mut inputs = Vec::new();
        let mut gathered: Vec<&TableMeta> = Vec::new();
        for l in 0..bottom {
            let tables = level(view, l);
            if !tables.is_empty() {
                gathered.extend(tables);
                inputs.push(CompactionInput { level: l, tables: nos(tables) });
            }
        }
        if gathered.is_empty() {
            return None;
        }
        let (above_n, above_bytes) = (gathered.len(), total(gathered.iter().map(|t| t.size_bytes)));
        let overlapping = closed_overlap(level(view, bottom), hull(gathered.iter().copied()));
        let bottom_bytes = total(overlapping.iter().map(|t| t.size_bytes));
        let bottom_n = overlapping.len();
        if !overlapping.is_empty() {
            inputs.push(CompactionInput {
                level: bottom,
                tables: overlapping.iter().map(|t| t.file_no).collect(),
            });
        }
        if inputs.iter().flat_map(|i| &i.tables).any(|no| busy.contains(no)) {
            return None;
        }
        let deepest = inputs.last().map_or(0, |i| i.level);
        // Levels strictly between the deepest input and the bottom are empty (all their
        // tables would be inputs), so one level down is always a legal destination.
        let output = if deepest == bottom { bottom } else { deepest + 1 };
        let reason = format!(
            "space amplification {pct}% > {}%: merging {above_n} tables above L{bottom} ({}) \
             with {bottom_n} overlapping L{bottom} tables ({}) into L{output}",
            self.opts.max_space_amplification_percent,
            show_bytes(above_bytes),
            show_bytes(bottom_bytes),
        );
        Some(self.task(inputs, output, reason))
    }

    fn pick_runs(&self, view: &LevelsView, busy: &HashSet<FileNo>) -> Option<CompactionTask> {
        let l0 = level(view, 0);
        if l0.len() < self.opts.min_merge_width {
            return None;
        }
        // L0 closure: any L0 task reads every L0 table older than its newest input, and
        // this one reads all of L0, so a busy L0 table blocks it.
        if l0.iter().any(|t| busy.contains(&t.file_no)) {
            return None;
        }
        let mut inputs = vec![CompactionInput { level: 0, tables: nos(l0) }];
        let mut gathered: Vec<&TableMeta> = l0.iter().collect();
        let mut bytes = total(l0.iter().map(|t| t.size_bytes));
        let mut joined = Vec::new();
        let levels = self.opts.levels.min(view.levels.len());
        for l in 1..levels {
            let tables = level(view, l);
            if tables.is_empty() {
                continue;
            }
            let Some((lo, hi)) = hull(gathered.iter().copied()) else { break };
            let run_bytes = view.level_bytes(l);
            let limit =
                u128::from(bytes) * u128::from(100 + self.opts.size_ratio_percent.min(1 << 32));
            let similar = u128::from(run_bytes) * 100 <= limit;
            let overlaps = tables.iter().any(|t| t.overlaps(lo, hi));
            let free = tables.iter().all(|t| !busy.contains(&t.file_no));
            if !(similar && overlaps && free) {
                break;
            }
            gathered.extend(tables);
            bytes = bytes.saturating_add(run_bytes);
            joined.push(format!("L{l} ({})", show_bytes(run_bytes)));
            inputs.push(CompactionInput { level: l, tables: nos(tables) });
        }
        let deepest = inputs.last().map_or(0, |i| i.level);
        let below = deepest + 1;
        let output = match hull(gathered.iter().copied()) {
            Some((lo, hi))
                if below < self.opts.levels
                    && !level(view, below).iter().any(|t| t.overlaps(lo, hi)) =>
            {
                below
            }
            // Only empty tables: they cover no key, so nothing below can overlap.
            None if below < self.opts.levels => below,
            _ => deepest,
        };
        let reason = format!(
            "L0 has {} tables (merge width {}), {}{}: merging {} into L{output}",
            l0.len(),
            self.opts.min_merge_width,
            show_bytes(total(l0.iter().map(|t| t.size_bytes))),
            if joined.is_empty() { String::new() } else { format!(" with {}", joined.join(", ")) },
            show_bytes(bytes),
        );
        Some(self.task(inputs, output, reason))
    }

    fn task(
        &self,
        inputs: Vec<CompactionInput>,
        output_level: usize,
        reason: String,
    ) -> CompactionTask {
        // One merge into L0 must make exactly one L0 run: a cut output would count as
        // several tables towards `min_merge_width`.
        let target_file_size =
            if output_level == 0 { u64::MAX } else { self.opts.target_file_size };
        CompactionTask::merge(inputs, output_level, target_file_size, reason)
    }
}

impl Default for TieredPolicy {
    /// The policy with [`TieredOptions::default`].
    fn default() -> Self {
        TieredPolicy { opts: TieredOptions::default() }
    }
}

impl CompactionPolicy for TieredPolicy {
    fn name(&self) -> &'static str {
        "tiered"
    }

    fn levels(&self) -> usize {
        self.opts.levels
    }

    fn pick(&self, view: &LevelsView, busy: &HashSet<FileNo>) -> Option<CompactionTask> {
        self.pick_space_amp(view, busy).or_else(|| self.pick_runs(view, busy))
    }
}

/// The tables of `level` in `view` (none if the view is shallower).
fn level(view: &LevelsView, level: usize) -> &[TableMeta] {
    view.level(level)
}

fn nos(tables: &[TableMeta]) -> Vec<FileNo> {
    tables.iter().map(|t| t.file_no).collect()
}

/// Sum of sizes, saturating: a damaged view must not make the policy panic.
fn total(sizes: impl Iterator<Item = u64>) -> u64 {
    sizes.fold(0, u64::saturating_add)
}

/// The tables of `tables` overlapping `range`, grown to a fixpoint: the result also
/// holds every table overlapping the hull of `range` and the tables already taken. In
/// a well-formed (sorted, disjoint) level the first pass is already closed; the loop
/// keeps a malformed level from producing a task the engine would reject.
fn closed_overlap<'a>(
    tables: &'a [TableMeta],
    range: Option<(&'a [u8], &'a [u8])>,
) -> Vec<&'a TableMeta> {
    let Some((mut lo, mut hi)) = range else { return Vec::new() };
    let mut taken = vec![false; tables.len()];
    loop {
        let mut grew = false;
        for (t, taken) in tables.iter().zip(taken.iter_mut()) {
            if !*taken && t.overlaps(lo, hi) {
                *taken = true;
                grew = true;
                lo = lo.min(&*t.smallest_key);
                hi = hi.max(&*t.largest_key);
            }
        }
        if !grew {
            break;
        }
    }
    tables.iter().zip(taken).filter_map(|(t, taken)| taken.then_some(t)).collect()
}

/// A byte count for messages: `900 B`, `3.5 KiB`, `40.0 MiB`.
fn show_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    #[expect(clippy::cast_precision_loss, reason = "an approximate figure for humans")]
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS.get(unit).copied().unwrap_or("EiB"))
}
