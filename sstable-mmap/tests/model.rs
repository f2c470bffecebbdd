//! Model check: random tables against a `BTreeMap` of internal keys. `get` and `range`
//! at random snapshots and bounds must equal the model, with and without LZ4, with
//! tiny blocks (versions of one key spread over several blocks) and default ones, on
//! the mmap path and the read-all path.

mod common;

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::ops::Bound;

use bytes::Bytes;
use common::Env;
use proptest::prelude::*;
use strata_core::{Entry, Lookup, SeqNo, Table, ValueKind};
use strata_sstable_mmap::{Compression, MmapTableOptions};

type Model = BTreeMap<(Vec<u8>, Reverse<u64>), (ValueKind, Vec<u8>)>;

fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Few distinct short keys: many versions per key, empty key included.
        4 => proptest::collection::vec(prop_oneof![Just(b'a'), Just(b'b'), Just(0u8), Just(0xff)], 0..4),
        // Long keys (length needs more than one varint byte) sharing a prefix.
        1 => (256usize..400, any::<u8>()).prop_map(|(n, b)| {
            let mut k = vec![b'L'; n];
            k.push(b);
            k
        }),
    ]
}

fn entry_strategy() -> impl Strategy<Value = (Vec<u8>, u64, bool, Vec<u8>)> {
    (
        key_strategy(),
        1u64..200,
        proptest::bool::weighted(0.2),
        prop_oneof![
            3 => proptest::collection::vec(any::<u8>(), 0..40),
            1 => (0usize..300, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
        ],
    )
}

fn bound_strategy() -> impl Strategy<Value = Bound<Vec<u8>>> {
    prop_oneof![
        Just(Bound::Unbounded),
        key_strategy().prop_map(Bound::Included),
        key_strategy().prop_map(Bound::Excluded),
    ]
}

fn model_get(model: &Model, key: &[u8], snapshot: u64) -> Option<Lookup> {
    let ((k, Reverse(seq)), (kind, value)) =
        model.range((key.to_vec(), Reverse(snapshot))..).next()?;
    (k == key).then(|| match kind {
        ValueKind::Put => Lookup::Value { value: Bytes::copy_from_slice(value), seq: SeqNo(*seq) },
        ValueKind::Delete => Lookup::Deleted { seq: SeqNo(*seq) },
    })
}

fn in_range(key: &[u8], start: &Bound<Vec<u8>>, end: &Bound<Vec<u8>>) -> bool {
    let after_start = match start {
        Bound::Unbounded => true,
        Bound::Included(s) => key >= &s[..],
        Bound::Excluded(s) => key > &s[..],
    };
    let before_end = match end {
        Bound::Unbounded => true,
        Bound::Included(e) => key <= &e[..],
        Bound::Excluded(e) => key < &e[..],
    };
    after_start && before_end
}

fn to_bytes(b: &Bound<Vec<u8>>) -> Bound<Bytes> {
    match b {
        Bound::Unbounded => Bound::Unbounded,
        Bound::Included(k) => Bound::Included(Bytes::copy_from_slice(k)),
        Bound::Excluded(k) => Bound::Excluded(Bytes::copy_from_slice(k)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn table_matches_model(
        raw in proptest::collection::vec(entry_strategy(), 0..120),
        block_size in prop_oneof![Just(64usize), Just(200), Just(4096)],
        lz4 in any::<bool>(),
        os in proptest::bool::weighted(0.25),
        probes in proptest::collection::vec((key_strategy(), 0u64..210), 1..40),
        ranges in proptest::collection::vec((bound_strategy(), bound_strategy(), 0u64..210), 1..8),
    ) {
        let mut model = Model::new();
        for (key, seq, delete, value) in raw {
            let entry = if delete { (ValueKind::Delete, Vec::new()) } else { (ValueKind::Put, value) };
            model.insert((key, Reverse(seq)), entry);
        }
        let entries: Vec<Entry> = model
            .iter()
            .map(|((k, Reverse(s)), (kind, v))| Entry {
                key: Bytes::copy_from_slice(k),
                seq: SeqNo(*s),
                kind: *kind,
                value: Bytes::copy_from_slice(v),
            })
            .collect();
        let compression = if lz4 { Compression::Lz4 } else { Compression::None };
        let opts = MmapTableOptions::default().with_block_size(block_size).with_compression(compression);
        let env = if os { Env::os() } else { Env::sim() };
        let meta = env.build(opts, 7, &entries);
        let table = env.open(7).expect("open");
        prop_assert_eq!(table.is_mapped(), os);
        prop_assert_eq!(table.meta(), &meta);
        prop_assert_eq!(meta.entries, entries.len() as u64);
        prop_assert_eq!(meta.tombstones, entries.iter().filter(|e| e.kind == ValueKind::Delete).count() as u64);
        prop_assert_eq!(meta.min_seq.0, entries.iter().map(|e| e.seq.0).min().unwrap_or(0));
        prop_assert_eq!(meta.max_seq.0, entries.iter().map(|e| e.seq.0).max().unwrap_or(0));
        prop_assert_eq!(&meta.smallest_key[..], entries.first().map_or(&[][..], |e| &e.key[..]));
        prop_assert_eq!(&meta.largest_key[..], entries.last().map_or(&[][..], |e| &e.key[..]));
        prop_assert!(table.verify().is_empty(), "verify: {:?}", table.verify());

        // Every stored (key, seq) is found at its own snapshot, and one below it.
        for e in &entries {
            for snap in [e.seq.0, e.seq.0.saturating_sub(1), u64::MAX] {
                let got = table.get(&e.key, SeqNo(snap)).expect("get");
                prop_assert_eq!(got, model_get(&model, &e.key, snap), "key {:?} at {}", e.key, snap);
            }
        }
        for (key, snap) in &probes {
            let got = table.get(key, SeqNo(*snap)).expect("get");
            prop_assert_eq!(got, model_get(&model, key, *snap), "probe {:?} at {}", key, snap);
        }
        for (start, end, snap) in &ranges {
            let got: Vec<Entry> = table
                .clone()
                .range((to_bytes(start), to_bytes(end)), SeqNo(*snap))
                .collect::<strata_core::Result<_>>()
                .expect("range");
            let want: Vec<Entry> = entries
                .iter()
                .filter(|e| e.seq.0 <= *snap && in_range(&e.key, start, end))
                .cloned()
                .collect();
            prop_assert_eq!(got, want, "range {:?}..{:?} at {}", start, end, snap);
        }
    }
}
