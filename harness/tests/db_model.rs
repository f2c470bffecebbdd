//! Model test through the whole engine: random sequences of put/delete batches,
//! snapshots, reopens, flushes and open iterators run through `Db` and against a
//! `BTreeMap` model. Memtables of 2 KiB, 256-byte table blocks and leveled sizes of a
//! few KiB make flushes and compactions happen all the time, so reads merge memtables,
//! L0 tables and deeper levels, and iterators outlive the files they started on.

use std::collections::BTreeMap;
use std::ops::Bound;

use proptest::prelude::*;
use strata_core::{Db, Durability, Snapshot, WriteBatch};
use strata_harness::sim_fs::SimFileSystem;
use strata_harness::stack::tiny_builder;

type Model = BTreeMap<Vec<u8>, Vec<u8>>;
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

#[derive(Debug, Clone)]
enum Op {
    Batch(Vec<(u8, Option<Vec<u8>>)>),
    Snapshot,
    Reopen,
    Scan(u8, u8),
    Flush,
    Settle,
    DropSnapshot(usize),
    OpenIter,
}

fn key(k: u8) -> Vec<u8> {
    format!("key{k:03}").into_bytes()
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => prop::collection::vec(
            (0u8..40, prop::option::weighted(0.8, prop::collection::vec(any::<u8>(), 0..40))),
            1..6
        ).prop_map(Op::Batch),
        1 => Just(Op::Snapshot),
        1 => Just(Op::Reopen),
        1 => (0u8..45, 0u8..45).prop_map(|(a, b)| Op::Scan(a, b)),
        1 => Just(Op::Flush),
        1 => Just(Op::Settle),
        1 => (0usize..8).prop_map(Op::DropSnapshot),
        1 => Just(Op::OpenIter),
    ]
}

fn open(fs: &SimFileSystem) -> Db {
    tiny_builder("/store", fs.shared(), 2048, 8 * 1024).open().expect("open must succeed")
}

fn collect(it: strata_core::DbIter) -> Vec<(Vec<u8>, Vec<u8>)> {
    it.map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec()))).collect::<Result<_, _>>().expect("scan")
}

fn check_all(db: &Db, model: &Model, snap: Option<&Snapshot>) {
    for k in 0u8..45 {
        let got = match snap {
            Some(s) => db.get_at(&key(k), s),
            None => db.get(&key(k)),
        }
        .expect("get");
        assert_eq!(got.as_deref(), model.get(&key(k)).map(Vec::as_slice), "get({k}) at {snap:?}");
    }
    let scanned: Vec<(Vec<u8>, Vec<u8>)> = match snap {
        Some(s) => collect(db.scan_at::<&[u8], _>(.., s)),
        None => collect(db.iter()),
    };
    let expected: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    assert_eq!(scanned, expected, "full scan at {snap:?}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn db_matches_a_btreemap_model(ops in prop::collection::vec(op(), 1..60)) {
        let fs = SimFileSystem::new();
        let mut db = open(&fs);
        let mut model = Model::new();
        let mut snapshots: Vec<(Snapshot, Model)> = Vec::new();
        // Iterators opened earlier, with a few entries already read, and the model they
        // must finish with; flushes and compactions run underneath them meanwhile.
        let mut iters: Vec<(strata_core::DbIter, Pairs)> = Vec::new();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Batch(items) => {
                    let mut b = WriteBatch::new();
                    for (k, v) in items {
                        match v {
                            Some(v) => { b.put(key(k), &v); model.insert(key(k), v); }
                            None => { b.delete(key(k)); model.remove(&key(k)); }
                        }
                    }
                    let d = if step % 3 == 0 { Durability::Sync } else { Durability::Buffered };
                    db.write(&b, d).expect("write");
                }
                Op::Snapshot => snapshots.push((db.snapshot(), model.clone())),
                Op::Reopen => {
                    // Snapshots and iterators do not survive a reopen.
                    snapshots.clear();
                    iters.clear();
                    drop(db);
                    db = open(&fs);
                }
                Op::Flush => db.flush().expect("flush"),
                Op::Settle => {
                    db.wait_for_background().expect("background work settles");
                    let st = db.stats();
                    prop_assert!(st.levels[0].tables < 4, "L0 left over its trigger: {st:?}");
                }
                Op::DropSnapshot(i) => {
                    if !snapshots.is_empty() {
                        snapshots.remove(i % snapshots.len());
                    }
                }
                Op::OpenIter => {
                    let mut it = db.iter();
                    let want: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
                    let head: Vec<_> = it.by_ref().take(2).map(|r| {
                        r.map(|(k, v)| (k.to_vec(), v.to_vec())).expect("iterator head")
                    }).collect();
                    prop_assert_eq!(&head[..], &want[..head.len()]);
                    iters.push((it, want[head.len()..].to_vec()));
                }
                Op::Scan(a, b) => {
                    let (lo, hi) = (key(a.min(b)), key(a.max(b)));
                    let got = collect(db.scan(lo.clone()..hi.clone()));
                    let want: Vec<_> = model
                        .range::<Vec<u8>, _>((Bound::Included(&lo), Bound::Excluded(&hi)))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    prop_assert_eq!(got, want);
                }
            }
            check_all(&db, &model, None);
        }
        for (snap, m) in &snapshots {
            check_all(&db, m, Some(snap));
        }
        db.wait_for_background().expect("settle");
        for (snap, m) in &snapshots {
            check_all(&db, m, Some(snap));
        }
        for (it, rest) in iters {
            prop_assert_eq!(collect(it), rest, "an iterator changed under flushes/compactions");
        }
    }
}
