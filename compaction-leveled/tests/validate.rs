//! `validate_task` catches every broken contract clause and names it.

mod common;

use std::collections::HashSet;

use common::{busy, empty, t};
use strata_compaction_leveled::validate_task;
use strata_core::{CompactionInput, CompactionTask, FileNo, LevelsView};

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
    CompactionTask { inputs, output_level, target_file_size: 100, reason: "test".to_owned() }
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
