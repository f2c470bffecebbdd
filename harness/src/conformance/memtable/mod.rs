//! The [`MemTable`](strata_core::MemTable) conformance suite, through a [`MemTableFactory`].
//!
//! | check | clause |
//! |---|---|
//! | `memtable::empty_table_is_empty` | a new table holds nothing: `len() == 0`, `max_seq() == ZERO`, no lookup hit |
//! | `memtable::get_returns_newest_version_at_snapshot` | `get(key, snapshot)` is the version with the greatest sequence `<= snapshot`, never a newer one |
//! | `memtable::range_yields_internal_key_order` | `range` yields key ascending, then sequence descending |
//! | `memtable::model_get_and_range_match_btreemap` | random versions, lookups and ranges at random snapshots against a `BTreeMap` |
//! | `memtable::range_sees_entries_present_before_the_call` | entries present before `range` always appear, even with inserts while iterating |
//! | `memtable::len_max_seq_and_memory_track_inserts` | `len`, `max_seq` follow the inserts; `memory_bytes` counts stored sizes and only grows |
//! | `memtable::extreme_sequences_are_ordered_and_bounded` | sequences `ZERO` and `MAX` are versions like any other: ordered newest first, found at their own snapshot, kept or dropped by included and excluded bounds |
//! | `memtable::range_iterator_outlives_the_table_handle` | the iterator `range` returns owns what it needs: it runs to the end on another thread after the caller dropped its handle of the table |
//! | `memtable::factory_tables_are_independent` | every `create()` returns a new, empty table sharing nothing with the others |
//! | `memtable::concurrent_inserts_are_all_visible` | `insert` from many threads without locking; concurrent readers never see a version newer than their snapshot |

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use strata_core::{Entry, KeyRange, Lookup, MemTableFactory, SeqNo, ValueKind};

pub mod model;

use self::model::{Model, b, model_get, model_range, scan};
use super::report::Report;
use super::runner::{Check, CheckResult, bytes_from, ensure, property, run_checks};

/// What the memtable under test supports.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MemTableCaps {
    /// `insert` may be called from many threads at once (the contract requires it of
    /// memtables the engine uses; off only for single-threaded experiments).
    pub concurrent_insert: bool,
    /// `memory_bytes` is computed from the stored sizes (off for a table that only
    /// estimates); gates the accounting part of `len_max_seq_and_memory_track_inserts`.
    pub exact_memory_accounting: bool,
}

impl Default for MemTableCaps {
    fn default() -> Self {
        Self { concurrent_insert: true, exact_memory_accounting: true }
    }
}

impl MemTableCaps {
    /// Sets [`MemTableCaps::concurrent_insert`].
    #[must_use]
    pub fn with_concurrent_insert(mut self, on: bool) -> Self {
        self.concurrent_insert = on;
        self
    }
    /// Sets [`MemTableCaps::exact_memory_accounting`].
    #[must_use]
    pub fn with_exact_memory_accounting(mut self, on: bool) -> Self {
        self.exact_memory_accounting = on;
        self
    }
}

struct Subject {
    factory: Arc<dyn MemTableFactory>,
    caps: MemTableCaps,
}

/// Runs the memtable suite against tables created by `factory`.
pub fn run(factory: Arc<dyn MemTableFactory>, caps: MemTableCaps) -> Report {
    let name = format!("memtable={}", factory.name());
    let conc = caps.concurrent_insert;
    let subject = Subject { factory, caps };
    let checks = vec![
        Check::new("memtable::empty_table_is_empty", empty_table),
        Check::new("memtable::get_returns_newest_version_at_snapshot", get_at_snapshot),
        Check::new("memtable::range_yields_internal_key_order", range_order),
        Check::new("memtable::model_get_and_range_match_btreemap", model),
        Check::new("memtable::range_sees_entries_present_before_the_call", range_during_inserts),
        Check::new("memtable::len_max_seq_and_memory_track_inserts", accounting),
        Check::new("memtable::extreme_sequences_are_ordered_and_bounded", extreme_sequences),
        Check::new("memtable::range_iterator_outlives_the_table_handle", owned_iterator),
        Check::new("memtable::factory_tables_are_independent", independent_tables),
        Check::when(
            conc,
            "concurrent_insert",
            "memtable::concurrent_inserts_are_all_visible",
            concurrent,
        ),
    ];
    run_checks("memtable", name, &subject, checks)
}

pub(crate) fn show(e: &Entry) -> String {
    format!(
        "({:?}, {}, {:?}, {} value bytes)",
        String::from_utf8_lossy(&e.key),
        e.seq,
        e.kind,
        e.value.len()
    )
}

pub(crate) fn show_range(r: &KeyRange) -> String {
    let b = |b: &Bound<Bytes>| match b {
        Bound::Included(k) => format!("={:?}", String::from_utf8_lossy(k)),
        Bound::Excluded(k) => format!(">{:?}", String::from_utf8_lossy(k)),
        Bound::Unbounded => "*".into(),
    };
    format!("[{} .. {}]", b(&r.0), b(&r.1))
}

/// Compares two entry lists, naming the first difference.
pub(crate) fn compare_entries(want: &[Entry], got: &[Entry], what: &str) -> CheckResult {
    for (i, (w, g)) in want.iter().zip(got).enumerate() {
        ensure!(w == g, "{what}: entry #{i} expected {}, found {}", show(w), show(g));
    }
    ensure!(
        want.len() == got.len(),
        "{what}: expected {} entries, found {} (first extra/missing: {})",
        want.len(),
        got.len(),
        want.get(got.len()).or(got.get(want.len())).map_or_else(String::new, show)
    );
    Ok(())
}

fn key(k: u8) -> Vec<u8> {
    format!("key{k:03}").into_bytes()
}

fn empty_table(s: &Subject) -> CheckResult {
    let m = s.factory.create();
    let len = m.len();
    ensure!(m.is_empty() && len == 0, "a new memtable reports len {len}");
    ensure!(
        m.max_seq() == SeqNo::ZERO,
        "clause `max_seq is ZERO when empty`: found {}",
        m.max_seq()
    );
    ensure!(m.get(b"a", SeqNo::MAX).is_none(), "a new memtable answers get(a)");
    let n = Arc::clone(&m).range((Bound::Unbounded, Bound::Unbounded), SeqNo::MAX).count();
    ensure!(n == 0, "a new memtable yields {n} entries");
    Ok(())
}

fn get_at_snapshot(s: &Subject) -> CheckResult {
    let m = s.factory.create();
    m.insert(b"k", SeqNo(5), ValueKind::Put, b"v5");
    m.insert(b"k", SeqNo(10), ValueKind::Put, b"v10");
    m.insert(b"k", SeqNo(7), ValueKind::Delete, b"");
    m.insert(b"j", SeqNo(6), ValueKind::Put, b"");
    m.insert(b"l", SeqNo(8), ValueKind::Put, b"l8");
    let v = |value: &'static [u8], seq| {
        Some(Lookup::Value { value: Bytes::from_static(value), seq: SeqNo(seq) })
    };
    let cases: [(&[u8], u64, Option<Lookup>); 10] = [
        (b"k", 4, None),
        (b"k", 5, v(b"v5", 5)),
        (b"k", 6, v(b"v5", 6 - 1)),
        (b"k", 7, Some(Lookup::Deleted { seq: SeqNo(7) })),
        (b"k", 9, Some(Lookup::Deleted { seq: SeqNo(7) })),
        (b"k", 10, v(b"v10", 10)),
        (b"k", u64::MAX, v(b"v10", 10)),
        (b"j", 6, v(b"", 6)),
        (b"l", 7, None),
        (b"kk", u64::MAX, None),
    ];
    for (k, snap, want) in cases {
        let got = m.get(k, SeqNo(snap));
        ensure!(
            got == want,
            "clause `get(key, snapshot) returns the version with the greatest sequence <= snapshot, never a newer one`: \
             get({:?}, #{snap}) expected {want:?}, found {got:?}",
            String::from_utf8_lossy(k)
        );
    }
    Ok(())
}

fn range_order(s: &Subject) -> CheckResult {
    let m = s.factory.create();
    let mut model = Model::new();
    let mut seq = 0u64;
    // Insert in a scrambled order: keys and sequences both out of order.
    let mut items = Vec::new();
    for k in 0..30u8 {
        for v in 0..3u64 {
            seq += 1;
            items.push((
                key(k),
                seq,
                if (u64::from(k) + v).is_multiple_of(4) {
                    ValueKind::Delete
                } else {
                    ValueKind::Put
                },
            ));
        }
    }
    let n = items.len();
    for i in 0..n {
        let j = usize::try_from(super::runner::mix(i as u64) % n as u64).unwrap_or(0);
        items.swap(i, j);
    }
    for (k, seq, kind) in items {
        let v = if kind == ValueKind::Put { bytes_from(seq, 10) } else { Vec::new() };
        m.insert(&k, SeqNo(seq), kind, &v);
        model.insert((k, seq), (kind, v));
    }
    let all: KeyRange = (Bound::Unbounded, Bound::Unbounded);
    let got: Vec<Entry> = Arc::clone(&m).range(all.clone(), SeqNo::MAX).collect();
    compare_entries(
        &model_range(&model, &all, u64::MAX),
        &got,
        "clause `range yields key ascending then sequence descending`: full range at MAX",
    )?;
    Ok(())
}

#[derive(Clone, Debug)]
enum Bnd {
    In(u8),
    Ex(u8),
    Un,
}

fn bound(b: &Bnd) -> Bound<Bytes> {
    match b {
        Bnd::In(k) => Bound::Included(Bytes::from(key(*k))),
        Bnd::Ex(k) => Bound::Excluded(Bytes::from(key(*k))),
        Bnd::Un => Bound::Unbounded,
    }
}

fn bnd() -> impl Strategy<Value = Bnd> {
    prop_oneof![(0u8..24).prop_map(Bnd::In), (0u8..24).prop_map(Bnd::Ex), Just(Bnd::Un)]
}

fn model(s: &Subject) -> CheckResult {
    let versions = prop::collection::vec(
        (0u8..20, prop::option::weighted(0.8, prop::collection::vec(any::<u8>(), 0..24))),
        1..80,
    );
    let queries = prop::collection::vec((0u8..24, 0u64..100, bnd(), bnd(), 0u64..100), 1..20);
    property(128, (versions, queries, any::<u64>()), |(versions, queries, shuffle)| {
        let m = s.factory.create();
        let mut model = Model::new();
        // Sequences are unique but inserted in a shuffled order.
        let n = versions.len() as u64;
        let mut order: Vec<u64> = (1..=n).collect();
        for i in 0..order.len() {
            let j = usize::try_from(super::runner::mix(shuffle ^ i as u64) % n).unwrap_or(0);
            order.swap(i, j);
        }
        for ((k, v), seq) in versions.iter().zip(order) {
            let (kind, v) = match v {
                Some(v) => (ValueKind::Put, v.clone()),
                None => (ValueKind::Delete, Vec::new()),
            };
            m.insert(&key(*k), SeqNo(seq), kind, &v);
            model.insert((key(*k), seq), (kind, v));
        }
        for (k, snap, lo, hi, rsnap) in queries {
            let got = m.get(&key(k), SeqNo(snap));
            let want = model_get(&model, &key(k), snap);
            ensure!(
                got == want,
                "clause `get(key, snapshot) returns the version with the greatest sequence <= snapshot`: \
                 get(key{k:03}, #{snap}) expected {want:?}, found {got:?}"
            );
            let range: KeyRange = (bound(&lo), bound(&hi));
            let got: Vec<Entry> = Arc::clone(&m).range(range.clone(), SeqNo(rsnap)).collect();
            compare_entries(
                &model_range(&model, &range, rsnap),
                &got,
                &format!(
                    "clause `range(range, snapshot) yields every version <= snapshot in range, in internal-key order`: range {} at #{rsnap}",
                    show_range(&range)
                ),
            )?;
        }
        Ok(())
    })
}

fn range_during_inserts(s: &Subject) -> CheckResult {
    let m = s.factory.create();
    let mut model = Model::new();
    for i in 0..200u64 {
        let k = key((i % 100) as u8);
        let v = bytes_from(i, 8);
        m.insert(&k, SeqNo(2 * i + 2), ValueKind::Put, &v);
        model.insert((k, 2 * i + 2), (ValueKind::Put, v));
    }
    let all: KeyRange = (Bound::Unbounded, Bound::Unbounded);
    let snap = 1000u64;
    let mut it = Arc::clone(&m).range(all.clone(), SeqNo(snap));
    let mut got = Vec::new();
    for i in 0..200u64 {
        if let Some(e) = it.next() {
            got.push(e);
        }
        // Odd sequences below and above the snapshot, interleaved with the iteration.
        let k = key((i * 7 % 100) as u8);
        m.insert(&k, SeqNo(2 * i + 1), ValueKind::Put, b"new");
        m.insert(&k, SeqNo(5000 + i), ValueKind::Put, b"newer");
    }
    got.extend(it);
    // Entries present before must all appear, in order; new ones may or may not.
    let want = model_range(&model, &all, snap);
    for w in &want {
        ensure!(
            got.contains(w),
            "clause `entries present before the call always appear`: {} missing from a range iterated during inserts",
            show(w)
        );
    }
    for pair in got.windows(2) {
        if let [a, b] = pair {
            ensure!(
                strata_core::compare_internal(&a.key, a.seq, &b.key, b.seq).is_lt(),
                "clause `range yields internal-key order`: {} came before {} while inserting",
                show(a),
                show(b)
            );
        }
    }
    for e in &got {
        ensure!(
            e.seq.0 <= snap,
            "clause `range yields only versions with sequence <= snapshot`: {} at snapshot #{snap}",
            show(e)
        );
    }
    Ok(())
}

fn accounting(s: &Subject) -> CheckResult {
    let m = s.factory.create();
    let mut last_mem = m.memory_bytes();
    let mut max = 0u64;
    for i in 0..100u64 {
        let seq = 1 + (i * 37) % 101;
        max = max.max(seq);
        let v = bytes_from(i, (i as usize % 7) * 50);
        m.insert(&key((i % 50) as u8), SeqNo(seq), ValueKind::Put, &v);
        ensure!(
            m.len() == i as usize + 1,
            "clause `len is the number of versions held`: after {} inserts len() is {}",
            i + 1,
            m.len()
        );
        ensure!(
            m.max_seq() == SeqNo(max),
            "clause `max_seq is the greatest sequence inserted`: expected #{max}, found {}",
            m.max_seq()
        );
        let mem = m.memory_bytes();
        ensure!(
            mem >= last_mem,
            "clause `memory_bytes only grows`: it went from {last_mem} to {mem}"
        );
        if s.caps.exact_memory_accounting {
            ensure!(
                mem >= last_mem + v.len() + 6,
                "clause `memory_bytes is computed from the sizes actually stored`: inserting a 6-byte key and a \
                 {}-byte value grew it from {last_mem} to {mem}",
                v.len()
            );
        }
        last_mem = mem;
    }
    if s.caps.exact_memory_accounting {
        let before = m.memory_bytes();
        m.insert(b"big", SeqNo(1000), ValueKind::Put, &vec![7u8; 100_000]);
        let after = m.memory_bytes();
        ensure!(
            after >= before + 100_000,
            "clause `memory_bytes is computed from stored sizes`: a 100 kB value grew it by {}",
            after.saturating_sub(before)
        );
        ensure!(
            after <= before + 200_000,
            "memory_bytes grew by {} for one 100 kB value (estimated, not computed?)",
            after - before
        );
    }
    ensure!(!m.is_empty(), "is_empty() is true for a table holding versions");
    Ok(())
}

fn extreme_sequences(s: &Subject) -> CheckResult {
    let m = s.factory.create();
    m.insert(b"a", SeqNo::ZERO, ValueKind::Put, b"zero");
    m.insert(b"a", SeqNo::MAX, ValueKind::Put, b"max");
    m.insert(b"b", SeqNo::MAX, ValueKind::Delete, b"");
    m.insert(b"b", SeqNo::ZERO, ValueKind::Put, b"zero");
    let clause =
        "clause `get(key, snapshot) returns the version with the greatest sequence <= snapshot`";
    for (k, snap, want) in [
        (b"a", SeqNo::ZERO, Some(SeqNo::ZERO)),
        (b"a", SeqNo::MAX, Some(SeqNo::MAX)),
        (b"b", SeqNo::ZERO, Some(SeqNo::ZERO)),
    ] {
        let got = m.get(k, snap).map(|l| l.seq());
        ensure!(got == want, "{clause}: get({k:?}, {snap}) expected {want:?}, found {got:?}");
    }
    let got = m.get(b"b", SeqNo::MAX);
    ensure!(
        got == Some(Lookup::Deleted { seq: SeqNo::MAX }),
        "{clause}: get(b, MAX) expected the tombstone at MAX, found {got:?}"
    );
    ensure!(
        m.max_seq() == SeqNo::MAX,
        "clause `max_seq is the greatest sequence inserted`: expected MAX, found {}",
        m.max_seq()
    );
    let (a_max, a_zero, b_max, b_zero) =
        ((b(b"a"), u64::MAX), (b(b"a"), 0), (b(b"b"), u64::MAX), (b(b"b"), 0));
    type Scan = (KeyRange, SeqNo, Vec<(Bytes, u64)>);
    let cases: [Scan; 5] = [
        (
            (Bound::Unbounded, Bound::Unbounded),
            SeqNo::MAX,
            vec![a_max.clone(), a_zero.clone(), b_max.clone(), b_zero.clone()],
        ),
        ((Bound::Unbounded, Bound::Unbounded), SeqNo::ZERO, vec![a_zero.clone(), b_zero.clone()]),
        (
            (Bound::Included(b(b"a")), Bound::Included(b(b"a"))),
            SeqNo::MAX,
            vec![a_max.clone(), a_zero.clone()],
        ),
        ((Bound::Excluded(b(b"a")), Bound::Unbounded), SeqNo::MAX, vec![b_max, b_zero]),
        ((Bound::Unbounded, Bound::Excluded(b(b"b"))), SeqNo::MAX, vec![a_max, a_zero]),
    ];
    for (range, snap, want) in cases {
        let got = scan(&m, range.clone(), snap);
        ensure!(
            got == want,
            "clause `range yields every version <= snapshot in range, key ascending then sequence descending`: \
             range {} at {snap} expected {want:?}, found {got:?}",
            show_range(&range)
        );
    }
    Ok(())
}

fn owned_iterator(s: &Subject) -> CheckResult {
    let m = s.factory.create();
    for i in 0..200u32 {
        m.insert(&i.to_be_bytes(), SeqNo(u64::from(i) + 1), ValueKind::Put, b"v");
    }
    let iter = Arc::clone(&m).range((Bound::Unbounded, Bound::Unbounded), SeqNo::MAX);
    drop(m);
    let count = std::thread::spawn(move || iter.count()).join();
    ensure!(
        matches!(count, Ok(200)),
        "clause `range returns an owned iterator`: consumed on another thread after the table's \
         handle was dropped it yielded {count:?} entries of 200"
    );
    Ok(())
}

fn independent_tables(s: &Subject) -> CheckResult {
    let one = s.factory.create();
    let two = s.factory.create();
    one.insert(b"k", SeqNo(1), ValueKind::Put, b"v");
    let clause = "clause `create returns a new, empty table`";
    ensure!(one.len() == 1, "{clause}: a table holds {} versions after one insert", one.len());
    ensure!(two.is_empty(), "{clause}: a second table holds {} versions", two.len());
    ensure!(two.max_seq() == SeqNo::ZERO, "{clause}: a second table has max_seq {}", two.max_seq());
    ensure!(two.get(b"k", SeqNo::MAX).is_none(), "{clause}: a second table answers get(k)");
    let all = (Bound::Unbounded, Bound::Unbounded);
    let (n1, n2) = (scan(&one, all.clone(), SeqNo::MAX).len(), scan(&two, all, SeqNo::MAX).len());
    ensure!(
        n1 == 1 && n2 == 0,
        "{clause}: full scans yield {n1} and {n2} entries, expected 1 and 0"
    );
    Ok(())
}

fn concurrent(s: &Subject) -> CheckResult {
    const THREADS: u64 = 4;
    const PER: u64 = 500;
    let m = s.factory.create();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let m = Arc::clone(&m);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || -> CheckResult {
            let mut round = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                round += 1;
                let snap = SeqNo((round * 13) % (THREADS * PER));
                for k in 0..20u8 {
                    if let Some(hit) = m.get(&key(k), snap) {
                        ensure!(
                            hit.seq() <= snap,
                            "clause `get never returns a version newer than snapshot`: get(key{k:03}, {snap}) returned {hit:?} during concurrent inserts"
                        );
                    }
                }
            }
            Ok(())
        })
    };
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let m = Arc::clone(&m);
            std::thread::spawn(move || {
                for i in 0..PER {
                    let seq = 1 + i * THREADS + t;
                    m.insert(
                        &key((seq % 20) as u8),
                        SeqNo(seq),
                        ValueKind::Put,
                        &seq.to_le_bytes(),
                    );
                }
            })
        })
        .collect();
    let mut panicked = false;
    for w in writers {
        panicked |= w.join().is_err();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let read = reader.join().map_err(|_| "the reader thread panicked".to_owned())?;
    ensure!(!panicked, "an inserting thread panicked");
    read?;
    let total = THREADS * PER;
    ensure!(
        m.len() == total as usize,
        "clause `insert may be called from many threads`: {} versions held after {total} concurrent inserts",
        m.len()
    );
    ensure!(
        m.max_seq() == SeqNo(total),
        "max_seq() is {} after concurrent inserts up to #{total}",
        m.max_seq()
    );
    for seq in 1..=total {
        let k = key((seq % 20) as u8);
        let got = m.get(&k, SeqNo(seq));
        let want = Some(Lookup::Value {
            value: Bytes::copy_from_slice(&seq.to_le_bytes()),
            seq: SeqNo(seq),
        });
        ensure!(
            got == want,
            "after concurrent inserts get(key{:03}, #{seq}) expected {want:?}, found {got:?}",
            seq % 20
        );
    }
    let n = Arc::clone(&m).range((Bound::Unbounded, Bound::Unbounded), SeqNo::MAX).count();
    ensure!(
        n == total as usize,
        "after concurrent inserts range yields {n} versions, expected {total}"
    );
    Ok(())
}
