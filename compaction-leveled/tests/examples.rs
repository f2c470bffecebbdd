//! Hand-built trees with tiny sizes, one behaviour per test.

use std::collections::HashSet;

use strata_compaction_leveled::{LeveledOptions, LeveledPolicy};
use strata_core::compaction::TaskKind;
use strata_core::{CompactionPolicy, CompactionTask, Error, FileNo, LevelsView, TableMeta};
use strata_harness::conformance::compaction::model::{
    all_files, busy, empty, files, pick_checked, t, tombstones,
};

/// Small sizes so a handful of tables fills a level: L0 4 tables or 1000 B, L1 1000 B,
/// L2 10 000 B, L3 last. Dynamic targets are on (the default), with a floor of 1000 B:
/// L1's target stays 1000 B until the bottom below it passes 10 000 B.
fn tiny() -> LeveledOptions {
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

fn view(levels: Vec<Vec<TableMeta>>) -> LevelsView {
    LevelsView { levels }
}

fn policy(opts: LeveledOptions) -> LeveledPolicy {
    LeveledPolicy::new(opts).expect("valid options")
}

/// Picks, and checks the answer against the contract before handing it back.
fn pick(p: &LeveledPolicy, v: &LevelsView, b: &HashSet<FileNo>) -> Option<CompactionTask> {
    pick_checked(p, v, b)
}

#[test]
fn defaults_match_the_design() {
    let o = LeveledOptions::default();
    assert_eq!(o.levels, 7);
    assert_eq!(o.l0_trigger_files, 4);
    assert_eq!(o.l0_max_bytes, 40 << 20);
    assert_eq!(o.l1_max_bytes, 400 << 20);
    assert_eq!(o.level_size_multiplier, 10);
    assert!(o.dynamic_level_bytes, "dynamic level targets are on by default");
    assert_eq!(o.target_file_size, 32 << 20);
    assert_eq!(o.max_compaction_bytes, Some(800 << 20));
    o.validate().expect("defaults are valid");

    let p = LeveledPolicy::default();
    assert_eq!(p.name(), "leveled");
    assert_eq!(p.levels(), 7);
    assert_eq!(p.options(), &o);
    assert_eq!(p.max_bytes_for_level(0), 40 << 20);
    assert_eq!(p.max_bytes_for_level(1), 400 << 20);
    assert_eq!(p.max_bytes_for_level(2), 4000 << 20);
    assert_eq!(p.max_bytes_for_level(6), (400 * 100_000) << 20);
    assert_eq!(p.max_bytes_for_level(40), u64::MAX, "saturates instead of overflowing");
    assert_eq!(p.dynamic_level_floor(), 40 << 20, "max(l0_max_bytes, target_file_size)");
}

#[test]
fn nonsense_options_are_config_errors_naming_the_field() {
    let base = LeveledOptions::default();
    let cases: Vec<(&str, LeveledOptions)> = vec![
        ("levels", LeveledOptions { levels: 0, ..base.clone() }),
        ("levels", LeveledOptions { levels: 1, ..base.clone() }),
        ("levels", LeveledOptions { levels: 65, ..base.clone() }),
        ("l0_trigger_files", LeveledOptions { l0_trigger_files: 0, ..base.clone() }),
        ("l0_max_bytes", LeveledOptions { l0_max_bytes: 0, ..base.clone() }),
        ("l1_max_bytes", LeveledOptions { l1_max_bytes: 0, ..base.clone() }),
        ("level_size_multiplier", LeveledOptions { level_size_multiplier: 1, ..base.clone() }),
        ("level_size_multiplier", LeveledOptions { level_size_multiplier: 0, ..base.clone() }),
        ("target_file_size", LeveledOptions { target_file_size: 0, ..base.clone() }),
        ("max_compaction_bytes", LeveledOptions { max_compaction_bytes: Some(0), ..base.clone() }),
    ];
    for (field, opts) in cases {
        match opts.validate() {
            Err(Error::Config(msg)) => {
                assert!(msg.contains(&format!("`{field}`")), "{field}: {msg}")
            }
            other => panic!("{field}: expected Error::Config, got {other:?}"),
        }
        assert!(LeveledPolicy::new(opts).is_err(), "new() must validate ({field})");
    }
    // The extremes that are fine.
    LeveledOptions {
        levels: 2,
        level_size_multiplier: 2,
        max_compaction_bytes: None,
        ..base.clone()
    }
    .validate()
    .expect("2 levels, ×2, no cap");
    LeveledOptions { levels: 64, ..base }.validate().expect("64 levels");
}

#[test]
fn empty_tree_and_l0_below_trigger_pick_nothing() {
    let p = policy(tiny());
    assert_eq!(p.pick(&LevelsView::default(), &HashSet::new()), None);
    assert_eq!(p.level_scores(&LevelsView::default()), vec![0.0; 4]);

    let v =
        view(vec![vec![t(3, "a", "z", 100, 30), t(2, "a", "z", 100, 20), t(1, "a", "z", 100, 10)]]);
    assert_eq!(p.level_scores(&v)[0], 0.75);
    assert_eq!(p.pick(&v, &HashSet::new()), None);
}

#[test]
fn four_l0_tables_merge_with_the_overlapping_l1_tables_only() {
    let p = policy(tiny());
    let v = view(vec![
        // Newest first; union key range [c, h].
        vec![
            t(10, "d", "f", 50, 40),
            t(11, "c", "e", 50, 30),
            t(12, "e", "h", 50, 20),
            t(13, "c", "d", 50, 10),
        ],
        vec![
            t(1, "a", "b", 100, 5),
            t(2, "bb", "cc", 100, 5), // reaches into [c, h]
            t(3, "f", "g", 100, 5),
            t(4, "i", "k", 100, 5),
            t(5, "x", "z", 100, 5),
        ],
    ]);
    assert_eq!(p.level_scores(&v)[0], 1.0);
    let task = pick(&p, &v, &HashSet::new()).expect("L0 is at its trigger");
    assert_eq!(files(&task, 0), vec![10, 11, 12, 13]);
    assert_eq!(files(&task, 1), vec![2, 3], "only the L1 tables overlapping [c, h]");
    assert_eq!(task.output_level, 1);
    assert_eq!(task.target_file_size, 100);
    assert!(task.reason.contains("L0"), "{}", task.reason);
}

#[test]
fn l0_over_its_byte_limit_compacts_even_with_one_table() {
    let p = policy(tiny());
    let v = view(vec![vec![t(7, "a", "b", 1500, 9)], vec![t(1, "c", "d", 10, 1)]]);
    assert_eq!(p.level_scores(&v)[0], 1.5);
    let task = pick(&p, &v, &HashSet::new()).expect("L0 holds 1500 B > 1000 B");
    assert_eq!(all_files(&task), vec![7]);
    assert_eq!(task.inputs.len(), 1, "no empty L1 input is listed");
    assert_eq!(task.output_level, 1);
}

#[test]
fn empty_l0_tables_are_dropped_and_need_no_l1_tables() {
    let p = policy(tiny());
    let v = view(vec![
        vec![empty(4, 10), empty(3, 10), empty(2, 10), empty(1, 10)],
        vec![t(9, "a", "z", 10, 1)],
    ]);
    let task = pick(&p, &v, &HashSet::new()).expect("4 L0 tables");
    assert_eq!(task.kind, TaskKind::Drop, "empty tables hold nothing: {task:?}");
    assert_eq!(files(&task, 0), vec![4, 3, 2, 1]);
    assert!(files(&task, 1).is_empty(), "empty tables overlap nothing");
}

#[test]
fn l1_over_size_moves_one_table_and_its_l2_overlap() {
    let p = policy(tiny());
    let l2 = vec![
        t(21, "a", "b", 500, 1),
        t(22, "c", "d", 500, 1),
        t(23, "f", "f", 100, 1),
        t(24, "x", "y", 900, 1),
    ];
    // t11 would rewrite 1000 B of L2 to move 600 B (ratio 1.67); t12 100 B for 500 B (0.2).
    let v = view(vec![vec![], vec![t(11, "a", "c", 600, 5), t(12, "e", "g", 500, 5)], l2]);
    assert_eq!(p.level_scores(&v)[1], 1.1);
    let task = pick(&p, &v, &HashSet::new()).expect("L1 over size");
    assert_eq!(files(&task, 1), vec![12]);
    assert_eq!(files(&task, 2), vec![23]);
    assert_eq!(task.output_level, 2);
    assert!(task.reason.contains("L1") && task.reason.contains("L2"), "{}", task.reason);
}

#[test]
fn a_table_without_overlap_is_moved_first_without_a_rewrite() {
    let p = policy(tiny());
    let v = view(vec![
        vec![],
        vec![t(11, "a", "c", 600, 5), t(12, "m", "p", 500, 5)],
        vec![t(21, "a", "b", 10, 1)],
        vec![t(31, "a", "z", 10_000, 1)],
    ]);
    let task = pick(&p, &v, &HashSet::new()).expect("L1 over size");
    assert_eq!(task.kind, TaskKind::Move, "{task:?}");
    assert_eq!(task.inputs.len(), 1);
    assert_eq!(files(&task, 1), vec![12], "ratio 0 beats 10/600");
    assert_eq!(task.output_level, 2);
    assert!(
        task.reason.contains("moving table") && task.reason.contains("[m..p]"),
        "{}",
        task.reason
    );
}

/// Flushes of sequential ids: each L0 table lies above the previous one's keys, so L0
/// goes down to L1 by a move, and so does every L1 table that overlaps nothing in L2.
#[test]
fn sequential_l0_tables_move_to_l1() {
    let p = policy(tiny());
    let l0 = vec![
        t(4, "d", "d9", 10, 40),
        t(3, "c", "c9", 10, 30),
        t(2, "b", "b9", 10, 20),
        t(1, "a", "a9", 10, 10),
    ];
    let v = view(vec![l0.clone(), vec![t(9, "0", "09", 10, 1)]]);
    let task = pick(&p, &v, &HashSet::new()).expect("L0 at its trigger");
    assert_eq!((task.kind, task.output_level), (TaskKind::Move, 1), "{task:?}");
    assert_eq!(files(&task, 0), vec![4, 3, 2, 1]);
    // One L0 table overlapping another: a merge.
    let mut overlapping = l0.clone();
    overlapping[0] = t(4, "c5", "d9", 10, 40);
    let task = pick(&p, &view(vec![overlapping, vec![]]), &HashSet::new()).expect("L0 over");
    assert_eq!(task.kind, TaskKind::Merge);
    // One L0 table overlapping L1: a merge with that L1 table.
    let task =
        pick(&p, &view(vec![l0, vec![t(9, "b5", "b6", 10, 1)]]), &HashSet::new()).expect("L0 over");
    assert_eq!(task.kind, TaskKind::Merge);
    assert_eq!(files(&task, 1), vec![9]);
}

/// A table holding tombstones is merged, not moved, into the last level: only a merge
/// purges tombstones with nothing below them, and the last level is never compacted.
#[test]
fn tombstones_are_merged_not_moved_into_the_last_level() {
    let p = policy(LeveledOptions { levels: 3, ..tiny() });
    let mut with_deletes = t(12, "m", "p", 1200, 5);
    with_deletes.tombstones = 3;
    let v = view(vec![vec![], vec![with_deletes], vec![t(21, "a", "b", 10, 1)]]);
    let task = pick(&p, &v, &HashSet::new()).expect("L1 over size");
    assert_eq!((task.kind, task.output_level), (TaskKind::Merge, 2), "{task:?}");
    assert_eq!(all_files(&task), vec![12]);
    // Without tombstones it moves; into a level that is not the last it moves too.
    let v = view(vec![vec![], vec![t(12, "m", "p", 1200, 5)], vec![t(21, "a", "b", 10, 1)]]);
    assert_eq!(pick(&p, &v, &HashSet::new()).map(|t| t.kind), Some(TaskKind::Move));
}

/// Tables of tombstones with nothing below them are dropped before anything else, even
/// within targets; one with something below it in its range is not.
#[test]
fn tombstone_tables_with_nothing_below_are_dropped() {
    let p = policy(tiny());
    let v = view(vec![
        vec![t(7, "a", "z", 10, 50)],
        vec![tombstones(11, "c", "d", 10, 5), tombstones(12, "m", "n", 10, 5)],
        vec![t(21, "m", "m", 10, 1)],
    ]);
    let task = pick(&p, &v, &HashSet::new()).expect("table 11 hides nothing");
    assert_eq!((task.kind, task.output_level), (TaskKind::Drop, 1), "{task:?}");
    assert_eq!(all_files(&task), vec![11], "12 covers table 21's key m");
    // Busy, it is left alone: the tree is within its targets.
    assert_eq!(p.pick(&v, &busy(&[11])), None);
    // An empty table holds nothing at all: dropped too.
    let v = view(vec![vec![], vec![empty(5, 10)]]);
    assert_eq!(pick(&p, &v, &HashSet::new()).map(|t| t.kind), Some(TaskKind::Drop));
}

#[test]
fn ties_go_to_the_larger_tombstone_share_then_the_smaller_key() {
    let p = policy(tiny());
    let mut a = t(19, "a", "b", 400, 5);
    let b = t(12, "c", "d", 400, 5);
    let mut c = t(13, "e", "f", 400, 5);
    c.tombstones = 5; // half of its 10 entries
    let v = view(vec![vec![], vec![a.clone(), b.clone(), c.clone()], vec![]]);
    assert_eq!(files(&pick(&p, &v, &HashSet::new()).expect("over size"), 1), vec![13]);
    c.tombstones = 0;
    a.tombstones = 0;
    let v = view(vec![vec![], vec![a, b, c], vec![]]);
    assert_eq!(
        files(&pick(&p, &v, &HashSet::new()).expect("over size"), 1),
        vec![19],
        "smallest key"
    );
}

#[test]
fn max_compaction_bytes_is_a_preference_not_a_wall() {
    let opts = LeveledOptions { max_compaction_bytes: Some(700), ..tiny() };
    let p = policy(opts);
    // t11: 400 B + 400 B overlap = 800 B > 700 B, ratio 1.0.
    // t12: 300 B + 360 B overlap = 660 B, ratio 1.2: worse ratio, but fits.
    let v = view(vec![
        vec![],
        vec![t(11, "a", "b", 400, 5), t(12, "c", "d", 300, 5), t(13, "x", "x", 300, 5)],
        vec![t(21, "a", "b", 400, 1), t(22, "c", "d", 360, 1), t(23, "x", "x", 450, 1)],
    ]);
    let task = pick(&p, &v, &HashSet::new()).expect("L1 holds 1000 B");
    assert_eq!(files(&task, 1), vec![12]);
    // When nothing fits, the best ratio is still taken.
    let p = policy(LeveledOptions { max_compaction_bytes: Some(100), ..tiny() });
    let task = pick(&p, &v, &HashSet::new()).expect("L1 holds 1000 B");
    assert_eq!(files(&task, 1), vec![11]);
    assert!(task.reason.contains("max_compaction_bytes"), "{}", task.reason);
}

#[test]
fn the_last_level_never_compacts() {
    for dynamic in [false, true] {
        let p = policy(LeveledOptions { levels: 3, dynamic_level_bytes: dynamic, ..tiny() });
        let v =
            view(vec![vec![], vec![t(11, "a", "b", 10, 5)], vec![t(21, "a", "z", 1_000_000, 1)]]);
        let scores = p.level_scores(&v);
        assert_eq!(scores.len(), 3);
        if dynamic {
            // The bottom's target is its own size: the score says "full", not "over".
            assert_eq!(scores[2], 1.0, "reported: {scores:?}");
        } else {
            assert!(scores[2] > 1.0, "reported: {scores:?}");
        }
        assert_eq!(p.pick(&v, &HashSet::new()), None);
        // Levels of the view beyond the policy's are ignored too.
        let mut v = v;
        v.levels.push(vec![t(31, "a", "z", u64::MAX / 4, 1)]);
        assert_eq!(p.level_scores(&v).len(), 3);
        assert_eq!(p.pick(&v, &HashSet::new()), None);
    }
}

#[test]
fn the_highest_score_goes_first() {
    let p = policy(tiny());
    let v = view(vec![
        vec![
            t(4, "a", "b", 10, 40),
            t(3, "a", "b", 10, 30),
            t(2, "a", "b", 10, 20),
            t(1, "a", "b", 10, 10),
        ],
        vec![t(11, "a", "b", 10, 5)],
        // Score 3.0 against L0's 1.0. (L3 holds data so that L2 is not the bottom, which
        // dynamic targets would size to its own 30 000 B, score 1.0.)
        vec![t(21, "c", "d", 30_000, 1)],
        vec![t(31, "a", "z", 100_000, 1)],
    ]);
    assert_eq!(p.level_scores(&v)[2], 3.0);
    let task = pick(&p, &v, &HashSet::new()).expect("two levels over");
    assert_eq!(task.output_level, 3);
    assert_eq!(files(&task, 2), vec![21]);
    assert!(task.reason.contains("L2"), "{}", task.reason);
}

#[test]
fn busy_tables_are_never_returned_and_a_blocked_level_falls_through() {
    let p = policy(tiny());
    let v = view(vec![
        // 8 tables: score 2.0, the highest.
        (0..8).map(|i| t(100 + i, "c", "e", 10, 80 - i * 10)).collect(),
        vec![t(11, "a", "d", 900, 5), t(12, "m", "n", 300, 5)], // 1.2
        vec![t(21, "a", "b", 10, 1), t(22, "m", "n", 10, 1)],
        vec![],
    ]);
    // Unblocked: L0 wins.
    let task = pick(&p, &v, &HashSet::new()).expect("L0 over");
    assert_eq!(task.output_level, 1);
    assert_eq!(files(&task, 1), vec![11]);

    // L1 table 11 is busy: L0 needs it, so L0 is blocked; L1 still has table 12.
    let b = busy(&[11]);
    let task = pick(&p, &v, &b).expect("L1 can still compact");
    assert_eq!(task.output_level, 2);
    assert_eq!(all_files(&task), vec![12, 22]);
    assert!(task.reason.contains("L1"), "{}", task.reason);

    // The best L1 candidate's L2 overlap is busy: the other candidate is taken.
    // (L0's oldest table is busy too, so L0 is blocked: nothing is older than it.)
    let b = busy(&[22, 107]);
    let task = pick(&p, &v, &b).expect("table 11 is free");
    assert_eq!(all_files(&task), vec![11, 21]);

    // Everything that could run is blocked.
    assert_eq!(p.pick(&v, &busy(&[11, 22])), None);
}

#[test]
fn l0_takes_only_the_oldest_tables_below_a_busy_one() {
    let p = policy(tiny());
    let l0 = vec![
        t(6, "a", "b", 10, 60),
        t(5, "a", "b", 10, 50),
        t(4, "a", "b", 10, 40),
        t(3, "a", "b", 10, 30),
    ];
    let v = view(vec![l0.clone(), vec![]]);
    // The oldest table is busy (an L0 task is running): nothing newer may go down.
    assert_eq!(p.pick(&v, &busy(&[3])), None);
    // A newer table is busy: the older ones below it may still go down.
    let task = pick(&p, &v, &busy(&[5])).expect("tables 4 and 3 are older than 5");
    assert_eq!(files(&task, 0), vec![4, 3]);

    // Equal max_seq to a busy table is not "older": excluded.
    let mut tie = l0;
    tie[2].max_seq = tie[1].max_seq;
    let v = view(vec![tie, vec![]]);
    let task = pick(&p, &v, &busy(&[5])).expect("table 3 is older");
    assert_eq!(files(&task, 0), vec![3]);
}

#[test]
fn answers_are_deterministic() {
    let p = policy(tiny());
    let v = view(vec![
        (0..6).map(|i| t(100 + i, "c", "q", 10, 80 - i * 10)).collect(),
        vec![t(11, "a", "d", 900, 5), t(12, "m", "n", 300, 5), t(13, "p", "r", 300, 5)],
        vec![t(21, "a", "b", 10, 1), t(22, "m", "n", 10, 1)],
    ]);
    for b in [busy(&[]), busy(&[12]), busy(&[21, 13]), busy(&[101])] {
        let first = p.pick(&v, &b);
        for _ in 0..10 {
            // A fresh HashSet iterates in another order.
            let again: HashSet<FileNo> = b.iter().copied().collect();
            assert_eq!(p.pick(&v.clone(), &again), first);
        }
    }
}

// Dynamic level targets, at the default sizes.

const MIB: u64 = 1 << 20;

/// A level of `n` disjoint tables numbered from `first`, spread over the keys
/// "0000".."9999" and holding `bytes` in all.
fn spread(first: u64, n: u64, bytes: u64) -> Vec<TableMeta> {
    (0..n)
        .map(|i| {
            let lo = format!("{:04}", i * 10_000 / n);
            let hi = format!("{:04}", (i + 1) * 10_000 / n - 1);
            t(first + i, &lo, &hi, bytes / n + u64::from(i < bytes % n), 1)
        })
        .collect()
}

/// The benchmark's settled shape: L1 391 MiB over L2 2282 MiB (space amplification
/// 1.22×). Static targets call it fine; dynamic ones size L1 to a tenth of L2.
#[test]
fn dynamic_targets_size_l1_from_the_bottom_level() {
    let v = view(vec![vec![], spread(100, 13, 391 * MIB), spread(1000, 72, 2282 * MIB)]);
    assert_eq!(v.level_bytes(1), 391 * MIB);
    assert_eq!(v.level_bytes(2), 2282 * MIB);

    let p = LeveledPolicy::default();
    assert_eq!(p.max_bytes_for_level_in(&v, 1), 2282 * MIB / 10);
    assert_eq!(p.max_bytes_for_level_in(&v, 2), 4000 * MIB, "the bottom: max(actual, static)");
    assert_eq!(p.max_bytes_for_level_in(&v, 0), 40 * MIB, "L0 is never dynamic");
    for l in 3..10 {
        assert_eq!(p.max_bytes_for_level_in(&v, l), p.max_bytes_for_level(l), "L{l}");
    }
    let scores = p.level_scores(&v);
    assert!((scores[1] - 391.0 / 228.2).abs() < 1e-6, "{scores:?}");
    let task = pick(&p, &v, &HashSet::new()).expect("L1 is over its dynamic target");
    assert_eq!(task.output_level, 2);
    assert_eq!(files(&task, 1).len(), 1);
    assert!(
        task.reason.contains("target 228.2 MiB (dynamic; static 400.0 MiB)"),
        "{}",
        task.reason
    );

    let off = policy(LeveledOptions { dynamic_level_bytes: false, ..LeveledOptions::default() });
    assert_eq!(off.max_bytes_for_level_in(&v, 1), 400 * MIB);
    assert!(off.level_scores(&v).iter().take(6).all(|&s| s < 1.0));
    assert_eq!(off.pick(&v, &HashSet::new()), None, "static targets: within target");
}

#[test]
fn static_targets_apply_while_only_l0_and_l1_hold_data() {
    let p = LeveledPolicy::default();
    let static_everywhere = |v: &LevelsView| {
        for l in 0..10 {
            assert_eq!(p.max_bytes_for_level_in(v, l), p.max_bytes_for_level(l), "L{l}");
        }
    };
    static_everywhere(&LevelsView::default());
    static_everywhere(&view(vec![vec![t(7, "a", "z", 30 * MIB, 9)]]));

    // L1 alone, under and over its static 400 MiB; L2 holds a 0-byte table (no data).
    let under = view(vec![vec![], spread(100, 13, 391 * MIB), vec![empty(900, 0)]]);
    static_everywhere(&under);
    // The empty table is dropped (it holds nothing); the sizes need no task.
    let task = pick(&p, &under, &HashSet::new()).expect("the empty table");
    assert_eq!((task.kind, all_files(&task)), (TaskKind::Drop, vec![900]));
    assert_eq!(p.pick(&under, &busy(&[900])), None);
    let over = view(vec![vec![], spread(100, 13, 401 * MIB)]);
    static_everywhere(&over);
    let task = pick(&p, &over, &HashSet::new()).expect("L1 over its static target");
    assert_eq!(task.output_level, 2);
    assert!(!task.reason.contains("dynamic"), "{}", task.reason);
}

/// A tiny bottom would derive L1's target as 100 KiB; the floor keeps it at
/// `max(l0_max_bytes, target_file_size)`.
#[test]
fn the_floor_keeps_l1_from_draining_into_a_tiny_bottom() {
    let shape = |l1: u64| view(vec![vec![], spread(100, 2, l1), spread(1000, 1, MIB)]);
    let p = LeveledPolicy::default();
    assert_eq!(p.max_bytes_for_level_in(&shape(39 * MIB), 1), 40 * MIB);
    assert_eq!(p.pick(&shape(39 * MIB), &HashSet::new()), None, "under the floor");
    // The floor is a minimum, not a fallback to the static 400 MiB.
    let task = pick(&p, &shape(41 * MIB), &HashSet::new()).expect("over the floor");
    assert_eq!(task.output_level, 2);

    // The floor follows the larger of l0_max_bytes and target_file_size.
    let big_files = policy(LeveledOptions { target_file_size: 64 * MIB, ..Default::default() });
    assert_eq!(big_files.dynamic_level_floor(), 64 * MIB);
    assert_eq!(big_files.max_bytes_for_level_in(&shape(41 * MIB), 1), 64 * MIB);
    assert_eq!(big_files.pick(&shape(63 * MIB), &HashSet::new()), None);
    assert!(pick(&big_files, &shape(65 * MIB), &HashSet::new()).is_some());
    let big_l0 = policy(LeveledOptions { l0_max_bytes: 100 * MIB, ..Default::default() });
    assert_eq!(big_l0.dynamic_level_floor(), 100 * MIB);
    assert_eq!(big_l0.pick(&shape(99 * MIB), &HashSet::new()), None);
    assert!(pick(&big_l0, &shape(101 * MIB), &HashSet::new()).is_some());
}

#[test]
fn targets_derive_from_the_deepest_non_empty_level() {
    let p = LeveledPolicy::default();
    // L2 is empty; L3 (10 GiB) is the bottom: L2's target 1 GiB, L1's 102.4 MiB.
    let v = view(vec![vec![], spread(100, 5, 150 * MIB), vec![], spread(1000, 320, 10240 * MIB)]);
    assert_eq!(p.max_bytes_for_level_in(&v, 3), 40_000 * MIB, "static is larger");
    assert_eq!(p.max_bytes_for_level_in(&v, 2), 1024 * MIB);
    assert_eq!(p.max_bytes_for_level_in(&v, 1), 10240 * MIB / 100);
    assert_eq!(p.max_bytes_for_level_in(&v, 4), p.max_bytes_for_level(4), "below the bottom");
    let task = pick(&p, &v, &HashSet::new()).expect("L1: 150 MiB over 102.4 MiB");
    assert_eq!(task.output_level, 2);
    assert_eq!(task.inputs.len(), 1, "nothing in L2 to overlap");

    // A bottom past its static target takes that as its own: score 1.0, so it still
    // compacts down (it is not the last level).
    let v = view(vec![vec![], vec![], spread(1000, 160, 5000 * MIB)]);
    assert_eq!(p.max_bytes_for_level_in(&v, 2), 5000 * MIB);
    assert_eq!(p.level_scores(&v)[2], 1.0);
    let task = pick(&p, &v, &HashSet::new()).expect("L2 at its static target");
    assert_eq!(task.output_level, 3);
    assert_eq!(
        p.pick(&view(vec![vec![], vec![], spread(1000, 90, 3000 * MIB)]), &HashSet::new()),
        None
    );
    // Once L3 holds a table it is the bottom, and L2 must drain into it.
    let v = view(vec![vec![], vec![], spread(1000, 160, 5000 * MIB), spread(2000, 1, 32 * MIB)]);
    assert_eq!(p.max_bytes_for_level_in(&v, 2), 40 * MIB, "3.2 MiB derived, floored");
    assert!(p.level_scores(&v)[2] > 100.0);

    // Levels of the view beyond `levels` are not the bottom: with 3 levels, L2 is.
    let p3 = policy(LeveledOptions { levels: 3, ..LeveledOptions::default() });
    let v = view(vec![
        vec![],
        spread(100, 13, 391 * MIB),
        spread(1000, 72, 2282 * MIB),
        spread(3000, 10, 100 << 30),
    ]);
    assert_eq!(p3.max_bytes_for_level_in(&v, 1), 2282 * MIB / 10);
    assert_eq!(pick(&p3, &v, &HashSet::new()).map(|t| t.output_level), Some(2));
}
