//! Hand-built trees with the task each one must get: the run merge into an empty slot,
//! the cascade into the level below, the L0-only merge when L1 is too big, sequential
//! keys joining a run without rewriting it, the space-amplification merge, busy tables,
//! and `None` within targets. Every task is also checked with `validate_task`.

use std::collections::HashSet;

use strata_compaction_tiered::{TieredOptions, TieredPolicy};
use strata_core::compaction::validate_task;
use strata_core::{CompactionPolicy, CompactionTask, Error, FileNo, LevelsView, TableMeta};
use strata_harness::conformance::compaction::model::{busy, files, pick_checked, t};

fn view(levels: Vec<Vec<TableMeta>>) -> LevelsView {
    LevelsView { levels }
}

/// Small sizes: merge at 4 L0 tables, 100-byte output files, 7 levels.
fn tiny() -> TieredOptions {
    TieredOptions { target_file_size: 100, ..TieredOptions::default() }
}

fn policy() -> TieredPolicy {
    TieredPolicy::new(tiny()).expect("tiny options are valid")
}

fn pick(view: &LevelsView, busy: &HashSet<FileNo>) -> Option<CompactionTask> {
    pick_checked(&policy(), view, busy)
}

/// Four L0 tables, newest first, all over "a".."z".
fn l0(first_no: u64, size: u64) -> Vec<TableMeta> {
    (0..4).map(|i| t(first_no + i, "a", "z", size, 100 - i)).collect()
}

#[test]
fn within_targets_is_none() {
    assert_eq!(pick(&LevelsView::default(), &HashSet::new()), None);
    let three = view(vec![l0(1, 10)[..3].to_vec()]);
    assert_eq!(pick(&three, &HashSet::new()), None);
    // A bottom with 200 % above it is exactly at the bound: still fine.
    let at_bound = view(vec![l0(1, 10)[..2].to_vec(), vec![t(9, "a", "z", 10, 1)]]);
    assert_eq!(policy().space_amplification_percent(&at_bound), Some(200));
    assert_eq!(pick(&at_bound, &HashSet::new()), None);
}

#[test]
fn full_l0_merges_into_the_empty_level_below() {
    let v = view(vec![l0(1, 10), vec![], vec![]]);
    let task = pick(&v, &HashSet::new()).expect("L0 is full");
    assert_eq!(files(&task, 0), [1, 2, 3, 4]);
    assert_eq!(task.output_level, 1);
    assert_eq!(task.target_file_size, 100);
}

#[test]
fn similar_run_joins_and_the_result_sinks_one_level() {
    // L0 40 B, L1 45 B (<= 1.2 x 40): merged together into the empty L2.
    let v = view(vec![l0(1, 10), vec![t(10, "a", "m", 20, 50), t(11, "n", "z", 25, 50)], vec![]]);
    let task = pick(&v, &HashSet::new()).expect("L0 is full");
    assert_eq!(files(&task, 1), [10, 11]);
    assert_eq!(task.output_level, 2);
    // L0 + L1 = 85 B and L3 holds 90 B: it joins too, output into L3 (L4 is absent).
    let v =
        view(vec![l0(1, 10), vec![t(10, "a", "z", 45, 50)], vec![], vec![t(20, "a", "z", 90, 20)]]);
    let task = pick(&v, &HashSet::new()).expect("L0 is full");
    assert_eq!((files(&task, 1), files(&task, 3)), (vec![10], vec![20]));
    assert_eq!(task.output_level, 4);
}

#[test]
fn l0_merge_stays_in_l0_as_one_table_when_l1_is_much_larger() {
    let v = view(vec![l0(1, 10), vec![t(10, "a", "z", 49, 50)]]);
    let task = pick(&v, &HashSet::new()).expect("L0 is full");
    assert_eq!(files(&task, 1), Vec::<u64>::new());
    assert_eq!(task.output_level, 0);
    assert_eq!(task.target_file_size, u64::MAX, "one merge makes one L0 run");
}

#[test]
fn sequential_keys_join_a_run_without_rewriting_it() {
    // L1 holds older, smaller keys; the new L0 tables lie above them.
    let l0: Vec<TableMeta> = (0..4).map(|i| t(1 + i, "m", "z", 10, 100 - i)).collect();
    let v = view(vec![l0, vec![t(10, "a", "c", 10, 50), t(11, "d", "l", 30, 50)]]);
    let task = pick(&v, &HashSet::new()).expect("L0 is full");
    assert_eq!(files(&task, 1), Vec::<u64>::new(), "L1 does not overlap: not rewritten");
    assert_eq!(task.output_level, 1);
}

#[test]
fn space_amplification_merges_everything_into_the_bottom() {
    // 30 B above a 10 B bottom: 300 % > 200 %.
    let v = view(vec![
        vec![t(1, "c", "f", 10, 100)],
        vec![t(5, "a", "z", 20, 50)],
        vec![],
        vec![t(7, "a", "b", 5, 10), t(8, "d", "e", 5, 10), t(9, "x", "y", 0, 10)],
    ]);
    assert_eq!(policy().space_amplification_percent(&v), Some(300));
    let task = pick(&v, &HashSet::new()).expect("space amplification is over");
    assert_eq!((files(&task, 0), files(&task, 1)), (vec![1], vec![5]));
    // L1's table spans a..z, so every bottom table it overlaps is an input.
    assert_eq!(files(&task, 3), [7, 8, 9]);
    assert_eq!(task.output_level, 3);
    assert!(task.reason.contains("space amplification 300%"), "{}", task.reason);
}

#[test]
fn space_amplification_without_bottom_overlap_moves_one_level() {
    let v = view(vec![vec![t(1, "m", "n", 30, 100)], vec![], vec![t(7, "a", "b", 10, 10)]]);
    let task = pick(&v, &HashSet::new()).expect("space amplification is over");
    assert_eq!(files(&task, 2), Vec::<u64>::new());
    assert_eq!(task.output_level, 1);
}

#[test]
fn busy_tables_block_the_tasks_that_need_them() {
    let v = view(vec![l0(1, 10), vec![t(10, "a", "z", 40, 50)], vec![]]);
    assert_eq!(pick(&v, &busy(&[4])), None, "every L0 task reads the busy oldest table");
    // A busy L1 only stops the walk: L0 merges in L0.
    let task = pick(&v, &busy(&[10])).expect("L0 can still merge");
    assert_eq!(task.output_level, 0);
}

#[test]
fn views_deeper_than_levels_are_ignored() {
    let p = TieredPolicy::new(TieredOptions { levels: 2, ..tiny() }).expect("valid");
    let v = view(vec![l0(1, 10), vec![t(10, "a", "z", 40, 50)], vec![t(20, "a", "z", 1, 1)]]);
    let task = p.pick(&v, &HashSet::new()).expect("L0 is full");
    assert_eq!(task.output_level, 1);
    assert!(validate_task(&v, &HashSet::new(), 2, &task).is_ok());
}

#[test]
fn new_rejects_bad_options_with_a_config_error() {
    let err = TieredPolicy::new(TieredOptions { min_merge_width: 0, ..TieredOptions::default() })
        .expect_err("width 0 is invalid");
    assert!(matches!(&err, Error::Config(m) if m.contains("min_merge_width")), "{err}");
    let p = TieredPolicy::default();
    assert_eq!((p.name(), p.levels()), ("tiered", 7));
    assert_eq!(p.options(), &TieredOptions::default());
}
