//! Model test: the skiplist memtable against a `BTreeMap` keyed by
//! `(user key, Reverse(seq))`, with random inserts, then random point lookups and random
//! range scans at random snapshots. Outputs are compared exactly.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use strata_core::{Entry, Lookup, MemTable, SeqNo, ValueKind};
use strata_memtable_skiplist::SkipListMemTable;

type Model = BTreeMap<(Vec<u8>, Reverse<u64>), (ValueKind, Vec<u8>)>;

/// Short keys over a tiny alphabet, so keys collide, share prefixes and have many
/// versions (including the empty key).
fn key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(b'a'), Just(0xff)], 0..4)
}

fn kind() -> impl Strategy<Value = ValueKind> {
    prop_oneof![3 => Just(ValueKind::Put), 1 => Just(ValueKind::Delete)]
}

fn bound() -> impl Strategy<Value = Bound<Vec<u8>>> {
    prop_oneof![
        1 => Just(Bound::Unbounded),
        2 => key().prop_map(Bound::Included),
        2 => key().prop_map(Bound::Excluded),
    ]
}

/// Inserts as `(key, kind, value, seq)`: sequences are a shuffle of `base..base + n`, so
/// they are unique but arrive out of order (`base` 0 exercises sequence 0).
fn inserts() -> impl Strategy<Value = Vec<(Vec<u8>, ValueKind, Vec<u8>, u64)>> {
    (
        prop::collection::vec((key(), kind(), prop::collection::vec(any::<u8>(), 0..8)), 0..300),
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
                .map(|((k, kind, v), seq)| {
                    let v = if kind == ValueKind::Delete { Vec::new() } else { v };
                    (k, kind, v, seq)
                })
                .collect()
        })
}

/// Snapshots around and beyond the inserted sequences, plus the extremes.
fn snapshot() -> impl Strategy<Value = u64> {
    prop_oneof![
        4 => 0u64..1_400,
        1 => Just(0u64),
        1 => Just(u64::MAX),
    ]
}

fn model_get(model: &Model, key: &[u8], snapshot: u64) -> Option<Lookup> {
    let ((found_key, Reverse(seq)), (kind, value)) =
        model.range((key.to_vec(), Reverse(snapshot))..).next()?;
    if found_key.as_slice() != key {
        return None;
    }
    Some(match kind {
        ValueKind::Put => Lookup::Value { value: Bytes::copy_from_slice(value), seq: SeqNo(*seq) },
        ValueKind::Delete => Lookup::Deleted { seq: SeqNo(*seq) },
    })
}

fn in_bounds(key: &[u8], start: &Bound<Vec<u8>>, end: &Bound<Vec<u8>>) -> bool {
    let above = match start {
        Bound::Included(s) => key >= s.as_slice(),
        Bound::Excluded(s) => key > s.as_slice(),
        Bound::Unbounded => true,
    };
    let below = match end {
        Bound::Included(e) => key <= e.as_slice(),
        Bound::Excluded(e) => key < e.as_slice(),
        Bound::Unbounded => true,
    };
    above && below
}

/// Deliberately naive: filter the whole model in order (no `BTreeMap::range`, which
/// panics on inverted bounds).
fn model_range(
    model: &Model,
    start: &Bound<Vec<u8>>,
    end: &Bound<Vec<u8>>,
    snapshot: u64,
) -> Vec<Entry> {
    model
        .iter()
        .filter(|((k, Reverse(seq)), _)| *seq <= snapshot && in_bounds(k, start, end))
        .map(|((k, Reverse(seq)), (kind, value))| Entry {
            key: Bytes::copy_from_slice(k),
            seq: SeqNo(*seq),
            kind: *kind,
            value: Bytes::copy_from_slice(value),
        })
        .collect()
}

fn to_bytes_bound(bound: &Bound<Vec<u8>>) -> Bound<Bytes> {
    match bound {
        Bound::Included(k) => Bound::Included(Bytes::copy_from_slice(k)),
        Bound::Excluded(k) => Bound::Excluded(Bytes::copy_from_slice(k)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn matches_btreemap_model(
        ops in inserts(),
        gets in prop::collection::vec((key(), snapshot()), 1..60),
        scans in prop::collection::vec((bound(), bound(), snapshot()), 1..20),
    ) {
        let table = Arc::new(SkipListMemTable::new());
        let mut model = Model::new();
        for (k, kind, v, seq) in &ops {
            table.insert(k, SeqNo(*seq), *kind, v);
            model.insert((k.clone(), Reverse(*seq)), (*kind, v.clone()));
        }

        prop_assert_eq!(table.len(), model.len());
        prop_assert_eq!(table.is_empty(), model.is_empty());
        let max = model.keys().map(|(_, Reverse(s))| *s).max().unwrap_or(0);
        prop_assert_eq!(table.max_seq(), SeqNo(max));

        // Every inserted version is found at exactly its own sequence.
        for (k, kind, _, seq) in &ops {
            let got = table.get(k, SeqNo(*seq));
            prop_assert_eq!(got.as_ref().map(Lookup::seq), Some(SeqNo(*seq)));
            prop_assert_eq!(matches!(got, Some(Lookup::Deleted { .. })), *kind == ValueKind::Delete);
        }

        for (k, snap) in &gets {
            prop_assert_eq!(
                table.get(k, SeqNo(*snap)),
                model_get(&model, k, *snap),
                "get({:?}, {})", k, snap
            );
        }

        for (start, end, snap) in &scans {
            let got: Vec<Entry> = Arc::clone(&table)
                .range((to_bytes_bound(start), to_bytes_bound(end)), SeqNo(*snap))
                .collect();
            let want = model_range(&model, start, end, *snap);
            prop_assert_eq!(got, want, "range({:?}, {:?}) at {}", start, end, snap);
        }
    }
}
