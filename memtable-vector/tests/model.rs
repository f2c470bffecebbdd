//! Model test: the vector memtable against a `BTreeMap` keyed by
//! `(user key, Reverse(seq))`, for random keys (everything out of order), sequential keys
//! (the append path), and mixed streams (sequential with jumps back, near-sorted bursts:
//! the shift path and the out-of-order map together). Point lookups and range scans at
//! random snapshots must match the model exactly, including across log chunks.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use strata_core::{Entry, Lookup, MemTable, SeqNo, ValueKind};
use strata_memtable_vector::VectorMemTable;

type Model = BTreeMap<(Vec<u8>, Reverse<u64>), (ValueKind, Vec<u8>)>;
type Op = (Vec<u8>, ValueKind, Vec<u8>, u64);

/// Short keys over a tiny alphabet, so keys collide, share prefixes and have many
/// versions (including the empty key).
fn random_key() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(b'a'), Just(0xff)], 0..4)
}

fn kind() -> impl Strategy<Value = ValueKind> {
    prop_oneof![3 => Just(ValueKind::Put), 1 => Just(ValueKind::Delete)]
}

fn value(kind: ValueKind, v: Vec<u8>) -> Vec<u8> {
    if kind == ValueKind::Delete { Vec::new() } else { v }
}

/// Random keys with shuffled unique sequences (`base` 0 exercises sequence 0).
fn random_ops() -> impl Strategy<Value = Vec<Op>> {
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

/// A stream of ids: each step either advances (the common case), repeats the current id
/// (a new version of the same key) or jumps back by a random distance (an update of an
/// older id). `back_weight` 0 gives a purely sequential stream. Sequences increase with
/// the stream, like an engine assigning them in commit order.
fn id_ops(back_weight: u32) -> impl Strategy<Value = Vec<Op>> {
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

fn bound(key: BoxedStrategy<Vec<u8>>) -> impl Strategy<Value = Bound<Vec<u8>>> {
    prop_oneof![
        1 => Just(Bound::Unbounded),
        2 => key.clone().prop_map(Bound::Included),
        2 => key.prop_map(Bound::Excluded),
    ]
}

fn id_key() -> BoxedStrategy<Vec<u8>> {
    (900u64..1_600).prop_map(|id| id.to_be_bytes().to_vec()).boxed()
}

fn snapshot() -> impl Strategy<Value = u64> {
    prop_oneof![4 => 0u64..1_400, 1 => Just(0u64), 1 => Just(u64::MAX)]
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

/// Deliberately naive: filter the whole model (inverted bounds select nothing).
fn model_range(
    model: &Model,
    start: &Bound<Vec<u8>>,
    end: &Bound<Vec<u8>>,
    snap: u64,
) -> Vec<Entry> {
    model
        .iter()
        .filter(|((k, Reverse(seq)), _)| *seq <= snap && in_bounds(k, start, end))
        .map(|((k, Reverse(seq)), (kind, value))| Entry {
            key: Bytes::copy_from_slice(k),
            seq: SeqNo(*seq),
            kind: *kind,
            value: Bytes::copy_from_slice(value),
        })
        .collect()
}

fn to_bytes(bound: &Bound<Vec<u8>>) -> Bound<Bytes> {
    match bound {
        Bound::Included(k) => Bound::Included(Bytes::copy_from_slice(k)),
        Bound::Excluded(k) => Bound::Excluded(Bytes::copy_from_slice(k)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

type Gets = Vec<(Vec<u8>, u64)>;
type Scans = Vec<(Bound<Vec<u8>>, Bound<Vec<u8>>, u64)>;

fn check(ops: &[Op], gets: &Gets, scans: &Scans) -> Result<(), TestCaseError> {
    let table = Arc::new(VectorMemTable::new());
    let mut model = Model::new();
    for (k, kind, v, seq) in ops {
        table.insert(k, SeqNo(*seq), *kind, v);
        model.insert((k.clone(), Reverse(*seq)), (*kind, v.clone()));
    }
    prop_assert_eq!(table.len(), model.len());
    prop_assert_eq!(table.is_empty(), model.is_empty());
    let max = model.keys().map(|(_, Reverse(s))| *s).max().unwrap_or(0);
    prop_assert_eq!(table.max_seq(), SeqNo(max));
    for (k, kind, _, seq) in ops {
        let got = table.get(k, SeqNo(*seq));
        prop_assert_eq!(got.as_ref().map(Lookup::seq), Some(SeqNo(*seq)));
        prop_assert_eq!(matches!(got, Some(Lookup::Deleted { .. })), *kind == ValueKind::Delete);
    }
    for (k, snap) in gets {
        prop_assert_eq!(
            table.get(k, SeqNo(*snap)),
            model_get(&model, k, *snap),
            "get({:?}, {})",
            k,
            snap
        );
    }
    for (start, end, snap) in scans {
        let got: Vec<Entry> =
            Arc::clone(&table).range((to_bytes(start), to_bytes(end)), SeqNo(*snap)).collect();
        let want = model_range(&model, start, end, *snap);
        prop_assert_eq!(got, want, "range({:?}, {:?}) at {}", start, end, snap);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn random_keys_match_the_model(
        ops in random_ops(),
        gets in prop::collection::vec((random_key(), snapshot()), 1..60),
        scans in prop::collection::vec((bound(random_key().boxed()), bound(random_key().boxed()), snapshot()), 1..20),
    ) {
        check(&ops, &gets, &scans)?;
    }

    #[test]
    fn sequential_keys_match_the_model(
        ops in id_ops(0),
        gets in prop::collection::vec((id_key(), snapshot()), 1..60),
        scans in prop::collection::vec((bound(id_key()), bound(id_key()), snapshot()), 1..20),
    ) {
        check(&ops, &gets, &scans)?;
    }

    #[test]
    fn mixed_keys_match_the_model(
        ops in id_ops(2),
        gets in prop::collection::vec((id_key(), snapshot()), 1..60),
        scans in prop::collection::vec((bound(id_key()), bound(id_key()), snapshot()), 1..20),
    ) {
        check(&ops, &gets, &scans)?;
    }
}

/// Tens of thousands of versions: many log chunks, near-sorted bursts (shifts), and
/// old ids updated (the out-of-order map), checked at several snapshots.
#[test]
fn near_sorted_stream_across_many_chunks_matches_the_model() {
    let mut ops: Vec<Op> = Vec::new();
    let mut state = 0x9e37_79b9_u64;
    let mut rand = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for block in 0..600u64 {
        // 50 ids per block, inserted in a locally shuffled order.
        let mut ids: Vec<u64> = (block * 50..block * 50 + 50).collect();
        for i in (1..ids.len()).rev() {
            ids.swap(i, (rand() % (i as u64 + 1)) as usize);
        }
        for id in ids {
            ops.push((id.to_be_bytes().to_vec(), ValueKind::Put, id.to_le_bytes().to_vec(), 0));
        }
        if block % 7 == 0 {
            let old = rand() % (block * 50 + 1);
            ops.push((old.to_be_bytes().to_vec(), ValueKind::Delete, Vec::new(), 0));
        }
    }
    for (i, op) in ops.iter_mut().enumerate() {
        op.3 = i as u64 + 1;
    }
    let n = ops.len() as u64;
    let gets: Gets =
        (0..2_000).map(|_| ((rand() % 31_000).to_be_bytes().to_vec(), rand() % (n + 10))).collect();
    let scans: Scans = vec![
        (Bound::Unbounded, Bound::Unbounded, u64::MAX),
        (Bound::Unbounded, Bound::Unbounded, n / 2),
        (
            Bound::Included(4_000u64.to_be_bytes().to_vec()),
            Bound::Excluded(9_000u64.to_be_bytes().to_vec()),
            n - 100,
        ),
    ];
    check(&ops, &gets, &scans).expect("model mismatch");
    // The stream used every placement: appends, shifts, several logs and the map.
    let table = VectorMemTable::new();
    for (k, kind, v, seq) in &ops {
        table.insert(k, SeqNo(*seq), *kind, v);
    }
    assert!(table.out_of_order_len() > 0, "{table:?}");
}
