//! Engine smoke test: the vector memtable inside a real store (file WAL, mmap tables,
//! leveled compaction, the simulated file system). Sequential order ids, overwrites and
//! deletes flush through many small memtables; values read back must be the latest,
//! from memtables and tables, before and after a reopen (which rebuilds the memtable
//! from the WAL).

use std::sync::Arc;

use strata_core::{Db, Durability};
use strata_harness::sim_fs::SimFileSystem;
use strata_harness::stack::tiny_builder;
use strata_memtable_vector::VectorFactory;

fn open(fs: &SimFileSystem) -> Db {
    tiny_builder("/db", fs.shared(), 4 * 1024, 16 * 1024)
        .with_memtable(Arc::new(VectorFactory::new()))
        .open()
        .expect("open")
}

fn k(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

fn v(id: u64, round: u32) -> Vec<u8> {
    format!("order-{id}-{round}").into_bytes()
}

#[test]
fn vector_memtable_store_reads_back_across_flushes_and_reopen() {
    let fs = SimFileSystem::new();
    let db = open(&fs);
    assert_eq!(db.memtable_kind(), "vector");
    for id in 0..3_000u64 {
        db.put(&k(id), &v(id, 0), Durability::Buffered).expect("put");
    }
    // Amend every 10th order (out of order for the memtable) and cancel every 100th.
    for id in (0..3_000u64).step_by(10) {
        db.put(&k(id), &v(id, 1), Durability::Buffered).expect("put");
    }
    for id in (0..3_000u64).step_by(100) {
        db.delete(&k(id), Durability::Buffered).expect("delete");
    }
    let want = |id: u64| -> Option<Vec<u8>> {
        if id.is_multiple_of(100) {
            None
        } else if id.is_multiple_of(10) {
            Some(v(id, 1))
        } else {
            Some(v(id, 0))
        }
    };
    // Some of it still in memtables, some in tables.
    for id in 0..3_000u64 {
        assert_eq!(db.get(&k(id)).expect("get").map(|b| b.to_vec()), want(id), "id {id}");
    }
    // A tail left in the memtable (and the WAL) across the reopen.
    db.flush().expect("flush");
    for id in 3_000..3_050u64 {
        db.put(&k(id), &v(id, 0), Durability::Sync).expect("put");
    }
    let st = db.stats();
    assert!(st.flushes >= 5, "{st:?}");
    assert!(st.memtable_entries > 0, "{st:?}");
    drop(db);

    let db = open(&fs);
    for id in 0..3_000u64 {
        assert_eq!(db.get(&k(id)).expect("get").map(|b| b.to_vec()), want(id), "id {id}");
    }
    for id in 3_000..3_050u64 {
        assert_eq!(db.get(&k(id)).expect("get").as_deref(), Some(&v(id, 0)[..]), "id {id}");
    }
    assert_eq!(db.iter().count(), 3_050 - 30);
}
