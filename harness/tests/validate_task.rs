//! `strata_core::compaction::validate_task`, the one task validator (the engine's and the
//! conformance suite's), catches every broken contract clause of merges, moves and
//! drops, and names it.

use std::collections::HashSet;

use strata_core::compaction::{TaskKind, validate_task};
use strata_core::{CompactionInput, CompactionTask, FileNo, LevelsView};
use strata_harness::conformance::compaction::model::{busy, empty, t, tombstones};

fn view() -> LevelsView {
    LevelsView {
        levels: vec![
            // L0, newest first.
            vec![
                t(30, "c", "f", 10, 30),
                t(20, "a", "d", 10, 20),
                t(10, "e", "h", 10, 10),
                empty(5, 10),
            ],
            vec![
                t(1, "a", "b", 10, 3),
                t(2, "c", "d", 10, 3),
                t(3, "g", "i", 10, 3),
                t(4, "m", "n", 10, 3),
            ],
            vec![t(41, "a", "c", 10, 1), t(42, "d", "k", 10, 1), t(43, "x", "z", 10, 1)],
        ],
    }
}

fn input(level: usize, tables: &[u64]) -> CompactionInput {
    CompactionInput { level, tables: tables.iter().map(|&n| FileNo(n)).collect() }
}

fn task(inputs: Vec<CompactionInput>, output_level: usize) -> CompactionTask {
    CompactionTask::merge(inputs, output_level, 100, "test")
}

/// A valid L1 → L2 task: table 3 [g, i] overlaps L2 table 42 [d, k].
fn l1_task() -> CompactionTask {
    task(vec![input(1, &[3]), input(2, &[42])], 2)
}

/// A valid L0 → L1 task: all of L0 plus the L1 tables within [a, h].
fn l0_task() -> CompactionTask {
    task(vec![input(0, &[30, 20, 10, 5]), input(1, &[1, 2, 3])], 1)
}

fn expect_err(t: &CompactionTask, b: &HashSet<FileNo>, clause: &str) {
    match validate_task(&view(), b, 3, t) {
        Ok(()) => panic!("expected a `{clause}` violation for {t:#?}"),
        Err(msg) => assert!(msg.starts_with(clause), "expected `{clause}`, got: {msg}"),
    }
}

#[test]
fn valid_tasks_pass() {
    let none = HashSet::new();
    validate_task(&view(), &none, 3, &l1_task()).expect("L1 task");
    validate_task(&view(), &none, 3, &l0_task()).expect("L0 task");
    // Only the oldest L0 tables (a suffix) is fine too; [e, h] overlaps only table 3.
    validate_task(&view(), &none, 3, &task(vec![input(0, &[10, 5]), input(1, &[3])], 1))
        .expect("L0 suffix");
    // Output at the deepest input level (an intra-level rewrite) is allowed.
    validate_task(&view(), &none, 3, &task(vec![input(2, &[43])], 2)).expect("L2 rewrite");
    // An empty table covers no keys: it needs no partner.
    validate_task(&view(), &none, 3, &task(vec![input(0, &[5])], 1)).expect("empty L0 table");
    // Busy tables elsewhere do not matter.
    validate_task(&view(), &busy(&[4, 43]), 3, &l1_task()).expect("unrelated busy tables");
}

#[test]
fn structure() {
    let none = HashSet::new();
    expect_err(&task(vec![], 2), &none, "empty task");
    expect_err(&task(vec![input(1, &[])], 2), &none, "empty task");
    expect_err(&task(vec![input(1, &[3]), input(2, &[])], 2), &none, "malformed inputs");
    expect_err(&task(vec![input(2, &[42]), input(1, &[3])], 2), &none, "malformed inputs");
    expect_err(&task(vec![input(1, &[3]), input(1, &[4])], 2), &none, "malformed inputs");
}

#[test]
fn tables_exist_are_not_busy_and_appear_once() {
    let none = HashSet::new();
    expect_err(&task(vec![input(1, &[3, 3]), input(2, &[42])], 2), &none, "duplicate table");
    expect_err(&task(vec![input(1, &[99])], 2), &none, "unknown table");
    // Table 42 exists, but in L2.
    expect_err(&task(vec![input(1, &[42])], 2), &none, "unknown table");
    expect_err(&l1_task(), &busy(&[42]), "busy table");
    expect_err(&l1_task(), &busy(&[3]), "busy table");
}

#[test]
fn output_level() {
    let none = HashSet::new();
    let mut t = l1_task();
    t.output_level = 1;
    expect_err(&t, &none, "bad output level");
    t.output_level = 3;
    expect_err(&t, &none, "bad output level");
    // L2 → L3 has the right shape but the tree has only 3 levels.
    expect_err(&task(vec![input(2, &[43])], 3), &none, "bad output level");
    let mut t = l1_task();
    t.target_file_size = 0;
    expect_err(&t, &none, "bad target file size");
}

#[test]
fn l0_closure() {
    let none = HashSet::new();
    // Reads 20 but not the older 10.
    expect_err(&task(vec![input(0, &[30, 20]), input(1, &[1, 2])], 1), &none, "L0 order");
    // Reads only the newest.
    expect_err(&task(vec![input(0, &[30]), input(1, &[2])], 1), &none, "L0 order");
    // Leaves out the (oldest) empty table.
    expect_err(&task(vec![input(0, &[30, 20, 10]), input(1, &[1, 2, 3])], 1), &none, "L0 order");
}

#[test]
fn output_level_overlap_closure() {
    let none = HashSet::new();
    // L1 table 3 [g, i] overlaps L2 table 42 [d, k]; leaving it out breaks L2.
    expect_err(&task(vec![input(1, &[3])], 2), &none, "output overlap");
    // L0 union [a, h] overlaps L1 tables 1, 2 and 3.
    expect_err(
        &task(vec![input(0, &[30, 20, 10, 5]), input(1, &[1, 2])], 1),
        &none,
        "output overlap",
    );
    // The range is that of all inputs: L1 tables 1 [a, b] and 4 [m, n] span [a, n],
    // which covers L2 table 42 [d, k] although neither overlaps it on its own.
    expect_err(&task(vec![input(1, &[1, 4]), input(2, &[41])], 2), &none, "output overlap");
}

#[test]
fn merges_give_up_every_level_they_pass() {
    let none = HashSet::new();
    // L0 and L2 inputs into L2 pass over L1: L1 tables 1, 2, 3 lie in [a, h] and would
    // end up above data newer than theirs.
    let passing = task(vec![input(0, &[30, 20, 10, 5]), input(2, &[41, 42])], 2);
    expect_err(&passing, &none, "passed-over overlap");
    let all = task(vec![input(0, &[30, 20, 10, 5]), input(1, &[1, 2, 3]), input(2, &[41, 42])], 2);
    validate_task(&view(), &none, 3, &all).expect("L1's overlap taken along");
    // L1 table 1 [a, b] alone into L3 would be a bad output level; into L2 with table
    // 41 it is fine, and L0 is never "passed over" (it is above every input).
    validate_task(&view(), &none, 3, &task(vec![input(1, &[1]), input(2, &[41])], 2))
        .expect("L1 → L2");
}

fn moving(level: usize, tables: &[u64]) -> CompactionTask {
    CompactionTask::moving(level, tables.iter().map(|&n| FileNo(n)).collect(), "move")
}

fn dropping(level: usize, tables: &[u64]) -> CompactionTask {
    CompactionTask::dropping(level, tables.iter().map(|&n| FileNo(n)).collect(), "drop")
}

#[test]
fn moves_land_only_on_free_ranges() {
    let none = HashSet::new();
    // L1 table 4 [m, n] overlaps nothing in L2: a legal move.
    validate_task(&view(), &none, 3, &moving(1, &[4])).expect("free range");
    // L1 table 3 [g, i] would land on L2 table 42 [d, k].
    expect_err(&moving(1, &[3]), &none, "move overlap");
    // L1 tables 1 [a, b] and 4 [m, n] are each judged alone: 1 lands on 41 [a, c].
    expect_err(&moving(1, &[4, 1]), &none, "move overlap");
    // From L0, every older table must move too, and moved tables must not overlap.
    expect_err(&moving(0, &[20, 10, 5]), &none, "move overlap");
    expect_err(&moving(0, &[30]), &none, "L0 order");
    validate_task(&view(), &none, 3, &moving(0, &[5])).expect("an empty table covers nothing");
    // Shape: one level, one level down, below the tree's depth, nothing busy.
    let mut two_levels = moving(1, &[4]);
    two_levels.inputs.push(input(2, &[43]));
    expect_err(&two_levels, &none, "malformed move");
    let mut far = moving(1, &[4]);
    far.output_level = 1;
    expect_err(&far, &none, "bad output level");
    expect_err(&moving(2, &[43]), &none, "bad output level");
    expect_err(&moving(1, &[4]), &busy(&[4]), "busy table");
    assert_eq!(moving(1, &[4]).kind, TaskKind::Move);
}

fn drop_view() -> LevelsView {
    LevelsView {
        levels: vec![
            vec![
                tombstones(30, "a", "b", 10, 30),
                tombstones(20, "x", "y", 10, 20),
                t(10, "x", "z", 10, 10),
            ],
            vec![
                tombstones(1, "c", "d", 10, 3),
                tombstones(2, "m", "n", 10, 3),
                t(3, "p", "q", 10, 3),
            ],
            vec![t(41, "n", "n", 10, 1)],
        ],
    }
}

#[test]
fn drops_remove_only_tombstones_that_hide_nothing() {
    let none = HashSet::new();
    let check = |t: &CompactionTask| validate_task(&drop_view(), &none, 3, t);
    check(&dropping(1, &[1])).expect("nothing below [c, d]");
    check(&dropping(0, &[30])).expect("nothing older or deeper in [a, b]");
    let clause = |t: &CompactionTask, want: &str| match check(t) {
        Ok(()) => panic!("expected `{want}` for {t:?}"),
        Err(msg) => assert!(msg.starts_with(want), "expected `{want}`, got: {msg}"),
    };
    // L2 table 41 holds key n, which table 2's tombstones hide.
    clause(&dropping(1, &[2]), "drop overlap");
    // The older L0 table 10 holds x..z, which table 20's tombstones hide.
    clause(&dropping(0, &[20]), "drop overlap");
    clause(&dropping(1, &[3]), "live data");
    clause(&dropping(0, &[10]), "live data");
    let mut two_levels = dropping(0, &[30]);
    two_levels.inputs.push(input(1, &[1]));
    clause(&two_levels, "malformed drop");
    let mut elsewhere = dropping(1, &[1]);
    elsewhere.output_level = 2;
    clause(&elsewhere, "bad output level");
    // The model's view agrees table by table.
    let v = drop_view();
    let droppable: Vec<u64> = v
        .levels
        .iter()
        .enumerate()
        .flat_map(|(l, ts)| {
            ts.iter().filter(move |t| drop_view().is_droppable(l, t)).map(|t| t.file_no.0)
        })
        .collect();
    assert_eq!(droppable, vec![30, 1]);
    validate_task(&view(), &none, 3, &dropping(0, &[5])).expect("an empty table");
}
