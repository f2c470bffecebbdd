//! Contract test: random well-formed views (overlapping L0 tables newest first, sorted
//! disjoint deeper levels, empty tables, levels beyond `levels()`) with random busy sets.
//! Every task `pick` returns must pass `validate_task`, `pick` must be
//! deterministic, must return `None` exactly when the tree is within its targets and no
//! task is possible, and must find a task whenever one is due and nothing is busy.

use std::collections::HashSet;

use bytes::Bytes;
use proptest::prelude::*;
use strata_compaction_tiered::{TieredOptions, TieredPolicy};
use strata_core::{CompactionPolicy, FileNo, LevelsView, SeqNo, TableMeta};
use strata_harness::conformance::compaction::model::{Rng, key};

/// Per level: a list of (size, key start, key span, empty?) to turn into tables.
type Shape = Vec<Vec<(u64, u32, u32, bool)>>;

fn shape() -> impl Strategy<Value = Shape> {
    let table = (0u64..400, 0u32..1_000, 1u32..400, prop::bool::weighted(0.05));
    prop::collection::vec(prop::collection::vec(table, 0..7), 1..9)
}

/// L0 tables keep their ranges (they may overlap) and get decreasing `max_seq`; deeper
/// levels are laid out left to right so they are sorted and disjoint.
fn build(shape: &Shape) -> LevelsView {
    let mut no = 1u64;
    let mut seq = 10_000u64;
    let mut levels = Vec::new();
    for (l, tables) in shape.iter().enumerate() {
        let mut level = Vec::new();
        let mut cursor = 0u32;
        for &(size, start, span, empty) in tables {
            let (lo, hi) = if l == 0 {
                (start, start + span)
            } else {
                let lo = cursor + start % 50;
                cursor = lo + span % 120 + 1;
                (lo, cursor - 1)
            };
            seq -= 7;
            let meta = if empty {
                TableMeta { file_no: FileNo(no), size_bytes: size, ..TableMeta::default() }
            } else {
                TableMeta {
                    file_no: FileNo(no),
                    size_bytes: size,
                    smallest_key: key(lo),
                    largest_key: key(hi),
                    min_seq: SeqNo(seq - 5),
                    max_seq: SeqNo(seq),
                    entries: 10,
                    tombstones: 0,
                }
            };
            no += 1;
            level.push(meta);
        }
        if l == 0 {
            level.sort_by_key(|t| std::cmp::Reverse(t.max_seq));
        }
        levels.push(level);
    }
    LevelsView { levels }
}

fn options() -> impl Strategy<Value = TieredOptions> {
    (2usize..8, 2usize..6, 0u64..60, prop_oneof![Just(50u64), Just(200), Just(1_000)], 1u64..500)
        .prop_map(|(levels, width, ratio, amp, target)| TieredOptions {
            levels,
            min_merge_width: width,
            size_ratio_percent: ratio,
            max_space_amplification_percent: amp,
            target_file_size: target,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1_000, ..ProptestConfig::default() })]

    #[test]
    fn every_task_keeps_the_contract(
        shape in shape(),
        opts in options(),
        busy_bits in prop::collection::vec(any::<bool>(), 64),
        busy_rate in 0u8..3,
    ) {
        let policy = TieredPolicy::new(opts.clone()).expect("generated options are valid");
        let view = build(&shape);
        let all: Vec<FileNo> = view.levels.iter().flatten().map(|t| t.file_no).collect();
        // busy_rate 0: nothing busy; 1: about one table in six; 2: about half.
        let busy: HashSet<FileNo> = all
            .iter()
            .enumerate()
            .filter(|&(i, _)| busy_bits[i % 64] && (busy_rate == 2 || (busy_rate == 1 && i % 3 == 0)))
            .map(|(_, &no)| no)
            .collect();

        let picked = policy.pick(&view, &busy);
        prop_assert_eq!(&picked, &policy.pick(&view.clone(), &busy.clone()), "not deterministic");

        let usable = opts.levels.min(view.levels.len());
        let bottom = (1..usable).rev().find(|&l| view.level_len(l) > 0);
        let amp_due = policy
            .space_amplification_percent(&view)
            .is_some_and(|p| p > opts.max_space_amplification_percent)
            && bottom.is_some_and(|b| (0..b).any(|l| view.level_len(l) > 0));
        let runs_due = view.level_len(0) >= opts.min_merge_width;
        match &picked {
            None => {
                // Nothing busy: a due tree always gets a task.
                if busy.is_empty() {
                    prop_assert!(!amp_due && !runs_due, "due but no task: {:?}", view);
                }
            }
            Some(task) => {
                prop_assert!(amp_due || runs_due, "task while within targets: {}", task.reason);
                if let Err(why) = strata_core::compaction::validate_task(&view, &busy, policy.levels(), task) {
                    return Err(TestCaseError::fail(format!("{why}: {task:?} for {view:?}")));
                }
                prop_assert!(task.target_file_size > 0);
            }
        }
    }
}

#[test]
fn sorted_runs_counts_l0_tables_and_non_empty_levels() {
    let t = |no: u64| TableMeta {
        file_no: FileNo(no),
        size_bytes: 1,
        smallest_key: Bytes::from_static(b"a"),
        largest_key: Bytes::from_static(b"b"),
        entries: 1,
        ..TableMeta::default()
    };
    let view = LevelsView { levels: vec![vec![t(1), t(2)], vec![], vec![t(3), t(4)], vec![t(5)]] };
    assert_eq!(TieredPolicy::default().sorted_runs(&view), 4);
}

/// The random views above reach every kind of task (so the property is not passing
/// vacuously): run merges that stay in L0, run merges into a deeper level, and
/// space-amplification merges — each valid.
#[test]
fn random_views_reach_every_kind_of_task() {
    let mut rng = Rng(0xc0ffee);
    // A high space bound so the run-merge rules get their turn.
    let opts = TieredOptions {
        levels: 5,
        max_space_amplification_percent: 600,
        ..TieredOptions::default()
    };
    let policy = TieredPolicy::new(opts).expect("valid");
    let (mut in_l0, mut deeper, mut space) = (0, 0, 0);
    for _ in 0..3_000 {
        let levels = rng.range(1, 6) as usize;
        let shape: Shape = (0..levels)
            .map(|l| {
                let n = rng.range(0, if l == 0 { 8 } else { 4 });
                (0..n)
                    .map(|_| {
                        (
                            rng.range(0, 400),
                            rng.range(0, 1_000) as u32,
                            rng.range(1, 400) as u32,
                            false,
                        )
                    })
                    .collect()
            })
            .collect();
        let view = build(&shape);
        let busy = HashSet::new();
        let Some(task) = policy.pick(&view, &busy) else { continue };
        if let Err(why) =
            strata_core::compaction::validate_task(&view, &busy, policy.levels(), &task)
        {
            panic!("{why}: {task:?}");
        }
        if task.reason.starts_with("space amplification") {
            space += 1;
        } else if task.output_level == 0 {
            in_l0 += 1;
        } else {
            deeper += 1;
        }
    }
    println!("tasks: {in_l0} L0 merges, {deeper} deeper run merges, {space} space merges");
    assert!(in_l0 > 10 && deeper > 10 && space > 10, "{in_l0} / {deeper} / {space}");
}
