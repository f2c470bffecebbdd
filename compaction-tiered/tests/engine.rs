//! Engine smoke test: the tiered policy drives a real store (file WAL, mmap tables, the
//! simulated file system). Overwrites and sequential inserts flush many small tables;
//! every task the policy picks must pass the engine's own validation (none rejected),
//! the values read back must be the latest, before and after a reopen, and the store
//! must settle with L0 below the merge width.

use std::sync::Arc;

use strata_compaction_tiered::{TieredOptions, TieredPolicy};
use strata_core::{Db, DbStats, Durability};
use strata_harness::sim_fs::SimFileSystem;
use strata_harness::stack::tiny_builder;

fn open(fs: &SimFileSystem) -> Db {
    let policy =
        TieredPolicy::new(TieredOptions { target_file_size: 4 * 1024, ..TieredOptions::default() })
            .expect("valid options");
    tiny_builder("/db", fs.shared(), 4 * 1024, 16 * 1024)
        .with_compaction_policy(Arc::new(policy))
        .open()
        .expect("open")
}

fn k(i: u32) -> Vec<u8> {
    format!("key{i:06}").into_bytes()
}

fn v(i: u32, round: u32) -> Vec<u8> {
    format!("value-{i}-{round}-{}", "x".repeat((i % 50) as usize)).into_bytes()
}

fn check_all(db: &Db, n: u32, round: u32) {
    for i in 0..n {
        assert_eq!(db.get(&k(i)).expect("get").as_deref(), Some(&v(i, round)[..]), "key {i}");
    }
}

fn settled(db: &Db) -> DbStats {
    db.flush().expect("flush");
    db.wait_for_background().expect("settle");
    db.stats()
}

#[test]
fn tiered_store_keeps_every_value_across_compactions_and_reopen() {
    let fs = SimFileSystem::new();
    let db = open(&fs);
    assert_eq!(db.compaction_policy(), "tiered");
    // Overwrites of 1500 keys, then 1500 fresh sequential keys on top.
    for round in 0..4 {
        for i in 0..1500 {
            db.put(&k(i), &v(i, round), Durability::Buffered).expect("put");
        }
    }
    for i in 1500..3000 {
        db.put(&k(i), &v(i, 3), Durability::Buffered).expect("put");
    }
    db.delete(&k(5), Durability::Buffered).expect("delete");
    let st = settled(&db);
    assert!(st.flushes >= 10, "many small memtables were flushed: {st:?}");
    assert!(st.compactions >= 1, "{st:?}");
    assert_eq!(st.rejected_compactions, 0, "the engine rejected a tiered task: {st:?}");
    assert!(st.levels[0].tables < 4, "L0 is merged below the merge width: {st:?}");
    assert!(st.levels.iter().skip(1).any(|l| l.tables > 0), "data reached L1+: {st:?}");
    assert_eq!(db.get(&k(5)).expect("get"), None);
    check_all(&db, 5, 3);
    let rest: Vec<u32> = (6..3000).collect();
    for &i in &rest {
        assert_eq!(db.get(&k(i)).expect("get").as_deref(), Some(&v(i, 3)[..]), "key {i}");
    }
    let scanned = db.iter().count();
    assert_eq!(scanned, 2999);
    drop(db);

    let db = open(&fs);
    assert_eq!(db.get(&k(5)).expect("get"), None);
    for &i in &rest {
        assert_eq!(db.get(&k(i)).expect("get").as_deref(), Some(&v(i, 3)[..]), "key {i}");
    }
    // More writes after the reopen still compact cleanly.
    for i in 0..1500 {
        db.put(&k(i), &v(i, 4), Durability::Buffered).expect("put");
    }
    let st = settled(&db);
    assert_eq!(st.rejected_compactions, 0, "{st:?}");
    check_all(&db, 1500, 4);
}

/// The same writes through the engine with tiered and with the harness's tiny leveled
/// policy: the engine's own counters (bytes written by compactions per byte flushed)
/// must show tiered writing less. The keys are random overwrites: on keys that only
/// grow, leveled moves tables down without rewriting them and writes about as little
/// (`harness/tests/compaction_moves.rs`).
#[test]
fn engine_write_amplification_is_lower_than_leveled() {
    fn load(db: &Db) -> DbStats {
        for round in 0..6 {
            for i in 0..1500 {
                // Random ids over 4500 keys (each written about twice).
                let id = (i * 7919 + round * 104_729) % 4500;
                db.put(&k(id), &v(id, round), Durability::Buffered).expect("put");
            }
        }
        settled(db)
    }
    let amp = |st: &DbStats| {
        (st.flush_bytes + st.compaction_written_bytes) as f64 / st.flush_bytes as f64
    };
    let tiered = load(&open(&SimFileSystem::new()));
    let fs = SimFileSystem::new();
    let leveled =
        load(&tiny_builder("/db", fs.shared(), 4 * 1024, 16 * 1024).open().expect("open"));
    println!(
        "engine write amplification: tiered {:.2} ({} compactions), leveled {:.2} ({} compactions)",
        amp(&tiered),
        tiered.compactions,
        amp(&leveled),
        leveled.compactions
    );
    assert_eq!(tiered.rejected_compactions, 0);
    assert!(amp(&tiered) < amp(&leveled), "tiered {tiered:?}\nleveled {leveled:?}");
}
