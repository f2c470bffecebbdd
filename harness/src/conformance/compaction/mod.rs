//! The [`CompactionPolicy`] conformance suite: random trees and busy sets, every answer
//! checked with [`validate_task`] (merges, moves and drops alike), a model tree the
//! suite compacts with the policy's tasks until it says `None`, and a model tree with
//! real entries on which every read must find the latest write after every task.
//! [`model`] holds the scaffolding the policy crates' own tests share.
//!
//! | check | clause |
//! |---|---|
//! | `compaction::empty_tree_needs_no_task` | `None` for a tree with no tables |
//! | `compaction::tree_within_targets_needs_no_task` | `None` when the tree is within its targets (one small table at the bottom) |
//! | `compaction::tasks_pass_validate_task` | never a table outside the view or in `busy` (random busy sets, and the inputs of a task already picked), each at most once, a legal output level, the level invariants kept |
//! | `compaction::pick_is_deterministic` | the same view and busy set give the same answer |
//! | `compaction::all_busy_yields_no_task` | with every table busy there is nothing to pick |
//! | `compaction::converges_on_a_model_tree` | applying the tasks to a model tree (with flushes in between) reaches `None`, every task valid |
//! | `compaction::tasks_keep_every_read` | on a model tree holding entries (random and sequential keys, puts and deletes), every read finds the latest write after every task: no merge, move or drop loses, resurrects or reorders a version |

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use strata_core::compaction::validate_task;
use strata_core::{CompactionPolicy, CompactionTask, FileNo, LevelsView, SeqNo, TableMeta};

use strata_core::compaction::TaskKind;

use super::report::Report;
use super::runner::{Check, CheckResult, ensure, mix, property, run_checks};

pub mod model;

/// What the policy under test supports.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CompactionCaps {
    /// Random trees the validity checks generate (more cases find rarer bugs).
    pub cases: u32,
    /// Tasks the policy may take to bring a model tree back within its targets after
    /// each burst of flushes; more means "did not converge".
    pub max_tasks_per_settle: usize,
    /// Run the convergence check (off for a policy that deliberately never finishes,
    /// e.g. a continuous rewriter).
    pub convergence: bool,
}

impl Default for CompactionCaps {
    fn default() -> Self {
        Self { cases: 256, max_tasks_per_settle: 2000, convergence: true }
    }
}

impl CompactionCaps {
    /// Sets [`CompactionCaps::cases`].
    #[must_use]
    pub fn with_cases(mut self, cases: u32) -> Self {
        self.cases = cases;
        self
    }
    /// Sets [`CompactionCaps::max_tasks_per_settle`].
    #[must_use]
    pub fn with_max_tasks_per_settle(mut self, n: usize) -> Self {
        self.max_tasks_per_settle = n;
        self
    }
    /// Sets [`CompactionCaps::convergence`].
    #[must_use]
    pub fn with_convergence(mut self, on: bool) -> Self {
        self.convergence = on;
        self
    }
}

struct Subject {
    policy: Arc<dyn CompactionPolicy>,
    caps: CompactionCaps,
}

/// Runs the compaction suite against `policy`.
pub fn run(policy: Arc<dyn CompactionPolicy>, caps: CompactionCaps) -> Report {
    let name = format!("compaction={}", policy.name());
    let conv = caps.convergence;
    let subject = Subject { policy, caps };
    let checks = vec![
        Check::new("compaction::empty_tree_needs_no_task", empty_tree),
        Check::new("compaction::tree_within_targets_needs_no_task", within_targets),
        Check::new("compaction::tasks_pass_validate_task", tasks_valid),
        Check::new("compaction::pick_is_deterministic", deterministic),
        Check::new("compaction::all_busy_yields_no_task", all_busy),
        Check::when(conv, "convergence", "compaction::converges_on_a_model_tree", converges),
        Check::when(conv, "convergence", "compaction::tasks_keep_every_read", keeps_reads),
    ];
    run_checks("compaction", name, &subject, checks)
}

/// Runs the suite against `policy` with [`CompactionCaps::default`] and panics with the
/// report when a check fails: the one line a policy crate's conformance test needs.
#[track_caller]
pub fn assert_conforms(policy: Arc<dyn CompactionPolicy>) {
    run(policy, CompactionCaps::default()).assert_ok();
}

/// Keys are numbers in a fixed-width text form, so ranges can be split arithmetically.
fn key(n: u64) -> Bytes {
    Bytes::from(format!("k{n:010}"))
}

fn key_num(k: &[u8]) -> u64 {
    std::str::from_utf8(k.get(1..).unwrap_or_default())
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

const KEY_SPACE: u64 = 1_000_000;

/// The model cuts a task's output into at most this many tables (a real engine cuts at
/// `target_file_size`), which keeps model trees small enough to pick from quickly.
const MAX_OUTPUT_TABLES: u64 = 8;

/// Builds trees and hands out file numbers.
struct TreeGen {
    next_file: u64,
}

impl TreeGen {
    fn table(&mut self, lo: u64, hi: u64, min_seq: u64, max_seq: u64, size: u64) -> TableMeta {
        self.next_file += 1;
        TableMeta {
            file_no: FileNo(self.next_file),
            size_bytes: size.max(1),
            smallest_key: key(lo),
            largest_key: key(hi.max(lo)),
            min_seq: SeqNo(min_seq),
            max_seq: SeqNo(max_seq.max(min_seq)),
            entries: (hi.max(lo) - lo + 1).min(size.max(1)),
            tombstones: 0,
        }
    }

    /// A valid random tree: L0 newest first with overlapping ranges, deeper levels
    /// disjoint and sorted, deeper data older. Sizes span bytes to tens of GiB so that
    /// every policy finds levels over and under its targets.
    fn random(&mut self, levels: usize, seed: u64, l0: usize, per_level: &[usize]) -> LevelsView {
        let mut r = seed;
        let mut next = move || {
            r = mix(r);
            r
        };
        let mut view = LevelsView { levels: vec![Vec::new(); levels] };
        let depth = levels.min(per_level.len() + 1);
        // Sequence bands: the deepest level is the oldest.
        for level in (1..depth).rev() {
            let n = per_level.get(level - 1).copied().unwrap_or(0);
            let mut points: Vec<u64> = (0..2 * n).map(|_| next() % KEY_SPACE).collect();
            points.sort_unstable();
            points.dedup();
            let band = (depth - level) as u64 * 1_000_000;
            let mut tables = Vec::new();
            for pair in points.chunks_exact(2) {
                if let [lo, hi] = pair {
                    let size = (1u64 << (10 + next() % 26)) + next() % 4096;
                    let s0 = band + next() % 400_000;
                    let mut t = self.table(*lo, *hi, s0, s0 + next() % 500_000, size);
                    // Some tables hold only tombstones: candidates for drops (or not,
                    // when something below overlaps them).
                    if next() % 6 == 0 {
                        t.tombstones = t.entries;
                    }
                    tables.push(t);
                }
            }
            if let Some(slot) = view.levels.get_mut(level) {
                *slot = tables;
            }
        }
        let mut l0_tables = Vec::new();
        let base = depth as u64 * 1_000_000 + 1_000_000;
        for i in 0..l0 {
            let lo = next() % KEY_SPACE;
            let hi = lo + next() % (KEY_SPACE / 4);
            let s0 = base + i as u64 * 1000;
            let size = (1u64 << (10 + next() % 24)) + next() % 4096;
            let mut t = self.table(lo, hi, s0, s0 + 999, size);
            if next() % 8 == 0 {
                t.tombstones = t.entries;
            }
            l0_tables.push(t);
        }
        l0_tables.reverse(); // newest first
        if let Some(slot) = view.levels.get_mut(0) {
            *slot = l0_tables;
        }
        view
    }
}

fn all_tables(view: &LevelsView) -> impl Iterator<Item = &TableMeta> {
    view.levels.iter().flatten()
}

fn describe(view: &LevelsView) -> String {
    view.levels
        .iter()
        .enumerate()
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| {
            format!(
                "L{i}: {} tables / {} bytes",
                l.len(),
                l.iter().map(|t| t.size_bytes).sum::<u64>()
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn empty_tree(s: &Subject) -> CheckResult {
    let levels = s.policy.levels();
    ensure!(
        levels >= 2,
        "clause `levels() is the number of levels, L0 included`: a tree needs at least 2, found {levels}"
    );
    for view in [LevelsView::default(), LevelsView { levels: vec![Vec::new(); levels] }] {
        let task = s.policy.pick(&view, &HashSet::new());
        ensure!(
            task.is_none(),
            "clause `pick returns None when the tree is within its targets`: an empty tree ({} levels) got {task:?}",
            view.levels.len()
        );
    }
    Ok(())
}

fn within_targets(s: &Subject) -> CheckResult {
    let levels = s.policy.levels();
    let mut g = TreeGen { next_file: 0 };
    let mut view = LevelsView { levels: vec![Vec::new(); levels] };
    if let Some(last) = view.levels.last_mut() {
        last.push(g.table(10, 20, 1, 5, 1024));
    }
    let task = s.policy.pick(&view, &HashSet::new());
    ensure!(
        task.is_none(),
        "clause `pick returns None when the tree is within its targets`: one 1 KiB table in the last level got {task:?}"
    );
    Ok(())
}

fn tree_strategy() -> impl Strategy<Value = (u64, usize, Vec<usize>, u8)> {
    (any::<u64>(), 0usize..12, prop::collection::vec(0usize..10, 0..6), 0u8..4)
}

fn busy_set(view: &LevelsView, seed: u64, fraction: u8) -> HashSet<FileNo> {
    all_tables(view)
        .filter(|t| fraction > 0 && mix(seed ^ t.file_no.0) % 8 < u64::from(fraction))
        .map(|t| t.file_no)
        .collect()
}

fn check_task(
    view: &LevelsView,
    busy: &HashSet<FileNo>,
    levels: usize,
    task: &CompactionTask,
) -> CheckResult {
    validate_task(view, busy, levels, task).map_err(|why| {
        format!(
            "clause of CompactionPolicy::pick broken: {why}\n    tree: {}\n    busy: {busy:?}\n    task: {task:?}",
            describe(view)
        )
    })?;
    ensure!(
        task.kind != TaskKind::Merge || task.target_file_size > 0,
        "merge has target_file_size 0: {task:?}"
    );
    Ok(())
}

fn tasks_valid(s: &Subject) -> CheckResult {
    let levels = s.policy.levels();
    property(s.caps.cases, tree_strategy(), |(seed, l0, per, busy_frac)| {
        let mut g = TreeGen { next_file: 0 };
        let view = g.random(levels, seed, l0, &per);
        let busy = busy_set(&view, seed, busy_frac);
        if let Some(task) = s.policy.pick(&view, &busy) {
            check_task(&view, &busy, levels, &task)?;
            // A second task picked while the first runs must keep clear of its tables.
            let mut running = busy.clone();
            running.extend(task.inputs.iter().flat_map(|i| i.tables.iter().copied()));
            if let Some(second) = s.policy.pick(&view, &running) {
                check_task(&view, &running, levels, &second)?;
            }
        }
        Ok(())
    })
}

fn deterministic(s: &Subject) -> CheckResult {
    let levels = s.policy.levels();
    property(s.caps.cases / 4 + 1, tree_strategy(), |(seed, l0, per, busy_frac)| {
        let mut g = TreeGen { next_file: 0 };
        let view = g.random(levels, seed, l0, &per);
        let busy = busy_set(&view, seed, busy_frac);
        let a = s.policy.pick(&view, &busy);
        let b = s.policy.pick(&view.clone(), &busy.clone());
        ensure!(
            a == b,
            "clause `given the same view and busy set it returns the same answer`: first {a:?}, then {b:?}"
        );
        Ok(())
    })
}

fn all_busy(s: &Subject) -> CheckResult {
    let levels = s.policy.levels();
    property(s.caps.cases / 4 + 1, tree_strategy(), |(seed, l0, per, _)| {
        let mut g = TreeGen { next_file: 0 };
        let view = g.random(levels, seed, l0, &per);
        let busy: HashSet<FileNo> = all_tables(&view).map(|t| t.file_no).collect();
        let task = s.policy.pick(&view, &busy);
        ensure!(
            task.is_none(),
            "clause `pick never names a table in busy`: with every table busy it returned {task:?}"
        );
        Ok(())
    })
}

/// Applies a validated task to the model tree: inputs go; for a merge the merged range
/// comes back in `output_level` cut into files of about `target_file_size`, for a move
/// the same tables come back there, for a drop nothing comes back.
fn apply(view: &mut LevelsView, task: &CompactionTask, g: &mut TreeGen) -> CheckResult {
    let names: HashSet<FileNo> = task.tables().collect();
    let inputs: Vec<TableMeta> =
        all_tables(view).filter(|t| names.contains(&t.file_no)).cloned().collect();
    for level in &mut view.levels {
        level.retain(|t| !names.contains(&t.file_no));
    }
    match task.kind {
        TaskKind::Drop => return Ok(()),
        TaskKind::Move => {
            let out = view.levels.get_mut(task.output_level).ok_or("output level out of range")?;
            out.extend(inputs);
            return check_disjoint(out, task);
        }
        TaskKind::Merge => {}
    }
    let lo = inputs.iter().map(|t| key_num(&t.smallest_key)).min().unwrap_or(0);
    let hi = inputs.iter().map(|t| key_num(&t.largest_key)).max().unwrap_or(0);
    let bytes: u64 = inputs.iter().map(|t| t.size_bytes).sum();
    let min_seq = inputs.iter().map(|t| t.min_seq.0).min().unwrap_or(0);
    let max_seq = inputs.iter().map(|t| t.max_seq.0).max().unwrap_or(0);
    let span = hi - lo + 1;
    let pieces = if task.output_level == 0 {
        1
    } else {
        bytes.div_ceil(task.target_file_size.max(1)).clamp(1, MAX_OUTPUT_TABLES).min(span)
    };
    let out = view.levels.get_mut(task.output_level).ok_or("output level out of range")?;
    for p in 0..pieces {
        let a = lo + span * p / pieces;
        let b = lo + span * (p + 1) / pieces - 1;
        out.push(g.table(a, b, min_seq, max_seq, bytes / pieces));
    }
    if task.output_level == 0 {
        out.sort_by_key(|t| std::cmp::Reverse(t.max_seq));
        return Ok(());
    }
    check_disjoint(out, task)
}

/// Sorts an L1+ level and checks its tables are disjoint.
fn check_disjoint(out: &mut [TableMeta], task: &CompactionTask) -> CheckResult {
    out.sort_by(|x, y| x.smallest_key.cmp(&y.smallest_key));
    for pair in out.windows(2) {
        if let [x, y] = pair {
            ensure!(
                x.entries == 0 || x.largest_key < y.smallest_key,
                "after applying {task:?}, L{} holds overlapping tables {} and {}",
                task.output_level,
                x.file_no,
                y.file_no
            );
        }
    }
    Ok(())
}

fn converges(s: &Subject) -> CheckResult {
    let levels = s.policy.levels();
    let max = s.caps.max_tasks_per_settle;
    property(8, (any::<u64>(), 1u64..23, 1usize..6), |(seed, size_log, flushes_per_round)| {
        let mut g = TreeGen { next_file: 0 };
        let mut view = LevelsView { levels: vec![Vec::new(); levels] };
        let mut seq = 1u64;
        let flush_bytes = 1u64 << (10 + size_log);
        for round in 0..6u64 {
            for f in 0..flushes_per_round as u64 {
                let r = mix(seed ^ (round << 16) ^ f);
                let lo = r % KEY_SPACE;
                let hi = (lo + mix(r) % (KEY_SPACE / 3)).min(KEY_SPACE - 1);
                let t = g.table(lo, hi, seq, seq + 99, flush_bytes);
                seq += 100;
                if let Some(l0) = view.levels.get_mut(0) {
                    l0.insert(0, t);
                }
            }
            let mut steps = 0usize;
            while let Some(task) = s.policy.pick(&view, &HashSet::new()) {
                check_task(&view, &HashSet::new(), levels, &task)?;
                apply(&mut view, &task, &mut g)?;
                steps += 1;
                ensure!(
                    steps <= max,
                    "clause `pick returns None when the tree is within its targets`: still picking after {max} tasks \
                     (round {round}); tree: {}; last task: {task:?}",
                    describe(&view)
                );
            }
        }
        Ok(())
    })
}

/// Runs `workload` on a [`model::ModelTree`]: after every flush the policy's tasks are
/// applied until it has none, and every read is checked after every task.
fn keeps_reads(s: &Subject) -> CheckResult {
    use model::{ModelTree, Rng};
    let levels = s.policy.levels();
    let max = s.caps.max_tasks_per_settle;
    const KEYS: u32 = 4_000;
    for (name, sequential) in [("random keys", false), ("sequential ids", true)] {
        let mut rng = Rng(0x5eed ^ u64::from(sequential));
        let mut tree = ModelTree::new(levels, KEYS, 16);
        let mut next_id = 0u32;
        for flush in 0..120u32 {
            let n = rng.range(20, 80) as u32;
            let ops: Vec<(u32, bool)> = (0..n)
                .map(|_| {
                    if sequential {
                        // New ids in order; now and then a delete of an old id, or a
                        // whole flush of deletes (tables of tombstones).
                        if (flush % 9 == 8 || rng.chance(1, 10)) && next_id > 0 {
                            (rng.range(0, u64::from(next_id)) as u32, true)
                        } else {
                            next_id = (next_id + 1) % KEYS;
                            (next_id, false)
                        }
                    } else {
                        (rng.range(0, u64::from(KEYS)) as u32, rng.chance(1, 6))
                    }
                })
                .collect();
            tree.flush_ops(&ops);
            let mut steps = 0usize;
            loop {
                let view = tree.view();
                let Some(task) = s.policy.pick(&view, &HashSet::new()) else { break };
                check_task(&view, &HashSet::new(), levels, &task)?;
                let applied = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    tree.apply(&task);
                    tree.check_reads(1);
                }));
                if let Err(panic) = applied {
                    let why = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                        .unwrap_or_default();
                    return Err(format!(
                        "clause `the task keeps every read` broken ({name}, flush {flush}): {why}\n    task: {task:?}"
                    ));
                }
                steps += 1;
                ensure!(
                    steps <= max,
                    "clause `pick returns None when the tree is within its targets`: still picking after {max} tasks ({name}, flush {flush})"
                );
            }
        }
    }
    Ok(())
}
