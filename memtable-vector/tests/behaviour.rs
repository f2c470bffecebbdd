//! Deterministic behaviour: snapshot visibility across the log and the out-of-order
//! map, bound handling, exact memory accounting, duplicates, the factory's name
//! (clauses every memtable shares are in the conformance suite, `tests/conformance.rs`).

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use strata_core::{Entry, Lookup, MemTable, MemTableFactory, SeqNo, ValueKind};
use strata_harness::conformance::memtable::model::{b, scan};
use strata_memtable_vector::{VectorFactory, VectorMemTable};

/// Opens every log the table may keep, each with a tail too long to shift into: blocks
/// of 70 keys `[0xff - b, i]`, each block below the previous one. Afterwards a version
/// sorting before all of them goes to the out-of-order map.
fn use_up_logs(table: &VectorMemTable, first_seq: u64) {
    let mut seq = first_seq;
    for block in 0..VectorMemTable::MAX_LOGS as u8 {
        for i in 0..70u8 {
            table.insert(&[0xff - block, i], SeqNo(seq), ValueKind::Put, b"fill");
            seq += 1;
        }
    }
}

#[test]
fn newest_version_at_a_snapshot_comes_from_the_log_or_the_map() {
    let table = VectorMemTable::new();
    // "k" versions 10, 30, 50 arrive in order (log); then 1000 later ids; then versions
    // 20 and 40 of "k" arrive far out of order (out-of-order map).
    for seq in [10u64, 30, 50] {
        table.insert(b"k", SeqNo(seq), ValueKind::Put, &seq.to_be_bytes());
    }
    for i in 0..1_000u32 {
        table.insert(
            format!("m{i:04}").as_bytes(),
            SeqNo(100 + u64::from(i)),
            ValueKind::Put,
            b"x",
        );
    }
    use_up_logs(&table, 2_000);
    table.insert(b"k", SeqNo(40), ValueKind::Delete, b"");
    table.insert(b"k", SeqNo(20), ValueKind::Put, &20u64.to_be_bytes());
    assert_eq!(table.out_of_order_len(), 2);
    for snapshot in 0..70u64 {
        let want = [50u64, 40, 30, 20, 10].into_iter().find(|&s| s <= snapshot);
        let got = table.get(b"k", SeqNo(snapshot));
        assert_eq!(got.as_ref().map(Lookup::seq), want.map(SeqNo), "snapshot {snapshot}");
        match got {
            Some(Lookup::Deleted { seq }) => assert_eq!(seq, SeqNo(40)),
            Some(Lookup::Value { value, seq }) => {
                assert_eq!(value.as_ref(), seq.get().to_be_bytes())
            }
            None => {}
        }
    }
    assert_eq!(table.get(b"j", SeqNo::MAX), None);
    assert_eq!(table.get(b"k\0", SeqNo::MAX), None);
    let table = Arc::new(table);
    let k_only = (Bound::Included(b(b"k")), Bound::Included(b(b"k")));
    assert_eq!(
        scan(&table, k_only.clone(), SeqNo::MAX),
        [(b(b"k"), 50), (b(b"k"), 40), (b(b"k"), 30), (b(b"k"), 20), (b(b"k"), 10)]
    );
    assert_eq!(scan(&table, k_only, SeqNo(35)), [(b(b"k"), 30), (b(b"k"), 20), (b(b"k"), 10)]);
}

#[test]
fn inverted_and_empty_bounds_select_nothing_without_panicking() {
    let table = Arc::new(VectorMemTable::new());
    for (i, k) in [&b"a"[..], b"c", b"b"].into_iter().enumerate() {
        table.insert(k, SeqNo(i as u64 + 1), ValueKind::Put, b"v");
    }
    use Bound::{Excluded as E, Included as I};
    for range in [
        (I(b(b"c")), I(b(b"a"))),
        (E(b(b"b")), E(b(b"b"))),
        (I(b(b"b")), E(b(b"b"))),
        (E(b(b"b")), I(b(b"b"))),
    ] {
        assert_eq!(scan(&table, range.clone(), SeqNo::MAX), [], "{range:?}");
    }
    assert_eq!(scan(&table, (I(b(b"b")), I(b(b"b"))), SeqNo::MAX), [(b(b"b"), 3)]);
}

#[test]
fn long_scans_with_invisible_versions_span_many_refills() {
    let table = Arc::new(VectorMemTable::new());
    // 5 000 ids, then a newer version of each of them (out of order: the map).
    for id in 0..5_000u64 {
        table.insert(&id.to_be_bytes(), SeqNo(id + 1), ValueKind::Put, b"old");
    }
    for id in 0..5_000u64 {
        table.insert(&id.to_be_bytes(), SeqNo(id + 10_001), ValueKind::Put, b"new");
    }
    let old: Vec<Entry> =
        Arc::clone(&table).range((Bound::Unbounded, Bound::Unbounded), SeqNo(5_000)).collect();
    assert_eq!(old.len(), 5_000);
    assert!(old.iter().all(|e| e.value.as_ref() == b"old"));
    let all = scan(&table, (Bound::Unbounded, Bound::Unbounded), SeqNo::MAX);
    assert_eq!(all.len(), 10_000);
    assert_eq!(all[0], (b(&0u64.to_be_bytes()), 10_001));
    assert_eq!(all[1], (b(&0u64.to_be_bytes()), 1));
}

#[test]
fn memory_bytes_grows_by_key_value_and_slot_per_insert_on_every_path() {
    let table = VectorMemTable::new();
    assert_eq!(table.memory_bytes(), 0);
    let mut previous = 0;
    // In order, slightly out of order (shifts), behind every log (new logs), and, once
    // every log is in use, far out of order (the map); some values are large.
    let mut keys: Vec<Vec<u8>> = (0..300u64)
        .chain([295, 290, 5, 7, 1])
        .chain(300..310)
        .map(|id| id.to_be_bytes().to_vec())
        .collect();
    for block in 0..VectorMemTable::MAX_LOGS as u8 {
        keys.extend((0..70u8).map(|i| vec![0xff - block, i]));
    }
    keys.extend([3u64, 250, 17].map(|id| id.to_be_bytes().to_vec()));
    for (i, key) in keys.iter().enumerate() {
        let value = vec![b'v'; (i * 37) % 300 + if i % 50 == 0 { 70_000 } else { 0 }];
        table.insert(key, SeqNo(1_000 + i as u64), ValueKind::Put, &value);
        let grown = table.memory_bytes() - previous;
        assert_eq!(
            grown,
            key.len() + value.len() + VectorMemTable::ENTRY_OVERHEAD_BYTES,
            "insert {i}"
        );
        previous = table.memory_bytes();
    }
    assert!(table.out_of_order_len() > 0);
    assert!(VectorMemTable::ENTRY_OVERHEAD_BYTES >= 2 * size_of::<Bytes>());
}

#[test]
fn duplicate_versions_keep_the_first_and_are_not_counted() {
    let table = VectorMemTable::new();
    for id in 0..500u64 {
        table.insert(&id.to_be_bytes(), SeqNo(id + 1), ValueKind::Put, b"first");
    }
    let (len, memory) = (table.len(), table.memory_bytes());
    // The last one (log tail), a recent one (shift range) and an old one (map lookup).
    for id in [499u64, 480, 3] {
        table.insert(&id.to_be_bytes(), SeqNo(id + 1), ValueKind::Put, b"second, longer");
    }
    table.insert(&3u64.to_be_bytes(), SeqNo(9_999), ValueKind::Put, b"map");
    let (len, memory) = (len + 1, memory + 8 + 3 + VectorMemTable::ENTRY_OVERHEAD_BYTES);
    table.insert(&3u64.to_be_bytes(), SeqNo(9_999), ValueKind::Put, b"map again");
    assert_eq!((table.len(), table.memory_bytes()), (len, memory));
    for id in [499u64, 480, 3] {
        assert_eq!(
            table.get(&id.to_be_bytes(), SeqNo(id + 1)),
            Some(Lookup::Value { value: b(b"first"), seq: SeqNo(id + 1) })
        );
    }
    assert_eq!(
        table.get(&3u64.to_be_bytes(), SeqNo::MAX),
        Some(Lookup::Value { value: b(b"map"), seq: SeqNo(9_999) })
    );
}

#[test]
fn factory_is_named_vector_and_tables_report_their_size() {
    // That its tables are new, empty and independent is a conformance clause.
    let factory = VectorFactory::new();
    assert_eq!(factory.name(), "vector");
    let table = factory.create();
    table.insert(b"k", SeqNo(1), ValueKind::Put, b"v");
    assert!(format!("{table:?}").contains("len: 1"));
}
