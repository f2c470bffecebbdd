//! Test scaffolding for memtables, shared by every memtable crate's tests and by the
//! suite itself: a `BTreeMap` model of the [`MemTable`] contract, proptest strategies
//! for version streams (random keys, sequential ids, ids with jumps back), a checker
//! that compares a table with the model, and small helpers for hand-written tests.
//!
//! ```
//! use std::sync::Arc;
//! use proptest::test_runner::{Config, TestRunner};
//! use strata_harness::conformance::memtable::model::{check_model, random_case};
//! use strata_memtable_skiplist::SkipListMemTable;
//!
//! let mut runner = TestRunner::new(Config { cases: 8, ..Config::default() });
//! runner
//!     .run(&random_case(), |case| check_model(Arc::new(SkipListMemTable::new()), &case))
//!     .expect("the skiplist memtable matches the model");
//! ```

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::JoinHandle;

use bytes::Bytes;
use proptest::prelude::*;
use strata_core::{Entry, KeyRange, Lookup, MemTable, SeqNo, ValueKind, compare_internal};

/// The model: `(user key, sequence)` → `(kind, value)`.
pub type Model = BTreeMap<(Vec<u8>, u64), (ValueKind, Vec<u8>)>;

/// One insert: `(key, kind, value, sequence)`; a delete's value is empty.
pub type Op = (Vec<u8>, ValueKind, Vec<u8>, u64);

/// Inserts, then point lookups `(key, snapshot)` and scans `(range, snapshot)` to check.
#[derive(Clone, Debug)]
pub struct Case {
    /// Inserted in this order.
    pub ops: Vec<Op>,
    /// Lookups checked after the inserts.
    pub gets: Vec<(Vec<u8>, u64)>,
    /// Scans checked after the inserts.
    pub scans: Vec<(KeyRange, u64)>,
}

/// What `get(key, snap)` must answer: the version of `key` with the greatest sequence
/// `<= snap`.
pub fn model_get(m: &Model, key: &[u8], snap: u64) -> Option<Lookup> {
    m.range((key.to_vec(), 0)..=(key.to_vec(), snap)).next_back().map(|((_, seq), (kind, v))| {
        match kind {
            ValueKind::Put => Lookup::Value { value: Bytes::copy_from_slice(v), seq: SeqNo(*seq) },
            ValueKind::Delete => Lookup::Deleted { seq: SeqNo(*seq) },
        }
    })
}

/// True when `key` lies within `range` (inverted bounds hold nothing).
pub fn in_range(range: &KeyRange, key: &[u8]) -> bool {
    let lo = match &range.0 {
        Bound::Included(b) => key >= &b[..],
        Bound::Excluded(b) => key > &b[..],
        Bound::Unbounded => true,
    };
    let hi = match &range.1 {
        Bound::Included(b) => key <= &b[..],
        Bound::Excluded(b) => key < &b[..],
        Bound::Unbounded => true,
    };
    lo && hi
}

/// The entries `range(range, snap)` must yield, in internal-key order. Deliberately
/// naive: filters the whole model (no `BTreeMap::range`, which panics on inverted
/// bounds).
pub fn model_range(m: &Model, range: &KeyRange, snap: u64) -> Vec<Entry> {
    let mut out: Vec<Entry> = m
        .iter()
        .filter(|((k, seq), _)| *seq <= snap && in_range(range, k))
        .map(|((k, seq), (kind, v))| Entry {
            key: Bytes::copy_from_slice(k),
            seq: SeqNo(*seq),
            kind: *kind,
            value: Bytes::copy_from_slice(v),
        })
        .collect();
    out.sort_by(|a, b| compare_internal(&a.key, a.seq, &b.key, b.seq));
    out
}

/// Short keys over a tiny alphabet, so keys collide, share prefixes and have many
/// versions (including the empty key).
pub fn random_key() -> BoxedStrategy<Vec<u8>> {
    prop::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(b'a'), Just(0xff)], 0..4).boxed()
}

/// Puts three times as often as deletes.
pub fn kind() -> impl Strategy<Value = ValueKind> {
    prop_oneof![3 => Just(ValueKind::Put), 1 => Just(ValueKind::Delete)]
}

fn value(kind: ValueKind, v: Vec<u8>) -> Vec<u8> {
    if kind == ValueKind::Delete { Vec::new() } else { v }
}

/// Random keys with unique sequences arriving out of order: a shuffle of
/// `base..base + n`, `base` being 0 (so sequence 0 occurs), 1 or 1000.
pub fn random_ops() -> impl Strategy<Value = Vec<Op>> {
    (
        prop::collection::vec(
            (random_key(), kind(), prop::collection::vec(any::<u8>(), 0..8)),
            0..300,
        ),
        prop_oneof![Just(0u64), Just(1u64), Just(1_000u64)],
    )
        .prop_flat_map(|(ops, base)| {
            let n = ops.len() as u64;
            let seqs: Vec<u64> = (base..base + n).collect();
            (Just(ops), Just(seqs).prop_shuffle())
        })
        .prop_map(|(ops, seqs)| {
            ops.into_iter()
                .zip(seqs)
                .map(|((k, kind, v), seq)| (k, kind, value(kind, v), seq))
                .collect()
        })
}

/// A stream of ids as 8 big-endian bytes: each step either advances (the common case),
/// repeats the current id (a new version of the same key) or jumps back by a random
/// distance (an update of an older id). `back_weight` 0 gives a purely sequential
/// stream. Sequences increase with the stream, like an engine assigning them in commit
/// order.
pub fn id_ops(back_weight: u32) -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(
        (
            prop_oneof![
                8 => (1u64..3).prop_map(|d| d as i64),
                1 => Just(0i64),
                back_weight => (1u64..200).prop_map(|d| -(d as i64)),
            ],
            kind(),
            prop::collection::vec(any::<u8>(), 0..8),
        ),
        0..400,
    )
    .prop_map(|steps| {
        let mut id: i64 = 1_000;
        let mut top = id;
        steps
            .into_iter()
            .enumerate()
            .map(|(i, (step, kind, v))| {
                id = if step < 0 { (top + step).max(0) } else { id.max(top) + step };
                top = top.max(id);
                let key = (id as u64).to_be_bytes().to_vec();
                (key, kind, value(kind, v), i as u64 + 1)
            })
            .collect()
    })
}

/// Ids around the ones [`id_ops`] produces, as 8 big-endian bytes.
pub fn id_key() -> BoxedStrategy<Vec<u8>> {
    (900u64..1_600).prop_map(|id| id.to_be_bytes().to_vec()).boxed()
}

/// An unbounded, included or excluded bound on keys from `key`.
pub fn bound(key: BoxedStrategy<Vec<u8>>) -> impl Strategy<Value = Bound<Bytes>> {
    prop_oneof![
        1 => Just(Bound::Unbounded),
        2 => key.clone().prop_map(|k| Bound::Included(Bytes::from(k))),
        2 => key.prop_map(|k| Bound::Excluded(Bytes::from(k))),
    ]
}

/// Snapshots around and beyond the sequences the strategies produce, and the extremes.
pub fn snapshot() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..1_400, 1 => Just(0u64), 1 => Just(u64::MAX)]
}

/// A case from `ops`, with up to 60 lookups and 20 scans on keys from `key`.
pub fn case(
    ops: impl Strategy<Value = Vec<Op>>,
    key: BoxedStrategy<Vec<u8>>,
) -> impl Strategy<Value = Case> {
    let gets = prop::collection::vec((key.clone(), snapshot()), 1..60);
    let range = (bound(key.clone()), bound(key));
    let scans = prop::collection::vec((range, snapshot()), 1..20);
    (ops, gets, scans).prop_map(|(ops, gets, scans)| Case { ops, gets, scans })
}

/// [`random_ops`] with lookups and scans on [`random_key`]s.
pub fn random_case() -> impl Strategy<Value = Case> {
    case(random_ops(), random_key())
}

/// [`id_ops`] with lookups and scans on [`id_key`]s.
pub fn id_case(back_weight: u32) -> impl Strategy<Value = Case> {
    case(id_ops(back_weight), id_key())
}

/// Inserts `case.ops` into `table` (which must be empty) and into a model, then checks
/// `len`, `is_empty`, `max_seq`, that every version is found at its own sequence, and
/// every lookup and scan of the case, exactly.
pub fn check_model<M: MemTable + ?Sized>(table: Arc<M>, case: &Case) -> Result<(), TestCaseError> {
    let mut model = Model::new();
    for (k, kind, v, seq) in &case.ops {
        table.insert(k, SeqNo(*seq), *kind, v);
        model.insert((k.clone(), *seq), (*kind, v.clone()));
    }
    prop_assert_eq!(table.len(), model.len());
    prop_assert_eq!(table.is_empty(), model.is_empty());
    let max = model.keys().map(|(_, s)| *s).max().unwrap_or(0);
    prop_assert_eq!(table.max_seq(), SeqNo(max));
    for (k, kind, _, seq) in &case.ops {
        let got = table.get(k, SeqNo(*seq));
        prop_assert_eq!(got.as_ref().map(Lookup::seq), Some(SeqNo(*seq)));
        prop_assert_eq!(matches!(got, Some(Lookup::Deleted { .. })), *kind == ValueKind::Delete);
    }
    for (k, snap) in &case.gets {
        let (got, want) = (table.get(k, SeqNo(*snap)), model_get(&model, k, *snap));
        prop_assert_eq!(got, want, "get({:?}, {})", k, snap);
    }
    for (range, snap) in &case.scans {
        let got: Vec<Entry> = Arc::clone(&table).range(range.clone(), SeqNo(*snap)).collect();
        let want = model_range(&model, range, *snap);
        prop_assert_eq!(got, want, "range({:?}) at {}", range, snap);
    }
    Ok(())
}

/// `s` as `Bytes`.
pub fn b(s: &[u8]) -> Bytes {
    Bytes::copy_from_slice(s)
}

/// `(key, sequence)` of every entry `range(range, snapshot)` yields.
pub fn scan<M: MemTable + ?Sized>(
    table: &Arc<M>,
    range: KeyRange,
    snapshot: SeqNo,
) -> Vec<(Bytes, u64)> {
    Arc::clone(table).range(range, snapshot).map(|e| (e.key, e.seq.get())).collect()
}

/// Runs `threads` writer threads at once (released together by a barrier); writer `t`
/// inserts `write(t, i)` — `(key, sequence, value)`, a put — for `i` in
/// `0..per_thread`. Returns when every writer is done; a writer's panic is re-raised.
pub fn insert_from_threads<M, F>(table: &Arc<M>, threads: u64, per_thread: u64, write: F)
where
    M: MemTable + ?Sized + 'static,
    F: Fn(u64, u64) -> (Vec<u8>, u64, Vec<u8>) + Send + Sync + 'static,
{
    let barrier = Arc::new(Barrier::new(usize::try_from(threads).unwrap_or(usize::MAX)));
    let write = Arc::new(write);
    let writers: Vec<_> = (0..threads)
        .map(|t| {
            let (table, barrier, write) =
                (Arc::clone(table), Arc::clone(&barrier), Arc::clone(&write));
            std::thread::spawn(move || {
                barrier.wait();
                for i in 0..per_thread {
                    let (key, seq, value) = write(t, i);
                    table.insert(&key, SeqNo(seq), ValueKind::Put, &value);
                }
            })
        })
        .collect();
    for w in writers {
        if let Err(panic) = w.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

/// Scans the whole table at `snapshot` and asserts what every scan must hold, even
/// while writers insert: internal-key order and no version newer than the snapshot.
/// Returns the entries.
pub fn checked_scan<M: MemTable + ?Sized>(table: &Arc<M>, snapshot: SeqNo) -> Vec<Entry> {
    let scanned: Vec<Entry> =
        Arc::clone(table).range((Bound::Unbounded, Bound::Unbounded), snapshot).collect();
    for pair in scanned.windows(2) {
        if let [a, b] = pair {
            assert!(
                compare_internal(&a.key, a.seq, &b.key, b.seq).is_lt(),
                "scan at {snapshot} out of order: {:?}@{} then {:?}@{}",
                a.key,
                a.seq,
                b.key,
                b.seq
            );
        }
    }
    if let Some(e) = scanned.iter().find(|e| e.seq > snapshot) {
        panic!("scan at {snapshot} yielded {:?}@{}, newer than the snapshot", e.key, e.seq);
    }
    scanned
}

/// A thread reading a table while others write to it (see [`read_while_writing`]).
#[derive(Debug)]
pub struct Reader {
    done: Arc<AtomicBool>,
    handle: JoinHandle<u64>,
}

impl Reader {
    /// Lets the reader stop once it has run its minimum number of rounds, waits for it and
    /// returns how many rounds it ran; a panic of the reader (a failed assertion) is
    /// re-raised here.
    pub fn finish(self) -> u64 {
        self.done.store(true, Ordering::Release);
        match self.handle.join() {
            Ok(rounds) => rounds,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// Starts a thread calling `read(table, round)` for rounds 0, 1, 2, … until
/// [`Reader::finish`] is called and at least `min_rounds` rounds have run.
pub fn read_while_writing<M, F>(table: &Arc<M>, min_rounds: u64, read: F) -> Reader
where
    M: MemTable + ?Sized + 'static,
    F: Fn(&Arc<M>, u64) + Send + 'static,
{
    let done = Arc::new(AtomicBool::new(false));
    let (table, stop) = (Arc::clone(table), Arc::clone(&done));
    let handle = std::thread::spawn(move || {
        let mut round = 0u64;
        while !stop.load(Ordering::Acquire) || round < min_rounds {
            read(&table, round);
            round += 1;
        }
        round
    });
    Reader { done, handle }
}
