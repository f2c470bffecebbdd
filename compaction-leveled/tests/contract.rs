//! Property test: on random valid trees and busy sets, every answer keeps the
//! `CompactionPolicy` contract. The clauses are checked here by brute force,
//! independently of core's `validate_task` (which must agree).

use std::collections::HashSet;

use proptest::prelude::*;
use strata_compaction_leveled::{LeveledOptions, LeveledPolicy};
use strata_core::compaction::{TaskKind, validate_task};
use strata_core::{CompactionPolicy, CompactionTask, FileNo, LevelsView, SeqNo, TableMeta};
use strata_harness::conformance::compaction::model::key;

#[derive(Clone, Debug)]
struct Case {
    opts: LeveledOptions,
    view: LevelsView,
    busy: HashSet<FileNo>,
}

/// One L0 table: start key, width, size, "empty table", "same max_seq as the previous".
type L0Spec = (u32, u32, u64, bool, bool);
/// One L1+ table: gap after the previous table, width, size.
type LnSpec = (u32, u32, u64);

fn arb_opts() -> impl Strategy<Value = LeveledOptions> {
    (
        2usize..=5,
        1usize..=10,
        100u64..4000,
        100u64..4000,
        2u64..=10,
        1u64..1000,
        prop::option::of(100u64..4000),
        any::<bool>(),
    )
        .prop_map(|(levels, trig, l0, l1, mult, target, cap, dynamic)| LeveledOptions {
            levels,
            l0_trigger_files: trig,
            l0_max_bytes: l0,
            l1_max_bytes: l1,
            level_size_multiplier: mult,
            dynamic_level_bytes: dynamic,
            target_file_size: target,
            max_compaction_bytes: cap,
        })
}

fn arb_case() -> impl Strategy<Value = Case> {
    arb_opts().prop_flat_map(|opts| {
        let levels = opts.levels;
        let l0 = prop::collection::vec(
            (
                0u32..1000,
                0u32..300,
                0u64..1500,
                prop::bool::weighted(0.1),
                prop::bool::weighted(0.1),
            ),
            0..9,
        );
        let ln = prop::collection::vec(
            prop::collection::vec((0u32..80, 0u32..300, 0u64..1500), 0..12),
            0..=levels,
        );
        // Each table is busy with this probability (0 in a third of the cases).
        let busy_p = prop_oneof![Just(0.0), 0.05f64..0.4];
        let coins = prop::collection::vec(0.0f64..1.0, 100);
        (Just(opts), l0, ln, busy_p, coins)
            .prop_map(|(opts, l0, ln, busy_p, coins)| build(opts, &l0, &ln, busy_p, &coins))
    })
}

fn build(
    opts: LeveledOptions,
    l0: &[L0Spec],
    ln: &[Vec<LnSpec>],
    busy_p: f64,
    coins: &[f64],
) -> Case {
    let mut next_file = 1u64;
    let mut file = || {
        next_file += 1;
        FileNo(next_file)
    };
    // L0 newest first: max_seq strictly decreasing unless a tie was asked for; empty
    // tables have max_seq 0, so they are the oldest.
    let mut level0 = Vec::new();
    let mut seq = 100_000u64;
    let (full, empties): (Vec<&L0Spec>, Vec<&L0Spec>) = l0.iter().partition(|s| !s.3);
    for &&(lo, width, size, _, tie) in &full {
        if !tie || level0.is_empty() {
            seq -= 100;
        }
        level0.push(TableMeta {
            file_no: file(),
            size_bytes: size,
            smallest_key: key(lo),
            largest_key: key(lo + width),
            min_seq: SeqNo(seq - 50),
            max_seq: SeqNo(seq),
            entries: 1 + u64::from(width),
            tombstones: size % 3,
        });
    }
    for &&(_, _, size, _, _) in &empties {
        level0.push(TableMeta { file_no: file(), size_bytes: size, ..TableMeta::default() });
    }
    let mut levels = vec![level0];
    for (depth, specs) in ln.iter().enumerate() {
        let mut tables = Vec::new();
        let mut at = 0u32;
        for &(gap, width, size) in specs {
            let lo = at + gap;
            tables.push(TableMeta {
                file_no: file(),
                size_bytes: size,
                smallest_key: key(lo),
                largest_key: key(lo + width),
                min_seq: SeqNo(1),
                max_seq: SeqNo(1000 - depth as u64),
                entries: 1 + u64::from(width),
                tombstones: u64::from(gap % 4),
            });
            at = lo + width + 1;
        }
        levels.push(tables);
    }
    let view = LevelsView { levels };
    let busy = view
        .levels
        .iter()
        .flatten()
        .filter(|t| coins[(t.file_no.0 % 100) as usize] < busy_p)
        .map(|t| t.file_no)
        .collect();
    Case { opts, view, busy }
}

fn level(view: &LevelsView, l: usize) -> &[TableMeta] {
    view.levels.get(l).map_or(&[], Vec::as_slice)
}

fn find(view: &LevelsView, l: usize, no: FileNo) -> Option<&TableMeta> {
    level(view, l).iter().find(|t| t.file_no == no)
}

/// Key range of the non-empty tables among `tables`.
fn range<'a>(tables: impl Iterator<Item = &'a TableMeta>) -> Option<(Vec<u8>, Vec<u8>)> {
    let live: Vec<&TableMeta> = tables.filter(|t| t.entries > 0).collect();
    let lo = live.iter().map(|t| t.smallest_key.to_vec()).min()?;
    let hi = live.iter().map(|t| t.largest_key.to_vec()).max()?;
    Some((lo, hi))
}

/// Tables of `l` that the inputs `from` would have to take along, grown to a fixpoint.
fn closure<'a>(view: &'a LevelsView, l: usize, from: &[&'a TableMeta]) -> Vec<&'a TableMeta> {
    let mut taken: Vec<&TableMeta> = Vec::new();
    loop {
        let Some((lo, hi)) = range(from.iter().chain(taken.iter()).copied()) else { return taken };
        let more: Vec<&TableMeta> = level(view, l)
            .iter()
            .filter(|t| t.overlaps(&lo, &hi) && !taken.iter().any(|x| x.file_no == t.file_no))
            .collect();
        if more.is_empty() {
            return taken;
        }
        taken.extend(more);
    }
}

/// Whether the leveled rule can form a task for `l` without busy tables.
fn blocked(case: &Case, l: usize) -> bool {
    let (view, busy) = (&case.view, &case.busy);
    let is_busy = |t: &&TableMeta| busy.contains(&t.file_no);
    if l == 0 {
        let l0 = level(view, 0);
        let oldest_busy = l0.iter().filter(is_busy).map(|t| t.max_seq).min();
        let take: Vec<&TableMeta> = l0
            .iter()
            .filter(|t| !is_busy(t) && oldest_busy.is_none_or(|b| t.max_seq < b))
            .collect();
        return take.is_empty() || closure(view, 1, &take).iter().any(is_busy);
    }
    level(view, l).iter().all(|t| is_busy(&t) || closure(view, l + 1, &[t]).iter().any(is_busy))
}

/// The contract, clause by clause.
fn check_contract(case: &Case, levels: usize, task: &CompactionTask) -> Result<(), TestCaseError> {
    let view = &case.view;
    let mut named: Vec<FileNo> = Vec::new();
    let mut metas: Vec<&TableMeta> = Vec::new();
    for input in &task.inputs {
        for &no in &input.tables {
            let t = find(view, input.level, no);
            prop_assert!(t.is_some(), "{no} is not in L{}", input.level);
            prop_assert!(!case.busy.contains(&no), "{no} is busy");
            prop_assert!(!named.contains(&no), "{no} named twice");
            named.push(no);
            metas.extend(t);
        }
    }
    prop_assert!(!named.is_empty(), "a task reads something");
    match task.kind {
        TaskKind::Drop => return check_drop(case, task, &metas),
        TaskKind::Move => return check_move(case, levels, task, &metas),
        TaskKind::Merge => {}
    }
    let deepest =
        task.inputs.iter().filter(|i| !i.tables.is_empty()).map(|i| i.level).max().unwrap_or(0);
    prop_assert!(task.output_level == deepest || task.output_level == deepest + 1, "output level");
    prop_assert!(task.output_level < levels, "output level exists");
    // L0 closure.
    let l0_inputs: Vec<&TableMeta> =
        level(view, 0).iter().filter(|t| named.contains(&t.file_no)).collect();
    if let Some(newest) = l0_inputs.iter().map(|t| t.max_seq).max() {
        for t in level(view, 0) {
            prop_assert!(
                t.max_seq >= newest || named.contains(&t.file_no),
                "L0 table {} left behind",
                t.file_no
            );
        }
    }
    // Output-level closure over the range of all inputs.
    if let Some((lo, hi)) = range(metas.iter().copied()) {
        for t in level(view, task.output_level) {
            prop_assert!(
                !t.overlaps(&lo, &hi) || named.contains(&t.file_no),
                "L{} table {} left behind",
                task.output_level,
                t.file_no
            );
        }
    }
    Ok(())
}

/// A drop: one level, every table all tombstones, nothing read after it overlapping it.
fn check_drop(
    case: &Case,
    task: &CompactionTask,
    metas: &[&TableMeta],
) -> Result<(), TestCaseError> {
    let view = &case.view;
    prop_assert_eq!(task.inputs.len(), 1);
    let l = task.inputs[0].level;
    prop_assert_eq!(task.output_level, l);
    for t in metas {
        prop_assert_eq!(t.tombstones, t.entries, "table {} holds puts", t.file_no);
        if t.entries == 0 {
            continue;
        }
        let read_after =
            view.levels.iter().enumerate().flat_map(|(n, ts)| ts.iter().map(move |o| (n, o)));
        for (n, o) in read_after {
            let after = n > l || (n == 0 && l == 0 && o.max_seq <= t.max_seq);
            prop_assert!(
                !after || o.file_no == t.file_no || !o.overlaps(&t.smallest_key, &t.largest_key),
                "dropped table {} covers L{} table {}",
                t.file_no,
                n,
                o.file_no
            );
        }
    }
    Ok(())
}

/// A move: one level down, no overlap among the moved tables or with the level below.
fn check_move(
    case: &Case,
    levels: usize,
    task: &CompactionTask,
    metas: &[&TableMeta],
) -> Result<(), TestCaseError> {
    prop_assert_eq!(task.inputs.len(), 1);
    let l = task.inputs[0].level;
    prop_assert_eq!(task.output_level, l + 1);
    prop_assert!(l + 1 < levels);
    for (i, a) in metas.iter().enumerate() {
        for b in metas.iter().skip(i + 1).copied().chain(level(&case.view, l + 1)) {
            prop_assert!(
                !a.overlaps(&b.smallest_key, &b.largest_key),
                "{} overlaps {}",
                a.file_no,
                b.file_no
            );
        }
    }
    if l == 0 {
        let newest = metas.iter().map(|t| t.max_seq).max();
        for t in level(&case.view, 0) {
            prop_assert!(
                newest.is_none_or(|n| t.max_seq >= n)
                    || metas.iter().any(|m| m.file_no == t.file_no),
                "L0 table {} left behind",
                t.file_no
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn every_answer_keeps_the_contract(case in arb_case()) {
        let policy = LeveledPolicy::new(case.opts.clone()).expect("generated options are valid");
        let levels = policy.levels();
        let scores = policy.level_scores(&case.view);
        prop_assert_eq!(scores.len(), levels);
        let last = levels - 1;
        let answer = policy.pick(&case.view, &case.busy);

        // Determinism: same view, a busy set that iterates in another order.
        let mut sorted: Vec<FileNo> = case.busy.iter().copied().collect();
        sorted.sort_unstable_by(|a, b| b.cmp(a));
        let busy_again: HashSet<FileNo> = sorted.into_iter().collect();
        prop_assert_eq!(&policy.pick(&case.view.clone(), &busy_again), &answer);

        match &answer {
            Some(task) => {
                check_contract(&case, levels, task)?;
                if let Err(e) = validate_task(&case.view, &case.busy, levels, task) {
                    return Err(TestCaseError::fail(format!("validate_task disagrees: {e}")));
                }
                if task.kind == TaskKind::Drop {
                    // Drops come first and need no score.
                    return Ok(());
                }
                // The source level needed compaction and nothing more urgent could run.
                let src = task.inputs[0].level;
                prop_assert!(src < last, "the last level never compacts");
                prop_assert!(scores[src] >= 1.0, "L{src} scores {}", scores[src]);
                prop_assert_eq!(task.output_level, src + 1);
                prop_assert!(task.reason.contains(&format!("L{src}")), "reason: {}", task.reason);
                if task.kind == TaskKind::Merge {
                    prop_assert_eq!(task.target_file_size, case.opts.target_file_size);
                }
                for (l, &score) in scores.iter().enumerate().take(last) {
                    prop_assert!(
                        score <= scores[src] || score < 1.0 || blocked(&case, l),
                        "L{l} scores {score} > L{src}'s {} and is not blocked", scores[src]
                    );
                }
                if src > 0 {
                    prop_assert_eq!(task.inputs[0].tables.len(), 1, "one table from L{}", src);
                }
            }
            None => {
                let droppable = case.view.levels.iter().enumerate().take(levels).any(|(l, ts)| {
                    ts.iter().any(|t| !case.busy.contains(&t.file_no) && case.view.is_droppable(l, t))
                });
                prop_assert!(!droppable, "a droppable table is left alone");
                for (l, &score) in scores.iter().enumerate().take(last) {
                    prop_assert!(score < 1.0 || blocked(&case, l), "L{l} scores {score} and is not blocked");
                }
                if case.busy.is_empty() {
                    prop_assert!(scores[..last].iter().all(|&s| s < 1.0), "None with nothing busy: {scores:?}");
                }
            }
        }
    }
}
