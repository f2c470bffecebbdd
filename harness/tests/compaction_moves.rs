//! Trivial moves and drops through the engine (file WAL, mmap tables, leveled policy, the
//! simulated file system):
//!
//! - sequential ids go down by moves: fewer bytes written than when every move is run as
//!   a merge, every value readable, after a reopen and after a power loss;
//! - tables of tombstones that hide nothing are dropped, and deletes that do hide data
//!   stay deletes;
//! - the engine refuses what it must: a move onto an overlapping table, a drop that
//!   would bring back data, and a drop of a table whose metadata claims tombstones it
//!   does not hold (the engine reads the table before dropping it). Each is counted in
//!   `rejected_compactions` and the data stays as written;
//! - the compaction conformance suite catches the broken move and drop policies, in
//!   exactly the checks of the clauses they break.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_compaction_leveled::LeveledPolicy;
use strata_core::compaction::TaskKind;
use strata_core::fs::File;
use strata_core::{
    CompactionPolicy, CompactionTask, Db, DbStats, Durability, FileNo, LevelsView, Result, SeqNo,
    Table, TableBuilder, TableFormat, TableMeta, ValueKind,
};
use strata_harness::conformance::broken::{DropsCoveringTablesPolicy, MovesOntoOverlapPolicy};
use strata_harness::conformance::compaction::{self, CompactionCaps};
use strata_harness::sim_fs::SimFileSystem;
use strata_harness::stack::{tiny_builder, tiny_leveled};

const BASE: u64 = 16 * 1024;

fn leveled() -> Arc<dyn CompactionPolicy> {
    Arc::new(LeveledPolicy::new(tiny_leveled(BASE)).expect("valid options"))
}

fn open(fs: &SimFileSystem, policy: Arc<dyn CompactionPolicy>) -> Db {
    tiny_builder("/db", fs.shared(), 4 * 1024, BASE)
        .with_compaction_policy(policy)
        .open()
        .expect("open")
}

fn k(i: u32) -> Vec<u8> {
    format!("order{i:08}").into_bytes()
}

fn v(i: u32) -> Vec<u8> {
    format!("value-{i}-{}", "x".repeat((i % 40) as usize)).into_bytes()
}

/// The policy with every move run as a merge of the same tables: the engine as it was
/// before moves existed.
#[derive(Debug)]
struct MovesAsMerges(Arc<dyn CompactionPolicy>);

impl CompactionPolicy for MovesAsMerges {
    fn name(&self) -> &'static str {
        "moves-as-merges"
    }
    fn levels(&self) -> usize {
        self.0.levels()
    }
    fn pick(&self, view: &LevelsView, busy: &HashSet<FileNo>) -> Option<CompactionTask> {
        let task = self.0.pick(view, busy)?;
        if task.kind != TaskKind::Move {
            return Some(task);
        }
        Some(CompactionTask::merge(task.inputs, task.output_level, BASE / 4, task.reason))
    }
}

fn settled(db: &Db) -> DbStats {
    db.flush().expect("flush");
    db.wait_for_background().expect("settle");
    db.stats()
}

fn check(db: &Db, ids: impl IntoIterator<Item = u32>) {
    for i in ids {
        assert_eq!(db.get(&k(i)).expect("get").as_deref(), Some(&v(i)[..]), "key {i}");
    }
}

fn write_amplification(st: &DbStats) -> f64 {
    (st.flush_bytes + st.compaction_written_bytes) as f64 / st.flush_bytes as f64
}

#[test]
fn sequential_ids_move_down_without_rewrites_and_survive_reopen_and_power_loss() {
    const N: u32 = 6_000;
    let load = |policy: Arc<dyn CompactionPolicy>| {
        let fs = SimFileSystem::new();
        let db = open(&fs, policy);
        for i in 0..N {
            db.put(&k(i), &v(i), Durability::Buffered).expect("put");
        }
        let st = settled(&db);
        check(&db, 0..N);
        (fs, db, st)
    };
    let (fs, db, moved) = load(leveled());
    let (_, _, merged) = load(Arc::new(MovesAsMerges(leveled())));
    println!(
        "sequential ids: write amplification {:.2} with moves ({} tables / {} B moved), {:.2} without",
        write_amplification(&moved),
        moved.compaction_moves,
        moved.compaction_moved_bytes,
        write_amplification(&merged)
    );
    assert_eq!(moved.rejected_compactions, 0, "{moved:?}");
    assert!(moved.compaction_moves >= 10, "sequential tables went down by moves: {moved:?}");
    assert!(moved.levels.iter().skip(2).any(|l| l.tables > 0), "data reached L2+: {moved:?}");
    assert_eq!(merged.compaction_moves, 0);
    assert!(
        write_amplification(&moved) + 0.5 < write_amplification(&merged),
        "moves must save rewrites:\nmoves {moved:?}\nmerges {merged:?}"
    );

    // The manifest edit is the commit point: the moved tables are where the manifest
    // says, after a clean reopen and after losing everything unsynced.
    drop(db);
    let db = open(&fs, leveled());
    check(&db, 0..N);
    assert_eq!(db.stats().levels, moved.levels, "the reopened store has the same shape");
    drop(db);
    let rebooted = fs.crash();
    let db = open(&rebooted, leveled());
    check(&db, 0..N);
}

/// Power cuts while sequential tables are being moved down: each round writes more ids
/// (a Sync write every 100 makes everything before it durable), then the machine loses
/// power at once, with flushes and moves in flight. Every acknowledged id must be back
/// after the reboot, and the tree must keep going.
#[test]
fn power_cuts_during_moves_lose_no_acknowledged_write() {
    let mut fs = SimFileSystem::new();
    let mut next = 0u32;
    let mut moves = 0;
    for round in 0..12 {
        let db = open(&fs, leveled());
        check(&db, 0..next);
        for _ in 0..700 {
            let durability = if next % 100 == 99 { Durability::Sync } else { Durability::Buffered };
            db.put(&k(next), &v(next), durability).expect("put");
            next += 1;
        }
        // The last Sync write made every id before it durable; the rest may be lost.
        let acked = next - next % 100;
        if round % 3 == 2 {
            db.flush().expect("flush");
            db.wait_for_background().expect("settle");
        }
        moves += db.stats().compaction_moves;
        fs = fs.crash();
        drop(db);
        let db = open(&fs, leveled());
        check(&db, 0..acked);
        next = acked;
    }
    assert!(moves > 0, "tables were moved in the rounds");
}

#[test]
fn tombstones_that_hide_nothing_are_dropped_and_the_others_stay() {
    let fs = SimFileSystem::new();
    let db = open(&fs, leveled());
    for i in 0..2_000 {
        db.put(&k(i), &v(i), Durability::Buffered).expect("put");
    }
    let before = settled(&db);
    assert_eq!(before.compaction_drops, 0);
    // Deletes of ids never written: a table of tombstones with nothing below it.
    for i in 10_000..10_300 {
        db.delete(&k(i), Durability::Buffered).expect("delete");
    }
    let st = settled(&db);
    assert!(st.compaction_drops >= 1, "the tombstone table was dropped: {st:?}");
    assert_eq!(st.rejected_compactions, 0, "{st:?}");
    // Deletes of ids that exist must hide them, whatever compaction does with them.
    for i in 0..300 {
        db.delete(&k(i), Durability::Buffered).expect("delete");
    }
    let st = settled(&db);
    assert_eq!(st.rejected_compactions, 0, "{st:?}");
    let gone = |db: &Db| {
        for i in (0..300).chain(10_000..10_300) {
            assert_eq!(db.get(&k(i)).expect("get"), None, "key {i} was deleted");
        }
    };
    gone(&db);
    check(&db, 300..2_000);
    drop(db);
    let db = open(&fs.crash(), leveled());
    gone(&db);
    check(&db, 300..2_000);
}

/// Flushes `batches` memtables of overlapping random ids (so L0 needs merges), then
/// waits until the engine rejected a task. The broken policy never lets the tree
/// settle, so `wait_for_background` is not used.
fn run_broken(policy: Arc<dyn CompactionPolicy>, deletes: bool) -> (Db, DbStats) {
    let fs = SimFileSystem::new();
    // Memtables large enough that each round is one L0 table: L0 stays below the
    // write-stall thresholds while the broken policy keeps it from compacting.
    let db = tiny_builder("/db", fs.shared(), 64 * 1024, BASE)
        .with_compaction_policy(policy)
        .open()
        .expect("open");
    for round in 0..5u32 {
        for i in 0..60 {
            let id = (i * 7 + round * 13) % 400;
            db.put(&k(id), &v(id), Durability::Buffered).expect("put");
        }
        db.flush().expect("flush");
    }
    if deletes {
        // A table of tombstones over keys the tables below hold.
        for id in 0..50 {
            db.delete(&k(id), Durability::Buffered).expect("delete");
        }
        db.flush().expect("flush");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while db.stats().rejected_compactions == 0 {
        assert!(Instant::now() < deadline, "the engine never rejected: {:?}", db.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    let st = db.stats();
    (db, st)
}

fn expected(deletes: bool) -> Vec<(u32, Option<Vec<u8>>)> {
    let mut want: Vec<Option<Vec<u8>>> = vec![None; 400];
    for round in 0..5u32 {
        for i in 0..60 {
            let id = (i * 7 + round * 13) % 400;
            want[id as usize] = Some(v(id));
        }
    }
    if deletes {
        for slot in want.iter_mut().take(50) {
            *slot = None;
        }
    }
    want.into_iter().enumerate().map(|(i, w)| (i as u32, w)).collect()
}

fn check_expected(db: &Db, deletes: bool) {
    for (i, want) in expected(deletes) {
        assert_eq!(db.get(&k(i)).expect("get"), want.map(Into::into), "key {i}");
    }
}

#[test]
fn the_engine_refuses_a_move_onto_overlapping_tables() {
    let (db, st) = run_broken(Arc::new(MovesOntoOverlapPolicy(leveled())), false);
    assert_eq!(st.compaction_moves, 0, "no overlapping move was committed: {st:?}");
    check_expected(&db, false);
}

#[test]
fn the_engine_refuses_a_drop_that_would_bring_data_back() {
    let (db, st) = run_broken(Arc::new(DropsCoveringTablesPolicy(leveled())), true);
    assert_eq!(st.compaction_drops, 0, "no covering drop was committed: {st:?}");
    check_expected(&db, true);
}

/// A table format whose builders report every entry as a tombstone in the metadata
/// they return (the tables themselves are written correctly).
#[derive(Debug)]
struct ClaimsTombstones(Arc<dyn TableFormat>);

struct ClaimingBuilder(Box<dyn TableBuilder>);

impl TableFormat for ClaimsTombstones {
    fn name(&self) -> &'static str {
        "claims-tombstones"
    }
    fn builder(&self, file: Arc<dyn File>, file_no: FileNo) -> Result<Box<dyn TableBuilder>> {
        Ok(Box::new(ClaimingBuilder(self.0.builder(file, file_no)?)))
    }
    fn open(&self, file: Arc<dyn File>, file_no: FileNo) -> Result<Arc<dyn Table>> {
        self.0.open(file, file_no)
    }
}

impl TableBuilder for ClaimingBuilder {
    fn add(&mut self, key: &[u8], seq: SeqNo, kind: ValueKind, value: &[u8]) -> Result<()> {
        self.0.add(key, seq, kind, value)
    }
    fn estimated_size(&self) -> u64 {
        self.0.estimated_size()
    }
    fn entries(&self) -> u64 {
        self.0.entries()
    }
    fn finish(self: Box<Self>) -> Result<TableMeta> {
        let meta = self.0.finish()?;
        Ok(TableMeta { tombstones: meta.entries, ..meta })
    }
}

#[test]
fn the_engine_reads_a_table_before_dropping_it() {
    let fs = SimFileSystem::new();
    let format = Arc::new(strata_sstable_mmap::MmapTableFormat::new(
        strata_sstable_mmap::MmapTableOptions { block_size: 256, ..Default::default() },
    ));
    let db = tiny_builder("/db", fs.shared(), 4 * 1024, BASE)
        .with_table_format(Arc::new(ClaimsTombstones(format)))
        .open()
        .expect("open");
    for i in 0..100 {
        db.put(&k(i), &v(i), Durability::Buffered).expect("put");
    }
    db.flush().expect("flush");
    let deadline = Instant::now() + Duration::from_secs(20);
    while db.stats().rejected_compactions == 0 {
        assert!(Instant::now() < deadline, "the engine never refused: {:?}", db.stats());
        std::thread::sleep(Duration::from_millis(10));
    }
    let st = db.stats();
    assert_eq!(st.compaction_drops, 0, "a table of puts was dropped: {st:?}");
    check(&db, 0..100);
}

#[test]
fn the_suite_catches_a_policy_moving_onto_overlapping_tables() {
    let report =
        compaction::run(Arc::new(MovesOntoOverlapPolicy(leveled())), CompactionCaps::default());
    assert!(!report.is_ok(), "the broken policy passed:\n{report}");
    assert_eq!(
        report.failed_names(),
        [
            "compaction::converges_on_a_model_tree",
            "compaction::tasks_keep_every_read",
            "compaction::tasks_pass_validate_task",
        ],
        "{report}"
    );
    assert!(report.failures().iter().any(|(_, why)| why.contains("move overlap")), "{report}");
}

#[test]
fn the_suite_catches_a_policy_dropping_tombstones_that_hide_data() {
    let report =
        compaction::run(Arc::new(DropsCoveringTablesPolicy(leveled())), CompactionCaps::default());
    assert!(!report.is_ok(), "the broken policy passed:\n{report}");
    assert_eq!(
        report.failed_names(),
        ["compaction::tasks_keep_every_read", "compaction::tasks_pass_validate_task"],
        "{report}"
    );
    assert!(report.failures().iter().any(|(_, why)| why.contains("drop overlap")), "{report}");
}
