//! Deterministic behaviour tests: snapshot visibility, bound handling, memory accounting,
//! the factory's name and concurrent use (clauses every memtable shares are in the
//! conformance suite, `tests/conformance.rs`).

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use strata_core::{
    Entry, KeyRange, Lookup, MemTable, MemTableFactory, SeqNo, ValueKind, compare_internal,
};
use strata_harness::conformance::memtable::model::{
    b, checked_scan, insert_from_threads, read_while_writing, scan,
};
use strata_memtable_skiplist::{SkipListFactory, SkipListMemTable};

#[test]
fn get_never_returns_a_version_newer_than_the_snapshot() {
    let table = SkipListMemTable::new();
    // Neighbouring user keys (prefix, extension, successor) share no versions with "k".
    table.insert(b"", SeqNo(500), ValueKind::Put, b"empty");
    table.insert(b"j", SeqNo(501), ValueKind::Put, b"before");
    table.insert(b"k\0", SeqNo(502), ValueKind::Put, b"extension");
    table.insert(b"l", SeqNo(503), ValueKind::Put, b"after");
    // Versions of "k" at even sequences 10, 12, ..., 200 (inserted newest first), the
    // multiples of 20 being tombstones.
    for seq in (10..=200u64).rev().step_by(2) {
        let kind = if seq % 20 == 0 { ValueKind::Delete } else { ValueKind::Put };
        let value = if kind == ValueKind::Put { seq.to_be_bytes().to_vec() } else { Vec::new() };
        table.insert(b"k", SeqNo(seq), kind, &value);
    }

    for snapshot in 0..=600u64 {
        let got = table.get(b"k", SeqNo(snapshot));
        if snapshot < 10 {
            assert_eq!(got, None, "snapshot {snapshot}");
            continue;
        }
        let want_seq = snapshot.min(200) & !1;
        let got = got.unwrap_or_else(|| panic!("snapshot {snapshot}: no version"));
        assert!(got.seq() <= SeqNo(snapshot), "snapshot {snapshot}: got {got:?}");
        assert_eq!(got.seq(), SeqNo(want_seq), "snapshot {snapshot}");
        match got {
            Lookup::Value { value, .. } => {
                assert_ne!(want_seq % 20, 0);
                assert_eq!(value.as_ref(), want_seq.to_be_bytes());
            }
            Lookup::Deleted { .. } => assert_eq!(want_seq % 20, 0),
        }
    }
    assert_eq!(table.get(b"k", SeqNo::MAX).map(|l| l.seq()), Some(SeqNo(200)));
    assert_eq!(table.get(b"k\0", SeqNo(501)), None);
    assert_eq!(table.get(b"", SeqNo(499)), None);
    assert!(table.get(b"", SeqNo(500)).is_some());
    assert_eq!(table.get(b"m", SeqNo::MAX), None);
}

#[test]
fn range_bounds_select_whole_keys_for_every_bound_combination() {
    let table = Arc::new(SkipListMemTable::new());
    let mut seq = 0;
    for key in [&b"a"[..], b"b", b"c", b"d"] {
        for _ in 0..3 {
            seq += 1;
            table.insert(key, SeqNo(seq), ValueKind::Put, b"v");
        }
    }
    let keys_of = |range: KeyRange| -> Vec<(Bytes, u64)> { scan(&table, range, SeqNo::MAX) };
    let versions = |keys: &[&[u8]]| -> Vec<(Bytes, u64)> {
        let mut out = Vec::new();
        for k in keys {
            let first = u64::from(k[0] - b'a') * 3 + 1;
            for s in (first..first + 3).rev() {
                out.push((b(k), s));
            }
        }
        out
    };
    use Bound::{Excluded as E, Included as I, Unbounded as U};
    let cases: Vec<(KeyRange, Vec<&[u8]>)> = vec![
        ((U, U), vec![b"a", b"b", b"c", b"d"]),
        ((I(b(b"b")), U), vec![b"b", b"c", b"d"]),
        ((E(b(b"b")), U), vec![b"c", b"d"]),
        ((U, I(b(b"c"))), vec![b"a", b"b", b"c"]),
        ((U, E(b(b"c"))), vec![b"a", b"b"]),
        ((I(b(b"b")), I(b(b"c"))), vec![b"b", b"c"]),
        ((I(b(b"b")), E(b(b"c"))), vec![b"b"]),
        ((E(b(b"b")), I(b(b"c"))), vec![b"c"]),
        ((E(b(b"b")), E(b(b"c"))), vec![]),
        ((E(b(b"a")), E(b(b"d"))), vec![b"b", b"c"]),
        ((I(b(b"b")), I(b(b"b"))), vec![b"b"]),
        ((E(b(b"b")), E(b(b"b"))), vec![]),
        ((I(b(b"c")), I(b(b"b"))), vec![]),
        ((I(b(b"bb")), I(b(b"cc"))), vec![b"c"]),
        ((E(b(b"")), U), vec![b"a", b"b", b"c", b"d"]),
        ((I(b(b"e")), U), vec![]),
        ((U, E(b(b"a"))), vec![]),
    ];
    for (range, keys) in cases {
        assert_eq!(keys_of(range.clone()), versions(&keys), "range {range:?}");
    }
}

#[test]
fn range_spanning_many_refills_filters_by_snapshot_in_internal_order() {
    let table = Arc::new(SkipListMemTable::new());
    // 1_000 keys x 5 versions; versions get interleaved sequences across keys.
    let mut inserted = Vec::new();
    for version in 0..5u64 {
        for k in 0..1_000u64 {
            let seq = version * 1_000 + k + 1;
            let key = format!("key{k:05}");
            table.insert(key.as_bytes(), SeqNo(seq), ValueKind::Put, &seq.to_le_bytes());
            inserted.push((key, seq));
        }
    }
    for snapshot in [0u64, 1, 999, 1_000, 2_500, 4_999, 5_000, u64::MAX] {
        let got: Vec<Entry> = Arc::clone(&table)
            .range((Bound::Unbounded, Bound::Unbounded), SeqNo(snapshot))
            .collect();
        let mut want: Vec<(String, u64)> =
            inserted.iter().filter(|(_, s)| *s <= snapshot).cloned().collect();
        want.sort_by(|a, b| {
            compare_internal(a.0.as_bytes(), SeqNo(a.1), b.0.as_bytes(), SeqNo(b.1))
        });
        assert_eq!(got.len(), want.len(), "snapshot {snapshot}");
        for (entry, (key, seq)) in got.iter().zip(&want) {
            assert_eq!(entry.key.as_ref(), key.as_bytes());
            assert_eq!(entry.seq, SeqNo(*seq));
            assert_eq!(entry.kind, ValueKind::Put);
            assert_eq!(entry.value.as_ref(), seq.to_le_bytes());
        }
    }
}

#[test]
fn entries_present_before_a_scan_appear_despite_concurrent_inserts() {
    let table = Arc::new(SkipListMemTable::new());
    for i in 0..1_000u32 {
        let key = format!("k{:06}", i * 2);
        table.insert(key.as_bytes(), SeqNo(u64::from(i) + 1), ValueKind::Put, b"v");
    }
    let mut iter = Arc::clone(&table).range((Bound::Unbounded, Bound::Unbounded), SeqNo::MAX);
    let mut seen = Vec::new();
    for i in 0..1_000u32 {
        if let Some(e) = iter.next() {
            seen.push(e);
        }
        // Odd keys land both behind and ahead of the cursor.
        let key = format!("k{:06}", (i * 7919 % 1_000) * 2 + 1);
        table.insert(key.as_bytes(), SeqNo(u64::from(i) + 10_000), ValueKind::Put, b"n");
    }
    seen.extend(iter);
    for pair in seen.windows(2) {
        assert_eq!(
            compare_internal(&pair[0].key, pair[0].seq, &pair[1].key, pair[1].seq),
            std::cmp::Ordering::Less,
            "out of order: {:?} then {:?}",
            pair[0].key,
            pair[1].key
        );
    }
    let original = seen.iter().filter(|e| e.seq.get() <= 1_000).count();
    assert_eq!(original, 1_000);
}

#[test]
fn memory_bytes_grows_by_key_value_and_node_overhead_per_insert() {
    let table = SkipListMemTable::new();
    assert_eq!(table.memory_bytes(), 0);
    let (mut previous, mut retirements) = (0, 0);
    for i in 0..500usize {
        let key = vec![b'k'; i % 40];
        let value = vec![b'v'; (i * 37) % 300];
        table.insert(&key, SeqNo(i as u64 + 1), ValueKind::Put, &value);
        let now = table.memory_bytes();
        let grown = now - previous;
        assert!(grown >= key.len() + value.len(), "insert {i}: grew {grown}");
        // Keys of up to 16 bytes live inside the node (part of the overhead).
        let spilled = if key.len() > 16 { key.len() } else { 0 };
        let expected = spilled + value.len() + SkipListMemTable::ENTRY_OVERHEAD_BYTES;
        // Plus, when the value did not fit in the arena chunk's tail, that tail.
        let retired = grown - expected;
        assert!(
            retired == 0 || retired < value.len(),
            "insert {i}: grew {grown}, {expected} + a tail of {retired}"
        );
        retirements += usize::from(retired > 0);
        previous = now;
    }
    // About 74 kB of values: the first 64 KiB chunk is retired once.
    assert!(retirements <= 1, "{retirements} chunk tails counted");
    assert!(SkipListMemTable::ENTRY_OVERHEAD_BYTES >= 2 * size_of::<Bytes>());
}

#[test]
fn arena_chunks_count_every_byte_once_retired() {
    use strata_memtable_skiplist::{ARENA_CHUNK_BYTES, ARENA_MAX_ITEM_BYTES};
    let table = SkipListMemTable::new();
    let value = vec![9u8; 3000];
    let per_chunk = ARENA_CHUNK_BYTES / value.len();
    let tail = ARENA_CHUNK_BYTES - per_chunk * value.len();
    let n = per_chunk * 2 + 5; // fills two chunks and starts a third
    for i in 0..n {
        table.insert(format!("k{i:05}").as_bytes(), SeqNo(i as u64 + 1), ValueKind::Put, &value);
    }
    let entries = n * (value.len() + SkipListMemTable::ENTRY_OVERHEAD_BYTES);
    assert_eq!(table.memory_bytes(), entries + 2 * tail, "two retired chunks' tails counted");
    // A value above the arena's item limit gets its own buffer and retires nothing.
    let big = vec![1u8; ARENA_MAX_ITEM_BYTES + 1];
    table.insert(b"big", SeqNo(1_000), ValueKind::Put, &big);
    assert_eq!(
        table.memory_bytes(),
        entries + 2 * tail + big.len() + SkipListMemTable::ENTRY_OVERHEAD_BYTES
    );
    // Every value reads back intact, and outlives the table that stored it.
    let held: Vec<Bytes> = (0..n)
        .map(|i| match table.get(format!("k{i:05}").as_bytes(), SeqNo::MAX) {
            Some(Lookup::Value { value, .. }) => value,
            other => panic!("k{i:05}: {other:?}"),
        })
        .collect();
    drop(table);
    assert!(held.iter().all(|v| v[..] == value[..]), "a value changed after the table dropped");
}

#[test]
fn arena_values_from_many_threads_stay_apart() {
    let table = Arc::new(SkipListMemTable::new());
    std::thread::scope(|s| {
        for t in 0..4u64 {
            let table = Arc::clone(&table);
            s.spawn(move || {
                for i in 0..2_000u64 {
                    let v = vec![(t * 31 + i % 251) as u8; 1 + (i as usize * 7) % 900];
                    table.insert(
                        &(t << 32 | i).to_be_bytes(),
                        SeqNo(t * 10_000 + i + 1),
                        ValueKind::Put,
                        &v,
                    );
                }
            });
        }
    });
    for t in 0..4u64 {
        for i in 0..2_000u64 {
            let want = vec![(t * 31 + i % 251) as u8; 1 + (i as usize * 7) % 900];
            match table.get(&(t << 32 | i).to_be_bytes(), SeqNo::MAX) {
                Some(Lookup::Value { value, .. }) => assert_eq!(value[..], want[..], "{t}/{i}"),
                other => panic!("{t}/{i}: {other:?}"),
            }
        }
    }
}

#[test]
fn duplicate_version_keeps_the_first_and_is_not_counted() {
    let table = SkipListMemTable::new();
    table.insert(b"k", SeqNo(7), ValueKind::Put, b"first");
    let (len, memory) = (table.len(), table.memory_bytes());
    table.insert(b"k", SeqNo(7), ValueKind::Put, b"second, longer");
    assert_eq!((table.len(), table.memory_bytes()), (len, memory));
    assert_eq!(
        table.get(b"k", SeqNo(7)),
        Some(Lookup::Value { value: b(b"first"), seq: SeqNo(7) })
    );
}

#[test]
fn counters_track_len_and_max_seq() {
    let table = SkipListMemTable::new();
    assert!(table.is_empty());
    assert_eq!(table.max_seq(), SeqNo::ZERO);
    table.insert(b"a", SeqNo(9), ValueKind::Put, b"1");
    table.insert(b"b", SeqNo(3), ValueKind::Delete, b"");
    table.insert(b"a", SeqNo(5), ValueKind::Put, b"2");
    assert_eq!(table.len(), 3);
    assert!(!table.is_empty());
    assert_eq!(table.max_seq(), SeqNo(9));
    let debug = format!("{table:?}");
    assert!(debug.contains("len: 3"), "{debug}");
}

#[test]
fn factory_is_named_skiplist() {
    // That its tables are new, empty and independent is a conformance clause.
    assert_eq!(SkipListFactory::new().name(), "skiplist");
    assert!(SkipListFactory::new().create().is_empty());
}

#[test]
fn four_threads_inserting_disjoint_sequences_are_all_readable() {
    const THREADS: u64 = 4;
    const PER_THREAD: u64 = 20_000;
    const KEYS: u64 = 3_000;
    let table = Arc::new(SkipListMemTable::new());
    let key_of = |seq: u64| format!("key{:06}", seq.wrapping_mul(2_654_435_761) % KEYS);
    // Thread t owns sequences t+1, t+1+THREADS, ...
    insert_from_threads(&table, THREADS, PER_THREAD, move |t, i| {
        let seq = i * THREADS + t + 1;
        (key_of(seq).into_bytes(), seq, seq.to_le_bytes().to_vec())
    });

    let total = THREADS * PER_THREAD;
    assert_eq!(table.len(), total as usize);
    assert_eq!(table.max_seq(), SeqNo(total));
    for seq in 1..=total {
        let got = table.get(key_of(seq).as_bytes(), SeqNo(seq));
        assert_eq!(
            got,
            Some(Lookup::Value {
                value: Bytes::copy_from_slice(&seq.to_le_bytes()),
                seq: SeqNo(seq)
            }),
            "seq {seq}"
        );
    }
    let scanned: Vec<Entry> =
        Arc::clone(&table).range((Bound::Unbounded, Bound::Unbounded), SeqNo::MAX).collect();
    assert_eq!(scanned.len(), total as usize);
    let mut seqs: Vec<u64> = scanned.iter().map(|e| e.seq.get()).collect();
    seqs.sort_unstable();
    assert!(seqs.iter().copied().eq(1..=total));
}

#[test]
fn readers_during_concurrent_inserts_see_only_snapshot_versions_in_order() {
    const WRITERS: u64 = 2;
    const PER_WRITER: u64 = 10_000;
    let table = Arc::new(SkipListMemTable::new());
    let key_of = |seq: u64| format!("k{:04}", seq % 500);

    let reader = read_while_writing(&table, 50, move |table, round| {
        let snapshot = SeqNo(round * 97 % (WRITERS * PER_WRITER));
        for k in 0..500u64 {
            if let Some(found) = table.get(key_of(k).as_bytes(), snapshot) {
                assert!(found.seq() <= snapshot, "{found:?} newer than {snapshot}");
                assert_eq!(found.seq().get() % 500, k);
            }
        }
        checked_scan(table, snapshot);
    });
    insert_from_threads(&table, WRITERS, PER_WRITER, move |t, i| {
        let seq = i * WRITERS + t + 1;
        (key_of(seq).into_bytes(), seq, b"v".to_vec())
    });
    assert!(reader.finish() >= 50);
    assert_eq!(table.len(), (WRITERS * PER_WRITER) as usize);
}
