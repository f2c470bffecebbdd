//! Model test: the vector memtable against the harness's `BTreeMap` model
//! (`strata_harness::conformance::memtable::model`), for random keys (everything out of
//! order), sequential keys (the append path), and mixed streams (sequential with jumps
//! back, near-sorted bursts: the shift path and the out-of-order map together). Point
//! lookups and range scans at random snapshots must match the model exactly, including
//! across log chunks.

use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use strata_core::{MemTable, SeqNo, ValueKind};
use strata_harness::conformance::memtable::model::{Case, Op, check_model, id_case, random_case};
use strata_memtable_vector::VectorMemTable;

fn check(case: &Case) -> Result<(), TestCaseError> {
    check_model(Arc::new(VectorMemTable::new()), case)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn random_keys_match_the_model(case in random_case()) {
        check(&case)?;
    }

    #[test]
    fn sequential_keys_match_the_model(case in id_case(0)) {
        check(&case)?;
    }

    #[test]
    fn mixed_keys_match_the_model(case in id_case(2)) {
        check(&case)?;
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
    let gets =
        (0..2_000).map(|_| ((rand() % 31_000).to_be_bytes().to_vec(), rand() % (n + 10))).collect();
    let id = |id: u64| Bytes::copy_from_slice(&id.to_be_bytes());
    let scans = vec![
        ((Bound::Unbounded, Bound::Unbounded), u64::MAX),
        ((Bound::Unbounded, Bound::Unbounded), n / 2),
        ((Bound::Included(id(4_000)), Bound::Excluded(id(9_000))), n - 100),
    ];
    let case = Case { ops, gets, scans };
    check(&case).expect("model mismatch");
    // The stream used every placement: appends, shifts, several logs and the map.
    let table = VectorMemTable::new();
    for (k, kind, v, seq) in &case.ops {
        table.insert(k, SeqNo(*seq), *kind, v);
    }
    assert!(table.out_of_order_len() > 0, "{table:?}");
}
