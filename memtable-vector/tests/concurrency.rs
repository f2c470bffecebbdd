//! Concurrency: 8 threads insert interleaved sequential ranges (thread `t` owns ids
//! `t, t+8, t+16, …`, so the arrival order is sequential overall but racy at the tail:
//! the shift path and the out-of-order map both get used), while a reader scans and
//! looks up at snapshots. Afterwards every version must be readable, counted once, and
//! scanned in internal-key order.

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use strata_core::{Lookup, MemTable, SeqNo, ValueKind, compare_internal};
use strata_harness::conformance::memtable::model::{
    checked_scan, insert_from_threads, read_while_writing,
};
use strata_memtable_vector::VectorMemTable;

const THREADS: u64 = 8;
const PER_THREAD: u64 = 12_500;

fn key_of(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

#[test]
fn eight_threads_inserting_interleaved_sequential_ranges_are_all_readable() {
    let table = Arc::new(VectorMemTable::new());
    let reader = read_while_writing(&table, 5, |table, _| {
        // (That entries present before a scan always appear is checked exactly, without
        // racing writers, by the next test.)
        let snapshot = table.max_seq();
        checked_scan(table, snapshot);
        for id in (0..THREADS * PER_THREAD).step_by(997) {
            if let Some(found) = table.get(&key_of(id), snapshot) {
                assert_eq!(found.seq(), SeqNo(id + 1));
            }
        }
    });
    // Sequence = id + 1: ids and sequences grow together, as with an exchange sequencer
    // handing out order ids.
    insert_from_threads(&table, THREADS, PER_THREAD, |t, i| {
        let id = i * THREADS + t;
        (key_of(id).to_vec(), id + 1, id.to_le_bytes().to_vec())
    });
    assert!(reader.finish() >= 5);

    let total = THREADS * PER_THREAD;
    assert_eq!(table.len(), total as usize);
    assert_eq!(table.max_seq(), SeqNo(total));
    assert_eq!(
        table.memory_bytes(),
        total as usize * (8 + 8 + VectorMemTable::ENTRY_OVERHEAD_BYTES),
        "every version counted exactly once"
    );
    for id in 0..total {
        assert_eq!(
            table.get(&key_of(id), SeqNo::MAX),
            Some(Lookup::Value {
                value: Bytes::copy_from_slice(&id.to_le_bytes()),
                seq: SeqNo(id + 1)
            }),
            "id {id}"
        );
        assert_eq!(
            table.get(&key_of(id), SeqNo(id)),
            None,
            "id {id} is invisible before its sequence"
        );
    }
    let ids: Vec<u64> = Arc::clone(&table)
        .range((Bound::Unbounded, Bound::Unbounded), SeqNo::MAX)
        .map(|e| e.seq.get() - 1)
        .collect();
    assert!(ids.iter().copied().eq(0..total), "a full scan returns every id once, in order");
    println!("out of order: {} of {total}", table.out_of_order_len());
}

#[test]
fn entries_present_before_a_scan_appear_despite_concurrent_inserts() {
    let table = Arc::new(VectorMemTable::new());
    for i in 0..1_000u64 {
        table.insert(&key_of(i * 2), SeqNo(i + 1), ValueKind::Put, b"v");
    }
    let mut iter = Arc::clone(&table).range((Bound::Unbounded, Bound::Unbounded), SeqNo::MAX);
    let mut seen = Vec::new();
    for i in 0..1_000u64 {
        if let Some(e) = iter.next() {
            seen.push(e);
        }
        // Odd ids land both behind and ahead of the cursor (the out-of-order map and,
        // near the end, the shift path), plus appends past the end.
        table.insert(&key_of((i * 7919 % 1_000) * 2 + 1), SeqNo(i + 10_000), ValueKind::Put, b"n");
        table.insert(&key_of(5_000 + i), SeqNo(i + 20_000), ValueKind::Put, b"a");
    }
    seen.extend(iter);
    assert!(
        seen.windows(2).all(|w| compare_internal(&w[0].key, w[0].seq, &w[1].key, w[1].seq).is_lt()),
        "scan out of order"
    );
    let original = seen.iter().filter(|e| e.seq.get() <= 1_000).count();
    assert_eq!(original, 1_000);
}
